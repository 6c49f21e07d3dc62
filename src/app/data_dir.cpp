// Opens the stores of a data directory.
#include "app/data_dir.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>

#include "store/postgres/pg_catalog_store.h"
#include "store/postgres/pg_device_store.h"
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

std::mutex url_mutex;
std::optional<std::string> configured_url;  // under url_mutex

// Opens a store of type Sqlite in the data directory's database, or of type Postgres at the
// storage URL, as its interface.
template <typename Interface, typename Sqlite, typename Postgres>
Result<std::unique_ptr<Interface>> open_store(const std::string& data_dir) {
  const std::string url = storage_url();
  KBGAP_TRY(check_storage_url(url));
  if (!url.empty()) {
    // The data directory still holds the signing key and the catalog index's cache.
    std::error_code ec;
    std::filesystem::create_directories(data_dir, ec);
    auto store = Postgres::open(url);
    if (!store) return store.error();
    return std::unique_ptr<Interface>(std::move(*store));
  }
  auto path = database_path(data_dir);
  if (!path) return path.error();
  auto store = Sqlite::open(*path);
  if (!store) return store.error();
  return std::unique_ptr<Interface>(std::move(*store));
}

}  // namespace

void set_storage_url(std::string url) {
  std::lock_guard lock(url_mutex);
  configured_url = std::move(url);
}

std::string storage_url() {
  std::lock_guard lock(url_mutex);
  if (configured_url) return *configured_url;
  const char* env = std::getenv("KBGAP_STORAGE_URL");
  return env ? env : "";
}

Result<void> check_storage_url(std::string_view url) {
  if (url.empty() || store::postgres::is_postgres_url(url)) return ok_result();
  return invalid_input(fmt::format(
      "storage url '{}' is not a PostgreSQL URL (postgresql://user@host:port/database); leave it "
      "empty for the SQLite file of the data directory",
      store::postgres::redact_url(url.substr(0, 200))));
}

Result<std::unique_ptr<catalog::CatalogStore>> open_catalog_store(const std::string& data_dir) {
  return open_store<catalog::CatalogStore, store::sqlite::SqliteCatalogStore,
                    store::postgres::PgCatalogStore>(data_dir);
}

Result<std::unique_ptr<store::DeviceStore>> open_device_store(const std::string& data_dir) {
  return open_store<store::DeviceStore, store::sqlite::SqliteDeviceStore,
                    store::postgres::PgDeviceStore>(data_dir);
}

}  // namespace kbgap::app
