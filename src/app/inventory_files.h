// Inventory files named on the command line, read into devices (hotfix lists joined to their
// systeminfo): one piece for `kbgap scan` and `kbgap devices import`.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "inventory/device.h"

namespace kbgap::app {

Result<std::vector<inventory::Device>> read_inventory_files(const std::vector<std::string>& paths);

}  // namespace kbgap::app
