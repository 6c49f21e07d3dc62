// What a new catalog changes for the devices of one kind: which products it leaves exactly as the
// engine reads them, so that a device running only those products gets the same answer, row for
// row, from either catalog (docs/engine.md, "A new catalog"). The delta export's change log uses
// it to compare only the devices a sync touched.
//
// The rule is conservative: a product is untouched only when everything the engine and the
// rendered rows read of it compares equal in both catalogs, matched by MSRC's own keys (KB
// numbers, CVE ids, ProductIDs, line names), never by the catalogs' internal numbers:
//   - its own fields and its fixes (KB, kind, line place, CVEs, fixed builds);
//   - every KB those fixes name and every KB linked to one by published supersedence, however
//     far (the engine follows supersedence transitively): number, release month, link, fixed
//     builds, what it supersedes and what supersedes it;
//   - the CVEs of its fixes (id, title, severity, score, vector, dates, threats);
//   - the servicing lines that carry its fixes (its own and its host's): their chains, places,
//     products and hosted products, and every fix of those products.
// A catalog whose common KBs, products, lines or months are numbered in another relative order
// touches every product: the engine breaks some ties by those numbers.
#pragma once

#include <cstddef>
#include <vector>

#include "engine/catalog_index.h"
#include "engine/profile.h"

namespace kbgap::engine {

class CatalogChange {
 public:
  CatalogChange(const CatalogIndex& before, const CatalogIndex& after);

  // Do devices of profile `before_key` on the old catalog and of `after_key` on the new one get
  // the same answer? Only when the keys name the same products (by ProductID, in order) and the
  // same line, hotpatch enrolment, as-of date and servicing path, and none of those products is
  // touched. The device's own inputs are the caller's to compare.
  bool same_answers(const ProfileKey& before_key, const ProfileKey& after_key) const;

  // Products of the new catalog that are touched (new ones included).
  std::size_t touched_products() const;
  // Did the catalogs number their common entries in another order (everything is touched)?
  bool reordered() const { return reordered_; }

 private:
  bool reordered_ = false;
  // By the new catalog's product: its place in the old one (kNone when it has none) and whether
  // it is touched.
  static constexpr std::uint32_t kNone = 0xffffffffu;  // as KeyIndex's kAbsent (.cpp)
  IndexedVector<ProductIndex, std::uint32_t> before_of_;
  IndexedVector<ProductIndex, char> touched_;
};

}  // namespace kbgap::engine
