// The catalog's storage interface: src/store/sqlite/ (the embedded default) and
// src/store/postgres/ implement it; tests/store_contract_test.cpp holds both to it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/changes.h"
#include "catalog/model.h"
#include "common/result.h"

namespace kbgap::catalog {

// What is stored of a document, enough to decide whether an import replaces it.
struct StoredDocument {
  std::string id;
  std::string title;
  std::string initial_release;
  std::string current_release;
  std::string revision;
  std::string source;
  std::string sha256;
  std::int64_t vulnerabilities = 0;
  std::int64_t kb_fixes = 0;  // KB remediations it lists (a month's early revision lists none)
};

// A month an older kbgap stored without all that kbgap reads now: its digest was cleared by the
// migration that added what it lacks (004: a CVE's own dates and CVSS vector). It is read again
// (ensure_catalog, sync_catalog) and replaced whatever its digest.
inline bool must_read_again(const StoredDocument& d) {
  return d.sha256.empty();
}

struct CatalogStats {
  std::int64_t documents = 0;           // MSRC's documents (months and out-of-band ones)
  std::int64_t bulletin_days = 0;       // documents of WES-NG's rows before 2016, one per day
  std::int64_t products = 0;            // distinct ProductIDs
  std::int64_t cves = 0;                // distinct CVE ids
  std::int64_t kbs = 0;                 // distinct KB numbers with a Vendor Fix
  std::int64_t supersedence_edges = 0;  // distinct (KB, superseded KB) pairs
  std::int64_t remediations = 0;        // KB fix rows (KB x CVE x document)
  std::string first_release;   // earliest InitialReleaseDate of MSRC's, YYYY-MM-DD ("" if none)
  std::string last_release;    // latest InitialReleaseDate of MSRC's
  std::string first_bulletin;  // the earliest day of bulletins before 2016 ("" if none)
};

// One import that changed a month (catalog_imports): the history `catalog stats` and `diff` read.
struct ImportRecord {
  std::string document_id;
  std::string revision;
  std::string current_release;
  std::string sha256;
  std::string source;
  std::string outcome;  // "added" or "replaced"
  std::string imported_at;
  std::string changes;  // JSON (catalog/changes.h); "{}" for months stored before it was kept
};

struct NamedProduct {
  std::string id;
  std::string name;
};

// One KB fix of one CVE as stored, with its products' names resolved in its own document.
struct KbRemediation {
  std::string document_id;
  std::string cve;
  KbNumber kb = 0;
  std::string subtype;
  std::string fixed_build;
  std::string fixed_build_raw;
  std::string url;
  std::string restart_required;
  std::vector<NamedProduct> products;
  std::vector<KbNumber> supersedes;
};

// Everything the engine needs, as flat rows (src/engine builds its index from them).
struct CatalogData {
  struct Cve {
    std::string id, title, severity, impact;
    std::optional<double> cvss_base;
    std::optional<bool> exploited, publicly_disclosed;
    std::string cvss_vector;  // "" when unknown
    // The CVE's first publication and latest revision over every month that lists it (its own
    // revision history; the month's release dates where a month was stored without one).
    std::string published, updated;
  };
  struct Fix {  // one KB fixing one CVE on one product, as one document lists it
    std::string document_id, cve, product_id, subtype, fixed_build, url;
    KbNumber kb = 0;
  };
  std::vector<StoredDocument> documents;  // by initial release
  std::vector<Product> products;          // one per ProductID, named as its newest document does
  std::vector<Cve> cves;                  // one per CVE id, as its newest document describes it
  std::vector<Fix> fixes;
  std::vector<std::pair<KbNumber, KbNumber>> supersedes;  // (KB, KB it replaces), distinct
};

// One write transaction. Destroying it without commit() rolls everything back.
class CatalogTransaction {
 public:
  virtual ~CatalogTransaction() = default;
  virtual Result<std::optional<StoredDocument>> find_document(std::string_view id) = 0;
  // The stored month's facts (empty when it is not stored), and every product id in the catalog:
  // what an import's changes are told against (catalog/changes.h).
  virtual Result<MonthFacts> month_facts(std::string_view id) = 0;
  virtual Result<std::set<std::string>> product_ids() = 0;
  // Every product id by its folded name (fold_name, common/text.h); where two ids share a name,
  // MSRC's (the smallest id not made by kbgap).
  virtual Result<std::map<std::string, std::string>> product_names() = 0;
  // Removes the document's previous rows, if any, and writes this one; `changes` (JSON, what it
  // changed) goes with the record of the import.
  virtual Result<void> replace_document(const Document& doc, std::string_view changes) = 0;
  virtual Result<void> commit() = 0;
};

class CatalogStore {
 public:
  virtual ~CatalogStore() = default;
  virtual Result<std::unique_ptr<CatalogTransaction>> begin() = 0;
  virtual Result<CatalogStats> stats() = 0;
  virtual Result<std::vector<StoredDocument>> documents() = 0;
  // Every import that added or replaced a month, oldest first.
  virtual Result<std::vector<ImportRecord>> imports() = 0;
  // The list time (CurrentReleaseDate) at which a sync last fetched each month, whatever the
  // import made of it; and recording one.
  virtual Result<std::map<std::string, std::string>> listed_releases() = 0;
  virtual Result<void> record_listed_release(std::string_view id, std::string_view listed) = 0;
  virtual Result<std::vector<KbRemediation>> kb_remediations(KbNumber kb) = 0;
  virtual Result<CatalogData> load() = 0;
};

}  // namespace kbgap::catalog
