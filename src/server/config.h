// `kbgap serve` configuration: defaults, then a TOML file, then environment variables
// (KBGAP_<SECTION>_<KEY>), then command-line flags. README "Configuration" lists every key.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "server/api.h"
#include "server/http_server.h"

namespace kbgap::server {

struct IssuerConfig {
  std::string issuer;
  std::string jwks_file;               // a JWKS document on disk
  std::string jwks_url;                // or fetched (http or https) and refreshed hourly
  std::vector<std::string> audiences;  // empty: auth.audiences
  std::string tenant;                  // every token's tenant; "": its tid (docs/api.md, "Tenants")
};

// [catalog]: keeping the catalog current from MSRC (or a mirror) while serving.
struct CatalogConfig {
  std::chrono::seconds sync_interval{24 * 3600};  // 0: never sync
  std::string source;                             // "" for MSRC's CVRF API
  std::string ca_file;                            // a mirror's private CA
};

// [storage]: where the catalog and the devices are kept (app/data_dir.h).
struct StorageConfig {
  std::string url;  // "" for the SQLite file of the data directory; postgresql://...
};

struct Config {
  StorageConfig storage;
  CatalogConfig catalog;
  HttpOptions http;
  ApiOptions api;
  bool self_issuer = true;  // accept tokens minted by `kbgap token` on this data directory
  // Defender's audiences: its documentation's, the unified one, the one older app
  // registrations (the Azure Sentinel playbooks) ask tokens for, and the one of the Logic Apps
  // connector's managed identity.
  std::vector<std::string> audiences = {"https://api.securitycenter.microsoft.com",
                                        "https://api.security.microsoft.com",
                                        "https://api.securitycenter.windows.com",
                                        "https://securitycenter.onmicrosoft.com/windowsatpservice"};
  std::vector<IssuerConfig> issuers;
};

// "ADDRESS:PORT" into the options; false when it is not that.
bool set_listen(HttpOptions& http, std::string_view listen);

// Reads `path` (empty: none) over the defaults, then the environment `env` (KBGAP_* entries).
// Errors name the file and line, or the variable: "kbgap.toml:12: unknown key server.listn".
Result<Config> load_config(const std::string& path, const std::map<std::string, std::string>& env);

// The KBGAP_* variables of this process.
std::map<std::string, std::string> kbgap_environment();

}  // namespace kbgap::server
