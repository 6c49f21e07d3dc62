// Fleet evaluation: profiles per kind of device, one evaluation per distinct device state, one
// component evaluation per distinct component state, all cores.
#include "engine/fleet.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "common/distinct.h"

namespace kbgap::engine {
namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

// SplitMix64's finalizer: a second hash, independent of mix()'s.
std::uint64_t split_mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

unsigned thread_count(unsigned wanted) {
  return wanted != 0 ? wanted : std::max(1u, std::thread::hardware_concurrency());
}

// Runs `work(thread)` on `threads` threads and waits for them.
template <typename Work>
void run_on(unsigned threads, Work&& work) {
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0u);
  for (auto& t : pool) t.join();
}

// Answers shared by all threads, by a key of two numbers and a set of KBs: component results by
// (kind, component, its satisfied KBs), residuals by (kind, component, the line state's KBs),
// pieces by (residual, piece, the KBs satisfied beyond the line state).
template <typename Value>
class SharedCache {
 public:
  struct Key {
    std::uint64_t a = 0;
    std::uint32_t b = 0;
    std::vector<KbIndex> kbs;
    bool operator==(const Key&) const = default;
    std::uint64_t hash() const {
      std::uint64_t h = mix(a, b);
      for (KbIndex kb : kbs) h = mix(h, kb.value());
      return h;
    }
  };
  // The stored value, built by `make()` when there is none yet (outside the lock; when two
  // threads race, the first stored wins).
  template <typename Make>
  const Value* get(Key key, Make&& make) {
    const std::uint64_t hash = key.hash();
    Shard& shard = shards_[hash % kShards];
    {
      std::lock_guard lock(shard.mutex);
      auto it = shard.map.find({hash, key});
      if (it != shard.map.end()) return it->second.get();
    }
    auto value = std::make_unique<Value>(make());
    std::lock_guard lock(shard.mutex);
    auto [it, inserted] = shard.map.try_emplace({hash, std::move(key)}, nullptr);
    if (inserted) {
      it->second = std::move(value);
      ++shard.made;
    }
    return it->second.get();
  }
  std::size_t made() const {
    std::size_t n = 0;
    for (const Shard& shard : shards_) n += shard.made;
    return n;
  }
  void move_into(std::vector<std::unique_ptr<Value>>& out) {
    for (Shard& shard : shards_) {
      for (auto& [key, value] : shard.map) out.push_back(std::move(value));
      shard.map.clear();
    }
  }

 private:
  struct HashedKey {
    std::uint64_t hash;
    Key key;
    bool operator==(const HashedKey&) const = default;
  };
  struct Hash {
    std::size_t operator()(const HashedKey& k) const { return k.hash; }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<HashedKey, std::unique_ptr<Value>, Hash> map;
    std::size_t made = 0;
  };
  static constexpr std::size_t kShards = 64;
  Shard shards_[kShards];
};

// The (component, KB) pairs of the KBs in `list` that belong to a component, sorted.
void by_component(const Profile& profile, const std::vector<KbIndex>& list,
                  std::vector<std::pair<std::int32_t, KbIndex>>& out) {
  out.clear();
  for (KbIndex kb : list) {
    if (profile.component_of(kb) >= 0) out.emplace_back(profile.component_of(kb), kb);
  }
  std::sort(out.begin(), out.end());
}

// A kind of device (or an OS profile), a revision and installed KBs: a device's servicing-line
// state (its installed cumulative updates), or the OS part of its state (the KBs that are not its
// software's).
struct KindStateKey {
  std::uint32_t kind = 0;
  std::int32_t revision = 0;
  std::vector<KbIndex> installed;
  bool operator==(const KindStateKey&) const = default;
};
struct KindStateHash {
  std::size_t operator()(const KindStateKey& k) const {
    std::uint64_t h = mix(k.kind, static_cast<std::uint32_t>(k.revision));
    for (KbIndex kb : k.installed) h = mix(h, kb.value());
    return h;
  }
};

// An earlier evaluation's answers in this catalog's numbers (KBs by number, CVEs by id), each made
// once for all threads, so a snapshot built from the one before shares its answers between states
// as one built from scratch does.
class Renumbering {
 public:
  Renumbering(const CatalogIndex& from, const CatalogIndex& to)
      : kbs_(from.kbs().size(), Profile::kNoKb), cves_(from.cves().size(), kNoCve) {
    for (KbIndex kb : from.kb_indices()) {
      if (auto found = to.find_kb(from.kbs()[kb].kb)) kbs_[kb] = *found;
    }
    for (CveIndex cve : from.cve_indices()) {
      if (auto found = to.find_cve(from.cves()[cve].id)) cves_[cve] = *found;
    }
  }
  // Null when it names a KB or CVE this catalog lacks (never an untouched profile's answer).
  const ComponentResult* renumber(const ComponentResult& then) {
    Shard& shard = shards_[std::hash<const void*>{}(&then) % kShards];
    std::lock_guard lock(shard.mutex);
    auto [it, inserted] = shard.of.try_emplace(&then, nullptr);
    if (!inserted) return it->second;
    auto now = std::make_unique<ComponentResult>(then);
    for (OpenPair& pair : now->open) {
      pair.cve = cves_[pair.cve];
      if (pair.cve == kNoCve) return nullptr;
    }
    for (Pick& pick : now->picks) {
      pick.kb = kbs_[pick.kb];
      if (pick.kb == Profile::kNoKb) return nullptr;
    }
    it->second = now.get();
    shard.made.push_back(std::move(now));
    return it->second;
  }
  void move_into(std::vector<std::unique_ptr<ComponentResult>>& out) {
    for (Shard& shard : shards_) {
      for (auto& r : shard.made) out.push_back(std::move(r));
      shard.made.clear();
    }
  }

 private:
  static constexpr CveIndex kNoCve{std::numeric_limits<std::uint32_t>::max()};
  static constexpr std::size_t kShards = 64;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<const ComponentResult*, const ComponentResult*> of;
    std::vector<std::unique_ptr<ComponentResult>> made;
  };
  IndexedVector<KbIndex, KbIndex> kbs_;
  IndexedVector<CveIndex, CveIndex> cves_;
  Shard shards_[kShards];
};

}  // namespace

std::uint32_t Fleet::add(const inventory::Device& device) {
  auto [installed, key] = installed_and_key(*catalog_, device, 0);
  auto [it, inserted] = kind_of_key_.try_emplace(key, static_cast<std::uint32_t>(kinds_.size()));
  if (inserted) kinds_.push_back(std::move(key));
  Entry entry;
  entry.kind = it->second;
  if (device.revision) entry.revision = *device.revision;
  installed_.insert(installed_.end(), installed.begin(), installed.end());
  installed_begin_.push_back(static_cast<std::uint32_t>(installed_.size()));
  devices_.push_back(entry);
  return static_cast<std::uint32_t>(devices_.size() - 1);
}

Fleet::Fleet(const FleetResult& previous) : catalog_(previous.catalog_) {
  for (const auto& profile : previous.profiles_) {
    ProfileKey key = profile->key();
    key.as_of_day = 0;
    kind_of_key_.try_emplace(key, static_cast<std::uint32_t>(kinds_.size()));
    kinds_.push_back(std::move(key));
  }
}

// One thread's work on the device states that fall to it (by their hash): each state's
// satisfied KBs, and for each component they touch, its answer from the shared caches.
class Fleet::StateWork {
 public:
  struct Caches {
    SharedCache<ComponentResult> components, pieces;
    SharedCache<Residual> residuals;
  };
  StateWork(const Fleet& fleet, const FleetResult& out, Caches& caches, const Reuse* reuse,
            Renumbering* renumbering)
      : fleet_(fleet),
        out_(out),
        caches_(caches),
        reuse_(reuse),
        renumbering_(renumbering),
        scratch_(*fleet.catalog_),
        satisfied_(fleet.catalog_->kbs().size()),
        line_satisfied_(fleet.catalog_->kbs().size()),
        software_satisfied_(fleet.catalog_->kbs().size()) {}

  // The state of device `d` (whose state was not seen before).
  FleetResult::State evaluate(std::size_t d) {
    if (auto reused = reuse(d)) {
      ++reused_;
      return std::move(*reused);
    }
    FleetResult::State state;
    state.kind = fleet_.devices_[d].kind;
    const Profile& profile = *out_.profiles_[state.kind];
    std::span<const KbIndex> installed = fleet_.installed_of(d);
    if (fleet_.devices_[d].revision != kNoRevision) {
      state.revision = fleet_.devices_[d].revision;
    } else {
      state.revision = profile.infer_revision(installed);
      state.revision_inferred = state.revision.has_value();
    }
    // Software beside the OS is answered once per software state (its products and their
    // installed KBs), and the OS once per OS state (the OS's products, servicing line, revision
    // and the other KBs), whatever software runs beside it. Where the two parts' KBs reach into
    // each other, the device is evaluated whole.
    state.missing = out_.base_missing_[state.kind];
    const std::uint32_t software_from = profile.software_components_from();
    if (software_from < profile.component_count()) {
      os_installed_.clear();
      software_installed_.clear();
      bool both = false;
      for (KbIndex kb : installed) {
        switch (profile.side_of(kb)) {
          case Profile::Side::kOs:
            os_installed_.push_back(kb);
            break;
          case Profile::Side::kSoftware:
            software_installed_.push_back(kb);
            break;
          case Profile::Side::kBoth:
            both = true;
            break;
        }
      }
      const SoftwareAnswer* software = both ? nullptr : software_answer(profile);
      const OsPart* os = software ? os_part(profile, state) : nullptr;
      if (os) {
        state.replaced = os->replaced;
        state.pieces = os->pieces;
        std::int64_t delta = os->delta;
        const std::vector<ComponentResult>& base = *out_.base_[state.kind];
        for (std::size_t k = 0; k < software->components.size(); ++k) {
          const std::uint32_t component = software_from + software->components[k];
          state.replaced.push_back(component);
          state.pieces.push_back(software->results[k]);
          delta += static_cast<std::int64_t>(software->results[k]->picks.size()) -
                   static_cast<std::int64_t>(base[component].picks.size());
        }
        state.missing = static_cast<std::size_t>(static_cast<std::int64_t>(state.missing) + delta);
        return state;
      }
    }
    std::int64_t delta = 0;
    line_kind_ = state.kind;
    answer_components(profile, state, installed, profile.component_count(), delta);
    state.missing = static_cast<std::size_t>(static_cast<std::int64_t>(state.missing) + delta);
    return state;
  }

  std::size_t reused() const { return reused_; }

 private:
  using ByComponent = std::vector<std::pair<std::int32_t, KbIndex>>;

  // The answers of the components `installed` touches (with the state's revision), into
  // state.replaced and state.pieces, and what they change in the missing count, into `delta`.
  // False, with nothing done, when it touches a component from `limit` on.
  bool answer_components(const Profile& profile, FleetResult::State& state,
                         std::span<const KbIndex> installed, std::uint32_t limit,
                         std::int64_t& delta) {
    // What the device satisfies, and what its servicing-line state alone satisfies (the
    // revision and the installed cumulative updates): devices with the same line state share a
    // residual, and what else they installed changes only its pieces.
    list_.clear();
    profile.satisfy(installed, state.revision, satisfied_, &list_);
    by_component(profile, list_, all_);
    if (!all_.empty() && static_cast<std::uint32_t>(all_.back().first) >= limit) return false;
    line_installed_.clear();
    for (KbIndex kb : installed) {
      if (profile.moves_lines(kb)) line_installed_.push_back(kb);
    }
    const auto& line = line_state(profile, state);
    const std::vector<ComponentResult>& base = *out_.base_[state.kind];
    std::size_t j = 0;
    for (std::size_t i = 0; i < all_.size();) {
      const auto component = static_cast<std::uint32_t>(all_[i].first);
      // By the component's fingerprint, not its kind: kinds that differ only in their software
      // share the answers of their OS's components.
      const auto fingerprint = profile.component_fingerprint(component);
      SharedCache<ComponentResult>::Key key{
          fingerprint.first, static_cast<std::uint32_t>(fingerprint.second), {}};
      for (; i < all_.size() && static_cast<std::uint32_t>(all_[i].first) == component; ++i) {
        key.kbs.push_back(all_[i].second);
      }
      const auto residual_fingerprint = profile.residual_fingerprint(component);
      SharedCache<Residual>::Key line_key{
          residual_fingerprint.first, static_cast<std::uint32_t>(residual_fingerprint.second), {}};
      for (; j < line.size() && static_cast<std::uint32_t>(line[j].first) < component; ++j) {
      }
      for (; j < line.size() && static_cast<std::uint32_t>(line[j].first) == component; ++j) {
        line_key.kbs.push_back(line[j].second);
      }
      state.replaced.push_back(component);
      delta -= static_cast<std::int64_t>(base[component].picks.size());
      const std::size_t first = state.pieces.size();
      answer_component(profile, state, component, std::move(key), std::move(line_key));
      for (std::size_t k = first; k < state.pieces.size(); ++k) {
        delta += static_cast<std::int64_t>(state.pieces[k]->picks.size());
      }
    }
    return true;
  }

  // The OS part of a state (os_installed_, the state's kind and revision) for devices that run
  // software: worked out once per thread for every kind with the same OS profile. Null when its
  // KBs satisfy software fixes (the device is then evaluated whole).
  struct OsPart {
    bool exact = true;
    std::vector<std::uint32_t> replaced;
    std::vector<const ComponentResult*> pieces;
    std::int64_t delta = 0;
  };
  const OsPart* os_part(const Profile& profile, const FleetResult::State& state) {
    if (os_kind_of_.size() <= state.kind) os_kind_of_.resize(state.kind + 1, -1);
    if (os_kind_of_[state.kind] < 0) {
      // Kinds whose keys agree but for their software products have the same OS components.
      ProfileKey os_key = profile.key();
      os_key.products.resize(profile.software_slots_from());
      if (os_key.products.size() < 64) {
        os_key.security_only_path &= (std::uint64_t{1} << os_key.products.size()) - 1;
      }
      auto [it, inserted] =
          os_kinds_.try_emplace(std::move(os_key), static_cast<std::uint32_t>(os_kinds_.size()));
      os_kind_of_[state.kind] = static_cast<std::int32_t>(it->second);
    }
    os_key_.kind = static_cast<std::uint32_t>(os_kind_of_[state.kind]);
    os_key_.revision = state.revision.value_or(kNoRevision);
    os_key_.installed = os_installed_;
    auto [it, inserted] = os_parts_.try_emplace(os_key_);
    OsPart& part = it->second;
    if (inserted) {
      FleetResult::State scratch_state;
      scratch_state.kind = state.kind;
      scratch_state.revision = state.revision;
      // Kinds of one OS profile share their line states too.
      line_kind_ = os_key_.kind | 0x80000000u;
      part.exact = answer_components(profile, scratch_state, os_installed_,
                                     profile.software_components_from(), part.delta);
      part.replaced = std::move(scratch_state.replaced);
      part.pieces = std::move(scratch_state.pieces);
    }
    return part.exact ? &part : nullptr;
  }

  // The answers of a software state's components that its KBs touch (numbered from
  // Profile::software_components_from()); `exact` is false when its KBs reach beyond the
  // software (a servicing line, or an OS component), and the device must be evaluated whole.
  struct SoftwareAnswer {
    bool exact = true;
    std::vector<std::uint32_t> components;
    std::vector<const ComponentResult*> results;
  };
  struct SoftwareKey {
    std::pair<std::uint64_t, std::uint64_t> fingerprint;
    std::vector<KbIndex> installed;
    bool operator==(const SoftwareKey&) const = default;
  };
  struct SoftwareHash {
    std::size_t operator()(const SoftwareKey& k) const {
      std::uint64_t h = mix(k.fingerprint.first, k.fingerprint.second);
      for (KbIndex kb : k.installed) h = mix(h, kb.value());
      return h;
    }
  };

  // The answer for the software state of software_installed_ on `profile`: worked out once per
  // thread, its components from the shared cache. Null when it is not exact.
  const SoftwareAnswer* software_answer(const Profile& profile) {
    auto [it, inserted] =
        software_states_.try_emplace({profile.software_fingerprint(), software_installed_});
    SoftwareAnswer& answer = it->second;
    if (inserted) {
      const auto from = static_cast<std::int32_t>(profile.software_components_from());
      software_list_.clear();
      profile.satisfy(software_installed_, std::nullopt, software_satisfied_, &software_list_);
      for (KbIndex kb : software_installed_) {
        if (profile.on_a_device_line(kb) || profile.moves_lines(kb)) answer.exact = false;
      }
      by_component(profile, software_list_, software_all_);
      if (!software_all_.empty() && software_all_.front().first < from) answer.exact = false;
      for (std::size_t i = 0; answer.exact && i < software_all_.size();) {
        const auto component = static_cast<std::uint32_t>(software_all_[i].first);
        const auto fingerprint = profile.component_fingerprint(component);
        SharedCache<ComponentResult>::Key key{
            fingerprint.first, static_cast<std::uint32_t>(fingerprint.second), {}};
        for (; i < software_all_.size() &&
               static_cast<std::uint32_t>(software_all_[i].first) == component;
             ++i) {
          key.kbs.push_back(software_all_[i].second);
        }
        answer.components.push_back(component - static_cast<std::uint32_t>(from));
        answer.results.push_back(caches_.components.get(std::move(key), [&] {
          return profile.evaluate_component(component, software_satisfied_, scratch_, false);
        }));
      }
    }
    return answer.exact ? &answer : nullptr;
  }

  // Device `d`'s state taken from the earlier evaluation (Options::reuse), when the device is
  // evaluated alike there and its profile's answers are the same on both catalogs; else nullopt.
  std::optional<FleetResult::State> reuse(std::size_t d) {
    if (!reuse_ || reuse_->previous_device[d] == Reuse::kNone) return std::nullopt;
    const FleetResult& previous = *reuse_->previous;
    const FleetResult::State& old =
        *previous.states_[previous.state_of(reuse_->previous_device[d])];
    const std::uint32_t kind = fleet_.devices_[d].kind;
    auto [known, inserted] = kinds_alike_.try_emplace({old.kind, kind}, false);
    if (inserted) {
      const Profile& then = *previous.profiles_[old.kind];
      const Profile& now = *out_.profiles_[kind];
      known->second = (reuse_->change ? reuse_->change->same_answers(then.key(), now.key())
                                      : then.key() == now.key()) &&
                      then.same_components(now);
    }
    if (!known->second) return std::nullopt;
    FleetResult::State state;
    state.kind = kind;
    state.revision = old.revision;
    state.revision_inferred = old.revision_inferred;
    state.replaced = old.replaced;
    state.missing = old.missing;
    state.reused = true;
    for (const ComponentResult* piece : old.pieces) {
      const ComponentResult* now = renumbering_->renumber(*piece);
      if (!now) return std::nullopt;
      state.pieces.push_back(now);
    }
    return state;
  }

  // The line state's satisfied KBs by component: shared by every device in that line state (of
  // one kind, revision and installed cumulative updates), so worked out once per thread.
  const ByComponent& line_state(const Profile& profile, const FleetResult::State& state) {
    KindStateKey key{line_kind_, state.revision.value_or(kNoRevision), line_installed_};
    auto [it, inserted] = line_states_.try_emplace(std::move(key));
    if (inserted) {
      line_list_.clear();
      profile.satisfy(line_installed_, state.revision, line_satisfied_, &line_list_);
      line_satisfied_of_ = &it->second;
      by_component(profile, line_list_, it->second);
    }
    line_state_ = &it->second;
    revision_ = state.revision;
    return it->second;
  }

  // The line state's marks, when a residual must be worked out (they are another state's when
  // the line state's list came from the cache).
  const KbMarks& line_marks(const Profile& profile) {
    if (line_satisfied_of_ != line_state_) {
      profile.satisfy(line_installed_, revision_, line_satisfied_, nullptr);
      line_satisfied_of_ = line_state_;
    }
    return line_satisfied_;
  }

  // A component the state's satisfied KBs touch: evaluated whole when a KB beyond the line
  // state moves a line (or there is none), else the line state's residual with only the pieces
  // those KBs belong to evaluated again.
  void answer_component(const Profile& profile, FleetResult::State& state, std::uint32_t component,
                        SharedCache<ComponentResult>::Key key,
                        SharedCache<Residual>::Key line_key) {
    beyond_.clear();
    std::set_difference(key.kbs.begin(), key.kbs.end(), line_key.kbs.begin(), line_key.kbs.end(),
                        std::back_inserter(beyond_));
    const bool moves = std::any_of(beyond_.begin(), beyond_.end(),
                                   [&](KbIndex kb) { return profile.moves_lines(kb); });
    if (beyond_.empty() || moves) {
      const ComponentResult* result = caches_.components.get(std::move(key), [&] {
        return profile.evaluate_component(component, satisfied_, scratch_, false);
      });
      state.pieces.push_back(result);
      return;
    }
    const Residual* residual = caches_.residuals.get(std::move(line_key), [&] {
      return profile.split_component(component, line_marks(profile), scratch_);
    });
    by_piece_.clear();
    for (KbIndex kb : beyond_) {
      auto p = std::lower_bound(residual->piece_of_kb.begin(), residual->piece_of_kb.end(),
                                std::pair<KbIndex, std::uint32_t>{kb, 0});
      if (p != residual->piece_of_kb.end() && p->first == kb) by_piece_.emplace_back(p->second, kb);
    }
    std::sort(by_piece_.begin(), by_piece_.end());
    const std::size_t first = state.pieces.size();
    for (const ComponentResult& base : residual->base) state.pieces.push_back(&base);
    for (std::size_t k = 0; k < by_piece_.size();) {
      const std::uint32_t piece = by_piece_[k].first;
      SharedCache<ComponentResult>::Key piece_key{
          reinterpret_cast<std::uintptr_t>(residual), piece, {}};
      for (; k < by_piece_.size() && by_piece_[k].first == piece; ++k) {
        piece_key.kbs.push_back(by_piece_[k].second);
      }
      state.pieces[first + piece] = caches_.pieces.get(std::move(piece_key), [&] {
        return profile.evaluate_piece(*residual, piece, satisfied_, scratch_, false);
      });
    }
  }

  const Fleet& fleet_;
  const FleetResult& out_;
  Caches& caches_;
  const Reuse* reuse_;
  Renumbering* renumbering_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, bool> kinds_alike_;  // (then, now) kinds
  std::size_t reused_ = 0;
  Scratch scratch_;
  KbMarks satisfied_, line_satisfied_, software_satisfied_;
  std::vector<KbIndex> list_, line_list_, line_installed_, beyond_;
  std::vector<KbIndex> os_installed_, software_installed_, software_list_;
  ByComponent all_, software_all_;
  std::unordered_map<SoftwareKey, SoftwareAnswer, SoftwareHash> software_states_;
  std::unordered_map<ProfileKey, std::uint32_t, KeyHash> os_kinds_;
  std::vector<std::int32_t> os_kind_of_;  // by kind: its number in os_kinds_, -1 not yet known
  KindStateKey os_key_;
  // The line-state key's kind: the state's, or for an OS part its OS profile's (high bit set).
  std::uint32_t line_kind_ = 0;
  std::unordered_map<KindStateKey, OsPart, KindStateHash> os_parts_;
  std::vector<std::pair<std::uint32_t, KbIndex>> by_piece_;
  std::unordered_map<KindStateKey, ByComponent, KindStateHash> line_states_;
  const ByComponent* line_state_ = nullptr;
  const ByComponent* line_satisfied_of_ = nullptr;
  std::optional<int> revision_;
};

void Fleet::build_profiles(FleetResult& out, int as_of_day, unsigned threads) const {
  const std::size_t first = out.profiles_.size(), kinds = kinds_.size();
  out.as_of_day_ = as_of_day;
  if (first == kinds) return;
  out.profiles_.resize(kinds);
  out.base_.resize(kinds);
  out.base_missing_.resize(kinds, 0);
  std::atomic<std::size_t> next{first};
  // The answers with nothing satisfied, by component fingerprint: kinds that differ only in
  // their software share their OS's.
  std::mutex shared_mutex;
  std::map<std::pair<std::uint64_t, std::uint64_t>, ComponentResult> shared;
  run_on(threads, [&](unsigned) {
    Scratch scratch(*catalog_);
    KbMarks none(catalog_->kbs().size());
    for (std::size_t k; (k = next.fetch_add(1)) < kinds;) {
      ProfileKey key = kinds_[k];
      key.as_of_day = as_of_day;
      auto profile = std::make_shared<const Profile>(Profile::build(*catalog_, std::move(key)));
      std::vector<ComponentResult> base;
      for (std::uint32_t c = 0; c < profile->component_count(); ++c) {
        const auto fingerprint = profile->component_fingerprint(c);
        {
          std::lock_guard lock(shared_mutex);
          if (auto it = shared.find(fingerprint); it != shared.end()) base.push_back(it->second);
        }
        if (base.size() == c) {
          base.push_back(profile->evaluate_component(c, none, scratch, false));
          std::lock_guard lock(shared_mutex);
          shared.try_emplace(fingerprint, base.back());
        }
        out.base_missing_[k] += base.back().picks.size();
      }
      out.profiles_[k] = std::move(profile);
      out.base_[k] = std::make_shared<const std::vector<ComponentResult>>(std::move(base));
    }
  });
}

std::vector<StateKey> Fleet::state_keys(unsigned threads) const {
  const std::size_t count = devices_.size();
  std::vector<StateKey> keys(count);
  std::atomic<std::size_t> next{0};
  constexpr std::size_t kChunk = 4096;
  run_on(threads, [&](unsigned) {
    for (std::size_t begin; (begin = next.fetch_add(kChunk)) < count;) {
      for (std::size_t d = begin; d < std::min(count, begin + kChunk); ++d) {
        const auto revision = static_cast<std::uint32_t>(devices_[d].revision);
        std::uint64_t a = mix(devices_[d].kind, revision);
        std::uint64_t b = split_mix(split_mix(0x5bd1e995u ^ devices_[d].kind) ^ revision);
        for (KbIndex kb : installed_of(d)) {
          a = mix(a, kb.value());
          b = split_mix(b ^ kb.value());
        }
        keys[d] = {a, b};
      }
    }
  });
  return keys;
}

bool Fleet::same_state(std::size_t a, std::size_t b) const {
  const auto ia = installed_of(a), ib = installed_of(b);
  return devices_[a].kind == devices_[b].kind && devices_[a].revision == devices_[b].revision &&
         std::equal(ia.begin(), ia.end(), ib.begin(), ib.end());
}

std::vector<std::uint32_t> Fleet::evaluate_states(FleetResult& out, const Options& options,
                                                  unsigned threads,
                                                  const std::vector<std::uint32_t>* known) const {
  FleetResult::Block& block = *out.blocks_.back();
  // Devices in the same state (kind, revision, installed KBs) share one evaluation. Each thread
  // takes the devices whose state hash falls to it, so no two threads share a state.
  const std::size_t count = devices_.size();
  const std::vector<StateKey> keys = state_keys(threads);
  StateWork::Caches caches;
  std::optional<Renumbering> renumbering;
  if (options.reuse) renumbering.emplace(*options.reuse->previous_catalog, *catalog_);
  std::vector<std::vector<FleetResult::State>> states(threads);
  std::atomic<std::size_t> reused{0};
  std::vector<std::uint32_t> state_of_device(count, 0);
  run_on(threads, [&](unsigned t) {
    struct DeviceHash {
      const std::vector<StateKey>* keys;
      std::size_t operator()(std::uint32_t d) const { return (*keys)[d].a; }
    };
    struct DeviceEqual {
      const Fleet* fleet;
      bool operator()(std::uint32_t a, std::uint32_t b) const { return fleet->same_state(a, b); }
    };
    std::unordered_map<std::uint32_t, std::uint32_t, DeviceHash, DeviceEqual> state_of(
        1024, DeviceHash{&keys}, DeviceEqual{this});
    StateWork work(*this, out, caches, options.reuse, renumbering ? &*renumbering : nullptr);
    for (std::size_t d = 0; d < count; ++d) {
      if (t == 0 && d % 65536 == 0 && d > 0 && options.progress) options.progress(d, count);
      if (keys[d].a % threads != t) continue;
      if (known && (*known)[d] != FleetResult::kNoState) continue;
      auto [it, inserted] = state_of.try_emplace(static_cast<std::uint32_t>(d),
                                                 static_cast<std::uint32_t>(states[t].size()));
      state_of_device[d] = it->second;
      if (inserted) {
        states[t].push_back(work.evaluate(d));
        states[t].back().key = keys[d];
      }
    }
    reused += work.reused();
  });

  // One numbering of the states: thread t's come after those of threads before it.
  std::vector<std::uint32_t> offset(threads + 1, 0);
  for (unsigned t = 0; t < threads; ++t) {
    offset[t + 1] = offset[t] + static_cast<std::uint32_t>(states[t].size());
  }
  for (std::size_t d = 0; d < count; ++d) {
    if (known && (*known)[d] != FleetResult::kNoState) continue;
    state_of_device[d] += offset[keys[d].a % threads];
  }
  block.states.reserve(offset[threads]);
  for (auto& per_thread : states) {
    for (auto& s : per_thread) block.states.push_back(std::move(s));
  }
  out.component_evaluations_ +=
      caches.components.made() + caches.pieces.made() + caches.residuals.made();
  caches.components.move_into(block.results);
  caches.pieces.move_into(block.results);
  caches.residuals.move_into(block.residuals);
  if (renumbering) renumbering->move_into(block.results);
  out.reused_states_ += reused.load();
  return state_of_device;
}

FleetResult Fleet::evaluate(const Options& options) const {
  const unsigned threads = thread_count(options.threads);
  FleetResult out;
  out.catalog_ = catalog_;
  build_profiles(out, day_number(options.as_of), threads);
  for (const auto& base : out.base_) out.component_evaluations_ += base->size();
  auto block = std::make_shared<FleetResult::Block>();
  out.blocks_.push_back(block);
  out.state_of_device_ = evaluate_states(out, options, threads);

  out.adopt_last_block();
  if (options.progress) options.progress(devices_.size(), devices_.size());
  return out;
}

FleetResult Fleet::evaluate_onto(const FleetResult& previous, std::span<const std::uint32_t> origin,
                                 const Options& options) const {
  assert(previous.catalog_ == catalog_ && previous.as_of_day_ == day_number(options.as_of));
  const unsigned threads = thread_count(options.threads);
  FleetResult out;
  out.catalog_ = catalog_;
  out.profiles_ = previous.profiles_;
  out.base_ = previous.base_;
  out.base_missing_ = previous.base_missing_;
  build_profiles(out, previous.as_of_day_, threads);  // the kinds this fleet added
  for (std::size_t k = previous.profiles_.size(); k < out.base_.size(); ++k) {
    out.component_evaluations_ += out.base_[k]->size();
  }
  auto block = std::make_shared<FleetResult::Block>();
  out.blocks_ = previous.blocks_;
  out.blocks_.push_back(block);
  // A device in a state of previous's (on the same catalog: the same answer) takes it.
  const std::vector<StateKey> keys = state_keys(threads);
  std::vector<std::uint32_t> known(devices_.size(), FleetResult::kNoState);
  for (std::size_t d = 0; d < devices_.size(); ++d) {
    for (auto b = previous.blocks_.rbegin(); b != previous.blocks_.rend(); ++b) {
      if (auto it = (*b)->numbers.find(keys[d]); it != (*b)->numbers.end()) {
        known[d] = it->second;
        break;
      }
    }
  }
  Options batch;
  batch.threads = threads;
  const std::vector<std::uint32_t> batch_state = evaluate_states(out, batch, threads, &known);
  out.states_.reserve(previous.states_.size() + block->states.size());
  out.states_.insert(out.states_.end(), previous.states_.begin(), previous.states_.end());
  out.adopt_last_block();
  if (block->states.empty()) out.blocks_.pop_back();  // a batch of states the fleet held
  const auto offset = static_cast<std::uint32_t>(previous.states_.size());
  out.carried_states_ = offset;
  out.previous_states_ = offset;
  out.state_of_device_.resize(origin.size());
  std::vector<char> held(out.states_.size(), 0);
  std::size_t live = 0;
  for (std::size_t d = 0; d < origin.size(); ++d) {
    const std::uint32_t o = origin[d];
    std::uint32_t s = 0;
    if ((o & kFromBatch) == 0) {
      s = previous.state_of_device_[o];
    } else if (const std::uint32_t b = o & ~kFromBatch; known[b] != FleetResult::kNoState) {
      s = known[b];
    } else {
      s = offset + batch_state[b];
    }
    out.state_of_device_[d] = s;
    if (!held[s]) {
      held[s] = 1;
      ++live;
    }
  }
  // States no device holds (those of devices written or removed since) are kept while they are
  // fewer than those held, so that a write costs its batch; then dropped all at once (a write
  // in so many costs the fleet's states once: a copy, never an evaluation). So are the blocks
  // once there are many: a batch's device is looked for in each.
  constexpr std::size_t kMaxBlocks = 32;
  if (out.states_.size() - live > live || out.blocks_.size() > kMaxBlocks) out.compact();
  return out;
}

void FleetResult::compact() {
  constexpr std::uint32_t kNone = kNoState;
  auto block = std::make_shared<Block>();
  std::vector<std::uint32_t>& renumbered = renumbered_;
  renumbered.assign(states_.size(), kNone);
  std::unordered_map<const ComponentResult*, const ComponentResult*> copied;
  for (std::uint32_t& s : state_of_device_) {
    std::uint32_t& now = renumbered[s];
    if (now == kNone) {
      now = static_cast<std::uint32_t>(block->states.size());
      State state = *states_[s];
      for (const ComponentResult*& piece : state.pieces) {
        auto [it, inserted] = copied.try_emplace(piece, nullptr);
        if (inserted) {
          block->results.push_back(std::make_unique<ComponentResult>(*piece));
          it->second = block->results.back().get();
        }
        piece = it->second;
      }
      block->states.push_back(std::move(state));
    }
    s = now;
  }
  states_.clear();
  blocks_.assign(1, std::move(block));
  adopt_last_block();
  carried_states_ = 0;
}

void FleetResult::adopt_last_block() {
  Block& block = *blocks_.back();
  for (const State& s : block.states) {
    block.numbers.try_emplace(s.key, static_cast<std::uint32_t>(states_.size()));
    states_.push_back(&s);
  }
}

bool FleetResult::state_has_open_cve(std::uint32_t state, CveIndex cve) const {
  for (const ComponentResult* r : state_results(state)) {
    for (const Pick& pick : r->picks) {
      for (std::uint32_t pair : pick.pairs) {
        if (r->open[pair].cve == cve) return true;
      }
    }
  }
  return false;
}

std::size_t FleetResult::reused_devices() const {
  return static_cast<std::size_t>(
      std::count_if(state_of_device_.begin(), state_of_device_.end(),
                    [&](std::uint32_t s) { return states_[s]->reused; }));
}

std::size_t FleetResult::missing_count(std::uint32_t device) const {
  return states_[state_of_device_[device]]->missing;
}

std::optional<int> FleetResult::revision(std::uint32_t device) const {
  return states_[state_of_device_[device]]->revision;
}

const std::vector<ProductIndex>& FleetResult::state_products(std::uint32_t state) const {
  return profiles_[states_[state]->kind]->products();
}

std::vector<const ComponentResult*> FleetResult::state_results(std::uint32_t state_number) const {
  const State& state = *states_[state_number];
  std::vector<const ComponentResult*> results;
  const std::vector<ComponentResult>& base = *base_[state.kind];
  for (std::uint32_t c = 0; c < base.size(); ++c) {
    if (!std::binary_search(state.replaced.begin(), state.replaced.end(), c)) {
      results.push_back(&base[c]);
    }
  }
  results.insert(results.end(), state.pieces.begin(), state.pieces.end());
  return results;
}

Evaluation FleetResult::state_evaluation(std::uint32_t state_number) const {
  const State& state = *states_[state_number];
  const Profile& profile = *profiles_[state.kind];
  Evaluation ev;
  for (ProductIndex p : profile.products()) ev.products.push_back(catalog_->products()[p].name);
  ev.revision = state.revision;
  ev.revision_inferred = state.revision_inferred;
  render_results(*catalog_, profile, state_results(state_number), false, ev);
  return ev;
}

std::vector<FleetResult::PickFacts> FleetResult::part_picks(const ComponentResult& part) {
  std::vector<PickFacts> out;
  for (const Pick& pick : part.picks) {
    PickFacts p;
    p.kb = pick.kb;
    for (std::uint32_t pair : pick.pairs) {
      p.slots.push_back(part.open[pair].slot);
      p.cves.push_back(part.open[pair].cve);
    }
    make_distinct(p.slots);
    make_distinct(p.cves);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<FleetResult::PickFacts> FleetResult::state_picks(std::uint32_t state) const {
  std::vector<PickFacts> out;
  for (const ComponentResult* r : state_results(state)) {
    for (PickFacts& p : part_picks(*r)) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace kbgap::engine
