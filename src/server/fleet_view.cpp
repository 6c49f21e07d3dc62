#include "server/fleet_view.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cassert>
#include <deque>
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
  // Moved from, but not freed: freed now, before the evaluation (a start's peak of memory).
  std::vector<inventory::Device>().swap(devices);
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
  const bool onto = previous && &previous->catalog() == view->catalog_.get();
  if (onto) {
    // On the same catalog, the snapshot before's result brought up to date: a device evaluated
    // alike there keeps its state, and only the others are read and evaluated.
    engine::Fleet batch(previous->result());
    std::vector<std::uint32_t> origin(view->devices_.size());
    for (std::uint32_t i = 0; i < view->devices_.size(); ++i) {
      if (reuse.previous_device[i] != engine::Fleet::Reuse::kNone) {
        origin[i] = reuse.previous_device[i];
        ++view->stats_.devices_carried;
      } else {
        origin[i] = engine::Fleet::kFromBatch | batch.add(view->devices_[i]);
      }
    }
    view->result_ = std::make_unique<engine::FleetResult>(
        batch.evaluate_onto(previous->result(), origin, options));
  } else {
    engine::Fleet fleet(*view->catalog_);
    for (std::uint32_t i = 0; i < view->devices_.size(); ++i) fleet.add(view->devices_[i]);
    view->result_ = std::make_unique<engine::FleetResult>(fleet.evaluate(options));
  }
  view->index_names(previous, reuse.previous_device);
  // The products each kind runs, named once more as productsNames names.
  view->software_of_kind_.resize(view->result_->kind_count());
  for (std::uint32_t k = 0; k < view->software_of_kind_.size(); ++k) {
    std::vector<std::string>& software = view->software_of_kind_[k];
    for (engine::ProductIndex p : view->result_->kind_products(k)) {
      const std::string& name = view->catalog_->products()[p].snake_name;
      if (std::find(software.begin(), software.end(), name) == software.end()) {
        software.push_back(name);
      }
    }
  }
  // The counts are ready before the snapshot is served: no read waits for them, and the next
  // snapshot brings them up to date rather than gathering them again.
  if (onto) {
    view->update_facts(*previous, reuse.previous_device);
  } else {
    view->gather_facts();
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

namespace {

// Adds n to the counts of `cves` (sorted, distinct); a count that comes to 0 is dropped.
void add_counts(FleetFacts::CveCounts& counts, const std::vector<engine::CveIndex>& cves,
                std::int64_t n) {
  FleetFacts::CveCounts merged;
  merged.reserve(counts.size() + cves.size());
  auto it = counts.begin();
  for (engine::CveIndex c : cves) {
    for (; it != counts.end() && it->first < c; ++it) merged.push_back(*it);
    std::int64_t count = n;
    if (it != counts.end() && it->first == c) count += (it++)->second;
    if (count != 0) merged.emplace_back(c, count);
  }
  merged.insert(merged.end(), it, counts.end());
  counts = std::move(merged);
}

std::vector<engine::CveIndex> cves_of(const FleetFacts::CveCounts& counts) {
  std::vector<engine::CveIndex> out;
  out.reserve(counts.size());
  for (const auto& [c, n] : counts) out.push_back(c);
  return out;
}

// Adds devices, in their states, to fleet facts (or takes them away). A state's answer is made
// of parts (a component's answer) that many states share: what a part contributes is worked out
// once, and added for all the devices of the states holding it at the end (finish()).
class FactsWork {
 public:
  FactsWork(const engine::CatalogIndex& catalog, FleetFacts& facts)
      : catalog_(catalog),
        facts_(facts),
        severity_(catalog.cves().size()),
        taken_(catalog.cves().size(), 0) {
    for (engine::CveIndex c : catalog.cve_indices()) {
      // exposureLevel: High for a High or Critical CVE open, Medium, Low (1..3; 0: none open).
      severity_[c] = std::min(3, 1 + api::severity_rank(api::defender_severity(catalog.cves()[c])));
    }
    for (std::uint32_t i = 0; i < facts.exposed_lists.size(); ++i) {
      list_number_.try_emplace(facts.exposed_lists[i], i);
    }
  }

  // Adds n devices in state `s` of `result` (n < 0: takes -n away), which run `software`. With
  // `state`, the state's own facts are written there.
  void add(const engine::FleetResult& result, std::uint32_t s, std::int64_t n,
           const std::vector<std::string>& software, FleetFacts::State* state) {
    const auto& products = result.state_products(s);
    ++stamp_;
    open_.clear();
    exposed_.clear();
    for (const engine::ComponentResult* r : result.state_parts(s)) {
      Part& p = part(r, products);
      p.devices += n;
      for (engine::CveIndex c : p.cves) {
        if (taken_[c] == stamp_) continue;
        taken_[c] = stamp_;
        open_.push_back(c);
      }
      for (const std::string* name : p.exposed) {
        // By name: products of one name are one piece of software.
        const bool known = std::any_of(exposed_.begin(), exposed_.end(),
                                       [&](const std::string* e) { return *e == *name; });
        if (!known) exposed_.push_back(name);
      }
    }
    int exposure = open_.empty() ? 0 : 1;
    for (engine::CveIndex c : open_) {
      facts_.devices_of_cve[c] += static_cast<std::uint32_t>(n);
      exposure = std::max(exposure, severity_[c]);
    }
    std::sort(exposed_.begin(), exposed_.end(),
              [](const std::string* a, const std::string* b) { return *a < *b; });
    for (const std::string* name : exposed_) entry(*name).exposed += n;
    for (const std::string& name : software) entry(name).devices += n;
    if (state) {
      state->open = static_cast<std::uint32_t>(open_.size());
      state->exposure = exposure;
      auto [it, made] = list_number_.try_emplace(
          exposed_, static_cast<std::uint32_t>(facts_.exposed_lists.size()));
      if (made) facts_.exposed_lists.push_back(exposed_);
      state->exposed = it->second;
    }
  }

  // Adds what the parts contribute, and lists again the CVEs of what changed.
  void finish() {
    for (const Part& p : parts_) {
      if (p.devices == 0) continue;
      for (std::size_t i = 0; i < p.picks.size(); ++i) {
        const engine::FleetResult::PickFacts& pick = p.picks[i];
        for (const std::string* name : p.names[i]) {
          FleetFacts::Software& sw = entry(*name);
          add_counts(sw.cve_devices, pick.cves, p.devices);
          FleetFacts::Missed& m = sw.missed[pick.kb];
          m.devices += p.devices;
          add_counts(m.cve_devices, pick.cves, p.devices);
        }
      }
    }
    for (const std::string& name : touched_) {
      auto it = facts_.software.find(name);
      FleetFacts::Software& sw = it->second;
      if (sw.devices == 0) {  // no device runs it any more
        facts_.software.erase(it);
        continue;
      }
      sw.cves = cves_of(sw.cve_devices);
      sw.public_exploit = std::any_of(sw.cves.begin(), sw.cves.end(), [&](engine::CveIndex c) {
        const engine::CveInfo& cve = catalog_.cves()[c];
        return cve.exploited.value_or(false) || cve.publicly_disclosed.value_or(false);
      });
      for (auto m = sw.missed.begin(); m != sw.missed.end();) {
        if (m->second.devices == 0) {
          m = sw.missed.erase(m);
        } else {
          m->second.cves = cves_of(m->second.cve_devices);
          ++m;
        }
      }
    }
  }

 private:
  struct Part {
    std::vector<engine::FleetResult::PickFacts> picks;
    std::vector<std::vector<const std::string*>> names;  // by pick: the software it is for
    std::vector<engine::CveIndex> cves;                  // of every pick, sorted, distinct
    std::vector<const std::string*> exposed;             // every pick's software, distinct
    std::int64_t devices = 0;                            // added in the states holding it
  };
  using PartKey = std::pair<const engine::ComponentResult*, const void*>;  // part, products
  struct PartHash {
    std::size_t operator()(const PartKey& k) const {
      return std::hash<const void*>()(k.first) * 31 + std::hash<const void*>()(k.second);
    }
  };
  struct ListHash {
    std::size_t operator()(const std::vector<const std::string*>& list) const {
      std::size_t h = list.size();
      for (const std::string* s : list) h = h * 31 + std::hash<const void*>()(s);
      return h;
    }
  };

  FleetFacts::Software& entry(const std::string& name) {
    touched_.insert(name);
    return facts_.software[name];
  }

  Part& part(const engine::ComponentResult* r, const std::vector<engine::ProductIndex>& products) {
    auto [it, inserted] =
        part_of_.try_emplace(PartKey{r, &products}, static_cast<std::uint32_t>(parts_.size()));
    if (!inserted) return parts_[it->second];
    Part& made = parts_.emplace_back();
    made.picks = engine::FleetResult::part_picks(*r);
    for (const engine::FleetResult::PickFacts& pick : made.picks) {
      // As the device's getmissingkbs names it: every product whose pairs the KB closes.
      std::vector<const std::string*> names;
      for (std::uint32_t slot : pick.slots) {
        const std::string* name = &catalog_.products()[products[slot]].snake_name;
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
  }

  const engine::CatalogIndex& catalog_;
  FleetFacts& facts_;
  engine::IndexedVector<engine::CveIndex, int> severity_;
  // The state's CVEs, each once: stamped as they are taken.
  engine::IndexedVector<engine::CveIndex, std::uint32_t> taken_;
  std::uint32_t stamp_ = 0;
  std::vector<engine::CveIndex> open_;
  std::vector<const std::string*> exposed_;
  std::unordered_map<PartKey, std::uint32_t, PartHash> part_of_;
  std::deque<Part> parts_;
  std::unordered_map<std::vector<const std::string*>, std::uint32_t, ListHash> list_number_;
  std::set<std::string> touched_;  // software entries added to
};

}  // namespace

void FleetView::count_rows(FleetFacts& facts) const {
  facts.rows_before.assign(devices_.size() + 1, 0);
  for (std::uint32_t d = 0; d < devices_.size(); ++d) {
    facts.rows_before[d + 1] = facts.rows_before[d] + facts.states[result_->state_of(d)].open;
  }
}

void FleetView::gather_facts() {
  const engine::FleetResult& result = *result_;
  std::vector<std::int64_t> devices_in(result.distinct_states(), 0);
  for (std::uint32_t d = 0; d < devices_.size(); ++d) ++devices_in[result.state_of(d)];
  facts_ = FleetFacts{};
  facts_.states.assign(result.distinct_states(), {});
  facts_.devices_of_cve.assign(catalog_->cves().size(), 0);
  FactsWork work(*catalog_, facts_);
  for (std::uint32_t s = 0; s < facts_.states.size(); ++s) {
    if (devices_in[s] == 0) continue;  // held by no device (counted nowhere)
    work.add(result, s, devices_in[s], software_of_kind_[result.state_kind(s)], &facts_.states[s]);
  }
  work.finish();
  count_rows(facts_);
}

void FleetView::update_facts(const FleetView& previous,
                             const std::vector<std::uint32_t>& previous_device) {
  const engine::FleetResult& old = *previous.result_;
  const engine::FleetResult& now = *result_;
  FleetFacts facts;
  const FleetFacts& before = previous.facts_;
  facts.exposed_lists = before.exposed_lists;
  facts.devices_of_cve = before.devices_of_cve;
  facts.software = before.software;
  facts.states.assign(now.distinct_states(), {});
  for (std::uint32_t s = 0; s < old.distinct_states(); ++s) {
    const std::uint32_t here = now.state_now(s);
    if (here != engine::FleetResult::kNoState) facts.states[here] = before.states[s];
  }
  // The devices of the snapshot before that this one does not carry (written again or removed),
  // and those it evaluated, by state.
  std::vector<char> carried(previous.devices_.size(), 0);
  std::map<std::uint32_t, std::int64_t> gone, came;
  for (std::uint32_t i = 0; i < previous_device.size(); ++i) {
    if (previous_device[i] != engine::Fleet::Reuse::kNone) {
      carried[previous_device[i]] = 1;
    } else {
      ++came[now.state_of(i)];
    }
  }
  for (std::uint32_t o = 0; o < carried.size(); ++o) {
    if (!carried[o]) ++gone[old.state_of(o)];
  }
  FactsWork work(*catalog_, facts);
  for (const auto& [s, n] : gone) {
    work.add(old, s, -n, previous.software_of_kind_[old.state_kind(s)], nullptr);
  }
  for (const auto& [s, n] : came) {
    work.add(now, s, n, software_of_kind_[now.state_kind(s)], &facts.states[s]);
  }
  work.finish();
  count_rows(facts);
  facts_ = std::move(facts);
  stats_.facts_updated = true;
}

std::vector<engine::CveIndex> FleetView::open_cves(std::uint32_t device) const {
  std::vector<engine::CveIndex> out;
  for (const engine::FleetResult::PickFacts& pick :
       result_->state_picks(result_->state_of(device))) {
    out.insert(out.end(), pick.cves.begin(), pick.cves.end());
  }
  make_distinct(out);
  return out;
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
