// kbgap against Windows Update itself: real machines whose applicable updates Windows Update listed
// on the day they were inventoried (data/validation/), judged by kbgap as of that day.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "engine/evaluate.h"
#include "engine_support.h"
#include "test_support.h"

namespace kbgap::test {
namespace {

using engine::KbNumber;

struct Verdict {
  std::string stem;
  std::string day;      // the inventory's day
  std::string updates;  // Windows Update's list
  // Security updates of the device's products that Windows Update offered and kbgap, knowingly,
  // does not report, each with why (docs/engine.md).
  std::map<KbNumber, std::string> not_reported;
};

const Verdict kVerdicts[] = {
    {"7_sp1_x64_enterprise_en-us_20190305",
     "2019-03-05",
     "7_sp1_x64_enterprise_en-us_20190305_updates.txt",
     {{3109560,
       "January 2016's single update, which an installed update replaces in published "
       "supersedence; Windows Update offered it all the same"}}},
    {"10_1803_x64_proforworkstations_en-us_A_20190305",
     "2019-03-05",
     "10_1803_x64_proforworkstations_en-us_A_20190305_updates.txt",
     {}},
    {"10_1803_x64_proforworkstations_en-us_B_20190306",
     "2019-03-06",
     "10_1803_x64_proforworkstations_en-us_B_20190306_updates.txt",
     {}},
    {"10_1809_x64_education_en-us_20190306",
     "2019-03-06",
     "10_1809_x64_education_en-us_20190306_updates.txt",
     {}},
    {"srv_2012r2_u1", "2019-03-20", "srv_2012r2_u1_updates_optional.txt", {}},
};

// "KB4486563: 2019-02 Security Monthly Quality Rollup ..." (several KBs: "KB1, KB2: title").
std::set<KbNumber> offered(const std::string& file) {
  const std::string text =
      read_file(std::filesystem::path(KBGAP_SOURCE_DIR) / "data/validation" / file);
  static const std::regex line(R"((?:^|\n)((?:KB\d+(?:, )?)+):)");
  static const std::regex kb(R"(KB(\d+))");
  std::set<KbNumber> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator();
       ++it) {
    const std::string kbs = (*it)[1].str();
    for (auto k = std::sregex_iterator(kbs.begin(), kbs.end(), kb); k != std::sregex_iterator();
         ++k) {
      out.insert(static_cast<KbNumber>(std::stoul((*k)[1].str())));
    }
  }
  return out;
}

// Does the catalog know `kb` as a security update of one of the device's products, released by
// the day?
bool security_update_of(const engine::CatalogIndex& c, const inventory::Device& d, KbNumber kb,
                        const std::string& day) {
  auto index = c.find_kb(kb);
  if (!index || c.release_date(*index) > day) return false;
  for (engine::ProductIndex p : engine::device_products(c, d)) {
    for (const engine::ProductFix& f : c.products()[p].fixes) {
      if (f.kb == *index && f.kind != engine::FixKind::kNonSecurity &&
          f.kind != engine::FixKind::kPreviewRollup) {
        return true;
      }
    }
  }
  return false;
}

TEST(WindowsUpdate, KbgapAgreesWithWindowsUpdateOnTheInventorysDay) {
  const engine::CatalogIndex& c = full_catalog();
  std::size_t agreed = 0;
  for (const Verdict& v : kVerdicts) {
    SCOPED_TRACE(v.stem);
    const inventory::Device d = real_device(v.stem, "data/validation");
    const std::set<KbNumber> wu = offered(v.updates);
    const engine::Evaluation ev = engine::evaluate(c, d, {v.day, false});
    // Every KB kbgap reports, Windows Update offered.
    for (const engine::MissingKb& m : ev.missing) {
      EXPECT_TRUE(wu.contains(m.kb)) << "KB" << m.kb << " reported, not offered";
    }
    // Every security update of the device's products that Windows Update offered, kbgap reports
    // (but for the documented exceptions).
    for (KbNumber kb : wu) {
      if (!security_update_of(c, d, kb, v.day)) continue;
      const bool reported = find(ev, kb) != nullptr;
      if (auto why = v.not_reported.find(kb); why != v.not_reported.end()) {
        EXPECT_FALSE(reported) << "KB" << kb << " is reported now: " << why->second;
        continue;
      }
      EXPECT_TRUE(reported) << "KB" << kb << " offered by Windows Update, not reported";
      agreed += reported ? 1 : 0;
    }
  }
  EXPECT_GE(agreed, 4u);  // the Windows 7 rollup, .NET rollup and IE update; 1803's KB4487017
}

}  // namespace
}  // namespace kbgap::test
