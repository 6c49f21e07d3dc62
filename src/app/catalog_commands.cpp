// The catalog subcommands: wiring between the command line, the importer and the store.
#include "app/catalog_commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>

#include "app/catalog_loader.h"
#include "app/cli_error.h"
#include "app/data_dir.h"
#include "common/clock.h"
#include "common/progress.h"
#include "engine/catalog_index.h"
#include "net/http_client.h"
#include "update/freshness.h"
#include "update/importer.h"
#include "update/sync.h"

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

bool is_zip_path(std::string_view path) {
  return path.size() >= 4 && (path.ends_with(".zip") || path.ends_with(".ZIP"));
}

// WES-NG's definitions.zip: its rows before April 2016 (docs/catalog.md, "Before 2016").
int import_wesng_file(const std::string& path, catalog::CatalogStore& store) {
  auto archive = catalog::TarZstReader::open_file(path, catalog::ArchiveFormat::kZip);
  if (!archive) return report(archive.error());
  auto start = std::chrono::steady_clock::now();
  auto imported = catalog::import_wesng(*archive, path, store);
  if (!imported) return report(imported.error());
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  const catalog::WesngDefinitions& d = imported->definitions;
  fmt::print("{}: {} rows read, {} imported (bulletins before April 2016)\n", d.member, d.rows,
             d.imported);
  print_summary(imported->summary, path, elapsed.count());
  if (!d.not_on_devices.empty()) {
    std::vector<std::pair<std::uint64_t, std::string>> by_rows;
    for (const auto& [name, n] : d.not_on_devices) by_rows.emplace_back(n, name);
    std::sort(by_rows.rbegin(), by_rows.rend());
    std::uint64_t rows = 0;
    for (const auto& [n, name] : by_rows) rows += n;
    fmt::print(
        "imported, but on no device (an inventory does not show them), {} rows of {} products; "
        "the most rows:\n",
        rows, by_rows.size());
    for (std::size_t i = 0; i < std::min<std::size_t>(by_rows.size(), 12); ++i) {
      fmt::print("  {:>8}  {}\n", by_rows[i].first, by_rows[i].second);
    }
  }
  return kExitOk;
}

}  // namespace

int run_catalog_import(const CatalogImportOptions& options) {
  std::vector<std::string> cvrf_paths, wesng_paths;
  for (const std::string& p : options.paths)
    (is_zip_path(p) ? wesng_paths : cvrf_paths).push_back(p);
  auto store = open_catalog_store(options.data_dir);
  if (!store) return report(store.error());
  // WES-NG's rows land on MSRC's products: into an empty catalog, the bundled one comes first.
  if (!wesng_paths.empty()) {
    if (auto ensured = ensure_bundled_catalog(**store); !ensured) return report(ensured.error());
  }
  if (!cvrf_paths.empty()) {
    auto sources = catalog::ImportSources::from_paths(cvrf_paths);
    if (!sources) return report(sources.error());
    ProgressBar bar("importing", ProgressBar::interactive());
    auto start = std::chrono::steady_clock::now();
    auto summary = catalog::import_catalog(*sources, **store, progress_to(bar));
    bar.finish();
    if (!summary) return report(summary.error());
    std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    std::string from =
        cvrf_paths.size() == 1 ? cvrf_paths.front() : fmt::format("{} paths", cvrf_paths.size());
    print_summary(*summary, from, elapsed.count());
  }
  for (const std::string& p : wesng_paths) {
    if (int rc = import_wesng_file(p, **store); rc != kExitOk) return rc;
  }
  return kExitOk;
}

namespace {

// The progress bar of a sync or fetch: one step per month.
auto month_progress(ProgressBar& bar) {
  return [&bar](std::size_t done, std::size_t total, const catalog::ListedMonth& m) {
    bar.update(done, total, m.id);
  };
}

catalog::SyncOptions sync_options(const CatalogSyncOptions& options) {
  catalog::SyncOptions sync;
  if (!options.source.empty()) sync.source = options.source;
  sync.all = options.all;
  sync.fetch.attempts = options.attempts;
  sync.fetch.timeout = std::chrono::seconds(options.timeout_seconds);
  sync.fetch.connect_timeout = std::chrono::seconds(options.connect_timeout_seconds);
  sync.fetch.ca_file = options.ca_file;
  sync.fetch.on_retry = [](const std::string& why, std::chrono::milliseconds wait) {
    std::fprintf(stderr, "kbgap: %s; trying again in %.1f s\n", why.c_str(),
                 static_cast<double>(wait.count()) / 1000);
  };
  return sync;
}

}  // namespace

int run_catalog_fetch(const CatalogSyncOptions& options) {
  catalog::SyncOptions sync = sync_options(options);
  ProgressBar bar("fetching", ProgressBar::interactive());
  sync.on_month = month_progress(bar);
  const auto start = std::chrono::steady_clock::now();
  auto months = catalog::fetch_catalog_archive(sync, options.out);
  bar.finish();
  if (!months) {
    std::fprintf(stderr, "kbgap: catalog fetch from %s: %s (%s was not written)\n",
                 net::url_for_messages(sync.source).c_str(), months.error().message.c_str(),
                 options.out.c_str());
    return kExitBadInput;
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  fmt::print(
      "fetched {} months from {} into {} in {:.1f} s; on the machine without the "
      "internet: kbgap catalog import {}\n",
      *months, net::url_for_messages(sync.source), options.out, elapsed.count(), options.out);
  return kExitOk;
}

int run_catalog_sync(const CatalogSyncOptions& options) {
  auto store = open_catalog_store(options.data_dir);
  if (!store) return report(store.error());
  // A new data directory starts from the bundled catalog: only what is newer is fetched.
  if (!options.all) {
    if (auto ensured = ensure_bundled_catalog(**store); !ensured) return report(ensured.error());
  }
  catalog::SyncOptions sync = sync_options(options);
  ProgressBar bar("syncing", ProgressBar::interactive());
  sync.on_month = month_progress(bar);
  const auto start = std::chrono::steady_clock::now();
  auto summary = catalog::sync_catalog(**store, sync);
  bar.finish();
  if (!summary) {
    std::fprintf(stderr,
                 "kbgap: catalog sync from %s: %s (months already imported are kept; run the "
                 "sync again to resume)\n",
                 net::url_for_messages(sync.source).c_str(), summary.error().message.c_str());
    return kExitBadInput;
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  fmt::print(
      "synced from {} in {:.1f} s: {} months listed, {} already current, {} fetched, {} "
      "changed the catalog\n",
      net::url_for_messages(sync.source), elapsed.count(), summary->listed, summary->up_to_date,
      summary->fetched.size(), summary->changed());
  for (const catalog::DocumentResult& d : summary->fetched) {
    fmt::print("  {:<10} {:<28} revision {} of {}\n", d.id, catalog::outcome_name(d.outcome),
               d.revision, d.current_release.substr(0, 10));
  }
  return kExitOk;
}

int run_catalog_diff(const CatalogDiffOptions& options) {
  auto store = open_catalog_store(options.data_dir);
  if (!store) return report(store.error());
  if (auto ensured = ensure_bundled_catalog(**store); !ensured) return report(ensured.error());
  auto imports = (*store)->imports();
  if (!imports) return report(imports.error());
  // Which imports: of a month, since a day, or the newest import day's.
  std::string since = options.since;
  if (options.month.empty() && since.empty() && !imports->empty()) {
    since = imports->back().imported_at.substr(0, 10);
  }
  std::vector<const catalog::ImportRecord*> chosen;
  for (const catalog::ImportRecord& r : *imports) {
    if (!options.month.empty() && r.document_id != options.month) continue;
    if (!since.empty() && r.imported_at.substr(0, 10) < since) continue;
    chosen.push_back(&r);
  }
  if (!options.month.empty() && chosen.empty()) {
    std::fprintf(stderr, "kbgap: no import of %s is recorded\n", options.month.c_str());
    return kExitBadInput;
  }
  boost::json::array json_out;
  const std::size_t limit = options.full ? SIZE_MAX : 25;
  auto some = [&](auto list, auto text) {
    std::vector<std::string> items;
    for (std::size_t i = 0; i < list.size() && i < limit; ++i) items.push_back(text(list[i]));
    std::string out = fmt::format("{}", fmt::join(items, ", "));
    if (list.size() > limit) out += fmt::format(", ... ({} more; --full)", list.size() - limit);
    return out;
  };
  for (const catalog::ImportRecord* r : chosen) {
    auto c = catalog::changes_from_json(r->changes);
    if (!c) return report(c.error());
    if (options.format == "json") {
      boost::json::object o{{"month", r->document_id},      {"outcome", r->outcome},
                            {"revision", r->revision},      {"currentRelease", r->current_release},
                            {"importedAt", r->imported_at}, {"source", r->source}};
      o["changes"] = boost::json::parse(catalog::to_json(*c));
      json_out.push_back(std::move(o));
      continue;
    }
    fmt::print("{} {} (revision {} of {}), imported {} from {}\n", r->document_id, r->outcome,
               r->revision, r->current_release.substr(0, 10), r->imported_at, r->source);
    if (r->changes == "{}") {
      fmt::print("  (stored before kbgap kept what an import changes)\n");
      continue;
    }
    if (c->empty()) fmt::print("  no change in KBs, supersedence, fixed builds or products\n");
    auto kb = [](catalog::KbNumber k) { return fmt::format("KB{}", k); };
    auto edge = [](const std::pair<catalog::KbNumber, catalog::KbNumber>& e) {
      return fmt::format("KB{} > KB{}", e.first, e.second);
    };
    if (!c->new_kbs.empty()) {
      fmt::print("  new KBs ({}): {}\n", c->new_kbs.size(), some(c->new_kbs, kb));
    }
    if (!c->removed_kbs.empty()) {
      fmt::print("  KBs no longer listed ({}): {}\n", c->removed_kbs.size(),
                 some(c->removed_kbs, kb));
    }
    if (!c->new_supersedes.empty()) {
      fmt::print("  supersedence added ({}): {}\n", c->new_supersedes.size(),
                 some(c->new_supersedes, edge));
    }
    if (!c->removed_supersedes.empty()) {
      fmt::print("  supersedence removed ({}): {}\n", c->removed_supersedes.size(),
                 some(c->removed_supersedes, edge));
    }
    if (!c->fixed_builds.empty()) {
      fmt::print("  fixed builds changed ({}):\n", c->fixed_builds.size());
      for (std::size_t i = 0; i < c->fixed_builds.size() && i < limit; ++i) {
        const auto& b = c->fixed_builds[i];
        fmt::print("    KB{} on {}: {} -> {}\n", b.kb, b.product,
                   b.before.empty() ? "(none)" : b.before, b.after.empty() ? "(none)" : b.after);
      }
      if (c->fixed_builds.size() > limit) {
        fmt::print("    ... ({} more; --full)\n", c->fixed_builds.size() - limit);
      }
    }
    if (!c->new_products.empty()) {
      fmt::print("  new products ({}): {}\n", c->new_products.size(),
                 some(c->new_products, [](const std::pair<std::string, std::string>& p) {
                   return fmt::format("{} ({})", p.second, p.first);
                 }));
    }
  }
  if (options.format == "json") {
    fmt::print("{}\n", boost::json::serialize(boost::json::object{{"imports", json_out}}));
  } else if (chosen.empty()) {
    fmt::print("no import since {}\n", since);
  }
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
  auto documents = (*store)->documents();
  if (!documents) return report(documents.error());
  const catalog::Freshness fresh = catalog::freshness(*documents);
  std::vector<const catalog::StoredDocument*> before_2016;  // WES-NG's days, oldest first
  for (const catalog::StoredDocument& d : *documents) {
    if (catalog::is_wesng_document(d.id)) before_2016.push_back(&d);
  }
  if (options.format == "json") {
    boost::json::object o;
    o["documents"] = stats->documents;
    o["products"] = stats->products;
    o["cves"] = stats->cves;
    o["kbs"] = stats->kbs;
    o["supersedenceEdges"] = stats->supersedence_edges;
    o["firstRelease"] = stats->first_release;
    o["lastRelease"] = stats->last_release;
    o["wesngDocuments"] = stats->bulletin_days;  // days of bulletins before 2016
    o["firstBulletin"] = stats->first_bulletin;
    o["newestCompleteMonth"] = fresh.newest_complete ? fresh.newest_complete->month : "";
    boost::json::array partial, months;
    for (const std::string& m : fresh.partial_after) partial.emplace_back(m);
    o["partialMonthsAfter"] = std::move(partial);
    boost::json::array before;
    for (const std::string& m : fresh.partial_before) before.emplace_back(m);
    o["partialMonthsBefore"] = std::move(before);
    for (const catalog::MonthFreshness& m : fresh.months) {
      months.emplace_back(boost::json::object{{"id", m.id},
                                              {"month", m.month},
                                              {"patchTuesday", m.patch_tuesday},
                                              {"revision", m.revision},
                                              {"currentRelease", m.current_release},
                                              {"kbFixes", m.kb_fixes},
                                              {"complete", m.complete}});
    }
    o["months"] = std::move(months);
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
  if (!before_2016.empty()) {
    fmt::print(
        "before April 2016   {} days of bulletins, {} to {}, from WES-NG's definitions ({})\n",
        before_2016.size(), before_2016.front()->initial_release.substr(0, 10),
        before_2016.back()->initial_release.substr(0, 10), before_2016.back()->source);
  }
  fmt::print("last release        {}\n", stats->last_release);
  fmt::print("coverage            {}\n", fresh.summary());
  if (fresh.newest_complete) {
    const catalog::MonthFreshness& n = *fresh.newest_complete;
    fmt::print("newest complete     {} (Patch Tuesday {}; revision {} of {})\n", n.month,
               n.patch_tuesday, n.revision, n.current_release.substr(0, 10));
  }
  const std::vector<std::string>& partial_before = fresh.partial_before;
  if (!partial_before.empty()) {
    fmt::print("partial, before it  {} (early revisions: sync to complete them)\n",
               fmt::join(partial_before, ", "));
  }
  if (auto warning = fresh.stale_warning(utc_now().substr(0, 10))) {
    fmt::print("warning             {}\n", *warning);
  }
  fmt::print("\n{:<10} {:<10}  {:>9}  {:<10}  {:>8}\n", "month", "id", "revision", "revised",
             "KB fixes");
  for (const catalog::MonthFreshness& m : fresh.months) {
    fmt::print("{:<10} {:<10}  {:>9}  {:<10}  {:>8}  {}\n", m.month, m.id, m.revision,
               m.current_release.substr(0, 10), m.kb_fixes,
               m.complete ? "complete" : "partial (an early revision)");
  }
  return kExitOk;
}

namespace {

std::string_view kind_name(engine::FixKind kind) {
  switch (kind) {
    case engine::FixKind::kRegular:
      return "update";
    case engine::FixKind::kMonthlyRollup:
      return "Monthly Rollup";
    case engine::FixKind::kSecurityOnly:
      return "Security Only";
    case engine::FixKind::kIeCumulative:
      return "IE cumulative";
    case engine::FixKind::kPreviewRollup:
      return "preview rollup";
    case engine::FixKind::kNonSecurity:
      return "preview/out-of-band";
    case engine::FixKind::kServicingStack:
      return "servicing stack";
    case engine::FixKind::kSetupUpdate:
      return "setup dynamic update";
    case engine::FixKind::kHotpatch:
      return "hotpatch";
  }
  return "?";
}

std::string builds_text(const std::vector<engine::Build>& builds) {
  std::string out;
  for (const engine::Build& b : builds) {
    if (!out.empty()) out += ",";
    out += fmt::format("{}.{}.{}.{}", b.major, b.minor, b.build, b.revision);
  }
  return out;
}

}  // namespace

int run_catalog_line(const CatalogLineOptions& options) {
  const int as_of = options.as_of.empty() ? 0 : engine::day_number(options.as_of);
  if (!options.as_of.empty() && as_of == 0) {
    std::fprintf(stderr, "kbgap: --as-of must be a date, YYYY-MM-DD, not '%s'\n",
                 options.as_of.c_str());
    return kExitUsage;
  }
  auto catalog = load_catalog_index(options.data_dir);
  if (!catalog) return report(catalog.error());
  const engine::CatalogIndex& c = *catalog;
  const auto& products = c.find_products_by_name(options.product);
  std::vector<int> lines;
  for (engine::ProductIndex p : products) {
    for (int line : c.carrier_lines(p)) {
      if (line >= 0 && std::find(lines.begin(), lines.end(), line) == lines.end()) {
        lines.push_back(line);
      }
    }
  }
  if (products.empty()) {
    std::fprintf(stderr, "kbgap: the catalog has no product named '%s'\n", options.product.c_str());
    return kExitBadInput;
  }
  if (lines.empty()) {
    fmt::print("{}: no servicing line (each update stands alone)\n", options.product);
    return kExitOk;
  }
  auto fix_of = [&](const engine::ServicingLine& line, engine::KbIndex kb) {
    for (engine::ProductIndex p : line.products) {
      for (const engine::ProductFix& f : c.products()[p].fixes) {
        if (f.kb == kb) return &f;
      }
    }
    for (engine::ProductIndex p : line.hosted) {
      for (const engine::ProductFix& f : c.products()[p].fixes) {
        if (f.kb == kb) return &f;
      }
    }
    return static_cast<const engine::ProductFix*>(nullptr);
  };
  for (int l : lines) {
    const engine::ServicingLine& line = c.line_info(l);
    fmt::print("line: {} ({})\n", line.key,
               line.model == engine::LineModel::kRollup
                   ? "rollups: each Monthly Rollup contains all before it"
                   : "cumulative: each update contains all before it");
    for (engine::ProductIndex p : line.hosted) {
      fmt::print("  delivers for its host: {}\n", c.products()[p].name);
    }
    fmt::print("  {:>4}  {:<10} {:<10}  {:<20} {}\n", "#", "KB", "released", "kind",
               "fixed builds");
    for (std::size_t i = 0; i < line.chain.size(); ++i) {
      const engine::KbIndex kb = line.chain[i];
      if (as_of != 0 && c.release_day(kb) > as_of) break;
      const engine::ProductFix* f = fix_of(line, kb);
      std::string row =
          fmt::format("  {:>4}  KB{:<8} {:<10}  {:<20} {}", i, c.kbs()[kb].kb, c.release_date(kb),
                      f ? kind_name(f->kind) : "?", f ? builds_text(c.kb_builds(kb)) : "");
      while (row.ends_with(' ')) row.pop_back();  // a KB without fixed builds
      fmt::print("{}\n", row);
      // What it carries from here on.
      std::vector<std::string> carried;
      std::vector<engine::ProductIndex> carriers = line.products;
      carriers.insert(carriers.end(), line.hosted.begin(), line.hosted.end());
      for (engine::ProductIndex p : carriers) {
        for (const engine::ProductFix& g : c.products()[p].fixes) {
          auto place = c.line_place(l, g.kb);
          if (place && place->carried && place->position == static_cast<int>(i)) {
            const std::string text =
                fmt::format("KB{} ({}{})", c.kbs()[g.kb].kb, kind_name(g.kind),
                            g.foreign ? ", fixed build of another release" : "");
            if (std::find(carried.begin(), carried.end(), text) == carried.end()) {
              carried.push_back(text);
            }
          }
        }
      }
      if (!carried.empty()) {  // wrapped at about 100 columns
        std::string text = "        also contains";
        std::size_t column = text.size();
        for (std::size_t i = 0; i < carried.size(); ++i) {
          const std::string item = carried[i] + (i + 1 < carried.size() ? "," : "");
          if (column + 1 + item.size() > 100) {
            text += "\n         ";
            column = 9;
          }
          text += " " + item;
          column += 1 + item.size();
        }
        fmt::print("{}\n", text);
      }
    }
  }
  return kExitOk;
}

}  // namespace kbgap::app
