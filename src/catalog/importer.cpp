// The import pipeline: the caller's thread reads inputs in order and writes parsed documents in
// that order; parsing runs ahead on worker threads, a bounded number of documents at a time.
#include "catalog/importer.h"

#include <algorithm>
#include <deque>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "catalog/cvrf_fields.h"
#include "catalog/cvrf_reader.h"

namespace kbgap::catalog {
namespace {

DocumentOutcome decide(const Document& incoming, const std::optional<StoredDocument>& stored) {
  if (!stored) return DocumentOutcome::kAdded;
  if (stored->sha256 == incoming.sha256) return DocumentOutcome::kUnchanged;
  if (incoming.current_release < stored->current_release) return DocumentOutcome::kKeptNewer;
  if (incoming.current_release == stored->current_release &&
      revision_less(incoming.revision, stored->revision)) {
    return DocumentOutcome::kKeptNewer;
  }
  return DocumentOutcome::kReplaced;
}

}  // namespace

std::int64_t ImportSummary::count(DocumentOutcome outcome) const {
  return std::count_if(documents.begin(), documents.end(),
                       [&](const DocumentResult& d) { return d.outcome == outcome; });
}

std::string_view outcome_name(DocumentOutcome outcome) {
  switch (outcome) {
    case DocumentOutcome::kAdded:
      return "added";
    case DocumentOutcome::kReplaced:
      return "replaced";
    case DocumentOutcome::kUnchanged:
      return "unchanged";
    case DocumentOutcome::kKeptNewer:
      return "kept newer stored revision";
  }
  return "?";
}

Result<ImportSummary> import_catalog(ImportSources& sources, CatalogStore& store,
                                     const std::function<void(const ImportProgress&)>& progress) {
  auto tx = store.begin();
  if (!tx) return tx.error();

  ImportSummary summary;
  ImportProgress state;
  state.total_bytes = sources.total_bytes();
  // Enough parses in flight to keep every core busy while this thread writes.
  const std::size_t window = std::max(2u, std::thread::hardware_concurrency()) + 1;
  std::deque<std::future<Result<ParsedDocument>>> in_flight;
  std::optional<std::set<std::string>> known_products;  // product ids the catalog holds

  auto write_oldest = [&]() -> Result<void> {
    Result<ParsedDocument> parsed = in_flight.front().get();
    in_flight.pop_front();
    if (!parsed) return parsed.error();
    const Document& doc = parsed->document;
    auto stored = (*tx)->find_document(doc.id);
    if (!stored) return stored.error();
    DocumentResult result{doc.id,
                          doc.source,
                          doc.revision,
                          doc.current_release,
                          decide(doc, *stored),
                          static_cast<std::int64_t>(doc.vulnerabilities.size()),
                          count_kb_fixes(doc)};
    state.current = doc.id;
    if (progress) progress(state);
    if (result.outcome == DocumentOutcome::kAdded || result.outcome == DocumentOutcome::kReplaced) {
      auto before = (*tx)->month_facts(doc.id);
      if (!before) return before.error();
      if (!known_products) {  // read once per import, then kept up to date
        auto ids = (*tx)->product_ids();
        if (!ids) return ids.error();
        known_products = std::move(*ids);
      }
      const MonthChanges changes = changes_between(*before, facts_of(doc), *known_products);
      KBGAP_TRY((*tx)->replace_document(doc, to_json(changes)));
      for (const Product& p : doc.products) known_products->insert(p.id);
      summary.skips.merge(parsed->skips);
    }
    summary.documents.push_back(std::move(result));
    ++state.documents;
    return ok_result();
  };

  // On an early return, the futures still running finish (their destructors wait) and the
  // transaction rolls back when `tx` goes out of scope.
  for (;;) {
    auto item = sources.next();
    if (!item) return item.error();
    if (!*item) break;
    state.done_bytes = sources.done_bytes();
    in_flight.push_back(std::async(std::launch::async, [source = std::move(**item)]() {
      return read_cvrf(source.content, source.name);
    }));
    if (in_flight.size() >= window) KBGAP_TRY(write_oldest());
  }
  while (!in_flight.empty()) KBGAP_TRY(write_oldest());
  if (summary.documents.empty()) {
    return invalid_input("no CVRF document found in the given inputs");
  }
  summary.skips.merge(sources.skips());
  KBGAP_TRY((*tx)->commit());
  state.done_bytes = state.total_bytes;
  if (progress) progress(state);
  return summary;
}

Result<ImportSummary> ensure_catalog(CatalogStore& store,
                                     const std::function<void(const ImportProgress&)>& progress) {
  auto documents = store.documents();  // cheaper than stats(): no counting
  if (!documents) return documents.error();
  if (!documents->empty()) return ImportSummary{};
  ImportSources bundled = ImportSources::bundled();
  return import_catalog(bundled, store, progress);
}

}  // namespace kbgap::catalog
