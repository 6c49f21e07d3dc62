// What an import changed in a month, against the revision it replaced (or against nothing, for a
// new month): KBs, supersedence, fixed builds and products new to the catalog. Worked out when the
// import writes the month (the old revision's rows are still there), kept with the import's
// record, read by `kbgap catalog diff`: the Patch Tuesday summary a patch team reads.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/model.h"
#include "common/result.h"

namespace kbgap::catalog {

// A month's facts that a change is told by.
struct MonthFacts {
  std::set<KbNumber> kbs;
  std::set<std::pair<KbNumber, KbNumber>> supersedes;  // (KB, KB it replaces)
  // (KB, product name) -> the fixed builds its fixes list (normalized, as stored)
  std::map<std::pair<KbNumber, std::string>, std::set<std::string>> fixed_builds;
  std::map<std::string, std::string> products;  // id -> name
};

MonthFacts facts_of(const Document& doc);

struct MonthChanges {
  std::vector<KbNumber> new_kbs, removed_kbs;
  std::vector<std::pair<KbNumber, KbNumber>> new_supersedes, removed_supersedes;
  struct Build {
    KbNumber kb = 0;
    std::string product, before, after;  // product name; "" when the KB had no build for it
  };
  std::vector<Build> fixed_builds;  // builds changed for a KB that was in both revisions
  std::vector<std::pair<std::string, std::string>> new_products;  // (id, name), new to the catalog
  bool empty() const;
};

// `before`: the replaced revision's facts (empty for a new month); `known_products`: the product
// ids the catalog held before, in any month.
MonthChanges changes_between(const MonthFacts& before, const MonthFacts& after,
                             const std::set<std::string>& known_products);

std::string to_json(const MonthChanges& changes);
Result<MonthChanges> changes_from_json(std::string_view json);

}  // namespace kbgap::catalog
