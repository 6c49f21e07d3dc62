#include "app/inventory_files.h"

#include "common/file.h"
#include "inventory/inventory_reader.h"

namespace kbgap::app {
namespace {

constexpr std::uintmax_t kMaxInventoryBytes = 64u << 20;

}  // namespace

Result<std::vector<inventory::Device>> read_inventory_files(const std::vector<std::string>& paths) {
  std::vector<inventory::Inventory> inventories;
  for (const std::string& path : paths) {
    auto bytes = read_file_limited(path, kMaxInventoryBytes, "an inventory");
    if (!bytes) return bytes.error();
    auto read = inventory::read_inventory(*bytes, path);
    if (!read) return read.error();
    for (auto& inv : *read) inventories.push_back(std::move(inv));
  }
  return inventory::merge_inventories(std::move(inventories));
}

}  // namespace kbgap::app
