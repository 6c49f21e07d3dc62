// Pure readers for the free-text fields of CVRF remediations: supersedence lists and fixed builds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "catalog/model.h"

namespace kbgap::catalog {

// Skip and repair reasons, as they appear in import reports.
namespace reason {
inline constexpr const char* kNotVendorFix =
    "remediation is not a Vendor Fix (Known Issue, Release Notes, Mitigation, Workaround)";
inline constexpr const char* kFixWithoutKb =
    "vendor fix without a KB number (Release Notes, Click to Run, package names)";
inline constexpr const char* kDuplicateFix =
    "duplicate remediation merged into its twin (same KB, CVE and products)";
inline constexpr const char* kSupersedenceNone = "supersedence given as text 'None'";
inline constexpr const char* kSupersedenceBulletin =
    "supersedence bulletin id ignored (MSyy-nnn), its KB kept";
inline constexpr const char* kSupersedenceNoKb = "supersedence token that is not a KB number";
inline constexpr const char* kSupersedenceSelf = "supersedence of a KB by itself dropped";
inline constexpr const char* kFixedBuildEmptyPart =
    "fixed build repaired: empty component (10.0.20348..2762)";
inline constexpr const char* kFixedBuildTrailingDot = "fixed build repaired: trailing dot";
inline constexpr const char* kFixedBuildSeveral = "fixed build names several builds (all kept)";
inline constexpr const char* kFixedBuildNotVersion =
    "fixed build is not a dotted version number (kept as published text only)";
inline constexpr const char* kProductNameSpaces = "product name with doubled white space folded";
inline constexpr const char* kUnknownProductId =
    "remediation names a ProductID missing from the product tree";
inline constexpr const char* kSubtypeMissing = "vendor fix without SubType";
inline constexpr const char* kSubtypeSpelling =
    "sub-type spelling normalized (SecurityHotpatchUpdate -> Security Hotpatch Update)";
inline constexpr const char* kDocumentIdCase = "document ID case normalized (2018-FEB -> 2018-Feb)";
}  // namespace reason

// "4532693", "4537762; 4537776", "MS16-087, 3170455", "3118389<br><br>4022173", "None".
// KB numbers in order of appearance, without repeats or `self`.
std::vector<KbNumber> parse_supersedence(std::string_view text, KbNumber self, SkipCounts& skips);

// "10.0.19043.1415" -> "10.0.19043.1415"; "10.0.20348..2762" -> "10.0.20348.2762";
// "4.8.9334.0 and 4.8.4802.0" -> "4.8.9334.0;4.8.4802.0"; a URL or "10.25.1-1" -> "".
std::string normalize_fixed_build(std::string_view text, SkipCounts& skips);

// A KB number from a remediation Description ("4540673", "KB4540673"); 0 when it is not one.
KbNumber parse_kb_number(std::string_view text);

// MSRC's severity ratings in order: Critical 4, Important 3, Moderate 2, Low 1, anything else 0.
int msrc_severity_rank(std::string_view severity);

// Revision numbers ("11", "1.0.3") compared part by part, numerically.
bool revision_less(std::string_view a, std::string_view b);

// One spelling per remediation sub-type: "SecurityHotpatchUpdate" and "Security Hotpatch Update",
// "AzureHotpatch" and "Azure Hotpatch", "ServicingStackUpdate" and "Servicing Stack Update" are
// the same thing written two ways. Unknown sub-types are returned as given (white space folded).
std::string canonical_subtype(std::string_view subtype);

// Monthly ids read "YYYY-Mon": "2018-FEB" -> "2018-Feb". Other ids are returned unchanged.
std::string canonical_document_id(std::string_view id);

// Trims and folds runs of white space into one space.
std::string fold_spaces(std::string_view text);

}  // namespace kbgap::catalog
