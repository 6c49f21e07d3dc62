// Opens a data directory's catalog for evaluation: imports the bundled catalog when it is empty
// (with a progress bar on a terminal), then builds the engine's index.
#pragma once

#include <functional>
#include <string>

#include "common/progress.h"
#include "common/result.h"
#include "engine/catalog_index.h"
#include "store/catalog_store.h"
#include "update/importer.h"

namespace kbgap::app {

// Draws an import's progress on `bar`: "<N> documents, <month being written>".
std::function<void(const catalog::ImportProgress&)> progress_to(ProgressBar& bar);

// Imports the bundled catalog when the store holds none, with a progress bar on a terminal and a
// one-line note on stderr (stdout stays the command's own output, which scripts parse).
Result<void> ensure_bundled_catalog(catalog::CatalogStore& store);

// The engine's index, cached in the data directory (rebuilt whenever the catalog changes).
inline constexpr const char* kIndexFileName = "catalog.index";

// What identifies a catalog's contents: its months and their sha256 (the index is tagged with it).
std::string catalog_fingerprint(const std::vector<catalog::StoredDocument>& documents);

// With `documents`, also the stored documents (what the catalog covers: update/freshness.h).
Result<engine::CatalogIndex> load_catalog_index(
    const std::string& data_dir, std::vector<catalog::StoredDocument>* documents = nullptr);

}  // namespace kbgap::app
