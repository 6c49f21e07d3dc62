// Servicing models on the real catalog and the real inventories: what Windows Update would say
// about a device that installed a given month's update, judged on the eve of the next Patch
// Tuesday (docs/engine.md, "Servicing models"). Each test runs the class over every real
// device it applies to, not one example.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "engine/evaluate.h"
#include "engine_support.h"
#include "inventory/windows_release.h"

namespace kbgap::engine {
namespace {

using inventory::Device;
using test::find;
using test::full_catalog;
using test::has_kind;

Device with_installed(Device d, const std::vector<KbNumber>& kbs) {
  d.installed_kbs.insert(d.installed_kbs.end(), kbs.begin(), kbs.end());
  std::sort(d.installed_kbs.begin(), d.installed_kbs.end());
  d.installed_kbs.erase(std::unique(d.installed_kbs.begin(), d.installed_kbs.end()),
                        d.installed_kbs.end());
  return d;
}

// The device's OS servicing line, -1 when the catalog has none for it.
int os_line(const CatalogIndex& c, const Device& d) {
  const auto products = device_products(c, d);
  return products.empty() ? -1 : c.products()[products.front()].line;
}

const ProductFix* fix_of(const CatalogIndex& c, ProductIndex product, KbIndex kb) {
  for (const ProductFix& f : c.products()[product].fixes) {
    if (f.kb == kb) return &f;
  }
  return nullptr;
}

// The places of a line's chain that are a month's security release (not a preview or an
// out-of-band release), spread over the line: about `count` of them.
std::vector<std::size_t> security_releases(const CatalogIndex& c, const Device& d, int line,
                                           std::size_t count) {
  const ProductIndex os = device_products(c, d).front();
  std::vector<std::size_t> all;
  for (std::size_t i = 0; i < c.line(line).size(); ++i) {
    const ProductFix* f = fix_of(c, os, c.line(line)[i]);
    // The last of its day: MSRC sometimes dates two months' updates alike (October 2025's
    // KB5066835 turns up only in November's and December's documents).
    const bool last_of_day = i + 1 == c.line(line).size() ||
                             c.release_day(c.line(line)[i + 1]) != c.release_day(c.line(line)[i]);
    if (f && last_of_day && (f->kind == FixKind::kRegular || f->kind == FixKind::kMonthlyRollup)) {
      all.push_back(i);
    }
  }
  std::vector<std::size_t> out;
  for (std::size_t k = 1; k <= count && !all.empty(); ++k) {
    out.push_back(all[(all.size() - 1) * k / count]);
  }
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The eve of the next Patch Tuesday after the update at `position`: the day before the line's
// next release on a later day; "" (no limit) after the last.
std::string eve_of_next(const CatalogIndex& c, int line, std::size_t position) {
  const auto& chain = c.line(line);
  for (std::size_t j = position + 1; j < chain.size(); ++j) {
    if (c.release_day(chain[j]) > c.release_day(chain[position])) {
      return test::day_before(c.release_date(chain[j]));
    }
  }
  return "";
}

// Is `kb`, for every product of the device it fixes, contained in an update of that product's
// lines that was out by `as_of` and that the device would install (not a rollup it declines on
// the Security Only path)? Then it is never worth reporting.
bool contained_for_the_device(const CatalogIndex& c, const Device& d, KbIndex kb,
                              const std::string& as_of) {
  const auto products = device_products(c, d);
  const std::uint64_t security_only_path = profile_key(c, d, 0).security_only_path;
  auto declined = [&](int line) {
    for (std::size_t s = 0; s < products.size() && s < 64; ++s) {
      if (c.products()[products[s]].line == line) return (security_only_path >> s & 1) != 0;
    }
    return false;
  };
  bool fixes_any = false;
  for (ProductIndex p : products) {
    if (!fix_of(c, p, kb)) continue;
    fixes_any = true;
    bool contained = false;
    for (int line : c.carrier_lines(p)) {
      if (line < 0) continue;
      const auto place = c.line_place(line, kb);
      if (!place || !place->carried || declined(line)) continue;
      const KbIndex carrier = c.line(line)[static_cast<std::size_t>(place->position)];
      contained |= as_of.empty() || c.release_date(carrier) <= as_of;
    }
    if (!contained) return false;
  }
  return fixes_any;
}

// What every answer must be, whatever the model: each KB a standalone or the newest of a line
// the device runs (one per line), none contained in another update the device would install,
// and installing all of them leaves nothing missing.
void expect_whole_answer(const CatalogIndex& c, const Device& d, const Evaluation& ev,
                         const std::string& as_of) {
  std::set<int> lines;
  for (ProductIndex p : device_products(c, d)) {
    if (c.products()[p].line >= 0) lines.insert(c.products()[p].line);
  }
  std::map<int, KbNumber> reported_on_line;
  std::vector<KbNumber> all;
  for (const MissingKb& m : ev.missing) {
    const KbIndex kb = *c.find_kb(m.kb);
    all.push_back(m.kb);
    for (int line : lines) {
      const auto place = c.line_place(line, kb);
      if (!place || place->carried) continue;
      auto [it, inserted] = reported_on_line.emplace(line, m.kb);
      EXPECT_TRUE(inserted) << "KB" << m.kb << " and KB" << it->second << " on "
                            << c.line_info(line).key;
    }
    EXPECT_FALSE(contained_for_the_device(c, d, kb, as_of)) << "KB" << m.kb << " is contained";
    if (!as_of.empty()) {
      EXPECT_LE(m.release_date, as_of) << "KB" << m.kb;
    }
  }
  const Evaluation after = evaluate(c, with_installed(d, all), {as_of, false});
  for (const MissingKb& m : after.missing) {
    ADD_FAILURE() << "KB" << m.kb << " (" << m.release_date << ", " << m.cves.size()
                  << " CVEs, first " << m.cves.front() << ") still missing after installing "
                  << ::testing::PrintToString(all) << " as of " << as_of;
  }
}

// A month's update of the device's own line (the rollup, or the cumulative update) installed,
// judged on the eve of the next Patch Tuesday: nothing of that line is missing (no earlier
// update, no Security Only, IE cumulative, .NET in the OS update or single update it contains),
// only standalones and the updates of the device's other lines.
TEST(Servicing, AMonthsUpdateLeavesNothingOfItsLineMissing) {
  const CatalogIndex& c = full_catalog();
  int judged = 0, rollup_devices = 0;
  for (const Device& real : test::real_devices()) {
    const int line = os_line(c, real);
    if (line < 0) continue;
    SCOPED_TRACE(real.source);
    ++judged;
    const bool rollups = c.line_info(line).model == LineModel::kRollup;
    rollup_devices += rollups ? 1 : 0;
    for (std::size_t position : security_releases(c, real, line, 5)) {
      const KbIndex update = c.line(line)[position];
      const std::string as_of = eve_of_next(c, line, position);
      SCOPED_TRACE("KB" + std::to_string(c.kbs()[update].kb) + " as of " + as_of);
      const Device d = with_installed(real, {c.kbs()[update].kb});
      const Evaluation ev = evaluate(c, d, {as_of, false});
      const bool security_only_path =
          (profile_key(c, d, 0).security_only_path & 1) != 0;  // the OS is slot 0
      for (const MissingKb& m : ev.missing) {
        EXPECT_EQ(c.line_position(line, *c.find_kb(m.kb)), -1)
            << "KB" << m.kb << " is of the line of the installed update";
        if (rollups && !security_only_path) {
          EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kSecurityOnly)) << "KB" << m.kb;
          // No IE cumulative update a rollup carries (an out-of-band one it does not carry is
          // Windows Update's answer too: Servicing.RollupsCarryTheirMonthsIeUpdate...).
          const auto place = c.line_place(line, *c.find_kb(m.kb));
          EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kIeCumulative) && place) << "KB" << m.kb;
        }
      }
      expect_whole_answer(c, d, ev, as_of);
    }
  }
  EXPECT_GE(judged, 25);
  EXPECT_GE(rollup_devices, 8);
}

// Without the month's update, the device needs exactly one update of its line: the newest by
// then (a Monthly Rollup replaces every earlier rollup, Security Only and IE cumulative update
// and the single updates before the first rollup).
TEST(Servicing, OneUpdateOfTheLineWhenTheDeviceHasNone) {
  const CatalogIndex& c = full_catalog();
  for (const Device& real : test::real_devices()) {
    const int line = os_line(c, real);
    if (line < 0) continue;
    SCOPED_TRACE(real.source);
    for (std::size_t position : security_releases(c, real, line, 5)) {
      const std::string as_of = eve_of_next(c, line, position);
      Device bare = real;
      bare.installed_kbs.clear();
      bare.revision.reset();
      const Evaluation ev = evaluate(c, bare, {as_of, false});
      std::vector<KbNumber> of_line;
      // Updates of the line: on it, or superseding one of it (MSRC lists December 2018's
      // out-of-band update of Windows 10 1803, KB4483234, for Internet Explorer only).
      auto of_the_line = [&](KbIndex kb) {
        if (c.line_position(line, kb) >= 0) return true;
        return std::any_of(c.supersedes(kb).begin(), c.supersedes(kb).end(),
                           [&](KbIndex older) { return c.line_position(line, older) >= 0; });
      };
      for (const MissingKb& m : ev.missing) {
        if (of_the_line(*c.find_kb(m.kb))) of_line.push_back(m.kb);
      }
      ASSERT_EQ(of_line.size(), 1u) << as_of;
      // The newest of the line released by then.
      const auto& chain = c.line(line);
      std::size_t newest = position;
      while (newest + 1 < chain.size() &&
             (as_of.empty() || c.release_date(chain[newest + 1]) <= as_of)) {
        ++newest;
      }
      const KbIndex picked = *c.find_kb(of_line.front());
      if (c.line_position(line, picked) >= 0) {
        EXPECT_EQ(of_line.front(), c.kbs()[chain[newest]].kb) << as_of;
      } else {
        EXPECT_GE(c.release_date(picked), c.release_date(chain[newest])) << as_of;
      }
      expect_whole_answer(c, bare, ev, as_of);
    }
  }
}

// A device on the Security Only path (its newest update of the line is a Security Only one)
// is given each missing month's Security Only update and Internet Explorer's cumulative
// update, never a rollup: Security Only updates contain their month only.
TEST(Servicing, SecurityOnlyPathGetsEachMonthsSecurityOnlyUpdate) {
  const CatalogIndex& c = full_catalog();
  int judged = 0;
  for (const Device& real : test::real_devices()) {
    const int line = os_line(c, real);
    if (line < 0 || c.line_info(line).model != LineModel::kRollup) continue;
    SCOPED_TRACE(real.source);
    const ProductIndex os = device_products(c, real).front();
    for (std::size_t position : security_releases(c, real, line, 4)) {
      if (position < 3) continue;
      const auto& chain = c.line(line);
      // Three months of Security Only updates, and none of the month before them.
      const int from = c.release_day(chain[position - 2]);
      const int to = c.release_day(chain[position]);
      const int before = c.release_day(chain[position - 3]);
      std::vector<KbNumber> installed, missing_month;
      for (const ProductFix& f : c.products()[os].fixes) {
        if (f.kind != FixKind::kSecurityOnly) continue;
        const int day = c.release_day(f.kb);
        if (day >= from && day <= to) installed.push_back(c.kbs()[f.kb].kb);
        if (day == before) missing_month.push_back(c.kbs()[f.kb].kb);
      }
      if (installed.empty()) continue;
      ++judged;
      const std::string as_of = eve_of_next(c, line, position);
      SCOPED_TRACE(as_of);
      Device d = real;
      d.installed_kbs = installed;
      ASSERT_EQ(profile_key(c, d, 0).security_only_path & 1, 1u);
      const Evaluation ev = evaluate(c, d, {as_of, false});
      // No rollup, but for what only a rollup closes (MSRC lists some CVEs under the rollup
      // alone): then only the newest.
      std::size_t rollups = 0;
      for (const MissingKb& m : ev.missing) {
        rollups += c.line_position(line, *c.find_kb(m.kb)) >= 0 ? 1 : 0;
        EXPECT_FALSE(std::count(installed.begin(), installed.end(), m.kb)) << "KB" << m.kb;
      }
      EXPECT_LE(rollups, 1u);
      // The month before is missing, by its own Security Only update.
      ASSERT_FALSE(missing_month.empty());
      EXPECT_TRUE(std::any_of(missing_month.begin(), missing_month.end(),
                              [&](KbNumber kb) { return find(ev, kb) != nullptr; }));
      // Internet Explorer's newest cumulative update, when the device has IE and it is open.
      std::size_t ie = 0;
      for (const MissingKb& m : ev.missing) ie += has_kind(c, d, m.kb, FixKind::kIeCumulative);
      EXPECT_LE(ie, 1u);
      expect_whole_answer(c, d, ev, as_of);
      // And with the month's rollup installed too, back on the rollup path.
      const Device rolled = with_installed(d, {c.kbs()[chain[position]].kb});
      EXPECT_EQ(profile_key(c, rolled, 0).security_only_path & 1, 0u);
    }
  }
  EXPECT_GE(judged, 10);
}

// A rollup contains its month's Internet Explorer cumulative update, the one whose CVEs it
// fixes too; an out-of-band IE update MSRC lists no rollup for is what Windows Update offered
// beside later rollups (a real Windows 7 machine on March 5, 2019: the February 2019 rollup
// KB4486563 and December 19, 2018's IE update KB4483187). On the rollup path, a machine does
// not install IE cumulative updates (they are published to WSUS and the Update Catalog).
TEST(Servicing, RollupsCarryTheirMonthsIeUpdateNotAnOutOfBandOne) {
  const CatalogIndex& c = full_catalog();
  std::size_t carried = 0, not_carried = 0;
  for (std::size_t l = 0; l < c.line_count(); ++l) {
    const ServicingLine& line = c.line_info(static_cast<int>(l));
    if (line.model != LineModel::kRollup) continue;
    for (ProductIndex ie : line.hosted) {
      for (const ProductFix& f : c.products()[ie].fixes) {
        if (f.kind != FixKind::kIeCumulative) continue;
        const auto place = c.line_place(static_cast<int>(l), f.kb);
        if (c.release_day(f.kb) < c.release_day(line.chain.front())) continue;  // before rollups
        // The rollup released the same day, and whether it fixes one of the update's CVEs.
        bool twin_fixes = false;
        for (KbIndex kb : line.chain) {
          if (c.release_day(kb) != c.release_day(f.kb)) continue;
          const ProductFix* r = fix_of(c, ie, kb);
          twin_fixes |= r && std::any_of(f.cves.begin(), f.cves.end(), [&](CveIndex cve) {
                          return std::binary_search(r->cves.begin(), r->cves.end(), cve);
                        });
        }
        EXPECT_EQ(place.has_value() && place->carried, twin_fixes)
            << line.key << " KB" << c.kbs()[f.kb].kb;
        (twin_fixes ? carried : not_carried) += 1;
      }
    }
  }
  EXPECT_GT(carried, 100u);
  EXPECT_GT(not_carried, 0u);
  // On a real Windows 7 device as of March 5, 2019: February's rollup and the out-of-band IE
  // update, whether or not the rollup is installed; installed, the IE update is gone.
  const Device real = test::real_device("7_sp1_x64_enterprise_en-us_A");
  Device d = real;
  std::erase_if(d.installed_kbs, [](KbNumber kb) { return kb == 4483187 || kb == 4486563; });
  const std::string as_of = "2019-03-05";
  Evaluation ev = evaluate(c, d, {as_of, false});
  EXPECT_NE(find(ev, 4486563), nullptr);
  EXPECT_NE(find(ev, 4483187), nullptr);
  for (const MissingKb& m : ev.missing) {
    EXPECT_FALSE(has_kind(c, d, m.kb, FixKind::kIeCumulative) && m.kb != 4483187) << m.kb;
  }
  ev = evaluate(c, with_installed(d, {4486563}), {as_of, false});
  EXPECT_NE(find(ev, 4483187), nullptr);
  ev = evaluate(c, with_installed(d, {4486563, 4483187}), {as_of, false});
  EXPECT_EQ(find(ev, 4483187), nullptr);
  EXPECT_EQ(find(ev, 4486563), nullptr);
}

// Out-of-band and preview cumulative updates sit on the line after their month's security
// release: installed, they hold it. ADV190005 on Windows 10 1803 is fixed by KB4487029
// (February 19, 2019, 17134.619, an optional release MSRC lists as "Update"), after that month's
// KB4487017 (17134.590); an optional release is never demanded.
TEST(Servicing, OutOfBandUpdatesSitOnTheLine) {
  const CatalogIndex& c = full_catalog();
  Device d = test::real_device("10_1803_x64_enterprise_es-ar_20190307");
  ASSERT_EQ(d.version, "1803");
  // The inventory's day: what Windows Update said then.
  const std::string as_of = "2019-03-07";
  std::erase_if(d.installed_kbs, [](KbNumber kb) { return kb == 4487017 || kb == 4487029; });
  // Missing both: the month's security release, which Windows Update offers; the optional
  // release after it is not (a real 1803 machine on March 6, 2019 was offered KB4487017).
  Evaluation ev = evaluate(c, d, {as_of, false});
  EXPECT_NE(find(ev, 4487017), nullptr);
  EXPECT_EQ(find(ev, 4487029), nullptr);
  // With it installed, nothing of the line (a real 1803 machine with KB4487017 on March 5, 2019
  // was offered no update at all).
  ev = evaluate(c, with_installed(d, {4487017}), {as_of, false});
  EXPECT_EQ(find(ev, 4487029), nullptr);
  EXPECT_EQ(find(ev, 4487017), nullptr);
  // The optional release installed: it holds February's update.
  ev = evaluate(c, with_installed(d, {4487029}), {as_of, false});
  EXPECT_EQ(find(ev, 4487029), nullptr);
  EXPECT_EQ(find(ev, 4487017), nullptr);
  // The class: on every cumulative line, a preview or out-of-band release follows its month's
  // security release.
  for (std::size_t l = 0; l < c.line_count(); ++l) {
    const ServicingLine& line = c.line_info(static_cast<int>(l));
    for (std::size_t i = 1; i < line.chain.size(); ++i) {
      const ProductFix* f = fix_of(c, line.products.front(), line.chain[i]);
      const ProductFix* prev = fix_of(c, line.products.front(), line.chain[i - 1]);
      if (!f || !prev || c.release_day(line.chain[i]) != c.release_day(line.chain[i - 1])) {
        continue;
      }
      const bool late = f->kind == FixKind::kNonSecurity || f->kind == FixKind::kPreviewRollup;
      const bool prev_late =
          prev->kind == FixKind::kNonSecurity || prev->kind == FixKind::kPreviewRollup;
      EXPECT_FALSE(prev_late && !late) << line.key << " KB" << c.kbs()[line.chain[i]].kb;
    }
  }
}

// Windows 10 1507 to 1803 and Server 2016 service their in-box .NET Framework inside the OS
// cumulative update; from 1809 on .NET has cumulative updates of its own.
TEST(Servicing, InBoxDotNetOfWindows10BeforeVersion1809RidesTheOsUpdate) {
  const CatalogIndex& c = full_catalog();
  std::size_t hosted = 0;
  for (const ProductInfo& p : c.products()) {
    if (!p.name.starts_with("Microsoft .NET Framework") || !p.delivered_by_host) continue;
    ++hosted;
    const std::string& host = c.products()[*p.delivered_by_host].name;
    const bool before_1809 =
        host.starts_with("Windows 10 for ") || host.starts_with("Windows 10 Version 1511") ||
        host.starts_with("Windows 10 Version 1607") ||
        host.starts_with("Windows 10 Version 1703") ||
        host.starts_with("Windows 10 Version 1709") ||
        host.starts_with("Windows 10 Version 1803") || host.starts_with("Windows Server 2016") ||
        host.starts_with("Windows Server, version 1709") ||
        host.starts_with("Windows Server, version 1803");
    EXPECT_TRUE(before_1809) << p.name;
  }
  EXPECT_GT(hosted, 10u);
  // The real Server 2016 with its OS's newest update has no .NET Framework update missing; the
  // real Windows 10 1809 device with its OS's newest update still has .NET's own.
  for (const char* stem : {"srv_2016_1607_datacenter_en-us", "10_1809_x64_pro_en-us_20190307"}) {
    SCOPED_TRACE(stem);
    const Device real = test::real_device(stem);
    const int line = os_line(c, real);
    ASSERT_GE(line, 0);
    const Device d = with_installed(real, {c.kbs()[c.line(line).back()].kb});
    const Evaluation ev = evaluate(c, d, {});
    bool dotnet = false;
    for (const MissingKb& m : ev.missing) {
      dotnet |= std::count(m.products_names.begin(), m.products_names.end(), ".net_framework");
    }
    EXPECT_EQ(dotnet, std::string(stem).starts_with("10_1809"));
  }
}

// A hotpatch-enrolled server at a revision has every hotpatch whose fixed build it has passed.
TEST(Servicing, HotpatchesABuildHasPassedAreInstalled) {
  const CatalogIndex& c = full_catalog();
  for (int revision : {525, 916, 2700, 3000}) {
    SCOPED_TRACE(revision);
    Device d;
    d.os_name = "Microsoft Windows Server 2022 Datacenter: Azure Edition";
    d.major = 10;
    d.build = 20348;
    d.revision = revision;
    d.architecture = inventory::Architecture::kX64;
    d.hotpatch_enrolled = true;
    inventory::classify_windows(d);
    const Evaluation ev = evaluate(c, d, {});
    std::size_t hotpatches_passed = 0;
    for (ProductIndex p : device_products(c, d)) {
      for (const ProductFix& f : c.products()[p].fixes) {
        if (f.kind != FixKind::kHotpatch) continue;
        bool passed = false;
        for (const Build& b : f.fixed_builds) {
          passed |= b.build == 20348 && b.revision <= revision;
        }
        if (!passed) continue;
        ++hotpatches_passed;
        EXPECT_EQ(find(ev, c.kbs()[f.kb].kb), nullptr) << "KB" << c.kbs()[f.kb].kb;
      }
    }
    if (revision >= 916) {
      EXPECT_GT(hotpatches_passed, 0u);
    }
  }
}

// A semi-annual channel server (Server Core, version 1903 to 20H2) is serviced on its client
// twin's line: at or past an update's fixed build, it has it, whichever product MSRC gave the
// build under.
TEST(Servicing, SemiAnnualServersReachTheirClientTwinsBuilds) {
  const CatalogIndex& c = full_catalog();
  int judged = 0;
  for (int build : {16299, 17134, 18362, 18363, 19041, 19042}) {
    Device d;
    d.os_name = "Microsoft Windows Server Datacenter";
    d.major = 10;
    d.build = build;
    d.architecture = inventory::Architecture::kX64;
    ASSERT_TRUE(inventory::classify_windows(d));
    const int line = os_line(c, d);
    if (line < 0) continue;
    SCOPED_TRACE(c.line_info(line).key);
    // The revision of the line's update in the middle of its life.
    const auto& chain = c.line(line);
    for (std::size_t i = chain.size() / 2; i < chain.size(); ++i) {
      std::optional<int> revision;
      for (const Build& b : c.kb_builds(chain[i])) {
        if (b.major == 10 && servicing_family(b.build) == servicing_family(build)) {
          revision = std::max(revision.value_or(0), b.revision);
        }
      }
      if (!revision) continue;
      ++judged;
      d.revision = revision;
      const Evaluation ev = evaluate(c, d, {});
      for (std::size_t j = 0; j <= i; ++j) {
        EXPECT_EQ(find(ev, c.kbs()[chain[j]].kb), nullptr)
            << "KB" << c.kbs()[chain[j]].kb << " at revision " << *revision;
      }
      break;
    }
  }
  EXPECT_GE(judged, 2);  // 1709 to 1903 were retired before MSRC listed fixed builds
  // The class: every semi-annual server product is an operating system with a line (their
  // names, "Windows Server, version 1909 (Server Core installation)", once were not).
  std::size_t servers = 0;
  for (const ProductInfo& p : c.products()) {
    if (!p.name.starts_with("Windows Server, version ")) continue;
    ++servers;
    EXPECT_EQ(p.role, ProductRole::kOperatingSystem) << p.name;
    EXPECT_GE(p.line, 0) << p.name;
    EXPECT_EQ(p.snake_name, "windows_server") << p.name;
  }
  EXPECT_GE(servers, 6u);
}

// Standalone updates outside every cumulative update stay missing until installed: Secure Boot
// DBX (KB5012170) beside a current rollup or cumulative update, SHA-2 support (KB4474419) on
// Windows 7 and Server 2008 R2.
TEST(Servicing, StandaloneUpdatesStayBesideTheNewestUpdate) {
  const CatalogIndex& c = full_catalog();
  const std::pair<const char*, KbNumber> cases[] = {
      {"srv_2012r2_x64_standard_ru", 5012170},
      {"8.1_u1_x64_enterprise_en-us", 5012170},
      {"10_rtm_x64_pro_en-us", 5012170},
      {"7_sp1_x64_enterprise_en-us_B", 4474419},
      {"srv_2008r2_sp1_x64_standard_en-us", 4474419},
  };
  for (const auto& [stem, standalone] : cases) {
    SCOPED_TRACE(stem);
    const Device real = test::real_device(stem);
    const int line = os_line(c, real);
    ASSERT_GE(line, 0);
    const Device d = with_installed(real, {c.kbs()[c.line(line).back()].kb});
    EXPECT_NE(find(evaluate(c, d, {}), standalone), nullptr);
    EXPECT_EQ(find(evaluate(c, with_installed(d, {standalone}), {}), standalone), nullptr);
  }
}

}  // namespace
}  // namespace kbgap::engine

namespace kbgap::engine {
namespace {

// Every operating system the catalog names by its fixed builds is recognized from a device of
// that build: by kbgap's table of releases, or, for a release newer than the table (Windows 11
// 26H1, 10.0.28000), by the catalog itself.
TEST(Releases, EveryReleaseTheCatalogBuildsNameIsRecognized) {
  const CatalogIndex& c = full_catalog();
  std::size_t checked = 0, learnt = 0;
  std::set<std::tuple<int, int, int>> catalog_builds;
  for (const ProductInfo& any : c.products()) {
    for (const ProductFix& f : any.fixes) {
      for (const Build& b : f.fixed_builds) catalog_builds.emplace(b.major, b.minor, b.build);
    }
  }
  for (ProductIndex p : c.product_indices()) {
    const ProductInfo& product = c.products()[p];
    if (product.role != ProductRole::kOperatingSystem || product.line < 0 ||
        product.name.find("Hotpatch") != std::string::npos || !c.line_info(product.line).release) {
      continue;
    }
    const Build release = *c.line_info(product.line).release;
    // The builds of that release the catalog lists (siblings share updates: a Windows 10 20H2
    // update lists 19041 to 19045); the device of one of them runs the product.
    std::set<int> builds;
    for (const auto& [major, minor, build] : catalog_builds) {
      if (major == release.major && minor == release.minor &&
          servicing_family(build) == release.build) {
        builds.insert(build);
      }
    }
    const std::string lower = normalize_product_name(product.name);
    if (builds.empty() || lower.starts_with("windows rt")) continue;  // ARM32: not a device arch
    SCOPED_TRACE(product.name);
    bool found = false;
    for (int build : builds) {
      Device d;
      d.computer_dns_name = "release.example.com";
      const bool server = lower.find("server") != std::string::npos;
      d.os_name = server ? "Microsoft Windows Server Datacenter" : "Microsoft Windows Enterprise";
      d.major = release.major;
      d.minor = release.minor;
      d.build = build;
      d.architecture = lower.find("32-bit") != std::string::npos  ? inventory::Architecture::kX86
                       : lower.find("arm64") != std::string::npos ? inventory::Architecture::kArm64
                                                                  : inventory::Architecture::kX64;
      const bool core = lower.find("server core") != std::string::npos;
      if (!inventory::classify_windows(d)) {
        if (!inventory::accept_newer_release(d)) continue;  // an unknown build between releases
        ASSERT_TRUE(learn_release(c, d));
        EXPECT_FALSE(d.os_family.empty());
        ++learnt;
      }
      d.server_core = d.server_core || core;
      const auto products = device_products(c, d);
      found |= std::any_of(products.begin(), products.end(), [&](ProductIndex q) {
        return normalize_product_name(c.products()[q].name) == lower;
      });
    }
    EXPECT_TRUE(found) << ::testing::PrintToString(builds);
    ++checked;
  }
  EXPECT_GT(checked, 40u);
  EXPECT_GE(learnt, 1u);  // Windows 11 26H1
}

}  // namespace
}  // namespace kbgap::engine
