// `kbgap catalog import`, `kbgap catalog stats` and `kbgap catalog line`.
#pragma once

#include <string>
#include <vector>

namespace kbgap::app {

struct CatalogImportOptions {
  std::string data_dir;
  std::vector<std::string> paths;
};

struct CatalogSyncOptions {
  std::string data_dir;
  std::string out;     // catalog fetch: the .tar.zst to write
  std::string source;  // the CVRF API's base URL; "" for MSRC's
  bool all = false;    // fetch every listed month again
  int attempts = 4;
  int timeout_seconds = 300;
  int connect_timeout_seconds = 15;
  std::string ca_file;  // trust this CA bundle instead of the system's
};

struct CatalogDiffOptions {
  std::string data_dir;
  std::string month;             // "2026-Nov": that month's imports; "" for the newest import day's
  std::string since;             // "YYYY-MM-DD": the imports from that day on
  bool full = false;             // every item, not the first 25 of each kind
  std::string format = "table";  // table | json
};

struct CatalogStatsOptions {
  std::string data_dir;
  std::string format = "table";  // table | json
};

struct CatalogLineOptions {
  std::string data_dir;
  std::string product;  // a product name as MSRC writes it ("Windows Server 2012 R2")
  std::string as_of;    // "YYYY-MM-DD": only the updates released by then; "" for all
};

int run_catalog_import(const CatalogImportOptions& options);
// Fetches the months that are new or revised at the source and imports each whole.
int run_catalog_sync(const CatalogSyncOptions& options);
// Fetches every month into a .tar.zst for `catalog import` on a machine without the internet.
int run_catalog_fetch(const CatalogSyncOptions& options);
// How kbgap reads Microsoft's servicing of a product: its line's model, cumulative updates in
// order, the products it delivers for their host, and the other updates it carries.
int run_catalog_line(const CatalogLineOptions& options);
int run_catalog_stats(const CatalogStatsOptions& options);
// What imports changed: new and removed KBs, supersedence, fixed builds, new products.
int run_catalog_diff(const CatalogDiffOptions& options);

}  // namespace kbgap::app
