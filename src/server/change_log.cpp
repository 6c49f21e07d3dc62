#include "server/change_log.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "api/defender_dto.h"
#include "engine/catalog_change.h"

namespace kbgap::server {

namespace {

// A device's open rows, as the exports render them but without a string made: in catalog
// indices (FleetView::open_rows), one row per CVE, in the order of the CVEs' ids (the order of
// their indices, in any catalog).
struct Side {
  const FleetView* view = nullptr;
  const inventory::Device* device = nullptr;
  std::string build;  // the version of its OS rows
  std::vector<FleetView::OpenRow> rows;

  const engine::CatalogIndex& catalog() const { return view->catalog(); }
  const engine::CveInfo& cve(const FleetView::OpenRow& r) const { return catalog().cves()[r.cve]; }
  std::string_view version(std::string_view software) const {
    return api::is_os_software(software) ? std::string_view(build) : std::string_view();
  }
  store::VulnerabilityRow row(const FleetView::OpenRow& r) const {
    return api::vulnerability_row(*device, catalog(), r.cve, r.kb, r.product);
  }
  engine::KbNumber kb_number(const FleetView::OpenRow& r) const { return catalog().kbs()[r.kb].kb; }
  const std::string& kb_name(const FleetView::OpenRow& r) const {
    return catalog().documents()[catalog().kbs()[r.kb].release_document].title;
  }
};

Side side_of(const FleetView& view, std::uint32_t device) {
  Side side;
  side.view = &view;
  side.device = &view.devices()[device];
  side.build = inventory::os_build_string(*side.device);
  side.rows = view.open_rows(device);
  return side;
}

// What Defender reports as Updated: the score, severity, exploitability or recommended update
// (the fields vulnerability_row gives them; a KB's link is made of its number).
bool same_details(const Side& bs, const FleetView::OpenRow& b, const Side& as,
                  const FleetView::OpenRow& a) {
  const engine::CveInfo& x = bs.cve(b);
  const engine::CveInfo& y = as.cve(a);
  return x.cvss_base.value_or(0.0) == y.cvss_base.value_or(0.0) &&
         api::defender_severity(x) == api::defender_severity(y) &&
         api::exploitability_level(x) == api::exploitability_level(y) &&
         bs.kb_number(b) == as.kb_number(a) && bs.kb_name(b) == as.kb_name(a);
}

enum class Status : std::uint8_t { kNew, kFixed, kUpdated };

std::string_view status_name(Status s) {
  switch (s) {
    case Status::kNew:
      return "New";
    case Status::kFixed:
      return "Fixed";
    case Status::kUpdated:
      break;
  }
  return "Updated";
}

// A row's change: Fixed rows are the side before's, the others the side after's.
struct Change {
  Status status;
  FleetView::OpenRow row;
};
using Diff = std::vector<Change>;

// One merge by CVE: a CVE on both sides is the same row when its software and version are (else
// Fixed on the old one, New on the new one), Updated when its details moved.
Diff diff_rows(const Side& before, const Side& after) {
  Diff out;
  const bool same_catalog = before.view && after.view && &before.catalog() == &after.catalog();
  auto b = before.rows.begin();
  auto a = after.rows.begin();
  while (b != before.rows.end() || a != after.rows.end()) {
    int order = 0;
    if (a == after.rows.end()) {
      order = -1;
    } else if (b == before.rows.end()) {
      order = 1;
    } else if (same_catalog) {
      order = b->cve < a->cve ? -1 : a->cve < b->cve ? 1 : 0;
    } else {
      order = before.cve(*b).id.compare(after.cve(*a).id);
    }
    if (order < 0) {
      out.push_back({Status::kFixed, *b++});
    } else if (order > 0) {
      out.push_back({Status::kNew, *a++});
    } else {
      if (b->product != a->product || before.version(b->product) != after.version(a->product)) {
        out.push_back({Status::kFixed, *b});
        out.push_back({Status::kNew, *a});
      } else if (!same_details(before, *b, after, *a)) {
        out.push_back({Status::kUpdated, *a});
      }
      ++a;
      ++b;
    }
  }
  return out;
}

// What makes a part (store::ChangePart): its rows' status, software, version and KB, and their
// CVEs in order. A row is made of these alone (api::vulnerability_row), on the side its status
// says, so parts of one key are alike whichever devices' sets hold them.
struct PartKey {
  Status status;
  std::string_view product;
  std::string version;
  engine::KbIndex kb;
  std::vector<engine::CveIndex> cves;
  bool operator==(const PartKey&) const = default;
};
struct PartKeyHash {
  std::size_t operator()(const PartKey& k) const {
    std::size_t h = std::hash<std::string_view>()(k.product) ^
                    (std::hash<std::string>()(k.version) * 31) ^
                    (static_cast<std::size_t>(k.status) << 56) ^ (std::size_t{k.kb.value()} << 24);
    for (engine::CveIndex c : k.cves) h = h * 1099511628211ULL + c.value();
    return h;
  }
};

// The parts found in one comparison, shared by its threads. A part is held here only as long as a
// set not yet handed to the sink holds it: once recorded, its rows are not needed again (the
// store knows it by serial), and a part found again is passed by serial alone.
class Parts {
 public:
  using Rows = std::vector<std::pair<std::string, store::VulnerabilityRow>>;
  // The part of `key`; `make` gives its rows when it is new (called with no lock held). `made`
  // counts the rows of the parts made.
  std::shared_ptr<const store::ChangePart> get(PartKey key, const std::function<Rows()>& make,
                                               std::size_t& made) {
    {
      std::lock_guard lock(mutex_);
      auto it = known_.find(key);
      if (it != known_.end()) return reuse(it->second);
    }
    auto part = store::new_change_part(make());
    std::lock_guard lock(mutex_);
    auto [it, added] = known_.try_emplace(std::move(key), Known{part->serial, part->count, part});
    // Another thread may have made it meanwhile: theirs is the one.
    if (!added) return reuse(it->second);
    made += part->count;
    return part;
  }

 private:
  struct Known {
    std::uint64_t serial;
    std::size_t count;
    std::weak_ptr<const store::ChangePart> part;
  };
  // A part known already (under mutex_): the one a set not yet handed over still holds, or else
  // one named by serial alone, without rows (recorded already).
  static std::shared_ptr<const store::ChangePart> reuse(Known& known) {
    if (auto held = known.part.lock()) return held;
    auto again = std::make_shared<store::ChangePart>();
    again->serial = known.serial;
    again->count = known.count;
    known.part = again;
    return again;
  }
  std::mutex mutex_;
  std::unordered_map<PartKey, Known, PartKeyHash> known_;
};

constexpr std::uint32_t kNone = UINT32_MAX;

// A device to diff: its places in the two snapshots (kNone where it is not), grouped by what
// decides its rows: its states and builds.
struct Work {
  std::uint32_t before = kNone, after = kNone;
  std::uint32_t before_state = kNone, after_state = kNone;
  std::string before_build, after_build;
  auto key() const { return std::tie(before_state, after_state, before_build, after_build); }
};

}  // namespace

Result<DiffStats> diff_snapshots(
    const FleetView& before, const FleetView& after,
    const std::function<Result<void>(std::vector<store::ChangeSet>&)>& sink, unsigned threads,
    std::size_t chunk, int nice) {
  const bool same_catalog = &before.catalog() == &after.catalog();
  const auto& old_devices = before.devices();
  const auto& new_devices = after.devices();
  // The snapshot's own comparison of the catalogs, when it was built from `before`.
  std::optional<engine::CatalogChange> own_change;
  const engine::CatalogChange* catalog_change = after.catalog_change(before.catalog());
  if (!same_catalog && !catalog_change) {
    own_change.emplace(before.catalog(), after.catalog());
    catalog_change = &*own_change;
  }
  // A device whose inventory is evaluated alike, on a catalog that changes none of its products,
  // has the same rows in both snapshots.
  auto unchanged = [&](std::uint32_t b, std::uint32_t a) {
    // The same inventory, shared by both snapshots (FleetView::apply): not written since.
    if (old_devices.ptr(b) != new_devices.ptr(a) &&
        !same_evaluation_inputs(old_devices[b], new_devices[a])) {
      return false;
    }
    if (same_catalog) return true;
    return catalog_change->same_answers(before.result().state_key(before.result().state_of(b)),
                                        after.result().state_key(after.result().state_of(a)));
  };
  // Both snapshots hold their devices in id order (the store's): one merge pairs them.
  std::vector<Work> work;
  std::size_t skipped = 0;
  auto add = [&](std::uint32_t b, std::uint32_t a) {
    Work w;
    w.before = b;
    w.after = a;
    if (b != kNone) {
      w.before_state = before.result().state_of(b);
      w.before_build = inventory::os_build_string(old_devices[b]);
    }
    if (a != kNone) {
      w.after_state = after.result().state_of(a);
      w.after_build = inventory::os_build_string(new_devices[a]);
    }
    work.push_back(std::move(w));
  };
  std::uint32_t b = 0, a = 0;
  while (b < old_devices.size() || a < new_devices.size()) {
    if (a == new_devices.size() ||
        (b < old_devices.size() && old_devices[b].id < new_devices[a].id)) {
      add(b++, kNone);
    } else if (b == old_devices.size() || new_devices[a].id < old_devices[b].id) {
      add(kNone, a++);
    } else {
      if (!unchanged(b, a)) {
        add(b, a);
      } else {
        ++skipped;
      }
      ++b;
      ++a;
    }
  }
  std::stable_sort(work.begin(), work.end(),
                   [](const Work& x, const Work& y) { return x.key() < y.key(); });
  std::vector<std::size_t> runs;  // where each run of devices alike starts, and the end
  for (std::size_t i = 0; i < work.size(); ++i) {
    if (i == 0 || work[i].key() != work[i - 1].key()) runs.push_back(i);
  }
  runs.push_back(work.size());
  // The runs are diffed on `threads` threads; the sink is called by one at a time.
  std::atomic<std::size_t> next{0}, found{0};
  std::atomic<bool> failed{false};
  std::mutex sink_mutex;
  std::condition_variable handed;
  std::optional<Error> error;
  // With workers (below), they hand their chunks to the calling thread, which alone calls the
  // sink; with none, the calling thread diffs and calls it itself.
  bool queued = false;
  std::deque<std::vector<store::ChangeSet>> ready;
  std::size_t working = 0;
  auto flush = [&](std::vector<store::ChangeSet>& pending) {
    std::unique_lock lock(sink_mutex);
    if (error) return;
    if (queued) {
      handed.wait(lock, [&] { return ready.size() < 2 || error; });  // two chunks held at most
      if (!error) ready.push_back(std::move(pending));
      handed.notify_all();
      return;
    }
    if (auto r = sink(pending); !r) {
      error = r.error();
      failed = true;
    }
  };
  Parts parts;
  auto diff_runs_unguarded = [&] {
    std::vector<store::ChangeSet> pending;
    std::size_t held = 0;
    for (std::size_t r = next++; r + 1 < runs.size() && !failed; r = next++) {
      const Work& first = work[runs[r]];
      const Side b = first.before == kNone ? Side() : side_of(before, first.before);
      const Side a = first.after == kNone ? Side() : side_of(after, first.after);
      const Diff diff = diff_rows(b, a);
      if (diff.empty()) continue;
      store::ChangeSet set;
      // The rows by part, the parts in the order their first rows come (rows in order of CVE).
      std::map<std::tuple<Status, std::string_view, std::string_view, engine::KbIndex>, std::size_t>
          index;
      std::vector<std::vector<const Change*>> groups;
      for (const Change& c : diff) {
        const Side& side = c.status == Status::kFixed ? b : a;
        auto [it, added] = index.try_emplace(
            std::tuple{c.status, c.row.product, side.version(c.row.product), c.row.kb},
            groups.size());
        if (added) groups.emplace_back();
        groups[it->second].push_back(&c);
      }
      for (const auto& group : groups) {
        const Change& c0 = *group.front();
        const Side& side = c0.status == Status::kFixed ? b : a;
        PartKey key{
            c0.status, c0.row.product, std::string(side.version(c0.row.product)), c0.row.kb, {}};
        key.cves.reserve(group.size());
        for (const Change* c : group) key.cves.push_back(c->row.cve);
        set.parts.push_back(parts.get(
            std::move(key),
            [&] {
              Parts::Rows rows;
              rows.reserve(group.size());
              for (const Change* c : group) {
                rows.emplace_back(std::string(status_name(c->status)), side.row(c->row));
              }
              return rows;
            },
            held));
      }
      for (std::size_t k = runs[r]; k < runs[r + 1]; ++k) {
        const inventory::Device& d =
            work[k].after != kNone ? new_devices[work[k].after] : old_devices[work[k].before];
        set.devices.emplace_back(d.id, d.computer_dns_name);
      }
      found += diff.size() * set.devices.size();
      held += set.parts.size() + set.devices.size();
      pending.push_back(std::move(set));
      if (held >= chunk) {
        flush(pending);
        pending.clear();
        held = 0;
      }
    }
    if (!pending.empty()) flush(pending);
  };
  // An exception on any thread (out of memory) is the diff's error, not the process's end.
  auto diff_runs = [&] {
    try {
      diff_runs_unguarded();
    } catch (const std::exception& e) {
      std::lock_guard lock(sink_mutex);
      if (!error)
        error = Error{ErrorCode::kInternal, std::string("comparing the snapshots: ") + e.what()};
      failed = true;
      handed.notify_all();
    }
  };
  std::vector<std::thread> pool;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  if (threads > 1 || nice > 0) {
    queued = true;
    auto worker = [&] {
      if (nice > 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
      diff_runs();
      std::lock_guard lock(sink_mutex);
      --working;
      handed.notify_all();
    };
    for (unsigned t = 0; t < threads; ++t) {
      std::lock_guard lock(sink_mutex);
      try {
        pool.emplace_back(worker);
        ++working;
      } catch (const std::system_error&) {
        break;  // no thread to be had: the ones there are do the work
      }
    }
    std::lock_guard lock(sink_mutex);
    queued = !pool.empty();
  }
  if (queued) {
    // The chunks to the sink, on this thread, as the workers hand them over.
    std::unique_lock lock(sink_mutex);
    for (;;) {
      handed.wait(lock, [&] { return !ready.empty() || working == 0; });
      if (ready.empty()) break;
      std::vector<store::ChangeSet> chunk = std::move(ready.front());
      ready.pop_front();
      handed.notify_all();
      if (error) continue;  // dropped: the workers stop
      lock.unlock();
      std::optional<Error> failure;
      try {  // out of memory: the diff's error, and the workers are still joined
        if (auto r = sink(chunk); !r) failure = r.error();
      } catch (const std::exception& e) {
        failure = Error{ErrorCode::kInternal, std::string("recording the changes: ") + e.what()};
      }
      chunk.clear();
      lock.lock();
      if (failure && !error) {
        error = std::move(failure);
        failed = true;
        handed.notify_all();
      }
    }
  } else {
    diff_runs();
  }
  for (std::thread& t : pool) t.join();
  if (error) return *error;
  DiffStats stats;
  stats.changes = found.load();
  stats.compared = work.size();
  stats.devices = stats.compared + skipped;
  if (catalog_change) stats.touched_products = catalog_change->touched_products();
  return stats;
}

}  // namespace kbgap::server
