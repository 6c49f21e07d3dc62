// FleetView::apply, the path every write takes (docs/scaling.md, "Writes cost the batch"): a
// snapshot brought up to date from the one before, sharing its devices, their states, its counts
// and its name index, answers exactly as a snapshot built from scratch from the same devices, and
// each name names the device the rule says (docs/api.md: of several devices of one name, the one
// seen last). On the real inventories and the real catalog, with ids anywhere in the order,
// devices of one name in any case whose owner moves, devices without a name or times, releases
// learnt from the catalog, renames, re-reports, new updates, moved builds, removals, duplicate
// ids in a batch and removals of ids never stored. The states of the devices a batch leaves alone
// are carried (engine::Fleet::evaluate_onto), those no device holds any more dropped now and then,
// and the fleet-wide counts brought up to date from the snapshot before's.
#include "server/fleet_view.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "engine/fleet.h"
#include "engine_support.h"

namespace kbgap::server {
namespace {

std::string random_id(std::mt19937_64& random) {
  char id[41];
  std::snprintf(id, sizeof id, "%016llx%016llx%08x", static_cast<unsigned long long>(random()),
                static_cast<unsigned long long>(random()), static_cast<unsigned>(random()));
  return id;
}

// One of a few names, in some case: many devices share each name.
std::string random_name(std::mt19937_64& random) {
  std::string name = "pc" + std::to_string(random() % 12) + ".corp.example";
  for (char& c : name) {
    if (random() % 3 == 0) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

std::string random_day(std::mt19937_64& random) {
  char day[32];
  std::snprintf(day, sizeof day, "2026-%02u-%02uT00:00:00Z",
                1 + static_cast<unsigned>(random() % 3), 1 + static_cast<unsigned>(random() % 3));
  return day;
}

auto answer(const engine::Evaluation& e) {
  std::vector<std::tuple<engine::KbNumber, std::vector<std::string>, std::vector<std::string>>>
      missing;
  for (const engine::MissingKb& m : e.missing) missing.emplace_back(m.kb, m.products_names, m.cves);
  return std::make_tuple(missing, e.open_cves, e.products, e.revision, e.revision_inferred);
}

// The device a name should find, worked out from the devices themselves: of those whose name
// equals it in any case, the latest lastSeen, then the earliest firstSeen, then the smaller id.
std::string owner_of(const std::map<std::string, inventory::Device>& fleet, std::string_view name) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const inventory::Device* best = nullptr;
  for (const auto& [id, d] : fleet) {
    if (lower(d.computer_dns_name) != lower(name)) continue;
    if (!best || std::make_tuple(d.last_seen, std::string_view(best->first_seen), best->id) >
                     std::make_tuple(best->last_seen, std::string_view(d.first_seen), d.id)) {
      best = &d;
    }
  }
  return best ? best->id : "";
}

// Whatever a read can learn from the snapshot: devices, lookups by id and by name, answers and the
// fleet-wide counts.
void expect_same(const FleetView& applied, const FleetView& built) {
  ASSERT_EQ(applied.devices().size(), built.devices().size());
  std::set<std::string> names;
  for (std::uint32_t d = 0; d < built.devices().size(); ++d) {
    const inventory::Device& device = built.devices()[d];
    ASSERT_EQ(applied.devices()[d].id, device.id);
    EXPECT_EQ(applied.find(device.id), d);
    EXPECT_EQ(answer(*applied.evaluation(d)), answer(*built.evaluation(d))) << device.id;
    EXPECT_EQ(applied.result().missing_count(d), built.result().missing_count(d));
    EXPECT_EQ(applied.software_of(d), built.software_of(d));
    EXPECT_EQ(applied.open_cves(d), built.open_cves(d));
    EXPECT_EQ(applied.state_facts(d).open, built.state_facts(d).open);
    EXPECT_EQ(applied.state_facts(d).open, built.open_cves(d).size());
    EXPECT_EQ(applied.state_facts(d).exposure, built.state_facts(d).exposure);
    for (const auto& [name, sw] : built.facts().software) {
      EXPECT_EQ(applied.exposed_by(d, name), built.exposed_by(d, name)) << name;
    }
    for (engine::CveIndex c : built.open_cves(d)) EXPECT_TRUE(applied.cve_open_on(d, c));
    names.insert(device.computer_dns_name);
  }
  for (const std::string& stored : names) {
    std::string upper = stored, lower = stored;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const std::string& name : {stored, upper, lower}) {
      const auto want = built.find(name);
      ASSERT_TRUE(want) << name;
      const auto got = applied.find(name);
      ASSERT_TRUE(got) << name;
      EXPECT_EQ(applied.devices()[*got].id, built.devices()[*want].id) << name;
    }
  }
  EXPECT_FALSE(applied.find("no-such-device.corp.example"));
  const FleetFacts& a = applied.facts();
  const FleetFacts& b = built.facts();
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.rows_before, b.rows_before);
  EXPECT_TRUE(std::equal(a.devices_of_cve.begin(), a.devices_of_cve.end(), b.devices_of_cve.begin(),
                         b.devices_of_cve.end()));
  ASSERT_EQ(a.software.size(), b.software.size());
  for (const auto& [name, sw] : b.software) {
    // Counted as the devices themselves say: those running it, and those exposed by it.
    std::int64_t running = 0, exposed = 0;
    for (std::uint32_t d = 0; d < built.devices().size(); ++d) {
      const auto& software = built.software_of(d);
      running += std::count(software.begin(), software.end(), name);
      exposed += built.exposed_by(d, name);
    }
    EXPECT_EQ(sw.devices, running) << name;
    EXPECT_EQ(sw.exposed, exposed) << name;
    const FleetFacts::Software& other = a.software.at(name);
    EXPECT_EQ(other.devices, sw.devices) << name;
    EXPECT_EQ(other.exposed, sw.exposed) << name;
    EXPECT_EQ(other.cves, sw.cves) << name;
    EXPECT_EQ(other.public_exploit, sw.public_exploit) << name;
    EXPECT_EQ(other.cve_devices, sw.cve_devices) << name;
    ASSERT_EQ(other.missed.size(), sw.missed.size()) << name;
    for (const auto& [kb, missed] : sw.missed) {
      EXPECT_EQ(other.missed.at(kb).devices, missed.devices) << name;
      EXPECT_EQ(other.missed.at(kb).cves, missed.cves) << name;
      EXPECT_EQ(other.missed.at(kb).cve_devices, missed.cve_devices) << name;
    }
  }
}

TEST(FleetView, ABatchAppliedAnswersAsTheFleetBuiltFromScratch) {
  std::shared_ptr<const engine::CatalogIndex> catalog(&test::full_catalog(),
                                                      [](const engine::CatalogIndex*) {});
  const std::vector<inventory::Device>& real = test::real_devices();
  ASSERT_GT(real.size(), 30u);
  std::mt19937_64 random(20261201);
  auto make = [&] {
    inventory::Device d = real[random() % real.size()];
    d.id = random_id(random);
    d.computer_dns_name = random_name(random);
    d.first_seen = random_day(random);
    d.last_seen = random_day(random);
    switch (random() % 10) {
      case 0:  // no name and no times
        d.computer_dns_name.clear();
        d.first_seen.clear();
        d.last_seen.clear();
        break;
      case 1:  // a release kbgap's table lacks: named from the catalog in each snapshot
        d.os_family.clear();
        d.version.clear();
        break;
      default:
        break;
    }
    return d;
  };
  std::map<std::string, inventory::Device> fleet;  // by id
  for (int i = 0; i < 150; ++i) {
    inventory::Device d = make();
    fleet[d.id] = d;
  }
  auto all = [&] {
    std::vector<inventory::Device> out;
    for (const auto& [id, d] : fleet) out.push_back(d);
    return out;
  };
  std::shared_ptr<const FleetView> view = FleetView::build(catalog, all(), 1, 2);
  std::size_t owners_moved = 0, compacted = 0;
  for (int step = 0; step < 30; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    std::vector<inventory::Device> batch;  // in id order; an id twice: the last counts
    std::set<std::string> written, removed;
    // Every tenth batch moves every device's build: the states they held are held no more.
    const bool everyone = step % 10 == 9;
    for (const auto& [id, stored] : everyone ? fleet : std::map<std::string, inventory::Device>{}) {
      inventory::Device d = stored;
      d.revision = d.revision.value_or(1000) + 1;
      d.revision_inferred = false;
      batch.push_back(d);
      written.insert(d.id);
    }
    const int changes = everyone ? 0 : 1 + static_cast<int>(random() % 24);
    for (int k = 0; k < changes; ++k) {
      auto it = fleet.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(random() % fleet.size()));
      if (removed.count(it->first)) continue;
      inventory::Device d = it->second;
      switch (random() % 7) {
        case 0: {  // a new device, its id anywhere in the order
          batch.push_back(make());
          written.insert(batch.back().id);
          continue;
        }
        case 1:  // reported again, alike: it may now own its name
          d.last_seen = "2026-11-30T00:00:00Z";
          break;
        case 2: {  // installs some of its missing KBs
          const auto found = view->find(d.id);
          ASSERT_TRUE(found);
          for (const engine::MissingKb& kb : view->evaluation(*found)->missing) {
            if (random() % 2 == 0) d.installed_kbs.push_back(kb.kb);
          }
          std::sort(d.installed_kbs.begin(), d.installed_kbs.end());
          d.installed_kbs.erase(std::unique(d.installed_kbs.begin(), d.installed_kbs.end()),
                                d.installed_kbs.end());
          break;
        }
        case 3:  // renamed, to a name other devices have
          d.computer_dns_name = random_name(random);
          break;
        case 4:
          if (written.count(d.id)) continue;
          removed.insert(d.id);
          removed.insert(random_id(random));  // and one never stored
          continue;
        case 5: {  // in one batch twice: the first copy is a decoy
          inventory::Device decoy = d;
          decoy.installed_kbs.clear();
          decoy.computer_dns_name = "decoy";
          batch.push_back(decoy);
          d.last_seen = "2026-11-29T00:00:00Z";
          break;
        }
        default:  // its build moves
          d.revision = d.revision.value_or(1000) + 1 + static_cast<int>(random() % 500);
          d.revision_inferred = false;
          break;
      }
      batch.push_back(d);
      written.insert(d.id);
    }
    std::map<std::string, std::string> owner_before;
    for (std::uint32_t d = 0; d < view->devices().size(); ++d) {
      const std::string& name = view->devices()[d].computer_dns_name;
      owner_before[name] = view->devices()[*view->find(name)].id;
    }
    std::stable_sort(batch.begin(), batch.end(),
                     [](const auto& a, const auto& b) { return a.id < b.id; });
    for (const inventory::Device& d : batch) fleet[d.id] = d;
    for (const std::string& id : removed) fleet.erase(id);
    auto applied = FleetView::apply(*view, batch, {removed.begin(), removed.end()}, step + 2, 2);
    // Read again in full (at start, or after a restore), with the snapshot before.
    auto again = FleetView::build(catalog, all(), step + 2, 2, view.get());
    const std::size_t states_before = view->result().distinct_states();
    view = applied;  // the snapshot before is gone: nothing may point into it (ASan)
    auto built = FleetView::build(catalog, all(), step + 2, 1);
    expect_same(*applied, *built);
    expect_same(*again, *built);
    // Each name names its owner by the rule, not only as a snapshot built from scratch does.
    for (const auto& [id, d] : fleet) {
      const auto found = applied->find(d.computer_dns_name);
      ASSERT_TRUE(found);
      EXPECT_EQ(applied->devices()[*found].id, owner_of(fleet, d.computer_dns_name))
          << d.computer_dns_name;
    }
    // The shortcuts were taken: every device the batch left alone kept its name entry and its
    // state (so did those of the batch's that are evaluated alike), and the counts were brought
    // up to date from the snapshot before's.
    const std::size_t untouched = fleet.size() - written.size();
    EXPECT_EQ(applied->build_stats().names_kept, untouched);
    EXPECT_GE(applied->build_stats().devices_carried, untouched);
    if (everyone) {
      EXPECT_EQ(applied->build_stats().devices_carried, 0u);
    }
    EXPECT_TRUE(applied->build_stats().facts_updated);
    if (applied->result().carried_states() == 0) {
      ++compacted;
    } else {
      EXPECT_EQ(applied->result().carried_states(), states_before);
    }
    for (const auto& [name, id] : owner_before) {
      if (const auto now = applied->find(name); now && applied->devices()[*now].id != id) {
        ++owners_moved;
      }
    }
  }
  EXPECT_GT(owners_moved, 5u);
  // States no device held were dropped, and the counts carried across.
  EXPECT_GT(compacted, 0u);
}

}  // namespace
}  // namespace kbgap::server
