// Imports CVRF documents into a catalog store: parse in parallel, write in one transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "catalog/import_sources.h"
#include "catalog/model.h"
#include "catalog/wesng_reader.h"
#include "common/result.h"
#include "store/catalog_store.h"

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

// Imports WES-NG's rows posted before April 2016 (catalog/wesng_reader.h) from `archive`, a
// definitions zip, in one transaction: all of them or, on any error, nothing.
struct WesngImport {
  ImportSummary summary;         // per document (a day of bulletins), and the rows left out
  WesngDefinitions definitions;  // the counts (its documents are not kept)
};
Result<WesngImport> import_wesng(TarZstReader& archive, std::string_view archive_name,
                                 CatalogStore& store);

// Imports the catalog compiled into kbgap when the store holds no document yet, and the bundled
// bulletins before 2016 when the store has none of them and holds the bundled catalog. Returns an
// empty summary (no documents) when there was nothing to do.
Result<ImportSummary> ensure_catalog(CatalogStore& store,
                                     const std::function<void(const ImportProgress&)>& progress);

std::string_view outcome_name(DocumentOutcome outcome);

}  // namespace kbgap::catalog
