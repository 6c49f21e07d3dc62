// Servicing lines: which of a product's KBs contain which others, following the servicing model
// Microsoft documents for each release (docs/engine.md, "Servicing models"). Built once per
// catalog, for every device.
#include <algorithm>
#include <cassert>
#include <limits>
#include <map>
#include <set>

#include "engine/catalog_index.h"

namespace kbgap::engine {
namespace {

// The release a fixed build belongs to: major, minor and servicing family. Builds below 1000
// ("10.0.0.0", "1.1.0.0") are placeholders MSRC writes for some IE updates, not Windows builds.
std::optional<Build> release_of(const Build& b) {
  if (b.build < 1000) return std::nullopt;
  return Build{b.major, b.minor, servicing_family(b.build), 0};
}

bool same_release(const Build& a, const Build& b) {
  return a.major == b.major && a.minor == b.minor && a.build == b.build;
}

// "Microsoft .NET Framework 4.6/4.6.2 on X" and "... 3.5 AND 4.6.2 on X" are one line: the
// newest version named, on one OS.
std::string line_key(const ProductInfo& product) {
  if (!product.name.starts_with("Microsoft .NET Framework ")) return product.name;
  const auto on = product.name.find(" on ");
  const std::string_view versions = std::string_view(product.name).substr(0, on);
  return ".NET " + std::string(versions.substr(versions.rfind(' ') + 1)) + " on " +
         product.name.substr(on + 4);
}

// Later in a month's order: the month's security release, then its optional preview or
// out-of-band releases.
int order_in_month(FixKind kind) {
  return kind == FixKind::kPreviewRollup || kind == FixKind::kNonSecurity ? 1 : 0;
}

// A fixed build set aside: the KB, the release it is of (family * 100 + major) and its revision.
struct DistrustedBuild {
  KbIndex kb;
  int release = 0;
  int revision = 0;
};

bool is_distrusted(const DistrustedBuild& d, const Build& b) {
  return servicing_family(b.build) * 100 + b.major == d.release && b.revision == d.revision;
}

void distrust_fixed_builds(const ServicingLine& line,
                           std::map<KbIndex, std::vector<ProductFix*>>& by_kb,
                           std::vector<DistrustedBuild>& distrusted) {
  // Fixed builds along a line only grow: one above a later update's is wrong. KB5004945 (July
  // 2021) lists 10.0.19041.1803, a revision of July 2022; trusted, it would tell a device that
  // installed it that it has a year of updates it lacks.
  std::map<int, std::vector<std::pair<std::size_t, int>>> by_family;  // family -> (pos, rev)
  for (std::size_t i = 0; i < line.chain.size(); ++i) {
    for (const ProductFix* f : by_kb[line.chain[i]]) {
      for (const Build& b : f->fixed_builds) {
        by_family[servicing_family(b.build) * 100 + b.major].emplace_back(i, b.revision);
      }
    }
  }
  for (auto& [family, entries] : by_family) {
    std::sort(entries.begin(), entries.end());
    int later_min = std::numeric_limits<int>::max();
    std::set<std::pair<std::size_t, int>> wrong;
    for (auto it = entries.rbegin(); it != entries.rend();) {
      const std::size_t pos = it->first;
      int here_min = std::numeric_limits<int>::max();
      for (; it != entries.rend() && it->first == pos; ++it) {
        if (it->second > later_min) wrong.insert(*it);
        here_min = std::min(here_min, it->second);
      }
      later_min = std::min(later_min, here_min);
    }
    for (const auto& [pos, revision] : wrong) {
      const DistrustedBuild d{line.chain[pos], family, revision};
      for (ProductFix* f : by_kb[d.kb]) {
        std::erase_if(f->fixed_builds, [&](const Build& b) { return is_distrusted(d, b); });
      }
      distrusted.push_back(d);
    }
  }
}

// Windows releases serviced by single updates before the rollups (docs/engine.md).
bool legacy_windows(std::string_view os) {
  for (std::string_view p :
       {"Windows Vista", "Windows 7 ", "Windows 8 ", "Windows 8.1 ", "Windows RT",
        "Windows Server 2003", "Windows Server 2008", "Windows Server 2012", "Microsoft Windows XP",
        "Microsoft Windows Server 2003"}) {
    if (os.starts_with(p)) return true;
  }
  return false;
}

}  // namespace

// A line of single updates: a legacy Windows release, or its .NET Framework, with no Monthly
// Rollup among its updates (Internet Explorer and Flash Player updates are cumulative).
bool CatalogIndex::single_updates(
    const std::vector<ProductIndex>& line,
    const IndexedVector<ProductIndex, std::optional<ProductIndex>>& host_of) const {
  for (ProductIndex p : line) {
    const ProductInfo& product = products_[p];
    const ProductInfo* os = &product;
    if (product.role == ProductRole::kComponent) {
      if (!host_of[p] || !product.name.starts_with("Microsoft .NET Framework")) return false;
      os = &products_[*host_of[p]];
    }
    if (!legacy_windows(os->name)) return false;
    for (const ProductFix& f : product.fixes) {
      if (f.kind == FixKind::kMonthlyRollup) return false;
    }
  }
  return true;
}

void CatalogIndex::build_servicing_lines() {
  // Components by host OS: "Internet Explorer 11 on Windows 10 Version 1909 for x64-based
  // Systems" belongs to that OS product.
  IndexedVector<ProductIndex, std::optional<ProductIndex>> host_of(products_.size());
  for (ProductIndex p : product_indices()) {
    if (products_[p].role != ProductRole::kComponent) continue;
    const std::string& name = products_[p].name;
    const auto on = name.find(" on ");
    for (ProductIndex host : find_products_by_name(std::string_view(name).substr(on + 4))) {
      products_[host].components.push_back(p);
      host_of[p] = host;
    }
  }

  // The lines: one per OS product, per in-box component on it, and per .NET version on an OS.
  // Hosts first: a component's own line leaves out what its host's line delivers.
  std::map<std::string, std::vector<ProductIndex>> members;
  for (ProductIndex p : product_indices()) {
    if (products_[p].role != ProductRole::kOther) members[line_key(products_[p])].push_back(p);
  }
  std::vector<std::pair<std::string, std::vector<ProductIndex>>> ordered;
  std::vector<DistrustedBuild> distrusted;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& [key, list] : members) {
      const bool os = products_[list.front()].role == ProductRole::kOperatingSystem;
      if (os == (pass == 0)) ordered.emplace_back(key, list);
    }
  }

  for (auto& [key, list] : ordered) {
    ServicingLine line;
    line.key = key;
    line.products = list;

    // A component whose fixes ride its host OS's updates: Internet Explorer and Edge always
    // (Windows 10/11 updates and Windows 7/8.1 Monthly Rollups include them), and a .NET
    // Framework when most of the KBs that fix it are its OS's cumulative updates (the in-box
    // .NET Framework of Windows 10 1507-1803 and Server 2016; elsewhere .NET has its own).
    std::set<KbIndex> host_kbs;
    for (ProductIndex p : list) {
      if (!host_of[p]) continue;
      const ProductInfo& host = products_[*host_of[p]];
      if (host.line < 0) continue;
      const std::vector<KbIndex>& chain = lines_[static_cast<std::size_t>(host.line)].chain;
      const std::set<KbIndex> chain_kbs(chain.begin(), chain.end());
      const std::string& name = products_[p].name;
      bool hosted = name.starts_with("Internet Explorer") || name.starts_with("Microsoft Edge");
      if (!hosted) {
        std::size_t on_chain = 0, counted = 0;
        for (const ProductFix& f : products_[p].fixes) {
          if (f.kind != FixKind::kRegular) continue;
          ++counted;
          on_chain += chain_kbs.contains(f.kb) ? 1 : 0;
        }
        hosted = counted > 0 && on_chain * 2 > counted;
      }
      if (!hosted) continue;
      products_[p].delivered_by_host = host_of[p];
      lines_[static_cast<std::size_t>(host.line)].hosted.push_back(p);
      host_kbs.insert(chain.begin(), chain.end());
    }

    // A rollup line: Monthly Rollups and Security Only twins of its own, month after month (a
    // single KB labelled "Monthly Rollup", as February 2023's .NET update KB5022728 is for
    // Windows 10 21H2, does not make one).
    {
      std::set<KbIndex> rollups, security_only;
      for (ProductIndex p : list) {
        for (const ProductFix& f : products_[p].fixes) {
          if (host_kbs.contains(f.kb)) continue;
          if (f.kind == FixKind::kMonthlyRollup) rollups.insert(f.kb);
          if (f.kind == FixKind::kSecurityOnly) security_only.insert(f.kb);
        }
      }
      constexpr std::size_t kMonths = 3;
      if (rollups.size() >= kMonths && security_only.size() >= kMonths) {
        line.model = LineModel::kRollup;
      }
    }

    // The KBs that can be the line's cumulative updates, each with its fixes on the line.
    // Windows before Windows 10 had single updates only, outside the rollup lines: each stands
    // alone (published supersedence still links them): XP, Server 2003, Vista, Windows 8, the
    // releases before their first rollup, and the .NET Framework on them.
    std::map<KbIndex, std::vector<ProductFix*>> by_kb;
    const bool singles = line.model != LineModel::kRollup && single_updates(list, host_of);
    for (ProductIndex p : singles ? std::vector<ProductIndex>{} : list) {
      for (ProductFix& fix : products_[p].fixes) {
        if (host_kbs.contains(fix.kb)) continue;  // the host's line has it
        const bool eligible =
            line.model == LineModel::kRollup
                ? fix.kind == FixKind::kMonthlyRollup || fix.kind == FixKind::kPreviewRollup
                : fix.kind == FixKind::kRegular || fix.kind == FixKind::kNonSecurity ||
                      fix.kind == FixKind::kMonthlyRollup || fix.kind == FixKind::kIeCumulative;
        if (eligible) by_kb[fix.kb].push_back(&fix);
      }
    }
    auto cve_count = [&](KbIndex kb) {
      std::size_t n = 0;
      for (const ProductFix* f : by_kb[kb]) n = std::max(n, f->cves.size());
      return n;
    };
    auto kind_of = [&](KbIndex kb) { return by_kb[kb].front()->kind; };
    // Of the KBs a month released for the line, its security release: the one that fixes the
    // most CVEs (of a rollup line, the Monthly Rollup that does).
    std::map<std::uint32_t, KbIndex> monthly;  // release document -> cumulative update
    for (const auto& [kb, fixes] : by_kb) {
      if (order_in_month(kind_of(kb)) != 0) continue;
      auto [it, inserted] = monthly.try_emplace(kbs_[kb].release_document, kb);
      if (!inserted && cve_count(kb) > cve_count(it->second)) it->second = kb;
    }
    std::set<KbIndex> cumulative;
    for (const auto& [month, kb] : monthly) cumulative.insert(kb);
    int first_day = std::numeric_limits<int>::max();
    for (KbIndex kb : cumulative) first_day = std::min(first_day, release_day(kb));
    // Optional preview and out-of-band releases are cumulative too (KB4487029, February 19,
    // 2019, after that month's KB4487017 on Windows 10 1803); so is a KB that supersedes a
    // cumulative update (the out-of-band KB4551762 of March 2020 supersedes KB4540673).
    for (const auto& [kb, fixes] : by_kb) {
      if (order_in_month(kind_of(kb)) == 1 && release_day(kb) >= first_day) cumulative.insert(kb);
    }
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& [kb, fixes] : by_kb) {
        if (cumulative.contains(kb)) continue;
        for (KbIndex older : supersedes_[kb]) {
          if (cumulative.contains(older)) {
            cumulative.insert(kb);
            grew = true;
            break;
          }
        }
      }
    }
    line.chain.assign(cumulative.begin(), cumulative.end());
    std::sort(line.chain.begin(), line.chain.end(), [&](KbIndex a, KbIndex b) {
      const int da = release_day(a), db = release_day(b);
      if (da != db) return da < db;
      const int oa = order_in_month(kind_of(a)), ob = order_in_month(kind_of(b));
      return oa != ob ? oa < ob : kbs_[a].kb < kbs_[b].kb;
    });

    // Invariant: a chain is in release order, and each KB is on it once.
    assert(std::is_sorted(line.chain.begin(), line.chain.end(),
                          [&](KbIndex a, KbIndex b) { return release_day(a) < release_day(b); }));
    assert(std::set<KbIndex>(line.chain.begin(), line.chain.end()).size() == line.chain.size());
    const int index = static_cast<int>(lines_.size());
    for (ProductIndex p : list) products_[p].line = line.chain.empty() ? -1 : index;
    for (std::size_t i = 0; i < line.chain.size(); ++i) {
      for (ProductFix* f : by_kb[line.chain[i]]) {
        f->cumulative = true;
        f->line_position = static_cast<int>(i);
      }
    }
    distrust_fixed_builds(line, by_kb, distrusted);

    // The release of the line's fixed builds: the one most of its updates list.
    std::map<std::tuple<int, int, int>, std::size_t> releases;
    for (KbIndex kb : line.chain) {
      for (const ProductFix* f : by_kb[kb]) {
        for (const Build& b : f->fixed_builds) {
          if (auto r = release_of(b)) ++releases[{r->major, r->minor, r->build}];
        }
      }
    }
    if (!releases.empty()) {
      auto most =
          std::max_element(releases.begin(), releases.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      const auto [major, minor, family] = most->first;
      line.release = Build{major, minor, family, 0};
    }
    lines_.push_back(std::move(line));
  }

  // A build wrong on one line is wrong wherever the KB lists it (the KB is one package).
  distrusted_fixed_builds_ = distrusted.size();
  for (const DistrustedBuild& d : distrusted) {
    for (ProductInfo& p : products_) {
      auto f = std::lower_bound(p.fixes.begin(), p.fixes.end(), d.kb,
                                [](const ProductFix& fix, KbIndex kb) { return fix.kb < kb; });
      if (f == p.fixes.end() || f->kb != d.kb) continue;
      std::erase_if(f->fixed_builds, [&](const Build& b) { return is_distrusted(d, b); });
    }
  }

  // The CVEs another rollup release fixes in its Monthly Rollups: a single update of a rollup
  // line for such a CVE is that release's out-of-band fix (KB4578013, August 2020, Windows 8.1
  // and Server 2012 R2, for what Windows 7's and Server 2012's rollups of that month fixed),
  // which its next Monthly Rollup carries. A CVE that rollup releases fix only with single
  // updates (Secure Boot DBX, SHA-2 support) marks a standalone update.
  IndexedVector<CveIndex, char> fixed_by_rollups(cves_.size(), 0);
  for (const ProductInfo& p : products_) {
    for (const ProductFix& f : p.fixes) {
      if (!f.cumulative || f.kind != FixKind::kMonthlyRollup) continue;
      for (CveIndex c : f.cves) fixed_by_rollups[c] = 1;
    }
  }

  // What each line carries besides its chain (docs/engine.md, "Servicing models").
  line_places_.clear();
  for (std::size_t l = 0; l < lines_.size(); ++l) {
    ServicingLine& line = lines_[l];
    for (std::size_t i = 0; i < line.chain.size(); ++i) {
      line_places_.emplace(place_key(l, line.chain[i]), LinePlace{static_cast<int>(i), false});
    }
    if (line.chain.empty()) continue;
    // The first update of the chain released on or after `day` (after, with `strictly`).
    auto first_from = [&](int day, bool strictly) -> int {
      for (std::size_t i = 0; i < line.chain.size(); ++i) {
        const int d = release_day(line.chain[i]);
        if (strictly ? d > day : d >= day) return static_cast<int>(i);
      }
      return -1;
    };
    const int first_day = release_day(line.chain.front());
    // Does `kb` fix one of `fix`'s CVEs for product `p`?
    auto shares_cve = [&](KbIndex kb, ProductIndex p, const ProductFix& fix) {
      auto it = std::lower_bound(products_[p].fixes.begin(), products_[p].fixes.end(), kb,
                                 [](const ProductFix& f, KbIndex k) { return f.kb < k; });
      if (it == products_[p].fixes.end() || it->kb != kb) return false;
      return std::any_of(fix.cves.begin(), fix.cves.end(), [&](CveIndex c) {
        return std::binary_search(it->cves.begin(), it->cves.end(), c);
      });
    };
    std::vector<ProductIndex> carriers = line.products;
    carriers.insert(carriers.end(), line.hosted.begin(), line.hosted.end());
    for (ProductIndex p : carriers) {
      const bool os = products_[p].role == ProductRole::kOperatingSystem;
      for (ProductFix& f : products_[p].fixes) {
        if (line_places_.contains(place_key(l, f.kb))) {
          auto& place = line_places_[place_key(l, f.kb)];
          if (!place.carried) continue;
        }
        // A fixed build of another release only (KB5042322 lists Windows 11's 22000.2710 for
        // Windows Server 2022): a slip in the data, closed by the line's update of its month.
        if (os && line.release && !f.cumulative) {
          bool any = false, own = false;
          for (const Build& b : f.fixed_builds) {
            if (auto r = release_of(b)) {
              any = true;
              own |= same_release(*r, *line.release);
            }
          }
          f.foreign = any && !own;
        }
        const int day = release_day(f.kb);
        int entry = -1;
        if (line.model == LineModel::kRollup && day < first_day &&
            f.kind != FixKind::kServicingStack && f.kind != FixKind::kSetupUpdate) {
          // The single updates before the first Monthly Rollup, folded into the rollups.
          entry = 0;
        } else if (f.foreign || f.kind == FixKind::kSecurityOnly || f.kind == FixKind::kHotpatch) {
          // A Monthly Rollup contains its month's Security Only update; a month's cumulative
          // update, its hotpatch.
          entry = first_from(day, false);
        } else if (f.kind == FixKind::kIeCumulative) {
          // And its month's Internet Explorer cumulative update: the one whose CVEs it fixes too.
          // An out-of-band IE update MSRC lists no rollup for (KB4483187, December 19, 2018,
          // CVE-2018-8653) is one Windows Update offers beside later rollups: not carried.
          const int candidate = first_from(day, false);
          if (candidate >= 0 &&
              release_day(line.chain[static_cast<std::size_t>(candidate)]) == day &&
              shares_cve(line.chain[static_cast<std::size_t>(candidate)], p, f)) {
            entry = candidate;
          }
        } else if (f.kind == FixKind::kPreviewRollup || f.kind == FixKind::kNonSecurity) {
          entry = first_from(day, true);  // contained in the next month's release
        } else if (line.model == LineModel::kRollup && f.kind == FixKind::kRegular && os &&
                   !f.cves.empty() && std::all_of(f.cves.begin(), f.cves.end(), [&](CveIndex c) {
                     return fixed_by_rollups[c] != 0;
                   })) {
          entry = first_from(day, true);  // an out-of-band fix, in the next Monthly Rollup
        }
        if (entry < 0) continue;
        // Invariant: what a line carries, its update at `entry` or later contains; that update
        // is never older than the KB it carries.
        assert(static_cast<std::size_t>(entry) < line.chain.size());
        assert(release_day(line.chain[static_cast<std::size_t>(entry)]) >= day ||
               (line.model == LineModel::kRollup && day < first_day) || f.foreign);
        auto [it, inserted] = line_places_.try_emplace(place_key(l, f.kb), LinePlace{entry, true});
        if (!inserted) it->second.position = std::min(it->second.position, entry);
      }
    }
  }
  index_kb_builds();
}

std::vector<std::tuple<int, KbIndex, LinePlace>> CatalogIndex::line_places() const {
  std::vector<std::tuple<int, KbIndex, LinePlace>> out;
  out.reserve(line_places_.size());
  for (const auto& [key, place] : line_places_) {
    out.emplace_back(static_cast<int>(key >> 32), KbIndex{static_cast<std::uint32_t>(key)}, place);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });
  return out;
}

std::vector<ProductIndex> CatalogIndex::products_of_build(int major, int minor, int build) const {
  BuildProducts& of = *products_of_build_;
  std::call_once(of.once, [&] {
    for (ProductIndex i : product_indices()) {
      const ProductInfo& p = products_[i];
      if (p.role != ProductRole::kOperatingSystem) continue;
      for (const ProductFix& f : p.fixes) {
        for (const Build& b : f.fixed_builds) {
          if (b.build < 1000) continue;
          auto& list = of.map[{b.major, b.minor, b.build}];
          if (list.empty() || list.back() != i) list.push_back(i);
        }
      }
    }
  });
  auto it = of.map.find({major, minor, build});
  return it == of.map.end() ? std::vector<ProductIndex>{} : it->second;
}

void CatalogIndex::index_kb_builds() {
  kb_builds_.assign(kbs_.size(), {});
  products_of_build_ = std::make_shared<BuildProducts>();
  for (const ProductInfo& p : products_) {
    for (const ProductFix& f : p.fixes) {
      for (const Build& b : f.fixed_builds) {
        auto& list = kb_builds_[f.kb];
        const bool seen = std::any_of(list.begin(), list.end(), [&](const Build& o) {
          return o.major == b.major && o.minor == b.minor && o.build == b.build &&
                 o.revision == b.revision;
        });
        if (!seen) list.push_back(b);
      }
    }
  }
}

}  // namespace kbgap::engine
