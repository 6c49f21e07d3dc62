// The configuration file (TOML, toml++) and its environment variables.
#include "server/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <charconv>
#include <cstdlib>
#include <functional>

#include "inventory/device.h"

extern char** environ;

namespace kbgap::server {
namespace {

// One settable key: how to set it from a TOML value or from an environment string.
struct Key {
  std::string name;  // "server.listen"
  std::function<Result<void>(const toml::node&)> from_toml;
  std::function<Result<void>(std::string_view)> from_text;
};

Result<void> type_error(std::string_view key, std::string_view expected) {
  return invalid_input(fmt::format("{}: expected {}", key, expected));
}

// A whole number in min..max; `what` names it in errors ("a whole number of seconds").
template <typename T>
Key integer_key(std::string name, T& target, long long min, long long max,
                const char* what = "a whole number") {
  Key k;
  k.name = name;
  auto set = [name, &target, min, max](long long v) -> Result<void> {
    if (v < min || v > max) {
      return invalid_input(fmt::format("{}: {} is outside {}..{}", name, v, min, max));
    }
    target = static_cast<T>(v);
    return ok_result();
  };
  k.from_toml = [name, set, what](const toml::node& n) -> Result<void> {
    auto v = n.value<long long>();
    if (!v || !n.is_integer()) return type_error(name, what);
    return set(*v);
  };
  k.from_text = [name, set, what](std::string_view s) -> Result<void> {
    long long v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return type_error(name, what);
    return set(v);
  };
  return k;
}

Key seconds_key(std::string name, std::chrono::seconds& target) {
  return integer_key(std::move(name), target, 1, 3600, "a whole number of seconds");
}

Key string_key(std::string name, std::string& target) {
  Key k;
  k.name = name;
  k.from_toml = [name, &target](const toml::node& n) -> Result<void> {
    if (!n.is_string()) return type_error(name, "a string");
    target = *n.value<std::string>();
    return ok_result();
  };
  k.from_text = [&target](std::string_view s) -> Result<void> {
    target = std::string(s);
    return ok_result();
  };
  return k;
}

Key bool_key(std::string name, bool& target) {
  Key k;
  k.name = name;
  k.from_toml = [name, &target](const toml::node& n) -> Result<void> {
    if (!n.is_boolean()) return type_error(name, "true or false");
    target = *n.value<bool>();
    return ok_result();
  };
  k.from_text = [name, &target](std::string_view s) -> Result<void> {
    if (s == "true" || s == "1") {
      target = true;
    } else if (s == "false" || s == "0") {
      target = false;
    } else {
      return type_error(name, "true or false");
    }
    return ok_result();
  };
  return k;
}

Key strings_key(std::string name, std::vector<std::string>& target) {
  Key k;
  k.name = name;
  k.from_toml = [name, &target](const toml::node& n) -> Result<void> {
    const toml::array* a = n.as_array();
    if (!a) return type_error(name, "an array of strings");
    std::vector<std::string> out;
    for (const toml::node& item : *a) {
      if (!item.is_string()) return type_error(name, "an array of strings");
      out.push_back(*item.value<std::string>());
    }
    target = std::move(out);
    return ok_result();
  };
  k.from_text = [&target](std::string_view s) -> Result<void> {  // comma-separated
    std::vector<std::string> out;
    while (!s.empty()) {
      const auto comma = s.find(',');
      if (const auto item = s.substr(0, comma); !item.empty()) out.emplace_back(item);
      s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    }
    target = std::move(out);
    return ok_result();
  };
  return k;
}

std::string listen_of(const HttpOptions& http) {
  return fmt::format("{}:{}", http.address, http.port);
}

std::string env_name(std::string_view key) {
  std::string out = "KBGAP_";
  for (char c : key) out.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(c)));
  return out;
}

}  // namespace

bool set_listen(HttpOptions& http, std::string_view listen) {
  const auto colon = listen.rfind(':');
  unsigned port = 0;
  if (colon == std::string_view::npos || colon == 0) return false;
  auto [end, ec] = std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port);
  if (ec != std::errc() || end != listen.data() + listen.size() || port > 65535) return false;
  http.address = std::string(listen.substr(0, colon));
  http.port = static_cast<std::uint16_t>(port);
  return true;
}

std::map<std::string, std::string> kbgap_environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos && entry.starts_with("KBGAP_")) {
      out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    }
  }
  return out;
}

// The tables of an array of tables ([[auth.issuers]], [[machine_groups]]), each read by the keys
// `make(item)` names; `done(item, table)` checks and keeps one. `name` is the array's full name.
template <typename Item>
Result<void> read_tables(const toml::node& node, std::string_view name,
                         const std::function<std::string(const toml::node&)>& where,
                         const std::function<std::vector<Key>(Item&)>& make,
                         const std::function<Result<void>(Item&, const toml::node&)>& done) {
  const toml::array* list = node.as_array();
  if (!list)
    return invalid_input(fmt::format("{}: {}: expected [[{}]] tables", where(node), name, name));
  for (const toml::node& entry : *list) {
    const toml::table* t = entry.as_table();
    if (!t) return invalid_input(fmt::format("{}: {}: expected a table", where(entry), name));
    Item item;
    std::vector<Key> fields = make(item);
    for (auto&& [key, v] : *t) {
      const std::string_view key_name = key.str();  // clang < 16: no binding captures
      auto f = std::find_if(fields.begin(), fields.end(),
                            [&](const Key& k) { return k.name == key_name; });
      if (f == fields.end()) {
        return invalid_input(fmt::format("{}: unknown key {}.{}", where(v), name, key.str()));
      }
      if (auto set = f->from_toml(v); !set) {
        return invalid_input(fmt::format("{}: {}.{}", where(v), name, set.error().message));
      }
    }
    KBGAP_TRY(done(item, entry));
  }
  return ok_result();
}

Result<Config> load_config(const std::string& path, const std::map<std::string, std::string>& env) {
  Config c;
  std::string listen = listen_of(c.http);
  std::vector<Key> keys;
  keys.push_back(string_key("server.listen", listen));
  keys.push_back(integer_key("server.threads", c.http.threads, 0, 256));
  keys.push_back(string_key("server.public_url", c.api.public_url));
  keys.push_back(integer_key("server.max_header_bytes", c.http.max_header_bytes, 1024, 1 << 20));
  keys.push_back(integer_key("server.max_body_bytes", c.http.max_body_bytes, 1024, 1ll << 32));
  keys.push_back(seconds_key("server.request_timeout_seconds", c.http.request_timeout));
  keys.push_back(seconds_key("server.idle_timeout_seconds", c.http.idle_timeout));
  keys.push_back(bool_key("server.access_log", c.http.access_log));
  keys.push_back(integer_key("server.max_connections", c.http.max_connections, 0, 1 << 24));
  keys.push_back(integer_key("catalog.sync_interval", c.catalog.sync_interval, 0, 366 * 86400,
                             "a whole number of seconds (0: never)"));
  keys.push_back(string_key("storage.url", c.storage.url));
  keys.push_back(string_key("catalog.source", c.catalog.source));
  keys.push_back(string_key("catalog.ca_file", c.catalog.ca_file));
  keys.push_back(integer_key("api.max_batch_devices", c.api.max_batch_devices, 1, 1000000));
  keys.push_back(integer_key("auth.leeway_seconds", c.api.leeway_seconds, 0, 600));
  keys.push_back(bool_key("auth.self_issuer", c.self_issuer));
  keys.push_back(strings_key("auth.audiences", c.audiences));
  for (auto [group, limit] :
       {std::pair{"machines", &c.api.machines}, std::pair{"software", &c.api.software},
        std::pair{"vulnerabilities", &c.api.vulnerabilities}, std::pair{"exports", &c.api.exports},
        std::pair{"export_files", &c.api.export_files}}) {
    keys.push_back(integer_key(fmt::format("rate_limits.{}_per_minute", group), limit->per_minute,
                               0, 1000000000));
    keys.push_back(
        integer_key(fmt::format("rate_limits.{}_per_hour", group), limit->per_hour, 0, 1000000000));
  }

  if (!path.empty()) {
    toml::table table;
    try {
      table = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      return invalid_input(fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
    }
    std::function<std::string(const toml::node&)> where = [&](const toml::node& n) {
      return fmt::format("{}:{}", path, n.source().begin.line);
    };
    for (auto&& [section, value] : table) {
      if (section == "auth" && value.is_table()) {
        if (const toml::node* issuers = value.as_table()->get("issuers")) {
          KBGAP_TRY(read_tables<IssuerConfig>(
              *issuers, "auth.issuers", where,
              [](IssuerConfig& issuer) {
                return std::vector<Key>{string_key("issuer", issuer.issuer),
                                        string_key("jwks_file", issuer.jwks_file),
                                        string_key("jwks_url", issuer.jwks_url),
                                        strings_key("audiences", issuer.audiences),
                                        string_key("tenant", issuer.tenant)};
              },
              [&](IssuerConfig& issuer, const toml::node& item) -> Result<void> {
                if (!issuer.tenant.empty() && !inventory::valid_tenant(issuer.tenant)) {
                  return invalid_input(fmt::format(
                      "{}: [[auth.issuers]] tenant '{}' is not a tenant name ({})", where(item),
                      issuer.tenant.substr(0, 40), inventory::kTenantRule));
                }
                if (issuer.issuer.empty() || issuer.jwks_file.empty() == issuer.jwks_url.empty()) {
                  return invalid_input(fmt::format(
                      "{}: an [[auth.issuers]] needs issuer and one of jwks_file or jwks_url",
                      where(item)));
                }
                c.issuers.push_back(std::move(issuer));
                return ok_result();
              }));
        }
      }
      if (section == "machine_groups") {
        KBGAP_TRY(read_tables<api::MachineGroup>(
            value, "machine_groups", where,
            [](api::MachineGroup& group) {
              return std::vector<Key>{integer_key("id", group.id, 1, 1ll << 40),
                                      string_key("name", group.name), string_key("tag", group.tag)};
            },
            [&](api::MachineGroup& group, const toml::node& item) -> Result<void> {
              if (group.name.empty() || group.tag.empty()) {
                return invalid_input(
                    fmt::format("{}: a [[machine_groups]] needs a name and the tag of its devices",
                                where(item)));
              }
              if (group.id == 0) {  // the next number after those taken
                group.id = 1;
                for (const api::MachineGroup& other : c.api.machine_groups) {
                  group.id = std::max(group.id, other.id + 1);
                }
              }
              for (const api::MachineGroup& other : c.api.machine_groups) {
                if (other.name == group.name) {
                  return invalid_input(fmt::format("{}: machine group '{}' is named twice",
                                                   where(item), group.name));
                }
                if (other.id == group.id) {
                  return invalid_input(
                      fmt::format("{}: machine groups '{}' and '{}' have one id, {}", where(item),
                                  other.name, group.name, group.id));
                }
              }
              c.api.machine_groups.push_back(std::move(group));
              return ok_result();
            }));
        continue;
      }
      const toml::table* t = value.as_table();
      if (!t) return invalid_input(fmt::format("{}: unknown key {}", where(value), section.str()));
      for (auto&& [name, v] : *t) {
        const std::string full = fmt::format("{}.{}", section.str(), name.str());
        if (full == "auth.issuers") continue;
        auto k = std::find_if(keys.begin(), keys.end(),
                              [&](const Key& key) { return key.name == full; });
        if (k == keys.end())
          return invalid_input(fmt::format("{}: unknown key {}", where(v), full));
        if (auto set = k->from_toml(v); !set) {
          return invalid_input(fmt::format("{}: {}", where(v), set.error().message));
        }
      }
    }
  }

  // Environment variables win over the file.
  for (const Key& k : keys) {
    auto it = env.find(env_name(k.name));
    if (it == env.end()) continue;
    if (auto set = k.from_text(it->second); !set) {
      return invalid_input(fmt::format("{}: {}", it->first, set.error().message));
    }
  }
  IssuerConfig from_env;
  for (auto [name, field] : {std::pair{"KBGAP_AUTH_ISSUER", &from_env.issuer},
                             std::pair{"KBGAP_AUTH_JWKS_FILE", &from_env.jwks_file},
                             std::pair{"KBGAP_AUTH_JWKS_URL", &from_env.jwks_url}}) {
    if (auto it = env.find(name); it != env.end()) *field = it->second;
  }
  if (!from_env.issuer.empty() || !from_env.jwks_file.empty() || !from_env.jwks_url.empty()) {
    if (from_env.issuer.empty() || from_env.jwks_file.empty() == from_env.jwks_url.empty()) {
      return invalid_input(
          "KBGAP_AUTH_ISSUER needs one of KBGAP_AUTH_JWKS_FILE or KBGAP_AUTH_JWKS_URL");
    }
    c.issuers.push_back(std::move(from_env));
  }
  if (!set_listen(c.http, listen)) {
    return invalid_input(fmt::format("server.listen: expected ADDRESS:PORT, not '{}'", listen));
  }
  for (IssuerConfig& i : c.issuers) {
    if (i.audiences.empty()) i.audiences = c.audiences;
  }
  return c;
}

}  // namespace kbgap::server
