// `kbgap devices import`: inventory files into the data directory's device store.
#pragma once

#include <string>
#include <vector>

namespace kbgap::app {

struct DevicesImportOptions {
  std::string data_dir;
  std::vector<std::string> inventories;
};

struct DevicesListOptions {
  std::string data_dir;
  std::string format = "table";  // table | json
};

int run_devices_import(const DevicesImportOptions& options);
int run_devices_list(const DevicesListOptions& options);

}  // namespace kbgap::app
