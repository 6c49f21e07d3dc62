// Opens a data directory's catalog for evaluation: imports the bundled catalog when it is empty
// (with a progress bar on a terminal), then builds the engine's index.
#pragma once

#include <string>

#include "common/result.h"
#include "engine/catalog_index.h"

namespace kbgap::app {

// The engine's index, cached in the data directory (rebuilt whenever the catalog changes).
inline constexpr const char* kIndexFileName = "catalog.index";

Result<engine::CatalogIndex> load_catalog_index(const std::string& data_dir);

}  // namespace kbgap::app
