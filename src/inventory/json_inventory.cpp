// JSON inventories on Boost.JSON, with errors that name the file, line and field.
#include "inventory/json_inventory.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>

#include "common/clock.h"
#include "common/text.h"
#include "inventory/windows_release.h"

namespace kbgap::inventory {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxDepth = 16;  // inventories are three levels deep; deeper is hostile

Result<json::value> parse(std::string_view text, std::string_view source,
                          json::storage_ptr storage = {}) {
  // A UTF-8 byte order mark, as PowerShell 5.1's Out-File and Set-Content write it.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  json::parse_options opts;
  opts.max_depth = kMaxDepth;
  json::stream_parser parser(json::storage_ptr(), opts);
  parser.reset(std::move(storage));
  boost::system::error_code ec;
  std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    const std::size_t at = std::min(consumed, text.size());
    const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
    return invalid_input(fmt::format("{}:{}: malformed JSON: {}", source, line, ec.message()));
  }
  return parser.release();
}

// Field access with errors naming the path ("devices[2].osBuild").
class Reader {
 public:
  Reader(std::string_view source) : source_(source) {}

  Error fail(std::string_view path, std::string_view what) const {
    return invalid_input(fmt::format("{}: {}: {}", source_, path, what));
  }

  // A string field; "" when absent or null; an error when present with another type.
  Result<std::string> string(const json::object& o, std::string_view key, std::string_view path) {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null()) return std::string();
    if (it->value().is_string()) return std::string(it->value().as_string());
    if (it->value().is_int64()) return std::to_string(it->value().as_int64());
    return fail(fmt::format("{}.{}", path, key), "expected a string");
  }

  Result<bool> boolean(const json::object& o, std::string_view key, std::string_view path) {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null()) return false;
    if (it->value().is_bool()) return it->value().as_bool();
    return fail(fmt::format("{}.{}", path, key), "expected true or false");
  }

  Result<const json::array*> array(const json::object& o, std::string_view key,
                                   std::string_view path) {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null()) return static_cast<const json::array*>(nullptr);
    if (it->value().is_array()) return &it->value().as_array();
    return fail(fmt::format("{}.{}", path, key), "expected an array");
  }

 private:
  std::string_view source_;
};

KbNumber kb_of(std::string_view s) {
  // "KB5034122", "5034122", or a title "... (KB5034122)".
  auto pos = s.find("KB");
  if (pos != std::string_view::npos) s = s.substr(pos + 2);
  std::size_t n = 0;
  while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n]))) ++n;
  return kb_number(s.substr(0, n));
}

Architecture architecture_of(std::string_view s) {
  const std::string v = to_lower(s);
  if (v.find("arm64") != std::string::npos || v.find("aarch64") != std::string::npos) {
    return Architecture::kArm64;
  }
  if (v == "x64" || v == "64-bit" || v == "amd64" || v == "x86_64") return Architecture::kX64;
  if (v == "x86" || v == "32-bit" || v == "i386" || v == "i686") return Architecture::kX86;
  if (v == "itanium" || v == "ia64") return Architecture::kItanium;
  return Architecture::kUnknown;
}

// "10.0.19045.3803" or "10.0.19045" -> the device's numbers; false when not a build.
bool set_build(Device& d, std::string_view s) {
  int parts[4] = {0, 0, 0, -1};
  const char* p = s.data();
  const char* end = s.data() + s.size();
  int i = 0;
  for (; i < 4 && p < end; ++i) {
    auto [next, ec] = std::from_chars(p, end, parts[i]);
    if (ec != std::errc() || next == p) return false;
    p = next;
    if (p < end) {
      if (*p != '.') return false;
      ++p;
    }
  }
  if (i < 3 || p != end) return false;
  d.major = parts[0];
  d.minor = parts[1];
  d.build = parts[2];
  if (parts[3] >= 0) d.revision = parts[3];
  return true;
}

Result<Inventory> read_device(const json::value& v, std::string_view path, Reader& r,
                              std::string_view source, TimeFields times) {
  if (!v.is_object()) return r.fail(path, "expected a device object");
  const json::object& o = v.as_object();
  Inventory inv;
  inv.format = InventoryFormat::kKbgapJson;
  Device& d = inv.device;
  d.source = std::string(source);
  auto text = [&](std::string_view key, std::string& out) -> Result<void> {
    auto s = r.string(o, key, path);
    if (!s) return s.error();
    out = std::move(*s);
    return ok_result();
  };
  std::string build, arch, osname;
  KBGAP_TRY(text("id", d.id));
  KBGAP_TRY(text("computerDnsName", d.computer_dns_name));
  KBGAP_TRY(text("osName", osname));
  KBGAP_TRY(text("osBuild", build));
  KBGAP_TRY(text("osArchitecture", arch));
  KBGAP_TRY(text("edition", d.edition));
  KBGAP_TRY(text("servicePack", d.service_pack));
  if (times == TimeFields::kCheck) {
    KBGAP_TRY(text("firstSeen", d.first_seen));
    KBGAP_TRY(text("lastSeen", d.last_seen));
  }
  for (auto [key, time] :
       {std::pair{"firstSeen", &d.first_seen}, std::pair{"lastSeen", &d.last_seen}}) {
    if (time->empty()) continue;
    auto utc = utc_time_from_rfc3339(*time);
    if (!utc) {
      return r.fail(fmt::format("{}.{}", path, key),
                    fmt::format("expected an RFC 3339 time like 2026-11-23T15:04:05Z, not '{}'",
                                time->substr(0, 40)));
    }
    *time = std::move(*utc);
  }
  for (auto [key, flag] :
       {std::pair{"serverCore", &d.server_core}, std::pair{"azureEdition", &d.azure_edition},
        std::pair{"hotpatch", &d.hotpatch_enrolled}}) {
    auto b = r.boolean(o, key, path);
    if (!b) return b.error();
    *flag = *b;
  }
  if (!d.id.empty() && (d.id.size() != 40 || !std::all_of(d.id.begin(), d.id.end(), [](char c) {
                          return std::isdigit(static_cast<unsigned char>(c)) ||
                                 (c >= 'a' && c <= 'f');
                        }))) {
    return r.fail(fmt::format("{}.id", path), "expected 40 lower-case hex characters");
  }
  if (d.computer_dns_name.empty()) {
    return r.fail(fmt::format("{}.computerDnsName", path), "required");
  }
  if (!set_build(d, build)) {
    return r.fail(fmt::format("{}.osBuild", path),
                  fmt::format("expected a Windows build like 10.0.19045.3803, not '{}'", build));
  }
  d.architecture = architecture_of(arch);
  if (d.architecture == Architecture::kUnknown) {
    return r.fail(fmt::format("{}.osArchitecture", path),
                  fmt::format("expected x64, x86 or arm64, not '{}'", arch));
  }
  if (!d.service_pack.empty() &&
      (!d.service_pack.starts_with("Service Pack ") || d.service_pack.size() == 13 ||
       !std::all_of(d.service_pack.begin() + 13, d.service_pack.end(),
                    [](char c) { return c >= '0' && c <= '9'; }))) {
    return r.fail(fmt::format("{}.servicePack", path),
                  fmt::format("expected \"Service Pack 1\" or the like, not '{}'", d.service_pack));
  }
  d.os_name = osname.empty() ? std::string("Microsoft Windows") : osname;
  const bool core = d.server_core;
  if (!classify_windows(d) && !accept_newer_release(d)) {
    return r.fail(fmt::format("{}.osBuild", path), fmt::format("unknown Windows build {}", build));
  }
  d.server_core = d.server_core || core;
  auto kbs = r.array(o, "installedKbs", path);
  if (!kbs) return kbs.error();
  if (*kbs) {
    for (std::size_t i = 0; i < (*kbs)->size(); ++i) {
      const json::value& k = (**kbs)[i];
      KbNumber kb = k.is_string() ? kb_of(k.as_string()) : 0;
      if (kb == 0) {
        return r.fail(fmt::format("{}.installedKbs[{}]", path, i), "expected \"KB1234567\"");
      }
      d.installed_kbs.push_back(kb);
    }
  }
  auto software = r.array(o, "software", path);
  if (!software) return software.error();
  if (*software) {
    for (std::size_t i = 0; i < (*software)->size(); ++i) {
      const std::string item = fmt::format("{}.software[{}]", path, i);
      const json::value& s = (**software)[i];
      if (!s.is_object()) return r.fail(item, "expected an object");
      InstalledSoftware sw;
      std::string arch;
      for (auto [key, field] :
           {std::pair{"name", &sw.name}, std::pair{"vendor", &sw.vendor},
            std::pair{"version", &sw.version}, std::pair{"architecture", &arch}}) {
        auto value = r.string(s.as_object(), key, item);
        if (!value) return value.error();
        *field = std::move(*value);
      }
      sw.architecture = architecture_of(arch);
      if (!arch.empty() && sw.architecture == Architecture::kUnknown) {
        return r.fail(item + ".architecture", "expected x64, x86, arm64 or itanium");
      }
      // An update listed as a program ("Security Update for Microsoft Word 2016 (KB4461543)
      // 64-Bit Edition"): an installed KB.
      if (KbNumber kb = update_kb(sw.name)) {
        d.installed_kbs.push_back(kb);
        continue;
      }
      d.software.push_back(std::move(sw));
    }
  }
  auto tags = r.array(o, "tags", path);
  if (!tags) return tags.error();
  if (*tags) {
    for (std::size_t i = 0; i < (*tags)->size(); ++i) {
      if (!(**tags)[i].is_string()) {
        return r.fail(fmt::format("{}.tags[{}]", path, i), "expected a string");
      }
      d.tags.emplace_back((**tags)[i].as_string());
    }
  }
  // Addresses as strings, or as Defender's IpAddress objects ({"ipAddress": "10.0.0.4", ...}).
  auto ips = r.array(o, "ipAddresses", path);
  if (!ips) return ips.error();
  if (*ips) {
    for (std::size_t i = 0; i < (*ips)->size(); ++i) {
      const json::value& a = (**ips)[i];
      const json::value* text = &a;
      if (a.is_object()) {
        auto it = a.as_object().find("ipAddress");
        text = it == a.as_object().end() ? nullptr : &it->value();
      }
      auto ip = text && text->is_string() ? canonical_ip(text->as_string()) : std::nullopt;
      if (!ip) {
        return r.fail(fmt::format("{}.ipAddresses[{}]", path, i),
                      "expected an IPv4 or IPv6 address like \"10.0.0.4\"");
      }
      if (std::find(d.ip_addresses.begin(), d.ip_addresses.end(), *ip) == d.ip_addresses.end())
        d.ip_addresses.push_back(std::move(*ip));
    }
  }
  KBGAP_TRY(text("agentVersion", d.agent_version));
  std::string identity = to_lower(d.computer_dns_name);
  finish_device(d, identity);
  return inv;
}

// osquery tables: the rows of one table, or nullptr.
const json::array* table(const json::object& o, std::string_view name) {
  auto it = o.find(name);
  return it != o.end() && it->value().is_array() ? &it->value().as_array() : nullptr;
}

std::string column(const json::value& row, std::string_view key) {
  if (!row.is_object()) return "";
  auto it = row.as_object().find(key);
  if (it == row.as_object().end()) return "";
  if (it->value().is_string()) return std::string(it->value().as_string());
  if (it->value().is_int64()) return std::to_string(it->value().as_int64());
  return "";
}

}  // namespace

json::object device_json(const Device& d) {
  json::object o;
  o["id"] = d.id;
  o["computerDnsName"] = d.computer_dns_name;
  o["osName"] = d.os_name;
  // The revision only when the inventory gave it: an inferred one is inferred again.
  o["osBuild"] = d.revision && !d.revision_inferred
                     ? fmt::format("{}.{}.{}.{}", d.major, d.minor, d.build, *d.revision)
                     : fmt::format("{}.{}.{}", d.major, d.minor, d.build);
  o["osArchitecture"] = architecture_name(d.architecture);
  if (!d.edition.empty()) o["edition"] = d.edition;
  if (!d.service_pack.empty()) o["servicePack"] = d.service_pack;
  o["serverCore"] = d.server_core;
  o["azureEdition"] = d.azure_edition;
  o["hotpatch"] = d.hotpatch_enrolled;
  json::array kbs;
  for (KbNumber kb : d.installed_kbs) kbs.emplace_back(fmt::format("KB{}", kb));
  o["installedKbs"] = std::move(kbs);
  json::array software;
  for (const InstalledSoftware& sw : d.software) {
    json::object entry{{"name", sw.name}, {"vendor", sw.vendor}, {"version", sw.version}};
    if (sw.architecture != Architecture::kUnknown) {
      entry["architecture"] = architecture_name(sw.architecture);
    }
    software.emplace_back(std::move(entry));
  }
  o["software"] = std::move(software);
  if (!d.first_seen.empty()) o["firstSeen"] = d.first_seen;
  if (!d.last_seen.empty()) o["lastSeen"] = d.last_seen;
  json::array tags;
  for (const std::string& t : d.tags) tags.emplace_back(t);
  o["tags"] = std::move(tags);
  if (!d.ip_addresses.empty()) {
    json::array ips;
    for (const std::string& ip : d.ip_addresses) ips.emplace_back(ip);
    o["ipAddresses"] = std::move(ips);
  }
  if (!d.agent_version.empty()) o["agentVersion"] = d.agent_version;
  return o;
}

bool looks_like_uninstall_list(std::string_view text) {
  return text.find("\"DisplayName\"") != std::string_view::npos &&
         (text.find("\"PSChildName\"") != std::string_view::npos ||
          text.find("\"PSPath\"") != std::string_view::npos);
}

Result<std::vector<Inventory>> parse_uninstall_list(std::string_view text,
                                                    std::string_view source) {
  auto doc = parse(text, source, {});
  if (!doc) return doc.error();
  Reader r(source);
  Inventory inv;
  inv.format = InventoryFormat::kUninstallList;
  inv.has_os = false;
  Device& d = inv.device;
  d.source = std::string(source);
  json::array one;
  const json::array* entries = nullptr;
  if (doc->is_array()) {
    entries = &doc->as_array();
  } else if (doc->is_object()) {
    one.push_back(*doc);  // ConvertTo-Json writes a single entry as an object
    entries = &one;
  } else {
    return r.fail("$", "expected the entries of the Uninstall keys (an array of objects)");
  }
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const std::string item = fmt::format("$[{}]", i);
    if (!(*entries)[i].is_object()) return r.fail(item, "expected an object");
    const json::object& e = (*entries)[i].as_object();
    std::string fields[7];
    const char* keys[7] = {"DisplayName", "DisplayVersion", "Publisher",     "PSChildName",
                           "PSPath",      "ParentKeyName",  "PSComputerName"};
    for (int k = 0; k < 7; ++k) {
      auto value = r.string(e, keys[k], item);
      if (!value) return value.error();
      fields[k] = std::move(*value);
    }
    const auto& [name, version, publisher, key, path, parent, computer] = fields;
    if (!computer.empty()) {
      if (!d.computer_dns_name.empty() && to_lower(d.computer_dns_name) != to_lower(computer)) {
        return r.fail(item + ".PSComputerName",
                      fmt::format("entries of two computers ('{}', '{}'): give one file per "
                                  "computer",
                                  d.computer_dns_name, computer));
      }
      d.computer_dns_name = computer;
    }
    if (name.empty()) continue;  // a key without a name is not shown as installed
    // Updates: of a product (ParentKeyName, "Office16.PROPLUS") or standalone ("KB2468871").
    KbNumber kb = update_kb(name);
    if (kb == 0 && !parent.empty()) kb = kb_of(key);
    if (kb == 0 && to_lower(key).starts_with("kb")) kb = kb_of("KB" + key.substr(2));
    if (kb != 0) {
      d.installed_kbs.push_back(kb);
      continue;
    }
    if (!parent.empty()) continue;  // an update without a KB number
    InstalledSoftware sw{name, publisher, version, software_architecture(key, "")};
    const std::string lower_path = to_lower(path);
    if (sw.architecture == Architecture::kUnknown &&
        lower_path.find("\\wow6432node\\") != std::string::npos) {
      sw.architecture = Architecture::kX86;
    } else if (!path.empty() && lower_path.find("wow6432node") == std::string::npos) {
      inv.native_software.push_back(static_cast<std::uint32_t>(d.software.size()));
    }
    d.software.push_back(std::move(sw));
  }
  std::vector<Inventory> out;
  out.push_back(std::move(inv));
  return out;
}

bool looks_like_osquery(std::string_view text) {
  return text.find("\"os_version\"") != std::string_view::npos;
}

Result<std::vector<Inventory>> parse_kbgap_json(std::string_view text, std::string_view source,
                                                TimeFields times,
                                                boost::json::storage_ptr storage) {
  auto doc = parse(text, source, std::move(storage));
  if (!doc) return doc.error();
  Reader r(source);
  std::vector<Inventory> out;
  const json::array* devices = nullptr;
  if (doc->is_array()) {
    devices = &doc->as_array();
  } else if (doc->is_object() && doc->as_object().contains("devices")) {
    auto a = r.array(doc->as_object(), "devices", "$");
    if (!a) return a.error();
    devices = *a;
  } else {
    auto one = read_device(*doc, "$", r, source, times);
    if (!one) return one.error();
    out.push_back(std::move(*one));
    return out;
  }
  if (devices == nullptr || devices->empty()) {
    return invalid_input(fmt::format("{}: no device in the inventory", source));
  }
  for (std::size_t i = 0; i < devices->size(); ++i) {
    auto one = read_device((*devices)[i], fmt::format("devices[{}]", i), r, source, times);
    if (!one) return one.error();
    out.push_back(std::move(*one));
  }
  return out;
}

Result<std::vector<Inventory>> parse_osquery_json(std::string_view text, std::string_view source) {
  auto doc = parse(text, source);
  if (!doc) return doc.error();
  if (!doc->is_object()) {
    return invalid_input(fmt::format(
        "{}: expected an object of osquery tables ({{\"os_version\": [...], ...}})", source));
  }
  const json::object& o = doc->as_object();
  const json::array* os = table(o, "os_version");
  if (os == nullptr || os->empty()) {
    return invalid_input(fmt::format("{}: os_version: required, with one row", source));
  }
  Inventory inv;
  inv.format = InventoryFormat::kOsqueryJson;
  Device& d = inv.device;
  d.source = std::string(source);
  const json::value& row = os->front();
  d.os_name = column(row, "name");
  if (d.os_name.empty()) d.os_name = "Microsoft Windows";  // as kbgap JSON reads a missing osName
  std::string version = column(row, "version");            // "10.0.19045"
  std::string revision = column(row, "revision");
  if (!revision.empty() && std::all_of(revision.begin(), revision.end(), ::isdigit) &&
      std::count(version.begin(), version.end(), '.') == 2) {
    version = fmt::format("{}.{}", version, revision);
  }
  if (!set_build(d, version)) {
    return invalid_input(
        fmt::format("{}: os_version.version: expected a Windows build like 10.0.19045, not '{}'",
                    source, version));
  }
  d.architecture = architecture_of(column(row, "arch"));
  if (const json::array* info = table(o, "system_info"); info && !info->empty()) {
    d.computer_dns_name = column(info->front(), "hostname");
    if (d.computer_dns_name.empty()) d.computer_dns_name = column(info->front(), "computer_name");
    if (d.architecture == Architecture::kUnknown) {
      d.architecture = architecture_of(column(info->front(), "cpu_type"));
    }
  }
  if (d.computer_dns_name.empty()) {
    return invalid_input(fmt::format("{}: system_info.hostname: required", source));
  }
  // Needed to evaluate and to store the device (kbgap JSON requires it too).
  if (d.architecture == Architecture::kUnknown) {
    return invalid_input(fmt::format(
        "{}: os_version.arch: expected x86_64, x86, ARM64 (or system_info.cpu_type), not '{}'",
        source, column(row, "arch").substr(0, 40)));
  }
  if (!classify_windows(d) && !accept_newer_release(d)) {
    return invalid_input(fmt::format("{}: os_version: unknown Windows build {}", source, version));
  }
  if (const json::array* patches = table(o, "patches")) {
    for (const json::value& p : *patches) {
      if (KbNumber kb = kb_of(column(p, "hotfix_id"))) d.installed_kbs.push_back(kb);
    }
  }
  if (const json::array* history = table(o, "windows_update_history")) {
    for (const json::value& h : *history) {
      // result_code 2 is "succeeded" (also 3, "succeeded with errors"); other rows did not install.
      const std::string result = column(h, "result_code");
      if (!result.empty() && result != "2" && result != "3") continue;
      if (KbNumber kb = kb_of(column(h, "title"))) d.installed_kbs.push_back(kb);
    }
  }
  if (const json::array* programs = table(o, "programs")) {
    for (const json::value& p : *programs) {
      const std::string name = column(p, "name");
      if (KbNumber kb = update_kb(name)) {  // an update listed among programs
        d.installed_kbs.push_back(kb);
        continue;
      }
      d.software.push_back(
          {name, column(p, "publisher"), column(p, "version"),
           software_architecture(column(p, "identifying_number"), column(p, "install_location"))});
    }
  }
  if (const json::array* addresses = table(o, "interface_addresses")) {
    for (const json::value& a : *addresses) {
      auto ip = canonical_ip(column(a, "address"));
      if (ip &&
          std::find(d.ip_addresses.begin(), d.ip_addresses.end(), *ip) == d.ip_addresses.end()) {
        d.ip_addresses.push_back(std::move(*ip));
      }
    }
  }
  if (const json::array* info = table(o, "osquery_info"); info && !info->empty()) {
    d.agent_version = column(info->front(), "version");
  }
  std::string identity = to_lower(d.computer_dns_name);
  if (const json::array* info = table(o, "system_info"); info && !info->empty()) {
    identity = fmt::format("{}\n{}", identity, column(info->front(), "uuid"));
  }
  finish_device(d, identity);
  std::vector<Inventory> out;
  out.push_back(std::move(inv));
  return out;
}

}  // namespace kbgap::inventory
