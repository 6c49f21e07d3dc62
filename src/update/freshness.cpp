#include "update/freshness.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "common/clock.h"

namespace kbgap::catalog {
namespace {

namespace chr = std::chrono;

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// "2026-May" -> "2026-05"; "" for the out-of-band documents ("Oct-OOB", "2017-May-B").
std::string month_of_id(std::string_view id) {
  if (id.size() != 8 || id[4] != '-') return "";
  for (std::size_t m = 0; m < kMonths.size(); ++m) {
    if (id.substr(5) == kMonths[m]) return fmt::format("{}-{:02}", id.substr(0, 4), m + 1);
  }
  return "";
}

std::string day_text(chr::sys_days day) {
  const chr::year_month_day ymd{day};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

}  // namespace

std::string patch_tuesday(std::string_view month) {
  const auto first = parse_day(fmt::format("{}-01", month));
  if (month.size() != 7 || !first) return "";
  const chr::year_month_day ymd{*first};
  return day_text(chr::sys_days{ymd.year() / ymd.month() / chr::Tuesday[2]});
}

Freshness freshness(const std::vector<StoredDocument>& documents) {
  Freshness f;
  for (const StoredDocument& d : documents) {
    MonthFreshness m;
    m.month = month_of_id(d.id);
    if (m.month.empty()) continue;
    m.id = d.id;
    m.patch_tuesday = patch_tuesday(m.month);
    m.current_release = d.current_release;
    m.revision = d.revision;
    m.kb_fixes = d.kb_fixes;
    // Complete: it lists KB fixes, and it was published on its Patch Tuesday or revised since.
    // A month's first revisions, published days before, list few or no updates (2025-Aug's,
    // of August 7, lists 4); MSRC's final documents are dated from their Patch Tuesday, though
    // some carry a current release a few days before it (2023-Jul: initial release July 11,
    // current release July 8).
    m.complete = d.kb_fixes > 0 && (d.initial_release.substr(0, 10) >= m.patch_tuesday ||
                                    d.current_release.substr(0, 10) >= m.patch_tuesday);
    m.initial_release = d.initial_release;
    f.months.push_back(std::move(m));
  }
  std::sort(f.months.begin(), f.months.end(),
            [](const MonthFreshness& a, const MonthFreshness& b) { return a.month < b.month; });
  for (const MonthFreshness& m : f.months) {
    if (m.complete) {
      f.newest_complete = m;
      f.partial_before.insert(f.partial_before.end(), f.partial_after.begin(),
                              f.partial_after.end());
      f.partial_after.clear();
    } else if (f.newest_complete) {
      f.partial_after.push_back(m.month);
    } else {
      f.partial_before.push_back(m.month);
    }
  }
  if (!f.newest_complete) f.partial_before.clear();  // "before" needs a complete month
  return f;
}

std::string Freshness::summary() const {
  if (!newest_complete) return "catalog has no complete Patch Tuesday month";
  std::string out = fmt::format("catalog through {}", newest_complete->month);
  if (partial_after.size() == 1) out += fmt::format("; {} partial", partial_after.front());
  if (partial_after.size() > 1) {
    out += fmt::format("; {} to {} partial", partial_after.front(), partial_after.back());
  }
  return out;
}

std::optional<int> Freshness::age_days(std::string_view today) const {
  if (!newest_complete) return std::nullopt;
  const auto now = parse_day(today);
  const auto tuesday = parse_day(newest_complete->patch_tuesday);
  if (!now || !tuesday) return std::nullopt;
  return static_cast<int>((*now - *tuesday).count());
}

std::optional<std::string> Freshness::stale_warning(std::string_view today) const {
  const auto age = age_days(today);
  if (!newest_complete) {
    return "the catalog holds no complete Patch Tuesday month: run kbgap catalog sync";
  }
  if (!age || *age <= kStaleAfterDays) return std::nullopt;
  return fmt::format(
      "the catalog is stale: its newest complete month is {} (Patch Tuesday {}), {} days ago; "
      "answers miss every update since (run kbgap catalog sync, or import a newer catalog)",
      newest_complete->month, newest_complete->patch_tuesday, *age);
}

}  // namespace kbgap::catalog
