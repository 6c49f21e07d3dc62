#include "server/fleet_view.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cassert>
#include <set>
#include <tuple>

#include "api/defender_dto.h"
#include "common/distinct.h"
#include "common/text.h"

namespace kbgap::server {
namespace {

// Renderings kept per snapshot: enough for every state a busy page touches, bounded so that
// reading every device's answer once cannot hold them all (a state's answer is some KiB).
constexpr std::size_t kMaxCachedStates = 4096;

// Adds sorted, distinct values to a sorted, distinct list (most states add what is there).
void merge_into(std::vector<engine::CveIndex>& list, const std::vector<engine::CveIndex>& more) {
  if (std::includes(list.begin(), list.end(), more.begin(), more.end())) return;
  std::vector<engine::CveIndex> merged;
  merged.reserve(list.size() + more.size());
  std::set_union(list.begin(), list.end(), more.begin(), more.end(), std::back_inserter(merged));
  list = std::move(merged);
}

// Is device a (at a) a better owner of its computer name than device b?
bool owns_name_before(const inventory::Device& a, const inventory::Device& b) {
  if (a.last_seen != b.last_seen) return a.last_seen > b.last_seen;
  if (a.first_seen != b.first_seen) return a.first_seen < b.first_seen;
  return a.id < b.id;
}

// FNV-1a of the name in lower case.
std::uint64_t name_hash(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : name) {
    h ^= static_cast<unsigned char>(ascii_lower(c));
    h *= 0x100000001b3ull;
  }
  return h;
}

// -1, 0, 1 as a is before, equal to or after b, in lower case.
int compare_lower(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(ascii_lower(a[i]));
    const auto y = static_cast<unsigned char>(ascii_lower(b[i]));
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

}  // namespace

bool same_evaluation_inputs(const inventory::Device& a, const inventory::Device& b) {
  auto inputs = [](const inventory::Device& d) {
    return std::tie(d.os_name, d.os_family, d.version, d.edition, d.server_core, d.azure_edition,
                    d.hotpatch_enrolled, d.service_pack, d.architecture, d.major, d.minor, d.build,
                    d.revision, d.revision_inferred, d.installed_kbs, d.software);
  };
  return inputs(a) == inputs(b);
}

std::shared_ptr<const FleetView> FleetView::build(
    std::shared_ptr<const engine::CatalogIndex> catalog, std::vector<inventory::Device> devices,
    std::int64_t version, unsigned threads, const FleetView* previous, std::string token) {
  auto by_id = [](const inventory::Device& a, const inventory::Device& b) { return a.id < b.id; };
  if (!std::is_sorted(devices.begin(), devices.end(), by_id)) {
    std::stable_sort(devices.begin(), devices.end(), by_id);
  }
  DeviceList list;
  list.items().reserve(devices.size());
  for (inventory::Device& d : devices) {
    auto made = std::make_shared<const inventory::Device>(std::move(d));
    if (!list.empty() && list[list.size() - 1].id == made->id) {
      list.items().back() = std::move(made);  // the last of one id
    } else {
      list.items().push_back(std::move(made));
    }
  }
  auto view = make(std::move(catalog), std::move(list), version, threads, previous);
  view->token_ = std::move(token);
  return view;
}

std::shared_ptr<const FleetView> FleetView::apply(const FleetView& previous,
                                                  std::vector<inventory::Device> written,
                                                  const std::vector<std::string>& removed,
                                                  std::int64_t version, unsigned threads,
                                                  std::string token) {
  // One merge of three lists in id order: the previous snapshot's devices, the written ones
  // (replacing theirs) and the removed ids (dropping theirs).
  const DeviceList& old = previous.devices();
  DeviceList merged;
  merged.items().reserve(old.size() + written.size());
  std::size_t o = 0, w = 0, r = 0;
  while (o < old.size() || w < written.size()) {
    if (w == written.size() || (o < old.size() && old[o].id < written[w].id)) {
      const std::string& id = old[o].id;
      while (r < removed.size() && removed[r] < id) ++r;
      if (r == removed.size() || removed[r] != id) merged.items().push_back(old.ptr(o));
      ++o;
      continue;
    }
    if (o < old.size() && old[o].id == written[w].id) ++o;  // replaced
    auto made = std::make_shared<const inventory::Device>(std::move(written[w++]));
    if (!merged.empty() && merged[merged.size() - 1].id == made->id) {
      merged.items().back() = std::move(made);
    } else {
      merged.items().push_back(std::move(made));
    }
  }
  auto view = make(previous.catalog_, std::move(merged), version, threads, &previous);
  view->token_ = std::move(token);
  return view;
}

std::shared_ptr<FleetView> FleetView::make(std::shared_ptr<const engine::CatalogIndex> catalog,
                                           DeviceList devices, std::int64_t version,
                                           unsigned threads, const FleetView* previous) {
  auto view = std::make_shared<FleetView>();
  view->catalog_ = std::move(catalog);
  view->devices_ = std::move(devices);
  view->version_ = version;
  for (std::uint32_t i = 0; i < view->devices_.size(); ++i) {
    // A release newer than kbgap's table, named from this catalog (a device shared with an
    // earlier snapshot was named there; one the earlier catalog did not know is tried again).
    if (view->devices_[i].os_family.empty()) {
      inventory::Device learned = view->devices_[i];
      if (engine::learn_release(*view->catalog_, learned)) {
        view->devices_.items()[i] = std::make_shared<const inventory::Device>(std::move(learned));
      }
    }
  }
  engine::Fleet::Options options;
  options.threads = threads;
  engine::Fleet::Reuse reuse;
  if (previous) {
    if (&previous->catalog() != view->catalog_.get()) {
      view->change_from_ = previous->catalog_;
      view->change_ =
          std::make_shared<const engine::CatalogChange>(previous->catalog(), *view->catalog_);
    }
    reuse.previous = previous->result_.get();
    reuse.previous_catalog = &previous->catalog();
    reuse.change = view->change_.get();
    reuse.previous_device.assign(view->devices_.size(), engine::Fleet::Reuse::kNone);
    // Both lists are in id order: one merge pairs them.
    const DeviceList& old = previous->devices_;
    for (std::uint32_t i = 0, o = 0; i < view->devices_.size() && o < old.size();) {
      const inventory::Device& d = view->devices_[i];
      if (old[o].id < d.id) {
        ++o;
      } else if (d.id < old[o].id) {
        ++i;
      } else {
        if (old.ptr(o) == view->devices_.ptr(i) || same_evaluation_inputs(old[o], d)) {
          reuse.previous_device[i] = o;
        }
        ++i;
        ++o;
      }
    }
    options.reuse = &reuse;
  }
  // A device evaluated alike in the snapshot before, on the same catalog, is taken as that
  // snapshot's fleet holds it: its KBs are not looked up in the catalog again.
  const engine::Fleet* same =
      previous && &previous->catalog() == view->catalog_.get() ? previous->fleet_.get() : nullptr;
  auto fleet = std::make_shared<engine::Fleet>(*view->catalog_);
  std::vector<std::uint32_t> kinds;  // add_from()'s
  for (std::uint32_t i = 0; i < view->devices_.size(); ++i) {
    if (same && reuse.previous_device[i] != engine::Fleet::Reuse::kNone) {
      fleet->add_from(*same, reuse.previous_device[i], kinds);
      ++view->stats_.entries_copied;
    } else {
      fleet->add(view->devices_[i]);
    }
  }
  view->index_names(previous, reuse.previous_device);
  view->result_ = std::make_unique<engine::FleetResult>(fleet->evaluate(options));
  view->fleet_ = std::move(fleet);
  // The products each state runs are its profile's: named once more as productsNames names.
  view->software_of_state_.resize(view->result_->distinct_states());
  for (std::uint32_t s = 0; s < view->software_of_state_.size(); ++s) {
    std::vector<std::string>& software = view->software_of_state_[s];
    for (engine::ProductIndex p : view->result_->state_products(s)) {
      const std::string& name = view->catalog_->products()[p].snake_name;
      if (std::find(software.begin(), software.end(), name) == software.end()) {
        software.push_back(name);
      }
    }
  }
  return view;
}

std::optional<std::uint32_t> FleetView::find_id(std::string_view id) const {
  std::size_t lo = 0, hi = devices_.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (devices_[mid].id < id) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < devices_.size() && devices_[lo].id == id) return static_cast<std::uint32_t>(lo);
  return std::nullopt;
}

bool FleetView::name_before(const NameEntry& a, const NameEntry& b) const {
  if (a.hash != b.hash) return a.hash < b.hash;
  const inventory::Device& x = devices_[a.device];
  const inventory::Device& y = devices_[b.device];
  if (const int c = compare_lower(x.computer_dns_name, y.computer_dns_name); c != 0) return c < 0;
  return owns_name_before(x, y);
}

void FleetView::index_names(const FleetView* previous,
                            const std::vector<std::uint32_t>& previous_device) {
  // The devices shared with the snapshot before (the same inventory object: the same name and
  // times), in its order and renumbered; the others sorted, then merged in.
  std::vector<NameEntry> kept, fresh;
  if (previous) {
    std::vector<std::uint32_t> now(previous->devices_.size(), engine::Fleet::Reuse::kNone);
    for (std::uint32_t i = 0; i < previous_device.size(); ++i) {
      const std::uint32_t o = previous_device[i];
      if (o != engine::Fleet::Reuse::kNone && previous->devices_.ptr(o) == devices_.ptr(i)) {
        now[o] = i;
      }
    }
    kept.reserve(devices_.size());
    for (const NameEntry& e : previous->by_name_) {
      if (now[e.device] != engine::Fleet::Reuse::kNone) kept.push_back({e.hash, now[e.device]});
    }
    for (std::uint32_t i = 0; i < devices_.size(); ++i) {
      const std::uint32_t o = previous_device[i];  // one for each device, given a previous
      if (o == engine::Fleet::Reuse::kNone || now[o] != i) {
        fresh.push_back({name_hash(devices_[i].computer_dns_name), i});
      }
    }
  } else {
    fresh.reserve(devices_.size());
    for (std::uint32_t i = 0; i < devices_.size(); ++i) {
      fresh.push_back({name_hash(devices_[i].computer_dns_name), i});
    }
  }
  stats_.names_kept = kept.size();
  auto before = [this](const NameEntry& a, const NameEntry& b) { return name_before(a, b); };
  std::sort(fresh.begin(), fresh.end(), before);
  by_name_.clear();
  by_name_.reserve(kept.size() + fresh.size());
  std::merge(kept.begin(), kept.end(), fresh.begin(), fresh.end(), std::back_inserter(by_name_),
             before);
}

std::optional<std::uint32_t> FleetView::find(std::string_view id_or_name) const {
  if (auto i = find_id(id_or_name)) return i;
  // The first entry of the name is its owner.
  const std::uint64_t hash = name_hash(id_or_name);
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), hash,
                             [](const NameEntry& e, std::uint64_t h) { return e.hash < h; });
  for (; it != by_name_.end() && it->hash == hash; ++it) {
    if (compare_lower(devices_[it->device].computer_dns_name, id_or_name) == 0) return it->device;
  }
  return std::nullopt;
}

template <typename T>
std::shared_ptr<const T> FleetView::cached(
    std::unordered_map<std::uint32_t, std::shared_ptr<const T>>& cache, std::uint32_t state,
    const std::function<std::shared_ptr<const T>()>& make) const {
  {
    std::shared_lock lock(mutex_);
    if (auto it = cache.find(state); it != cache.end()) return it->second;
  }
  auto made = make();
  std::unique_lock lock(mutex_);
  if (cache.size() >= kMaxCachedStates) cache.clear();
  return cache.try_emplace(state, std::move(made)).first->second;
}

std::shared_ptr<const engine::Evaluation> FleetView::evaluation(std::uint32_t device) const {
  const std::uint32_t state = result_->state_of(device);
  return cached<engine::Evaluation>(evaluations_, state, [&] {
    return std::make_shared<const engine::Evaluation>(result_->state_evaluation(state));
  });
}

std::vector<FleetView::OpenRow> FleetView::open_rows(std::uint32_t device) const {
  const std::uint32_t state = result_->state_of(device);
  std::vector<engine::FleetResult::PickFacts> picks = result_->state_picks(state);
  const std::vector<engine::ProductIndex>& products = result_->state_products(state);
  // Newest first, as engine::evaluate() lists missing KBs: by release day, then KB number.
  std::stable_sort(picks.begin(), picks.end(), [&](const auto& a, const auto& b) {
    const int da = catalog_->release_day(a.kb), db = catalog_->release_day(b.kb);
    if (da != db) return da > db;
    return catalog_->kbs()[a.kb].kb > catalog_->kbs()[b.kb].kb;
  });
  std::vector<std::pair<std::size_t, OpenRow>> all;  // (place of the pick, row)
  for (std::size_t i = 0; i < picks.size(); ++i) {
    const auto& pick = picks[i];
    const std::string_view product =
        pick.slots.empty()
            ? std::string_view()
            : std::string_view(catalog_->products()[products[pick.slots.front()]].snake_name);
    for (engine::CveIndex cve : pick.cves) all.push_back({i, OpenRow{cve, pick.kb, product}});
  }
  // Each CVE once, with the newest pick that closes it.
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second.cve != b.second.cve ? a.second.cve < b.second.cve : a.first < b.first;
  });
  std::vector<OpenRow> rows;
  rows.reserve(all.size());
  for (const auto& [place, row] : all) {
    if (rows.empty() || rows.back().cve != row.cve) rows.push_back(row);
  }
  return rows;
}

std::shared_ptr<const std::string> FleetView::missing_kbs_value(std::uint32_t device) const {
  return cached<std::string>(values_, result_->state_of(device), [&] {
    const auto ev = evaluation(device);
    boost::json::array value;
    for (const engine::MissingKb& kb : ev->missing) value.push_back(api::product_fix_dto(kb, 1));
    return std::make_shared<const std::string>(boost::json::serialize(value));
  });
}

const FleetFacts& FleetView::facts() const {
  std::call_once(facts_once_, [&] {
    const engine::CatalogIndex& catalog = *catalog_;
    const engine::FleetResult& result = *result_;
    std::vector<std::uint32_t> devices_in(result.distinct_states(), 0);
    for (std::uint32_t d = 0; d < devices_.size(); ++d) ++devices_in[result.state_of(d)];
    facts_.states.resize(result.distinct_states());
    facts_.devices_of_cve.assign(catalog.cves().size(), 0);
    engine::IndexedVector<engine::CveIndex, int> severity(catalog.cves().size());
    for (engine::CveIndex c : catalog.cve_indices()) {
      // exposureLevel: High for a High or Critical CVE open, Medium, Low (1..3; 0: none open).
      severity[c] = std::min(3, 1 + api::severity_rank(api::defender_severity(catalog.cves()[c])));
    }
    // A state's answer is made of parts (a component's answer) that many states share: what a
    // part contributes is worked out once, and counted by the devices of the states holding it.
    struct Part {
      std::vector<engine::FleetResult::PickFacts> picks;
      std::vector<std::vector<const std::string*>> names;  // by pick: the software it is for
      std::vector<engine::CveIndex> cves;                  // of every pick, sorted, distinct
      std::vector<const std::string*> exposed;             // every pick's software, distinct
      std::int64_t devices = 0;                            // in the states holding it
    };
    using PartKey = std::pair<const engine::ComponentResult*, const void*>;  // part, products
    struct PartHash {
      std::size_t operator()(const PartKey& k) const {
        return std::hash<const void*>()(k.first) * 31 + std::hash<const void*>()(k.second);
      }
    };
    std::unordered_map<PartKey, std::uint32_t, PartHash> part_of;
    std::vector<Part> parts;
    auto part = [&](const engine::ComponentResult* r,
                    const std::vector<engine::ProductIndex>& products) -> Part& {
      auto [it, inserted] =
          part_of.try_emplace(PartKey{r, &products}, static_cast<std::uint32_t>(parts.size()));
      if (!inserted) return parts[it->second];
      Part& made = parts.emplace_back();
      made.picks = engine::FleetResult::part_picks(*r);
      for (const engine::FleetResult::PickFacts& pick : made.picks) {
        // As the device's getmissingkbs names it: every product whose pairs the KB closes.
        std::vector<const std::string*> names;
        for (std::uint32_t slot : pick.slots) {
          const std::string* name = &catalog.products()[products[slot]].snake_name;
          const bool known = std::any_of(names.begin(), names.end(),
                                         [&](const std::string* n) { return *n == *name; });
          if (!known) names.push_back(name);
        }
        for (const std::string* name : names) {
          const bool known = std::any_of(made.exposed.begin(), made.exposed.end(),
                                         [&](const std::string* n) { return *n == *name; });
          if (!known) made.exposed.push_back(name);
        }
        made.names.push_back(std::move(names));
        made.cves.insert(made.cves.end(), pick.cves.begin(), pick.cves.end());
      }
      make_distinct(made.cves);
      return made;
    };
    std::vector<const std::string*> exposed;
    // The state's CVEs, each once: stamped with the state's number (+1) as they are taken.
    engine::IndexedVector<engine::CveIndex, std::uint32_t> taken(catalog.cves().size(), 0);
    for (std::uint32_t s = 0; s < facts_.states.size(); ++s) {
      FleetFacts::State& state = facts_.states[s];
      const std::uint32_t n = devices_in[s];
      const auto& products = result.state_products(s);
      exposed.clear();
      for (const engine::ComponentResult* r : result.state_parts(s)) {
        Part& p = part(r, products);
        p.devices += n;
        for (engine::CveIndex c : p.cves) {
          if (taken[c] == s + 1) continue;
          taken[c] = s + 1;
          state.open_cves.push_back(c);
        }
        for (const std::string* name : p.exposed) {
          const bool known = std::any_of(exposed.begin(), exposed.end(),
                                         [&](const std::string* e) { return *e == *name; });
          if (!known) exposed.push_back(name);
        }
      }
      std::sort(state.open_cves.begin(), state.open_cves.end());
      for (engine::CveIndex c : state.open_cves) {
        facts_.devices_of_cve[c] += n;
        state.exposure = std::max(state.exposure, severity[c]);
      }
      if (!state.open_cves.empty()) state.exposure = std::max(state.exposure, 1);
      if (n == 0) continue;  // held by no device (counted nowhere)
      std::sort(exposed.begin(), exposed.end(),
                [](const std::string* a, const std::string* b) { return *a < *b; });
      for (const std::string* name : exposed) {
        auto entry = facts_.software.try_emplace(*name).first;
        entry->second.exposed += n;
        state.exposed_software.push_back(&entry->first);
      }
    }
    // By software: the CVEs open on some device, and what each missing KB closes.
    std::map<std::string, engine::IndexedVector<engine::CveIndex, char>> open_of_software;
    for (const Part& p : parts) {
      if (p.devices == 0) continue;
      for (std::size_t i = 0; i < p.picks.size(); ++i) {
        const engine::FleetResult::PickFacts& pick = p.picks[i];
        for (const std::string* name : p.names[i]) {
          auto& marks = open_of_software[*name];
          if (marks.empty()) marks.assign(catalog.cves().size(), 0);
          for (engine::CveIndex c : pick.cves) marks[c] = 1;
          FleetFacts::Missed& m = facts_.software[*name].missed[pick.kb];
          m.devices += p.devices;
          merge_into(m.cves, pick.cves);
        }
      }
    }
    for (std::uint32_t s = 0; s < facts_.states.size(); ++s) {
      if (devices_in[s] == 0) continue;
      for (const std::string& name : software_of_state_[s]) {
        facts_.software[name].devices += devices_in[s];
      }
    }
    for (const auto& [name, marks] : open_of_software) {
      FleetFacts::Software& sw = facts_.software[name];
      for (engine::CveIndex c : catalog.cve_indices()) {
        if (!marks[c]) continue;
        sw.cves.push_back(c);
        const engine::CveInfo& cve = catalog.cves()[c];
        sw.public_exploit = sw.public_exploit || cve.exploited.value_or(false) ||
                            cve.publicly_disclosed.value_or(false);
      }
    }
    facts_.rows_before.resize(devices_.size() + 1, 0);
    for (std::uint32_t d = 0; d < devices_.size(); ++d) {
      facts_.rows_before[d + 1] =
          facts_.rows_before[d] + facts_.states[result.state_of(d)].open_cves.size();
    }
    facts_ready_.store(true, std::memory_order_release);
  });
  return facts_;
}

std::vector<engine::CveIndex> FleetView::open_cves_of(std::uint32_t state,
                                                      std::string_view software) const {
  const auto& products = result_->state_products(state);
  std::vector<engine::CveIndex> out;
  for (const engine::FleetResult::PickFacts& pick : result_->state_picks(state)) {
    const bool for_it = std::any_of(pick.slots.begin(), pick.slots.end(), [&](std::uint32_t slot) {
      return catalog_->products()[products[slot]].snake_name == software;
    });
    if (for_it) out.insert(out.end(), pick.cves.begin(), pick.cves.end());
  }
  make_distinct(out);
  return out;
}

std::pair<std::uint32_t, std::size_t> FleetView::row_at(std::uint64_t row) const {
  const auto& before = facts().rows_before;
  assert(row < facts().rows());
  // The last device whose first row is at or before `row`.
  const auto it = std::upper_bound(before.begin(), before.end(), row) - 1;
  const auto device = static_cast<std::uint32_t>(it - before.begin());
  return {device, static_cast<std::size_t>(row - *it)};
}

}  // namespace kbgap::server
