// The catalog subcommands: wiring between the command line, the importer and the store.
#include "app/catalog_commands.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>

#include "app/catalog_loader.h"
#include "app/cli_error.h"
#include "app/data_dir.h"
#include "catalog/importer.h"
#include "common/progress.h"

namespace kbgap::app {
namespace {

using catalog::DocumentOutcome;
using catalog::ImportSummary;

void print_summary(const ImportSummary& s, std::string_view from, double seconds) {
  fmt::print(
      "imported {} documents from {} in {:.1f} s: {} added, {} replaced, {} unchanged, {} "
      "kept (newer revision already stored)\n",
      s.documents.size(), from, seconds, s.count(DocumentOutcome::kAdded),
      s.count(DocumentOutcome::kReplaced), s.count(DocumentOutcome::kUnchanged),
      s.count(DocumentOutcome::kKeptNewer));
  for (const catalog::DocumentResult& d : s.documents) {
    if (d.outcome == DocumentOutcome::kKeptNewer) {
      fmt::print("  {}: {} (revision {} of {}) is older than the stored revision; not imported\n",
                 d.id, d.source, d.revision, d.current_release.substr(0, 10));
    }
  }
  if (!s.skips.by_reason().empty()) {
    fmt::print("passed over or repaired, by reason:\n");
    for (const auto& [reason, n] : s.skips.by_reason()) fmt::print("  {:>8}  {}\n", n, reason);
  }
}

}  // namespace

int run_catalog_import(const CatalogImportOptions& options) {
  auto sources = catalog::ImportSources::from_paths(options.paths);
  if (!sources) return report(sources.error());
  auto store = open_catalog_store(options.data_dir);
  if (!store) return report(store.error());
  ProgressBar bar("importing", ProgressBar::interactive());
  auto start = std::chrono::steady_clock::now();
  auto summary = catalog::import_catalog(*sources, **store, progress_to(bar));
  bar.finish();
  if (!summary) return report(summary.error());
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::string from = options.paths.size() == 1 ? options.paths.front()
                                               : fmt::format("{} paths", options.paths.size());
  print_summary(*summary, from, elapsed.count());
  return kExitOk;
}

int run_catalog_stats(const CatalogStatsOptions& options) {
  if (options.format != "table" && options.format != "json") {
    std::fprintf(stderr, "kbgap: --format must be table or json, not '%s'\n",
                 options.format.c_str());
    return kExitUsage;
  }
  auto store = open_catalog_store(options.data_dir);
  if (!store) return report(store.error());
  if (auto ensured = ensure_bundled_catalog(**store); !ensured) return report(ensured.error());
  auto stats = (*store)->stats();
  if (!stats) return report(stats.error());
  if (options.format == "json") {
    boost::json::object o;
    o["documents"] = stats->documents;
    o["products"] = stats->products;
    o["cves"] = stats->cves;
    o["kbs"] = stats->kbs;
    o["supersedenceEdges"] = stats->supersedence_edges;
    o["firstRelease"] = stats->first_release;
    o["lastRelease"] = stats->last_release;
    fmt::print("{}\n", boost::json::serialize(o));
    return kExitOk;
  }
  fmt::print("documents           {}\n", stats->documents);
  fmt::print("products            {}\n", stats->products);
  fmt::print("cves                {}\n", stats->cves);
  fmt::print("kbs                 {}\n", stats->kbs);
  fmt::print("supersedence edges  {}\n", stats->supersedence_edges);
  fmt::print("kb remediations     {}\n", stats->remediations);
  fmt::print("first release       {}\n", stats->first_release);
  fmt::print("last release        {}\n", stats->last_release);
  return kExitOk;
}

}  // namespace kbgap::app
