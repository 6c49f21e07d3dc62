// `kbgap catalog import` and `kbgap catalog stats`.
#pragma once

#include <string>
#include <vector>

namespace kbgap::app {

struct CatalogImportOptions {
  std::string data_dir;
  std::vector<std::string> paths;
};

struct CatalogStatsOptions {
  std::string data_dir;
  std::string format = "table";  // table | json
};

int run_catalog_import(const CatalogImportOptions& options);
int run_catalog_stats(const CatalogStatsOptions& options);

}  // namespace kbgap::app
