#include "app/serve_command.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "app/catalog_loader.h"
#include "app/cli_error.h"
#include "app/data_dir.h"
#include "auth/jwt.h"
#include "server/api.h"
#include "server/http_server.h"
#include "server/service.h"

namespace kbgap::app {
namespace {

std::filesystem::path signing_key_path(const std::string& data_dir) {
  return std::filesystem::path(data_dir) / "keys" / "signing-key.pem";
}

// "90", "90s", "15m", "1h", "7d" -> seconds; nullopt otherwise.
std::optional<std::int64_t> parse_ttl(std::string_view s) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || n <= 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  if (unit.empty() || unit == "s") return n;
  if (unit == "m") return n * 60;
  if (unit == "h") return n * 3600;
  if (unit == "d") return n * 86400;
  return std::nullopt;
}

}  // namespace

int run_token(const TokenOptions& options) {
  const auto ttl = parse_ttl(options.ttl);
  if (!ttl || *ttl > 366 * 86400) {
    std::fprintf(stderr, "kbgap: --ttl must be like 90s, 15m, 1h or 7d (at most 366d), not '%s'\n",
                 options.ttl.c_str());
    return kExitUsage;
  }
  auto key = auth::SigningKey::load_or_create(signing_key_path(options.data_dir));
  if (!key) return report(key.error());
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  boost::json::array roles;
  for (const std::string& r : options.roles) roles.emplace_back(r);
  const boost::json::object claims{
      {"iss", kSelfIssuer},   {"aud", kDefenderAudience}, {"sub", options.app},
      {"appid", options.app}, {"tid", "kbgap"},           {"iat", now},
      {"nbf", now},           {"exp", now + *ttl},        {"roles", std::move(roles)}};
  fmt::print("{}\n", key->sign(claims));
  return kExitOk;
}

int run_serve(const ServeOptions& options) {
  server::HttpOptions http;
  const auto colon = options.listen.rfind(':');
  unsigned port = 0;
  if (colon == std::string::npos ||
      std::from_chars(options.listen.data() + colon + 1,
                      options.listen.data() + options.listen.size(), port)
              .ec != std::errc() ||
      port > 65535) {
    std::fprintf(stderr, "kbgap: --listen must be ADDRESS:PORT, not '%s'\n",
                 options.listen.c_str());
    return kExitUsage;
  }
  http.address = options.listen.substr(0, colon);
  http.port = static_cast<std::uint16_t>(port);
  http.threads = options.threads;
  http.access_log = !options.quiet;

  auto catalog = load_catalog_index(options.data_dir);
  if (!catalog) return report(catalog.error());
  auto devices = open_device_store(options.data_dir);
  if (!devices) return report(devices.error());
  auto key = auth::SigningKey::load_or_create(signing_key_path(options.data_dir));
  if (!key) return report(key.error());
  auto keys = auth::KeySet::from_jwks(key->jwks(), "kbgap's own key");
  if (!keys) return report(keys.error());
  std::vector<auth::Issuer> issuers;
  issuers.push_back({kSelfIssuer,
                     {kDefenderAudience, "https://api.security.microsoft.com"},
                     std::make_shared<auth::KeySet>(std::move(*keys))});

  server::Service service(std::make_shared<const engine::CatalogIndex>(std::move(*catalog)),
                          std::move(*devices), options.threads);
  auto view = service.view();
  if (!view) return report(view.error());
  server::ApiOptions api_options;
  server::Api api(service, auth::Verifier(std::move(issuers), api_options.leeway_seconds),
                  api_options);
  server::HttpServer server(api, http);
  if (auto started = server.start(); !started) return report(started.error());
  if (!options.port_file.empty()) {
    std::ofstream(options.port_file + ".tmp") << server.port() << "\n";
    std::filesystem::rename(options.port_file + ".tmp", options.port_file);
  }
  std::fprintf(stderr, "kbgap: serving %zu devices on http://%s:%u (stop with Ctrl-C)\n",
               (*view)->devices().size(), http.address.c_str(), server.port());
  server.run();
  std::fprintf(stderr, "kbgap: stopped\n");
  return kExitOk;
}

}  // namespace kbgap::app
