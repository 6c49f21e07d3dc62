// Inventory readers for the text formats Windows produces, and the merge of hotfix lists.
#include "inventory/inventory_reader.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>

#include "common/digest.h"
#include "common/text.h"
#include "inventory/json_inventory.h"
#include "inventory/text_decode.h"
#include "inventory/windows_release.h"

namespace kbgap::inventory {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_space(s.front()) || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_space(s.back()) || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

// "KB4540673", "KB893803v2" -> 4540673; "Q147222" (old hotfix ids) -> 147222; otherwise 0.
KbNumber hotfix_id(std::string_view token) {
  std::size_t skip = 0;
  if (token.size() > 2 && (token[0] == 'K' || token[0] == 'k') &&
      (token[1] == 'B' || token[1] == 'b')) {
    skip = 2;
  } else if (token.size() > 1 && (token[0] == 'Q' || token[0] == 'q')) {
    skip = 1;
  } else {
    return 0;
  }
  std::size_t end = skip;
  while (end < token.size() && std::isdigit(static_cast<unsigned char>(token[end]))) ++end;
  return kb_number(token.substr(skip, end - skip));
}

struct Field {
  std::string_view label;
  std::string_view value;
  std::vector<std::string_view> items;  // "[01]: KB4540673" continuation lines, the part after ':'
  int line = 0;
};

// "Host Name:                 PC044" -> label, value. Labels may hold ':' themselves
// ("Virtual Memory: Max Size:"), values may too ("18:56:01"): the value starts after the first
// ':' that is followed by a space, which holds for the fields kbgap reads.
std::optional<Field> field_of(std::string_view line, int number) {
  if (line.empty() || is_space(line.front())) return std::nullopt;
  for (std::size_t i = 0; i + 1 < line.size(); ++i) {
    if (line[i] == ':' && is_space(line[i + 1])) {
      return Field{trim(line.substr(0, i)), trim(line.substr(i + 1)), {}, number};
    }
  }
  if (line.back() == ':') return Field{trim(line.substr(0, line.size() - 1)), "", {}, number};
  return std::nullopt;
}

// "[01]: KB4540673" (also "[01] : ..." in French PowerShell output) -> "KB4540673".
std::optional<std::string_view> item_of(std::string_view line) {
  line = trim(line);
  if (!line.starts_with('[')) return std::nullopt;
  auto close = line.find(']');
  if (close == std::string_view::npos) return std::nullopt;
  auto colon = line.find(':', close);
  if (colon == std::string_view::npos) return std::nullopt;
  return trim(line.substr(colon + 1));
}

bool parse_os_version(std::string_view value, Device& d) {
  // "10.0.17134 N/D build 17134", "6.1.7601 Service Pack 1 Build 7601"
  int parts[3] = {0, 0, 0};
  const char* p = value.data();
  const char* end = value.data() + value.size();
  for (int i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, parts[i]);
    if (ec != std::errc() || next == p) return false;
    p = next;
    if (i < 2) {
      if (p == end || *p != '.') return false;
      ++p;
    }
  }
  d.major = parts[0];
  d.minor = parts[1];
  d.build = parts[2];
  if (p != end && *p == '.') {  // a full build with its revision: 10.0.19045.3803
    int revision = 0;
    auto [next, ec] = std::from_chars(p + 1, end, revision);
    if (ec == std::errc() && next != p + 1) d.revision = revision;
  }
  auto sp = value.find("Service Pack ");
  if (sp != std::string_view::npos) {
    auto digits = value.substr(sp + 13);
    std::size_t n = 0;
    while (n < digits.size() && std::isdigit(static_cast<unsigned char>(digits[n]))) ++n;
    if (n > 0) d.service_pack = fmt::format("Service Pack {}", digits.substr(0, n));
  }
  return true;
}

Architecture parse_architecture(std::string_view value) {
  const std::string v = to_lower(value);
  if (v.find("arm64") != std::string::npos) return Architecture::kArm64;
  if (v.find("x64") != std::string::npos || v.find("amd64") != std::string::npos) {
    return Architecture::kX64;
  }
  if (v.find("x86") != std::string::npos) return Architecture::kX86;
  if (v.find("itanium") != std::string::npos || v.find("ia64") != std::string::npos) {
    return Architecture::kItanium;
  }
  return Architecture::kUnknown;
}

bool looks_like_os_version(std::string_view v) {
  Device scratch;
  return parse_os_version(v, scratch) && scratch.major >= 5 && scratch.major <= 10;
}

}  // namespace

std::string_view format_name(InventoryFormat f) {
  switch (f) {
    case InventoryFormat::kSysteminfo:
      return "systeminfo";
    case InventoryFormat::kHotfixList:
      return "hotfix list (wmic qfe / Get-HotFix)";
    case InventoryFormat::kKbgapJson:
      return "kbgap JSON";
    case InventoryFormat::kOsqueryJson:
      return "osquery JSON";
    case InventoryFormat::kRegistry:
      return "registry values (reg query)";
    case InventoryFormat::kComputerInfo:
      return "Get-ComputerInfo";
    case InventoryFormat::kUninstallList:
      return "installed programs (Uninstall registry keys)";
  }
  return "?";
}

std::string_view architecture_name(Architecture a) {
  switch (a) {
    case Architecture::kX86:
      return "x86";
    case Architecture::kX64:
      return "x64";
    case Architecture::kArm64:
      return "arm64";
    case Architecture::kItanium:
      return "itanium";
    case Architecture::kUnknown:
      break;
  }
  return "";
}

KbNumber update_kb(std::string_view display_name) {
  for (std::size_t pos = display_name.find("(KB"); pos != std::string_view::npos;
       pos = display_name.find("(KB", pos + 1)) {
    std::string_view rest = display_name.substr(pos + 3);
    const std::size_t close = rest.find(')');
    if (close == std::string_view::npos) break;
    if (KbNumber kb = kb_number(rest.substr(0, close))) return kb;
  }
  return 0;
}

Architecture software_architecture(std::string_view product_code, std::string_view folder) {
  // Office's product codes end in 0000000FF1CE (learn.microsoft.com, "Office product codes").
  const std::string code = to_lower(product_code);
  if (code.size() == 38 && code.front() == '{' && code.ends_with("0000000ff1ce}") &&
      code[9] == '-' && code[19] == '-') {
    if (code[20] == '1') return Architecture::kX64;
    if (code[20] == '0') return Architecture::kX86;
  }
  if (to_lower(folder).find("\\program files (x86)\\") != std::string::npos ||
      to_lower(folder).find("program files (x86)") != std::string::npos) {
    return Architecture::kX86;
  }
  return Architecture::kUnknown;
}

KbNumber kb_number(std::string_view digits) {
  // Leading zeros aside, at most 8 digits: longer runs are not KB numbers (and would overflow).
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 8 || !std::all_of(digits.begin(), digits.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      })) {
    return 0;
  }
  KbNumber kb = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), kb);
  return kb >= kMinKbNumber && kb <= kMaxKbNumber ? kb : 0;
}

bool valid_tenant(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::optional<std::string> canonical_ip(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  const std::string z(text);
  unsigned char bytes[sizeof(in6_addr)];
  char out[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, z.c_str(), bytes) == 1 &&
        inet_ntop(family, bytes, out, sizeof out) != nullptr) {
      return std::string(out);
    }
  }
  return std::nullopt;
}

std::string primary_ip(const std::vector<std::string>& addresses) {
  auto v4_usable = [](const std::string& a) {
    return a.find(':') == std::string::npos && !a.starts_with("127.") &&
           !a.starts_with("169.254.") && a != "0.0.0.0";
  };
  auto v6_usable = [](const std::string& a) {
    const std::string lower = to_lower(a);
    return a.find(':') != std::string::npos && lower != "::1" && lower != "::" &&
           !(lower.starts_with("fe8") || lower.starts_with("fe9") || lower.starts_with("fea") ||
             lower.starts_with("feb"));
  };
  for (auto usable : {+v4_usable, +v6_usable}) {
    auto it = std::find_if(addresses.begin(), addresses.end(), usable);
    if (it != addresses.end()) return *it;
  }
  return addresses.empty() ? std::string() : addresses.front();
}

std::string os_build_string(const Device& d) {
  if (d.revision) return fmt::format("{}.{}.{}.{}", d.major, d.minor, d.build, *d.revision);
  return fmt::format("{}.{}.{}", d.major, d.minor, d.build);
}

void finish_device(Device& d, std::string_view identity) {
  std::sort(d.installed_kbs.begin(), d.installed_kbs.end());
  d.installed_kbs.erase(std::unique(d.installed_kbs.begin(), d.installed_kbs.end()),
                        d.installed_kbs.end());
  if (d.id.empty()) d.id = sha1_hex(fmt::format("kbgap-device\n{}", identity));
}

Result<Inventory> parse_systeminfo(std::string_view text, std::string_view source) {
  std::vector<Field> fields;
  int number = 0;
  for (std::string_view line : split_lines(text)) {
    ++number;
    if (auto f = field_of(line, number)) {
      fields.push_back(*f);
    } else if (auto item = item_of(line); item && !fields.empty()) {
      fields.back().items.push_back(*item);
    }
  }
  Inventory inv;
  Device& d = inv.device;
  const Field* version = nullptr;
  for (const Field& f : fields) {
    if (d.os_name.empty() && f.value.find("Windows") != std::string_view::npos) {
      d.os_name = std::string(f.value);
    }
    if (!version && looks_like_os_version(f.value)) version = &f;
    if (d.architecture == Architecture::kUnknown &&
        to_lower(f.value).find("based pc") != std::string::npos) {
      d.architecture = parse_architecture(f.value);
    }
    for (std::string_view item : f.items) {
      if (KbNumber kb = hotfix_id(item)) {
        d.installed_kbs.push_back(kb);
      } else if (auto ip = canonical_ip(item)) {
        // The network cards' addresses ("[01]: 192.168.0.10" under "IP address(es)"): the only
        // numbered items that read as addresses, whatever the language of the labels.
        if (std::find(d.ip_addresses.begin(), d.ip_addresses.end(), *ip) == d.ip_addresses.end())
          d.ip_addresses.push_back(std::move(*ip));
      }
    }
  }
  if (fields.size() < 3 || version == nullptr || d.os_name.empty()) {
    return invalid_input(
        fmt::format("{}:1: not a systeminfo output (no OS Name and OS Version lines)", source));
  }
  parse_os_version(version->value, d);
  d.computer_dns_name = std::string(fields.front().value);
  // Both are needed to evaluate and to store the device (kbgap JSON requires them too).
  if (trim(d.computer_dns_name).empty()) {
    return invalid_input(fmt::format("{}:{}: no host name", source, fields.front().line));
  }
  if (d.architecture == Architecture::kUnknown) {
    return invalid_input(
        fmt::format("{}:1: no System Type line with the architecture (x64-based PC, X86-based PC, "
                    "ARM64-based PC)",
                    source));
  }
  if (!classify_windows(d) && !accept_newer_release(d)) {
    return invalid_input(fmt::format("{}:{}: unknown Windows build {}.{}.{}", source, version->line,
                                     d.major, d.minor, d.build));
  }
  // The id: host name, product id and install date (fields 1, 9 and 10 in every language).
  std::string identity = to_lower(d.computer_dns_name);
  for (std::size_t i : {8u, 9u}) {
    if (i < fields.size()) identity += fmt::format("\n{}", fields[i].value);
  }
  finish_device(d, identity);
  d.source = std::string(source);
  return inv;
}

// "Label : value" (PowerShell's Format-List) or "Label=value" (wmic's /format:list and
// `wmic qfe list full`): the label and the value, at the first ':' or '='.
std::optional<std::pair<std::string, std::string_view>> list_field(std::string_view line) {
  const std::size_t at = line.find_first_of(":=");
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view label = trim(line.substr(0, at));
  if (label.empty() || !std::all_of(label.begin(), label.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0;
      })) {
    return std::nullopt;
  }
  return std::pair{to_lower(label), trim(line.substr(at + 1))};
}

// A hotfix list written one field per line, a blank line between hotfixes:
// `Get-HotFix | Format-List` ("HotFixID    : KB5034122", the computer in "Source") or
// `wmic qfe list full` ("HotFixID=KB5034122", the computer in "CSName").
std::optional<Inventory> parse_hotfix_fields(const std::vector<std::string_view>& lines,
                                             std::string_view source) {
  Inventory inv;
  inv.format = InventoryFormat::kHotfixList;
  inv.has_os = false;
  Device& d = inv.device;
  bool any = false;
  for (std::string_view line : lines) {
    auto field = list_field(line);
    if (!field) continue;
    const auto& [label, value] = *field;
    if (label == "hotfixid") {
      any = true;
      if (KbNumber kb = hotfix_id(value)) d.installed_kbs.push_back(kb);
    } else if ((label == "csname" || label == "source") && d.computer_dns_name.empty() &&
               !value.empty()) {
      d.computer_dns_name = std::string(value);
    }
  }
  if (!any) return std::nullopt;
  finish_device(d, to_lower(d.computer_dns_name));
  d.source = std::string(source);
  return inv;
}

Result<Inventory> parse_hotfix_list(std::string_view text, std::string_view source) {
  auto lines = split_lines(text);
  if (auto listed = parse_hotfix_fields(lines, source)) return std::move(*listed);
  std::size_t header = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (to_lower(lines[i]).find("hotfixid") != std::string::npos) {
      header = i;
      break;
    }
  }
  if (header == lines.size()) {
    return invalid_input(fmt::format("{}:1: not a hotfix list (no HotFixID column)", source));
  }
  // The computer name column: CSName (wmic qfe) or Source (Get-HotFix). WMIC may have written a
  // preamble on the header's line ("Please wait while WMIC is being installed.Caption  CSName"):
  // columns count from the first column name.
  std::string head = to_lower(lines[header]);
  std::size_t origin = head.find("caption");
  if (origin == std::string::npos) origin = 0;
  head.erase(0, origin);
  std::size_t host_col = head.find("csname");
  if (host_col == std::string::npos) host_col = head.find("source");
  Inventory inv;
  inv.format = InventoryFormat::kHotfixList;
  inv.has_os = false;
  Device& d = inv.device;
  for (std::size_t i = header + 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (i == header + 1 && origin > 0 && trim(line).empty()) continue;
    if (host_col != std::string::npos && host_col < line.size() && d.computer_dns_name.empty()) {
      std::string_view rest = line.substr(host_col);
      std::string_view host = rest.substr(0, rest.find("  "));
      host = trim(host);
      if (!host.empty() && host.find_first_not_of('-') != std::string_view::npos) {
        d.computer_dns_name = std::string(host);
      }
    }
    for (std::size_t p = 0; p < line.size();) {
      while (p < line.size() && is_space(line[p])) ++p;
      std::size_t q = p;
      while (q < line.size() && !is_space(line[q])) ++q;
      if (KbNumber kb = hotfix_id(line.substr(p, q - p))) d.installed_kbs.push_back(kb);
      p = q;
    }
  }
  finish_device(d, to_lower(d.computer_dns_name));
  d.source = std::string(source);
  return inv;
}

Result<Inventory> parse_computer_info(std::string_view text, std::string_view source) {
  std::map<std::string, std::string> fields;
  std::string* last = nullptr;
  for (std::string_view line : split_lines(text)) {
    // A long value goes on, indented, on the next lines.
    if (last && !line.empty() && is_space(line.front()) && !list_field(line)) {
      const std::string_view more = trim(line);
      last->push_back(' ');
      last->append(more.data(), more.size());
      continue;
    }
    last = nullptr;
    if (line.find(" : ") == std::string_view::npos && !trim(line).ends_with(":")) continue;
    if (auto field = list_field(line)) {
      last = &fields.try_emplace(field->first, field->second).first->second;
    }
  }
  auto field = [&](std::string_view key) -> std::string_view {
    auto it = fields.find(std::string(key));
    return it == fields.end() ? std::string_view() : std::string_view(it->second);
  };
  Inventory inv;
  inv.format = InventoryFormat::kComputerInfo;
  Device& d = inv.device;
  d.source = std::string(source);
  d.os_name = std::string(!field("osname").empty() ? field("osname") : field("windowsproductname"));
  d.computer_dns_name =
      std::string(!field("csdnshostname").empty() ? field("csdnshostname") : field("csname"));
  if (d.os_name.empty() || !parse_os_version(field("osversion"), d)) {
    return invalid_input(
        fmt::format("{}:1: Get-ComputerInfo output without OsName and OsVersion", source));
  }
  if (d.computer_dns_name.empty()) {
    return invalid_input(fmt::format("{}:1: Get-ComputerInfo output without CsName", source));
  }
  d.architecture = parse_architecture(field("cssystemtype"));
  if (d.architecture == Architecture::kUnknown) {
    const std::string bits = to_lower(field("osarchitecture"));
    if (bits.find("arm") != std::string::npos) {
      d.architecture = Architecture::kArm64;
    } else if (bits.find("64") != std::string::npos) {
      d.architecture = Architecture::kX64;
    } else if (bits.find("32") != std::string::npos) {
      d.architecture = Architecture::kX86;
    }
  }
  if (d.architecture == Architecture::kUnknown) {
    return invalid_input(fmt::format(
        "{}:1: Get-ComputerInfo output without CsSystemType or OsArchitecture", source));
  }
  // Newer Windows has the revision too.
  if (std::string_view ubr = field("windowsubr"); !ubr.empty()) {
    int revision = 0;
    auto [end, ec] = std::from_chars(ubr.data(), ubr.data() + ubr.size(), revision);
    if (ec == std::errc() && end == ubr.data() + ubr.size()) d.revision = revision;
  }
  if (std::string_view sp = field("osservicepackmajorversion"); !sp.empty() && sp != "0") {
    d.service_pack = fmt::format("Service Pack {}", sp);
  }
  if (to_lower(field("windowsinstallationtype")).find("core") != std::string::npos) {
    d.server_core = true;
  }
  // "{KB5030841, KB5015684, KB5031356...}"
  std::string_view hotfixes = field("oshotfixes");
  for (std::size_t p = 0; p < hotfixes.size();) {
    while (p < hotfixes.size() && !std::isalnum(static_cast<unsigned char>(hotfixes[p]))) ++p;
    std::size_t q = p;
    while (q < hotfixes.size() && std::isalnum(static_cast<unsigned char>(hotfixes[q]))) ++q;
    if (KbNumber kb = hotfix_id(hotfixes.substr(p, q - p))) d.installed_kbs.push_back(kb);
    p = q;
  }
  const bool core = d.server_core;
  if (!classify_windows(d) && !accept_newer_release(d)) {
    return invalid_input(fmt::format("{}:1: unknown Windows build {}", source, os_build_string(d)));
  }
  d.server_core = d.server_core || core;
  finish_device(d, to_lower(d.computer_dns_name) + "\n" + std::string(field("windowsproductid")));
  return inv;
}

Result<Inventory> parse_registry(std::string_view text, std::string_view source) {
  // "    UBR    REG_DWORD    0xcb6": a value's name, its type and its data.
  std::map<std::string, std::string_view> values;
  for (std::string_view line : split_lines(text)) {
    line = trim(line);
    const auto type = line.find("REG_");
    if (type == std::string_view::npos || type == 0) continue;
    const std::string_view name = trim(line.substr(0, type));
    std::string_view rest = line.substr(type);
    const auto gap = rest.find_first_of(" \t");
    const std::string_view kind = rest.substr(0, gap);
    const std::string_view data = gap == std::string_view::npos ? "" : trim(rest.substr(gap));
    if (kind == "REG_SZ" || kind == "REG_DWORD" || kind == "REG_EXPAND_SZ") {
      values[to_lower(name)] = data;
    }
  }
  // A REG_DWORD as reg prints it ("0xcb6"), or a decimal REG_SZ.
  auto number = [&](std::string_view key) -> std::optional<int> {
    auto it = values.find(std::string(key));
    if (it == values.end()) return std::nullopt;
    std::string_view v = it->second;
    int base = 10;
    if (v.starts_with("0x") || v.starts_with("0X")) {
      v.remove_prefix(2);
      base = 16;
    }
    int out = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out, base);
    if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
    return out;
  };
  Inventory inv;
  inv.format = InventoryFormat::kRegistry;
  inv.has_os = false;
  Device& d = inv.device;
  d.source = std::string(source);
  const auto build =
      number("currentbuildnumber") ? number("currentbuildnumber") : number("currentbuild");
  if (!build) {
    return invalid_input(
        fmt::format("{}:1: registry values without CurrentBuildNumber (expected the output of "
                    "reg query \"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\")",
                    source));
  }
  d.build = *build;
  // Windows 10 and later; before them CurrentVersion ("6.1") is the version.
  if (auto major = number("currentmajorversionnumber")) {
    d.major = *major;
    d.minor = number("currentminorversionnumber").value_or(0);
  } else if (auto it = values.find("currentversion"); it != values.end()) {
    const auto dot = it->second.find('.');
    std::from_chars(it->second.data(), it->second.data() + std::min(dot, it->second.size()),
                    d.major);
    if (dot != std::string_view::npos) {
      std::from_chars(it->second.data() + dot + 1, it->second.data() + it->second.size(), d.minor);
    }
  }
  if (auto ubr = number("ubr")) d.revision = *ubr;
  return inv;
}

Result<std::vector<Inventory>> read_inventory(std::string_view bytes, std::string_view source) {
  if (bytes.empty())
    return invalid_input(fmt::format("{}:1: empty file, expected an inventory", source));
  const std::string text = decode_windows_text(bytes);
  std::string_view body = trim(text);
  std::vector<Inventory> out;
  if (std::all_of(body.begin(), body.end(), [](char c) { return c == '\r' || is_space(c); })) {
    // A byte order mark and a line break: what `wmic qfe > qfe.txt` writes on a device without
    // hotfixes. A hotfix list with none.
    Inventory none;
    none.format = InventoryFormat::kHotfixList;
    none.has_os = false;
    none.device.source = std::string(source);
    out.push_back(std::move(none));
    return out;
  }
  if (body.starts_with('{') || body.starts_with('[')) {
    if (looks_like_uninstall_list(text)) return parse_uninstall_list(text, source);
    return looks_like_osquery(text) ? parse_osquery_json(text, source)
                                    : parse_kbgap_json(text, source);
  }
  const std::string head = to_lower(body.substr(0, std::min<std::size_t>(body.size(), 4096)));
  if (head.find("\\microsoft\\windows nt\\currentversion") != std::string::npos &&
      head.find("reg_") != std::string::npos) {
    auto r = parse_registry(text, source);
    if (!r) return r.error();
    out.push_back(std::move(*r));
    return out;
  }
  // Get-ComputerInfo: its OS properties come after the Windows and BIOS ones.
  if (const std::string lower = to_lower(body);
      lower.find("\nosversion ") != std::string::npos &&
      (lower.find("windowsproductname ") != std::string::npos ||
       lower.find("\noshotfixes ") != std::string::npos)) {
    auto r = parse_computer_info(text, source);
    if (!r) return r.error();
    out.push_back(std::move(*r));
    return out;
  }
  if (head.find("hotfixid") != std::string::npos) {
    auto r = parse_hotfix_list(text, source);
    if (!r) return r.error();
    out.push_back(std::move(*r));
    return out;
  }
  auto r = parse_systeminfo(text, source);
  if (!r) {
    return invalid_input(fmt::format(
        "{}:1: not an inventory kbgap reads (systeminfo, wmic qfe, Get-HotFix, kbgap JSON, "
        "osquery JSON)",
        source));
  }
  out.push_back(std::move(*r));
  return out;
}

Result<std::vector<Device>> merge_inventories(std::vector<Inventory> inventories) {
  std::vector<Device> devices;
  for (Inventory& inv : inventories) {
    if (inv.has_os) devices.push_back(std::move(inv.device));
  }
  for (Inventory& inv : inventories) {
    if (inv.has_os) continue;
    if (inv.format == InventoryFormat::kRegistry) {
      // Registry values name no computer: they complete the one device given with them.
      if (devices.size() != 1) {
        return invalid_input(fmt::format(
            "{}: registry values name no computer; give them alone with the systeminfo of "
            "their computer",
            inv.device.source));
      }
      Device& d = devices.front();
      if (d.build != inv.device.build || (inv.device.major != 0 && d.major != inv.device.major)) {
        return invalid_input(
            fmt::format("{}: registry values of build {}.{}.{}, but the device {} runs {}",
                        inv.device.source, inv.device.major, inv.device.minor, inv.device.build,
                        d.computer_dns_name, os_build_string(d)));
      }
      if (inv.device.revision) {
        d.revision = inv.device.revision;  // known, no longer inferred
        d.revision_inferred = false;
      }
      continue;
    }
    if (inv.format == InventoryFormat::kUninstallList) {
      // Programs and updates: of the computer they name (PSComputerName, when collected with
      // Invoke-Command), else of the one device given with them.
      const std::string host = to_lower(inv.device.computer_dns_name);
      auto it = std::find_if(devices.begin(), devices.end(), [&](const Device& d) {
        return !host.empty() && to_lower(d.computer_dns_name) == host;
      });
      if (it == devices.end() && host.empty() && devices.size() == 1) it = devices.begin();
      if (it == devices.end()) {
        return invalid_input(
            host.empty() ? fmt::format("{}: installed programs name no computer; give them alone "
                                       "with the systeminfo of their computer",
                                       inv.device.source)
                         : fmt::format("{}: installed programs of computer '{}' without that "
                                       "computer's systeminfo; give both",
                                       inv.device.source, inv.device.computer_dns_name));
      }
      // Listed in the registry's native view: built for the OS's own architecture (32-bit
      // programs of 64-bit Windows are listed under WOW6432Node).
      for (std::uint32_t i : inv.native_software) {
        InstalledSoftware& sw = inv.device.software[i];
        if (sw.architecture == Architecture::kUnknown) sw.architecture = it->architecture;
      }
      for (InstalledSoftware& sw : inv.device.software) it->software.push_back(std::move(sw));
      it->installed_kbs.insert(it->installed_kbs.end(), inv.device.installed_kbs.begin(),
                               inv.device.installed_kbs.end());
      finish_device(*it, "");
      continue;
    }
    const std::string host = to_lower(inv.device.computer_dns_name);
    auto it = std::find_if(devices.begin(), devices.end(),
                           [&](const Device& d) { return to_lower(d.computer_dns_name) == host; });
    // A list without a computer name column (wmic qfe get HotFixID,...) can only belong to the
    // one device it was given with.
    if (host.empty() && devices.size() == 1) it = devices.begin();
    if (it == devices.end()) {
      return invalid_input(
          host.empty()
              ? fmt::format("{}: a hotfix list without computer names; give it alone with the "
                            "systeminfo of its computer",
                            inv.device.source)
              : fmt::format("{}: a hotfix list of computer '{}' without that computer's "
                            "systeminfo; give both",
                            inv.device.source, inv.device.computer_dns_name));
    }
    it->installed_kbs.insert(it->installed_kbs.end(), inv.device.installed_kbs.begin(),
                             inv.device.installed_kbs.end());
    finish_device(*it, "");
  }
  return devices;
}

}  // namespace kbgap::inventory
