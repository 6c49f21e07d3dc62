// Catalog sync from MSRC's Security Update Guide CVRF API v3.0 (public, no key), or a mirror of
// it: the list of monthly documents (`<source>/updates`), then each month whose current release
// is newer than the stored one (`<CvrfUrl>`, as XML). Each month is imported in its own
// transaction, whole or not at all, so a sync cut short resumes where it stopped
// (docs/operations.md, "Keeping the catalog current").
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "net/http_client.h"
#include "store/catalog_store.h"
#include "update/importer.h"

namespace kbgap::catalog {

inline constexpr const char* kMsrcCvrfApi = "https://api.msrc.microsoft.com/cvrf/v3.0";

// One month as the API lists it.
struct ListedMonth {
  std::string id;               // "2024-Jan"
  std::string title;            // "January 2024 Security Updates"
  std::string initial_release;  // as kbgap writes times: "2024-01-09T08:00:00Z"
  std::string current_release;  // its latest revision's time
  std::string url;              // where its CVRF document is fetched from
};

// The months a source lists, oldest first. `body` is the answer of `<source>/updates`. A month
// whose CvrfUrl is not on the source's host (a mirror that copied MSRC's list as it is) is
// fetched from `<source>/cvrf/<id>`, the API's own path, instead.
Result<std::vector<ListedMonth>> parse_updates(std::string_view body, const std::string& source);

struct SyncOptions {
  std::string source = kMsrcCvrfApi;
  bool all = false;  // fetch every listed month, not only those newer than the stored revision
  net::FetchOptions fetch;
  // Called before each month is fetched and after it is imported.
  std::function<void(std::size_t done, std::size_t total, const ListedMonth& month)> on_month;
};

struct SyncSummary {
  std::size_t listed = 0;               // months the source lists
  std::size_t up_to_date = 0;           // of those, already stored at their listed revision
  std::vector<DocumentResult> fetched;  // what each fetched month did to the catalog
  // Of the fetched months, those that changed the catalog (added, or replaced a stored one).
  std::size_t changed() const;
};

// Fetches and imports what is new. On an error, the months imported before it stay (each was
// committed whole) and the error says which month failed and why.
Result<SyncSummary> sync_catalog(CatalogStore& store, const SyncOptions& options);

// For a site without the internet: every listed month, each checked to be a CVRF document,
// written to a .tar.zst archive in the bundled catalog's layout (`cvrf/cvrfDocument-<ID>.xml`)
// that `catalog import` reads. The file appears only when complete. The number of months.
Result<std::size_t> fetch_catalog_archive(const SyncOptions& options, const std::string& out);

}  // namespace kbgap::catalog
