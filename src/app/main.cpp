// kbgap's command line: one binary, subcommands per docs/api.md §9.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "app/catalog_commands.h"
#include "app/cli_error.h"
#include "app/data_dir.h"
#include "app/devices_command.h"
#include "app/scan_command.h"
#include "app/serve_command.h"

namespace kbgap::app {

namespace {

std::string default_data_dir() {
  const char* env = std::getenv("KBGAP_DATA");
  return env != nullptr && *env != '\0' ? env : kDefaultDataDir;
}

int run(int argc, char** argv) {
  CLI::App app{"kbgap: which security updates each Windows device is missing, and what they fix"};
  app.require_subcommand(1);
  app.set_version_flag("--version", KBGAP_VERSION);
  std::string data_dir = default_data_dir();
  app.add_option("--data", data_dir, "data directory (env KBGAP_DATA)")->capture_default_str();

  CLI::App* catalog = app.add_subcommand("catalog", "the MSRC security-update catalog");
  catalog->require_subcommand(1);
  catalog->fallthrough();  // global options such as --data may follow the subcommand

  CatalogImportOptions import_options;
  CLI::App* import = catalog->add_subcommand(
      "import", "import MSRC CVRF XML documents (files, directories, .tar.zst archives)");
  import->fallthrough();
  import->add_option("paths", import_options.paths, "CVRF XML files, directories or .tar.zst")
      ->required();

  // What `catalog sync` and `catalog fetch` share: where from, and how to fetch.
  auto add_fetch_options = [](CLI::App* command, CatalogSyncOptions& o) {
    command->fallthrough();
    command
        ->add_option("--source", o.source,
                     "the CVRF API's base URL (default https://api.msrc.microsoft.com/cvrf/v3.0; "
                     "env KBGAP_CATALOG_SOURCE)")
        ->envname("KBGAP_CATALOG_SOURCE");
    command
        ->add_option("--attempts", o.attempts, "tries per request on 429, 5xx and broken transfers")
        ->check(CLI::Range(1, 20))
        ->capture_default_str();
    command->add_option("--timeout", o.timeout_seconds, "seconds for one request")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    command->add_option("--connect-timeout", o.connect_timeout_seconds, "seconds to connect")
        ->check(CLI::Range(1, 600))
        ->capture_default_str();
    command
        ->add_option("--ca-file", o.ca_file,
                     "PEM certificate authorities to trust instead of the system's (a mirror's)")
        ->check(CLI::ExistingFile);
  };
  CatalogSyncOptions sync_options;
  CLI::App* sync = catalog->add_subcommand(
      "sync", "fetch the months that are new or revised from MSRC's CVRF API (or a mirror)");
  add_fetch_options(sync, sync_options);
  sync->add_flag("--all", sync_options.all, "fetch every listed month, not only the new ones");
  CatalogSyncOptions fetch_options;
  CLI::App* fetch = catalog->add_subcommand(
      "fetch", "fetch every month into a .tar.zst for `catalog import` on a machine offline");
  add_fetch_options(fetch, fetch_options);
  fetch->add_option("--out", fetch_options.out, "the .tar.zst archive to write")->required();

  CatalogDiffOptions diff_options;
  CLI::App* diff = catalog->add_subcommand(
      "diff", "what imports and syncs changed: new KBs, supersedence, fixed builds, products");
  diff->fallthrough();
  diff->add_option("month", diff_options.month,
                   "a month (2026-Nov): its imports; default: the newest import day's");
  diff->add_option("--since", diff_options.since, "the imports from this day (YYYY-MM-DD) on");
  diff->add_flag("--full", diff_options.full, "every item, not the first 25 of each kind");
  diff->add_option("--format", diff_options.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  CatalogStatsOptions stats_options;
  CLI::App* stats = catalog->add_subcommand("stats", "counts of the catalog's contents");
  stats->fallthrough();
  stats->add_option("--format", stats_options.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  CatalogLineOptions line_options;
  CLI::App* line = catalog->add_subcommand(
      "line", "how kbgap reads a product's servicing: its cumulative updates in order");
  line->fallthrough();
  line->add_option("product", line_options.product,
                   "a product name as MSRC writes it, e.g. \"Windows Server 2012 R2\"")
      ->required();
  line->add_option("--as-of", line_options.as_of, "only the updates released by this date");

  ScanOptions scan_options;
  CLI::App* scan = app.add_subcommand(
      "scan", "offline: the security updates each inventoried device is missing");
  scan->fallthrough();
  scan->add_option("inventories", scan_options.inventories,
                   "systeminfo, wmic qfe / Get-HotFix, kbgap JSON or osquery JSON files")
      ->required();
  scan->add_option("--as-of", scan_options.as_of,
                   "judge with only the updates released by this date (YYYY-MM-DD)");
  scan->add_option("--format", scan_options.format, "table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();
  scan->add_flag("--timings", scan_options.timings,
                 "print where the time went (reading, catalog index, evaluation) on stderr");
  scan->add_option("--rule", scan_options.rule,
                   "kbgap, or for comparison: supersedence (WES-NG's rule), build (Fleet's rule)")
      ->check(CLI::IsMember({"kbgap", "supersedence", "build"}))
      ->capture_default_str();
  scan->add_flag("--explain", scan_options.explain,
                 "show, for each KB, the open CVEs it closes and why");

  CLI::App* devices = app.add_subcommand("devices", "the devices kbgap serves");
  devices->require_subcommand(1);
  devices->fallthrough();
  DevicesImportOptions devices_import_options;
  CLI::App* devices_import = devices->add_subcommand(
      "import", "add or replace devices from inventories (one atomic batch)");
  devices_import->fallthrough();
  devices_import
      ->add_option("inventories", devices_import_options.inventories,
                   "systeminfo, wmic qfe / Get-HotFix, kbgap JSON or osquery JSON files")
      ->required();
  devices_import
      ->add_option("--tenant", devices_import_options.tenant,
                   "the tenant they are stored for (a token's tid)")
      ->capture_default_str();

  DevicesListOptions devices_list_options;
  CLI::App* devices_list = devices->add_subcommand("list", "the stored devices");
  devices_list->fallthrough();
  devices_list->add_option("--format", devices_list_options.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  devices_list->add_option("--tenant", devices_list_options.tenant,
                           "only this tenant's devices (default: every tenant's)");

  DevicesRemoveOptions devices_remove_options;
  CLI::App* devices_remove =
      devices->add_subcommand("remove", "remove devices by id (damaged rows included)");
  devices_remove->fallthrough();
  devices_remove->add_option("ids", devices_remove_options.ids, "device ids (40 hex)")->required();
  devices_remove
      ->add_option("--tenant", devices_remove_options.tenant, "the tenant whose devices they are")
      ->capture_default_str();

  ServeOptions serve_options;
  CLI::App* serve = app.add_subcommand("serve", "serve the Defender-compatible API");
  serve->fallthrough();
  serve->add_option("--config", serve_options.config,
                    "a TOML configuration file (env KBGAP_CONFIG)");
  serve->add_option("--listen", serve_options.listen,
                    "ADDRESS:PORT (default 127.0.0.1:8080; port 0: any free port)");
  serve->add_option("--port-file", serve_options.port_file, "write the bound port to this file");
  serve->add_option("--threads", serve_options.threads, "I/O and worker threads (0: one per core)");
  serve->add_flag("--quiet", serve_options.quiet, "no access log");

  TokenOptions token_options;
  CLI::App* token = app.add_subcommand("token", "mint a token signed by kbgap's own key");
  token->fallthrough();
  token
      ->add_option("--role", token_options.roles,
                   "a permission: Machine.Read.All, Software.Read.All, Vulnerability.Read.All, "
                   "Machine.ReadWrite.All (repeatable)")
      ->required();
  token->add_option("--ttl", token_options.ttl, "lifetime: 90s, 15m, 1h, 7d")
      ->capture_default_str();
  token->add_option("--app", token_options.app, "the calling application's name (appid)")
      ->capture_default_str();
  token
      ->add_option("--tenant", token_options.tenant,
                   "the tenant (tid) whose devices the token reads and writes")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kbgap: %s (see kbgap --help)\n", e.what());
    return kExitUsage;
  }

  if (import->parsed()) {
    import_options.data_dir = data_dir;
    return run_catalog_import(import_options);
  }
  if (scan->parsed()) {
    scan_options.data_dir = data_dir;
    return run_scan(scan_options);
  }
  if (devices_import->parsed()) {
    devices_import_options.data_dir = data_dir;
    return run_devices_import(devices_import_options);
  }
  if (devices_list->parsed()) {
    devices_list_options.data_dir = data_dir;
    return run_devices_list(devices_list_options);
  }
  if (devices_remove->parsed()) {
    devices_remove_options.data_dir = data_dir;
    return run_devices_remove(devices_remove_options);
  }
  if (serve->parsed()) {
    serve_options.data_dir = data_dir;
    return run_serve(serve_options);
  }
  if (token->parsed()) {
    token_options.data_dir = data_dir;
    return run_token(token_options);
  }
  if (line->parsed()) {
    line_options.data_dir = data_dir;
    return run_catalog_line(line_options);
  }
  if (fetch->parsed()) {
    return run_catalog_fetch(fetch_options);
  }
  if (sync->parsed()) {
    sync_options.data_dir = data_dir;
    return run_catalog_sync(sync_options);
  }
  if (diff->parsed()) {
    diff_options.data_dir = data_dir;
    return run_catalog_diff(diff_options);
  }
  if (stats->parsed()) {
    stats_options.data_dir = data_dir;
    return run_catalog_stats(stats_options);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace kbgap::app

int main(int argc, char** argv) {
  try {
    return kbgap::app::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kbgap: internal error: %s\n", e.what());
    return 70;
  }
}
