// WES-NG's rows before April 2016 (catalog/wesng_reader.h): the bundled extract read whole, damaged
// input refused with its line, and what the bulletins change for the real devices.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "catalog/bundled_catalog.h"
#include "catalog/wesng_reader.h"
#include "common/text.h"
#include "engine/evaluate.h"
#include "engine_support.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "test_support.h"
#include "update/importer.h"

namespace kbgap::catalog {
namespace {

using engine::CatalogIndex;
using engine::KbIndex;

constexpr std::string_view kHeader =
    "\"DatePosted\",\"CVE\",\"BulletinKB\",\"Title\",\"AffectedProduct\",\"AffectedComponent\","
    "\"Severity\",\"Impact\",\"Supersedes\",\"Exploits\"\r\n";

// A zip holding `members` (name, bytes), as WES-NG publishes its definitions.
std::string zip_of(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* self, const void* data, size_t n) -> la_ssize_t {
        static_cast<std::string*>(self)->append(static_cast<const char*>(data), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& [name, bytes] : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(bytes.size()));
    archive_write_header(a, e);
    archive_write_data(a, bytes.data(), bytes.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

Result<WesngDefinitions> read_zip(const std::string& zip,
                                  const std::map<std::string, std::string>& ids = {}) {
  auto reader = TarZstReader::from_memory(
      std::span(reinterpret_cast<const unsigned char*>(zip.data()), zip.size()), "defs.zip",
      ArchiveFormat::kZip);
  return read_wesng(reader, "defs.zip", ids);
}

std::string read_error(const std::string& csv, const std::string& member = "CVEs_20260628.csv") {
  auto r = read_zip(zip_of({{member, csv}}));
  return r ? "" : r.error().message;
}

const std::string kRow =
    "\"20151208\",\"CVE-2015-6130\",\"3108670\",\"Security Update for Windows\",\"Windows Vista "
    "Service Pack 2\",\"\",\"Critical\",\"Remote Code Execution\",\"3081320\",\"\"\r\n";

TEST(Wesng, ReadsEveryRowOfTheBundledExtract) {
  auto reader = TarZstReader::from_memory(bundled_wesng_archive(), "bundled", ArchiveFormat::kZip);
  auto defs = read_wesng(reader, "bundled", {});
  ASSERT_TRUE(defs) << defs.error().message;
  std::uint64_t skipped = 0;
  for (const auto& [reason, n] : defs->skipped.by_reason()) skipped += n;
  EXPECT_EQ(defs->imported + skipped, defs->rows);
  // The extract holds the rows before April 2016 only: nothing is left out for its date.
  EXPECT_EQ(defs->skipped.by_reason().size(), 2u);
  EXPECT_GT(defs->skipped.get("no CVE id (a security advisory's row)"), 0u);
  EXPECT_GT(defs->skipped.get(
                "the .NET Framework 4.x (replaced by in-place upgrades; no inventory shows which)"),
            0u);
  EXPECT_GT(defs->imported, 60'000u);
  ASSERT_FALSE(defs->documents.empty());
  std::string previous;
  std::set<KbNumber> kbs;
  for (const Document& d : defs->documents) {
    EXPECT_TRUE(is_wesng_document(d.id)) << d.id;
    EXPECT_LT(d.initial_release, "2016-04-01") << d.id;
    EXPECT_GT(d.initial_release, previous) << d.id;  // one document per day, oldest first
    previous = d.initial_release;
    EXPECT_TRUE(d.title.ends_with("Security Updates (WES-NG)")) << d.title;
    EXPECT_TRUE(d.source.starts_with("bundled!CVEs_")) << d.source;
    for (const Vulnerability& v : d.vulnerabilities) {
      EXPECT_TRUE(v.cve.starts_with("CVE-")) << d.id;
      ASSERT_FALSE(v.fixes.empty()) << v.cve;
      for (const KbFix& f : v.fixes) {
        EXPECT_FALSE(f.product_ids.empty()) << v.cve;
        for (const std::string& p : f.product_ids) EXPECT_TRUE(p.starts_with("wesng:")) << p;
        kbs.insert(f.kb);
      }
    }
  }
  EXPECT_GT(kbs.size(), 2000u);                              // November 2008 to March 2016
  EXPECT_EQ(defs->documents.back().id, "wesng-2016-03-08");  // the last Patch Tuesday before
  // What an inventory does not show is named: Internet Explorer before 11, Office.
  EXPECT_GT(defs->not_on_devices.count("Windows Internet Explorer 8"), 0u);
  EXPECT_EQ(defs->not_on_devices.count("Windows Internet Explorer 11"), 0u);
}

TEST(Wesng, DamagedInputIsAnErrorNamingTheLine) {
  const std::string header(kHeader);
  EXPECT_EQ(read_error(header + kRow), "");
  // A field holding a line end moves the lines after it.
  const std::string multi_line =
      "\"20151208\",\"CVE-2015-6130\",\"3108670\",\"Security Update\nfor Windows\",\"Windows "
      "Vista Service Pack 2\",\"\",\"Critical\",\"Remote Code Execution\",\"\",\"\"\r\n";
  struct Case {
    std::string csv, expected;
  };
  const Case cases[] = {
      {"\"Date\",\"CVE\"\r\n" + kRow, "defs.zip!CVEs_20260628.csv:1: the header is not WES-NG's"},
      {header + kRow + "\"20151208\",\"CVE-2015-6130\",\"3108670\"\r\n",
       "defs.zip!CVEs_20260628.csv:3: 3 fields where WES-NG writes 10"},
      {header + multi_line + "\"2015-12-08\"" + kRow.substr(10),
       "defs.zip!CVEs_20260628.csv:4: DatePosted '2015-12-08' is not a date"},
      {header + "\"20151308\"" + kRow.substr(10),
       "defs.zip!CVEs_20260628.csv:2: DatePosted '20151308' is not a date"},
      {header + kRow + "\"20151208,\"CVE\r\n", "defs.zip!CVEs_20260628.csv:3: not CSV"},
      {"", "defs.zip!CVEs_20260628.csv: empty"},
  };
  for (const Case& c : cases) {
    const std::string error = read_error(c.csv);
    EXPECT_TRUE(error.starts_with(c.expected)) << error << "\nexpected: " << c.expected;
  }
  EXPECT_EQ(read_error(header + kRow, "definitions.csv"),
            "defs.zip: no CVEs_YYYYMMDD.csv in it: not WES-NG's definitions.zip");
  auto not_zip = read_zip("PK\x03\x04 not really a zip");
  ASSERT_FALSE(not_zip);
  EXPECT_NE(not_zip.error().message.find("defs.zip: corrupt .zip archive"), std::string::npos)
      << not_zip.error().message;
}

TEST(Wesng, RowsLandOnMsrcProductsAndComponents) {
  const std::string header(kHeader);
  const std::map<std::string, std::string> ids = {
      {fold_name("Windows Vista Service Pack 2"), "10049"},
      {fold_name("Internet Explorer 11 on Windows 7 for x64-based Systems Service Pack 1"),
       "10049-10855"}};
  const std::string csv =
      header + kRow +
      // The OS named as the component, the software as the product: swapped back.
      "\"20151208\",\"CVE-2015-6131\",\"3108669\",\"x\",\"Windows Internet Explorer 11\","
      "\"Windows 7 for x64-based Systems Service Pack 1\",\"Critical\",\"Remote Code "
      "Execution\",\"\",\"\"\r\n"
      // An in-box part of Windows is the OS; VBScript 5.8 (its version depends on IE) is not.
      "\"20151208\",\"CVE-2015-6132\",\"3108671\",\"x\",\"Windows Vista Service Pack 2\","
      "\"Windows GDI+\",\"Important\",\"Remote Code Execution\",\"\",\"\"\r\n"
      "\"20151208\",\"CVE-2015-6133\",\"3108672\",\"x\",\"Windows Vista Service Pack 2\","
      "\"VBScript 5.8\",\"Important\",\"Remote Code Execution\",\"\",\"\"\r\n";
  auto defs = read_zip(zip_of({{"CVEs_20260628.csv", csv}}), ids);
  ASSERT_TRUE(defs) << defs.error().message;
  ASSERT_EQ(defs->documents.size(), 1u);
  std::map<std::string, std::string> product_of_cve;
  for (const Vulnerability& v : defs->documents[0].vulnerabilities) {
    ASSERT_EQ(v.fixes.size(), 1u);
    product_of_cve[v.cve] = v.fixes[0].product_ids.at(0);
  }
  EXPECT_EQ(product_of_cve["CVE-2015-6130"], "10049");
  EXPECT_EQ(product_of_cve["CVE-2015-6131"], "10049-10855");
  EXPECT_EQ(product_of_cve["CVE-2015-6132"], "10049");
  EXPECT_EQ(product_of_cve["CVE-2015-6133"], "wesng:vbscript 5.8 on windows vista service pack 2");
  EXPECT_EQ(defs->not_on_devices, (std::map<std::string, std::uint64_t>{{"VBScript 5.8", 1}}));
  const Vulnerability& first = defs->documents[0].vulnerabilities[0];
  EXPECT_EQ(first.fixes[0].supersedes, std::vector<KbNumber>{3081320});
  EXPECT_EQ(defs->documents[0].title, "December 2015 Security Updates (WES-NG)");
  EXPECT_EQ(defs->documents[0].current_release, "2026-06-28T00:00:00Z");
}

TEST(Wesng, ImportIsRepeatableAndAllOrNothing) {
  auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
  ASSERT_TRUE(store) << store.error().message;
  auto first = ensure_catalog(**store, nullptr);
  ASSERT_TRUE(first) << first.error().message;
  const auto before = (*store)->documents();
  ASSERT_TRUE(before);
  const auto wesng = std::count_if(before->begin(), before->end(),
                                   [](const StoredDocument& d) { return is_wesng_document(d.id); });
  EXPECT_GT(wesng, 90);
  // Again: every day unchanged.
  auto again_reader =
      TarZstReader::from_memory(bundled_wesng_archive(), "again.zip", ArchiveFormat::kZip);
  auto again = import_wesng(again_reader, "again.zip", **store);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->summary.count(DocumentOutcome::kUnchanged), wesng);
  // A damaged zip: an error, and nothing changed.
  auto span = bundled_wesng_archive();
  const std::string cut(reinterpret_cast<const char*>(span.data()), span.size() / 2);
  auto damaged_reader = TarZstReader::from_memory(
      std::span(reinterpret_cast<const unsigned char*>(cut.data()), cut.size()), "cut.zip",
      ArchiveFormat::kZip);
  EXPECT_FALSE(import_wesng(damaged_reader, "cut.zip", **store));
  const auto after = (*store)->documents();
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), before->size());
  for (std::size_t i = 0; i < after->size(); ++i)
    EXPECT_EQ((*after)[i].sha256, (*before)[i].sha256);
}

// Each name once: a row for a product MSRC names lands on MSRC's product, so that its KBs join
// the same servicing line and supersedence.
TEST(Wesng, NoProductTwiceInTheFullCatalog) {
  const CatalogIndex& c = test::full_catalog();
  std::size_t from_wesng = 0, shared = 0;
  for (engine::ProductIndex p : c.product_indices()) {
    const auto& info = c.products()[p];
    EXPECT_EQ(c.find_products_by_name(info.name).size() > 1 && info.id.starts_with("wesng:"), false)
        << info.name;
    bool has_wesng_fix = false, has_msrc_fix = false;
    for (const engine::ProductFix& f : info.fixes) {
      (c.release_date(f.kb) < "2016-04-01" ? has_wesng_fix : has_msrc_fix) = true;
    }
    from_wesng += info.id.starts_with("wesng:") ? 1 : 0;
    shared += has_wesng_fix && has_msrc_fix ? 1 : 0;
  }
  EXPECT_GT(from_wesng, 0u);
  EXPECT_GT(shared, 50u);  // Windows 7, 8.1, Vista, Server 2008/2012, Internet Explorer 11...
}

// XP, Server 2003 and Vista were serviced by single updates: each is reported until it, or an
// update that supersedes it (published supersedence), is installed; none stands for another.
TEST(Wesng, LegacyWindowsGetsSingleUpdatesByPublishedSupersedence) {
  const CatalogIndex& c = test::full_catalog();
  int devices = 0;
  for (const inventory::Device& d : test::real_devices()) {
    if (d.os_family != "Windows XP" && !d.os_family.starts_with("Windows Server 2003") &&
        d.os_family != "Windows Vista") {
      continue;
    }
    SCOPED_TRACE(d.source);
    ++devices;
    const auto products = engine::device_products(c, d);
    ASSERT_FALSE(products.empty());
    const auto& os = c.products()[products.front()];
    EXPECT_EQ(os.line < 0 || c.line(os.line).empty(), true) << os.name << ": no cumulative chain";
    const engine::Evaluation ev = engine::evaluate(c, d, {});
    EXPECT_FALSE(ev.missing.empty());
    std::set<KbIndex> installed_or_replaced;
    std::vector<KbIndex> todo;
    for (KbNumber kb : d.installed_kbs) {
      if (auto i = c.find_kb(kb)) todo.push_back(*i);
    }
    while (!todo.empty()) {  // what the installed KBs supersede, transitively
      const KbIndex k = todo.back();
      todo.pop_back();
      if (!installed_or_replaced.insert(k).second) continue;
      for (KbIndex older : c.supersedes(k)) todo.push_back(older);
    }
    for (const engine::MissingKb& m : ev.missing) {
      EXPECT_FALSE(installed_or_replaced.contains(*c.find_kb(m.kb))) << "KB" << m.kb;
    }
  }
  EXPECT_GE(devices, 12);  // 5 XP, 4 Server 2003, 3 Vista inventories
}

// A Windows 7, 8.1, Server 2008 R2 or 2012 R2 device that installs Monthly Rollups needs none
// of the OS's single updates before them: the rollup carries them (docs/engine.md).
TEST(Wesng, RollupsCarryTheBulletinsBeforeThem) {
  const CatalogIndex& c = test::full_catalog();
  int devices = 0;
  for (const inventory::Device& d : test::real_devices()) {
    const auto products = engine::device_products(c, d);
    if (products.empty()) continue;
    const auto& os = c.products()[products.front()];
    if (os.line < 0 || c.line_info(os.line).model != engine::LineModel::kRollup) continue;
    SCOPED_TRACE(d.source);
    ++devices;
    const engine::Evaluation ev = engine::evaluate(c, d, {});
    for (const engine::MissingKb& m : ev.missing) {
      if (m.release_date >= "2016-04-01") continue;
      // Only a .NET Framework update may be older (the in-box .NET has its own line).
      for (const std::string& p : m.products_names) EXPECT_EQ(p, ".net_framework") << "KB" << m.kb;
    }
  }
  EXPECT_GE(devices, 10);
}

}  // namespace
}  // namespace kbgap::catalog
