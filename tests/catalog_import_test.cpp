// Importing real documents into the SQLite catalog: counts, revisions, atomicity, crashes.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <set>

#include "catalog/bundled_catalog.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "test_support.h"
#include "update/freshness.h"
#include "update/importer.h"
#include "update/sync.h"

namespace kbgap::catalog {
namespace {

using store::sqlite::SqliteCatalogStore;
using test::dump;
using test::real_document;
using test::real_documents;
using test::TempDir;
using test::write_file;

std::unique_ptr<SqliteCatalogStore> open_store(const TempDir& dir) {
  auto store = SqliteCatalogStore::open(dir.str("kbgap.db"));
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

Result<ImportSummary> import_paths(CatalogStore& store, const std::vector<std::string>& paths) {
  auto sources = ImportSources::from_paths(paths);
  if (!sources) return sources.error();
  return import_catalog(*sources, store, nullptr);
}

std::string write_doc(const TempDir& dir, const std::string& id, const std::string& xml) {
  std::string path = dir.str(id + ".xml");
  write_file(path, xml);
  return path;
}

// Independent counts over the raw XML of all real documents, by plain string search (no XML
// parser): what the catalog must hold if the reader neither drops nor invents anything.
struct RawCounts {
  std::set<std::string> products, cves, kbs;
  std::set<std::pair<std::string, std::string>> supersedence;  // (KB, superseded KB)
};

// The text of every <prefix:tag>...</prefix:tag>, and of every unprefixed <tag>...</tag>
// (2023-Dec uses default namespaces).
std::vector<std::string_view> elements(std::string_view xml, std::string_view prefix,
                                       std::string_view tag) {
  std::vector<std::string_view> out;
  for (std::string qualified : {fmt::format("{}:{}", prefix, tag), std::string(tag)}) {
    const std::string open = fmt::format("<{}>", qualified);
    const std::string close = fmt::format("</{}>", qualified);
    for (auto pos = xml.find(open); pos != std::string_view::npos; pos = xml.find(open, pos)) {
      pos += open.size();
      auto end = xml.find(close, pos);
      if (end == std::string_view::npos) break;
      out.push_back(xml.substr(pos, end - pos));
      pos = end;
    }
  }
  return out;
}

// Start offsets of every "<prefix:start" and "<start".
std::vector<std::size_t> starts(std::string_view xml, std::string_view prefix,
                                std::string_view start) {
  std::vector<std::size_t> out;
  for (std::string open : {fmt::format("<{}:{}", prefix, start), fmt::format("<{}", start)}) {
    for (auto pos = xml.find(open); pos != std::string_view::npos; pos = xml.find(open, pos + 1)) {
      out.push_back(pos + open.size());
    }
  }
  return out;
}

std::string digits_only(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.starts_with("KB")) s.remove_prefix(2);
  if (s.size() < 5 || s.size() > 9) return "";
  for (char c : s) {
    if (c < '0' || c > '9') return "";
  }
  return std::string(s);
}

RawCounts raw_counts() {
  RawCounts c;
  for (const auto& [id, document] : real_documents()) {
    std::string_view xml = document;
    for (std::size_t pos : starts(xml, "prod", "FullProductName ProductID=\"")) {
      c.products.emplace(xml.substr(pos, xml.find('"', pos) - pos));
    }
    for (std::string_view cve : elements(xml, "vuln", "CVE")) c.cves.emplace(cve);
    for (std::size_t pos : starts(xml, "vuln", "Remediation Type=\"Vendor Fix\">")) {
      std::string_view block = xml.substr(pos, xml.find("Remediation>", pos) - pos);
      auto description = elements(block, "vuln", "Description");
      if (description.empty()) continue;
      std::string kb = digits_only(description.front());
      if (kb.empty()) continue;
      c.kbs.insert(kb);
      for (std::string_view list : elements(block, "vuln", "Supercedence")) {
        // Runs of 5 to 9 digits; bulletin ids (MS16-087) have fewer.
        for (std::size_t i = 0; i < list.size();) {
          std::size_t j = i;
          while (j < list.size() && list[j] >= '0' && list[j] <= '9') ++j;
          if (j - i >= 5 && j - i <= 9 && std::string(list.substr(i, j - i)) != kb) {
            c.supersedence.emplace(kb, list.substr(i, j - i));
          }
          i = j == i ? i + 1 : j;
        }
      }
    }
  }
  return c;
}

TEST(CatalogImport, BundledCatalogHasTheRealCounts) {
  TempDir dir;
  auto store = open_store(dir);
  // MSRC's documents first, to compare with counts taken from the XML itself.
  ImportSources bundled = ImportSources::bundled();
  auto summary = import_catalog(bundled, *store, nullptr);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ(summary->documents.size(), 127u);
  EXPECT_EQ(summary->count(DocumentOutcome::kAdded), 127);
  auto stats = store->stats();
  ASSERT_TRUE(stats);
  RawCounts raw = raw_counts();
  EXPECT_EQ(stats->documents, 127);
  EXPECT_EQ(stats->products, static_cast<std::int64_t>(raw.products.size()));
  EXPECT_EQ(stats->cves, static_cast<std::int64_t>(raw.cves.size()));
  EXPECT_EQ(stats->kbs, static_cast<std::int64_t>(raw.kbs.size()));
  EXPECT_EQ(stats->supersedence_edges, static_cast<std::int64_t>(raw.supersedence.size()));
  EXPECT_EQ(stats->first_release, "2016-04-12");
  EXPECT_EQ(stats->last_release, "2026-08-06");

  // A catalog without the bulletins before 2016 (one made before kbgap bundled them) gets them,
  // and only them; the next call finds both and does nothing.
  auto added = ensure_catalog(*store, nullptr);
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_GT(added->documents.size(), 90u);
  for (const DocumentResult& d : added->documents) {
    EXPECT_TRUE(is_wesng_document(d.id)) << d.id;
    EXPECT_EQ(d.outcome, DocumentOutcome::kAdded) << d.id;
  }
  auto with_wesng = store->stats();
  ASSERT_TRUE(with_wesng);
  EXPECT_EQ(with_wesng->first_release, "2016-04-12");  // MSRC's; the bulletins are apart
  EXPECT_EQ(with_wesng->first_bulletin, "2008-11-11");
  EXPECT_EQ(with_wesng->documents, 127);
  EXPECT_EQ(with_wesng->bulletin_days, static_cast<std::int64_t>(added->documents.size()));
  auto again = ensure_catalog(*store, nullptr);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->documents.empty());

  // Days stored by older mapping rules (another revision and digest, as an older kbgap wrote
  // them) are mapped again and replaced.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.str("kbgap.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "UPDATE documents SET revision = '20260628', sha256 = 'older rules' "
                           "WHERE id LIKE 'wesng-%'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto remapped = ensure_catalog(*store, nullptr);
  ASSERT_TRUE(remapped) << remapped.error().message;
  EXPECT_EQ(remapped->documents.size(), added->documents.size());
  EXPECT_EQ(remapped->count(DocumentOutcome::kReplaced),
            static_cast<std::int64_t>(added->documents.size()));

  // Months an older kbgap stored without a CVE's own dates and vector: what migration 004 leaves
  // (the columns empty, the digests cleared). The next start reads the bundled months again.
  auto count = [&](const char* sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(dir.str("kbgap.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sql;
    const std::int64_t n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
  };
  ASSERT_EQ(count("SELECT count(*) FROM vulnerabilities WHERE published IS NULL"), 0);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.str("kbgap.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "UPDATE vulnerabilities SET published = NULL, updated = NULL, "
                           "cvss_vector = NULL; UPDATE documents SET sha256 = '' "
                           "WHERE id NOT LIKE 'wesng-%'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto refreshed = ensure_catalog(*store, nullptr);
  ASSERT_TRUE(refreshed) << refreshed.error().message;
  EXPECT_EQ(refreshed->count(DocumentOutcome::kReplaced), 127);
  EXPECT_EQ(count("SELECT count(*) FROM documents WHERE sha256 = ''"), 0);
  EXPECT_GT(count("SELECT count(*) FROM vulnerabilities WHERE cvss_vector IS NOT NULL"), 5000);
  EXPECT_EQ(count("SELECT count(*) FROM vulnerabilities v JOIN documents d ON d.id = "
                  "v.document_id WHERE v.published IS NULL AND d.id NOT LIKE 'wesng-%'"),
            0);
  EXPECT_TRUE(ensure_catalog(*store, nullptr)->documents.empty());

  // KB4540673 through the store: products named, supersedence kept.
  auto rems = store->kb_remediations(4540673);
  ASSERT_TRUE(rems);
  ASSERT_FALSE(rems->empty());
  bool on_1909 = false;
  for (const KbRemediation& r : *rems) {
    for (const NamedProduct& p : r.products) {
      if (p.name == "Windows 10 Version 1909 for x64-based Systems") on_1909 = true;
    }
    if (r.document_id == "2020-Mar") {
      EXPECT_EQ(r.supersedes, std::vector<KbNumber>{4532693});
    }
  }
  EXPECT_TRUE(on_1909);
  auto dec = store->kb_remediations(5008212);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(std::any_of(dec->begin(), dec->end(), [](const KbRemediation& r) {
    return r.document_id == "2021-Dec" && r.fixed_build == "10.0.19043.1415";
  }));
}

TEST(CatalogImport, ReimportingTheSameDocumentChangesNothing) {
  TempDir dir;
  auto store = open_store(dir);
  std::string path = write_doc(dir, "2020-Mar", real_document("2020-Mar"));
  auto first = import_paths(*store, {path});
  ASSERT_TRUE(first) << first.error().message;
  std::string before = dump(dir.str("kbgap.db"));
  auto second = import_paths(*store, {path});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->count(DocumentOutcome::kUnchanged), 1);
  EXPECT_EQ(dump(dir.str("kbgap.db")), before);
}

// A newer revision of a month: same document with a later CurrentReleaseDate and one fewer CVE.
TEST(CatalogImport, NewerRevisionReplacesTheMonthWithoutDuplicates) {
  TempDir dir;
  auto store = open_store(dir);
  auto first = import_paths(*store, {write_doc(dir, "2020-Mar", real_document("2020-Mar")),
                                     write_doc(dir, "2020-Feb", real_document("2020-Feb"))});
  ASSERT_TRUE(first) << first.error().message;
  auto stats_before = store->stats();
  ASSERT_TRUE(stats_before);

  std::size_t expected_vulns = 0;
  TempDir newer;
  auto second = import_paths(
      *store, {write_doc(newer, "2020-Mar", test::newer_revision_of_march_2020(&expected_vulns))});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->count(DocumentOutcome::kReplaced), 1);
  auto docs = store->documents();
  ASSERT_TRUE(docs);
  ASSERT_EQ(docs->size(), 2u);
  const StoredDocument& march = docs->back();
  EXPECT_EQ(march.id, "2020-Mar");
  EXPECT_EQ(march.revision, "12");
  EXPECT_EQ(march.vulnerabilities, static_cast<std::int64_t>(expected_vulns));
  auto stats_after = store->stats();
  ASSERT_TRUE(stats_after);
  EXPECT_EQ(stats_after->documents, 2);
  EXPECT_LT(stats_after->remediations, stats_before->remediations);
  // No KB fix row is duplicated: every (document, CVE, KB, sub-type, products) appears once.
  auto rems = store->kb_remediations(4540673);
  ASSERT_TRUE(rems);
  std::set<std::tuple<std::string, std::string, std::string, std::size_t>> seen;
  for (const KbRemediation& r : *rems) {
    EXPECT_TRUE(seen.emplace(r.document_id, r.cve, r.subtype, r.products.size()).second) << r.cve;
  }

  // The history: each month added, then March replaced by revision 12.
  auto history = store->imports();
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[2].document_id, "2020-Mar");
  EXPECT_EQ((*history)[2].outcome, "replaced");
  EXPECT_EQ((*history)[2].revision, "12");
  EXPECT_EQ((*history)[2].current_release, "2020-05-01T07:00:00Z");
  EXPECT_EQ((*history)[0].outcome, "added");

  // The older revision again: the newer stays, and nothing is recorded.
  std::string before = dump(dir.str("kbgap.db"));
  auto third = import_paths(*store, {write_doc(dir, "2020-Mar", real_document("2020-Mar"))});
  ASSERT_TRUE(third);
  EXPECT_EQ(third->count(DocumentOutcome::kKeptNewer), 1);
  EXPECT_EQ(dump(dir.str("kbgap.db")), before);
}

// What the bundled catalog covers: complete months through May 2026, and when it is stale. Eleven
// of its months are early revisions (the shared data took them from an older commit of its
// mirror): published days before their Patch Tuesday, listing no KB or a few.
TEST(CatalogFreshness, TheBundledCatalogIsCompleteThroughMay2026) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_TRUE(ensure_catalog(*store, nullptr));
  auto documents = store->documents();
  ASSERT_TRUE(documents);
  auto stats = store->stats();
  ASSERT_TRUE(stats);
  std::int64_t kb_fixes = 0;
  for (const StoredDocument& d : *documents) kb_fixes += d.kb_fixes;
  EXPECT_EQ(kb_fixes, stats->remediations);  // one row per KB fix, each counted in its month

  const Freshness f = freshness(*documents);
  EXPECT_EQ(f.months.size(), 125u);  // 127 documents, less Oct-OOB and 2017-May-B
  ASSERT_TRUE(f.newest_complete);
  EXPECT_EQ(f.newest_complete->id, "2026-May");
  EXPECT_EQ(f.newest_complete->patch_tuesday, "2026-05-12");
  EXPECT_EQ(f.summary(), "catalog through 2026-05; 2026-06 to 2026-08 partial");
  std::vector<std::string> partial;
  for (const MonthFreshness& m : f.months) {
    if (m.complete) continue;
    partial.push_back(m.id);
    EXPECT_TRUE(m.kb_fixes == 0 || (m.kb_fixes < 10 && m.initial_release < m.patch_tuesday))
        << m.id;
  }
  EXPECT_EQ(partial, (std::vector<std::string>{"2024-Nov", "2025-Jan", "2025-Mar", "2025-Apr",
                                               "2025-May", "2025-Aug", "2025-Oct", "2026-Apr",
                                               "2026-Jun", "2026-Jul", "2026-Aug"}));
  // The early revisions before the newest complete month, which a sync completes; the days of
  // bulletins before 2016 (WES-NG's) are not months of MSRC's and count in neither list.
  EXPECT_EQ(f.partial_before,
            (std::vector<std::string>{"2024-11", "2025-01", "2025-03", "2025-04", "2025-05",
                                      "2025-08", "2025-10", "2026-04"}));
  EXPECT_EQ(f.partial_after, (std::vector<std::string>{"2026-06", "2026-07", "2026-08"}));
  // Complete although MSRC dated the current release before the initial one (July 8 and 11).
  auto july_2023 = std::find_if(f.months.begin(), f.months.end(),
                                [](const MonthFreshness& m) { return m.id == "2023-Jul"; });
  ASSERT_NE(july_2023, f.months.end());
  EXPECT_TRUE(july_2023->complete);
  EXPECT_EQ(f.age_days("2026-06-26"), 45);
  EXPECT_FALSE(f.stale_warning("2026-06-26"));
  ASSERT_TRUE(f.stale_warning("2026-06-27"));
  EXPECT_NE(f.stale_warning("2026-06-27")->find("2026-05 (Patch Tuesday 2026-05-12), 46 days"),
            std::string::npos);
  EXPECT_TRUE(freshness({}).stale_warning("2026-06-01"));  // nothing complete at all
}

TEST(CatalogFreshness, PatchTuesdayIsTheSecondTuesday) {
  EXPECT_EQ(patch_tuesday("2026-05"), "2026-05-12");
  EXPECT_EQ(patch_tuesday("2026-11"), "2026-11-10");
  EXPECT_EQ(patch_tuesday("2024-01"), "2024-01-09");
  EXPECT_EQ(patch_tuesday("2019-10"), "2019-10-08");  // the 1st is a Tuesday
  EXPECT_EQ(patch_tuesday("2020-09"), "2020-09-08");
  EXPECT_EQ(patch_tuesday("2020-13"), "");
  EXPECT_EQ(patch_tuesday("May"), "");
}

TEST(CatalogImport, BadInputLeavesTheCatalogExactlyAsItWas) {
  TempDir dir;
  auto store = open_store(dir);
  auto first = import_paths(*store, {write_doc(dir, "2020-Mar", real_document("2020-Mar"))});
  ASSERT_TRUE(first);
  const std::string before = dump(dir.str("kbgap.db"));

  TempDir bad;
  const std::string& feb = real_document("2020-Feb");
  std::string good = write_doc(bad, "2020-Feb", feb);
  std::string truncated = write_doc(bad, "truncated", feb.substr(0, feb.size() * 2 / 3));
  std::string empty = write_doc(bad, "empty", "");
  std::string not_cvrf =
      write_doc(bad, "not-cvrf", "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"/>");
  std::string corrupt = bad.str("corrupt.tar.zst");
  {
    auto span = bundled_catalog_archive();
    std::string bytes(reinterpret_cast<const char*>(span.data()), span.size());
    bytes[bytes.size() / 2] ^= 0x40;
    write_file(corrupt, bytes);
  }
  for (const std::string& broken : {truncated, empty, not_cvrf, corrupt}) {
    // The good document first: it is parsed and written, then rolled back with the rest.
    auto r = import_paths(*store, {good, broken});
    ASSERT_FALSE(r) << broken;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput) << r.error().message;
    EXPECT_TRUE(r.error().message.starts_with(broken)) << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
    EXPECT_EQ(dump(dir.str("kbgap.db")), before) << broken;
  }
}

TEST(CatalogImport, KilledMidImportLeavesThePreviousCatalog) {
  TempDir dir;
  {
    auto store = open_store(dir);
    auto first = import_paths(*store, {write_doc(dir, "2020-Mar", real_document("2020-Mar"))});
    ASSERT_TRUE(first);
  }
  const std::string before = dump(dir.str("kbgap.db"));
  for (std::size_t kill_after : {1u, 20u, 60u}) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // The child imports the whole bundled catalog and dies by SIGKILL in the middle of it.
      auto store = SqliteCatalogStore::open(dir.str("kbgap.db"));
      if (!store) _exit(3);
      ImportSources sources = ImportSources::bundled();
      auto r = import_catalog(sources, **store, [&](const ImportProgress& p) {
        if (p.documents >= kill_after) raise(SIGKILL);
      });
      _exit(4);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    EXPECT_EQ(dump(dir.str("kbgap.db")), before) << "killed after " << kill_after;
  }
  // And the catalog is still writable afterwards.
  auto store = open_store(dir);
  auto again = import_paths(*store, {write_doc(dir, "2020-Feb", real_document("2020-Feb"))});
  ASSERT_TRUE(again) << again.error().message;
}

}  // namespace
}  // namespace kbgap::catalog

namespace kbgap::catalog {
namespace {

// The API's list of months as MSRC serves it (fields and shapes of
// https://api.msrc.microsoft.com/cvrf/v3.0/updates), read for a sync.
TEST(CatalogSync, TheListOfMonthsIsReadInReleaseOrderWithTheImportersNames) {
  const std::string body = R"({"@odata.context":"https://api.msrc.microsoft.com/$metadata#Updates",
    "value":[
      {"ID":"2026-Nov","Alias":"2026-Nov","DocumentTitle":"November 2026 Security Updates",
       "Severity":null,"InitialReleaseDate":"2026-11-10T08:00:00Z",
       "CurrentReleaseDate":"2026-11-12T08:00:00Z",
       "CvrfUrl":"https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2026-Nov"},
      {"ID":"2018-FEB","Alias":"2018-FEB","DocumentTitle":"February 2018 Security Updates",
       "Severity":null,"InitialReleaseDate":"2018-02-13T08:00:00Z",
       "CurrentReleaseDate":"2019-12-10T08:00:00.5+00:00",
       "CvrfUrl":"https://mirror.example.org/msrc/cvrf/2018-FEB"}]})";
  // From MSRC itself: its URLs.
  auto months = parse_updates(body, "https://api.msrc.microsoft.com/cvrf/v3.0/");
  ASSERT_TRUE(months) << months.error().message;
  ASSERT_EQ(months->size(), 2u);
  EXPECT_EQ((*months)[0].id, "2018-Feb");  // oldest first, named as the importer names it
  EXPECT_EQ((*months)[0].current_release, "2019-12-10T08:00:00Z");
  // Its CvrfUrl is on another host: fetched from the source, under the id as listed.
  EXPECT_EQ((*months)[0].url, "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2018-FEB");
  EXPECT_EQ((*months)[1].id, "2026-Nov");
  EXPECT_EQ((*months)[1].url, "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2026-Nov");
  // From a mirror that copied MSRC's list: every month from the mirror.
  months = parse_updates(body, "https://mirror.example.org/msrc");
  ASSERT_TRUE(months);
  EXPECT_EQ((*months)[0].url, "https://mirror.example.org/msrc/cvrf/2018-FEB");  // its own URL
  EXPECT_EQ((*months)[1].url, "https://mirror.example.org/msrc/cvrf/2026-Nov");

  for (const char* bad :
       {"", "<html>", "[]", R"({"value":{}})",
        R"({"value":[{"ID":"2026-Nov","CvrfUrl":"https://x/cvrf/2026-Nov"}]})",
        R"({"value":[{"ID":"../etc","CurrentReleaseDate":"2026-11-12T08:00:00Z"}]})"}) {
    auto refused = parse_updates(bad, "https://mirror.example.org");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("https://mirror.example.org/updates"), std::string::npos)
        << refused.error().message;
  }
}

}  // namespace
}  // namespace kbgap::catalog

namespace kbgap::catalog {
namespace {

std::string replaced_all(std::string text, const std::string& from, const std::string& to) {
  std::size_t n = 0;
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
    ++n;
  }
  if (n == 0) throw std::runtime_error("not in document: " + from);
  return text;
}

// What a revision changed, recorded with its import: a fixed build corrected, a supersedence
// link changed; and a new month's KBs and the products new to the catalog.
TEST(CatalogDiff, AnImportRecordsWhatItChangedInTheMonth) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_TRUE(import_paths(*store, {write_doc(dir, "2021-Nov", real_document("2021-Nov"))}));
  ASSERT_TRUE(import_paths(*store, {write_doc(dir, "2021-Dec", real_document("2021-Dec"))}));
  std::string revised = real_document("2021-Dec");
  revised = replaced_all(revised, "<cvrf:CurrentReleaseDate>2021-12-14T08:00:00Z",
                         "<cvrf:CurrentReleaseDate>2022-01-20T08:00:00Z");
  revised = replaced_all(revised, "<cvrf:Number>2</cvrf:Number>", "<cvrf:Number>3</cvrf:Number>");
  revised = replaced_all(revised, "10.0.19043.1415", "10.0.19043.1416");
  revised = replaced_all(revised, "<vuln:Supercedence>5006670</vuln:Supercedence>",
                         "<vuln:Supercedence>5006699</vuln:Supercedence>");
  TempDir newer;
  auto third = import_paths(*store, {write_doc(newer, "2021-Dec", revised)});
  ASSERT_TRUE(third) << third.error().message;
  ASSERT_EQ(third->count(DocumentOutcome::kReplaced), 1);

  auto history = store->imports();
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 3u);
  auto nov = changes_from_json((*history)[0].changes);
  auto dec = changes_from_json((*history)[1].changes);
  auto rev = changes_from_json((*history)[2].changes);
  ASSERT_TRUE(nov && dec && rev);
  // A new month: its KBs are new; its products only when no month before named them.
  EXPECT_FALSE(nov->new_kbs.empty());
  EXPECT_FALSE(nov->new_products.empty());
  EXPECT_TRUE(std::binary_search(dec->new_kbs.begin(), dec->new_kbs.end(), 5008212u));
  EXPECT_LT(dec->new_products.size(), nov->new_products.size());
  for (const auto& [id, name] : dec->new_products) {
    EXPECT_TRUE(std::none_of(nov->new_products.begin(), nov->new_products.end(),
                             [&](const auto& p) { return p.first == id; }))
        << id;
  }
  // The revision: only what was edited.
  EXPECT_TRUE(rev->new_kbs.empty());
  EXPECT_TRUE(rev->removed_kbs.empty());
  EXPECT_TRUE(rev->new_products.empty());
  ASSERT_FALSE(rev->fixed_builds.empty());
  for (const MonthChanges::Build& b : rev->fixed_builds) {
    EXPECT_NE(b.before.find("10.0.19043.1415"), std::string::npos) << b.kb << " " << b.product;
    EXPECT_NE(b.after.find("10.0.19043.1416"), std::string::npos) << b.kb << " " << b.product;
  }
  EXPECT_TRUE(std::any_of(
      rev->fixed_builds.begin(), rev->fixed_builds.end(), [](const MonthChanges::Build& b) {
        return b.kb == 5008212 && b.product == "Windows 10 Version 21H1 for x64-based Systems";
      }));
  const std::pair<KbNumber, KbNumber> before{5008212, 5006670}, after{5008212, 5006699};
  EXPECT_NE(std::find(rev->removed_supersedes.begin(), rev->removed_supersedes.end(), before),
            rev->removed_supersedes.end());
  EXPECT_NE(std::find(rev->new_supersedes.begin(), rev->new_supersedes.end(), after),
            rev->new_supersedes.end());
  // And the record reads back as it was written.
  EXPECT_EQ(to_json(*changes_from_json(to_json(*rev))), to_json(*rev));
}

}  // namespace
}  // namespace kbgap::catalog
