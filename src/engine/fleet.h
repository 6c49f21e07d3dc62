// Many devices, evaluated together. A fleet holds each device compactly (its kind, revision and
// installed KBs) and evaluates them all at once, sharing work at three levels: devices of one
// kind share a profile; devices in the same state share one evaluation; and within a profile,
// each component is evaluated once per distinct state of its own KBs (docs/engine.md). The
// answers are exactly evaluate()'s.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/catalog_change.h"
#include "engine/evaluate.h"
#include "engine/profile.h"

namespace kbgap::engine {

class FleetResult;

// A device state (kind, revision, installed KBs) by two independent 64-bit hashes: states of one
// key are taken to be one (a false match is about as likely as 1 in 2^100 at a million states).
struct StateKey {
  std::uint64_t a = 0, b = 0;
  bool operator==(const StateKey&) const = default;
};
struct StateKeyHash {
  std::size_t operator()(const StateKey& k) const { return k.a; }
};

class Fleet {
 public:
  explicit Fleet(const CatalogIndex& catalog) : catalog_(&catalog) {}
  // An empty fleet whose kinds of device are `previous`'s, numbered as there (new kinds follow):
  // its devices are evaluated onto `previous` (evaluate_onto()). On `previous`'s catalog.
  explicit Fleet(const FleetResult& previous);

  // Adds a device; returns its number in the fleet (0, 1, ...).
  std::uint32_t add(const inventory::Device& device);
  std::size_t size() const { return devices_.size(); }
  std::size_t kind_count() const { return kinds_.size(); }

  // An earlier evaluation of (mostly) the same devices, on this catalog or an older one: a state
  // whose device is evaluated alike and whose profile the catalog change leaves untouched
  // (CatalogChange::same_answers) takes its answer from there, renumbered into this catalog,
  // instead of being evaluated again. The answers are the same as without it.
  struct Reuse {
    static constexpr std::uint32_t kNone = 0xffffffffu;
    const FleetResult* previous = nullptr;
    const CatalogIndex* previous_catalog = nullptr;
    const CatalogChange* change = nullptr;  // null: the same catalog
    // By device of this fleet: its number in `previous` when its inventory is evaluated alike
    // there, else kNone.
    std::vector<std::uint32_t> previous_device;
  };

  struct Options {
    std::string as_of;     // "YYYY-MM-DD": only KBs released by then count; "" for all
    unsigned threads = 0;  // 0: all cores
    const Reuse* reuse = nullptr;
    // Called now and then, from one thread, with the devices done so far and the total.
    std::function<void(std::size_t done, std::size_t total)> progress;
  };
  FleetResult evaluate(const Options& options) const;

  // `previous` brought up to date (docs/scaling.md, "Writes cost the batch"): a result for a
  // fleet of origin.size() devices, each either one of previous's, whose state it keeps under the
  // same number (origin[d] = its number there), or one of this fleet's (kFromBatch | its number
  // here): in a state of previous's when it is in one, else evaluated now. This fleet must have
  // been made from `previous`, and `options` must name previous's as_of (reuse is not read). States
  // no device holds any more are dropped once they outnumber those held
  // (FleetResult::carried_states() is then 0).
  static constexpr std::uint32_t kFromBatch = 0x80000000u;
  FleetResult evaluate_onto(const FleetResult& previous, std::span<const std::uint32_t> origin,
                            const Options& options) const;

 private:
  friend class FleetResult;
  class StateWork;  // one thread's evaluation of device states (fleet.cpp)
  // The profile of each kind `out` has none for yet, and its components' answers when nothing
  // is satisfied.
  void build_profiles(FleetResult& out, int as_of_day, unsigned threads) const;
  // The states of this fleet's devices, into `out`'s last block: returns each device's state,
  // numbered in that block. With `known`, a device whose entry there is not
  // FleetResult::kNoState is left out (its entry returned as 0).
  std::vector<std::uint32_t> evaluate_states(
      FleetResult& out, const Options& options, unsigned threads,
      const std::vector<std::uint32_t>* known = nullptr) const;
  // Each device's state key (kind, revision, installed KBs).
  std::vector<StateKey> state_keys(unsigned threads) const;
  std::span<const KbIndex> installed_of(std::size_t device) const {
    return {installed_.data() + installed_begin_[device],
            installed_begin_[device + 1] - installed_begin_[device]};
  }
  bool same_state(std::size_t a, std::size_t b) const;
  struct KeyHash {
    std::size_t operator()(const ProfileKey& k) const { return hash_value(k); }
  };
  struct Entry {
    std::uint32_t kind = 0;
    std::int32_t revision = kNoRevision;
  };
  static constexpr std::int32_t kNoRevision = std::numeric_limits<std::int32_t>::min();

  const CatalogIndex* catalog_;
  std::vector<ProfileKey> kinds_;  // as_of_day 0; the evaluation sets it
  std::unordered_map<ProfileKey, std::uint32_t, KeyHash> kind_of_key_;
  std::vector<Entry> devices_;
  std::vector<std::uint32_t> installed_begin_{0};  // per device, into installed_
  std::vector<KbIndex> installed_;                 // catalog KB indices, sorted per device
};

// What a fleet evaluation found, per device.
class FleetResult {
 public:
  std::size_t device_count() const { return state_of_device_.size(); }
  std::size_t distinct_states() const { return states_.size(); }
  std::size_t component_evaluations() const { return component_evaluations_; }
  // Of the distinct states, those taken from Options::reuse rather than evaluated, and the devices
  // in them.
  std::size_t reused_states() const { return reused_states_; }
  std::size_t reused_devices() const;
  // Of the states, those that are the result's evaluate_onto() brought up to date, under the
  // same numbers (the first ones): 0 for a result made otherwise, or whose states were renumbered
  // to drop those no device held.
  std::size_t carried_states() const { return carried_states_; }
  // For a result evaluate_onto() made: the number here of state `s` of the result it brought up
  // to date, or kNoState when no device holds it any more and it was dropped. kNoState for a
  // result made otherwise.
  static constexpr std::uint32_t kNoState = 0xffffffffu;
  std::uint32_t state_now(std::uint32_t s) const {
    if (s >= previous_states_) return kNoState;
    return renumbered_.empty() ? s : renumbered_[s];
  }
  std::size_t kind_count() const { return profiles_.size(); }
  std::uint32_t state_kind(std::uint32_t state) const { return states_[state]->kind; }
  const std::vector<ProductIndex>& kind_products(std::uint32_t kind) const {
    return profiles_[kind]->products();
  }
  std::size_t missing_count(std::uint32_t device) const;
  std::optional<int> revision(std::uint32_t device) const;
  // The catalog products the device runs (its OS first, then the OS's components).
  const std::vector<ProductIndex>& products(std::uint32_t device) const {
    return state_products(state_of(device));
  }
  // The device's missing KBs and open CVEs, as evaluate() reports them without --explain and
  // without the notes that need the full inventory (service pack, unknown revision).
  Evaluation evaluation(std::uint32_t device) const { return state_evaluation(state_of(device)); }

  // Devices in one state share their answer: what a fleet-wide count needs is per state.
  std::uint32_t state_of(std::uint32_t device) const { return state_of_device_[device]; }
  Evaluation state_evaluation(std::uint32_t state) const;
  // The state's answer in catalog indices, without rendering a string: each missing KB with
  // the product slots (places in products()) and the CVEs of the open pairs it closes. The CVEs
  // of all picks together are the state's open CVEs.
  struct PickFacts {
    KbIndex kb;
    std::vector<std::uint32_t> slots;  // ascending, distinct
    std::vector<CveIndex> cves;        // ascending, distinct
  };
  std::vector<PickFacts> state_picks(std::uint32_t state) const;
  // The state's answer by component: a component answered alike in many states is one object
  // (the same pointer, for a state's products), so that what it contributes to a fleet-wide
  // count can be worked out once however many states share it. Their picks together are
  // state_picks().
  std::vector<const ComponentResult*> state_parts(std::uint32_t state) const {
    return state_results(state);
  }
  static std::vector<PickFacts> part_picks(const ComponentResult& part);
  const std::vector<ProductIndex>& state_products(std::uint32_t state) const;
  // The profile the state was evaluated under (its products, line and path).
  const ProfileKey& state_key(std::uint32_t state) const {
    return profiles_[states_[state]->kind]->key();
  }
  // Is `cve` among the state's open CVEs (those of its picks)? Without building a list.
  bool state_has_open_cve(std::uint32_t state, CveIndex cve) const;

 private:
  friend class Fleet;
  friend class Fleet::StateWork;
  std::vector<const ComponentResult*> state_results(std::uint32_t state) const;
  struct State {
    std::uint32_t kind = 0;
    std::optional<int> revision;
    bool revision_inferred = false;
    // The components its satisfied KBs touch (ascending) and their answers, in pieces; the
    // other components answer as their profile's base.
    std::vector<std::uint32_t> replaced;
    std::vector<const ComponentResult*> pieces;
    std::size_t missing = 0;
    bool reused = false;  // taken from Options::reuse
    StateKey key;
  };
  // What one evaluation made: its states and the answers they point into. Results brought up to
  // date from this one share it; it does not change once made.
  struct Block {
    std::vector<State> states;
    std::vector<std::unique_ptr<ComponentResult>> results;
    std::vector<std::unique_ptr<Residual>> residuals;
    // Its states' numbers in the result that made it (and those brought up to date from it,
    // until compact()), by key.
    std::unordered_map<StateKey, std::uint32_t, StateKeyHash> numbers;
  };
  // Puts the last block's states in states_, numbered from there on.
  void adopt_last_block();
  // The states renumbered in order of first use by the devices, those no device holds dropped,
  // into one block of their own (with copies of the answers they point into).
  void compact();

  const CatalogIndex* catalog_ = nullptr;
  int as_of_day_ = 0;
  std::vector<std::shared_ptr<const Profile>> profiles_;  // by kind
  // By kind, component: the answer when nothing is satisfied.
  std::vector<std::shared_ptr<const std::vector<ComponentResult>>> base_;
  std::vector<std::size_t> base_missing_;  // by kind
  std::vector<std::shared_ptr<Block>> blocks_;
  std::vector<const State*> states_;  // into blocks_
  std::vector<std::uint32_t> state_of_device_;
  std::size_t component_evaluations_ = 0;
  std::size_t reused_states_ = 0;
  std::size_t carried_states_ = 0;
  std::size_t previous_states_ = 0;        // evaluate_onto()'s previous result's
  std::vector<std::uint32_t> renumbered_;  // by state before compact(): its number after
};

}  // namespace kbgap::engine
