// Builds the engine's index from the catalog's rows. Every decision about messy data that does
// not depend on a device is taken here, once (docs/engine.md).
#include "engine/catalog_index.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "common/distinct.h"
#include "common/text.h"
#include "engine/software.h"

namespace kbgap::engine {
namespace {

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (std::string_view p : prefixes) {
    if (s.starts_with(p)) return true;
  }
  return false;
}

// The in-box components whose fixes kbgap reports for an OS: "<component> on <OS product>".
constexpr std::string_view kComponentPrefixes[] = {
    "Internet Explorer 11 on ",
    "Microsoft Edge (EdgeHTML-based) on ",
    "Adobe Flash Player on ",
    "Microsoft .NET Framework ",
};

ProductRole role_of(std::string_view name) {
  if (name.find(" on ") != std::string_view::npos) {
    for (std::string_view p : kComponentPrefixes) {
      if (name.starts_with(p)) return ProductRole::kComponent;
    }
    return ProductRole::kOther;
  }
  if (starts_with_any(name,
                      {"Windows 10 ", "Windows 11 ", "Windows Server ", "Windows Server, version ",
                       "Windows 7 ", "Windows 8 ", "Windows 8.1 ", "Windows RT", "Windows Vista ",
                       "Microsoft Windows XP", "Microsoft Windows Server 2003"})) {
    return ProductRole::kOperatingSystem;
  }
  return ProductRole::kOther;
}

std::string snake(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' || c == '-') {
      if (!out.empty() && out.back() != '_') out.push_back('_');
    } else if (c != ',' && c != '(' && c != ')') {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

// productsNames as Defender writes them: windows_10, windows_server_2019, internet_explorer...
std::string snake_name(std::string_view name, ProductRole role) {
  if (role == ProductRole::kComponent) {
    if (name.starts_with("Internet Explorer")) return "internet_explorer";
    if (name.starts_with("Microsoft Edge")) return "edge";
    if (name.starts_with("Adobe Flash")) return "adobe_flash_player";
    if (name.starts_with("Microsoft .NET Framework")) return ".net_framework";
  }
  if (role == ProductRole::kOther) {
    if (std::string software = software_snake_name(name); !software.empty()) return software;
  }
  if (role == ProductRole::kOperatingSystem) {
    std::string_view base = name;
    for (std::string_view cut : {" Version", " version", " for ", " (", " Service Pack", ",",
                                 " Professional x64 Edition", " x64 Edition"}) {
      auto pos = base.find(cut);
      if (pos != std::string_view::npos) base = base.substr(0, pos);
    }
    if (base.starts_with("Microsoft ")) base.remove_prefix(10);
    return snake(base);
  }
  return snake(name);
}

}  // namespace

std::optional<Build> parse_build(std::string_view text) {
  int parts[4] = {0, 0, 0, 0};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 4; ++i) {
    auto [next, ec] = std::from_chars(p, end, parts[i]);
    // Windows builds and revisions have at most 5 digits; larger numbers are not builds (and
    // would overflow the family keys built from them).
    if (ec != std::errc() || next == p || parts[i] < 0 || parts[i] > 999999) return std::nullopt;
    p = next;
    if (i < 3) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
  }
  if (p != end) return std::nullopt;
  return Build{parts[0], parts[1], parts[2], parts[3]};
}

int day_number(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return 0;
  int day = 0;
  for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u}) {
    if (date[i] < '0' || date[i] > '9') return 0;
    day = day * 10 + (date[i] - '0');
  }
  return day;
}

int servicing_family(int build) {
  if (build == 18362 || build == 18363) return 18362;
  if (build >= 19041 && build <= 19045) return 19041;
  if (build == 22621 || build == 22631) return 22621;
  if (build == 26100 || build == 26200) return 26100;
  return build;
}

FixKind fix_kind(std::string_view subtype) {
  // "VIA Processors Monthly Rollup" and "VIA Processors Security Only" (ADV180002) are the same
  // KBs as the month's rollup and Security Only update.
  if (subtype.ends_with("Monthly Rollup")) return FixKind::kMonthlyRollup;
  if (subtype.ends_with("Security Only")) return FixKind::kSecurityOnly;
  if (subtype == "IE Cumulative") return FixKind::kIeCumulative;
  if (subtype == "Preview Rollup" || subtype == "Standalone") return FixKind::kPreviewRollup;
  if (subtype == "Update") return FixKind::kNonSecurity;
  if (subtype == "Servicing Stack Update") return FixKind::kServicingStack;
  if (subtype == "Setup DU") return FixKind::kSetupUpdate;
  if (subtype == "Security Hotpatch Update" || subtype == "Azure Hotpatch") {
    return FixKind::kHotpatch;
  }
  return FixKind::kRegular;
}

std::string normalize_product_name(std::string_view name) {
  return fold_name(name);
}

std::optional<CveIndex> CatalogIndex::find_cve(std::string_view id) const {
  auto it = std::lower_bound(cves_.begin(), cves_.end(), id,
                             [](const CveInfo& c, std::string_view v) { return c.id < v; });
  if (it == cves_.end() || it->id != id) return std::nullopt;
  return CveIndex{static_cast<std::uint32_t>(it - cves_.begin())};
}

std::optional<KbIndex> CatalogIndex::find_kb(KbNumber kb) const {
  auto it = kb_index_.find(kb);
  if (it == kb_index_.end()) return std::nullopt;
  return it->second;
}

const std::vector<ProductIndex>& CatalogIndex::find_products_by_name(std::string_view name) const {
  static const std::vector<ProductIndex> kNone;
  auto it = product_by_name_.find(normalize_product_name(name));
  return it == product_by_name_.end() ? kNone : it->second;
}

CatalogIndex CatalogIndex::build(const catalog::CatalogData& data) {
  CatalogIndex x;
  std::unordered_map<std::string, std::uint32_t> document_index;
  std::unordered_map<std::string, ProductIndex> product_index;
  std::unordered_map<std::string, CveIndex> cve_index;
  for (const catalog::StoredDocument& d : data.documents) {
    document_index.emplace(d.id, static_cast<std::uint32_t>(x.documents_.size()));
    x.documents_.push_back({d.id, d.title, d.initial_release.substr(0, 10),
                            day_number(std::string_view(d.initial_release).substr(0, 10))});
  }
  for (const catalog::Product& p : data.products) {
    const ProductIndex i{static_cast<std::uint32_t>(x.products_.size())};
    product_index.emplace(p.id, i);
    ProductInfo info;
    info.id = p.id;
    info.name = p.name;
    info.role = role_of(p.name);
    info.snake_name = snake_name(p.name, info.role);
    x.product_by_name_[normalize_product_name(p.name)].push_back(i);
    x.products_.push_back(std::move(info));
  }
  // CVEs in the order of their ids, so that sorting CVE indices sorts the ids.
  std::vector<const catalog::CatalogData::Cve*> cves_by_id;
  for (const catalog::CatalogData::Cve& c : data.cves) cves_by_id.push_back(&c);
  std::sort(cves_by_id.begin(), cves_by_id.end(),
            [](const auto* a, const auto* b) { return a->id < b->id; });
  for (const catalog::CatalogData::Cve* c : cves_by_id) {
    cve_index.emplace(c->id, CveIndex{static_cast<std::uint32_t>(x.cves_.size())});
    x.cves_.push_back({c->id, c->title, c->severity, c->cvss_base, c->cvss_vector, c->published,
                       c->updated, c->exploited, c->publicly_disclosed});
  }

  // KBs, and the month that released each: the document in which it fixes the most CVEs.
  // Documents are revised for years, so a KB of May 2020 also turns up in March 2018's; the
  // month of its release is the one that lists it for many CVEs (ties: the earliest).
  std::map<std::pair<KbNumber, std::uint32_t>, std::set<std::string_view>> cves_per_document;
  for (const auto& f : data.fixes) {
    auto doc = document_index.find(f.document_id);
    if (doc == document_index.end()) continue;
    cves_per_document[{f.kb, doc->second}].insert(f.cve);
    auto [it, inserted] =
        x.kb_index_.try_emplace(f.kb, KbIndex{static_cast<std::uint32_t>(x.kbs_.size())});
    if (inserted) x.kbs_.push_back({f.kb, doc->second, ""});
    KbInfo& kb = x.kbs_[it->second];
    if (kb.url.empty() || (f.url.find("catalog.update.microsoft.com") != std::string::npos &&
                           kb.url.find("catalog.update.microsoft.com") == std::string::npos)) {
      kb.url = f.url;
    }
  }
  {
    // Ties (a KB listed for one CVE in each of two months) go to the month whose KB numbers are
    // nearest: KB numbers grow with time, and each month's own KBs sit close together.
    std::unordered_map<KbNumber, int> documents_of_kb;
    for (const auto& [key, cves] : cves_per_document) ++documents_of_kb[key.first];
    std::vector<std::vector<KbNumber>> own(x.documents_.size());
    for (const auto& [key, cves] : cves_per_document) {
      if (documents_of_kb[key.first] == 1) own[key.second].push_back(key.first);
    }
    std::vector<double> median(x.documents_.size(), 0);
    for (std::size_t d = 0; d < own.size(); ++d) {
      if (own[d].empty()) continue;
      std::nth_element(own[d].begin(), own[d].begin() + own[d].size() / 2, own[d].end());
      median[d] = own[d][own[d].size() / 2];
    }
    auto distance = [&](KbNumber kb, std::uint32_t d) { return std::abs(median[d] - double(kb)); };
    std::unordered_map<KbNumber, std::size_t> best;
    for (const auto& [key, cves] : cves_per_document) {  // documents in release order per KB
      KbInfo& kb = x.kbs_[x.kb_index_.at(key.first)];
      auto [it, inserted] = best.try_emplace(key.first, cves.size());
      if (inserted || cves.size() > it->second ||
          (cves.size() == it->second &&
           distance(key.first, key.second) < distance(key.first, kb.release_document))) {
        it->second = cves.size();
        kb.release_document = key.second;
      }
    }
  }
  for (KbInfo& kb : x.kbs_) {
    if (kb.url.empty()) {
      kb.url =
          "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB" + std::to_string(kb.kb);
    }
  }

  // Each product's fixes, one per KB.
  IndexedVector<ProductIndex, std::map<KbIndex, ProductFix>> fixes(x.products_.size());
  for (const auto& f : data.fixes) {
    auto p = product_index.find(f.product_id);
    auto c = cve_index.find(f.cve);
    auto k = x.kb_index_.find(f.kb);
    if (p == product_index.end() || c == cve_index.end() || k == x.kb_index_.end()) continue;
    ProductFix& fix = fixes[p->second][k->second];
    if (fix.cves.empty()) {
      fix.kb = k->second;
      fix.kind = fix_kind(f.subtype);
    }
    fix.cves.push_back(c->second);
    std::string_view builds = f.fixed_build;
    while (!builds.empty()) {
      auto semi = builds.find(';');
      if (auto b = parse_build(builds.substr(0, semi))) fix.fixed_builds.push_back(*b);
      if (semi == std::string_view::npos) break;
      builds.remove_prefix(semi + 1);
    }
  }
  x.supersedes_.resize(x.kbs_.size());
  x.superseded_by_.resize(x.kbs_.size());
  for (const auto& [kb, older] : data.supersedes) {
    auto a = x.kb_index_.find(kb);
    auto b = x.kb_index_.find(older);
    if (a == x.kb_index_.end() || b == x.kb_index_.end() || a->second == b->second) continue;
    auto& out = x.supersedes_[a->second];
    if (std::find(out.begin(), out.end(), b->second) != out.end()) continue;
    out.push_back(b->second);
    x.superseded_by_[b->second].push_back(a->second);
  }

  for (ProductIndex p : x.product_indices()) {
    for (auto& [kb, fix] : fixes[p]) {
      make_distinct(fix.cves);
      x.products_[p].fixes.push_back(std::move(fix));
    }
  }

  // Software branches whose updates contain the earlier ones (SQL Server GDR and CU, an
  // Exchange cumulative update's security updates): MSRC links some, not all.
  for (const auto& [newer, older] : branch_supersedence(x)) {
    auto& out = x.supersedes_[newer];
    if (std::find(out.begin(), out.end(), older) != out.end()) continue;
    out.push_back(older);
    x.superseded_by_[older].push_back(newer);
  }

  x.build_servicing_lines();
  return x;
}

}  // namespace kbgap::engine
