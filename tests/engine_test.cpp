// The missing-KB engine on the real bundled catalog and the real inventories.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <type_traits>

#include "common/digest.h"
#include "engine/evaluate.h"
#include "engine/fleet.h"
#include "engine_support.h"
#include "inventory/inventory_reader.h"
#include "inventory/windows_release.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "test_support.h"
#include "update/importer.h"

namespace kbgap::engine {
namespace {

using inventory::Architecture;
using inventory::Device;

using test::find;
using test::full_catalog;
using test::has_kind;

Device windows_10(std::string version, int build, std::vector<KbNumber> kbs) {
  Device d;
  d.computer_dns_name = "test";
  d.os_name = "Microsoft Windows 10 Enterprise";
  d.major = 10;
  d.build = build;
  d.architecture = Architecture::kX64;
  d.installed_kbs = std::move(kbs);
  inventory::classify_windows(d);
  EXPECT_EQ(d.version, version);
  return d;
}

// KBs of `ev` that are cumulative updates of the device's OS product.
std::vector<KbNumber> os_cumulative_updates(const Evaluation& ev, const CatalogIndex& c,
                                            const Device& d) {
  std::vector<KbNumber> out;
  for (ProductIndex p : device_products(c, d)) {
    if (c.products()[p].role != ProductRole::kOperatingSystem) continue;
    for (const ProductFix& f : c.products()[p].fixes) {
      if (f.cumulative && find(ev, c.kbs()[f.kb].kb)) out.push_back(c.kbs()[f.kb].kb);
    }
  }
  return out;
}

// The engine's dense numbers are of distinct types: a CVE's number cannot be used where a KB's
// or a product's is meant (engine/dense_index.h). Checked when this file compiles.
template <typename Table, typename I>
concept SubscriptedBy = requires(const Table& t, I i) {
  t[i];
};
template <typename Marks, typename I>
concept MarkedBy = requires(Marks m, I i) {
  m.insert(i);
};
TEST(DenseIndex, KbCveAndProductNumbersDoNotMix) {
  static_assert(!std::is_convertible_v<KbIndex, CveIndex>);
  static_assert(!std::is_constructible_v<KbIndex, CveIndex>);
  static_assert(!std::is_constructible_v<ProductIndex, KbIndex>);
  static_assert(!std::is_convertible_v<std::uint32_t, KbIndex>);  // only by explicit intent
  static_assert(!std::is_convertible_v<KbIndex, std::uint32_t>);
  static_assert(!std::equality_comparable_with<KbIndex, CveIndex>);
  static_assert(SubscriptedBy<IndexedVector<KbIndex, int>, KbIndex>);
  static_assert(!SubscriptedBy<IndexedVector<KbIndex, int>, CveIndex>);
  static_assert(!SubscriptedBy<IndexedVector<KbIndex, int>, std::uint32_t>);
  static_assert(MarkedBy<KbMarks, KbIndex> && !MarkedBy<KbMarks, CveIndex>);
  // What the catalog's tables take.
  static_assert(SubscriptedBy<decltype(std::declval<CatalogIndex>().kbs()), KbIndex>);
  static_assert(!SubscriptedBy<decltype(std::declval<CatalogIndex>().kbs()), CveIndex>);
  static_assert(!SubscriptedBy<decltype(std::declval<CatalogIndex>().products()), KbIndex>);
  static_assert(!SubscriptedBy<decltype(std::declval<CatalogIndex>().cves()), ProductIndex>);
  // And they are what they number, at run time too.
  std::vector<KbIndex> kbs;
  for (KbIndex kb : IndexRange<KbIndex>(3)) kbs.push_back(kb);
  EXPECT_EQ(kbs, (std::vector<KbIndex>{KbIndex{0}, KbIndex{1}, KbIndex{2}}));
  EXPECT_LT(KbIndex{1}, KbIndex{2});
}

TEST(Engine, Windows10_1909WithFebruary2020UpdateMissesTheLast1909Update) {
  const CatalogIndex& c = full_catalog();
  Device d = windows_10("1909", 18363, {4532693});
  Evaluation ev = evaluate(c, d, {});
  const MissingKb* last = find(ev, 5013945);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->name, "May 2022 Security Updates");
  // It replaces the 1909 updates that fixed Internet Explorer 11 and Edge (EdgeHTML) too.
  EXPECT_EQ(last->products_names,
            (std::vector<std::string>{"windows_10", "internet_explorer", "edge"}));
  EXPECT_EQ(last->url, "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB5013945");
  // No older 1909 cumulative update is demanded beside it.
  EXPECT_EQ(os_cumulative_updates(ev, c, d), std::vector<KbNumber>{5013945});
  // The catalog's fixed build for it: 18363.2274.
  bool build_2274 = false;
  for (ProductIndex p : device_products(c, d)) {
    for (const ProductFix& f : c.products()[p].fixes) {
      if (c.kbs()[f.kb].kb != 5013945) continue;
      for (const Build& b : f.fixed_builds) build_2274 |= b.build == 18363 && b.revision == 2274;
    }
  }
  EXPECT_TRUE(build_2274);

  // As of 2020-03-31: the March 2020 line instead, and nothing released later.
  Evaluation march = evaluate(c, d, {"2020-03-31", false});
  EXPECT_EQ(find(march, 5013945), nullptr);
  auto march_line = os_cumulative_updates(march, c, d);
  ASSERT_EQ(march_line.size(), 1u);
  EXPECT_EQ(find(march, march_line[0])->name, "March 2020 Security Updates");
  for (const MissingKb& m : march.missing) EXPECT_LE(m.release_date, "2020-03-31") << m.kb;
}

TEST(Engine, ProductsThatMsrcNamedTwiceAreBothTheDevices) {
  const CatalogIndex& c = full_catalog();
  // ".NET Framework 4.7.2 on Windows 10 Version 1809 for x64-based Systems" is ProductID
  // 11513-11569 in some months and 11862-11569 in others.
  const std::string name =
      "Microsoft .NET Framework 4.7.2 on Windows 10 Version 1809 for x64-based Systems";
  ASSERT_EQ(c.find_products_by_name(name).size(), 2u);
  const auto products = device_products(c, windows_10("1809", 17763, {}));
  EXPECT_EQ(std::count_if(products.begin(), products.end(),
                          [&](ProductIndex p) { return c.products()[p].name == name; }),
            2);
}

TEST(Engine, KbNamesAreTheMonthThatReleasedThem) {
  const CatalogIndex& c = full_catalog();
  auto name = [&](KbNumber kb) {
    auto i = c.find_kb(kb);
    return i ? c.documents()[c.kbs()[*i].release_document].title : std::string("?");
  };
  EXPECT_EQ(name(4556799), "May 2020 Security Updates");    // also in 2018-Mar's revisions
  EXPECT_EQ(name(4493509), "April 2019 Security Updates");  // also in 2019-Feb's
  EXPECT_EQ(name(4540673), "March 2020 Security Updates");
  // One CVE in January's document and one in May's: the KB number is May 2020's.
  EXPECT_EQ(name(4552931), "May 2020 Security Updates");
}

TEST(Engine, FixedBuildAndRevisionSatisfyWithinTheServicingFamily) {
  const CatalogIndex& c = full_catalog();
  // Windows 10 21H2 (build 19044) at revision 1415: KB5008212 lists 10.0.19043.1415, the same
  // servicing line, so the device has it.
  Device at_1415 = windows_10("21H2", 19044, {});
  at_1415.revision = 1415;
  Evaluation ev = evaluate(c, at_1415, {"2021-12-31", false});
  EXPECT_EQ(find(ev, 5008212), nullptr);
  EXPECT_TRUE(os_cumulative_updates(ev, c, at_1415).empty());
  // One revision earlier, December 2021's update is missing.
  Device at_1414 = at_1415;
  at_1414.revision = 1414;
  EXPECT_NE(find(evaluate(c, at_1414, {"2021-12-31", false}), 5008212), nullptr);
  // Without a revision, installing KB5008212 tells it.
  Device with_kb = windows_10("21H2", 19044, {5008212});
  Evaluation inferred = evaluate(c, with_kb, {"2021-12-31", false});
  ASSERT_TRUE(inferred.revision.has_value());
  EXPECT_EQ(*inferred.revision, 1415);
  EXPECT_TRUE(inferred.revision_inferred);
  EXPECT_TRUE(os_cumulative_updates(inferred, c, with_kb).empty());
}

TEST(Engine, OneCumulativeUpdateForWindows11_23H2) {
  const CatalogIndex& c = full_catalog();
  Device d;
  d.os_name = "Microsoft Windows 11 Enterprise";
  d.major = 10;
  d.build = 22631;
  d.architecture = Architecture::kX64;
  inventory::classify_windows(d);
  Evaluation ev = evaluate(c, d, {});
  // Supersedence alone leaves several "newest" 23H2 updates (MSRC omits links between them).
  EXPECT_EQ(os_cumulative_updates(ev, c, d).size(), 1u);
}

Device windows_server_2022(std::optional<int> revision) {
  Device d;
  d.os_name = "Microsoft Windows Server 2022 Datacenter: Azure Edition";
  d.major = 10;
  d.build = 20348;
  d.revision = revision;
  d.architecture = Architecture::kX64;
  inventory::classify_windows(d);
  return d;
}

TEST(Engine, HotpatchesOnlyForEnrolledServersAndServicingStacksNever) {
  const CatalogIndex& c = full_catalog();
  Device d = windows_server_2022(std::nullopt);
  EXPECT_TRUE(d.azure_edition);
  EXPECT_FALSE(d.hotpatch_enrolled);
  for (const char* as_of : {"2023-12-31", "2024-12-31", ""}) {
    Evaluation ev = evaluate(c, d, {as_of, false});
    ASSERT_FALSE(ev.missing.empty());
    for (const MissingKb& m : ev.missing) {
      EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kHotpatch)) << "KB" << m.kb << " " << as_of;
      EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kServicingStack)) << "KB" << m.kb;
    }
  }
  // Some months hold hotpatches for this server: they exist, and are kept from it.
  bool hotpatch_exists = false;
  for (ProductIndex p : device_products(c, d)) {
    for (const ProductFix& f : c.products()[p].fixes)
      hotpatch_exists |= f.kind == FixKind::kHotpatch;
  }
  EXPECT_TRUE(hotpatch_exists);
}

TEST(Engine, AFixOfAnotherReleaseIsNeverReportedAndItsMonthsUpdateClosesIt) {
  const CatalogIndex& c = full_catalog();
  // KB5042322 (August 2024, CVE-2024-38163) lists 10.0.22000.2710, a Windows 11 build, for
  // Windows Server 2022: a slip in the data. The server's own August update (20348.2655)
  // closes the CVE; KB5042322 is reported to no server, whatever its revision.
  auto kb5042322 = c.find_kb(5042322);
  ASSERT_TRUE(kb5042322);
  for (std::optional<int> revision : {std::optional<int>(), std::optional<int>(2582),
                                      std::optional<int>(2655), std::optional<int>(9999)}) {
    SCOPED_TRACE(revision.value_or(-1));
    for (const char* as_of : {"2024-08-31", "2024-12-31", ""}) {
      Evaluation ev = evaluate(c, windows_server_2022(revision), {as_of, false});
      EXPECT_EQ(find(ev, 5042322), nullptr) << as_of;
      const bool open = std::binary_search(ev.open_cves.begin(), ev.open_cves.end(),
                                           std::string("CVE-2024-38163"));
      // Open until the device reaches August's update, and then closed by the update it needs.
      EXPECT_EQ(open, revision.value_or(0) < 2655) << as_of;
      if (open) {
        const auto updates = os_cumulative_updates(ev, c, windows_server_2022(revision));
        ASSERT_EQ(updates.size(), 1u);
        EXPECT_GE(find(ev, updates[0])->release_date, "2024-08-13");
      }
    }
  }
  // The class: every fix whose fixed builds are all of another release is marked, and no real
  // device is given one.
  std::size_t foreign = 0;
  for (const ProductInfo& p : c.products()) {
    for (const ProductFix& f : p.fixes) foreign += f.foreign ? 1 : 0;
  }
  EXPECT_GT(foreign, 0u);
}

TEST(Engine, AFixedBuildOutOfStepWithItsLineIsNotTrusted) {
  const CatalogIndex& c = full_catalog();
  // KB5004945 (July 2021) lists 10.0.19041.1803, a revision Windows 10 reached in July 2022.
  EXPECT_GT(c.distrusted_fixed_builds(), 0u);
  Device d = windows_10("21H1", 19043, {5004945});
  Evaluation ev = evaluate(c, d, {"2022-07-31", false});
  EXPECT_NE(ev.revision, std::optional<int>(1803));
  // So the device still misses the year of updates after July 2021.
  ASSERT_EQ(os_cumulative_updates(ev, c, d).size(), 1u);
  EXPECT_GE(find(ev, os_cumulative_updates(ev, c, d)[0])->release_date, "2022-07-01");
  EXPECT_GT(ev.open_cves.size(), 300u);
}

TEST(Engine, StandaloneUpdatesStayMissingUntilInstalled) {
  const CatalogIndex& c = full_catalog();
  // KB5012170 (Secure Boot DBX, August 2022) is no cumulative update: a Windows 10 21H2 device
  // at the newest revision still misses it, and does not once it is installed.
  Device d = windows_10("21H2", 19044, {});
  d.revision = 99999;
  Evaluation ev = evaluate(c, d, {});
  EXPECT_NE(find(ev, 5012170), nullptr);
  EXPECT_TRUE(os_cumulative_updates(ev, c, d).empty());
  d.installed_kbs = {5012170};
  EXPECT_EQ(find(evaluate(c, d, {}), 5012170), nullptr);
}

TEST(Engine, SnapshotRoundTripsAndRefusesDamage) {
  const CatalogIndex& c = full_catalog();
  const std::string bytes = c.snapshot("tag-1");
  auto back = CatalogIndex::from_snapshot(bytes, "tag-1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kbs().size(), c.kbs().size());
  EXPECT_EQ(back->line_count(), c.line_count());
  EXPECT_EQ(back->distrusted_fixed_builds(), c.distrusted_fixed_builds());
  Device d = windows_10("1909", 18363, {4532693});
  Evaluation a = evaluate(c, d, {"", true});
  Evaluation b = evaluate(*back, d, {"", true});
  ASSERT_EQ(a.missing.size(), b.missing.size());
  for (std::size_t i = 0; i < a.missing.size(); ++i) {
    EXPECT_EQ(a.missing[i].kb, b.missing[i].kb);
    EXPECT_EQ(a.missing[i].cves, b.missing[i].cves);
    EXPECT_EQ(a.missing[i].explanation, b.missing[i].explanation);
  }
  EXPECT_FALSE(CatalogIndex::from_snapshot(bytes, "tag-2").has_value()) << "another catalog";
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{7}, std::size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(CatalogIndex::from_snapshot(bytes.substr(0, cut), "tag-1").has_value()) << cut;
  }
  // Any changed byte past the header is found: refused as damaged, never read as another index
  // (one changed letter of a product name once gave a device no missing KB at all).
  for (std::size_t at = 100; at < bytes.size(); at += bytes.size() / 97) {
    std::string changed = bytes;
    changed[at] = static_cast<char>(changed[at] ^ 0x01);
    bool damaged = false;
    EXPECT_FALSE(CatalogIndex::from_snapshot(changed, "tag-1", &damaged).has_value()) << at;
    EXPECT_TRUE(damaged) << at;
  }
  bool damaged = true;
  EXPECT_FALSE(CatalogIndex::from_snapshot(bytes, "tag-2", &damaged).has_value());
  EXPECT_FALSE(damaged) << "another catalog's image is not damaged, only another";
}

// An image forged with a valid checksum (whoever can write the data directory can make one) is
// refused or read as some index, never a crash or an out-of-bounds read when devices are
// evaluated with it: every number the engine indexes with is checked when the image is read.
TEST(Engine, ForgedSnapshotsNeverCrash) {
  const CatalogIndex& c = full_catalog();
  const std::string image = c.snapshot("tag");
  const std::string body = image.substr(0, image.size() - 64);
  const Device devices[] = {windows_10("1909", 18363, {4532693}),
                            test::real_device("srv_2012r2_x64_standard_ru")};
  std::size_t read = 0, refused = 0;
  for (std::size_t at = 120; at < body.size(); at += body.size() / 37) {
    for (unsigned char flip : {0x01, 0xff}) {
      std::string forged = body;
      forged[at] = static_cast<char>(forged[at] ^ flip);
      forged += sha256_hex(forged);
      auto index = CatalogIndex::from_snapshot(forged, "tag");
      if (!index) {
        ++refused;
        continue;
      }
      ++read;
      for (const Device& d : devices) evaluate(*index, d, {"", true});
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(read + refused, 60u);
}

// The docs/api.md §7 rules, on every real inventory shipped with kbgap.
TEST(Engine, RulesHoldOnEveryRealInventory) {
  const CatalogIndex& c = full_catalog();
  const std::vector<Device>& all = test::real_devices();
  ASSERT_EQ(all.size(), 41u);
  int judged = 0;
  for (const Device& d : all) {
    SCOPED_TRACE(d.source);
    Evaluation ev = evaluate(c, d, {});
    const auto products = device_products(c, d);
    if (!products.empty()) ++judged;
    std::set<std::string> closed;
    std::set<KbIndex> reported;
    for (const MissingKb& m : ev.missing) {
      auto kb = c.find_kb(m.kb);
      ASSERT_TRUE(kb);
      reported.insert(*kb);
      // Never a KB for a product the device does not run.
      bool on_device = false;
      for (ProductIndex p : products) {
        for (const ProductFix& f : c.products()[p].fixes) on_device |= f.kb == *kb;
      }
      EXPECT_TRUE(on_device) << "KB" << m.kb;
      // Never an installed KB, a servicing stack or setup update, a withdrawn KB, or a fix of
      // another release.
      EXPECT_FALSE(std::binary_search(d.installed_kbs.begin(), d.installed_kbs.end(), m.kb));
      EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kServicingStack)) << "KB" << m.kb;
      EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kSetupUpdate)) << "KB" << m.kb;
      EXPECT_FALSE(withdrawn(m.kb)) << "KB" << m.kb;
      for (ProductIndex p : products) {
        for (const ProductFix& f : c.products()[p].fixes) {
          EXPECT_FALSE(f.kb == *kb && f.foreign) << "KB" << m.kb;
        }
      }
      EXPECT_FALSE(m.cves.empty()) << "KB" << m.kb;
      closed.insert(m.cves.begin(), m.cves.end());
    }
    // A Monthly Rollup and its Security Only twin are never both demanded.
    std::set<std::string> rollup_months, security_only_months;
    for (const MissingKb& m : ev.missing) {
      if (has_kind(c, d, m.kb, FixKind::kMonthlyRollup)) rollup_months.insert(m.release_date);
      if (has_kind(c, d, m.kb, FixKind::kSecurityOnly)) security_only_months.insert(m.release_date);
    }
    for (const std::string& month : security_only_months) {
      EXPECT_FALSE(rollup_months.contains(month)) << month;
    }
    // Every open CVE is closed by some reported KB, and only open ones are counted.
    EXPECT_EQ(closed, std::set<std::string>(ev.open_cves.begin(), ev.open_cves.end()));
    // No reported KB is superseded by another reported KB or by an installed one.
    for (KbIndex kb : reported) {
      std::vector<KbIndex> stack{kb};
      std::set<KbIndex> seen;
      while (!stack.empty()) {
        KbIndex k = stack.back();
        stack.pop_back();
        for (KbIndex newer : c.superseded_by(k)) {
          if (!seen.insert(newer).second) continue;
          EXPECT_FALSE(reported.contains(newer))
              << "KB" << c.kbs()[kb].kb << " superseded by KB" << c.kbs()[newer].kb;
          EXPECT_FALSE(std::binary_search(d.installed_kbs.begin(), d.installed_kbs.end(),
                                          c.kbs()[newer].kb));
          stack.push_back(newer);
        }
      }
    }
  }
  // Windows XP, Vista, Server 2003 and 2008 RTM are older than the catalog (2016 on).
  EXPECT_GE(judged, 25);
}

// The fleet evaluator's answers are evaluate()'s, device by device: the real inventories, and
// variants of each at several places on its servicing line with some of its other KBs installed.
TEST(Fleet, AnswersAreEvaluatesOnRealDevicesAndVariants) {
  const CatalogIndex& c = full_catalog();
  namespace fs = std::filesystem;
  std::vector<Device> devices;
  for (const auto& e : fs::directory_iterator(fs::path(KBGAP_SOURCE_DIR) / "data/inventories")) {
    if (e.path().extension() != ".txt" || e.path().filename() == "LICENSE.txt") continue;
    auto r = inventory::read_inventory(test::read_file(e.path()), e.path().filename().string());
    ASSERT_TRUE(r) << r.error().message;
    for (auto& inv : *r) {
      if (!inv.has_os) continue;
      const Device real = inv.device;
      devices.push_back(real);
      devices.push_back(real);  // a second device in the same state
      std::vector<KbNumber> line, others;
      for (ProductIndex p : device_products(c, real)) {
        const ProductInfo& product = c.products()[p];
        if (product.role == ProductRole::kOperatingSystem && product.line >= 0 && line.empty()) {
          for (KbIndex kb : c.line(product.line)) line.push_back(c.kbs()[kb].kb);
        }
        for (const ProductFix& f : product.fixes) {
          if (!f.cumulative) others.push_back(c.kbs()[f.kb].kb);
        }
      }
      for (std::size_t back : {0, 3, 8, 20}) {
        for (std::size_t extra = 0; extra < 3; ++extra) {
          Device d = real;
          d.installed_kbs.clear();
          d.revision.reset();
          if (back < line.size()) d.installed_kbs.push_back(line[line.size() - 1 - back]);
          for (std::size_t k = 0; k < extra && !others.empty(); ++k) {
            d.installed_kbs.push_back(others[(back * 31 + extra * 7 + k * 13) % others.size()]);
          }
          inventory::finish_device(d, "");
          devices.push_back(d);
        }
      }
    }
  }
  Fleet fleet(c);
  for (const Device& d : devices) fleet.add(d);
  for (const std::string as_of : {"", "2020-03-31"}) {
    SCOPED_TRACE("as of " + as_of);
    Fleet::Options options;
    options.as_of = as_of;
    options.threads = 2;
    const FleetResult result = fleet.evaluate(options);
    ASSERT_EQ(result.device_count(), devices.size());
    EXPECT_LT(result.distinct_states(), devices.size());
    std::size_t missing = 0;
    for (std::uint32_t i = 0; i < devices.size(); ++i) {
      SCOPED_TRACE(devices[i].source + " #" + std::to_string(i));
      EvaluateOptions one_options;
      one_options.as_of = as_of;
      const Evaluation one = evaluate(c, devices[i], one_options);
      const Evaluation many = result.evaluation(i);
      EXPECT_EQ(result.missing_count(i), one.missing.size());
      EXPECT_EQ(many.products, one.products);
      EXPECT_EQ(many.revision, one.revision);
      EXPECT_EQ(many.revision_inferred, one.revision_inferred);
      EXPECT_EQ(many.open_cves, one.open_cves);
      ASSERT_EQ(many.missing.size(), one.missing.size());
      for (std::size_t k = 0; k < one.missing.size(); ++k) {
        EXPECT_EQ(many.missing[k].kb, one.missing[k].kb);
        EXPECT_EQ(many.missing[k].name, one.missing[k].name);
        EXPECT_EQ(many.missing[k].release_date, one.missing[k].release_date);
        EXPECT_EQ(many.missing[k].products_names, one.missing[k].products_names);
        EXPECT_EQ(many.missing[k].cves, one.missing[k].cves);
      }
      missing += one.missing.size();
    }
    EXPECT_GT(missing, devices.size());  // the variants are behind: real answers, not empty ones
  }
}

}  // namespace
}  // namespace kbgap::engine
