// `kbgap devices import`: inventory files into the data directory's device store.
#pragma once

#include <string>
#include <vector>

namespace kbgap::app {

struct DevicesImportOptions {
  std::string data_dir;
  std::vector<std::string> inventories;
};

int run_devices_import(const DevicesImportOptions& options);

}  // namespace kbgap::app
