// Installed software as catalog products (docs/engine.md, "Software beyond the OS"): Office's MSI
// suites and programs (2007 to 2016, by KB), Office Click-to-Run (no fixed version published),
// SQL Server by servicing branch and Exchange Server by cumulative update (by version and KB).
// Conservative: a program becomes products only when its line, edition, bitness and branch are
// known; anything else is listed as unmatched with the reason, never guessed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/catalog_index.h"
#include "inventory/device.h"

namespace kbgap::engine {

// The reason given to a program of no product line kbgap matches (most of a device's programs;
// `kbgap scan --explain` counts them rather than listing each).
inline constexpr std::string_view kNoProductLine = "no product line of the catalog";

struct SoftwareMatch {
  std::uint32_t software = 0;          // into Device::software
  std::vector<ProductIndex> products;  // empty: unmatched, or a part judged with another entry
  // Version-based products (SQL Server, Exchange Server): the installed version their fixed
  // builds are compared with.
  std::optional<Build> version;
  std::string reason;  // why it matched, or why not (filled with `explain`)
};

struct SoftwareMatches {
  std::vector<SoftwareMatch> matched;    // in the order of Device::software
  std::vector<SoftwareMatch> unmatched;  // with `explain` only
};

// The device's programs as catalog products. Without `explain`, only what evaluation needs: the
// matched entries' products and versions, no reasons, no unmatched list.
SoftwareMatches match_software(const CatalogIndex& catalog, const inventory::Device& device,
                               bool explain);

// The KBs the device's software versions have reached: fixes of its version-based products
// whose fixed build the installed version equals or passes. Appended to `out`.
void version_reached_kbs(const CatalogIndex& catalog, const SoftwareMatches& matches,
                         std::vector<KbIndex>& out);

// The servicing branches of software whose updates contain the earlier ones (a SQL Server
// branch's GDR or CU security updates, the security updates of one Exchange cumulative update):
// (newer, older) pairs, one per consecutive pair of a branch, to add to published supersedence.
std::vector<std::pair<KbIndex, KbIndex>> branch_supersedence(const CatalogIndex& catalog);

// productsNames of software products, as Defender names them ("office_2016",
// "sql_server_2019", "exchange_server_2019"); "" for other products.
std::string software_snake_name(std::string_view product_name);

}  // namespace kbgap::engine
