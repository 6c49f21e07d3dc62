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
  std::string path = (std::filesystem::path(data_dir) / kCatalogFileName).string();
  KBGAP_TRY(store::sqlite::SqliteDeviceStore::check_not_lost(path));
  return path;
}

}  // namespace

namespace {

// Opens a store of type Store (SQLite) in the data directory's database, as its interface.
template <typename Interface, typename Store>
Result<std::unique_ptr<Interface>> open_store(const std::string& data_dir) {
  auto path = database_path(data_dir);
  if (!path) return path.error();
  auto store = Store::open(*path);
  if (!store) return store.error();
  return std::unique_ptr<Interface>(std::move(*store));
}

}  // namespace

Result<std::unique_ptr<catalog::CatalogStore>> open_catalog_store(const std::string& data_dir) {
  return open_store<catalog::CatalogStore, store::sqlite::SqliteCatalogStore>(data_dir);
}

Result<std::unique_ptr<store::DeviceStore>> open_device_store(const std::string& data_dir) {
  return open_store<store::DeviceStore, store::sqlite::SqliteDeviceStore>(data_dir);
}

}  // namespace kbgap::app
