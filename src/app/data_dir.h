// The data directory (--data, KBGAP_DATA, ./kbgap-data) and the stores kept in it.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "store/catalog_store.h"
#include "store/device_store.h"

namespace kbgap::app {

inline constexpr const char* kDefaultDataDir = "kbgap-data";
inline constexpr const char* kCatalogFileName = "kbgap.db";

// Where the catalog and the devices are kept: "" for the SQLite file of the data directory (the
// embedded default), or a PostgreSQL URL (postgresql://user@host:port/db, libpq's parameters
// after '?'). `kbgap serve` takes `[storage] url`; every command takes KBGAP_STORAGE_URL.
void set_storage_url(std::string url);
std::string storage_url();
// An error unless `url` is "" or a PostgreSQL URL.
Result<void> check_storage_url(std::string_view url);

// Creates the directory when missing and opens the catalog: in the SQLite file in it, or in
// PostgreSQL (storage_url()).
Result<std::unique_ptr<catalog::CatalogStore>> open_catalog_store(const std::string& data_dir);
// The device store, beside the catalog.
Result<std::unique_ptr<store::DeviceStore>> open_device_store(const std::string& data_dir);

}  // namespace kbgap::app
