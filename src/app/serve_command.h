// `kbgap serve` (the Defender-compatible API) and `kbgap token` (tokens of kbgap's own issuer).
#pragma once

#include <string>
#include <vector>

#include "inventory/device.h"

namespace kbgap::app {

struct ServeOptions {
  std::string data_dir;
  std::string config;     // a TOML file, or "" (KBGAP_CONFIG)
  std::string listen;     // overrides server.listen when set
  std::string port_file;  // when set, the bound port is written there (for --listen host:0)
  int threads = -1;       // overrides server.threads when >= 0
  bool quiet = false;     // no access log
};

struct TokenOptions {
  std::string data_dir;
  std::vector<std::string> roles;
  std::string ttl = "1h";
  std::string app = "kbgap-cli";
  std::string tenant = std::string(inventory::kDefaultTenant);
};

// kbgap's own issuer: the `iss` of the tokens `kbgap token` mints, and the audience they carry.
inline constexpr const char* kSelfIssuer = "kbgap";
inline constexpr const char* kDefenderAudience = "https://api.securitycenter.microsoft.com";

int run_serve(const ServeOptions& options);
int run_token(const TokenOptions& options);

}  // namespace kbgap::app
