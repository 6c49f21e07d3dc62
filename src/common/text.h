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

}  // namespace kbgap
