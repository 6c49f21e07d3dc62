// `kbgap scan`: offline missing-KB evaluation of inventory files against the catalog.
#pragma once

#include <string>
#include <vector>

namespace kbgap::app {

struct ScanOptions {
  std::string data_dir;
  std::vector<std::string> inventories;
  std::string as_of;             // YYYY-MM-DD or ""
  std::string format = "table";  // table | json | csv
  bool explain = false;
  std::string rule = "kbgap";                  // kbgap | supersedence | build (docs/accuracy.md)
  std::string base_url = "https://localhost";  // for @odata.context in json
  bool timings = false;                        // where the time went, on stderr
};

int run_scan(const ScanOptions& options);

}  // namespace kbgap::app
