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
#include "catalog/importer.h"
#include "engine_support.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "test_support.h"

namespace kbgap::server {
namespace {

// A catalog of a few real months.
std::shared_ptr<const engine::CatalogIndex> catalog_of(const std::vector<std::string>& months) {
  auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
  if (!store) throw std::runtime_error(store.error().message);
  std::vector<catalog::SourceItem> items;
  for (const std::string& m : months) items.push_back({m + ".xml", test::real_document(m)});
  auto sources = catalog::ImportSources::from_memory(std::move(items));
  auto imported = catalog::import_catalog(sources, **store, nullptr);
  if (!imported) throw std::runtime_error(imported.error().message);
  auto data = (*store)->load();
  if (!data) throw std::runtime_error(data.error().message);
  return std::make_shared<const engine::CatalogIndex>(engine::CatalogIndex::build(*data));
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
                                                 std::size_t chunk = 50000) {
  std::vector<store::VulnerabilityChange> changes;
  std::size_t chunks = 0;
  auto found = diff_snapshots(
      before, after,
      [&](std::vector<store::ChangeSet>& sets) -> Result<void> {
        ++chunks;
        for (const store::ChangeSet& set : sets) {
          EXPECT_FALSE(set.rows.empty());
          for (const auto& [id, name] : set.devices) {
            for (const auto& [status, row] : set.rows) {
              changes.push_back({"2026-11-30T12:00:00Z", status, id, name, row});
            }
          }
        }
        return ok_result();
      },
      2, chunk);
  EXPECT_TRUE(found) << found.error().message;
  EXPECT_EQ(*found, changes.size());
  // Chunks end between devices: more than one when several devices pass the chunk's size.
  std::set<std::string> devices;
  for (const auto& c : changes) devices.insert(c.device_id);
  if (chunk < changes.size() && devices.size() > 1) {
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
    auto next = snapshot(catalog, fleet, step + 2);
    for (const auto& [status, n] : check_changes(*view, *next, 7)) seen[status] += n;
    view = next;
  }
  EXPECT_GT(seen["New"], 0u);
  EXPECT_GT(seen["Fixed"], 0u);
  // Nothing moved: no change.
  auto again = snapshot(catalog, fleet, 99);
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
  auto after = snapshot(after_catalog, fleet, 1);
  auto by_status = check_changes(*before, *after, 1000);
  EXPECT_GT(by_status["New"], 0u);
  EXPECT_GT(by_status["Updated"], 0u);
  // And back: an older catalog (a month withdrawn) is Fixed rows and Updated ones.
  auto back = check_changes(*after, *before);
  EXPECT_EQ(back["Fixed"], by_status["New"]);
  EXPECT_EQ(back["Updated"], by_status["Updated"]);
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
