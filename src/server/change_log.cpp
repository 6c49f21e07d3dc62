#include "server/change_log.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>

#include "api/defender_dto.h"

namespace kbgap::server {

bool same_evaluation_inputs(const inventory::Device& a, const inventory::Device& b) {
  auto software = [](const inventory::Device& d) {
    std::vector<std::tuple<std::string_view, std::string_view, std::string_view>> out;
    for (const auto& s : d.software) out.emplace_back(s.name, s.vendor, s.version);
    return out;
  };
  auto inputs = [](const inventory::Device& d) {
    return std::tie(d.os_name, d.os_family, d.version, d.edition, d.server_core, d.azure_edition,
                    d.hotpatch_enrolled, d.service_pack, d.architecture, d.major, d.minor, d.build,
                    d.revision, d.revision_inferred, d.installed_kbs);
  };
  return inputs(a) == inputs(b) && software(a) == software(b);
}

namespace {

using Rows = std::vector<store::VulnerabilityRow>;

auto row_key(const store::VulnerabilityRow& r) {
  return std::tie(r.software, r.version, r.cve);
}

// The device's open rows as the exports render them, by (software, version, CVE).
Rows rows_of(const FleetView& view, std::uint32_t device) {
  const FleetView::OpenRows open = view.open_rows(device);
  const inventory::Device& d = view.devices()[device];
  Rows rows;
  rows.reserve(open.rows.size());
  for (const FleetView::OpenRow& r : open.rows) {
    rows.push_back(api::vulnerability_row(d, view.catalog().cves()[r.cve], r.kb, r.product));
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return row_key(x) < row_key(y); });
  return rows;
}

// What Defender reports as Updated: the score, severity, exploitability or recommended update.
bool same_details(const store::VulnerabilityRow& a, const store::VulnerabilityRow& b) {
  return std::tie(a.cvss, a.severity, a.exploitability, a.kb, a.kb_name, a.kb_url) ==
         std::tie(b.cvss, b.severity, b.exploitability, b.kb, b.kb_name, b.kb_url);
}

using Diff = std::vector<std::pair<std::string, store::VulnerabilityRow>>;

Diff diff_rows(const Rows& before, const Rows& after) {
  Diff out;
  auto b = before.begin();
  auto a = after.begin();
  while (b != before.end() || a != after.end()) {
    if (a == after.end() || (b != before.end() && row_key(*b) < row_key(*a))) {
      out.emplace_back("Fixed", *b++);
    } else if (b == before.end() || row_key(*a) < row_key(*b)) {
      out.emplace_back("New", *a++);
    } else {
      if (!same_details(*b, *a)) out.emplace_back("Updated", *a);
      ++a;
      ++b;
    }
  }
  return out;
}

constexpr std::uint32_t kNone = UINT32_MAX;

// A device to diff: its places in the two snapshots (kNone where it is not), grouped by what
// decides its rows: its states and builds.
struct Work {
  std::uint32_t before = kNone, after = kNone;
  std::uint32_t before_state = kNone, after_state = kNone;
  std::string before_build, after_build;
  auto key() const { return std::tie(before_state, after_state, before_build, after_build); }
};

}  // namespace

Result<std::size_t> diff_snapshots(
    const FleetView& before, const FleetView& after,
    const std::function<Result<void>(std::vector<store::ChangeSet>&)>& sink, std::size_t chunk) {
  const bool same_catalog = &before.catalog() == &after.catalog();
  const auto& old_devices = before.devices();
  const auto& new_devices = after.devices();
  // Both snapshots hold their devices in id order (the store's): one merge pairs them.
  std::vector<Work> work;
  auto add = [&](std::uint32_t b, std::uint32_t a) {
    Work w;
    w.before = b;
    w.after = a;
    if (b != kNone) {
      w.before_state = before.result().state_of(b);
      w.before_build = inventory::os_build_string(old_devices[b]);
    }
    if (a != kNone) {
      w.after_state = after.result().state_of(a);
      w.after_build = inventory::os_build_string(new_devices[a]);
    }
    work.push_back(std::move(w));
  };
  std::uint32_t b = 0, a = 0;
  while (b < old_devices.size() || a < new_devices.size()) {
    if (a == new_devices.size() ||
        (b < old_devices.size() && old_devices[b].id < new_devices[a].id)) {
      add(b++, kNone);
    } else if (b == old_devices.size() || new_devices[a].id < old_devices[b].id) {
      add(kNone, a++);
    } else {
      if (!same_catalog || !same_evaluation_inputs(old_devices[b], new_devices[a])) add(b, a);
      ++b;
      ++a;
    }
  }
  std::stable_sort(work.begin(), work.end(),
                   [](const Work& x, const Work& y) { return x.key() < y.key(); });
  std::size_t found = 0, held = 0;
  std::vector<store::ChangeSet> pending;
  for (std::size_t i = 0; i < work.size();) {
    std::size_t end = i + 1;
    while (end < work.size() && work[end].key() == work[i].key()) ++end;
    const Work& first = work[i];
    Diff diff = diff_rows(first.before == kNone ? Rows() : rows_of(before, first.before),
                          first.after == kNone ? Rows() : rows_of(after, first.after));
    if (!diff.empty()) {
      store::ChangeSet set;
      set.rows = std::move(diff);
      for (std::size_t k = i; k < end; ++k) {
        const inventory::Device& d =
            work[k].after != kNone ? new_devices[work[k].after] : old_devices[work[k].before];
        set.devices.emplace_back(d.id, d.computer_dns_name);
      }
      found += set.rows.size() * set.devices.size();
      held += set.rows.size() + set.devices.size();
      pending.push_back(std::move(set));
      if (held >= chunk) {
        KBGAP_TRY(sink(pending));
        pending.clear();
        held = 0;
      }
    }
    i = end;
  }
  if (!pending.empty()) KBGAP_TRY(sink(pending));
  return found;
}

}  // namespace kbgap::server
