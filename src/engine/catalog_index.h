// The catalog as the engine reads it: products, KBs and CVEs numbered densely, each product's
// fixes, published supersedence, and the servicing lines of cumulative updates.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "engine/dense_index.h"
#include "store/catalog_store.h"

namespace kbgap::engine {

using catalog::KbNumber;

struct Build {
  int major = 0, minor = 0, build = 0, revision = 0;
};
// "10.0.19043.1415" -> {10, 0, 19043, 1415}; anything else -> nullopt.
std::optional<Build> parse_build(std::string_view text);
// Builds that share one servicing line, and so one revision numbering (a release turned on by
// an enablement package on its predecessor): 18362/18363 (Windows 10 1903/1909), 19041-19045
// (Windows 10 2004 to 22H2), 22621/22631 (Windows 11 22H2/23H2), 26100/26200 (Windows 11
// 24H2/25H2).
int servicing_family(int build);

enum class FixKind : std::uint8_t {
  kRegular,         // Security Update, Cumulative Update, Alternate Cumulative, ...
  kMonthlyRollup,   // Windows 7/8.1/2008/2012 and their .NET: the cumulative monthly rollup
  kSecurityOnly,    // its twin: the month's security fixes only, never cumulative
  kIeCumulative,    // Internet Explorer's cumulative update on a rollup OS
  kPreviewRollup,   // an optional preview or out-of-band rollup ("Preview Rollup", "Standalone")
  kNonSecurity,     // "Update": an optional preview or out-of-band cumulative update
  kServicingStack,  // a prerequisite, not a fix: never reported
  kSetupUpdate,     // "Setup DU": updates installation media, never an installed system
  kHotpatch,        // only for hotpatch-enrolled servers and clients
};
FixKind fix_kind(std::string_view subtype);

struct DocumentInfo {
  std::string id;            // "2020-Mar"
  std::string title;         // "March 2020 Security Updates"
  std::string release_date;  // "2020-03-10"
  int day = 0;               // the same as a number, 20200310, for fast comparisons
};

// "2020-03-10" -> 20200310; 0 when it is not such a date.
int day_number(std::string_view date);

struct KbInfo {
  KbNumber kb = 0;
  std::uint32_t release_document =
      0;  // the month that released it (not a later one that mentions it)
  std::string url;
};

struct CveInfo {
  std::string id;
  std::string title;
  std::string severity;
  std::optional<double> cvss_base;
  std::string cvss_vector;         // "" when unknown
  std::string published, updated;  // ISO 8601 UTC, "" when unknown
  // MSRC's threat data: "Exploited: Yes" and "Publicly Disclosed: Yes" (unset: not stated).
  std::optional<bool> exploited, publicly_disclosed;
};

// What one KB does for one product.
struct ProductFix {
  KbIndex kb;
  FixKind kind = FixKind::kRegular;
  bool cumulative = false;  // a cumulative update of the product's servicing line
  int line_position = -1;   // its place in that line, oldest first (-1: not cumulative)
  // Its fixed builds are all of another release than the product's line (KB5042322 lists
  // Windows 11's 10.0.22000.2710 for Windows Server 2022): a data error, never reported; the
  // line's update of that month closes what it fixes.
  bool foreign = false;
  std::vector<CveIndex> cves;  // sorted
  std::vector<Build> fixed_builds;
};

// How a servicing line's updates contain one another.
enum class LineModel : std::uint8_t {
  // Windows 10/11 and Server 2016 on, their components, .NET from Windows 10 1809 on: each
  // month's cumulative update (and an out-of-band or preview one) contains all before it.
  kCumulative,
  // Windows 7, 8.1, Server 2008/2008 R2/2012/2012 R2 and their .NET Framework, from October
  // 2016: Monthly Rollups contain all before them; Security Only updates contain their month.
  kRollup,
};

struct ServicingLine {
  std::string key;  // the OS product's name, or ".NET <version> on <OS>"
  LineModel model = LineModel::kCumulative;
  std::vector<KbIndex> chain;          // its cumulative updates, oldest first
  std::vector<ProductIndex> products;  // the products it services
  // Products of other lines whose fixes it also delivers: Internet Explorer and Edge on its OS,
  // and the in-box .NET Framework of Windows 10 1507-1803 and Server 2016.
  std::vector<ProductIndex> hosted;
  // The release of its fixed builds (major, minor, servicing family), when it lists any.
  std::optional<Build> release;
};

// A KB's place on a line.
struct LinePlace {
  int position = -1;     // into ServicingLine::chain
  bool carried = false;  // not on the chain: contained in the update at `position` and later
};

enum class ProductRole { kOther, kOperatingSystem, kComponent };

struct SoftwareTable;  // software.cpp: the catalog's software families

struct ProductInfo {
  std::string id;
  std::string name;
  std::string snake_name;  // productsNames: "windows_10", "internet_explorer", ".net_framework"
  ProductRole role = ProductRole::kOther;
  std::vector<ProductFix> fixes;         // by KB index
  std::vector<ProductIndex> components;  // for an OS: "<component> on <this OS>" products
  int line = -1;                         // its servicing line (CatalogIndex::line), -1: none
  // For Internet Explorer 11 and Edge (EdgeHTML) on an OS, and the in-box .NET Framework of
  // Windows 10 1507-1803 and Server 2016: the OS product, whose cumulative updates (Windows
  // 10/11 updates, Windows 7/8.1 Monthly Rollups) carry their fixes too.
  std::optional<ProductIndex> delivered_by_host;
};

class CatalogIndex {
 public:
  static CatalogIndex build(const catalog::CatalogData& data);

  // A binary image of the index tagged with `fingerprint` (what catalog it was built from), and
  // back. The image ends with a SHA-256 of the rest. from_snapshot refuses, with nullopt, an
  // image of another fingerprint or version, or a damaged one (then `damaged` is set: a bad
  // checksum or structure); the caller then builds the index again.
  std::string snapshot(std::string_view fingerprint) const;
  static std::optional<CatalogIndex> from_snapshot(std::string_view bytes,
                                                   std::string_view fingerprint,
                                                   bool* damaged = nullptr);

  const std::vector<DocumentInfo>& documents() const { return documents_; }
  const IndexedVector<KbIndex, KbInfo>& kbs() const { return kbs_; }
  const IndexedVector<CveIndex, CveInfo>& cves() const { return cves_; }  // in the order of ids
  const IndexedVector<ProductIndex, ProductInfo>& products() const { return products_; }
  IndexRange<KbIndex> kb_indices() const { return IndexRange<KbIndex>(kbs_.size()); }
  IndexRange<CveIndex> cve_indices() const { return IndexRange<CveIndex>(cves_.size()); }
  IndexRange<ProductIndex> product_indices() const {
    return IndexRange<ProductIndex>(products_.size());
  }

  std::optional<KbIndex> find_kb(KbNumber kb) const;
  // A CVE by its id ("CVE-2020-0601"), nullopt when the catalog has none.
  std::optional<CveIndex> find_cve(std::string_view id) const;
  // Every product of that name: MSRC gave a few names two ProductIDs over the years ("Windows 11
  // version 26H1 for x64-based Systems" is 20853 and 21196).
  const std::vector<ProductIndex>& find_products_by_name(std::string_view name) const;
  // Published supersedence: the KBs `kb` replaces, and the KBs that replace it.
  const std::vector<KbIndex>& supersedes(KbIndex kb) const { return supersedes_[kb]; }
  const std::vector<KbIndex>& superseded_by(KbIndex kb) const { return superseded_by_[kb]; }
  // A servicing line: its cumulative updates, oldest first. Each replaces all before it on the
  // line's products, a link MSRC often leaves out; it holds for those products only (the same KB
  // can be in two lines, say an OS and its .NET Framework, and replace different things in each).
  const std::vector<KbIndex>& line(int line) const {
    return lines_[static_cast<std::size_t>(line)].chain;
  }
  const ServicingLine& line_info(int line) const { return lines_[static_cast<std::size_t>(line)]; }
  // The lines whose cumulative updates carry a product's fixes: its own line, then its host's
  // (ProductInfo::delivered_by_host); -1 where there is none.
  std::array<int, 2> carrier_lines(ProductIndex product) const {
    const ProductInfo& info = products_[product];
    return {info.line, info.delivered_by_host ? products_[*info.delivered_by_host].line : -1};
  }
  // Where `kb` is on a line: a cumulative update at its place, or a fix the line carries from
  // a place on (a Security Only update from its month's rollup, ...); nullopt when neither.
  std::optional<LinePlace> line_place(int line, KbIndex kb) const {
    auto it = line_places_.find(place_key(line, kb));
    if (it == line_places_.end()) return std::nullopt;
    return it->second;
  }
  // Every KB's place on every line: (line, KB, place), sorted by line then KB index.
  std::vector<std::tuple<int, KbIndex, LinePlace>> line_places() const;
  // The place of `kb` among a line's cumulative updates, -1 when it is not one.
  int line_position(int line, KbIndex kb) const {
    auto place = line_place(line, kb);
    return place && !place->carried ? place->position : -1;
  }
  // The operating-system products whose fixes list a fixed build of this major.minor.build:
  // how a release newer than kbgap's own table is recognized. Worked out at the first call
  // (thread-safe): most runs never ask, and a scan would pay for it at every start.
  std::vector<ProductIndex> products_of_build(int major, int minor, int build) const;
  // Every fixed build a KB lists, for any product: a semi-annual server's update is its client
  // twin's, and MSRC sometimes gives the build under one of the two only.
  const std::vector<Build>& kb_builds(KbIndex kb) const { return kb_builds_[kb]; }
  const std::string& release_date(KbIndex kb) const {
    return documents_[kbs_[kb].release_document].release_date;
  }
  int release_day(KbIndex kb) const { return documents_[kbs_[kb].release_document].day; }

  // The catalog's software product families (software.cpp), worked out at the first call
  // (thread-safe).
  const SoftwareTable& software_table() const;

  std::size_t line_count() const { return lines_.size(); }
  // Fixed builds set aside because a later cumulative update of the line lists a lower one.
  std::size_t distrusted_fixed_builds() const { return distrusted_fixed_builds_; }

 private:
  std::string snapshot_body(std::string_view fingerprint) const;
  static std::optional<CatalogIndex> read_snapshot_body(std::string_view bytes);
  std::vector<DocumentInfo> documents_;
  IndexedVector<KbIndex, KbInfo> kbs_;
  IndexedVector<CveIndex, CveInfo> cves_;
  IndexedVector<ProductIndex, ProductInfo> products_;
  std::unordered_map<KbNumber, KbIndex> kb_index_;
  std::unordered_map<std::string, std::vector<ProductIndex>> product_by_name_;  // by normalized
  IndexedVector<KbIndex, std::vector<KbIndex>> supersedes_, superseded_by_;
  std::vector<ServicingLine> lines_;
  std::unordered_map<std::uint64_t, LinePlace> line_places_;  // by place_key
  static constexpr std::uint64_t place_key(std::size_t line, KbIndex kb) {
    return (std::uint64_t{static_cast<std::uint32_t>(line)} << 32) | kb.value();
  }
  IndexedVector<KbIndex, std::vector<Build>> kb_builds_;
  struct BuildProducts {
    std::once_flag once;
    std::map<std::tuple<int, int, int>, std::vector<ProductIndex>> map;
  };
  // Shared by copies of the index (what it holds follows from the products, which copies share).
  mutable std::shared_ptr<BuildProducts> products_of_build_ = std::make_shared<BuildProducts>();
  std::size_t distrusted_fixed_builds_ = 0;
  struct SoftwareSlot {
    std::once_flag once;
    std::shared_ptr<const SoftwareTable> table;
  };
  mutable std::shared_ptr<SoftwareSlot> software_ = std::make_shared<SoftwareSlot>();

  // servicing.cpp: the servicing lines and what each carries (docs/engine.md).
  void build_servicing_lines();
  bool single_updates(
      const std::vector<ProductIndex>& line,
      const IndexedVector<ProductIndex, std::optional<ProductIndex>>& host_of) const;
  void index_kb_builds();
};

// Product names compare without case and with white space folded.
std::string normalize_product_name(std::string_view name);

}  // namespace kbgap::engine
