// Software beyond the OS (docs/engine.md, "Software beyond the OS"): installed programs read from
// every inventory that lists them, matched to catalog products conservatively, and their missing
// updates, on the real catalog. Expected answers are worked out here from the catalog's product
// names, fixed builds and release dates, not from the matcher's own tables.
#include "engine/software.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "engine/fleet.h"
#include "engine_support.h"
#include "inventory/inventory_reader.h"
#include "inventory/json_inventory.h"
#include "test_support.h"

namespace kbgap::test {
namespace {

using engine::Build;
using engine::CatalogIndex;
using engine::Evaluation;
using engine::KbNumber;
using engine::ProductIndex;
using inventory::Architecture;
using inventory::Device;
using inventory::InstalledSoftware;

Device with_software(Device d, std::vector<InstalledSoftware> software,
                     std::vector<KbNumber> kbs = {}) {
  d.software = std::move(software);
  d.installed_kbs.insert(d.installed_kbs.end(), kbs.begin(), kbs.end());
  inventory::finish_device(d, "");
  return d;
}

Device server_2019() {
  return real_device("srv_2019_rtm_datacenter_en-us");
}

// The KBs reported for products whose productsNames start with `prefix` ("office_", "sql_").
std::set<KbNumber> reported_for(const Evaluation& ev, std::string_view prefix) {
  std::set<KbNumber> out;
  for (const engine::MissingKb& m : ev.missing) {
    for (const std::string& name : m.products_names) {
      if (name.starts_with(prefix)) out.insert(m.kb);
    }
  }
  return out;
}

// Every product whose name matches, with its fixes as (release date, KB, first fixed build).
struct Fix {
  std::string date;
  KbNumber kb = 0;
  std::optional<Build> build;  // the first it lists
  std::vector<Build> builds;   // all it lists, for any product of the match
};
std::vector<Fix> fixes_of(const CatalogIndex& c, const std::regex& name) {
  std::map<KbNumber, Fix> out;
  for (ProductIndex p : c.product_indices()) {
    if (!std::regex_match(c.products()[p].name, name)) continue;
    for (const engine::ProductFix& f : c.products()[p].fixes) {
      Fix& fix = out[c.kbs()[f.kb].kb];
      fix.kb = c.kbs()[f.kb].kb;
      fix.date = c.release_date(f.kb);
      if (!f.fixed_builds.empty() && !fix.build) fix.build = f.fixed_builds.front();
      fix.builds.insert(fix.builds.end(), f.fixed_builds.begin(), f.fixed_builds.end());
    }
  }
  std::vector<Fix> v;
  for (auto& [kb, f] : out) v.push_back(f);
  std::sort(v.begin(), v.end(), [](const Fix& a, const Fix& b) {
    return std::tie(a.date, a.kb) < std::tie(b.date, b.kb);
  });
  return v;
}

bool below(const Build& a, const Build& b) {
  return std::tie(a.major, a.minor, a.build, a.revision) <
         std::tie(b.major, b.minor, b.build, b.revision);
}

std::string text(const Build& b) {
  return std::to_string(b.major) + "." + std::to_string(b.minor) + "." + std::to_string(b.build) +
         "." + std::to_string(b.revision);
}

// ---- Inventories ----

constexpr const char* kUninstall = R"json([
  {"DisplayName": "Microsoft Office Professional Plus 2016", "DisplayVersion": "16.0.4266.1001",
   "Publisher": "Microsoft Corporation", "PSChildName": "Office16.PROPLUS",
   "PSPath": "Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Office16.PROPLUS"},
  {"DisplayName": "Microsoft Word MUI (English) 2016", "DisplayVersion": "16.0.4266.1001",
   "PSChildName": "{90160000-001B-0409-1000-0000000FF1CE}", "SystemComponent": 1,
   "PSPath": "Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{90160000-001B-0409-1000-0000000FF1CE}"},
  {"DisplayName": "Security Update for Microsoft Word 2016 (KB4461543) 64-Bit Edition",
   "ParentKeyName": "Office16.PROPLUS", "ReleaseType": "Security Update",
   "PSChildName": "{90160000-001B-0409-1000-0000000FF1CE}_Office16.PROPLUS_{7D2B2C0D-1C6E-4A5E-8C44-6F0B6F5E1A11}",
   "PSPath": "Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{90160000-001B-0409-1000-0000000FF1CE}_Office16.PROPLUS_{7D2B2C0D-1C6E-4A5E-8C44-6F0B6F5E1A11}"},
  {"DisplayName": "Notepad++ (32-bit x86)", "DisplayVersion": "8.6.4", "Publisher": "Notepad++ Team",
   "PSChildName": "Notepad++",
   "PSPath": "Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\Software\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Notepad++"},
  {"DisplayName": "7-Zip 23.01 (x64)", "DisplayVersion": "23.01", "PSChildName": "7-Zip",
   "PSPath": "Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\7-Zip"},
  {"PSChildName": "AddressBook"},
  {"DisplayName": "Hotfix for Microsoft .NET Framework 4.5.2", "PSChildName": "kb2468871"}
])json";

TEST(SoftwareInventory, UninstallKeysGiveProgramsTheirArchitectureAndUpdatesAsInstalledKbs) {
  auto r = inventory::read_inventory(kUninstall, "uninstall.json");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->front().format, inventory::InventoryFormat::kUninstallList);
  EXPECT_FALSE(r->front().has_os);

  std::vector<inventory::Inventory> all;
  auto sysinfo = inventory::read_inventory(
      read_file(std::filesystem::path(KBGAP_SOURCE_DIR) /
                "data/inventories/srv_2019_rtm_datacenter_en-us_systeminfo.txt"),
      "systeminfo.txt");
  ASSERT_TRUE(sysinfo);
  for (auto& inv : *sysinfo) all.push_back(std::move(inv));
  for (auto& inv : *r) all.push_back(std::move(inv));
  auto merged = inventory::merge_inventories(std::move(all));
  ASSERT_TRUE(merged) << merged.error().message;
  ASSERT_EQ(merged->size(), 1u);
  const Device& d = merged->front();
  ASSERT_EQ(d.software.size(), 4u);  // the updates are KBs, the key without a name is nothing
  EXPECT_EQ(d.software[0].name, "Microsoft Office Professional Plus 2016");
  EXPECT_EQ(d.software[0].architecture, Architecture::kX64);  // native view of 64-bit Windows
  EXPECT_EQ(d.software[1].architecture, Architecture::kX64);  // Office product code: 64-bit
  EXPECT_EQ(d.software[2].architecture, Architecture::kX86);  // WOW6432Node
  EXPECT_TRUE(std::binary_search(d.installed_kbs.begin(), d.installed_kbs.end(), 4461543u));
  EXPECT_TRUE(std::binary_search(d.installed_kbs.begin(), d.installed_kbs.end(), 2468871u));

  // kbgap JSON keeps what was read, architecture included.
  const std::string json = boost::json::serialize(inventory::device_json(d));
  auto back = inventory::parse_kbgap_json(json, "back.json");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->front().device.software, d.software);
}

TEST(SoftwareInventory, UninstallKeysWithoutTheirComputerAreAClearError) {
  auto r = inventory::read_inventory(kUninstall, "uninstall.json");
  ASSERT_TRUE(r);
  auto merged = inventory::merge_inventories(std::move(*r));
  ASSERT_FALSE(merged);
  EXPECT_NE(merged.error().message.find("uninstall.json: installed programs name no computer"),
            std::string::npos)
      << merged.error().message;
  // A single entry is written by ConvertTo-Json as an object; a wrong type names its place.
  auto one = inventory::read_inventory(
      R"({"DisplayName": "Microsoft Visio Professional 2016", "PSChildName": "Office16.VISPRO"})",
      "one.json");
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->front().device.software.size(), 1u);
  auto bad = inventory::read_inventory(R"([{"DisplayName": ["x"], "PSChildName": "k"}])", "b.json");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "b.json: $[0].DisplayName: expected a string");
}

TEST(SoftwareInventory, OsqueryProgramsGiveArchitectureAndListedUpdates) {
  const std::string osquery = R"json({
    "os_version": [{"name": "Microsoft Windows Server 2019 Datacenter", "version": "10.0.17763",
                    "build": "17763", "arch": "64-bit"}],
    "system_info": [{"hostname": "sql01", "uuid": "1"}],
    "programs": [
      {"name": "Microsoft Office Standard 2013", "version": "15.0.4569.1506",
       "identifying_number": "{90150000-0012-0000-0000-0000000FF1CE}", "publisher": "Microsoft Corporation"},
      {"name": "Update for Microsoft Office 2013 (KB4011234) 32-Bit Edition", "version": ""},
      {"name": "Git", "version": "2.44.0", "install_location": "C:\\Program Files (x86)\\Git\\"}
    ]})json";
  auto r = inventory::read_inventory(osquery, "osquery.json");
  ASSERT_TRUE(r) << r.error().message;
  const Device& d = r->front().device;
  ASSERT_EQ(d.software.size(), 2u);
  EXPECT_EQ(d.software[0].architecture, Architecture::kX86);  // product code digit 0
  EXPECT_EQ(d.software[1].architecture, Architecture::kX86);  // Program Files (x86)
  EXPECT_EQ(d.installed_kbs, std::vector<KbNumber>{4011234});
}

// ---- Office (MSI) ----

// A real Windows 7 machine with Office 2016 64-bit (and Visio and Project 2016, whose updates
// Windows Update also listed), judged on the day Windows Update listed its updates: every Office
// security update Windows Update offered is reported. Its installed Office updates are not in
// systeminfo, so kbgap reports older ones too; each is an Office 2016 64-bit update.
TEST(SoftwareOffice, EveryOfficeSecurityUpdateWindowsUpdateOfferedIsReported) {
  const CatalogIndex& c = full_catalog();
  const std::string stem = "7_sp1_x64_enterprise_en-us_20190305";
  const std::filesystem::path validation =
      std::filesystem::path(KBGAP_SOURCE_DIR) / "data/validation";
  std::vector<inventory::Inventory> all;
  for (const std::filesystem::path& f :
       {validation / (stem + "_systeminfo.txt"), validation / (stem + "_qfe.txt"),
        std::filesystem::path(KBGAP_SOURCE_DIR) /
            "tests/data/software/7_sp1_x64_office2016_uninstall.json"}) {
    auto r = inventory::read_inventory(read_file(f), f.filename().string());
    ASSERT_TRUE(r) << r.error().message;
    for (auto& inv : *r) all.push_back(std::move(inv));
  }
  auto merged = inventory::merge_inventories(std::move(all));
  ASSERT_TRUE(merged) << merged.error().message;
  const Device& d = merged->front();
  const Evaluation ev = engine::evaluate(c, d, {"2019-03-05", true});
  const std::set<KbNumber> office = reported_for(ev, "office_2016");

  // Windows Update's list: "KB4461543: Security Update for Microsoft Word 2016 (KB4461543) 64-Bit
  // Edition".
  const std::string updates = read_file(validation / (stem + "_updates.txt"));
  static const std::regex offered(R"(KB(\d+): Security Update for [^\n]*2016[^\n]*64-Bit Edition)");
  std::size_t seen = 0;
  for (auto it = std::sregex_iterator(updates.begin(), updates.end(), offered);
       it != std::sregex_iterator(); ++it) {
    const KbNumber kb = static_cast<KbNumber>(std::stoul((*it)[1].str()));
    ++seen;
    EXPECT_TRUE(office.contains(kb)) << "KB" << kb << " offered by Windows Update, not reported";
  }
  EXPECT_EQ(seen, 7u);
  // Each reported Office KB fixes an Office 2016 64-bit product, never a 32-bit one or another
  // version's, and none is reported twice.
  const std::regex x64(
      R"(Microsoft (Office|Word|Excel|PowerPoint|Outlook|OneNote|Publisher|Access|Visio|Project) 2016 \(64-bit edition\)|Skype for Business 2016 \(64-bit\))");
  const std::vector<Fix> x64_fixes = fixes_of(c, x64);
  for (KbNumber kb : office) {
    EXPECT_TRUE(
        std::any_of(x64_fixes.begin(), x64_fixes.end(), [&](const Fix& f) { return f.kb == kb; }))
        << "KB" << kb;
  }
  for (const std::string& p : ev.products) EXPECT_EQ(p.find("32-bit"), std::string::npos) << p;
}

// For every Office MSI version and edition the catalog covers: installing what kbgap reports
// leaves nothing missing, and an update installed (from the Uninstall keys) is never reported.
TEST(SoftwareOffice, InstallingWhatIsReportedClosesEveryOfficeVersionAndEdition) {
  const CatalogIndex& c = full_catalog();
  const Device base = server_2019();
  std::size_t cases = 0;
  for (const std::string year : {"2010", "2013", "2016"}) {
    for (const std::string edition : {"Professional Plus", "Standard", "Home and Business"}) {
      for (Architecture a : {Architecture::kX86, Architecture::kX64}) {
        SCOPED_TRACE(year + " " + edition + " " + std::string(inventory::architecture_name(a)));
        InstalledSoftware office{"Microsoft Office " + edition + " " + year,
                                 "Microsoft Corporation", "", a};
        Device d = with_software(base, {office});
        Evaluation ev = engine::evaluate(c, d, {"", false});
        const std::set<KbNumber> first = reported_for(ev, "office_" + year);
        ASSERT_FALSE(first.empty());
        // Reported KBs are of this Office only.
        const std::string bits = a == Architecture::kX64 ? "64" : "32";
        for (const std::string& p : ev.products) {
          if (p.find("Windows") != std::string::npos || p.find(".NET") != std::string::npos ||
              p.find("Internet Explorer") != std::string::npos ||
              p.find("Flash") != std::string::npos || p.find("Edge") != std::string::npos) {
            continue;
          }
          EXPECT_NE(p.find(year), std::string::npos) << p;
          EXPECT_NE(p.find(bits + "-bit"), std::string::npos) << p;
        }
        // Home and Business has no Access or Publisher.
        const bool access = std::any_of(ev.products.begin(), ev.products.end(), [](auto& p) {
          return p.find("Access") != std::string::npos;
        });
        EXPECT_EQ(access, edition == "Professional Plus");
        d = with_software(base, {office}, std::vector<KbNumber>(first.begin(), first.end()));
        ev = engine::evaluate(c, d, {"", false});
        EXPECT_TRUE(reported_for(ev, "office_").empty());
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 18u);
}

TEST(SoftwareOffice, ClickToRunGetsNoMsiUpdateAndSaysWhy) {
  const CatalogIndex& c = full_catalog();
  for (const std::string name : {"Microsoft Office Professional Plus 2016 - en-us",
                                 "Microsoft 365 Apps for enterprise - en-us",
                                 "Microsoft Office Professional Plus 2019 - de-de",
                                 "Microsoft Office LTSC Professional Plus 2021 - en-us"}) {
    SCOPED_TRACE(name);
    Device d = with_software(
        server_2019(), {{name, "Microsoft Corporation", "16.0.14332.20615", Architecture::kX64}});
    const Evaluation ev = engine::evaluate(c, d, {"", true});
    EXPECT_TRUE(reported_for(ev, "office_").empty());
    EXPECT_TRUE(reported_for(ev, "365").empty());
    ASSERT_FALSE(ev.software.empty());
    EXPECT_TRUE(ev.software.front().matched);
    EXPECT_NE(ev.software.front().reason.find("no fixed version"), std::string::npos);
    ASSERT_EQ(ev.software.front().products.size(), 1u);
    EXPECT_NE(ev.software.front().products.front().find("64-bit"), std::string::npos);
  }
}

TEST(SoftwareOffice, UnknownBitnessIsUnmatchedWhereTheEditionsDiffer) {
  const CatalogIndex& c = full_catalog();
  // Word 2016's 64-bit edition has one update more than its 32-bit edition: without the
  // bitness, kbgap cannot name the right ones.
  InstalledSoftware word{"Microsoft Word 2016", "Microsoft Corporation", "16.0.4266.1001",
                         Architecture::kUnknown};
  Evaluation ev = engine::evaluate(c, with_software(server_2019(), {word}), {"", true});
  EXPECT_TRUE(reported_for(ev, "office_").empty());
  ASSERT_EQ(ev.software.size(), 1u);
  EXPECT_FALSE(ev.software.front().matched);
  EXPECT_NE(ev.software.front().reason.find("bitness"), std::string::npos);
  // On 32-bit Windows it can only be 32-bit.
  Device x86 = real_device("7_sp1_x86_enterprise_en-us");
  ev = engine::evaluate(c, with_software(x86, {word}), {"", true});
  EXPECT_FALSE(reported_for(ev, "office_2016").empty());
  for (const std::string& p : ev.products) EXPECT_EQ(p.find("64-bit"), std::string::npos) << p;
}

// ---- SQL Server ----

// For each SQL Server version and branch with fixed builds (GDR; CU), a server on one of the
// branch's builds, judged at the end of each month: the one SQL update reported is the branch's
// newest released by then, and only when its build is above the server's.
TEST(SoftwareSql, TheBranchsNewestUpdateAboveTheInstalledBuild) {
  const CatalogIndex& c = full_catalog();
  std::size_t cases = 0, reported = 0;
  for (const std::string year : {"2017", "2019", "2022"}) {
    for (const std::string branch : {"GDR", "CU"}) {
      SCOPED_TRACE(year + " " + branch);
      const std::regex name("Microsoft SQL Server " + year + R"( for x64-based Systems \()" +
                            branch + (branch == "CU" ? R"( ?\d+\))" : R"(\))"));
      std::vector<Fix> fixes = fixes_of(c, name);
      // A branch's builds share their thousands (GDR 15.0.2xxx, CU 15.0.4xxx) and rise with
      // time; a build that does not is a data error, not trusted (MSRC swapped SQL Server 2022's
      // July 2025 GDR and CU 19 builds): that update is known by date only.
      std::map<int, int> thousands;
      for (const Fix& f : fixes) {
        if (f.build) ++thousands[f.build->build / 1000];
      }
      const int band = std::max_element(thousands.begin(), thousands.end(), [](auto& a, auto& b) {
                         return a.second < b.second;
                       })->first;
      std::optional<Build> high;
      std::vector<const Fix*> trusted;
      for (Fix& f : fixes) {
        if (f.build && f.build->build / 1000 != band) f.build.reset();
        if (f.build && high && below(*f.build, *high)) f.build.reset();
        if (!f.build) continue;
        high = f.build;
        trusted.push_back(&f);
      }
      ASSERT_GE(trusted.size(), 3u);
      for (std::size_t at = 0; at + 1 < trusted.size(); at += 2) {
        const Build installed = *trusted[at]->build;
        for (const std::string& as_of : {trusted[at + 1]->date, std::string("")}) {
          InstalledSoftware engine_services{"SQL Server " + year + " Database Engine Services",
                                            "Microsoft Corporation", text(installed),
                                            Architecture::kUnknown};
          const Evaluation ev =
              engine::evaluate(c, with_software(server_2019(), {engine_services}), {as_of, false});
          const std::set<KbNumber> sql = reported_for(ev, "sql_server_" + year);
          // The newest update of the branch released by the day: above the installed build.
          const Fix* newest = nullptr;
          for (const Fix& f : fixes) {
            if (as_of.empty() || f.date <= as_of) newest = &f;
          }
          ASSERT_NE(newest, nullptr);
          SCOPED_TRACE("installed " + text(installed) + " as of " + as_of);
          ASSERT_EQ(sql.size(), 1u);
          EXPECT_EQ(*sql.begin(), newest->kb);
          ++cases;
          reported += sql.size();
          // Installed: nothing of the branch is missing any more.
          const Evaluation after = engine::evaluate(
              c, with_software(server_2019(), {engine_services}, {newest->kb}), {as_of, false});
          EXPECT_TRUE(reported_for(after, "sql_server_").empty());
        }
      }
      // At the branch's newest build: nothing missing.
      InstalledSoftware top{"Microsoft SQL Server " + year + " (64-bit)", "", text(*high),
                            Architecture::kX64};
      EXPECT_TRUE(
          reported_for(engine::evaluate(c, with_software(server_2019(), {top}), {"", false}),
                       "sql_server_")
              .empty());
    }
  }
  EXPECT_GE(cases, 20u);
  EXPECT_EQ(reported, cases);
}

TEST(SoftwareSql, RtmGoesToGdrAndTheExplanationSaysWhichBranch) {
  const CatalogIndex& c = full_catalog();
  InstalledSoftware rtm{"SQL Server 2019 Database Engine Services", "", "15.0.2000.5",
                        Architecture::kX64};
  InstalledSoftware part{"SQL Server 2019 Common Files", "", "15.0.2000.5", Architecture::kX64};
  const Evaluation ev = engine::evaluate(c, with_software(server_2019(), {rtm, part}), {"", true});
  ASSERT_EQ(ev.software.size(), 2u);
  EXPECT_NE(ev.software[0].reason.find("on the GDR branch"), std::string::npos)
      << ev.software[0].reason;
  for (const std::string& p : ev.software[0].products)
    EXPECT_NE(p.find("(GDR)"), std::string::npos);
  EXPECT_TRUE(ev.software[1].matched);
  EXPECT_TRUE(ev.software[1].products.empty());  // judged with the engine, not twice
  // A version that is not of its year is not guessed at.
  InstalledSoftware wrong{"SQL Server 2019 Database Engine Services", "", "14.0.3445.2",
                          Architecture::kX64};
  const Evaluation bad = engine::evaluate(c, with_software(server_2019(), {wrong}), {"", true});
  EXPECT_TRUE(reported_for(bad, "sql_").empty());
  ASSERT_EQ(bad.software.size(), 1u);
  EXPECT_FALSE(bad.software[0].matched);
}

// Two instances of one SQL Server version on one branch: the older one's updates are missing
// whatever the newer one reached; the same suite listed many times is one Office.
TEST(SoftwareSql, TwoInstancesOnABranchAreJudgedByTheOlder) {
  const CatalogIndex& c = full_catalog();
  InstalledSoftware patched{"SQL Server 2019 Database Engine Services", "", "15.0.4470.1",
                            Architecture::kX64};
  InstalledSoftware old{"SQL Server 2019 Database Engine Services", "", "15.0.4326.1",
                        Architecture::kX64};
  const auto alone = reported_for(
      engine::evaluate(c, with_software(server_2019(), {patched}), {"", false}), "sql_");
  const auto both = reported_for(
      engine::evaluate(c, with_software(server_2019(), {patched, old}), {"", false}), "sql_");
  const auto only_old =
      reported_for(engine::evaluate(c, with_software(server_2019(), {old}), {"", false}), "sql_");
  EXPECT_TRUE(alone.empty());
  EXPECT_FALSE(only_old.empty());
  EXPECT_EQ(both, only_old);

  InstalledSoftware suite{"Microsoft Office Standard 2016", "", "16.0.4266.1001",
                          Architecture::kX64};
  const Evaluation once = engine::evaluate(c, with_software(server_2019(), {suite}), {"", true});
  const Evaluation many = engine::evaluate(
      c, with_software(server_2019(), std::vector<InstalledSoftware>(2000, suite)), {"", true});
  EXPECT_EQ(reported_for(once, "office_"), reported_for(many, "office_"));
  EXPECT_EQ(many.software.size(), 2000u);
  EXPECT_TRUE(
      std::all_of(many.software.begin(), many.software.end(), [&](const engine::SoftwareReport& r) {
        return r.matched && r.reason == once.software.front().reason;
      }));
}

// ---- Exchange Server ----

// For each Exchange cumulative update whose security updates give its build (Exchange 2016 is
// 15.1, 2019 is 15.2; MSRC's FixedBuild lists builds of several versions and CUs): a server on
// it, with none of its updates, misses the newest update of that build and no older one of it;
// installing what is reported leaves nothing; a server at the newest one's build has it.
TEST(SoftwareExchange, ACumulativeUpdatesNewestSecurityUpdate) {
  const CatalogIndex& c = full_catalog();
  std::size_t cases = 0;
  // Each version's cumulative updates in order: a CU's build is above the one before.
  std::map<std::pair<std::string, int>, std::string> cus;
  static const std::regex cu(R"(Microsoft Exchange Server (2016|2019) Cumulative Update (\d+))");
  for (ProductIndex p : c.product_indices()) {
    std::smatch m;
    if (std::regex_match(c.products()[p].name, m, cu)) {
      cus[{m[1].str(), std::stoi(m[2].str())}] = c.products()[p].name;
    }
  }
  std::map<std::string, int> previous_own;
  for (const auto& [key, name] : cus) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(name, m, cu));
    const int minor = m[1].str() == "2016" ? 1 : 2;
    const std::vector<Fix> fixes = fixes_of(c, std::regex(name));
    auto of_version = [&](const Fix& f) {
      std::vector<Build> out;
      for (const Build& b : f.builds) {
        if (b.major == 15 && b.minor == minor) out.push_back(b);
      }
      return out;
    };
    // The CU's own build: above the previous CU's, the one most of its updates give.
    std::map<int, int> votes;
    for (const Fix& f : fixes) {
      std::set<int> builds;
      for (const Build& b : of_version(f)) {
        if (b.build > previous_own[m[1].str()]) builds.insert(b.build);
      }
      for (int b : builds) ++votes[b];
    }
    if (votes.empty()) continue;
    const int own = std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) {
                      return a.second < b.second;
                    })->first;
    previous_own[m[1].str()] = own;
    std::vector<std::pair<KbNumber, Build>> own_updates;  // by release
    for (const Fix& f : fixes) {
      for (const Build& b : of_version(f)) {
        if (b.build == own) {
          own_updates.emplace_back(f.kb, b);
          break;
        }
      }
    }
    if (own_updates.empty()) continue;
    SCOPED_TRACE(name);
    const auto [newest, newest_build] = own_updates.back();
    InstalledSoftware exchange{name, "Microsoft Corporation", "", Architecture::kX64};
    Evaluation ev = engine::evaluate(c, with_software(server_2019(), {exchange}), {"", false});
    const std::set<KbNumber> reported = reported_for(ev, "exchange_server_" + m[1].str());
    EXPECT_TRUE(reported.contains(newest)) << "KB" << newest;
    for (const auto& [kb, build] : own_updates) {
      if (kb != newest) {
        EXPECT_FALSE(reported.contains(kb)) << "KB" << kb;
      }
    }
    ev = engine::evaluate(c,
                          with_software(server_2019(), {exchange},
                                        std::vector<KbNumber>(reported.begin(), reported.end())),
                          {"", false});
    EXPECT_TRUE(reported_for(ev, "exchange_server_").empty());
    // By version: "Microsoft Exchange Server 2019" at the newest update's build has it.
    InstalledSoftware by_build{"Microsoft Exchange Server " + m[1].str(), "", text(newest_build),
                               Architecture::kX64};
    ev = engine::evaluate(c, with_software(server_2019(), {by_build}), {"", true});
    ASSERT_EQ(ev.software.size(), 1u);
    EXPECT_TRUE(ev.software[0].matched) << ev.software[0].reason;
    EXPECT_FALSE(reported_for(ev, "exchange_server_").contains(newest));
    ++cases;
  }
  EXPECT_GE(cases, 8u);
}

// ---- The fleet ----

TEST(SoftwareFleet, FleetAnswersEqualEvaluateWithSoftware) {
  const CatalogIndex& c = full_catalog();
  const std::vector<std::vector<InstalledSoftware>> mixes = {
      {{"Microsoft Office Professional Plus 2016", "", "16.0.4266.1001", Architecture::kX64}},
      {{"Microsoft Office Standard 2013", "", "15.0.4569.1506", Architecture::kX86},
       {"SQL Server 2019 Database Engine Services", "", "15.0.4326.1", Architecture::kX64}},
      {{"Microsoft Exchange Server 2019 Cumulative Update 13", "", "15.2.1258.12",
        Architecture::kX64},
       {"Microsoft 365 Apps for enterprise - en-us", "", "16.0.17328.20550", Architecture::kX64}},
      {{"Google Chrome", "Google LLC", "120.0.6099.130", Architecture::kX64}},
  };
  // Office 2016 64-bit with none, some or all of its security updates installed,
  // in the catalog's order: software states that devices of every OS share.
  std::vector<KbNumber> office_kbs;
  for (ProductIndex p : c.find_products_by_name("Microsoft Office 2016 (64-bit edition)")) {
    for (const engine::ProductFix& f : c.products()[p].fixes)
      office_kbs.push_back(c.kbs()[f.kb].kb);
  }
  ASSERT_GT(office_kbs.size(), 20u);
  std::vector<Device> devices;
  for (const Device& real : real_devices()) {
    for (std::size_t m = 0; m < mixes.size(); ++m) {
      devices.push_back(with_software(
          real, mixes[m], m == 0 ? std::vector<KbNumber>{4461543} : std::vector<KbNumber>{}));
    }
    for (std::size_t n : {office_kbs.size() / 3, office_kbs.size() - 1, office_kbs.size()}) {
      devices.push_back(with_software(
          real, mixes[0], std::vector<KbNumber>(office_kbs.begin(), office_kbs.begin() + n)));
    }
  }
  engine::Fleet fleet(c);
  for (const Device& d : devices) fleet.add(d);
  engine::Fleet::Options options;
  options.threads = 2;
  const engine::FleetResult result = fleet.evaluate(options);
  std::size_t software = 0;
  for (std::uint32_t i = 0; i < devices.size(); ++i) {
    SCOPED_TRACE(devices[i].source + " #" + std::to_string(i));
    const Evaluation one = engine::evaluate(c, devices[i], {});
    const Evaluation many = result.evaluation(i);
    EXPECT_EQ(many.products, one.products);
    ASSERT_EQ(many.missing.size(), one.missing.size());
    for (std::size_t k = 0; k < one.missing.size(); ++k) {
      EXPECT_EQ(many.missing[k].kb, one.missing[k].kb);
      EXPECT_EQ(many.missing[k].products_names, one.missing[k].products_names);
      EXPECT_EQ(many.missing[k].cves, one.missing[k].cves);
    }
    EXPECT_EQ(many.open_cves, one.open_cves);
    EXPECT_EQ(result.missing_count(i), one.missing.size());
    software += reported_for(one, "office_").size() + reported_for(one, "sql_").size() +
                reported_for(one, "exchange_").size();
  }
  EXPECT_GT(software, 0u);
}

// A fleet answers a device's software apart from its OS (once per software state, docs/engine.md
// "Fleets"): that holds only where the profile's software fixes form components of their own,
// after the OS's. On every real device with Office 2016 and SQL Server 2019, every software fix
// falls in those components and no OS fix does.
TEST(SoftwareFleet, SoftwareFixesFormComponentsOfTheirOwnAfterTheOs) {
  const CatalogIndex& c = full_catalog();
  const std::vector<InstalledSoftware> software = {
      {"Microsoft Office Professional Plus 2016", "", "16.0.4266.1001", Architecture::kX64},
      {"SQL Server 2019 Database Engine Services", "", "15.0.4326.1", Architecture::kX64}};
  std::size_t profiles = 0;
  for (const Device& real : real_devices()) {
    const Device d = with_software(real, software);
    SCOPED_TRACE(d.source);
    const engine::ProfileKey key = engine::profile_key(c, d, 0);
    const engine::Profile profile = engine::Profile::build(c, key);
    std::set<ProductIndex> os_products;
    for (ProductIndex p : engine::device_products(c, real)) os_products.insert(p);
    if (os_products.empty() || key.products.size() == os_products.size()) continue;
    ++profiles;
    const auto from = static_cast<std::int32_t>(profile.software_components_from());
    ASSERT_LT(profile.software_components_from(), profile.component_count());
    std::size_t software_fixes = 0;
    for (ProductIndex p : key.products) {
      const bool os = os_products.count(p) != 0;
      for (const engine::ProductFix& f : c.products()[p].fixes) {
        const std::int32_t component = profile.component_of(f.kb);
        if (component < 0) continue;  // not applicable here
        if (os) {
          EXPECT_LT(component, from) << c.kbs()[f.kb].kb << " of " << c.products()[p].name;
        } else {
          EXPECT_GE(component, from) << c.kbs()[f.kb].kb << " of " << c.products()[p].name;
          ++software_fixes;
        }
      }
    }
    EXPECT_GT(software_fixes, 0u);
  }
  EXPECT_GT(profiles, 20u);
}

}  // namespace
}  // namespace kbgap::test
