// What the server answers from: an immutable snapshot of the fleet (every stored device and its
// evaluation) at one fleet version. A write or a change seen in the store makes a new snapshot;
// requests in flight keep the one they started with.
//
// No read materializes more than its page (docs/security.md, "Limits"): devices in one state
// share their answer, so fleet-wide counts are gathered per distinct state from catalog indices
// (FleetFacts) before the snapshot is served, and a page renders only its own devices' answers,
// cached per state in a bounded cache.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/catalog_index.h"
#include "engine/fleet.h"
#include "inventory/device.h"

namespace kbgap::server {

// What the fleet-wide endpoints count, gathered from the distinct states: for a whole snapshot
// once, or for a snapshot brought up to date from the one before, from that one's and the
// changed devices' (docs/scaling.md, "Writes cost the batch"). Each count is a sum over devices,
// so taking a device away is adding it with -1.
struct FleetFacts {
  struct State {
    std::uint32_t open = 0;     // its open CVEs
    std::uint32_t exposed = 0;  // the software a KB is missing for: exposed_lists[exposed]
    int exposure = 0;           // 0 None, 1 Low, 2 Medium, 3 High
  };
  std::vector<State> states;  // by FleetResult state
  // Lists of software (the catalog's productsNames names), each name once, sorted; [0] is empty:
  // what a state's devices are exposed by, one recommendation each.
  std::vector<std::vector<const std::string*>> exposed_lists{{}};
  bool exposed_by(const State& state, std::string_view name) const {
    const auto& list = exposed_lists[state.exposed];
    return std::any_of(list.begin(), list.end(), [&](const std::string* s) { return *s == name; });
  }
  engine::IndexedVector<engine::CveIndex, std::uint32_t> devices_of_cve;  // devices it is open on
  std::vector<std::uint64_t> rows_before;  // by device: open (device, CVE) rows of those before
  // Devices by CVE, sorted by CVE, each count above 0.
  using CveCounts = std::vector<std::pair<engine::CveIndex, std::int64_t>>;
  struct Missed {
    std::int64_t devices = 0;            // missing the KB for this software
    std::vector<engine::CveIndex> cves;  // sorted: those of cve_devices
    CveCounts cve_devices;               // of those devices, the ones it closes each CVE on
  };
  struct Software {
    std::int64_t devices = 0;                  // running it
    std::int64_t exposed = 0;                  // of those, missing a KB for it
    std::vector<engine::CveIndex> cves;        // open on some device, sorted: those of cve_devices
    bool public_exploit = false;               // one of them is exploited or disclosed
    std::map<engine::KbIndex, Missed> missed;  // by KB index
    CveCounts cve_devices;                     // the devices each CVE is open on for it
  };
  std::map<std::string, Software> software;  // by productsNames name: "windows_10", "edge"
  std::uint64_t rows() const { return rows_before.empty() ? 0 : rows_before.back(); }
};

// Whether two inventories of a device are evaluated alike on one catalog: every field the engine
// reads is equal (its name, tags, addresses and times aside).
bool same_evaluation_inputs(const inventory::Device& a, const inventory::Device& b);

// A snapshot's devices, in id order. Each inventory is shared by every snapshot that holds it
// unchanged: a write makes a new list of pointers, never copies of the other devices.
class DeviceList {
 public:
  using Ptr = std::shared_ptr<const inventory::Device>;
  DeviceList() = default;
  explicit DeviceList(std::vector<Ptr> items) : items_(std::move(items)) {}
  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const inventory::Device& operator[](std::size_t i) const { return *items_[i]; }
  const Ptr& ptr(std::size_t i) const { return items_[i]; }
  std::vector<Ptr>& items() { return items_; }

 private:
  std::vector<Ptr> items_;
};

class FleetView {
 public:
  // With `previous` (the snapshot this one replaces), a device evaluated alike there whose
  // products the catalog change leaves untouched takes its answer from it (engine::Fleet::Reuse)
  // rather than being evaluated again; the answers are the same. Devices of one id: the last.
  static std::shared_ptr<const FleetView> build(std::shared_ptr<const engine::CatalogIndex> catalog,
                                                std::vector<inventory::Device> devices,
                                                std::int64_t version, unsigned threads,
                                                const FleetView* previous = nullptr,
                                                std::string token = {});
  // `previous` with the devices `written` (in id order) written and those `removed` (ids, in
  // order) gone, on its catalog: the other devices are shared with it and keep their answers.
  static std::shared_ptr<const FleetView> apply(const FleetView& previous,
                                                std::vector<inventory::Device> written,
                                                const std::vector<std::string>& removed,
                                                std::int64_t version, unsigned threads,
                                                std::string token = {});
  // What the catalog changed from `previous`'s, when this snapshot was built from a previous one on
  // another catalog, `from`: null otherwise.
  const engine::CatalogChange* catalog_change(const engine::CatalogIndex& from) const {
    const auto was = change_from_.lock();
    return was && was.get() == &from ? change_.get() : nullptr;
  }

  std::int64_t version() const { return version_; }
  // The store's token of that version (DeviceStore::changed_since), "" when it keeps none.
  const std::string& token() const { return token_; }
  const engine::CatalogIndex& catalog() const { return *catalog_; }
  const DeviceList& devices() const { return devices_; }
  // A device by its id, or by its computer DNS name (any case): of several devices with one
  // name, the one seen last (the latest lastSeen, then the earliest firstSeen, then the smaller
  // id: deterministic; and
  // since no stored time is ahead of the server's clock, a writer cannot hold a name for good).
  std::optional<std::uint32_t> find(std::string_view id_or_name) const;
  const engine::FleetResult& result() const { return *result_; }
  // What this snapshot took from the one before it rather than work out again.
  struct BuildStats {
    std::size_t devices_carried = 0;  // whose state is the one before's (Fleet::evaluate_onto)
    std::size_t names_kept = 0;       // name index entries, in the order they had
    bool facts_updated = false;       // fleet-wide counts brought up to date (update_facts())
  };
  const BuildStats& build_stats() const { return stats_; }

  // The device's getmissingkbs "value" array, serialized once per state (bounded cache).
  std::shared_ptr<const std::string> missing_kbs_value(std::uint32_t device) const;
  // The device's evaluation, rendered once per state (bounded cache).
  std::shared_ptr<const engine::Evaluation> evaluation(std::uint32_t device) const;
  // The device's open CVEs, in CVE index order, each with the reported KB that closes it (the
  // newest that does, as getmissingkbs orders them) and that KB's first product on the device:
  // the rows of machinesVulnerabilities and of the vulnerability exports (facts().rows_before
  // counts them). Read from the state's picks in catalog indices, without rendering a string.
  struct OpenRow {
    engine::CveIndex cve;
    engine::KbIndex kb;
    std::string_view product;  // its snake name, in the catalog
  };
  std::vector<OpenRow> open_rows(std::uint32_t device) const;
  // The snake names of the catalog products the device runs ("windows_10", "edge", ...).
  const std::vector<std::string>& software_of(std::uint32_t device) const {
    return software_of_kind_[result_->state_kind(result_->state_of(device))];
  }
  // The device's open CVEs, sorted.
  std::vector<engine::CveIndex> open_cves(std::uint32_t device) const;
  // Is the CVE open on the device?
  bool cve_open_on(std::uint32_t device, engine::CveIndex cve) const {
    return result_->state_has_open_cve(result_->state_of(device), cve);
  }
  // Ready with the snapshot: gathered from every state when it is built from scratch, brought up
  // to date by the changed devices when from the snapshot before (update_facts()).
  const FleetFacts& facts() const { return facts_; }
  const FleetFacts::State& state_facts(std::uint32_t device) const {
    return facts().states[result_->state_of(device)];
  }
  // Is the device exposed by that software (a KB for it missing)?
  bool exposed_by(std::uint32_t device, std::string_view software) const {
    return facts().exposed_by(state_facts(device), software);
  }
  // The CVEs of the state's missing KBs for one of its software products (sorted, distinct).
  std::vector<engine::CveIndex> open_cves_of(std::uint32_t state, std::string_view software) const;
  // The device whose open-CVE rows include fleet-wide row `row` (< facts().rows()), and the
  // row's place among that device's rows.
  std::pair<std::uint32_t, std::size_t> row_at(std::uint64_t row) const;

 private:
  template <typename T>
  std::shared_ptr<const T> cached(
      std::unordered_map<std::uint32_t, std::shared_ptr<const T>>& cache, std::uint32_t state,
      const std::function<std::shared_ptr<const T>()>& make) const;

  // Builds the snapshot of `devices` (in id order, each id once).
  static std::shared_ptr<FleetView> make(std::shared_ptr<const engine::CatalogIndex> catalog,
                                         DeviceList devices, std::int64_t version, unsigned threads,
                                         const FleetView* previous);
  std::optional<std::uint32_t> find_id(std::string_view id) const;

  // The devices by computer DNS name, any case: sorted by a hash of the lower-case name, then the
  // name, then the better owner of the name first (find()). A snapshot brought up to date from
  // the one before keeps that one's order for the devices it shares, and sorts only the others.
  struct NameEntry {
    std::uint64_t hash;
    std::uint32_t device;
  };
  void index_names(const FleetView* previous, const std::vector<std::uint32_t>& previous_device);
  void count_rows(FleetFacts& facts) const;  // facts.rows_before, from facts.states
  // The facts of this snapshot, from every state.
  void gather_facts();
  // The facts of this snapshot brought up to date from `previous`'s, whose result this one's was
  // brought up to date from (engine::Fleet::evaluate_onto): `previous_device` as in
  // index_names().
  void update_facts(const FleetView& previous, const std::vector<std::uint32_t>& previous_device);
  bool name_before(const NameEntry& a, const NameEntry& b) const;

  std::shared_ptr<const engine::CatalogIndex> catalog_;
  DeviceList devices_;
  std::int64_t version_ = 0;
  std::string token_;
  std::vector<NameEntry> by_name_;
  BuildStats stats_;
  std::unique_ptr<engine::FleetResult> result_;
  std::weak_ptr<const engine::CatalogIndex> change_from_;  // not kept alive by this
  std::shared_ptr<const engine::CatalogChange> change_;
  std::vector<std::vector<std::string>> software_of_kind_;  // by FleetResult kind
  FleetFacts facts_;
  mutable std::shared_mutex mutex_;
  mutable std::unordered_map<std::uint32_t, std::shared_ptr<const std::string>> values_;
  mutable std::unordered_map<std::uint32_t, std::shared_ptr<const engine::Evaluation>> evaluations_;
};

}  // namespace kbgap::server
