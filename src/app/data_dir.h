// The data directory (--data, KBGAP_DATA, ./kbgap-data) and the stores kept in it.
#pragma once

#include <memory>
#include <string>

#include "catalog/catalog_store.h"
#include "common/result.h"
#include "store/device_store.h"

namespace kbgap::app {

inline constexpr const char* kDefaultDataDir = "kbgap-data";
inline constexpr const char* kCatalogFileName = "kbgap.db";

// Creates the directory when missing and opens the SQLite catalog in it.
Result<std::unique_ptr<catalog::CatalogStore>> open_catalog_store(const std::string& data_dir);
// The device store in the same file.
Result<std::unique_ptr<store::DeviceStore>> open_device_store(const std::string& data_dir);

}  // namespace kbgap::app
