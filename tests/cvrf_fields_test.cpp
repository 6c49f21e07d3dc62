// Supersedence lists and fixed builds, on the strings MSRC really published.
#include "catalog/cvrf_fields.h"

#include <gtest/gtest.h>

namespace kbgap::catalog {
namespace {

TEST(Supersedence, ReadsEverySeparatorMsrcUsed) {
  SkipCounts skips;
  EXPECT_EQ(parse_supersedence("4532693", 4540673, skips), std::vector<KbNumber>{4532693});
  EXPECT_EQ(parse_supersedence("4537762; 4537776", 1, skips),
            (std::vector<KbNumber>{4537762, 4537776}));
  EXPECT_EQ(parse_supersedence("4025341, 4025336, 4025337", 1, skips),
            (std::vector<KbNumber>{4025341, 4025336, 4025337}));
  // 2018-Aug
  EXPECT_EQ(parse_supersedence("3118389<br><br>4022173", 3213636, skips),
            (std::vector<KbNumber>{3118389, 4022173}));
  EXPECT_TRUE(skips.by_reason().empty());
}

TEST(Supersedence, KeepsKbsOfBulletinPairsAndCountsWhatItDrops) {
  SkipCounts skips;
  // 2016 documents pair a bulletin with the KB it shipped.
  EXPECT_EQ(parse_supersedence("MS16-087, 3170455; MS16-106, 3185911; ", 1, skips),
            (std::vector<KbNumber>{3170455, 3185911}));
  EXPECT_EQ(skips.get(reason::kSupersedenceBulletin), 2u);
  EXPECT_TRUE(parse_supersedence("None", 3203469, skips).empty());
  EXPECT_EQ(skips.get(reason::kSupersedenceNone), 1u);
  EXPECT_TRUE(parse_supersedence("2.41.0", 1, skips).empty());
  EXPECT_EQ(skips.get(reason::kSupersedenceNoKb), 1u);
  // 2018-Aug: "4011586<br><br>4011586" names one KB twice.
  EXPECT_EQ(parse_supersedence("4011586<br><br>4011586", 4018392, skips),
            std::vector<KbNumber>{4011586});
  EXPECT_TRUE(parse_supersedence("4018392", 4018392, skips).empty());
  EXPECT_EQ(skips.get(reason::kSupersedenceSelf), 1u);
}

TEST(FixedBuild, NormalizesRealValues) {
  SkipCounts skips;
  EXPECT_EQ(normalize_fixed_build("10.0.19043.1415", skips), "10.0.19043.1415");
  EXPECT_TRUE(skips.by_reason().empty());
  EXPECT_EQ(normalize_fixed_build("10.0.20348..2762", skips), "10.0.20348.2762");  // 2024-Oct
  EXPECT_EQ(skips.get(reason::kFixedBuildEmptyPart), 1u);
  EXPECT_EQ(normalize_fixed_build("30.104.13001.0.", skips), "30.104.13001.0");
  EXPECT_EQ(skips.get(reason::kFixedBuildTrailingDot), 1u);
  EXPECT_EQ(normalize_fixed_build("4.8.9334.0 and 4.8.4802.0", skips), "4.8.9334.0;4.8.4802.0");
  EXPECT_EQ(normalize_fixed_build("3.0.6920.8954; 2.0.50727.8970", skips),
            "3.0.6920.8954;2.0.50727.8970");
  EXPECT_EQ(skips.get(reason::kFixedBuildSeveral), 2u);
}

TEST(FixedBuild, KeepsNonVersionsAsTextOnly) {
  SkipCounts skips;
  EXPECT_EQ(normalize_fixed_build("https://aka.ms/OfficeSecurityReleases", skips), "");
  EXPECT_EQ(normalize_fixed_build("10.25.1-1", skips), "");  // a Linux package version
  EXPECT_EQ(normalize_fixed_build("112.0.5615.49/50", skips), "");
  EXPECT_EQ(normalize_fixed_build("30601", skips), "");
  EXPECT_EQ(skips.get(reason::kFixedBuildNotVersion), 4u);
  EXPECT_EQ(normalize_fixed_build("", skips), "");
}

TEST(KbNumber, AcceptsRealKbNumbersOnly) {
  EXPECT_EQ(parse_kb_number("4540673"), 4540673u);
  EXPECT_EQ(parse_kb_number(" KB5008212 "), 5008212u);
  EXPECT_EQ(parse_kb_number("891716"), 891716u);
  EXPECT_EQ(parse_kb_number("15498768"), 15498768u);
  EXPECT_EQ(parse_kb_number("Release Notes"), 0u);
  EXPECT_EQ(parse_kb_number("Click to Run"), 0u);
  EXPECT_EQ(parse_kb_number("kernel"), 0u);
  EXPECT_EQ(parse_kb_number(""), 0u);
  EXPECT_EQ(parse_kb_number("99999999999999999999"), 0u);
}

TEST(Subtype, OneSpellingPerSubtype) {
  EXPECT_EQ(canonical_subtype("SecurityHotpatchUpdate"), "Security Hotpatch Update");
  EXPECT_EQ(canonical_subtype("Security Hotpatch Update"), "Security Hotpatch Update");
  EXPECT_EQ(canonical_subtype("AzureHotpatch"), "Azure Hotpatch");
  EXPECT_EQ(canonical_subtype("ServicingStackUpdate"), "Servicing Stack Update");
  EXPECT_EQ(canonical_subtype("Monthly Rollup"), "Monthly Rollup");
  EXPECT_EQ(canonical_subtype("CBL-Mariner"), "CBL-Mariner");  // unknown: kept as given
  EXPECT_EQ(canonical_subtype(""), "");
}

TEST(Revision, ComparesNumerically) {
  EXPECT_TRUE(revision_less("9", "11"));
  EXPECT_FALSE(revision_less("11", "9"));
  EXPECT_TRUE(revision_less("1.0", "1.0.1"));
  EXPECT_FALSE(revision_less("2", "2"));
}

}  // namespace
}  // namespace kbgap::catalog
