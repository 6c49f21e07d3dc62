// Readers for the free-text remediation fields of MSRC CVRF documents.
#include "catalog/cvrf_fields.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace kbgap::catalog {
namespace {

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// "MS16-087"
bool is_bulletin_id(std::string_view s) {
  return s.size() == 8 && iequals_prefix(s, "ms") && is_digit(s[2]) && is_digit(s[3]) &&
         s[4] == '-' && all_digits(s.substr(5));
}

// Splits on any of the separators MSRC has used between items: ; , white space and <br>.
std::vector<std::string_view> split_items(std::string_view text) {
  std::vector<std::string_view> items;
  size_t start = 0;
  auto flush = [&](size_t end) {
    if (end > start) items.push_back(text.substr(start, end - start));
  };
  for (size_t i = 0; i < text.size();) {
    if (text[i] == ';' || text[i] == ',' || is_space(text[i])) {
      flush(i);
      start = ++i;
    } else if (iequals_prefix(text.substr(i), "<br>")) {
      flush(i);
      i += 4;
      start = i;
    } else {
      ++i;
    }
  }
  flush(text.size());
  return items;
}

}  // namespace

KbNumber parse_kb_number(std::string_view text) {
  text = trim(text);
  if (iequals_prefix(text, "kb")) text.remove_prefix(2);
  // Real KB numbers have 6 to 8 digits (KB891716 .. KB15498768).
  if (!all_digits(text) || text.size() < 5 || text.size() > 9) return 0;
  KbNumber kb = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), kb);
  if (ec != std::errc() || ptr != text.data() + text.size()) return 0;
  return kb;
}

std::vector<KbNumber> parse_supersedence(std::string_view text, KbNumber self, SkipCounts& skips) {
  std::vector<KbNumber> kbs;
  for (std::string_view item : split_items(text)) {
    if (item == "None" || item == "none" || item == "N/A") {
      skips.add(reason::kSupersedenceNone);
      continue;
    }
    if (is_bulletin_id(item)) {
      skips.add(reason::kSupersedenceBulletin);
      continue;
    }
    KbNumber kb = parse_kb_number(item);
    if (kb == 0) {
      skips.add(reason::kSupersedenceNoKb);
      continue;
    }
    if (kb == self) {
      skips.add(reason::kSupersedenceSelf);
      continue;
    }
    if (std::find(kbs.begin(), kbs.end(), kb) == kbs.end()) kbs.push_back(kb);
  }
  return kbs;
}

std::string normalize_fixed_build(std::string_view text, SkipCounts& skips) {
  text = trim(text);
  if (text.empty()) return {};
  // Several builds: "4.8.9334.0 and 4.8.4802.0", "3.0.6920.8954; 2.0.50727.8970".
  std::vector<std::string_view> parts;
  for (std::string_view item : split_items(text)) {
    if (item == "and" || item == "&amp;" || item == "&") continue;
    parts.push_back(item);
  }
  std::string out;
  for (std::string_view part : parts) {
    if (part.empty() || !is_digit(part.front())) {
      skips.add(reason::kFixedBuildNotVersion);
      return {};
    }
    std::string build;
    bool empty_component = false;
    for (char c : part) {
      if (c == '.') {
        if (!build.empty() && build.back() == '.') {
          empty_component = true;
          continue;
        }
      } else if (!is_digit(c)) {
        skips.add(reason::kFixedBuildNotVersion);
        return {};
      }
      build.push_back(c);
    }
    if (build.back() == '.') {
      build.pop_back();
      skips.add(reason::kFixedBuildTrailingDot);
    }
    if (empty_component) skips.add(reason::kFixedBuildEmptyPart);
    if (std::count(build.begin(), build.end(), '.') < 1) {
      skips.add(reason::kFixedBuildNotVersion);
      return {};
    }
    if (!out.empty()) out.push_back(';');
    out += build;
  }
  if (parts.size() > 1) skips.add(reason::kFixedBuildSeveral);
  return out;
}

std::string canonical_subtype(std::string_view subtype) {
  static constexpr std::string_view kCanonical[] = {
      "Security Update", "Monthly Rollup",       "Security Only",
      "IE Cumulative",   "Cumulative Update",    "Security Hotpatch Update",
      "Azure Hotpatch",  "Alternate Cumulative", "Servicing Stack Update",
      "Preview Rollup",  "Standalone",           "Setup DU",
      "Update",
  };
  auto squash = [](std::string_view s) {
    std::string out;
    for (char c : s) {
      if (!is_space(c))
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return out;
  };
  const std::string key = squash(subtype);
  for (std::string_view canonical : kCanonical) {
    if (squash(canonical) == key) return std::string(canonical);
  }
  return fold_spaces(subtype);
}

std::string canonical_document_id(std::string_view id) {
  std::string out(id);
  if (out.size() == 8 && all_digits(id.substr(0, 4)) && id[4] == '-' &&
      std::all_of(id.begin() + 5, id.end(),
                  [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
    out[5] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[5])));
    out[6] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[6])));
    out[7] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[7])));
  }
  return out;
}

int msrc_severity_rank(std::string_view s) {
  if (s == "Critical") return 4;
  if (s == "Important") return 3;
  if (s == "Moderate") return 2;
  if (s == "Low") return 1;
  return 0;
}

bool revision_less(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view s) {
    std::vector<long> v;
    while (!s.empty()) {
      auto dot = s.find('.');
      std::string_view p = s.substr(0, dot);
      long n = 0;
      std::from_chars(p.data(), p.data() + p.size(), n);
      v.push_back(n);
      if (dot == std::string_view::npos) break;
      s.remove_prefix(dot + 1);
    }
    return v;
  };
  return parts(a) < parts(b);
}

std::string fold_spaces(std::string_view text) {
  text = trim(text);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (is_space(c)) {
      if (!out.empty() && out.back() == ' ') continue;
      c = ' ';
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace kbgap::catalog
