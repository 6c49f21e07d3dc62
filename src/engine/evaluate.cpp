// Applicability, satisfaction, open CVEs and the smallest set of KBs that closes them.
#include "engine/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "common/distinct.h"
#include "engine/software.h"
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

// The two rules other tools use, as they would decide on the same catalog and device: every KB
// they would list, with the CVEs it fixes on the device, and no reduction.
Evaluation evaluate_other_rule(const CatalogIndex& catalog, const Device& device,
                               const EvaluateOptions& options, const ProfileKey& key,
                               Evaluation ev) {
  const std::vector<ProductIndex>& products = key.products;
  IndexedVector<KbIndex, char> superseded(catalog.kbs().size(), 0);
  if (options.rule == Rule::kSupersedenceOnly) {
    std::vector<KbIndex> queue;
    for (KbNumber kb : device.installed_kbs) {
      if (auto i = catalog.find_kb(kb)) queue.push_back(*i);
    }
    while (!queue.empty()) {
      KbIndex kb = queue.back();
      queue.pop_back();
      if (superseded[kb]) continue;
      superseded[kb] = 1;
      for (KbIndex older : catalog.supersedes(kb)) queue.push_back(older);
    }
  }
  // Fleet compares the whole version, 10.0.19044.1645 against the fixed build, family or not.
  const Build device_build{device.major, device.minor, device.build, ev.revision.value_or(0)};
  auto below = [&](const Build& b) {
    return std::tie(device_build.major, device_build.minor, device_build.build,
                    device_build.revision) < std::tie(b.major, b.minor, b.build, b.revision);
  };
  std::map<KbIndex, std::pair<std::set<std::string>, std::vector<std::string>>> reported;
  std::set<std::string> open;
  for (ProductIndex p : products) {
    const ProductInfo& product = catalog.products()[p];
    for (const ProductFix& fix : product.fixes) {
      if (!applicable(fix, catalog, key)) continue;
      bool missing = false;
      if (options.rule == Rule::kSupersedenceOnly) {
        missing = !superseded[fix.kb];
      } else if (product.role == ProductRole::kOperatingSystem && !fix.fixed_builds.empty()) {
        missing = below(fix.fixed_builds.front());
      }
      if (!missing) continue;
      auto& [cves, names] = reported[fix.kb];
      for (CveIndex c : fix.cves) {
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

// The catalog covers Windows 7 and 2008 R2 with SP1, Vista and 2008 with SP2 only.
std::vector<std::string> service_pack_notes(const CatalogIndex& catalog, const Device& device,
                                            const std::vector<ProductIndex>& products) {
  std::vector<std::string> notes;
  for (ProductIndex p : products) {
    const std::string& name = catalog.products()[p].name;
    auto sp = name.find("Service Pack ");
    if (catalog.products()[p].role != ProductRole::kOperatingSystem || sp == std::string::npos) {
      continue;
    }
    const std::string needed = name.substr(sp, 14);
    if (device.service_pack != needed) {
      notes.push_back(fmt::format(
          "the catalog covers {} with {}; this device has {}: install {} first, the updates "
          "below need it",
          device.os_family, needed,
          device.service_pack.empty() ? "no service pack" : device.service_pack, needed));
    }
  }
  return notes;
}

// --explain: which open CVEs of which product a KB closes, directly or by replacing the KBs that
// fix them, and what it supersedes.
void explain_pick(const CatalogIndex& catalog, const std::vector<ProductIndex>& products,
                  const ComponentResult& result, const Pick& pick,
                  std::vector<std::string>& explanation) {
  std::map<ProductIndex, std::vector<std::string>> direct, through;  // product -> CVEs
  for (std::size_t i = 0; i < pick.pairs.size(); ++i) {
    const OpenPair& pair = result.open[pick.pairs[i]];
    (pick.direct[i] ? direct : through)[products[pair.slot]].push_back(catalog.cves()[pair.cve].id);
  }
  // A dozen CVE ids per line at most; the full list is MissingKb::cves.
  auto some = [](std::vector<std::string> list) {
    std::sort(list.begin(), list.end());
    constexpr std::size_t kShown = 12;
    if (list.size() <= kShown) return fmt::format("{}", fmt::join(list, ", "));
    return fmt::format("{}, ... ({} more)", fmt::join(list.begin(), list.begin() + kShown, ", "),
                       list.size() - kShown);
  };
  for (const auto& [p, list] : direct) {
    explanation.push_back(fmt::format("fixes {} open CVEs of {} directly: {}", list.size(),
                                      catalog.products()[p].name, some(list)));
  }
  for (const auto& [p, list] : through) {
    explanation.push_back(
        fmt::format("closes {} more open CVEs of {} by superseding the updates that fix them: {}",
                    list.size(), catalog.products()[p].name, some(list)));
  }
  std::vector<std::string> chain;
  for (KbIndex older : catalog.supersedes(pick.kb)) {
    chain.push_back(fmt::format("KB{}", catalog.kbs()[older].kb));
  }
  if (!chain.empty()) explanation.push_back(fmt::format("supersedes {}", fmt::join(chain, ", ")));
}

}  // namespace

bool newest_first(const MissingKb& a, const MissingKb& b) {
  return a.release_date != b.release_date ? a.release_date > b.release_date : a.kb > b.kb;
}

MissingKb missing_kb(const CatalogIndex& catalog, KbIndex kb) {
  const KbInfo& info = catalog.kbs()[kb];
  MissingKb m;
  m.kb = info.kb;
  m.name = catalog.documents()[info.release_document].title;
  m.release_date = catalog.release_date(kb);
  // docs/api.md §2: the Update Catalog search for the KB (MSRC gives a support article for some
  // KBs).
  m.url = fmt::format("https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB{}", info.kb);
  return m;
}

namespace {

bool contains_words(std::string_view haystack, std::string_view needle) {
  return normalize_product_name(haystack).find(normalize_product_name(needle)) != std::string::npos;
}

// "Windows 11 version 26H1 for x64-based Systems" -> {"Windows 11", "26H1"}; a name without a
// version: the name up to " for " or " (".
std::pair<std::string, std::string> family_and_version(std::string_view name) {
  const std::string lower = normalize_product_name(name);
  if (auto v = lower.find(" version "); v != std::string::npos) {
    std::string_view rest = name.substr(v + 9);
    return {std::string(name.substr(0, v)), std::string(rest.substr(0, rest.find(' ')))};
  }
  std::size_t end = name.size();
  for (std::string_view cut : {" for ", " ("}) end = std::min(end, name.find(cut));
  std::string_view family = name.substr(0, end);
  if (family.ends_with(",")) family.remove_suffix(1);
  return {std::string(family), ""};
}

// A component that comes with an optional feature, not with the OS: Adobe Flash Player on
// Windows Server 2012 and 2012 R2 is part of the Desktop Experience feature, off by default
// (Microsoft Security Advisory 2755801, FAQ). Counted only when the device installed one of its
// updates (a 2012 R2 server current to March 2019, 156 KBs, had none, and Windows Update offered
// it no Flash update).
bool optional_feature(const ProductInfo& component) {
  return component.name.starts_with("Adobe Flash Player on Windows Server 2012");
}

bool installed_any(const CatalogIndex& catalog, const ProductInfo& product, const Device& device) {
  return std::any_of(product.fixes.begin(), product.fixes.end(), [&](const ProductFix& f) {
    return std::binary_search(device.installed_kbs.begin(), device.installed_kbs.end(),
                              catalog.kbs()[f.kb].kb);
  });
}

}  // namespace

std::vector<ProductIndex> products_of_release(const CatalogIndex& catalog, const Device& device) {
  const bool server = device.os_name.find("Server") != std::string::npos;
  const std::string_view arch = inventory::arch_words(device.architecture, false);
  std::vector<ProductIndex> out, core;
  for (ProductIndex p : catalog.products_of_build(device.major, device.minor, device.build)) {
    const std::string& name = catalog.products()[p].name;
    if (contains_words(name, "Hotpatch") || server != contains_words(name, "Server")) continue;
    const bool names_arch = contains_words(name, "x64") || contains_words(name, "32-bit") ||
                            contains_words(name, "ARM64");
    if (names_arch && (arch.empty() || !contains_words(name, arch))) continue;
    (contains_words(name, "Server Core") ? core : out).push_back(p);
  }
  // A Server Core device, or a server release that is Server Core only, runs the Core product.
  if (device.server_core || out.empty()) return core;
  return out;
}

bool learn_release(const CatalogIndex& catalog, Device& device) {
  if (!device.os_family.empty()) return true;
  const auto products = products_of_release(catalog, device);
  if (products.empty()) return false;
  auto [family, version] = family_and_version(catalog.products()[products.front()].name);
  device.os_family = family;
  device.version = version;
  if (catalog.products()[products.front()].name.find("Server Core") != std::string::npos) {
    device.server_core = true;
  }
  return true;
}

namespace {

std::vector<ProductIndex> products_with(const CatalogIndex& catalog, const Device& device,
                                        const SoftwareMatches& software) {
  std::vector<ProductIndex> out;
  const std::string_view dotnet = inventory::builtin_dotnet_version(device);
  auto add = [&](ProductIndex p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  std::vector<ProductIndex> os_products;
  for (const std::string& name : inventory::os_product_names(device)) {
    for (ProductIndex os : catalog.find_products_by_name(name)) os_products.push_back(os);
  }
  if (os_products.empty()) os_products = products_of_release(catalog, device);
  for (ProductIndex os : os_products) {
    add(os);
    for (ProductIndex c : catalog.products()[os].components) {
      const std::string& component = catalog.products()[c].name;
      if (component.starts_with("Microsoft .NET Framework") &&
          (dotnet.empty() || !names_dotnet_version(component, dotnet))) {
        continue;  // only the .NET Framework that ships in this OS
      }
      if (optional_feature(catalog.products()[c]) &&
          !installed_any(catalog, catalog.products()[c], device)) {
        continue;  // an optional feature the device shows no sign of
      }
      add(c);
    }
  }
  if (out.empty()) return out;  // software is judged only beside a known OS
  for (const SoftwareMatch& m : software.matched) {
    for (ProductIndex p : m.products) add(p);
  }
  return out;
}

std::vector<KbIndex> installed_with(const CatalogIndex& catalog, const Device& device,
                                    const SoftwareMatches& software) {
  std::vector<KbIndex> out;
  for (KbNumber kb : device.installed_kbs) {
    if (auto i = catalog.find_kb(kb)) out.push_back(*i);
  }
  // What installed software versions have reached (SQL Server, Exchange Server) counts too.
  version_reached_kbs(catalog, software, out);
  make_distinct(out);
  return out;
}

ProfileKey key_with(const CatalogIndex& catalog, const Device& device, int as_of_day,
                    std::span<const KbIndex> installed, std::vector<ProductIndex> products) {
  ProfileKey key;
  key.products = std::move(products);
  key.major = device.major;
  key.minor = device.minor;
  key.family = servicing_family(device.build);
  key.hotpatch_enrolled = device.hotpatch_enrolled;
  key.as_of_day = as_of_day;
  key.security_only_path = security_only_path(catalog, key.products, installed);
  return key;
}

}  // namespace

std::vector<ProductIndex> device_products(const CatalogIndex& catalog, const Device& device) {
  return products_with(catalog, device, match_software(catalog, device, false));
}

ProfileKey profile_key(const CatalogIndex& catalog, const Device& device, int as_of_day) {
  return installed_and_key(catalog, device, as_of_day).second;
}

std::pair<std::vector<KbIndex>, ProfileKey> installed_and_key(const CatalogIndex& catalog,
                                                              const Device& device, int as_of_day,
                                                              const SoftwareMatches* software) {
  SoftwareMatches matched;
  if (!software) {
    matched = match_software(catalog, device, false);
    software = &matched;
  }
  std::vector<KbIndex> installed = installed_with(catalog, device, *software);
  ProfileKey key =
      key_with(catalog, device, as_of_day, installed, products_with(catalog, device, *software));
  return {std::move(installed), std::move(key)};
}

std::uint64_t security_only_path(const CatalogIndex& catalog,
                                 std::span<const ProductIndex> products,
                                 std::span<const KbIndex> installed) {
  std::uint64_t path = 0;
  for (std::size_t s = 0; s < products.size() && s < 64; ++s) {
    const ProductInfo& product = catalog.products()[products[s]];
    if (product.line < 0 || catalog.line_info(product.line).model != LineModel::kRollup) continue;
    // The newest installed rollup of the line against the newest installed Security Only update.
    int rollup_day = 0, security_only_day = 0;
    for (KbIndex kb : installed) {
      auto fix = std::lower_bound(product.fixes.begin(), product.fixes.end(), kb,
                                  [](const ProductFix& f, KbIndex k) { return f.kb < k; });
      if (fix == product.fixes.end() || fix->kb != kb) continue;
      const int day = catalog.release_day(kb);
      if (fix->kind == FixKind::kSecurityOnly) security_only_day = std::max(security_only_day, day);
      if (fix->cumulative) rollup_day = std::max(rollup_day, day);
    }
    if (security_only_day > rollup_day) path |= std::uint64_t{1} << s;
  }
  return path;
}

std::vector<KbIndex> installed_indices(const CatalogIndex& catalog, const Device& device) {
  return installed_with(catalog, device, match_software(catalog, device, false));
}

void render_results(const CatalogIndex& catalog, const Profile& profile,
                    std::span<const ComponentResult* const> results, bool explain, Evaluation& ev) {
  const std::vector<ProductIndex>& products = profile.products();
  std::vector<CveIndex> all;
  for (const ComponentResult* r : results) {
    for (const OpenPair& pair : r->open) all.push_back(pair.cve);
  }
  // CVE indices are in the order of their ids.
  auto cve_ids = [&](std::vector<CveIndex>& cves) {
    make_distinct(cves);
    std::vector<std::string> ids;
    ids.reserve(cves.size());
    for (CveIndex c : cves) ids.push_back(catalog.cves()[c].id);
    return ids;
  };
  ev.open_cves = cve_ids(all);

  for (const ComponentResult* r : results) {
    for (const Pick& pick : r->picks) {
      MissingKb m = missing_kb(catalog, pick.kb);
      std::vector<CveIndex> cves;
      std::vector<char> fixed_slot(products.size(), 0);
      for (std::uint32_t id : pick.pairs) {
        cves.push_back(r->open[id].cve);
        fixed_slot[r->open[id].slot] = 1;
      }
      for (std::size_t slot = 0; slot < products.size(); ++slot) {  // the OS first
        const std::string& snake = catalog.products()[products[slot]].snake_name;
        if (fixed_slot[slot] && std::find(m.products_names.begin(), m.products_names.end(),
                                          snake) == m.products_names.end()) {
          m.products_names.push_back(snake);
        }
      }
      m.cves = cve_ids(cves);
      if (explain) explain_pick(catalog, products, *r, pick, m.explanation);
      ev.missing.push_back(std::move(m));
    }
  }
  std::sort(ev.missing.begin(), ev.missing.end(), newest_first);
}

Evaluation evaluate(const CatalogIndex& catalog, const Device& device,
                    const EvaluateOptions& options) {
  Evaluation ev;
  // With explain, the software is matched once, with its reasons, for the key and the report.
  std::optional<SoftwareMatches> software;
  if (options.explain) software = match_software(catalog, device, true);
  auto [installed, key] = installed_and_key(catalog, device, day_number(options.as_of),
                                            software ? &*software : nullptr);
  Profile profile = Profile::build(catalog, std::move(key));
  const std::vector<ProductIndex>& products = profile.products();
  for (ProductIndex p : products) ev.products.push_back(catalog.products()[p].name);
  if (products.empty()) {
    ev.notes.push_back(
        fmt::format("{} {} ({}) is not in the catalog: no security update can be judged for it",
                    device.os_family.empty() ? device.os_name : device.os_family, device.version,
                    os_build_string(device)));
    return ev;
  }
  ev.notes = service_pack_notes(catalog, device, products);
  if (software) {
    auto report = [&](const SoftwareMatch& m, bool matched) {
      const inventory::InstalledSoftware& sw = device.software[m.software];
      SoftwareReport r{sw.name, sw.version, {}, m.reason, matched};
      for (ProductIndex p : m.products) r.products.push_back(catalog.products()[p].name);
      ev.software.push_back(std::move(r));
    };
    for (const SoftwareMatch& m : software->matched) report(m, true);
    for (const SoftwareMatch& m : software->unmatched) report(m, false);
  }

  ev.revision = device.revision;
  if (!ev.revision) {
    ev.revision = profile.infer_revision(installed);
    ev.revision_inferred = ev.revision.has_value();
  }
  if (options.rule != Rule::kKbgap) {
    return evaluate_other_rule(catalog, device, options, profile.key(), std::move(ev));
  }

  KbMarks satisfied(catalog.kbs().size());
  profile.satisfy(installed, ev.revision, satisfied);
  Scratch scratch(catalog);
  std::vector<ComponentResult> results;
  results.reserve(profile.component_count());
  for (std::uint32_t c = 0; c < profile.component_count(); ++c) {
    results.push_back(profile.evaluate_component(c, satisfied, scratch, options.explain));
  }
  std::vector<const ComponentResult*> pointers;
  for (const ComponentResult& r : results) pointers.push_back(&r);
  render_results(catalog, profile, pointers, options.explain, ev);
  if (!ev.revision && !ev.open_cves.empty()) {
    ev.notes.push_back(
        "revision (UBR) unknown and no installed cumulative update tells it: judged by installed "
        "KBs and supersedence only");
  }
  return ev;
}

}  // namespace kbgap::engine
