// How current the catalog is: its Patch Tuesday months, which are complete (they list KB fixes
// and were revised on or after their Patch Tuesday) and which are early, partial revisions, and
// the newest complete one, from which a catalog is said to be stale (docs/operations.md,
// "Keeping the catalog current").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/catalog_store.h"

namespace kbgap::catalog {

struct MonthFreshness {
  std::string id;               // "2026-May"
  std::string month;            // "2026-05"
  std::string patch_tuesday;    // its second Tuesday, "2026-05-12"
  std::string initial_release;  // "2026-05-12T07:00:00Z"
  std::string current_release;  // "2026-05-15T01:42:14Z"
  std::string revision;
  std::int64_t kb_fixes = 0;
  bool complete = false;
};

// A catalog whose newest complete month's Patch Tuesday is older than this is stale.
inline constexpr int kStaleAfterDays = 45;

struct Freshness {
  std::vector<MonthFreshness> months;  // Patch Tuesday months, oldest first (out-of-band aside)
  std::optional<MonthFreshness> newest_complete;
  std::vector<std::string> partial_after;  // months after it, all partial: "2026-06", ...
  // Partial months older than it: early revisions a sync (or an import) completes.
  std::vector<std::string> partial_before;

  // "catalog through 2026-05; 2026-06 to 2026-08 partial"
  std::string summary() const;
  // Days from the newest complete month's Patch Tuesday to `today` (YYYY-MM-DD); nullopt when
  // the catalog has no complete month.
  std::optional<int> age_days(std::string_view today) const;
  // The warning to give when the catalog is stale on `today`, or nullopt.
  std::optional<std::string> stale_warning(std::string_view today) const;
};

Freshness freshness(const std::vector<StoredDocument>& documents);

// The second Tuesday of a month, "YYYY-MM-DD"; "" when `month` is not "YYYY-MM".
std::string patch_tuesday(std::string_view month);

}  // namespace kbgap::catalog
