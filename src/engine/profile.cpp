// Device profiles: applicable fixes, servicing lines, replacement walks and components, built
// once per kind of device; and the evaluation of one component (docs/api.md §7, docs/engine.md).
#include "engine/profile.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <map>
#include <numeric>

#include "common/distinct.h"
#include "engine/cover.h"
#include "engine/union_find.h"

namespace kbgap::engine {
namespace {

std::uint64_t fingerprint_mix(std::uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace
namespace {

// Is `b` a build of the device's servicing line (the same revision numbering)?
bool on_device_line(const Build& b, const ProfileKey& key) {
  return b.major == key.major && b.minor == key.minor && servicing_family(b.build) == key.family;
}

// Next stamp of a stamp-reset array; on wrap-around the arrays are cleared once.
std::uint32_t next_round(std::uint32_t& round, IndexedVector<CveIndex, std::uint32_t>& a,
                         IndexedVector<CveIndex, std::uint32_t>& b) {
  if (++round == 0) {
    std::fill(a.begin(), a.end(), 0);
    std::fill(b.begin(), b.end(), 0);
    round = 1;
  }
  return round;
}

}  // namespace

bool withdrawn(KbNumber kb) {
  // Microsoft removed these standalone Secure Boot updates (CVE-2020-0689, February 2020) from
  // Windows Update, WSUS and the Update Catalog: "It will not be re-offered" (KB4524244 and
  // KB4502496, "Known issues"; support.microsoft.com/help/4524244, /help/4502496).
  constexpr KbNumber kWithdrawn[] = {4502496, 4524244};
  return std::find(std::begin(kWithdrawn), std::end(kWithdrawn), kb) != std::end(kWithdrawn);
}

bool applicable(const ProductFix& fix, const CatalogIndex& catalog, const ProfileKey& key) {
  if (fix.kind == FixKind::kServicingStack || fix.kind == FixKind::kSetupUpdate) return false;
  if (withdrawn(catalog.kbs()[fix.kb].kb)) return false;
  if (fix.kind == FixKind::kHotpatch && !key.hotpatch_enrolled) return false;
  if (key.as_of_day != 0 && catalog.release_day(fix.kb) > key.as_of_day) return false;
  return true;
}

std::size_t hash_value(const ProfileKey& key) {
  std::size_t h = 0xcbf29ce484222325ull;
  auto mix = [&](std::uint64_t v) { h = (h ^ v) * 0x100000001b3ull; };
  for (ProductIndex p : key.products) mix(p.value());
  mix(static_cast<std::uint64_t>(key.major) << 32 | static_cast<std::uint32_t>(key.minor));
  mix(static_cast<std::uint64_t>(key.family));
  mix(key.hotpatch_enrolled ? 1 : 0);
  mix(static_cast<std::uint64_t>(key.as_of_day));
  mix(key.security_only_path);
  return h;
}

Scratch::Scratch(const CatalogIndex& catalog)
    : candidate(catalog.kbs().size()),
      covering(catalog.kbs().size()),
      security_only(catalog.kbs().size()),
      later_in_month(catalog.kbs().size()),
      fallback(catalog.kbs().size()),
      local_of_kb(catalog.kbs().size(), 0),
      cve_stamp(catalog.cves().size(), 0),
      closed_stamp(catalog.cves().size(), 0),
      pair_of_cve(catalog.cves().size(), 0) {}

Profile Profile::build(const CatalogIndex& catalog, ProfileKey key) {
  Profile x;
  x.catalog_ = &catalog;
  x.key_ = std::move(key);
  const std::vector<ProductIndex>& products = x.key_.products;
  const std::size_t kb_count = catalog.kbs().size();

  // A line's owner: the first slot whose product is on it. Products MSRC named twice, or .NET
  // products of one version under two names, share their line and its reached position.
  auto owner_of_line = [&](int line) -> std::int32_t {
    for (std::uint32_t s = 0; s < products.size(); ++s) {
      if (catalog.products()[products[s]].line == line) return static_cast<std::int32_t>(s);
    }
    return -1;
  };
  // The servicing lines whose cumulative updates carry a product's fixes: its own, and for IE,
  // Edge and an in-box .NET Framework on an OS, the OS's. (line, owner slot); the owner is -1
  // when the device runs no product of that line, and then the line replaces but never
  // satisfies. The own line comes first.
  std::vector<std::vector<std::pair<int, std::int32_t>>> lines(products.size());
  for (std::uint32_t s = 0; s < products.size(); ++s) {
    for (int line : catalog.carrier_lines(products[s])) {
      if (line >= 0) lines[s].emplace_back(line, owner_of_line(line));
    }
  }

  // What a device on each path of a rollup line does not install (docs/engine.md, "Servicing
  // models"): on the Security Only path, the line's rollups; on the rollup path, the Security
  // Only and Internet Explorer cumulative updates the rollups contain (Windows Update offers a
  // rollup machine neither: they are published to WSUS and the Update Catalog).
  KbMarks declined(kb_count);
  for (std::uint32_t s = 0; s < products.size() && s < 64; ++s) {
    const int line = catalog.products()[products[s]].line;
    if (line < 0 || catalog.line_info(line).model != LineModel::kRollup) continue;
    if ((x.key_.security_only_path >> s & 1) != 0) {
      for (KbIndex kb : catalog.line(line)) declined.insert(kb);
      continue;
    }
    const ServicingLine& info = catalog.line_info(line);
    for (const auto* of : {&info.products, &info.hosted}) {
      for (ProductIndex p : *of) {
        for (const ProductFix& f : catalog.products()[p].fixes) {
          if (f.kind != FixKind::kSecurityOnly && f.kind != FixKind::kIeCumulative) continue;
          const auto place = catalog.line_place(line, f.kb);
          if (place && place->carried) declined.insert(f.kb);
        }
      }
    }
  }

  KbMarks can_be_candidate(kb_count);
  for (std::uint32_t s = 0; s < products.size(); ++s) {
    for (const ProductFix& f : catalog.products()[products[s]].fixes) {
      Fix fx;
      fx.fix = &f;
      fx.slot = s;
      bool placed = false;
      for (std::size_t i = 0; i < lines[s].size() && i < 2; ++i) {
        fx.line_owner[i] = lines[s][i].second;
        if (auto place = catalog.line_place(lines[s][i].first, f.kb)) {
          fx.line_position[i] = place->position;
          fx.line_carried[i] = place->carried;
          placed = true;
        }
      }
      // A fix of another release that no update of the device's line carries is not the
      // device's at all.
      fx.applicable = applicable(f, catalog, x.key_) && (!f.foreign || placed);
      fx.fallback = f.foreign || declined.test(f.kb);
      if (fx.applicable) can_be_candidate.insert(f.kb);
      x.fixes_.push_back(fx);
    }
  }

  // The CVEs each applicable fix shares with another applicable fix of its product.
  {
    IndexedVector<CveIndex, std::uint32_t> fixes_of_cve(catalog.cves().size(), 0);
    std::size_t begin = 0;
    while (begin < x.fixes_.size()) {
      std::size_t end = begin;
      while (end < x.fixes_.size() && x.fixes_[end].slot == x.fixes_[begin].slot) ++end;
      for (std::size_t i = begin; i < end; ++i) {
        if (!x.fixes_[i].applicable) continue;
        for (CveIndex c : x.fixes_[i].fix->cves) ++fixes_of_cve[c];
      }
      for (std::size_t i = begin; i < end; ++i) {
        Fix& fx = x.fixes_[i];
        fx.shared_begin = static_cast<std::uint32_t>(x.shared_cves_.size());
        if (fx.applicable) {
          for (CveIndex c : fx.fix->cves) {
            if (fixes_of_cve[c] > 1) x.shared_cves_.push_back(c);
          }
        }
        fx.shared_end = static_cast<std::uint32_t>(x.shared_cves_.size());
      }
      for (std::size_t i = begin; i < end; ++i) {
        for (CveIndex c : x.fixes_[i].fix->cves) fixes_of_cve[c] = 0;
      }
      begin = end;
    }
  }

  // Each OS rollup's Security Only twin: the same month's Security Only update of the product.
  {
    std::map<std::pair<std::uint32_t, std::uint32_t>, KbIndex> security_only;  // (slot, month)
    for (const Fix& fx : x.fixes_) {
      if (fx.fix->kind == FixKind::kSecurityOnly && fx.applicable) {
        security_only.try_emplace({fx.slot, catalog.kbs()[fx.fix->kb].release_document},
                                  fx.fix->kb);
      }
    }
    for (Fix& fx : x.fixes_) {
      if (fx.fix->kind != FixKind::kMonthlyRollup ||
          catalog.products()[products[fx.slot]].role != ProductRole::kOperatingSystem) {
        continue;
      }
      auto it = security_only.find({fx.slot, catalog.kbs()[fx.fix->kb].release_document});
      if (it != security_only.end()) fx.security_only_twin = it->second;
    }
  }

  // What replaces each applicable fix on its product, transitively: published supersedence and
  // the later cumulative updates of the product's lines. Only KBs that could be candidates count.
  KbMarks visited(kb_count);
  std::vector<KbIndex> stack;
  for (Fix& fx : x.fixes_) {
    fx.replacers_begin = fx.replacers_end = static_cast<std::uint32_t>(x.replacers_.size());
    if (!fx.applicable) continue;
    visited.clear();
    visited.insert(fx.fix->kb);
    stack.assign(1, fx.fix->kb);
    auto push = [&](KbIndex newer) {
      if (!visited.insert(newer)) return;
      if (can_be_candidate.test(newer)) x.replacers_.push_back(newer);
      stack.push_back(newer);
    };
    if (fx.security_only_twin != kNoKb) push(fx.security_only_twin);
    while (!stack.empty()) {
      const KbIndex k = stack.back();
      stack.pop_back();
      for (KbIndex newer : catalog.superseded_by(k)) push(newer);
      // The next update on each line (the one that carries it, for a carried fix); the rest
      // follow from that one.
      for (const auto& [line, owner] : lines[fx.slot]) {
        const auto place = catalog.line_place(line, k);
        // A line's update contains what it carries, but not what that contains in turn: a
        // rollup holds its month's IE cumulative update, not the out-of-band IE update before
        // it (Windows Update offers both). Only the fix's own KB is followed to its carrier.
        if (!place || (place->carried && k != fx.fix->kb)) continue;
        const auto& chain = catalog.line(line);
        const auto next = static_cast<std::size_t>(place->position) + (place->carried ? 0 : 1);
        if (next < chain.size()) push(chain[next]);
      }
    }
    fx.replacers_end = static_cast<std::uint32_t>(x.replacers_.size());
  }

  // Components. A fix's outcome depends on the other fixes of the same product and CVE, on the
  // cumulative updates of the lines it is on (through the line's reached position), and on what
  // replaces it; everything else is independent.
  UnionFind sets(kb_count + products.size());
  auto owner_node = [&](std::int32_t slot) { return static_cast<std::uint32_t>(kb_count) + slot; };
  IndexedVector<CveIndex, KbIndex> first_kb_of_cve(catalog.cves().size());
  IndexedVector<CveIndex, std::uint32_t> cve_slot(catalog.cves().size(),
                                                  std::numeric_limits<std::uint32_t>::max());
  for (const Fix& fx : x.fixes_) {
    const KbIndex kb = fx.fix->kb;
    if (fx.fix->cumulative && fx.fix->line_position >= 0) {
      assert(fx.line_owner[0] >= 0);  // a cumulative update is on its product's own line
      sets.unite(kb.value(), owner_node(fx.line_owner[0]));
    }
    if (!fx.applicable) continue;
    for (CveIndex c : fx.fix->cves) {
      if (cve_slot[c] != fx.slot) {
        cve_slot[c] = fx.slot;
        first_kb_of_cve[c] = kb;
      } else {
        sets.unite(kb.value(), first_kb_of_cve[c].value());
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (fx.line_owner[i] >= 0 && fx.line_position[i] >= 0) {
        sets.unite(kb.value(), owner_node(fx.line_owner[i]));
      }
    }
    for (std::uint32_t r = fx.replacers_begin; r < fx.replacers_end; ++r) {
      sets.unite(kb.value(), x.replacers_[r].value());
    }
  }
  x.component_of_kb_.assign(kb_count, -1);
  std::vector<std::int32_t> component_of_root(kb_count + products.size(), -1);
  for (std::uint32_t i = 0; i < x.fixes_.size(); ++i) {
    const Fix& fx = x.fixes_[i];
    if (!fx.applicable && !fx.fix->cumulative) continue;  // it can change nothing
    std::int32_t& component = component_of_root[sets.find(fx.fix->kb.value())];
    if (component < 0) {
      component = static_cast<std::int32_t>(x.components_.size());
      x.components_.emplace_back();
    }
    x.components_[static_cast<std::size_t>(component)].push_back(i);
    x.component_of_kb_[fx.fix->kb] = component;
  }

  // Revisions: the one at which a cumulative update (or a hotpatch) counts as reached, the
  // lowest of its fixed builds on the device's line, and the one an installed OS update tells.
  // A KB that lists no build for this product may list it for a twin (a semi-annual server's
  // update is its client release's).
  for (const Fix& fx : x.fixes_) {
    const bool hotpatch = fx.fix->kind == FixKind::kHotpatch && fx.applicable;
    if (!fx.fix->cumulative && !hotpatch) continue;
    std::optional<int> lowest, highest;
    auto consider = [&](std::span<const Build> builds) {
      for (const Build& b : builds) {
        if (!on_device_line(b, x.key_)) continue;
        lowest = std::min(lowest.value_or(b.revision), b.revision);
        highest = std::max(highest.value_or(b.revision), b.revision);
      }
    };
    consider(fx.fix->fixed_builds);
    if (!lowest && fx.fix->cumulative) consider(catalog.kb_builds(fx.fix->kb));
    if (!lowest) continue;
    x.reach_.emplace_back(*lowest, fx.fix->kb);
    if (catalog.products()[products[fx.slot]].role == ProductRole::kOperatingSystem) {
      x.revision_of_kb_.emplace_back(fx.fix->kb, *highest);
    }
  }
  x.moves_lines_.assign(kb_count, 0);
  for (const Fix& fx : x.fixes_) {
    if (fx.fix->cumulative) x.moves_lines_[fx.fix->kb] = 1;
  }
  // What the updates of the device's lines contain beyond the line itself: for each place on a
  // chain, the KBs off the chain that the updates up to it supersede (transitively). A device
  // that reached a place has those too; the chain's own updates are satisfied through the
  // line's reached position. (What a line carries is satisfied fix by fix in the same way: a
  // rollup holds its month's IE cumulative update, not what that one contains in turn.)
  {
    std::vector<int> device_lines;
    for (const auto& of_slot : lines) {
      for (const auto& [line, owner] : of_slot) device_lines.push_back(line);
    }
    make_distinct(device_lines);
    KbMarks seen(kb_count);
    std::vector<KbIndex> walk;
    for (std::uint32_t l = 0; l < device_lines.size(); ++l) {
      const auto& chain = catalog.line(device_lines[l]);
      seen.clear();
      for (KbIndex kb : chain) seen.insert(kb);
      std::vector<std::uint32_t> begin{static_cast<std::uint32_t>(x.extras_.size())};
      for (std::size_t i = 0; i < chain.size(); ++i) {
        x.chain_place_.push_back({chain[i], l, static_cast<std::uint32_t>(i)});
        walk.assign(1, chain[i]);
        while (!walk.empty()) {
          const KbIndex kb = walk.back();
          walk.pop_back();
          for (KbIndex older : catalog.supersedes(kb)) {
            if (!seen.insert(older)) continue;
            x.extras_.push_back(older);
            walk.push_back(older);
          }
        }
        begin.push_back(static_cast<std::uint32_t>(x.extras_.size()));
      }
      x.extras_begin_.push_back(std::move(begin));
    }
    std::sort(x.chain_place_.begin(), x.chain_place_.end());
    x.chain_place_begin_.assign(kb_count + 1, 0);
    for (const ChainPlace& place : x.chain_place_) ++x.chain_place_begin_[place.kb.value() + 1];
    std::partial_sum(x.chain_place_begin_.begin(), x.chain_place_begin_.end(),
                     x.chain_place_begin_.begin());
  }
  std::sort(x.reach_.begin(), x.reach_.end());
  std::sort(x.revision_of_kb_.begin(), x.revision_of_kb_.end());
  // Each component's fingerprint: everything evaluate_fixes() reads of its members.
  x.fingerprints_.reserve(x.components_.size());
  for (const auto& members : x.components_) {
    std::uint64_t a = 0x9e3779b97f4a7c15ull, b = 0xc2b2ae3d27d4eb4full;
    auto add = [&](std::uint64_t v) {
      a = fingerprint_mix(a ^ v);
      b = fingerprint_mix(b + v * 0x9ddfea08eb382d69ull);
    };
    for (std::uint32_t i : members) {
      const Fix& fx = x.fixes_[i];
      add(reinterpret_cast<std::uintptr_t>(fx.fix));
      add(fx.slot);
      add((fx.applicable ? 1u : 0u) | (fx.fallback ? 2u : 0u) | (fx.line_carried[0] ? 4u : 0u) |
          (fx.line_carried[1] ? 8u : 0u));
      for (int l = 0; l < 2; ++l) {
        add(static_cast<std::uint32_t>(fx.line_owner[l]));
        add(static_cast<std::uint32_t>(fx.line_position[l]));
      }
      add(fx.security_only_twin.value());
      for (std::uint32_t r = fx.replacers_begin; r < fx.replacers_end; ++r) {
        add(x.replacers_[r].value());
      }
      add(0xffffffffu);
      for (std::uint32_t c = fx.shared_begin; c < fx.shared_end; ++c) {
        add(x.shared_cves_[c].value());
      }
      add(0xfffffffeu);
    }
    x.fingerprints_.emplace_back(a, b);
    // A residual holds fix numbers too, and line places by owner slot: its answers are the same
    // for profiles whose slots differ only beyond its owners (an OS beside other software).
    std::int32_t owners = 0;
    for (std::uint32_t i : members) {
      for (int l = 0; l < 2; ++l) owners = std::max(owners, x.fixes_[i].line_owner[l] + 1);
    }
    add(static_cast<std::uint32_t>(owners));
    for (std::uint32_t i : members) add(i);
    x.residual_fingerprints_.emplace_back(a, b);
  }
  x.split_software(catalog);
  return x;
}

void Profile::split_software(const CatalogIndex& catalog) {
  const auto& products = key_.products;
  const auto components = static_cast<std::uint32_t>(components_.size());
  software_from_ = components;
  software_slots_from_ = static_cast<std::uint32_t>(products.size());
  // The OS part: the OS products and their components; software follows it.
  std::vector<ProductIndex> os_part;
  for (ProductIndex p : products) {
    if (catalog.products()[p].role != ProductRole::kOperatingSystem) continue;
    os_part.push_back(p);
    const auto& of = catalog.products()[p].components;
    os_part.insert(os_part.end(), of.begin(), of.end());
  }
  auto in_os_part = [&](ProductIndex p) {
    return std::find(os_part.begin(), os_part.end(), p) != os_part.end();
  };
  std::uint32_t slots_from = 0;
  while (slots_from < products.size() && in_os_part(products[slots_from])) ++slots_from;
  software_slots_from_ = slots_from;
  if (slots_from == 0 || slots_from == products.size()) return;
  for (std::uint32_t s = slots_from; s < products.size(); ++s) {
    if (in_os_part(products[s])) return;
  }
  // Components are numbered by their first fix, fixes by slot: the OS's come first, unless a
  // component mixes the two parts.
  std::uint32_t from = components;
  for (std::uint32_t c = 0; c < components; ++c) {
    std::uint32_t software = 0;
    for (std::uint32_t i : components_[c]) software += fixes_[i].slot >= slots_from ? 1 : 0;
    if (software != 0 && software != components_[c].size()) return;  // mixed
    if (software != 0 && from == components) from = c;
    if (software == 0 && from != components) return;  // an OS component after software
  }
  software_from_ = from;
  // The software's KBs: those of its components, and every KB that supersedes one of them,
  // transitively (installing it satisfies software fixes).
  const std::size_t kb_count = catalog.kbs().size();
  KbMarks seen(kb_count);
  std::vector<KbIndex> stack, part;
  for (std::uint32_t c = from; c < components; ++c) {
    for (std::uint32_t i : components_[c]) {
      if (seen.insert(fixes_[i].fix->kb)) stack.push_back(fixes_[i].fix->kb);
    }
  }
  while (!stack.empty()) {
    const KbIndex kb = stack.back();
    stack.pop_back();
    part.push_back(kb);
    for (KbIndex newer : catalog.superseded_by(kb)) {
      if (seen.insert(newer)) stack.push_back(newer);
    }
  }
  // Of those, the ones whose own supersedence reaches the OS's components or lines are both.
  software_bits_.assign((kb_count + 63) / 64, 0);
  both_bits_.assign(software_bits_.size(), 0);
  KbMarks walked(kb_count);
  for (KbIndex kb : part) {
    Side side = Side::kSoftware;
    walked.clear();
    walked.insert(kb);
    stack.assign(1, kb);
    while (!stack.empty() && side == Side::kSoftware) {
      const KbIndex k = stack.back();
      stack.pop_back();
      const std::int32_t c = component_of_kb_[k];
      if ((c >= 0 && static_cast<std::uint32_t>(c) < from) || moves_lines_[k] != 0 ||
          on_a_device_line(k)) {
        side = Side::kBoth;
      }
      for (KbIndex older : catalog.supersedes(k)) {
        if (walked.insert(older)) stack.push_back(older);
      }
    }
    const std::uint64_t bit = std::uint64_t{1} << (kb.value() % 64);
    software_bits_[kb.value() / 64] |= bit;
    if (side == Side::kBoth) both_bits_[kb.value() / 64] |= bit;
  }
  std::uint64_t a = 0x2545f4914f6cdd1dull, b = components - from;
  for (std::uint32_t c = from; c < components; ++c) {
    a = fingerprint_mix(a ^ fingerprints_[c].first);
    b = fingerprint_mix(b + fingerprints_[c].second * 0x9ddfea08eb382d69ull);
  }
  software_fingerprint_ = {a, b};
}

std::optional<int> Profile::infer_revision(std::span<const KbIndex> installed) const {
  std::optional<int> best;
  for (KbIndex kb : installed) {
    auto it = std::lower_bound(revision_of_kb_.begin(), revision_of_kb_.end(),
                               std::pair<KbIndex, int>{kb, std::numeric_limits<int>::min()});
    for (; it != revision_of_kb_.end() && it->first == kb; ++it) {
      best = std::max(best.value_or(it->second), it->second);
    }
  }
  return best;
}

void Profile::satisfy(std::span<const KbIndex> installed, std::optional<int> revision,
                      KbMarks& satisfied, std::vector<KbIndex>* list) const {
  satisfied.clear();
  std::vector<KbIndex> stack;
  for (KbIndex kb : installed) {
    if (satisfied.insert(kb)) stack.push_back(kb);
  }
  if (revision) {
    for (const auto& [reached_at, kb] : reach_) {
      if (reached_at > *revision) break;
      if (satisfied.insert(kb)) stack.push_back(kb);
    }
  }
  // Per device line: how far the satisfied updates reach, and how many of its extras are added.
  std::vector<std::uint32_t> reached(extras_begin_.size(), 0), added(extras_begin_.size(), 0);
  std::vector<std::uint32_t> grew;
  while (!stack.empty()) {
    while (!stack.empty()) {
      const KbIndex kb = stack.back();
      stack.pop_back();
      if (list) list->push_back(kb);
      for (KbIndex older : catalog_->supersedes(kb)) {
        if (satisfied.insert(older)) stack.push_back(older);
      }
      for (std::uint32_t i = chain_place_begin_[kb.value()]; i < chain_place_begin_[kb.value() + 1];
           ++i) {
        const ChainPlace& place = chain_place_[i];
        if (place.position + 1 > reached[place.line]) {
          reached[place.line] = place.position + 1;
          grew.push_back(place.line);
        }
      }
    }
    for (std::uint32_t line : grew) {
      const std::uint32_t end = extras_begin_[line][reached[line]];
      for (std::uint32_t e = std::max(added[line], extras_begin_[line][0]); e < end; ++e) {
        if (satisfied.insert(extras_[e])) stack.push_back(extras_[e]);
      }
      added[line] = std::max(added[line], end);
    }
    grew.clear();
  }
}

std::vector<int> Profile::reached(std::span<const std::uint32_t> members,
                                  const KbMarks& satisfied) const {
  // On a servicing line, the newest satisfied cumulative update satisfies all before it, for
  // that line's products.
  std::vector<int> out(key_.products.size(), -1);  // by owner slot
  for (std::uint32_t i : members) {
    const ProductFix& f = *fixes_[i].fix;
    if (f.cumulative && satisfied.test(f.kb)) {
      auto& reached = out[static_cast<std::size_t>(fixes_[i].line_owner[0])];
      reached = std::max(reached, f.line_position);
    }
  }
  return out;
}

bool Profile::fix_satisfied(const Fix& fx, const KbMarks& satisfied, std::span<const int> reached) {
  if (satisfied.test(fx.fix->kb)) return true;
  if (fx.security_only_twin != kNoKb && satisfied.test(fx.security_only_twin)) return true;
  for (int i = 0; i < 2; ++i) {
    if (fx.line_owner[i] >= 0 && fx.line_position[i] >= 0 &&
        fx.line_position[i] <= reached[static_cast<std::size_t>(fx.line_owner[i])]) {
      return true;
    }
  }
  return false;
}

ComponentResult Profile::evaluate_component(std::uint32_t component, const KbMarks& satisfied,
                                            Scratch& s, bool explain) const {
  const auto& members = components_[component];
  return evaluate_fixes(members, reached(members, satisfied), satisfied, s, explain);
}

Residual Profile::split_component(std::uint32_t component, const KbMarks& base, Scratch& s) const {
  const auto& members = components_[component];
  Residual out;
  out.reached = reached(members, base);
  // The fixes still open under the base, joined as components are: by a product's CVE and by
  // replacement (lines cannot move: KBs that could move them are not split this way).
  std::vector<std::uint32_t> open;
  s.candidate.clear();
  for (std::uint32_t i : members) {
    if (fixes_[i].applicable && !fix_satisfied(fixes_[i], base, out.reached)) {
      open.push_back(i);
      s.candidate.insert(fixes_[i].fix->kb);
    }
  }
  std::vector<KbIndex> kbs;
  for (std::uint32_t i : open) kbs.push_back(fixes_[i].fix->kb);
  make_distinct(kbs);
  auto node = [&](KbIndex kb) {
    return static_cast<std::uint32_t>(std::lower_bound(kbs.begin(), kbs.end(), kb) - kbs.begin());
  };
  UnionFind sets(kbs.size());
  std::uint32_t slot = std::numeric_limits<std::uint32_t>::max();
  for (std::uint32_t i : open) {
    const Fix& fx = fixes_[i];
    if (fx.slot != slot) {
      slot = fx.slot;
      next_round(s.round, s.cve_stamp, s.closed_stamp);
    }
    for (CveIndex c : fx.fix->cves) {
      if (s.cve_stamp[c] != s.round) {
        s.cve_stamp[c] = s.round;
        s.pair_of_cve[c] = static_cast<std::int32_t>(node(fx.fix->kb));
      } else {
        sets.unite(node(fx.fix->kb), static_cast<std::uint32_t>(s.pair_of_cve[c]));
      }
    }
    for (std::uint32_t r = fx.replacers_begin; r < fx.replacers_end; ++r) {
      if (s.candidate.test(replacers_[r])) sets.unite(node(fx.fix->kb), node(replacers_[r]));
    }
  }
  std::vector<std::int32_t> piece_of_root(kbs.size(), -1);
  for (std::uint32_t i : open) {
    std::int32_t& piece = piece_of_root[sets.find(node(fixes_[i].fix->kb))];
    if (piece < 0) {
      piece = static_cast<std::int32_t>(out.pieces.size());
      out.pieces.emplace_back();
    }
    out.pieces[static_cast<std::size_t>(piece)].push_back(i);
  }
  for (KbIndex kb : kbs) {
    out.piece_of_kb.emplace_back(kb,
                                 static_cast<std::uint32_t>(piece_of_root[sets.find(node(kb))]));
  }
  // The base's satisfied fixes that close a CVE a piece's fixes are open for, so that each piece
  // evaluates alone.
  slot = std::numeric_limits<std::uint32_t>::max();
  std::size_t o = 0;
  for (std::uint32_t i : members) {
    const Fix& fx = fixes_[i];
    if (fx.slot != slot) {
      slot = fx.slot;
      next_round(s.round, s.cve_stamp, s.closed_stamp);
      for (std::size_t j = o; j < open.size() && fixes_[open[j]].slot == slot; ++j) {
        const auto piece = out.piece_of_kb[node(fixes_[open[j]].fix->kb)].second;
        for (CveIndex c : fixes_[open[j]].fix->cves) {
          s.cve_stamp[c] = s.round;
          s.pair_of_cve[c] = static_cast<std::int32_t>(piece);
        }
      }
      while (o < open.size() && fixes_[open[o]].slot == slot) ++o;
    }
    if (!fx.applicable || !fix_satisfied(fx, base, out.reached)) {
      continue;
    }
    std::int32_t last = -1;
    for (std::uint32_t j = fx.shared_begin; j < fx.shared_end; ++j) {
      const CveIndex c = shared_cves_[j];
      if (s.cve_stamp[c] != s.round || s.pair_of_cve[c] == last) continue;
      last = s.pair_of_cve[c];
      auto& piece = out.pieces[static_cast<std::size_t>(last)];
      if (piece.back() != i) piece.push_back(i);
    }
  }
  for (auto& piece : out.pieces) {
    make_distinct(piece);
    out.base.push_back(evaluate_fixes(piece, out.reached, base, s, false));
  }
  return out;
}

ComponentResult Profile::evaluate_piece(const Residual& residual, std::uint32_t piece,
                                        const KbMarks& satisfied, Scratch& s, bool explain) const {
  return evaluate_fixes(residual.pieces[piece], residual.reached, satisfied, s, explain);
}

ComponentResult Profile::evaluate_fixes(std::span<const std::uint32_t> members,
                                        std::span<const int> reached, const KbMarks& satisfied,
                                        Scratch& s, bool explain) const {
  const CatalogIndex& catalog = *catalog_;
  ComponentResult out;
  auto fix_satisfied = [&](const Fix& fx) {
    return Profile::fix_satisfied(fx, satisfied, reached);
  };

  // Open (product, CVE) pairs and the applicable, unsatisfied fixes of each. A pair is open only
  // when none of the product's fixes for that CVE is satisfied.
  struct Pending {
    OpenPair pair;
    bool closed = false;
  };
  std::vector<Pending> pairs;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> fixer_entries;  // (pair, fix number)
  s.candidate.clear();
  s.security_only.clear();
  s.later_in_month.clear();
  s.fallback.clear();
  std::uint32_t slot = std::numeric_limits<std::uint32_t>::max();
  std::size_t first = 0;
  auto close_slot = [&] {
    for (std::size_t i = first; i < pairs.size(); ++i) {
      if (s.closed_stamp[pairs[i].pair.cve] == s.round) pairs[i].closed = true;
    }
  };
  for (std::uint32_t i : members) {
    const Fix& fx = fixes_[i];
    if (fx.slot != slot) {
      close_slot();
      slot = fx.slot;
      next_round(s.round, s.cve_stamp, s.closed_stamp);
      first = pairs.size();
    }
    if (!fx.applicable) continue;
    const ProductFix& f = *fx.fix;
    if (fix_satisfied(fx)) {
      for (std::uint32_t j = fx.shared_begin; j < fx.shared_end; ++j) {
        s.closed_stamp[shared_cves_[j]] = s.round;
      }
      continue;
    }
    // A release MSRC lists as "Update" (the optional releases of February 19, 2019 for Windows 10
    // and Server 2016, KB4487029 and its siblings, the fixes of ADV190005; non-security Flash and
    // Exchange updates) is not offered by Windows Update as a security update: never reported,
    // and what only it fixes is not open. Installed, it counts (above, and its place on the
    // line). docs/engine.md.
    if (f.kind == FixKind::kNonSecurity) continue;
    s.candidate.insert(f.kb);
    if (f.kind == FixKind::kSecurityOnly) s.security_only.insert(f.kb);
    if (f.kind == FixKind::kPreviewRollup) s.later_in_month.insert(f.kb);
    if (fx.fallback) s.fallback.insert(f.kb);
    for (CveIndex c : f.cves) {
      if (s.cve_stamp[c] != s.round) {
        s.cve_stamp[c] = s.round;
        s.pair_of_cve[c] = static_cast<std::int32_t>(pairs.size());
        pairs.push_back({{fx.slot, c}, false});
      }
      fixer_entries.emplace_back(static_cast<std::uint32_t>(s.pair_of_cve[c]), i);
    }
  }
  close_slot();

  std::vector<std::int32_t> open_id(pairs.size(), -1);
  // Invariant: every pair opened here has a fixer (the unsatisfied fix that opened it).
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (pairs[i].closed) continue;
    open_id[i] = static_cast<std::int32_t>(out.open.size());
    out.open.push_back(pairs[i].pair);
  }
  if (out.open.empty()) return out;
  // The fixers of each open pair, grouped by pair.
  std::vector<std::uint32_t> fixer_begin(out.open.size() + 1, 0), fixers;
  for (const auto& [pair, fix] : fixer_entries) {
    if (open_id[pair] >= 0) ++fixer_begin[static_cast<std::size_t>(open_id[pair]) + 1];
  }
  std::partial_sum(fixer_begin.begin(), fixer_begin.end(), fixer_begin.begin());
  fixers.resize(fixer_begin.back());
  {
    std::vector<std::uint32_t> fill(fixer_begin.begin(), fixer_begin.end() - 1);
    for (const auto& [pair, fix] : fixer_entries) {
      if (open_id[pair] >= 0) fixers[fill[static_cast<std::size_t>(open_id[pair])]++] = fix;
    }
  }

  // Which candidate closes which open pairs: directly, or by replacing (transitively) a KB that
  // fixes it. Candidates are numbered locally in the order they turn up.
  std::vector<KbIndex> candidates;
  std::vector<std::uint32_t> pair_stamp;  // by candidate: last pair + 1 it was added to
  std::vector<std::pair<std::uint32_t, std::uint32_t>> cover_entries;  // (candidate, pair)
  s.covering.clear();
  auto add = [&](KbIndex kb, std::uint32_t id) {
    if (s.covering.insert(kb)) {
      s.local_of_kb[kb] = static_cast<std::int32_t>(candidates.size());
      candidates.push_back(kb);
      pair_stamp.push_back(0);
    }
    const auto local = static_cast<std::uint32_t>(s.local_of_kb[kb]);
    if (pair_stamp[local] == id + 1) return;
    pair_stamp[local] = id + 1;
    cover_entries.emplace_back(local, id);
  };
  for (std::uint32_t id = 0; id < out.open.size(); ++id) {
    for (std::uint32_t j = fixer_begin[id]; j < fixer_begin[id + 1]; ++j) {
      const Fix& fx = fixes_[fixers[j]];
      add(fx.fix->kb, id);
      for (std::uint32_t r = fx.replacers_begin; r < fx.replacers_end; ++r) {
        if (s.candidate.test(replacers_[r])) add(replacers_[r], id);
      }
    }
  }
  CoverSets sets;
  sets.begin.assign(candidates.size() + 1, 0);
  sets.pairs.resize(cover_entries.size());
  for (const auto& [local, id] : cover_entries) ++sets.begin[local + 1];
  std::partial_sum(sets.begin.begin(), sets.begin.end(), sets.begin.begin());
  {
    std::vector<std::uint32_t> fill(sets.begin.begin(), sets.begin.end() - 1);
    for (const auto& [local, id] : cover_entries) sets.pairs[fill[local]++] = id;
  }
  // Invariant: each open pair is closed by at least one candidate (its own fixers are).
  for (std::size_t id = 0; id < out.open.size(); ++id)
    assert(fixer_begin[id] < fixer_begin[id + 1]);
  std::vector<CandidateRank> ranks;
  ranks.reserve(candidates.size());
  for (KbIndex kb : candidates) {
    ranks.push_back({catalog.release_day(kb),
                     s.security_only.test(kb)    ? 2
                     : s.later_in_month.test(kb) ? 1
                                                 : 0,
                     catalog.kbs()[kb].kb, !s.fallback.test(kb)});
  }
  const auto picks = choose_cover(sets, static_cast<std::uint32_t>(out.open.size()), ranks);
#ifndef NDEBUG
  {  // Invariant: the picks close every open pair.
    std::vector<char> closed(out.open.size(), 0);
    for (std::uint32_t local : picks) {
      for (std::uint32_t id : sets.of(local)) closed[id] = 1;
    }
    assert(std::all_of(closed.begin(), closed.end(), [](char c) { return c != 0; }));
  }
#endif
  for (std::uint32_t local : picks) {
    const auto ids = sets.of(local);
    Pick pick;
    pick.kb = candidates[local];
    pick.pairs.assign(ids.begin(), ids.end());
    if (explain) {
      for (std::uint32_t id : ids) {
        bool direct = false;
        for (std::uint32_t j = fixer_begin[id]; j < fixer_begin[id + 1] && !direct; ++j) {
          direct = fixes_[fixers[j]].fix->kb == pick.kb;
        }
        pick.direct.push_back(direct ? 1 : 0);
      }
    }
    out.picks.push_back(std::move(pick));
  }
  return out;
}

}  // namespace kbgap::engine
