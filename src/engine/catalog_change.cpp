// What a new catalog changes, product by product (catalog_change.h; docs/engine.md, "A new
// catalog").
#include "engine/catalog_change.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <unordered_map>

#include "engine/union_find.h"

namespace kbgap::engine {
namespace {

// A new field in one of these must be compared below (and then the size here updated): an
// input the comparison does not see would let a changed answer pass as unchanged.
static_assert(sizeof(void*) != 8 || sizeof(DocumentInfo) == 104);
static_assert(sizeof(void*) != 8 || sizeof(KbInfo) == 40);
static_assert(sizeof(void*) != 8 || sizeof(CveInfo) == 216);
static_assert(sizeof(void*) != 8 || sizeof(ProductFix) == 64);
static_assert(sizeof(void*) != 8 || sizeof(ProductInfo) == 168);
static_assert(sizeof(void*) != 8 || sizeof(ServicingLine) == 136);
static_assert(sizeof(void*) != 8 || sizeof(LinePlace) == 8);

constexpr std::uint32_t kAbsent = 0xffffffffu;

using BuildTuple = std::tuple<int, int, int, int>;
std::vector<BuildTuple> builds_of(const std::vector<Build>& builds) {
  std::vector<BuildTuple> out;
  for (const Build& b : builds) out.emplace_back(b.major, b.minor, b.build, b.revision);
  return out;
}

std::vector<KbNumber> numbers_of(const CatalogIndex& c, const std::vector<KbIndex>& kbs,
                                 bool sorted) {
  std::vector<KbNumber> out;
  for (KbIndex kb : kbs) out.push_back(c.kbs()[kb].kb);
  if (sorted) std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ids_of(const CatalogIndex& c, const std::vector<ProductIndex>& products) {
  std::vector<std::string> out;
  for (ProductIndex p : products) out.push_back(c.products()[p].id);
  return out;
}

// Everything read of a KB, by what MSRC names it with.
auto kb_record(const CatalogIndex& c, KbIndex kb) {
  const KbInfo& info = c.kbs()[kb];
  const DocumentInfo& month = c.documents()[info.release_document];
  return std::make_tuple(info.kb, info.url, month.id, month.title, month.release_date, month.day,
                         builds_of(c.kb_builds(kb)), numbers_of(c, c.supersedes(kb), true),
                         numbers_of(c, c.superseded_by(kb), true));
}

auto cve_record(const CveInfo& v) {
  return std::tie(v.id, v.title, v.severity, v.cvss_base, v.cvss_vector, v.published, v.updated,
                  v.exploited, v.publicly_disclosed);
}

// A product's fixes in KB number order.
auto fixes_record(const CatalogIndex& c, const ProductInfo& p) {
  std::vector<std::tuple<KbNumber, FixKind, bool, int, bool, std::vector<std::string>,
                         std::vector<BuildTuple>>>
      out;
  for (const ProductFix& f : p.fixes) {
    std::vector<std::string> cves;
    for (CveIndex cve : f.cves) cves.push_back(c.cves()[cve].id);
    out.emplace_back(c.kbs()[f.kb].kb, f.kind, f.cumulative, f.line_position, f.foreign,
                     std::move(cves), builds_of(f.fixed_builds));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  return out;
}

std::string line_key(const CatalogIndex& c, int line) {
  return line < 0 ? std::string() : c.line_info(line).key;
}

auto product_record(const CatalogIndex& c, const ProductInfo& p) {
  const ProductInfo* host = p.delivered_by_host ? &c.products()[*p.delivered_by_host] : nullptr;
  return std::make_tuple(p.id, p.name, p.snake_name, p.role, ids_of(c, p.components),
                         line_key(c, p.line), host ? host->id : "",
                         host ? line_key(c, host->line) : "", fixes_record(c, p));
}

// Each line's places (KB number, position, carried), sorted.
std::vector<std::vector<std::tuple<KbNumber, int, bool>>> places_by_line(const CatalogIndex& c) {
  std::vector<std::vector<std::tuple<KbNumber, int, bool>>> out(c.line_count());
  for (const auto& [line, kb, place] : c.line_places()) {
    out[static_cast<std::size_t>(line)].emplace_back(c.kbs()[kb].kb, place.position, place.carried);
  }
  for (auto& places : out) std::sort(places.begin(), places.end());
  return out;
}

auto line_record(const CatalogIndex& c, const ServicingLine& l) {
  std::optional<BuildTuple> release;
  if (l.release)
    release = BuildTuple{l.release->major, l.release->minor, l.release->build, l.release->revision};
  return std::make_tuple(l.key, l.model, numbers_of(c, l.chain, false), ids_of(c, l.products),
                         ids_of(c, l.hosted), release);
}

// Places in `before` by a key, kAbsent where the key is missing or not unique there.
template <typename Key>
class KeyIndex {
 public:
  void add(Key key, std::uint32_t at) {
    auto [it, inserted] = map_.try_emplace(std::move(key), at);
    if (!inserted) it->second = kAbsent;
  }
  std::uint32_t find(const Key& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? kAbsent : it->second;
  }

 private:
  std::unordered_map<Key, std::uint32_t> map_;
};

// Do the entries `after` shares with `before` (at places[i] there) keep
// their relative order? (kAbsent: not in `before`)
bool same_order(const std::vector<std::uint32_t>& places) {
  std::uint32_t last = 0;
  bool any = false;
  for (std::uint32_t p : places) {
    if (p == kAbsent) continue;
    if (any && p <= last) return false;
    last = p;
    any = true;
  }
  return true;
}

}  // namespace

CatalogChange::CatalogChange(const CatalogIndex& before, const CatalogIndex& after)
    : before_of_(after.products().size(), kNone), touched_(after.products().size(), 1) {
  // KBs: each one's place in `before`, and whether its record moved.
  std::vector<std::uint32_t> kb_before(after.kbs().size(), kNone);
  std::vector<char> kb_changed(after.kbs().size(), 1);
  for (KbIndex kb : after.kb_indices()) {
    if (auto old = before.find_kb(after.kbs()[kb].kb)) {
      kb_before[kb.value()] = old->value();
      kb_changed[kb.value()] = kb_record(before, *old) != kb_record(after, kb) ? 1 : 0;
    }
  }
  // Supersedence, followed however far: KBs linked in either catalog share their fate. The KBs
  // of `after` are 0..n-1, those only `before` has come after them.
  std::vector<std::uint32_t> only_before(before.kbs().size(), kNone);
  std::uint32_t ids = static_cast<std::uint32_t>(after.kbs().size());
  for (KbIndex kb : before.kb_indices()) {
    if (!after.find_kb(before.kbs()[kb].kb)) only_before[kb.value()] = ids++;
  }
  auto id_in_before = [&](KbIndex kb) {
    if (only_before[kb.value()] != kNone) return only_before[kb.value()];
    return after.find_kb(before.kbs()[kb].kb)->value();
  };
  UnionFind links(ids);
  for (KbIndex kb : after.kb_indices()) {
    for (KbIndex older : after.supersedes(kb)) links.unite(kb.value(), older.value());
  }
  for (KbIndex kb : before.kb_indices()) {
    for (KbIndex older : before.supersedes(kb)) links.unite(id_in_before(kb), id_in_before(older));
  }
  std::vector<char> tainted_set(ids, 0);
  for (std::uint32_t k = 0; k < after.kbs().size(); ++k) {
    if (kb_changed[k]) tainted_set[links.find(k)] = 1;
  }
  for (KbIndex kb : before.kb_indices()) {
    if (only_before[kb.value()] != kNone) tainted_set[links.find(only_before[kb.value()])] = 1;
  }
  auto kb_tainted = [&](KbIndex kb) { return tainted_set[links.find(kb.value())] != 0; };

  std::vector<char> cve_changed(after.cves().size(), 1);
  for (CveIndex cve : after.cve_indices()) {
    if (auto old = before.find_cve(after.cves()[cve].id)) {
      cve_changed[cve.value()] = cve_record(before.cves()[*old]) != cve_record(after.cves()[cve]);
    }
  }

  // Products by ProductID, lines by name, months by id.
  KeyIndex<std::string> product_in_before, line_in_before, month_in_before;
  for (ProductIndex p : before.product_indices())
    product_in_before.add(before.products()[p].id, p.value());
  for (std::size_t l = 0; l < before.line_count(); ++l) {
    line_in_before.add(before.line_info(static_cast<int>(l)).key, static_cast<std::uint32_t>(l));
  }
  for (std::size_t d = 0; d < before.documents().size(); ++d) {
    month_in_before.add(before.documents()[d].id, static_cast<std::uint32_t>(d));
  }
  std::vector<std::uint32_t> product_places, line_places, month_places;
  for (ProductIndex p : after.product_indices()) {
    before_of_[p] = product_in_before.find(after.products()[p].id);
    product_places.push_back(before_of_[p]);
  }
  for (std::size_t l = 0; l < after.line_count(); ++l) {
    line_places.push_back(line_in_before.find(after.line_info(static_cast<int>(l)).key));
  }
  for (const DocumentInfo& d : after.documents())
    month_places.push_back(month_in_before.find(d.id));
  reordered_ = !same_order(kb_before) || !same_order(product_places) || !same_order(line_places) ||
               !same_order(month_places);
  if (reordered_) return;

  std::vector<char> own_change(after.products().size(), 1);
  for (ProductIndex p : after.product_indices()) {
    if (before_of_[p] == kNone) continue;
    const ProductInfo& now = after.products()[p];
    const ProductInfo& then = before.products()[ProductIndex{before_of_[p]}];
    bool changed = product_record(before, then) != product_record(after, now);
    for (const ProductFix& f : now.fixes) {
      if (changed) break;
      changed = kb_tainted(f.kb) || std::any_of(f.cves.begin(), f.cves.end(), [&](CveIndex cve) {
                  return cve_changed[cve.value()] != 0;
                });
    }
    own_change[p.value()] = changed ? 1 : 0;
  }

  const auto places_before = places_by_line(before);
  const auto places_after = places_by_line(after);
  std::vector<char> line_changed(after.line_count(), 1);
  for (std::size_t l = 0; l < after.line_count(); ++l) {
    if (line_places[l] == kNone) continue;
    const ServicingLine& now = after.line_info(static_cast<int>(l));
    const ServicingLine& then = before.line_info(static_cast<int>(line_places[l]));
    bool changed = line_record(before, then) != line_record(after, now) ||
                   places_before[line_places[l]] != places_after[l] ||
                   std::any_of(now.chain.begin(), now.chain.end(), kb_tainted);
    for (const auto* of : {&now.products, &now.hosted}) {
      for (ProductIndex p : *of) changed = changed || own_change[p.value()] != 0;
    }
    line_changed[l] = changed ? 1 : 0;
  }

  for (ProductIndex p : after.product_indices()) {
    bool touched = own_change[p.value()] != 0;
    for (int line : after.carrier_lines(p)) {
      if (line >= 0) touched = touched || line_changed[static_cast<std::size_t>(line)] != 0;
    }
    touched_[p] = touched ? 1 : 0;
  }
}

bool CatalogChange::same_answers(const ProfileKey& before_key, const ProfileKey& after_key) const {
  if (reordered_ || before_key.products.size() != after_key.products.size() ||
      std::tie(before_key.major, before_key.minor, before_key.family, before_key.hotpatch_enrolled,
               before_key.as_of_day, before_key.security_only_path) !=
          std::tie(after_key.major, after_key.minor, after_key.family, after_key.hotpatch_enrolled,
                   after_key.as_of_day, after_key.security_only_path)) {
    return false;
  }
  for (std::size_t s = 0; s < after_key.products.size(); ++s) {
    const ProductIndex p = after_key.products[s];
    if (touched_[p] || before_of_[p] != before_key.products[s].value()) return false;
  }
  return true;
}

std::size_t CatalogChange::touched_products() const {
  return static_cast<std::size_t>(std::count(touched_.begin(), touched_.end(), char{1}));
}

}  // namespace kbgap::engine
