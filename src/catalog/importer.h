// Imports CVRF documents into a catalog store: parse in parallel, write in one transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "catalog/catalog_store.h"
#include "catalog/import_sources.h"
#include "catalog/model.h"
#include "common/result.h"

namespace kbgap::catalog {

enum class DocumentOutcome {
  kAdded,      // the month was not in the catalog
  kReplaced,   // a different revision replaced the stored one
  kUnchanged,  // byte-identical to what is stored
  kKeptNewer,  // older than the stored revision: the stored one stays
};

struct DocumentResult {
  std::string id;
  std::string source;
  std::string revision;
  std::string current_release;
  DocumentOutcome outcome = DocumentOutcome::kAdded;
  std::int64_t vulnerabilities = 0;
  std::int64_t kb_fixes = 0;
};

struct ImportSummary {
  std::vector<DocumentResult> documents;
  SkipCounts skips;  // passed over or repaired, by reason, over all documents
  std::int64_t count(DocumentOutcome outcome) const;
};

struct ImportProgress {
  std::uint64_t done_bytes = 0;
  std::uint64_t total_bytes = 0;
  std::size_t documents = 0;
  std::string current;  // the document being written
};

// All or nothing: on any error (unreadable input, malformed XML, not CVRF, corrupt archive,
// storage failure) nothing is committed and the catalog stays exactly as it was.
Result<ImportSummary> import_catalog(ImportSources& sources, CatalogStore& store,
                                     const std::function<void(const ImportProgress&)>& progress);

// Imports the catalog compiled into kbgap when the store holds no document yet. Returns
// std::nullopt-like empty summary (no documents) when there was nothing to do.
Result<ImportSummary> ensure_catalog(CatalogStore& store,
                                     const std::function<void(const ImportProgress&)>& progress);

std::string_view outcome_name(DocumentOutcome outcome);

}  // namespace kbgap::catalog
