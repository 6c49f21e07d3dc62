// Opens the stores of a data directory.
#include "app/data_dir.h"

#include <fmt/format.h>

#include <filesystem>

#include "store/sqlite/sqlite_catalog_store.h"
#include "store/sqlite/sqlite_device_store.h"

namespace kbgap::app {

namespace {

Result<std::string> database_path(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return io_error(fmt::format("{}: cannot create data directory: {}", data_dir, ec.message()));
  }
  return (std::filesystem::path(data_dir) / kCatalogFileName).string();
}

}  // namespace

Result<std::unique_ptr<catalog::CatalogStore>> open_catalog_store(const std::string& data_dir) {
  auto path = database_path(data_dir);
  if (!path) return path.error();
  auto store = store::sqlite::SqliteCatalogStore::open(*path);
  if (!store) return store.error();
  return std::unique_ptr<catalog::CatalogStore>(std::move(*store));
}

Result<std::unique_ptr<store::DeviceStore>> open_device_store(const std::string& data_dir) {
  auto path = database_path(data_dir);
  if (!path) return path.error();
  auto store = store::sqlite::SqliteDeviceStore::open(*path);
  if (!store) return store.error();
  return std::unique_ptr<store::DeviceStore>(std::move(*store));
}

}  // namespace kbgap::app
