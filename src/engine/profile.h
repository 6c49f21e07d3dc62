// A device profile: everything the engine derives from what a device runs, before looking at what
// it has installed. Devices that run the same products on the same servicing line (with the same
// hotpatch enrolment and as-of date) share one, so a fleet pays for it once per kind of device.
//
// A profile splits the device's fixes into components: fixes that can change one another's
// outcome, because they fix the same CVE of a product, ride the same servicing line, or one
// replaces the other. The answer for a component depends only on which of its KBs the device has
// satisfied, so a fleet evaluates each component once per distinct state (docs/engine.md).
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "engine/catalog_index.h"

namespace kbgap::engine {

// What decides which fixes apply to a device and how fixed builds compare.
struct ProfileKey {
  std::vector<ProductIndex> products;    // the OS first, then its components
  int major = 0, minor = 0, family = 0;  // family: servicing_family(build)
  bool hotpatch_enrolled = false;
  int as_of_day = 0;  // 20200331 for --as-of 2020-03-31; 0: no limit
  // The product slots (bit s: products[s]) whose rollup line the device follows on the Security
  // Only path: its newest installed update of the line is a Security Only one. Their rollups
  // are then not what it installs (docs/engine.md, "Servicing models").
  std::uint64_t security_only_path = 0;
  bool operator==(const ProfileKey&) const = default;
};
std::size_t hash_value(const ProfileKey& key);

// A KB Microsoft withdrew from Windows Update, WSUS and the Update Catalog after release.
bool withdrawn(KbNumber kb);
// Does the fix count for devices of this key? Servicing stack and setup dynamic updates never
// (a prerequisite and an update of installation media, not fixes of an installed system), nor a
// withdrawn KB; hotpatches only when enrolled; with an as-of date only KBs released by then.
bool applicable(const ProductFix& fix, const CatalogIndex& catalog, const ProfileKey& key);

// A set of one kind of catalog index, cleared in O(1) by bumping a stamp.
template <typename I>
class Marks {
 public:
  explicit Marks(std::size_t size = 0) : stamp_(size, 0) {}
  void clear() {
    if (++round_ == 0) {  // the stamps wrapped: start again from a clean table
      stamp_.assign(stamp_.size(), 0);
      round_ = 1;
    }
  }
  bool test(I i) const { return stamp_[i] == round_; }
  bool insert(I i) {  // true when newly inserted
    if (stamp_[i] == round_) return false;
    stamp_[i] = round_;
    return true;
  }

 private:
  IndexedVector<I, std::uint32_t> stamp_;
  std::uint32_t round_ = 1;
};
using KbMarks = Marks<KbIndex>;

// An open pair: a product the device runs (by its place in ProfileKey::products) and one of its
// CVEs that no satisfied KB fixes.
struct OpenPair {
  std::uint32_t slot = 0;
  CveIndex cve;
};

// A KB the device should install, and the open pairs it closes.
struct Pick {
  KbIndex kb;
  std::vector<std::uint32_t> pairs;  // into ComponentResult::open, ascending
  std::vector<char> direct;  // with explain: 1 where the KB fixes the pair itself, 0 by replacing
};

struct ComponentResult {
  std::vector<OpenPair> open;
  std::vector<Pick> picks;
};

// Reusable working memory of component evaluations (catalog-sized arrays, reset by stamps).
class Scratch {
 public:
  explicit Scratch(const CatalogIndex& catalog);

 private:
  friend class Profile;
  KbMarks candidate, covering;
  KbMarks security_only, later_in_month, fallback;  // candidates' ranks (CandidateRank)
  // A KB's number among the covering candidates.
  IndexedVector<KbIndex, std::int32_t> local_of_kb;
  // By CVE; reset by bumping `round`.
  IndexedVector<CveIndex, std::uint32_t> cve_stamp, closed_stamp;
  IndexedVector<CveIndex, std::int32_t> pair_of_cve;
  std::uint32_t round = 0;
};

// A component split further under a base of satisfied KBs (a device's servicing-line state):
// the fixes the base leaves open fall into independent pieces, so KBs satisfied beyond the base
// change only the pieces they belong to. Valid for KBs that do not move a line (moves_lines).
struct Residual {
  std::vector<int> reached;                        // line positions reached, by owner slot
  std::vector<std::vector<std::uint32_t>> pieces;  // fix numbers
  std::vector<std::pair<KbIndex, std::uint32_t>> piece_of_kb;  // (open KB, piece), by KB
  std::vector<ComponentResult> base;                           // each piece's answer under the base
};

class Profile {
 public:
  static constexpr KbIndex kNoKb{std::numeric_limits<std::uint32_t>::max()};
  static Profile build(const CatalogIndex& catalog, ProfileKey key);

  const ProfileKey& key() const { return key_; }
  const std::vector<ProductIndex>& products() const { return key_.products; }
  std::uint32_t component_count() const { return static_cast<std::uint32_t>(components_.size()); }
  // Are the fixes split alike, component for component (fixes numbered in the same order)? Then
  // a component's answer on one profile is the same component's on the other.
  bool same_components(const Profile& other) const {
    return fixes_.size() == other.fixes_.size() && components_ == other.components_;
  }
  // What a component's answers depend on (its fixes, their places on lines, what replaces
  // them), as two independent hashes: components of two profiles with the same fingerprint
  // answer alike for the same satisfied KBs, so a fleet shares their answers across kinds of
  // device (an OS's components, whatever software runs beside it).
  std::pair<std::uint64_t, std::uint64_t> component_fingerprint(std::uint32_t c) const {
    return fingerprints_[c];
  }
  // The same for a Residual of the component, which also holds the profile's fix numbers.
  std::pair<std::uint64_t, std::uint64_t> residual_fingerprint(std::uint32_t c) const {
    return residual_fingerprints_[c];
  }
  // The component whose outcome the satisfaction of `kb` can change; -1 when none.
  std::int32_t component_of(KbIndex kb) const { return component_of_kb_[kb]; }
  // Software beside the OS (Office, SQL Server, Exchange: the products after the OS and its
  // components): the components from this number on hold only software products' fixes, those
  // before it none. component_count() when the profile runs no software, or its fixes are not
  // split so (then a fleet evaluates the device whole).
  std::uint32_t software_components_from() const { return software_from_; }
  // What the software components' answers depend on: two profiles with the same one number
  // their software components alike from software_components_from() on, and answer them alike
  // for the same satisfied KBs.
  std::pair<std::uint64_t, std::uint64_t> software_fingerprint() const {
    return software_fingerprint_;
  }
  // Is `kb` an update on one of the device's servicing lines?
  bool on_a_device_line(KbIndex kb) const {
    return chain_place_begin_[kb.value()] != chain_place_begin_[kb.value() + 1];
  }
  // Which part an installed KB belongs to: the software's when it or what it supersedes is one
  // of the software components' KBs, and no more than that; kBoth when it also reaches the OS's
  // components or servicing lines (the device is then evaluated whole); else the OS's.
  enum class Side : char { kOs, kSoftware, kBoth };
  Side side_of(KbIndex kb) const {
    if (software_bits_.empty()) return Side::kOs;
    const std::uint64_t bit = std::uint64_t{1} << (kb.value() % 64);
    if ((software_bits_[kb.value() / 64] & bit) == 0) return Side::kOs;
    return (both_bits_[kb.value() / 64] & bit) != 0 ? Side::kBoth : Side::kSoftware;
  }
  // The first product slot of the software (key().products.size() when there is none).
  std::uint32_t software_slots_from() const { return software_slots_from_; }

  // The device's revision as its installed cumulative updates tell it (their fixed builds on its
  // servicing line); nullopt when none does. `installed`: catalog KB indices, sorted.
  std::optional<int> infer_revision(std::span<const KbIndex> installed) const;
  // The satisfied KBs: the installed ones, the cumulative updates the revision has reached, and
  // what they contain, transitively: what they supersede, and what the updates before them on
  // the device's servicing lines supersede (those updates themselves, and what a line carries,
  // are satisfied fix by fix through the line's reached position). The mirror of what the
  // engine reports: installing a reported KB satisfies every fix it was reported to close.
  // With `list`, they are also appended to it.
  void satisfy(std::span<const KbIndex> installed, std::optional<int> revision, KbMarks& satisfied,
               std::vector<KbIndex>* list = nullptr) const;
  // The open pairs of one component and the smallest set of KBs that closes them.
  ComponentResult evaluate_component(std::uint32_t component, const KbMarks& satisfied,
                                     Scratch& scratch, bool explain) const;

  // Can satisfying `kb` move a servicing line's reached position (is it a cumulative update)?
  bool moves_lines(KbIndex kb) const { return moves_lines_[kb] != 0; }
  Residual split_component(std::uint32_t component, const KbMarks& base, Scratch& scratch) const;
  // One piece under `satisfied`: the residual's base plus KBs that do not move lines.
  ComponentResult evaluate_piece(const Residual& residual, std::uint32_t piece,
                                 const KbMarks& satisfied, Scratch& scratch, bool explain) const;

 private:
  struct Fix {
    const ProductFix* fix = nullptr;
    std::uint32_t slot = 0;
    bool applicable = false;
    // Reported only for pairs nothing else closes: a fixed build of another release, a rollup
    // of a line the device follows on the Security Only path, or on the rollup path a Security
    // Only or IE cumulative update the rollups contain.
    bool fallback = false;
    // Its place on the lines whose cumulative updates carry the product's fixes (its own and its
    // host's): the owner's slot and the position (on the chain, or the first update that carries
    // it), -1 when not on that line.
    std::int32_t line_owner[2] = {-1, -1};
    std::int32_t line_position[2] = {-1, -1};
    bool line_carried[2] = {false, false};
    // For a Monthly Rollup's fix of an OS: the Security Only update of the same month, which
    // holds the month's security fixes of the OS too (not Internet Explorer's), so satisfies and
    // replaces this fix for the device.
    KbIndex security_only_twin = kNoKb;
    std::uint32_t replacers_begin = 0, replacers_end = 0;  // into replacers_
    // Its CVEs that another applicable fix of the product also fixes: the only ones whose pairs
    // its satisfaction can close for the others.
    std::uint32_t shared_begin = 0, shared_end = 0;  // into shared_cves_
  };
  std::vector<int> reached(std::span<const std::uint32_t> members, const KbMarks& satisfied) const;
  // Sets software_from_ and software_fingerprint_ (build()'s last step).
  void split_software(const CatalogIndex& catalog);
  static bool fix_satisfied(const Fix& fx, const KbMarks& satisfied, std::span<const int> reached);
  ComponentResult evaluate_fixes(std::span<const std::uint32_t> members,
                                 std::span<const int> reached, const KbMarks& satisfied,
                                 Scratch& scratch, bool explain) const;

  const CatalogIndex* catalog_ = nullptr;
  ProfileKey key_;
  IndexedVector<KbIndex, char> moves_lines_;
  std::vector<Fix> fixes_;
  std::vector<KbIndex> replacers_;  // per fix: the KBs that replace it on its product, transitively
  std::vector<CveIndex> shared_cves_;
  std::vector<std::vector<std::uint32_t>> components_;  // fix numbers, in product then KB order
  std::vector<std::pair<std::uint64_t, std::uint64_t>> fingerprints_;  // by component
  std::vector<std::pair<std::uint64_t, std::uint64_t>> residual_fingerprints_;
  IndexedVector<KbIndex, std::int32_t> component_of_kb_;
  std::uint32_t software_from_ = 0;
  std::uint32_t software_slots_from_ = 0;
  // By KB, a bit each: the software's (side_of), and of those, both parts'.
  std::vector<std::uint64_t> software_bits_, both_bits_;
  std::pair<std::uint64_t, std::uint64_t> software_fingerprint_{0, 0};
  std::vector<std::pair<int, KbIndex>> reach_;           // (revision that reaches it, KB), sorted
  std::vector<std::pair<KbIndex, int>> revision_of_kb_;  // installed OS update -> revision, sorted
  // The device's lines' chains: each update's place (by line, numbered locally), and per line
  // and place the KBs off the chain its updates up to that place supersede (into extras_).
  struct ChainPlace {
    KbIndex kb;
    std::uint32_t line = 0, position = 0;
    auto operator<=>(const ChainPlace&) const = default;
  };
  std::vector<ChainPlace> chain_place_;           // sorted by KB
  std::vector<std::uint32_t> chain_place_begin_;  // KB -> into chain_place_ (size KBs + 1)
  // By device line: [p] is where the extras of place p start (size: the chain's + 1; the
  // extras of places before p end there).
  std::vector<std::vector<std::uint32_t>> extras_begin_;
  std::vector<KbIndex> extras_;
};

}  // namespace kbgap::engine
