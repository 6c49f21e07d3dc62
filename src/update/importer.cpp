// The import pipeline: the caller's thread reads inputs in order and writes parsed documents in
// that order; parsing runs ahead on worker threads, a bounded number of documents at a time.
#include "update/importer.h"

#include <algorithm>
#include <deque>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "catalog/bundled_catalog.h"
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

namespace {

// Writes one document into the transaction unless the stored one is the same or newer, with
// what it changed; adds its outcome to `summary`. `skips`: its reader's, kept when it is written.
class DocumentWriter {
 public:
  explicit DocumentWriter(CatalogTransaction& tx) : tx_(tx) {}

  Result<void> write(const Document& doc, const SkipCounts& skips, ImportSummary& summary) {
    auto stored = tx_.find_document(doc.id);
    if (!stored) return stored.error();
    DocumentResult result{doc.id,
                          doc.source,
                          doc.revision,
                          doc.current_release,
                          decide(doc, *stored),
                          static_cast<std::int64_t>(doc.vulnerabilities.size()),
                          count_kb_fixes(doc)};
    if (result.outcome == DocumentOutcome::kAdded || result.outcome == DocumentOutcome::kReplaced) {
      auto before = tx_.month_facts(doc.id);
      if (!before) return before.error();
      if (!known_products_) {  // read once per import, then kept up to date
        auto ids = tx_.product_ids();
        if (!ids) return ids.error();
        known_products_ = std::move(*ids);
      }
      const MonthChanges changes = changes_between(*before, facts_of(doc), *known_products_);
      KBGAP_TRY(tx_.replace_document(doc, to_json(changes)));
      for (const Product& p : doc.products) known_products_->insert(p.id);
      summary.skips.merge(skips);
    }
    summary.documents.push_back(std::move(result));
    return ok_result();
  }

 private:
  CatalogTransaction& tx_;
  std::optional<std::set<std::string>> known_products_;  // product ids the catalog holds
};

}  // namespace

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
  DocumentWriter writer(**tx);

  auto write_oldest = [&]() -> Result<void> {
    Result<ParsedDocument> parsed = in_flight.front().get();
    in_flight.pop_front();
    if (!parsed) return parsed.error();
    state.current = parsed->document.id;
    if (progress) progress(state);
    KBGAP_TRY(writer.write(parsed->document, parsed->skips, summary));
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

Result<WesngImport> import_wesng(TarZstReader& archive, std::string_view archive_name,
                                 CatalogStore& store) {
  // The catalog's product names first, then the rows read and mapped, then one write transaction:
  // the store is not held while a full definitions.zip (600,000 rows) is read.
  std::map<std::string, std::string> names;
  {
    auto peek = store.begin();
    if (!peek) return peek.error();
    auto read_names = (*peek)->product_names();
    if (!read_names) return read_names.error();
    names = std::move(*read_names);
  }  // rolled back: nothing written
  auto read = read_wesng(archive, archive_name, names);
  if (!read) return read.error();
  auto tx = store.begin();
  if (!tx) return tx.error();
  WesngImport out;
  DocumentWriter writer(**tx);
  for (const Document& doc : read->documents) {
    KBGAP_TRY(writer.write(doc, SkipCounts{}, out.summary));
  }
  out.summary.skips = read->skipped;
  out.summary.skips.merge(read->repaired);
  KBGAP_TRY((*tx)->commit());
  read->documents.clear();  // written: the caller needs the counts only
  out.definitions = std::move(*read);
  return out;
}

Result<ImportSummary> ensure_catalog(CatalogStore& store,
                                     const std::function<void(const ImportProgress&)>& progress) {
  auto documents = store.documents();  // cheaper than stats(): no counting
  if (!documents) return documents.error();
  ImportSummary summary;
  const bool no_msrc = std::all_of(documents->begin(), documents->end(),
                                   [](const StoredDocument& d) { return is_wesng_document(d.id); });
  // Months an older kbgap stored without all it reads now are read again from the bundle (the
  // ones the bundle has; sync reads the others again).
  const bool stale = std::any_of(documents->begin(), documents->end(), [](const StoredDocument& d) {
    return must_read_again(d) && d.source.starts_with(kBundledCatalogName);
  });
  if (no_msrc || stale) {
    ImportSources bundled = ImportSources::bundled();
    auto imported = import_catalog(bundled, store, progress);
    if (!imported) return imported.error();
    summary = std::move(*imported);
  }
  // The bulletins before 2016 (WES-NG's rows) go with the bundled catalog, also into one imported
  // before kbgap bundled them; a catalog built from other documents only is left as it is.
  // Again when the stored days were mapped by older rules (their digests differ: replaced).
  const bool from_bundled =
      no_msrc || std::any_of(documents->begin(), documents->end(), [](const StoredDocument& d) {
        return d.source.starts_with(kBundledCatalogName);
      });
  const bool current =
      std::any_of(documents->begin(), documents->end(),
                  [](const StoredDocument& d) { return is_wesng_document(d.id); }) &&
      std::all_of(documents->begin(), documents->end(), [](const StoredDocument& d) {
        return !is_wesng_document(d.id) || current_wesng_mapping(d.revision);
      });
  if (from_bundled && !current) {
    TarZstReader bundled = TarZstReader::from_memory(
        bundled_wesng_archive(), std::string(kBundledWesngName), ArchiveFormat::kZip);
    auto imported = import_wesng(bundled, kBundledWesngName, store);
    if (!imported) return imported.error();
    for (DocumentResult& d : imported->summary.documents) summary.documents.push_back(std::move(d));
    summary.skips.merge(imported->summary.skips);
  }
  return summary;
}

}  // namespace kbgap::catalog
