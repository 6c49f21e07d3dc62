// Small text helpers shared by the readers: ASCII case folding and trimming.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace kbgap {

inline char ascii_lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// A product name as names are compared: lower case, runs of white space as one space, trimmed
// ("Windows Server 2012 R2 (server core installation)" is MSRC's "... (Server Core installation)").
inline std::string fold_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(ascii_lower(c));
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace kbgap
