// The kbgap command line, run as a user would: exit codes, one-line errors, JSON stats.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>

#include "catalog/bundled_catalog.h"
#include "test_support.h"

namespace kbgap::test {
namespace {

std::size_t lines(const std::string& s) {
  return count_occurrences(s, "\n");
}

TEST(Cli, StatsImportsTheBundledCatalogThenRejectsBadInputWithoutTouchingIt) {
  TempDir dir;
  const std::string data = dir.str("data");
  CommandResult stats = run_kbgap("--data " + data + " catalog stats --format json");
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  boost::json::value json = boost::json::parse(stats.out);
  const auto& o = json.as_object();
  // 127 MSRC documents, and apart from them a document per day of bulletins before April 2016
  // (WES-NG's rows).
  EXPECT_EQ(o.at("documents").as_int64(), 127);
  EXPECT_GT(o.at("wesngDocuments").as_int64(), 90);
  EXPECT_EQ(o.at("firstBulletin").as_string(), "2008-11-11");
  for (const char* key : {"products", "cves", "kbs", "supersedenceEdges"}) {
    EXPECT_GT(o.at(key).as_int64(), 0) << key;
  }
  EXPECT_EQ(o.at("firstRelease").as_string(), "2016-04-12");
  EXPECT_EQ(o.at("lastRelease").as_string(), "2026-08-06");
  EXPECT_NE(stats.err.find(fmt::format("127 MSRC documents, {} days of bulletins before April 2016",
                                       o.at("wesngDocuments").as_int64())),
            std::string::npos)
      << stats.err;
  EXPECT_EQ(stats.err.find('\r'), std::string::npos) << "no progress bar under CI";

  const std::string before = dump(data + "/kbgap.db");
  const std::string& feb = real_document("2020-Feb");
  write_file(dir.path() / "truncated.xml", feb.substr(0, feb.size() / 3));
  write_file(dir.path() / "empty.xml", "");
  write_file(dir.path() / "not-cvrf.xml", "<?xml version=\"1.0\"?>\n<svg/>\n");
  {
    auto span = catalog::bundled_catalog_archive();
    std::string bytes(reinterpret_cast<const char*>(span.data()), span.size());
    bytes.resize(bytes.size() * 3 / 4);
    write_file(dir.path() / "corrupt.tar.zst", bytes);
  }
  for (const char* name : {"truncated.xml", "empty.xml", "not-cvrf.xml", "corrupt.tar.zst"}) {
    const std::string path = dir.str(name);
    CommandResult r = run_kbgap("--data " + data + " catalog import " + path);
    EXPECT_EQ(r.exit_code, 1) << name << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_TRUE(r.err.starts_with("kbgap: " + path + ":")) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(dump(data + "/kbgap.db"), before) << name;
  }

  // Re-importing a month that is stored already: reported unchanged.
  write_file(dir.path() / "2020-Feb.xml", feb);
  CommandResult same = run_kbgap("--data " + data + " catalog import " + dir.str("2020-Feb.xml"));
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.out.find("1 unchanged"), std::string::npos) << same.out;
  EXPECT_EQ(dump(data + "/kbgap.db"), before);

  // WES-NG's definitions (here kbgap's own extract of them): the days stored already, unchanged.
  const std::string extract = std::string(KBGAP_SOURCE_DIR) + "/data/catalog/wesng-before-2016.zip";
  CommandResult wesng = run_kbgap("--data " + data + " catalog import " + extract);
  ASSERT_EQ(wesng.exit_code, 0) << wesng.err;
  EXPECT_NE(wesng.out.find(fmt::format("0 added, 0 replaced, {} unchanged",
                                       o.at("wesngDocuments").as_int64())),
            std::string::npos)
      << wesng.out;
  EXPECT_NE(wesng.out.find("imported, but on no device"), std::string::npos) << wesng.out;
  EXPECT_EQ(dump(data + "/kbgap.db"), before);
  {
    const std::string zip = read_file(extract);
    write_file(dir.path() / "cut.zip", zip.substr(0, zip.size() / 2));
    CommandResult cut = run_kbgap("--data " + data + " catalog import " + dir.str("cut.zip"));
    EXPECT_EQ(cut.exit_code, 1) << cut.err;
    EXPECT_TRUE(cut.err.starts_with("kbgap: " + dir.str("cut.zip") + ": corrupt .zip archive"))
        << cut.err;
    EXPECT_EQ(lines(cut.err), 1u) << cut.err;
    EXPECT_EQ(dump(data + "/kbgap.db"), before);
  }

  CommandResult table = run_kbgap("--data " + data + " catalog stats");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("documents           127\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("before April 2016   "), std::string::npos) << table.out;
  EXPECT_EQ(table.err, "");
}

TEST(Cli, ImportReportsWhatItPassedOverByReason) {
  TempDir dir;
  write_file(dir.path() / "2021-Aug.xml", real_document("2021-Aug"));
  CommandResult r =
      run_kbgap("--data " + dir.str("data") + " catalog import " + dir.str("2021-Aug.xml"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 1 documents"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 added"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vendor fix without a KB number"), std::string::npos) << r.out;
}

// WES-NG's definitions into an empty data directory: its rows land on MSRC's products, so the
// bundled catalog is imported first; a directory of other documents stays without either.
TEST(Cli, WesngDefinitionsIntoAnEmptyCatalogBringTheBundledOneFirst) {
  TempDir dir;
  const std::string extract = std::string(KBGAP_SOURCE_DIR) + "/data/catalog/wesng-before-2016.zip";
  CommandResult r = run_kbgap("--data " + dir.str("data") + " catalog import " + extract);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("127 MSRC documents"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("0 added, 0 replaced"), std::string::npos) << r.out;  // the bundled days
  CommandResult stats = run_kbgap("--data " + dir.str("data") + " catalog stats --format json");
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto json = boost::json::parse(stats.out).as_object();
  EXPECT_EQ(json.at("documents").as_int64(), 127);
  EXPECT_GT(json.at("wesngDocuments").as_int64(), 90);
  // No product twice: the same products as a first start's catalog (rows on MSRC's ids).
  CommandResult fresh = run_kbgap("--data " + dir.str("fresh") + " catalog stats --format json");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_EQ(json.at("products"), boost::json::parse(fresh.out).as_object().at("products"));
}

TEST(Cli, ImportsADirectoryOfDocuments) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "cvrf" / "2020");
  write_file(dir.path() / "cvrf" / "2020" / "2020-Feb.xml", real_document("2020-Feb"));
  write_file(dir.path() / "cvrf" / "2020" / "2020-Mar.xml", real_document("2020-Mar"));
  write_file(dir.path() / "cvrf" / "notes.txt", "not a document");
  // --data may also follow the subcommand.
  CommandResult r = run_kbgap("catalog import " + dir.str("cvrf") + " --data " + dir.str("data"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 2 documents"), std::string::npos) << r.out;
  CommandResult stats = run_kbgap("--data " + dir.str("data") + " catalog stats --format json");
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto json = boost::json::parse(stats.out).as_object();
  EXPECT_EQ(json.at("documents").as_int64(), 2);
  EXPECT_EQ(json.at("firstRelease").as_string(), "2020-02-11");
  EXPECT_EQ(json.at("lastRelease").as_string(), "2020-03-10");
}

TEST(Cli, ADataFileThatIsNotADatabaseIsAClearError) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "data");
  write_file(dir.path() / "data" / "kbgap.db", real_document("2020-Mar").substr(0, 5000));
  CommandResult r = run_kbgap("--data " + dir.str("data") + " catalog stats");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_TRUE(r.err.starts_with("kbgap: " + dir.str("data") + "/kbgap.db: ")) << r.err;
}

TEST(Cli, ScanPrintsTheGetMissingKbsBodyForOneInventory) {
  TempDir dir;
  const std::string data = dir.str("data");
  write_file(dir.path() / "pc.json",
             R"({"computerDnsName": "pc1909", "osName": "Microsoft Windows 10 Pro",
                 "osBuild": "10.0.18363", "osArchitecture": "x64", "installedKbs": ["KB4532693"]})");
  CommandResult r = run_kbgap("--data " + data + " scan --format json " + dir.str("pc.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto body = boost::json::parse(r.out).as_object();
  ASSERT_EQ(body.size(), 2u);
  EXPECT_EQ(body.at("@odata.context").as_string(),
            "https://localhost/api/$metadata#Collection(microsoft.windowsDefenderATP.api."
            "PublicProductFixDto)");
  bool found = false;
  for (const auto& v : body.at("value").as_array()) {
    const auto& kb = v.as_object();
    // Exactly the fields of PublicProductFixDto, with their types (docs/api.md §2).
    ASSERT_EQ(kb.size(), 6u);
    EXPECT_TRUE(kb.at("id").is_string());
    EXPECT_TRUE(kb.at("name").is_string());
    EXPECT_TRUE(kb.at("productsNames").is_array());
    EXPECT_TRUE(kb.at("url").is_string());
    EXPECT_EQ(kb.at("machineMissedOn").as_int64(), 1);
    EXPECT_GT(kb.at("cveAddressed").as_int64(), 0);
    if (kb.at("id").as_string() == "5013945") {
      found = true;
      EXPECT_EQ(kb.at("name").as_string(), "May 2022 Security Updates");
      EXPECT_EQ(kb.at("productsNames").as_array().front().as_string(), "windows_10");
    }
  }
  EXPECT_TRUE(found) << r.out;

  // The second run reads the index cached beside the catalog; a damaged cache is rebuilt.
  ASSERT_TRUE(std::filesystem::exists(dir.path() / "data" / "catalog.index"));
  CommandResult cached = run_kbgap("--data " + data + " scan --format json " + dir.str("pc.json"));
  EXPECT_EQ(cached.out, r.out);
  write_file(dir.path() / "data" / "catalog.index", "KBGAPIDX garbage");
  CommandResult rebuilt = run_kbgap("--data " + data + " scan --format json " + dir.str("pc.json"));
  EXPECT_EQ(rebuilt.out, r.out);
  EXPECT_GT(std::filesystem::file_size(dir.path() / "data" / "catalog.index"), 1000u);

  CommandResult csv = run_kbgap("--data " + data + " scan --format csv " + dir.str("pc.json"));
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_TRUE(csv.out.starts_with(
      "deviceId,computerDnsName,source,kb,name,releaseDate,productsNames,cveAddressed,url\n"));
  EXPECT_NE(csv.out.find(",5013945,May 2022 Security Updates,2022-05-10,"), std::string::npos)
      << csv.out;

  CommandResult table =
      run_kbgap("--data " + data + " scan --as-of 2020-03-31 " + dir.str("pc.json"));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("March 2020 Security Updates"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("KB5013945"), std::string::npos) << table.out;
}

TEST(Cli, ScanRejectsBadInput) {
  TempDir dir;
  const std::string data = dir.str("data");
  write_file(dir.path() / "notes.txt", "shopping list\nmilk\n");
  CommandResult notes = run_kbgap("--data " + data + " scan " + dir.str("notes.txt"));
  EXPECT_EQ(notes.exit_code, 1);
  EXPECT_EQ(lines(notes.err), 1u) << notes.err;
  EXPECT_TRUE(notes.err.starts_with("kbgap: " + dir.str("notes.txt") + ":1: not an inventory"))
      << notes.err;
  CommandResult date =
      run_kbgap("--data " + data + " scan --as-of 2020-13-01 " + dir.str("notes.txt"));
  EXPECT_EQ(date.exit_code, 2) << date.err;
  CommandResult missing = run_kbgap("--data " + data + " scan " + dir.str("nope.txt"));
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
}

// A release newer than kbgap's table of builds (Windows 11 26H1, 10.0.28000) is named by the
// catalog's fixed builds; a build neither knows stays a clear error naming it.
TEST(Cli, ANewerReleaseIsLearntFromTheCatalog) {
  TempDir dir;
  const std::string data = dir.str("data");
  auto inventory = [&](const std::string& build) {
    const std::string path = dir.str("w" + build + ".json");
    write_file(path, R"({"computerDnsName": "new.example.com", "osName": "Microsoft Windows 11 )"
                     R"(Enterprise", "osBuild": ")" +
                         build + R"(", "osArchitecture": "x64", "installedKbs": []})");
    return path;
  };
  CommandResult known = run_kbgap("--data " + data + " scan " + inventory("10.0.28000"));
  ASSERT_EQ(known.exit_code, 0) << known.err;
  EXPECT_NE(known.out.find("(Windows 11 26H1, 10.0.28000"), std::string::npos) << known.out;
  EXPECT_NE(known.out.find("KB5089548"), std::string::npos) << known.out;  // May 2026's update
  // At a revision past May 2026's update (10.0.28000.2113), no OS update is missing.
  CommandResult current = run_kbgap("--data " + data + " scan " + inventory("10.0.28000.2113"));
  ASSERT_EQ(current.exit_code, 0) << current.err;
  EXPECT_EQ(current.out.find("KB5089548"), std::string::npos) << current.out;
  const std::string unknown_path = inventory("10.0.29999");
  CommandResult unknown = run_kbgap("--data " + data + " scan " + unknown_path);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(lines(unknown.err), 1u) << unknown.err;
  EXPECT_NE(unknown.err.find(unknown_path + ": unknown Windows build 10.0.29999"),
            std::string::npos)
      << unknown.err;
}

TEST(Cli, MissingFileAndBadUsage) {
  TempDir dir;
  CommandResult missing =
      run_kbgap("--data " + dir.str("data") + " catalog import " + dir.str("nope.xml"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "kbgap: " + dir.str("nope.xml") + ": no such file or directory\n");

  CommandResult usage = run_kbgap("catalog import");
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
  EXPECT_EQ(lines(usage.err), 1u) << usage.err;

  CommandResult format = run_kbgap("--data " + dir.str("data") + " catalog stats --format xml");
  EXPECT_EQ(format.exit_code, 2) << format.err;

  CommandResult unknown = run_kbgap("frobnicate");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;

  CommandResult help = run_kbgap("catalog import --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("paths"), std::string::npos) << help.out;
}

// `kbgap devices import`: real inventories in, one batch each; bad input changes nothing.
TEST(Cli, DevicesImportKeepsRealDevicesAndRefusesBadInputWhole) {
  TempDir dir;
  const std::string data = dir.str("data");
  const std::string inventories = std::string(KBGAP_SOURCE_DIR) + "/data/inventories/";
  CommandResult first = run_kbgap("--data " + data + " devices import " + inventories +
                                  "7_sp1_x64_enterprise_en-us_B_systeminfo.txt " + inventories +
                                  "7_sp1_x64_enterprise_en-us_B_qfe.txt " + inventories +
                                  "10_22H2_x64_enterprise_en-us_systeminfo.txt");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("imported 2 devices (2 new, 0 replaced) from 2 inventories"),
            std::string::npos)
      << first.out;
  const std::string before = dump(data + "/kbgap.db");
  // The same machine (A and B are two inventories of one computer): replaced, not added.
  CommandResult again = run_kbgap("--data " + data + " devices import " + inventories +
                                  "7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("imported 1 devices (0 new, 1 replaced)"), std::string::npos)
      << again.out;
  // A batch with one bad file is refused whole, with one line naming the file.
  write_file(dir.path() / "bad.json",
             R"({"devices": [{"computerDnsName": "x", "osBuild": "10.0"}]})");
  const std::string after_again = dump(data + "/kbgap.db");
  CommandResult bad = run_kbgap("--data " + data + " devices import " + inventories +
                                "11_24H2_x64_enterprise_systeminfo.txt " + dir.str("bad.json"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("bad.json"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_EQ(dump(data + "/kbgap.db"), after_again);
  EXPECT_NE(before, after_again);  // the dump does see devices
}

// `reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"` beside a systeminfo: the
// revision (UBR) is known, not inferred, and the answer is judged by it. The real Windows Server
// 2016 systeminfo with the revisions of its October 2024 (7428) and May 2026 (9140) cumulative
// updates (their fixed builds in the bundled catalog), in the layout reg prints.
TEST(Cli, RegistryValuesGiveTheRevisionSysteminfoLacks) {
  TempDir dir;
  const std::string data = dir.str("data");
  const std::string systeminfo = std::string(KBGAP_SOURCE_DIR) +
                                 "/data/inventories/srv_2016_1607_datacenter_en-us_systeminfo.txt";
  auto registry = [&](int ubr, int build) {
    const std::string path =
        dir.str("reg-" + std::to_string(ubr) + "-" + std::to_string(build) + ".txt");
    write_file(
        path,
        fmt::format("\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n"
                    "    SystemRoot    REG_SZ    C:\\Windows\r\n"
                    "    BuildLabEx    REG_SZ    {0}.{1}.amd64fre.rs1_release.180410-1801\r\n"
                    "    CurrentBuild    REG_SZ    {0}\r\n"
                    "    CurrentBuildNumber    REG_SZ    {0}\r\n"
                    "    CurrentMajorVersionNumber    REG_DWORD    0xa\r\n"
                    "    CurrentMinorVersionNumber    REG_DWORD    0x0\r\n"
                    "    CurrentVersion    REG_SZ    6.3\r\n"
                    "    EditionID    REG_SZ    ServerDatacenter\r\n"
                    "    ProductName    REG_SZ    Windows Server 2016 Datacenter\r\n"
                    "    ReleaseId    REG_SZ    1607\r\n"
                    "    UBR    REG_DWORD    {2:#x}\r\n\r\n",
                    build, ubr, ubr));
    return path;
  };
  CommandResult without = run_kbgap("--data " + data + " scan " + systeminfo);
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_NE(without.out.find("revision (UBR) unknown"), std::string::npos) << without.out;
  EXPECT_NE(without.out.find("KB5087537"), std::string::npos);
  // May 2026's update contains October 2024's, .NET Framework included (Server 2016 services
  // its in-box .NET inside the OS update): one OS update, not two.
  EXPECT_EQ(without.out.find("KB5044293"), std::string::npos) << without.out;

  CommandResult october =
      run_kbgap("--data " + data + " scan " + systeminfo + " " + registry(7428, 14393));
  ASSERT_EQ(october.exit_code, 0) << october.err;
  EXPECT_NE(october.out.find("10.0.14393.7428"), std::string::npos) << october.out;
  EXPECT_EQ(october.out.find("revision (UBR) unknown"), std::string::npos) << october.out;
  EXPECT_NE(october.out.find("KB5087537"), std::string::npos) << october.out;
  EXPECT_EQ(october.out.find("KB5044293"), std::string::npos) << october.out;

  CommandResult may =
      run_kbgap("--data " + data + " scan " + systeminfo + " " + registry(9140, 14393));
  ASSERT_EQ(may.exit_code, 0) << may.err;
  EXPECT_EQ(may.out.find("KB5087537"), std::string::npos) << may.out;
  EXPECT_EQ(may.out.find("KB5044293"), std::string::npos) << may.out;

  // Values of another build, or alone: a clear error, not a guess.
  CommandResult other =
      run_kbgap("--data " + data + " scan " + systeminfo + " " + registry(9140, 17763));
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("registry values of build 10.0.17763"), std::string::npos) << other.err;
  CommandResult alone = run_kbgap("--data " + data + " scan " + registry(9140, 14393));
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.err.find("name no computer"), std::string::npos) << alone.err;
}

}  // namespace
}  // namespace kbgap::test
