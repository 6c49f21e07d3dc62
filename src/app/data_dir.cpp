// Opens the stores of a data directory.
#include "app/data_dir.h"

#include <fmt/format.h>

#include <filesystem>

#include "store/sqlite/sqlite_catalog_store.h"

namespace kbgap::app {

Result<std::unique_ptr<catalog::CatalogStore>> open_catalog_store(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    return io_error(fmt::format("{}: cannot create data directory: {}", data_dir, ec.message()));
  auto store = store::sqlite::SqliteCatalogStore::open(
      (std::filesystem::path(data_dir) / kCatalogFileName).string());
  if (!store) return store.error();
  return std::unique_ptr<catalog::CatalogStore>(std::move(*store));
}

}  // namespace kbgap::app
