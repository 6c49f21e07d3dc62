// Applicability, satisfaction, open CVEs and the smallest set of KBs that closes them.
#include "engine/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "inventory/windows_release.h"

namespace kbgap::engine {
namespace {

using inventory::Device;

// "Microsoft .NET Framework 3.5 AND 4.8 on ..." -> does it name `version`?
bool names_dotnet_version(std::string_view product, std::string_view version) {
  auto on = product.find(" on ");
  std::string_view versions = product.substr(0, on);
  std::size_t pos = 0;
  while ((pos = versions.find(version, pos)) != std::string_view::npos) {
    const std::size_t end = pos + version.size();
    const bool left = pos == 0 || versions[pos - 1] == ' ' || versions[pos - 1] == '/';
    const bool right = end == versions.size() || versions[end] == ' ' || versions[end] == ',' ||
                       versions[end] == '/';
    if (left && right) return true;
    pos = end;
  }
  return false;
}

// `as_of_day`: 20200331 for --as-of 2020-03-31, 0 for none.
bool applicable(const ProductFix& fix, const CatalogIndex& catalog, const Device& device,
                int as_of_day) {
  if (fix.kind == FixKind::kServicingStack) return false;
  if (fix.kind == FixKind::kHotpatch && !device.hotpatch_enrolled) return false;
  if (as_of_day != 0 && catalog.release_day(fix.kb) > as_of_day) return false;
  return true;
}

// Is `b` a build of the device's servicing line (same revision numbering)?
bool same_servicing_line(const Build& b, const Device& d) {
  return b.major == d.major && b.minor == d.minor &&
         servicing_family(b.build) == servicing_family(d.build);
}

// Does `fix` carry a fixed build of the device's servicing line that the device has reached?
bool reached_by_build(const ProductFix& fix, const Device& d, int revision) {
  for (const Build& b : fix.fixed_builds) {
    if (same_servicing_line(b, d) && revision >= b.revision) {
      return true;
    }
  }
  return false;
}

std::optional<int> infer_revision(const CatalogIndex& catalog, const Device& d,
                                  const std::vector<Index>& products) {
  std::optional<int> best;
  for (Index p : products) {
    if (catalog.products()[p].role != ProductRole::kOperatingSystem) continue;
    for (const ProductFix& fix : catalog.products()[p].fixes) {
      if (!fix.cumulative) continue;
      if (!std::binary_search(d.installed_kbs.begin(), d.installed_kbs.end(),
                              catalog.kbs()[fix.kb].kb)) {
        continue;
      }
      for (const Build& b : fix.fixed_builds) {
        if (same_servicing_line(b, d) && (!best || b.revision > *best)) {
          best = b.revision;
        }
      }
    }
  }
  return best;
}

// Output order: the newest release first, then the higher KB number.
bool newest_first(const MissingKb& a, const MissingKb& b) {
  return a.release_date != b.release_date ? a.release_date > b.release_date : a.kb > b.kb;
}

MissingKb missing_kb(const CatalogIndex& catalog, Index kb) {
  const KbInfo& info = catalog.kbs()[kb];
  MissingKb m;
  m.kb = info.kb;
  m.name = catalog.documents()[info.release_document].title;
  m.release_date = catalog.release_date(kb);
  m.url = info.url;
  return m;
}

// The two rules other tools use, as they would decide on the same catalog and device: every KB
// they would list, with the CVEs it fixes on the device, and no reduction.
Evaluation evaluate_other_rule(const CatalogIndex& catalog, const Device& device,
                               const EvaluateOptions& options, const std::vector<Index>& products,
                               Evaluation ev) {
  const int as_of_day = day_number(options.as_of);
  std::vector<char> superseded(catalog.kbs().size(), 0);
  if (options.rule == Rule::kSupersedenceOnly) {
    std::vector<Index> queue;
    for (KbNumber kb : device.installed_kbs) {
      if (auto i = catalog.find_kb(kb)) queue.push_back(*i);
    }
    while (!queue.empty()) {
      Index kb = queue.back();
      queue.pop_back();
      if (superseded[kb]) continue;
      superseded[kb] = 1;
      for (Index older : catalog.supersedes(kb)) queue.push_back(older);
    }
  }
  // Fleet compares the whole version, 10.0.19044.1645 against the fixed build, family or not.
  const Build device_build{device.major, device.minor, device.build, ev.revision.value_or(0)};
  auto below = [&](const Build& b) {
    return std::tie(device_build.major, device_build.minor, device_build.build,
                    device_build.revision) < std::tie(b.major, b.minor, b.build, b.revision);
  };
  std::map<Index, std::pair<std::set<std::string>, std::vector<std::string>>> reported;
  std::set<std::string> open;
  for (Index p : products) {
    const ProductInfo& product = catalog.products()[p];
    for (const ProductFix& fix : product.fixes) {
      if (!applicable(fix, catalog, device, as_of_day)) continue;
      bool missing = false;
      if (options.rule == Rule::kSupersedenceOnly) {
        missing = !superseded[fix.kb];
      } else if (product.role == ProductRole::kOperatingSystem && !fix.fixed_builds.empty()) {
        missing = below(fix.fixed_builds.front());
      }
      if (!missing) continue;
      auto& [cves, names] = reported[fix.kb];
      for (Index c : fix.cves) {
        cves.insert(catalog.cves()[c].id);
        open.insert(catalog.cves()[c].id);
      }
      if (std::find(names.begin(), names.end(), product.snake_name) == names.end()) {
        names.push_back(product.snake_name);
      }
    }
  }
  for (const auto& [kb, what] : reported) {
    MissingKb m = missing_kb(catalog, kb);
    m.cves.assign(what.first.begin(), what.first.end());
    m.products_names = what.second;
    ev.missing.push_back(std::move(m));
  }
  std::sort(ev.missing.begin(), ev.missing.end(), newest_first);
  ev.open_cves.assign(open.begin(), open.end());
  return ev;
}

}  // namespace

std::vector<Index> device_products(const CatalogIndex& catalog, const Device& device) {
  std::vector<Index> out;
  const std::string_view dotnet = inventory::builtin_dotnet_version(device);
  auto add = [&](Index p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  for (const std::string& name : inventory::os_product_names(device)) {
    for (Index os : catalog.find_products_by_name(name)) {
      add(os);
      for (Index c : catalog.products()[os].components) {
        const std::string& component = catalog.products()[c].name;
        if (component.starts_with("Microsoft .NET Framework") &&
            (dotnet.empty() || !names_dotnet_version(component, dotnet))) {
          continue;  // only the .NET Framework that ships in this OS
        }
        add(c);
      }
    }
  }
  return out;
}

Evaluation evaluate(const CatalogIndex& catalog, const Device& device,
                    const EvaluateOptions& options) {
  Evaluation ev;
  const int as_of_day = day_number(options.as_of);
  const std::vector<Index> products = device_products(catalog, device);
  for (Index p : products) ev.products.push_back(catalog.products()[p].name);
  if (products.empty()) {
    ev.notes.push_back(
        fmt::format("{} {} ({}) is not in the catalog: no security update can be judged for it",
                    device.os_family.empty() ? device.os_name : device.os_family, device.version,
                    os_build_string(device)));
    return ev;
  }

  // The catalog covers Windows 7 and 2008 R2 with SP1, Vista and 2008 with SP2 only.
  for (Index p : products) {
    const std::string& name = catalog.products()[p].name;
    auto sp = name.find("Service Pack ");
    if (catalog.products()[p].role != ProductRole::kOperatingSystem || sp == std::string::npos) {
      continue;
    }
    const std::string needed = name.substr(sp, 14);
    if (device.service_pack != needed) {
      ev.notes.push_back(fmt::format(
          "the catalog covers {} with {}; this device has {}: install {} first, the updates "
          "below need it",
          device.os_family, needed,
          device.service_pack.empty() ? "no service pack" : device.service_pack, needed));
    }
  }

  ev.revision = device.revision;
  if (!ev.revision) {
    ev.revision = infer_revision(catalog, device, products);
    ev.revision_inferred = ev.revision.has_value();
  }

  if (options.rule != Rule::kKbgap)
    return evaluate_other_rule(catalog, device, options, products, std::move(ev));

  // Satisfied KBs: installed ones, cumulative updates the device's revision has reached, and
  // what those replace by published supersedence, transitively.
  std::vector<char> satisfied(catalog.kbs().size(), 0);
  std::vector<Index> queue;
  auto mark = [&](Index kb) {
    if (!satisfied[kb]) {
      satisfied[kb] = 1;
      queue.push_back(kb);
    }
  };
  for (KbNumber kb : device.installed_kbs) {
    if (auto i = catalog.find_kb(kb)) mark(*i);
  }
  if (ev.revision) {
    for (Index p : products) {
      for (const ProductFix& fix : catalog.products()[p].fixes) {
        if (fix.cumulative && reached_by_build(fix, device, *ev.revision)) mark(fix.kb);
      }
    }
  }
  while (!queue.empty()) {
    Index kb = queue.back();
    queue.pop_back();
    for (Index older : catalog.supersedes(kb)) mark(older);
  }
  // On a servicing line, the newest satisfied cumulative update satisfies all before it, for
  // that line's products.
  std::unordered_map<Index, int> line_reached;  // product -> highest satisfied line position
  for (Index p : products) {
    int reached = -1;
    for (const ProductFix& fix : catalog.products()[p].fixes) {
      if (fix.cumulative && satisfied[fix.kb]) reached = std::max(reached, fix.line_position);
    }
    line_reached[p] = reached;
  }
  // The servicing lines whose cumulative updates carry a product's fixes: its own, and for IE
  // and Edge on an OS, the OS's.
  std::unordered_map<Index, std::vector<std::pair<int, Index>>> device_lines;  // (line, owner)
  for (Index p : products) {
    auto& out = device_lines[p];
    const ProductInfo& info = catalog.products()[p];
    if (info.line >= 0) out.emplace_back(info.line, p);
    if (info.delivered_by_host >= 0) {
      const Index host = static_cast<Index>(info.delivered_by_host);
      if (catalog.products()[host].line >= 0) out.emplace_back(catalog.products()[host].line, host);
    }
  }
  auto lines_of = [&](Index p) -> const std::vector<std::pair<int, Index>>& {
    return device_lines[p];
  };
  auto line_reached_of = [&](Index p) {
    auto it = line_reached.find(p);
    if (it != line_reached.end()) return it->second;
    int reached = -1;  // a host outside the device's products (cannot happen) reaches nothing
    return reached;
  };
  auto fix_satisfied = [&](Index p, const ProductFix& fix) {
    if (satisfied[fix.kb]) return true;
    for (const auto& [line, owner] : lines_of(p)) {
      const int pos = catalog.line_position(line, fix.kb);
      if (pos >= 0 && pos <= line_reached_of(owner)) return true;
    }
    return false;
  };

  // Open (product, CVE) pairs, numbered densely, and the applicable KBs that fix each directly.
  // Scratch marks are indexed by KB or CVE and reset by bumping a stamp, not by allocating.
  struct Pair {
    Index product, cve;
    std::vector<Index> fixers;
  };
  std::vector<Pair> open;
  std::vector<char> is_candidate(catalog.kbs().size(), 0);  // unsatisfied, applicable
  std::vector<char> security_only(catalog.kbs().size(), 0);
  std::vector<std::int32_t> pair_of_cve(catalog.cves().size(), -1);  // this product's pairs
  std::vector<std::uint32_t> cve_stamp(catalog.cves().size(), 0),
      closed_stamp(catalog.cves().size(), 0);
  std::uint32_t stamp = 0;
  for (Index p : products) {
    ++stamp;
    const std::size_t first = open.size();
    for (const ProductFix& fix : catalog.products()[p].fixes) {
      if (!applicable(fix, catalog, device, as_of_day)) continue;
      if (fix_satisfied(p, fix)) {
        for (Index c : fix.cves) closed_stamp[c] = stamp;
        continue;
      }
      is_candidate[fix.kb] = 1;
      if (fix.kind == FixKind::kSecurityOnly) security_only[fix.kb] = 1;
      for (Index c : fix.cves) {
        if (cve_stamp[c] != stamp) {
          cve_stamp[c] = stamp;
          pair_of_cve[c] = static_cast<std::int32_t>(open.size());
          open.push_back({p, c, {}});
        }
        open[static_cast<std::size_t>(pair_of_cve[c])].fixers.push_back(fix.kb);
      }
    }
    // A pair is open only when none of its fixes is satisfied.
    for (std::size_t i = first; i < open.size(); ++i) {
      if (closed_stamp[open[i].cve] == stamp) open[i].fixers.clear();
    }
  }
  std::erase_if(open, [](const Pair& pair) { return pair.fixers.empty(); });
  if (open.empty()) return ev;

  // Which candidate closes which open pairs: directly, or by replacing (transitively) a KB that
  // fixes it, through published supersedence or a later cumulative update of the product's line.
  // A KB that replaces another carries its fixes, whichever products the catalog lists it for.
  std::vector<std::uint32_t> kb_stamp(catalog.kbs().size(), 0);
  std::uint32_t kb_round = 0;
  struct ProductReplacers {
    std::vector<std::vector<Index>> by_kb;  // KB -> candidates replacing it on this product
    std::vector<char> known;                // KBs already walked
  };
  std::unordered_map<Index, ProductReplacers> replacers;  // by product
  auto replacers_of = [&](Index p, Index kb) -> const std::vector<Index>& {
    ProductReplacers& r = replacers[p];
    if (r.known.empty()) {
      r.by_kb.resize(catalog.kbs().size());
      r.known.assign(catalog.kbs().size(), 0);
    }
    auto& out = r.by_kb[kb];
    if (r.known[kb]) return out;
    r.known[kb] = 1;
    const auto& lines = lines_of(p);
    ++kb_round;
    std::vector<Index> stack{kb};
    kb_stamp[kb] = kb_round;
    auto push = [&](Index newer) {
      if (kb_stamp[newer] != kb_round) {
        kb_stamp[newer] = kb_round;
        if (is_candidate[newer]) out.push_back(newer);
        stack.push_back(newer);
      }
    };
    while (!stack.empty()) {
      Index k = stack.back();
      stack.pop_back();
      for (Index newer : catalog.superseded_by(k)) push(newer);
      for (const auto& [line, owner] : lines) {  // the next on the line; the rest follow from it
        const auto& chain = catalog.line(line);
        const int pos = catalog.line_position(line, k);
        if (pos >= 0 && static_cast<std::size_t>(pos) + 1 < chain.size()) push(chain[pos + 1]);
      }
    }
    return out;
  };
  std::vector<std::vector<std::uint32_t>> covers_by_kb(catalog.kbs().size());  // KB -> pair ids
  std::vector<Index> covering;  // the KBs with a non-empty list
  std::vector<std::uint32_t> pair_stamp(catalog.kbs().size(), 0);
  for (std::uint32_t id = 0; id < open.size(); ++id) {
    auto add = [&](Index kb) {
      if (pair_stamp[kb] == id + 1) return;
      pair_stamp[kb] = id + 1;
      if (covers_by_kb[kb].empty()) covering.push_back(kb);
      covers_by_kb[kb].push_back(id);
    };
    for (Index kb : open[id].fixers) {
      add(kb);
      for (Index newer : replacers_of(open[id].product, kb)) add(newer);
    }
  }
  auto covers = [&](Index kb) -> const std::vector<std::uint32_t>& { return covers_by_kb[kb]; };

  // The smallest set a person would install: repeatedly the KB that closes the most pairs still
  // open (ties: the newest, a Monthly Rollup before a Security Only, the higher KB number). Gains
  // only shrink, so a KB whose stale gain still tops the queue after a recount is the best.
  auto better = [&](std::size_t gain_a, Index a, std::size_t gain_b, Index b) {
    if (gain_a != gain_b) return gain_a > gain_b;
    const int da = catalog.release_day(a);
    const int db = catalog.release_day(b);
    if (da != db) return da > db;
    if (security_only[a] != security_only[b]) return !security_only[a];
    return catalog.kbs()[a].kb > catalog.kbs()[b].kb;
  };
  using Entry = std::pair<std::size_t, Index>;  // (gain, KB)
  auto worse = [&](const Entry& x, const Entry& y) {
    return better(y.first, y.second, x.first, x.second);
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> queue_by_gain(worse);
  for (Index kb : covering) queue_by_gain.push({covers(kb).size(), kb});
  std::vector<char> uncovered(open.size(), 1);
  std::size_t left = open.size();
  std::vector<Index> chosen;
  while (left > 0 && !queue_by_gain.empty()) {
    auto [stale, kb] = queue_by_gain.top();
    queue_by_gain.pop();
    std::size_t gain = 0;
    for (std::uint32_t id : covers(kb)) gain += uncovered[id];
    if (gain == 0) continue;
    if (gain < stale && !queue_by_gain.empty() &&
        better(queue_by_gain.top().first, queue_by_gain.top().second, gain, kb)) {
      queue_by_gain.push({gain, kb});
      continue;
    }
    chosen.push_back(kb);
    for (std::uint32_t id : covers(kb)) {
      left -= uncovered[id];
      uncovered[id] = 0;
    }
  }
  // Nothing reported that the rest already closes: a KB replaced by another reported KB is
  // dropped (the newer closes all it does); the oldest go first.
  std::sort(chosen.begin(), chosen.end(),
            [&](Index a, Index b) { return catalog.release_day(a) < catalog.release_day(b); });
  std::vector<std::uint32_t> closers(open.size(), 0);
  for (Index kb : chosen) {
    for (std::uint32_t id : covers(kb)) ++closers[id];
  }
  std::vector<Index> kept;
  for (Index kb : chosen) {
    const auto& ids = covers(kb);
    if (std::all_of(ids.begin(), ids.end(), [&](std::uint32_t id) { return closers[id] > 1; })) {
      for (std::uint32_t id : ids) --closers[id];
    } else {
      kept.push_back(kb);
    }
  }

  auto cve_ids = [&](std::vector<Index> cves) {  // sorted, distinct CVE ids
    std::sort(cves.begin(), cves.end());
    cves.erase(std::unique(cves.begin(), cves.end()), cves.end());
    std::vector<std::string> ids;
    ids.reserve(cves.size());
    for (Index c : cves) ids.push_back(catalog.cves()[c].id);
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  {
    std::vector<Index> all;
    all.reserve(open.size());
    for (const Pair& pair : open) all.push_back(pair.cve);
    ev.open_cves = cve_ids(std::move(all));
  }

  for (Index kb : kept) {
    MissingKb m = missing_kb(catalog, kb);
    std::vector<Index> cves;
    std::set<Index> fixed_products;
    for (std::uint32_t id : covers(kb)) {
      cves.push_back(open[id].cve);
      fixed_products.insert(open[id].product);
    }
    for (Index p : products) {  // the OS first, then its components
      const std::string& snake = catalog.products()[p].snake_name;
      if (fixed_products.contains(p) && std::find(m.products_names.begin(), m.products_names.end(),
                                                  snake) == m.products_names.end()) {
        m.products_names.push_back(snake);
      }
    }
    m.cves = cve_ids(std::move(cves));
    if (options.explain) {
      std::map<Index, std::vector<std::string>> direct, through;  // product -> CVEs
      for (std::uint32_t id : covers(kb)) {
        const auto& fixing = open[id].fixers;
        (std::find(fixing.begin(), fixing.end(), kb) != fixing.end() ? direct
                                                                     : through)[open[id].product]
            .push_back(catalog.cves()[open[id].cve].id);
      }
      // A dozen CVE ids per line at most; the full list is MissingKb::cves.
      auto some = [](std::vector<std::string> list) {
        std::sort(list.begin(), list.end());
        constexpr std::size_t kShown = 12;
        if (list.size() <= kShown) return fmt::format("{}", fmt::join(list, ", "));
        return fmt::format("{}, ... ({} more)",
                           fmt::join(list.begin(), list.begin() + kShown, ", "),
                           list.size() - kShown);
      };
      for (const auto& [p, list] : direct) {
        m.explanation.push_back(fmt::format("fixes {} open CVEs of {} directly: {}", list.size(),
                                            catalog.products()[p].name, some(list)));
      }
      for (const auto& [p, list] : through) {
        m.explanation.push_back(fmt::format(
            "closes {} more open CVEs of {} by superseding the updates that fix them: {}",
            list.size(), catalog.products()[p].name, some(list)));
      }
      std::vector<std::string> chain;
      for (Index older : catalog.supersedes(kb)) {
        chain.push_back(fmt::format("KB{}", catalog.kbs()[older].kb));
      }
      if (!chain.empty()) {
        m.explanation.push_back(fmt::format("supersedes {}", fmt::join(chain, ", ")));
      }
    }
    ev.missing.push_back(std::move(m));
  }
  std::sort(ev.missing.begin(), ev.missing.end(), newest_first);
  if (!ev.revision) {
    ev.notes.push_back(
        "revision (UBR) unknown and no installed cumulative update tells it: judged by installed "
        "KBs and supersedence only");
  }
  return ev;
}

}  // namespace kbgap::engine
