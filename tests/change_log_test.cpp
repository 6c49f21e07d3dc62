// The delta export's change log (server/change_log.h) on the real catalog's documents and the real
// inventories: whatever happens between two snapshots (devices written, removed, updated, their
// builds moved, a new catalog month), the first snapshot's full export with the changes applied
// is the second snapshot's full export, row for row.
#include "server/change_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>

#include "api/defender_dto.h"
#include "engine/catalog_change.h"
#include "engine_support.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "test_support.h"
#include "update/importer.h"

namespace kbgap::server {
namespace {

// The stored data of a few real months.
catalog::CatalogData data_of(const std::vector<std::string>& months) {
  auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
  if (!store) throw std::runtime_error(store.error().message);
  std::vector<catalog::SourceItem> items;
  for (const std::string& m : months) items.push_back({m + ".xml", test::real_document(m)});
  auto sources = catalog::ImportSources::from_memory(std::move(items));
  auto imported = catalog::import_catalog(sources, **store, nullptr);
  if (!imported) throw std::runtime_error(imported.error().message);
  auto data = (*store)->load();
  if (!data) throw std::runtime_error(data.error().message);
  return std::move(*data);
}

std::shared_ptr<const engine::CatalogIndex> index_of(const catalog::CatalogData& data) {
  return std::make_shared<const engine::CatalogIndex>(engine::CatalogIndex::build(data));
}

// A catalog of a few real months.
std::shared_ptr<const engine::CatalogIndex> catalog_of(const std::vector<std::string>& months) {
  return index_of(data_of(months));
}

using Key = std::tuple<std::string, std::string, std::string, std::string>;
Key key_of(const std::string& device, const store::VulnerabilityRow& r) {
  return {device, r.software, r.version, r.cve};
}

// The full export of a snapshot, device by device, without the log's shortcuts.
std::map<Key, store::VulnerabilityRow> full_export(const FleetView& view) {
  std::map<Key, store::VulnerabilityRow> out;
  for (std::uint32_t d = 0; d < view.devices().size(); ++d) {
    const inventory::Device& device = view.devices()[d];
    for (const FleetView::OpenRow& r : view.open_rows(d)) {
      auto row = api::vulnerability_row(device, view.catalog(), r.cve, r.kb, r.product);
      const Key key = key_of(device.id, row);
      EXPECT_TRUE(out.emplace(key, std::move(row)).second) << "a row twice: " << device.id;
    }
  }
  return out;
}

bool same_row(const store::VulnerabilityRow& a, const store::VulnerabilityRow& b) {
  return std::tie(a.software, a.version, a.cve, a.cvss, a.severity, a.exploitability, a.kb,
                  a.kb_name, a.kb_url) == std::tie(b.software, b.version, b.cve, b.cvss, b.severity,
                                                   b.exploitability, b.kb, b.kb_name, b.kb_url);
}

// Applies `before`'s changes to its full export and compares with `after`'s; each change must be
// one: New where there was no row, Fixed where there was (as it was), Updated where the row's
// details moved. Returns the changes by status.
std::map<std::string, std::size_t> check_changes(const FleetView& before, const FleetView& after,
                                                 std::size_t chunk = 50000,
                                                 DiffStats* stats = nullptr) {
  std::vector<store::VulnerabilityChange> changes;
  std::size_t chunks = 0, held = 0, largest = 0;
  // The parts handed over, as a store keeps them: a part passed again comes without its rows.
  std::map<std::uint64_t, std::vector<std::pair<std::string, store::VulnerabilityRow>>> parts;
  auto found = diff_snapshots(
      before, after,
      [&](std::vector<store::ChangeSet>& sets) -> Result<void> {
        ++chunks;
        for (const store::ChangeSet& set : sets) {
          EXPECT_GT(set.rows(), 0u);
          std::size_t size = set.parts.size() + set.devices.size();
          for (const auto& part : set.parts) {
            EXPECT_GT(part->count, 0u);
            if (!parts.count(part->serial)) {
              EXPECT_EQ(part->rows.size(), part->count);
              parts[part->serial] = part->rows;
              size += part->count;
            }
          }
          held += size;
          largest = std::max(largest, size);
          for (const auto& [id, name] : set.devices) {
            for (const auto& part : set.parts) {
              for (const auto& [status, row] : parts[part->serial]) {
                changes.push_back({"2026-11-30T12:00:00Z", status, id, name, row});
              }
            }
          }
        }
        return ok_result();
      },
      2, chunk);
  EXPECT_TRUE(found) << found.error().message;
  EXPECT_EQ(found->changes, changes.size());
  if (stats && found) *stats = *found;
  // Chunks end between change sets: more than one when the sets but the largest pass the chunk's
  // size (in whatever order they come, one is handed over before the last).
  if (held - largest >= chunk) {
    EXPECT_GT(chunks, 1u);
  }
  auto rows = full_export(before);
  std::map<std::string, std::size_t> by_status;
  for (const store::VulnerabilityChange& c : changes) {
    ++by_status[c.status];
    EXPECT_EQ(c.at, "2026-11-30T12:00:00Z");
    const Key key = key_of(c.device_id, c.row);
    auto it = rows.find(key);
    if (c.status == "New") {
      EXPECT_EQ(it, rows.end()) << c.device_id << " " << c.row.cve;
      rows.emplace(key, c.row);
    } else if (it == rows.end()) {
      ADD_FAILURE() << c.status << " without a row: " << c.device_id << " " << c.row.cve;
    } else if (c.status == "Fixed") {
      EXPECT_TRUE(same_row(it->second, c.row)) << c.row.cve;
      rows.erase(it);
    } else {
      EXPECT_EQ(c.status, "Updated");
      EXPECT_FALSE(same_row(it->second, c.row)) << c.row.cve;
      it->second = c.row;
    }
  }
  const auto expected = full_export(after);
  EXPECT_EQ(rows.size(), expected.size());
  for (const auto& [key, row] : expected) {
    auto it = rows.find(key);
    if (it == rows.end()) {
      ADD_FAILURE() << "no change made the row of " << std::get<0>(key) << " " << std::get<3>(key);
    } else {
      EXPECT_TRUE(same_row(it->second, row)) << std::get<3>(key);
    }
  }
  return by_status;
}

// In id order, one device an id (the store's own order; two real inventories are of one machine).
std::vector<inventory::Device> by_id(std::vector<inventory::Device> devices) {
  std::stable_sort(devices.begin(), devices.end(),
                   [](const auto& a, const auto& b) { return a.id < b.id; });
  devices.erase(std::unique(devices.begin(), devices.end(),
                            [](const auto& a, const auto& b) { return a.id == b.id; }),
                devices.end());
  return devices;
}

std::shared_ptr<const FleetView> snapshot(std::shared_ptr<const engine::CatalogIndex> catalog,
                                          const std::vector<inventory::Device>& devices,
                                          std::int64_t version) {
  return FleetView::build(std::move(catalog), by_id(devices), version, 1);
}

// Everything a device's answer holds, in MSRC's names.
auto answer(const engine::Evaluation& e) {
  std::vector<std::tuple<engine::KbNumber, std::string, std::string, std::string,
                         std::vector<std::string>, std::vector<std::string>>>
      missing;
  for (const engine::MissingKb& m : e.missing) {
    missing.emplace_back(m.kb, m.name, m.release_date, m.url, m.products_names, m.cves);
  }
  return std::make_tuple(missing, e.open_cves, e.products, e.revision, e.revision_inferred);
}

// The snapshot after `previous`, built as the server builds it (taking what it can from
// `previous`, engine::Fleet::Reuse), checked device for device against one built from scratch.
// Returns it, and in `reused` how many devices took their answer from `previous`.
std::shared_ptr<const FleetView> next_snapshot(const FleetView& previous,
                                               std::shared_ptr<const engine::CatalogIndex> catalog,
                                               const std::vector<inventory::Device>& devices,
                                               std::int64_t version,
                                               std::size_t* reused = nullptr) {
  const auto fresh = snapshot(catalog, devices, version);
  auto next = FleetView::build(catalog, by_id(devices), version, 2, &previous);
  EXPECT_EQ(next->devices().size(), fresh->devices().size());
  for (std::uint32_t d = 0; d < fresh->devices().size(); ++d) {
    EXPECT_EQ(answer(*next->evaluation(d)), answer(*fresh->evaluation(d)))
        << fresh->devices()[d].id;
    EXPECT_EQ(next->result().missing_count(d), fresh->result().missing_count(d));
    EXPECT_EQ(next->software_of(d), fresh->software_of(d));
  }
  // Not evaluated again: on the same catalog, a device whose state was carried; on another, one
  // whose answer was taken from the snapshot before.
  if (reused) {
    *reused = &previous.catalog() == catalog.get() ? next->build_stats().devices_carried
                                                   : next->result().reused_devices();
  }
  return next;
}

TEST(ChangeLog, WritesRemovalsAndUpdatesReplayToTheNextFullExport) {
  // The whole catalog, and random changes of the kinds a fleet sees, step after step.
  std::shared_ptr<const engine::CatalogIndex> catalog(&test::full_catalog(),
                                                      [](const engine::CatalogIndex*) {});
  const std::vector<inventory::Device>& real = test::real_devices();
  ASSERT_GT(real.size(), 30u);
  std::vector<inventory::Device> fleet = by_id({real.begin(), real.begin() + 25});
  std::size_t next_real = 25;
  auto view = snapshot(catalog, fleet, 1);
  std::mt19937 random(20261130);
  std::map<std::string, std::size_t> seen;
  for (int step = 0; step < 12; ++step) {
    for (int change = 0; change < 4 && !fleet.empty(); ++change) {
      const std::size_t i = random() % fleet.size();
      inventory::Device& d = fleet[i];
      switch (random() % 6) {
        case 0: {  // installs some of its missing KBs
          const auto found = view->find(d.id);
          ASSERT_TRUE(found);
          const auto ev = view->evaluation(*found);
          for (const engine::MissingKb& kb : ev->missing) {
            if (random() % 2 == 0) d.installed_kbs.push_back(kb.kb);
          }
          std::sort(d.installed_kbs.begin(), d.installed_kbs.end());
          d.installed_kbs.erase(std::unique(d.installed_kbs.begin(), d.installed_kbs.end()),
                                d.installed_kbs.end());
          break;
        }
        case 1:  // loses its updates (a reinstalled machine)
          d.installed_kbs.clear();
          d.revision.reset();
          break;
        case 2:  // its build moves: a version change of its OS row
          d.revision = d.revision.value_or(1000) + 1 + static_cast<int>(random() % 500);
          d.revision_inferred = false;
          break;
        case 3:  // removed
          fleet.erase(fleet.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        case 4:  // a new device
          if (next_real < real.size()) fleet.push_back(real[next_real++]);
          fleet = by_id(std::move(fleet));
          break;
        default:  // written again as it was, renamed: no change of its rows
          d.computer_dns_name += "-renamed";
          d.last_seen = "2026-11-30T00:00:00Z";
          break;
      }
    }
    // Devices written alike take their answers from the snapshot before (the same as evaluated).
    std::size_t reused = 0;
    auto next = next_snapshot(*view, catalog, fleet, step + 2, &reused);
    EXPECT_GT(reused, 0u);
    for (const auto& [status, n] : check_changes(*view, *next, 7)) seen[status] += n;
    view = next;
  }
  EXPECT_GT(seen["New"], 0u);
  EXPECT_GT(seen["Fixed"], 0u);
  // Nothing moved: no change, and no device evaluated again.
  std::size_t reused = 0;
  auto again = next_snapshot(*view, catalog, fleet, 99, &reused);
  EXPECT_EQ(reused, fleet.size());
  EXPECT_TRUE(check_changes(*view, *again).empty());
}

TEST(ChangeLog, ANewCatalogMonthIsNewRowsAndUpdatedRecommendations) {
  // Two catalogs: three months, then a fourth. The same devices: the new month's CVEs are New on
  // the devices it applies to, and the rows whose closing update is now the new month's are
  // Updated.
  const auto before_catalog = catalog_of({"2023-Oct", "2023-Nov", "2023-Dec"});
  const auto after_catalog = catalog_of({"2023-Oct", "2023-Nov", "2023-Dec", "2024-Jan"});
  const std::vector<inventory::Device>& fleet = test::real_devices();
  auto before = snapshot(before_catalog, fleet, 1);
  auto after = next_snapshot(*before, after_catalog, fleet, 1);
  auto by_status = check_changes(*before, *after, 1000);
  EXPECT_GT(by_status["New"], 0u);
  EXPECT_GT(by_status["Updated"], 0u);
  // And back: an older catalog (a month withdrawn) is Fixed rows and Updated ones.
  auto back = check_changes(*after, *before);
  EXPECT_EQ(back["Fixed"], by_status["New"]);
  EXPECT_EQ(back["Updated"], by_status["Updated"]);
}

// A product no device runs, with a CVE and a KB of its own, its row listed first: the catalog
// numbers every other KB and CVE one place later.
void add_unrelated_product(catalog::CatalogData& data, std::mt19937& random) {
  const std::string n = std::to_string(1000 + random() % 9000);
  data.products.push_back({"9" + n, "Contoso Widget " + n, "Developer Tools"});
  catalog::CatalogData::Cve cve;
  cve.id = "CVE-2000-" + n;  // before every real one
  cve.title = "Contoso Widget Remote Code Execution Vulnerability";
  cve.severity = "Important";
  cve.cvss_base = 7.5;
  data.cves.push_back(cve);
  catalog::CatalogData::Fix fix;
  fix.document_id = data.fixes.front().document_id;
  fix.cve = cve.id;
  fix.product_id = "9" + n;
  fix.subtype = "Security Update";
  fix.kb = 100 + random() % 900;  // a number no real KB has
  data.fixes.insert(data.fixes.begin(), fix);
}

// Revisions of a catalog of the kinds MSRC publishes, at random: a CVE rescored or its threats
// restated, a fixed build corrected, a KB withdrawn from a CVE or moved to another product,
// supersedence added or removed, an update's kind restated, a product renamed, a new product, a
// month retitled or redated, a CVE's title, dates or disclosure restated, a KB's link changed.
void revise(catalog::CatalogData& data, std::mt19937& random) {
  auto pick = [&](auto& items) -> auto& {
    return items[random() % items.size()];
  };
  switch (random() % 12) {
    case 0: {
      auto& cve = pick(data.cves);
      cve.cvss_base = cve.cvss_base.value_or(5.0) + 0.5;
      break;
    }
    case 1: {
      auto& cve = pick(data.cves);
      cve.severity = cve.severity == "Critical" ? "Important" : "Critical";
      cve.exploited = !cve.exploited.value_or(false);
      break;
    }
    case 2: {
      auto& fix = pick(data.fixes);
      if (!fix.fixed_build.empty()) fix.fixed_build += "7";  // a higher revision
      break;
    }
    case 3:
      data.fixes.erase(data.fixes.begin() +
                       static_cast<std::ptrdiff_t>(random() % data.fixes.size()));
      break;
    case 4:
      if (random() % 2 == 0 && !data.supersedes.empty()) {
        data.supersedes.erase(data.supersedes.begin() +
                              static_cast<std::ptrdiff_t>(random() % data.supersedes.size()));
      } else {
        data.supersedes.emplace_back(pick(data.fixes).kb, pick(data.fixes).kb);
      }
      break;
    case 5: {
      const catalog::KbNumber kb = pick(data.fixes).kb;
      static const char* const kSubtypes[] = {"Security Update", "Monthly Rollup", "Security Only",
                                              "Cumulative Update"};
      const char* subtype = kSubtypes[random() % 4];
      for (auto& fix : data.fixes) {
        if (fix.kb == kb) fix.subtype = subtype;
      }
      break;
    }
    case 6:
      pick(data.products).name += " Preview";
      break;
    case 7:
      add_unrelated_product(data, random);
      break;
    case 8: {
      auto& month = pick(data.documents);
      if (random() % 2 == 0) {
        month.title += " (revised)";
      } else {
        month.initial_release.replace(8, 2, "28");  // another day of the month
      }
      break;
    }
    case 9: {
      auto& cve = pick(data.cves);
      cve.title += " (revised)";
      cve.updated = "2026-11-30T00:00:00Z";
      cve.publicly_disclosed = !cve.publicly_disclosed.value_or(false);
      break;
    }
    case 10: {
      const catalog::KbNumber kb = pick(data.fixes).kb;
      for (auto& fix : data.fixes) {
        if (fix.kb == kb) fix.url = "https://support.microsoft.com/help/" + std::to_string(kb);
      }
      break;
    }
    default:
      pick(data.fixes).product_id = pick(data.products).id;
      break;
  }
}

TEST(ChangeLog, ACatalogChangeIsComparedOnlyOnTheDevicesItTouches) {
  // The real inventories as they are, with half their updates, and with none.
  std::vector<inventory::Device> fleet;
  std::mt19937 random(1130);
  for (const inventory::Device& real : by_id(test::real_devices())) {
    fleet.push_back(real);
    inventory::Device half = real;
    half.id += "-half";
    std::erase_if(half.installed_kbs, [&](catalog::KbNumber) { return random() % 2 == 0; });
    fleet.push_back(half);
    inventory::Device bare = real;
    bare.id += "-bare";
    bare.installed_kbs.clear();
    bare.revision.reset();
    fleet.push_back(bare);
  }
  fleet = by_id(std::move(fleet));
  // The rollup era (Windows 7 and 8.1 Monthly Rollups and Security Only updates beside Windows
  // 10's cumulative ones) and a recent one.
  for (const std::vector<std::string>& months :
       {std::vector<std::string>{"2019-Sep", "2019-Oct", "2019-Nov"},
        std::vector<std::string>{"2023-Oct", "2023-Nov", "2023-Dec"}}) {
    SCOPED_TRACE(months.front());
    const catalog::CatalogData data = data_of(months);
    const auto base = index_of(data);
    // And each with half the updates it misses on these months installed: answers in pieces.
    std::vector<inventory::Device> devices = fleet;
    {
      const auto first = snapshot(base, fleet, 1);
      for (std::uint32_t d = 0; d < first->devices().size(); ++d) {
        inventory::Device some = first->devices()[d];
        some.id += "-some";
        for (const engine::MissingKb& kb : first->evaluation(d)->missing) {
          if (random() % 2 == 0) some.installed_kbs.push_back(kb.kb);
        }
        std::sort(some.installed_kbs.begin(), some.installed_kbs.end());
        devices.push_back(std::move(some));
        // And with none but the oldest cumulative update of each of its lines: answers in pieces
        // that still name updates to install.
        inventory::Device old = first->devices()[d];
        old.id += "-old";
        old.installed_kbs.clear();
        old.revision.reset();
        for (engine::ProductIndex p : first->result().products(d)) {
          const int line = base->products()[p].line;
          if (line >= 0 && !base->line(line).empty()) {
            old.installed_kbs.push_back(base->kbs()[base->line(line).front()].kb);
          }
        }
        std::sort(old.installed_kbs.begin(), old.installed_kbs.end());
        old.installed_kbs.erase(std::unique(old.installed_kbs.begin(), old.installed_kbs.end()),
                                old.installed_kbs.end());
        devices.push_back(std::move(old));
      }
      devices = by_id(std::move(devices));
    }
    const auto before = snapshot(base, devices, 1);
    // The same catalog read again touches nothing, and nothing is compared.
    DiffStats stats;
    std::size_t reused = 0;
    EXPECT_TRUE(check_changes(*before, *next_snapshot(*before, index_of(data), devices, 2, &reused),
                              50, &stats)
                    .empty());
    EXPECT_EQ(stats.devices, devices.size());
    EXPECT_EQ(stats.compared, 0u);
    EXPECT_EQ(stats.touched_products, 0u);
    EXPECT_EQ(reused, devices.size());
    // Read in another order, the catalog numbers its KBs otherwise: the engine breaks some ties by
    // those numbers, so every device is compared (and still nothing changed).
    catalog::CatalogData reversed = data;
    std::reverse(reversed.fixes.begin(), reversed.fixes.end());
    const auto renumbered = index_of(reversed);
    EXPECT_TRUE(engine::CatalogChange(*base, *renumbered).reordered());
    EXPECT_TRUE(
        check_changes(*before, *next_snapshot(*before, renumbered, devices, 2, &reused), 50, &stats)
            .empty());
    EXPECT_EQ(stats.compared, devices.size());
    EXPECT_EQ(reused, 0u);
    // A new product no device runs: nothing is compared, and every answer is taken from the
    // snapshot before, renumbered (next_snapshot checks them against answers evaluated anew).
    catalog::CatalogData widened = data;
    add_unrelated_product(widened, random);
    EXPECT_TRUE(check_changes(*before,
                              *next_snapshot(*before, index_of(widened), devices, 2, &reused), 50,
                              &stats)
                    .empty());
    EXPECT_EQ(stats.compared, 0u);
    EXPECT_EQ(stats.touched_products, 1u);
    EXPECT_EQ(reused, devices.size());
    // Revised at random, one to three changes at a time: whatever was skipped had no change
    // (check_changes replays the changes onto the full export and finds the next one), and the
    // devices not compared are those whose answers were taken from the snapshot before, the same
    // as evaluated (next_snapshot).
    std::size_t partial = 0, changed = 0;
    for (int round = 0; round < 40; ++round) {
      catalog::CatalogData revised = data;
      for (int r = 1 + static_cast<int>(random() % 3); r > 0; --r) revise(revised, random);
      SCOPED_TRACE(round);
      const auto after = next_snapshot(*before, index_of(revised), devices, 3, &reused);
      const auto by_status = check_changes(*before, *after, 50, &stats);
      EXPECT_EQ(reused + stats.compared, devices.size());
      if (stats.compared < stats.devices) ++partial;
      if (!by_status.empty()) ++changed;
      if (::testing::Test::HasFailure()) break;
    }
    // Most revisions leave most products alone, and some change rows.
    EXPECT_GT(partial, 20u);
    EXPECT_GT(changed, 5u);
  }
}

TEST(ChangeLog, EvaluationInputsAreEveryFieldTheEngineReads) {
  inventory::Device a = test::real_device("10_21H2_x64_pro");
  inventory::Device b = a;
  b.computer_dns_name = "other";
  b.tags = {"x"};
  b.ip_addresses = {"10.0.0.1"};
  b.last_seen = "2026-11-30T00:00:00Z";
  b.agent_version = "1";
  EXPECT_TRUE(same_evaluation_inputs(a, b));
  for (auto change : std::vector<std::function<void(inventory::Device&)>>{
           [](auto& d) { d.installed_kbs.push_back(5000001); },
           [](auto& d) { d.revision = d.revision.value_or(0) + 1; },
           [](auto& d) { d.edition = "Enterprise"; }, [](auto& d) { d.server_core = true; },
           [](auto& d) { d.build += 1; },
           [](auto& d) {
             d.software.push_back({"Edge", "M", "1"});
           },
           [](auto& d) { d.architecture = inventory::Architecture::kArm64; }}) {
    inventory::Device c = a;
    change(c);
    EXPECT_FALSE(same_evaluation_inputs(a, c));
  }
}

}  // namespace
}  // namespace kbgap::server
