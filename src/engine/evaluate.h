// The missing-KB engine (docs/api.md §7): pure, no I/O. Given the catalog index and one device,
// which security updates the device is missing, which open CVEs each closes, and why.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/catalog_index.h"
#include "engine/profile.h"
#include "inventory/device.h"

namespace kbgap::engine {

struct SoftwareMatches;  // engine/software.h

// The rule that decides "missing". kbgap's own uses every signal; the two others are the rules
// other tools use, kept for comparison on the same catalog (docs/accuracy.md).
enum class Rule {
  kKbgap,
  kSupersedenceOnly,  // WES-NG: a KB is missing unless it or a KB superseding it is installed
  kBuildOnly,         // Fleet: a KB is missing when the device's build is below its fixed build
};

struct EvaluateOptions {
  std::string as_of;  // "YYYY-MM-DD": only KBs released by then count; "" for all
  bool explain = false;
  Rule rule = Rule::kKbgap;
};

struct MissingKb {
  KbNumber kb = 0;
  std::string name;          // title of the document that released it
  std::string release_date;  // YYYY-MM-DD
  std::string url;
  std::vector<std::string> products_names;  // snake names of the device's products it fixes
  std::vector<std::string> cves;            // the open CVEs it closes, sorted
  std::vector<std::string> explanation;     // filled with EvaluateOptions::explain
};

// How one installed program was judged (with EvaluateOptions::explain).
struct SoftwareReport {
  std::string name, version;          // as the inventory lists it
  std::vector<std::string> products;  // the catalog products it runs as
  std::string reason;                 // why it matched, or why not
  bool matched = false;               // false: no catalog product could be named for it
};

struct Evaluation {
  std::vector<MissingKb> missing;      // newest first
  std::vector<std::string> open_cves;  // distinct, sorted
  std::vector<std::string> products;   // the catalog products the device runs
  std::optional<int> revision;         // the device's revision (UBR), given or inferred
  bool revision_inferred = false;
  std::vector<std::string> notes;  // what limited the answer (unknown OS, ...)
  // With EvaluateOptions::explain: each installed program, matched first, in inventory order.
  std::vector<SoftwareReport> software;
};

// A missing KB's row without products or CVEs: its number, title, release date and URL.
MissingKb missing_kb(const CatalogIndex& catalog, KbIndex kb);
// The order of missing KBs: the newest release first, then the higher KB number.
bool newest_first(const MissingKb& a, const MissingKb& b);

// A release newer than kbgap's table of Windows builds, recognized by the catalog: the OS
// products whose fixed builds are of the device's major.minor.build (its architecture, client
// or server, Server Core or not).
std::vector<ProductIndex> products_of_release(const CatalogIndex& catalog,
                                              const inventory::Device& device);
// Names the release of a device kbgap's table does not know (os_family and version, from the
// catalog's product name: "Windows 11", "26H1"). False when the catalog does not know the build
// either.
bool learn_release(const CatalogIndex& catalog, inventory::Device& device);

// The catalog products a device runs: its OS, the components that ship in it, and the products
// its installed software matches (engine/software.h).
std::vector<ProductIndex> device_products(const CatalogIndex& catalog,
                                          const inventory::Device& device);

// What decides which fixes apply to the device (its products, servicing line, enrolment).
ProfileKey profile_key(const CatalogIndex& catalog, const inventory::Device& device, int as_of_day);
// The product slots whose rollup line the device follows on the Security Only path
// (ProfileKey::security_only_path).
// `installed`: the device's installed KBs as catalog indices (installed_indices).
std::uint64_t security_only_path(const CatalogIndex& catalog,
                                 std::span<const ProductIndex> products,
                                 std::span<const KbIndex> installed);
// The device's installed_indices() and profile_key() at once (its software matched once, or
// given: match_software()'s answer for the device, with or without its reasons).
std::pair<std::vector<KbIndex>, ProfileKey> installed_and_key(
    const CatalogIndex& catalog, const inventory::Device& device, int as_of_day,
    const SoftwareMatches* software = nullptr);
// The device's installed KBs that the catalog knows, as catalog indices, sorted, with those its
// software's versions have reached (engine/software.h).
std::vector<KbIndex> installed_indices(const CatalogIndex& catalog,
                                       const inventory::Device& device);

Evaluation evaluate(const CatalogIndex& catalog, const inventory::Device& device,
                    const EvaluateOptions& options);

// The missing KBs and open CVEs of a device from its profile's component results (one per
// component, in order), as evaluate() reports them.
void render_results(const CatalogIndex& catalog, const Profile& profile,
                    std::span<const ComponentResult* const> results, bool explain, Evaluation& ev);

}  // namespace kbgap::engine
