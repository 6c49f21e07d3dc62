// `kbgap devices import|list|remove`: the data directory's device store from the command line.
#pragma once

#include <string>
#include <vector>

#include "inventory/device.h"

namespace kbgap::app {

struct DevicesImportOptions {
  std::string data_dir;
  std::string tenant = std::string(inventory::kDefaultTenant);
  std::vector<std::string> inventories;
};

struct DevicesListOptions {
  std::string data_dir;
  std::string tenant;            // "": every tenant's
  std::string format = "table";  // table | json
};

struct DevicesRemoveOptions {
  std::string data_dir;
  std::string tenant = std::string(inventory::kDefaultTenant);
  std::vector<std::string> ids;
};

int run_devices_import(const DevicesImportOptions& options);
int run_devices_list(const DevicesListOptions& options);
int run_devices_remove(const DevicesRemoveOptions& options);

}  // namespace kbgap::app
