// The store contract: what every backend (SQLite, PostgreSQL) must do, run against each. A device
// store keeps batches whole, replaces by id keeping the earliest first-seen time, tells every
// opener of the database the new version, keeps the change log; a catalog store replaces a month
// whole and gives the engine the same rows in the same order whichever backend holds them.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "engine_support.h"
#include "inventory/inventory_reader.h"
#include "inventory/json_inventory.h"
#include "server/service.h"
#include "store/postgres/pg_catalog_store.h"
#include "store/postgres/pg_device_store.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "store/sqlite/sqlite_device_store.h"
#include "test_support.h"
#include "update/importer.h"

namespace kbgap::store {
namespace {

// One database of one backend, opened as many times as a test likes (as several processes or
// servers would open it).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual bool available() const { return true; }
  virtual Result<std::unique_ptr<DeviceStore>> devices() = 0;
  virtual Result<std::unique_ptr<catalog::CatalogStore>> catalog() = 0;
  // SQL run behind kbgap's back (damage from outside).
  virtual bool sql(const std::string& statements) = 0;
};

class SqliteBackend final : public Backend {
 public:
  Result<std::unique_ptr<DeviceStore>> devices() override {
    auto s = sqlite::SqliteDeviceStore::open(db_);
    if (!s) return s.error();
    return std::unique_ptr<DeviceStore>(std::move(*s));
  }
  Result<std::unique_ptr<catalog::CatalogStore>> catalog() override {
    auto s = sqlite::SqliteCatalogStore::open(db_);
    if (!s) return s.error();
    return std::unique_ptr<catalog::CatalogStore>(std::move(*s));
  }
  bool sql(const std::string& statements) override {
    auto db = sqlite::Database::open(db_);
    return db && db->exec(statements).ok();
  }

 private:
  test::TempDir dir_;
  std::string db_ = dir_.str("kbgap.db");
};

class PostgresBackend final : public Backend {
 public:
  bool available() const override { return !db_.url().empty(); }
  Result<std::unique_ptr<DeviceStore>> devices() override {
    auto s = postgres::PgDeviceStore::open(db_.url());
    if (!s) return s.error();
    return std::unique_ptr<DeviceStore>(std::move(*s));
  }
  Result<std::unique_ptr<catalog::CatalogStore>> catalog() override {
    auto s = postgres::PgCatalogStore::open(db_.url());
    if (!s) return s.error();
    return std::unique_ptr<catalog::CatalogStore>(std::move(*s));
  }
  bool sql(const std::string& statements) override {
    std::string error;
    const bool done = db_.sql(statements, &error);
    EXPECT_TRUE(done) << error;
    return done;
  }

 private:
  test::TempPgDatabase db_;
};

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "postgres") return std::make_unique<PostgresBackend>();
  return std::make_unique<SqliteBackend>();
}

// The test catalog, as the service takes it (never freed: it is the tests' for good).
std::shared_ptr<const engine::CatalogIndex> shared_full_catalog() {
  return {&test::full_catalog(), [](const engine::CatalogIndex*) {}};
}

inventory::Device real_device(const std::string& file) {
  const auto path = std::filesystem::path(KBGAP_SOURCE_DIR) / "data/inventories" / file;
  auto r = inventory::read_inventory(test::read_file(path), file);
  EXPECT_TRUE(r);
  return r->front().device;
}

std::string without_times(const inventory::Device& d) {
  inventory::Device copy = d;
  copy.first_seen.clear();
  copy.last_seen.clear();
  return boost::json::serialize(inventory::device_json(copy));
}

// Waits until `store` knows version `at_least` (another opener's write): at once on SQLite,
// within a second on PostgreSQL (its notification). False after 10 s.
bool sees(DeviceStore& store, std::int64_t at_least) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto v = store.version();
    if (v && *v >= at_least) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = make_backend(GetParam());
    if (!backend_->available()) {
      GTEST_SKIP() << "no PostgreSQL server: run the tests through ctest, which starts one "
                      "(scripts/pg_server.sh; KBGAP_TEST_POSTGRES names its URL file)";
    }
  }
  std::unique_ptr<DeviceStore> devices() {
    auto s = backend_->devices();
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  std::unique_ptr<catalog::CatalogStore> catalog() {
    auto s = backend_->catalog();
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  std::unique_ptr<Backend> backend_;
};

TEST_P(StoreContract, ReplacesByIdKeepsFirstSeenAndEveryOpenerSeesTheVersion) {
  auto a = devices();
  auto b = devices();  // another process, or another server, on the same database
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a->version(), 0);
  inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  auto first = a->put({win11, win7, win11}, "2026-01-01T00:00:00Z");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->created, 2u);
  EXPECT_EQ(first->replaced, 0u);
  EXPECT_EQ(*a->version(), first->version);  // the writer itself: the moment it returned
  EXPECT_TRUE(sees(*b, first->version));
  win11.installed_kbs.push_back(5044284);
  auto second = b->put({win11}, "2026-02-01T00:00:00Z");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->replaced, 1u);
  EXPECT_GT(second->version, first->version);
  EXPECT_TRUE(sees(*a, second->version));
  auto all = a->all();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->devices.size(), 2u);
  EXPECT_TRUE(all->damaged.empty());
  EXPECT_LT(all->devices[0].id, all->devices[1].id);  // in id order
  for (const auto& d : all->devices) {
    if (d.id != win11.id) continue;
    EXPECT_EQ(d.first_seen, "2026-01-01T00:00:00Z");
    EXPECT_EQ(d.last_seen, "2026-02-01T00:00:00Z");
    EXPECT_EQ(d.installed_kbs, win11.installed_kbs);
  }
  // An earlier first-seen time written later is kept; a later one is not.
  inventory::Device earlier = win11;
  earlier.first_seen = "2025-12-01T00:00:00Z";
  ASSERT_TRUE(a->put({earlier}, "2026-03-01T00:00:00Z"));
  earlier.first_seen = "2026-02-15T00:00:00Z";
  ASSERT_TRUE(a->put({earlier}, "2026-03-02T00:00:00Z"));
  auto kept = a->all();
  ASSERT_TRUE(kept);
  for (const auto& d : kept->devices) {
    if (d.id == win11.id) {
      EXPECT_EQ(d.first_seen, "2025-12-01T00:00:00Z");
    }
  }
  const std::int64_t before_remove = *a->version();
  EXPECT_TRUE(*a->remove(inventory::kDefaultTenant, win7.id));
  EXPECT_FALSE(*a->remove(inventory::kDefaultTenant, win7.id));
  EXPECT_TRUE(sees(*b, before_remove + 1));
  // A store opened later starts from the database's version.
  auto c = devices();
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->version(), *a->version());
  // On a shared database one opener records the change log; on SQLite each records its own.
  const int recorders =
      int{a->records_changes()} + int{b->records_changes()} + int{c->records_changes()};
  EXPECT_EQ(recorders, GetParam() == "postgres" ? 1 : 3);
  EXPECT_TRUE(a->records_changes() || b->records_changes() || c->records_changes());
}

// Every device any reader accepts (the real inventories and every saved fuzz input of the three
// inventory readers) is stored, and reads back the same through another opener.
TEST_P(StoreContract, EveryDeviceAReaderAcceptsRoundTrips) {
  std::vector<inventory::Device> accepted;
  for (const char* dir : {"data/inventories", "fuzz/corpus/inventory_text",
                          "fuzz/corpus/kbgap_json", "fuzz/corpus/osquery_json"}) {
    for (const auto& entry :
         std::filesystem::directory_iterator(std::filesystem::path(KBGAP_SOURCE_DIR) / dir)) {
      auto read = inventory::read_inventory(test::read_file(entry.path()), entry.path().string());
      if (!read) continue;
      auto devices = inventory::merge_inventories(std::move(*read));
      if (!devices) continue;
      for (auto& d : *devices) accepted.push_back(std::move(d));
    }
  }
  ASSERT_GT(accepted.size(), 500u);
  std::map<std::string, const inventory::Device*> expected;
  for (const auto& d : accepted) expected[d.id] = &d;
  {
    auto store = devices();
    ASSERT_TRUE(store);
    auto written = store->put(accepted, "2026-11-29T00:00:00Z");
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(written->created, expected.size());
  }
  auto reopened = devices();
  ASSERT_TRUE(reopened);
  auto all = reopened->all();
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_TRUE(all->damaged.empty());
  ASSERT_EQ(all->devices.size(), expected.size());
  for (const auto& d : all->devices) {
    ASSERT_TRUE(expected.count(d.id));
    EXPECT_EQ(without_times(d), without_times(*expected[d.id])) << expected[d.id]->source;
    EXPECT_FALSE(d.first_seen.empty());
    EXPECT_LE(d.last_seen, "2026-11-29T00:00:00Z");
  }
}

// A write hands back its devices exactly as changed_since() reads them back, with the tokens of
// the version before and its own, so that the server that wrote them brings its snapshot up to
// date without reading them (docs/scaling.md, "Writes cost the batch"). Also when a device's
// earlier first-seen time is kept from the row it replaces.
TEST_P(StoreContract, AWriteHandsBackItsDevicesAsTheyReadBack) {
  std::vector<inventory::Device> accepted = test::real_devices();
  ASSERT_GT(accepted.size(), 30u);
  auto store = devices();
  ASSERT_TRUE(store);
  auto start = store->changed_since(0, "");
  ASSERT_TRUE(start && *start);
  std::int64_t version = (*start)->version;
  std::string token = (*start)->token;
  auto by_key = [](const inventory::Device& a, const inventory::Device& b) {
    return std::tie(a.tenant, a.id) < std::tie(b.tenant, b.id);
  };
  auto check = [&](std::vector<inventory::Device> batch, std::string_view now) {
    auto written = store->put(batch, now);
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(written->version, version + 1);
    EXPECT_EQ(written->previous_token, token);
    auto read = store->changed_since(version, token);
    ASSERT_TRUE(read && *read);
    EXPECT_EQ((*read)->version, written->version);
    EXPECT_EQ((*read)->token, written->token);
    EXPECT_EQ((*read)->stored, written->stored);
    std::vector<inventory::Device> handed = written->devices;
    std::sort(handed.begin(), handed.end(), by_key);
    ASSERT_EQ(handed.size(), (*read)->written.size());
    for (std::size_t i = 0; i < handed.size(); ++i) {
      EXPECT_TRUE(handed[i] == (*read)->written[i]) << handed[i].id;
    }
    version = written->version;
    token = written->token;
  };
  check(accepted, "2026-11-29T00:00:00Z");
  // Half of them again, a day later and with no times of their own: first seen stays the 29th.
  std::vector<inventory::Device> again;
  for (std::size_t i = 0; i < accepted.size(); i += 2) {
    inventory::Device d = accepted[i];
    d.first_seen.clear();
    d.last_seen.clear();
    again.push_back(std::move(d));
  }
  check(again, "2026-11-30T00:00:00Z");
  // Another tenant's devices of the same ids: their own rows.
  std::vector<inventory::Device> theirs(accepted.begin(), accepted.begin() + 3);
  for (inventory::Device& d : theirs) d.tenant = "acme";
  check(theirs, "2026-11-30T00:00:00Z");
  auto all = store->all();
  ASSERT_TRUE(all);
  EXPECT_EQ(static_cast<std::int64_t>(all->devices.size()), (*store->changed_since(0, ""))->stored);
}

TEST_P(StoreContract, ABatchWithADeviceThatWouldNotReadBackWritesNothing) {
  auto store = devices();
  ASSERT_TRUE(store);
  inventory::Device good = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device bad = real_device("10_1809_x64_pro_en-us_20190307_systeminfo.txt");
  bad.architecture = inventory::Architecture::kUnknown;  // kbgap JSON requires one
  auto written = store->put({good, bad}, "2026-01-01T00:00:00Z");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(written.error().message.find("cannot be stored"), std::string::npos);
  EXPECT_EQ(*store->version(), 0);
  EXPECT_TRUE(store->all()->devices.empty());
  // A time that is not one, alone in its batch: refused too.
  bad.architecture = inventory::Architecture::kX64;
  bad.last_seen = "yesterday";
  EXPECT_FALSE(store->put({bad}, "2026-01-01T00:00:00Z"));
  EXPECT_EQ(*store->version(), 0);
  // A NUL in a name (JSON's \u0000) is refused on every backend: PostgreSQL's text cannot hold it.
  good.computer_dns_name = std::string("pc\0evil", 7);
  auto nul = store->put({good}, "2026-01-01T00:00:00Z");
  ASSERT_FALSE(nul);
  EXPECT_EQ(nul.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(nul.error().message.find("NUL"), std::string::npos);
}

TEST_P(StoreContract, TimesAreUtcAndNeverAheadOfTheWritersClock) {
  auto store = devices();
  ASSERT_TRUE(store);
  inventory::Device d = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  d.first_seen = "2025-06-01T08:00:00.5+02:00";
  d.last_seen = "9999-12-31T00:00:00Z";
  ASSERT_TRUE(store->put({d}, "2026-01-01T00:00:00Z"));
  auto all = store->all();
  ASSERT_EQ(all->devices.size(), 1u);
  EXPECT_EQ(all->devices[0].first_seen, "2025-06-01T06:00:00Z");
  EXPECT_EQ(all->devices[0].last_seen, "2026-01-01T00:00:00Z");
}

TEST_P(StoreContract, ADamagedRowIsSkippedAndReportedNeverFatal) {
  auto store = devices();
  ASSERT_TRUE(store);
  inventory::Device d = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  ASSERT_TRUE(store->put({d}, "2026-01-01T00:00:00Z"));
  // A row for "KB00001" (stored as KB1, which no reader accepts), and one that is not JSON.
  const std::string older = std::string(40, 'a');
  ASSERT_TRUE(
      backend_->sql("INSERT INTO devices (tenant, id, computer_dns_name, name_key, inventory, "
                    "first_seen, last_seen, updated_at) VALUES ('kbgap', '" +
                    older + "', 'p', 'p', '{\"id\":\"" + older +
                    "\",\"computerDnsName\":\"p\",\"osBuild\":\"10.0.19045.3803\","
                    "\"osArchitecture\":\"x64\",\"installedKbs\":[\"KB1\"]}', 'x', 'x', 'x');"
                    "INSERT INTO devices (tenant, id, computer_dns_name, name_key, inventory, "
                    "first_seen, last_seen, updated_at) VALUES ('kbgap', '" +
                    std::string(40, 'b') + "', 'q', 'q', '{not json', 'x', 'x', 'x')"));
  auto all = store->all();
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->devices.size(), 1u);
  EXPECT_EQ(all->devices[0].id, d.id);
  ASSERT_EQ(all->damaged.size(), 2u);
  EXPECT_EQ(all->damaged[0].id, older);
  EXPECT_NE(all->damaged[0].problem.find("installedKbs[0]"), std::string::npos);
  EXPECT_TRUE(*store->remove(inventory::kDefaultTenant, older));
  EXPECT_EQ(store->all()->damaged.size(), 1u);
}

// Writers through several openers at once (threads here, servers in production): every batch
// whole, every version distinct, and every opener ends on the last.
TEST_P(StoreContract, ConcurrentWritersThroughSeveralOpenersLoseNothing) {
  constexpr int kWriters = 3, kBatches = 12, kPerBatch = 20;
  const inventory::Device base = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  std::vector<std::unique_ptr<DeviceStore>> stores;
  for (int i = 0; i < kWriters; ++i) stores.push_back(devices());
  std::vector<std::vector<std::int64_t>> versions(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<inventory::Device> batch;
        for (int i = 0; i < kPerBatch; ++i) {
          inventory::Device d = base;
          d.id = fmt::format("{:040x}", (w * kBatches + b) * kPerBatch + i + 1);
          d.computer_dns_name = fmt::format("pc-{}-{}-{}", w, b, i);
          batch.push_back(std::move(d));
        }
        auto written = stores[static_cast<std::size_t>(w)]->put(batch, "2026-01-01T00:00:00Z");
        if (written) versions[static_cast<std::size_t>(w)].push_back(written->version);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::int64_t> all_versions;
  for (const auto& v : versions) {
    ASSERT_EQ(v.size(), static_cast<std::size_t>(kBatches));
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all_versions.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all_versions.size(), static_cast<std::size_t>(kWriters * kBatches));
  const std::int64_t last = *all_versions.rbegin();
  for (auto& s : stores) EXPECT_TRUE(sees(*s, last));
  auto all = stores[0]->all();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->devices.size(), static_cast<std::size_t>(kWriters * kBatches * kPerBatch));
}

std::vector<std::string> ids_of(const std::vector<inventory::Device>& devices) {
  std::vector<std::string> ids;
  for (const auto& d : devices) ids.push_back(d.id);
  return ids;
}

// What changed since a version: the devices written after it (in id order, each as last
// written), the ids removed after it and not written again, read as one state with the version
// they bring a reader to, through any opener; a version the store cannot account for is nullopt.
TEST_P(StoreContract, WhatChangedSinceAVersionIsReadAsOneState) {
  auto a = devices();
  auto b = devices();
  ASSERT_TRUE(a && b);
  auto empty = a->changed_since(0, "");
  ASSERT_TRUE(empty && *empty) << (empty ? "" : empty.error().message);
  EXPECT_EQ((*empty)->version, 0);
  EXPECT_TRUE((*empty)->written.empty() && (*empty)->removed.empty());
  inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  inventory::Device server = real_device("srv_2019_rtm_datacenter_en-us_systeminfo.txt");
  const DeviceKey win7_key{win7.tenant, win7.id};
  const std::vector<std::string> sorted_ids = [&] {
    std::vector<std::string> ids{win11.id, win7.id, server.id};
    std::sort(ids.begin(), ids.end());
    return ids;
  }();
  const std::int64_t v1 = a->put({win11, win7, server}, "2026-01-01T00:00:00Z")->version;
  auto all = b->all();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->version, v1);
  const std::string t1 = all->token;  // each version's own
  EXPECT_FALSE(t1.empty());
  auto first = b->changed_since(0, "");
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->version, v1);
  EXPECT_EQ((*first)->token, t1);
  EXPECT_EQ(ids_of((*first)->written), sorted_ids);
  EXPECT_TRUE((*b->changed_since(v1, t1))->written.empty());
  // Asked with another token: the caller's version 1 is not this database's.
  auto other_copy = b->changed_since(v1, "0123456789abcdef");
  ASSERT_TRUE(other_copy);
  EXPECT_FALSE(*other_copy);
  // A write of one device: only it.
  win11.installed_kbs.push_back(5044284);
  const std::int64_t v2 = b->put({win11}, "2026-01-02T00:00:00Z")->version;
  auto second = a->changed_since(v1, t1);
  ASSERT_TRUE(second && *second);
  EXPECT_EQ((*second)->version, v2);
  const std::string t2 = (*second)->token;
  EXPECT_NE(t2, t1);
  ASSERT_EQ((*second)->written.size(), 1u);
  EXPECT_EQ((*second)->written[0].installed_kbs, win11.installed_kbs);
  EXPECT_EQ((*second)->written[0].first_seen, "2026-01-01T00:00:00Z");  // as stored
  EXPECT_TRUE((*second)->removed.empty());
  // A removal, seen from before it and from before the write before it.
  ASSERT_TRUE(*a->remove(inventory::kDefaultTenant, win7.id));
  const std::int64_t v3 = *a->version();
  ASSERT_TRUE(sees(*b, v3));
  auto third = b->changed_since(v2, t2);
  ASSERT_TRUE(third && *third);
  EXPECT_EQ((*third)->version, v3);
  EXPECT_TRUE((*third)->written.empty());
  EXPECT_EQ((*third)->removed, std::vector<DeviceKey>{win7_key});
  auto both = b->changed_since(v1, t1);
  EXPECT_EQ(ids_of((*both)->written), std::vector<std::string>{win11.id});
  EXPECT_EQ((*both)->removed, std::vector<DeviceKey>{win7_key});
  // Written again after its removal: written, not removed.
  const std::int64_t v4 = a->put({win7}, "2026-01-03T00:00:00Z")->version;
  auto back = a->changed_since(v2, t2);
  EXPECT_EQ(ids_of((*back)->written), std::vector<std::string>{win7.id});
  EXPECT_TRUE((*back)->removed.empty());
  EXPECT_EQ((*back)->version, v4);
  // Removed again: removed, with no row of it written.
  ASSERT_TRUE(*a->remove(inventory::kDefaultTenant, win7.id));
  auto again = a->changed_since(v2, t2);
  EXPECT_TRUE((*again)->written.empty());
  EXPECT_EQ((*again)->removed, std::vector<DeviceKey>{win7_key});
  // A row damaged by a write from outside, since: listed as damaged, not as a device.
  const std::int64_t v5 = (*again)->version;
  const std::string t5 = (*again)->token;
  ASSERT_TRUE(backend_->sql(
      "UPDATE devices SET inventory = '{not json', written_version = 1000 WHERE id = '" +
      server.id + "'; UPDATE fleet_version SET version = 1000"));
  auto damaged = a->changed_since(v5, t5);
  ASSERT_TRUE(damaged && *damaged);
  EXPECT_EQ((*damaged)->version, 1000);
  EXPECT_TRUE((*damaged)->written.empty());
  ASSERT_EQ((*damaged)->damaged.size(), 1u);
  EXPECT_EQ((*damaged)->damaged[0].id, server.id);
  // Newer than the database (a restored backup), or older than the removals it keeps: nullopt.
  auto ahead = a->changed_since(1001, "");
  ASSERT_TRUE(ahead);
  EXPECT_FALSE(*ahead);
  ASSERT_TRUE(backend_->sql("UPDATE fleet_version SET forgotten = 900"));
  EXPECT_FALSE(*a->changed_since(899, ""));
  EXPECT_TRUE(*a->changed_since(900, ""));
}

// The delta export's change log: sets shared by devices, rows numbered on for good (also when
// older ones are forgotten), read back from any row, and a damaged set is an error, not a guess.
TEST_P(StoreContract, TheChangeLogNumbersRowsForGoodAndForgetsTheOldest) {
  auto store = devices();
  ASSERT_TRUE(store);
  auto row = [](std::string cve, double cvss) {
    VulnerabilityRow r;
    r.software = "windows_10";
    r.version = "10.0.19045.4291";
    r.cve = std::move(cve);
    r.cvss = cvss;
    r.severity = "High";
    r.exploitability = "NoExploit";
    r.kb = 5036892;
    r.kb_name = "2024-04 Security Updates";
    r.kb_url = "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB5036892";
    return r;
  };
  const std::string a(40, 'a'), b(40, 'b'), c(40, 'c');
  ChangeSet alike{std::string(inventory::kDefaultTenant),
                  {new_change_part({{"New", row("CVE-2024-26234", 7.8)}}),
                   new_change_part({{"Fixed", row("CVE-2024-26158", 0)}})},
                  {{a, "pc-a"}, {b, "pc-b"}}};
  ChangeSet one{std::string(inventory::kDefaultTenant),
                {new_change_part({{"Updated", row("CVE-2024-29988", 8.8)}})},
                {{c, "pc-c"}}};
  auto record = [&](const std::string& at, std::vector<ChangeSet> sets, const std::string& forget) {
    ASSERT_TRUE(store->record_changes(sets));
    ASSERT_TRUE(store->publish_changes(at, forget));
  };
  record("2026-11-01T00:00:00Z", {alike, one}, "2026-10-01T00:00:00Z");
  // Recorded, not published: no range reaches it, and it reads without a time; discarded: gone.
  ASSERT_TRUE(store->record_changes({one}));
  EXPECT_EQ(store->changes_since(inventory::kDefaultTenant, "2026-10-31T00:00:00Z")->end, 5);
  auto pending = store->device_changes(inventory::kDefaultTenant, 5, 10);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().at, "");
  // Another opener's unpublished changes are not this one's to publish or discard.
  auto other = devices();
  ASSERT_TRUE(other && other->discard_changes());
  ASSERT_EQ(store->device_changes(inventory::kDefaultTenant, 5, 10)->size(), 1u);
  ASSERT_TRUE(store->discard_changes());
  auto after_discard = store->device_changes(inventory::kDefaultTenant, 5, 10);
  ASSERT_EQ(after_discard->size(), 1u);  // the change before: none holds row 5
  EXPECT_EQ(after_discard->front().position, 4);
  record("2026-11-20T00:00:00Z", {one}, "2026-10-01T00:00:00Z");
  // Rows: a's 0-1, b's 2-3, c's 4, then c's 5.
  auto all = store->changes_since(inventory::kDefaultTenant, "2026-10-31T00:00:00Z");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->first, 0);
  EXPECT_EQ(all->end, 6);
  auto later = store->changes_since(inventory::kDefaultTenant, "2026-11-10T00:00:00Z");
  EXPECT_EQ(later->first, 5);
  EXPECT_EQ(later->end, 6);
  auto none = store->changes_since(inventory::kDefaultTenant, "2026-11-21T00:00:00Z");
  EXPECT_EQ(none->first, none->end);
  auto from_3 = store->device_changes(inventory::kDefaultTenant, 3, 10);
  ASSERT_TRUE(from_3);
  ASSERT_EQ(from_3->size(), 3u);
  EXPECT_EQ(from_3->front().device_id, b);
  EXPECT_EQ(from_3->front().position, 2);
  EXPECT_EQ(from_3->back().position, 5);
  auto set = store->change_set(from_3->front().change_set);
  ASSERT_TRUE(set);
  ASSERT_EQ(set->size(), 2u);
  EXPECT_EQ((*set)[0].first, "New");
  EXPECT_EQ((*set)[0].second.cve, "CVE-2024-26234");
  EXPECT_EQ((*set)[0].second.cvss, 7.8);
  EXPECT_EQ((*set)[1].second.kb_url, row("", 0).kb_url);
  record("2026-11-25T00:00:00Z", {one}, "2026-11-10T00:00:00Z");
  auto kept = store->changes_since(inventory::kDefaultTenant, "2026-01-01T00:00:00Z");
  EXPECT_EQ(kept->first, 5);
  EXPECT_EQ(kept->end, 7);
  EXPECT_TRUE(store->change_set(from_3->front().change_set)->empty());
  ASSERT_TRUE(backend_->sql("UPDATE change_parts SET rows = '[[1,2]]'"));
  auto damaged = store->change_set(from_3->back().change_set);
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().message.find("malformed"), std::string::npos);
  ASSERT_TRUE(backend_->sql("UPDATE change_sets SET parts = '[\"x\"]'"));
  damaged = store->change_set(from_3->back().change_set);
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().message.find("malformed part"), std::string::npos);
}

// Rows that many devices' sets hold alike are kept once per recording: a part recorded by one
// call is named by the next without its rows (the delta export reads them back all the same);
// once published, such a part is refused. Sets recorded before parts were still read.
TEST_P(StoreContract, AChangePartIsKeptOncePerRecording) {
  auto store = devices();
  ASSERT_TRUE(store);
  const std::string tenant(inventory::kDefaultTenant);
  auto row = [](std::string cve) {
    VulnerabilityRow r;
    r.software = "windows_11";
    r.version = "10.0.22631.3447";
    r.cve = std::move(cve);
    r.cvss = 7.5;
    r.severity = "High";
    r.exploitability = "NoExploit";
    r.kb = 5036893;
    r.kb_name = "2024-04 Cumulative Update";
    r.kb_url = "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB5036893";
    return r;
  };
  auto shared = new_change_part({{"New", row("CVE-2024-26209")}, {"New", row("CVE-2024-26210")}});
  auto own = new_change_part({{"New", row("CVE-2024-26211")}});
  auto bare = [](const std::shared_ptr<const ChangePart>& p) {
    auto named = std::make_shared<ChangePart>();
    named->serial = p->serial;
    named->count = p->count;
    return std::shared_ptr<const ChangePart>(named);
  };
  const std::string a(40, 'a'), b(40, 'b');
  ASSERT_TRUE(store->record_changes({ChangeSet{tenant, {shared, own}, {{a, "pc-a"}}}}));
  ASSERT_TRUE(store->record_changes({ChangeSet{tenant, {bare(shared)}, {{b, "pc-b"}}}}));
  ASSERT_TRUE(store->publish_changes("2026-11-01T00:00:00Z", "2026-10-01T00:00:00Z"));
  auto changes = store->device_changes(tenant, 0, 10);
  ASSERT_TRUE(changes);
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[0].count, 3);
  EXPECT_EQ((*changes)[1].position, 3);
  EXPECT_EQ((*changes)[1].count, 2);
  auto first = store->change_set((*changes)[0].change_set);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].second.cve, "CVE-2024-26209");
  EXPECT_EQ((*first)[2].second.cve, "CVE-2024-26211");
  auto second = store->change_set((*changes)[1].change_set);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ((*second)[1].first, "New");
  EXPECT_EQ((*second)[1].second.cve, "CVE-2024-26210");
  EXPECT_EQ((*second)[1].second.kb_url, row("").kb_url);
  auto refused = store->record_changes({ChangeSet{tenant, {bare(own)}, {{b, "pc-b"}}}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kStorage);
  EXPECT_EQ(store->changes_since(tenant, "2026-01-01T00:00:00Z")->end, 5);
  // A call that fails keeps none of the parts it stored: named again without rows, refused.
  auto fresh = new_change_part({{"New", row("CVE-2024-26213")}});
  auto unknown = bare(new_change_part({{"New", row("CVE-2024-26214")}}));
  ASSERT_FALSE(store->record_changes({ChangeSet{tenant, {fresh, unknown}, {{a, "pc-a"}}}}));
  auto after_failure = store->record_changes({ChangeSet{tenant, {bare(fresh)}, {{a, "pc-a"}}}});
  ASSERT_FALSE(after_failure);
  EXPECT_EQ(after_failure.error().code, ErrorCode::kStorage);
  ASSERT_TRUE(store->discard_changes());
  EXPECT_EQ(store->changes_since(tenant, "2026-01-01T00:00:00Z")->end, 5);
  // A set of before (its rows its own, no parts) reads as it did.
  ASSERT_TRUE(backend_->sql(
      "INSERT INTO change_sets (at, rows, count) VALUES ('2026-11-02T00:00:00Z', '[[\"Fixed\","
      "\"windows_11\",\"10.0.22631.3447\",\"CVE-2024-26212\",5.5,\"Medium\",\"NoExploit\","
      "5036893,\"2024-04 Cumulative Update\",\"\"]]', 1)"));
  auto old = store->change_set((*changes)[1].change_set + 1);
  ASSERT_TRUE(old) << old.error().message;
  ASSERT_EQ(old->size(), 1u);
  EXPECT_EQ((*old)[0].first, "Fixed");
  EXPECT_EQ((*old)[0].second.cve, "CVE-2024-26212");
  EXPECT_EQ((*old)[0].second.cvss, 5.5);
  // Forgotten with their sets.
  ASSERT_TRUE(store->publish_changes("2026-11-20T00:00:00Z", "2026-11-10T00:00:00Z"));
  EXPECT_TRUE(store->change_set((*changes)[0].change_set)->empty());
  EXPECT_TRUE(store->change_set((*changes)[1].change_set + 1)->empty());
}

// Real months of three eras and a revision; the catalog store's every read, as text.
std::string describe(catalog::CatalogStore& store) {
  std::string out;
  auto data = store.load();
  if (!data) return "load failed: " + data.error().message;
  for (const auto& d : data->documents) {
    out += fmt::format("document {} {} {} {} {} {} {} {} {}\n", d.id, d.title, d.initial_release,
                       d.current_release, d.revision, d.source, d.sha256, d.vulnerabilities,
                       d.kb_fixes);
  }
  for (const auto& p : data->products)
    out += fmt::format("product {} {} {}\n", p.id, p.name, p.family);
  for (const auto& c : data->cves) {
    out += fmt::format("cve {} {} {} {} {} {} {} {} {} {}\n", c.id, c.title, c.severity, c.impact,
                       c.cvss_base ? fmt::format("{}", *c.cvss_base) : "-",
                       c.exploited ? (*c.exploited ? "y" : "n") : "-",
                       c.publicly_disclosed ? (*c.publicly_disclosed ? "y" : "n") : "-",
                       c.cvss_vector, c.published, c.updated);
  }
  for (const auto& f : data->fixes) {
    out += fmt::format("fix {} {} {} {} {} {} {}\n", f.document_id, f.cve, f.product_id, f.subtype,
                       f.fixed_build, f.url, f.kb);
  }
  for (const auto& [kb, old] : data->supersedes) out += fmt::format("supersedes {} {}\n", kb, old);
  auto stats = store.stats();
  if (!stats) return "stats failed";
  out += fmt::format("stats {} {} {} {} {} {} {} {} {} {}\n", stats->documents,
                     stats->bulletin_days, stats->products, stats->cves, stats->kbs,
                     stats->supersedence_edges, stats->remediations, stats->first_release,
                     stats->last_release, stats->first_bulletin);
  auto imports = store.imports();
  if (!imports) return "imports failed";
  for (const auto& i : *imports) {
    out += fmt::format("import {} {} {} {} {} {} {}\n", i.document_id, i.revision,
                       i.current_release, i.sha256, i.source, i.outcome, i.changes);
  }
  for (catalog::KbNumber kb : {4540673, 4538461, 5033372}) {
    auto rems = store.kb_remediations(kb);
    if (!rems) return "kb_remediations failed";
    for (const auto& r : *rems) {
      out += fmt::format("kb {} {} {} {} {} {} {} {}", kb, r.document_id, r.cve, r.subtype,
                         r.fixed_build, r.fixed_build_raw, r.url, r.restart_required);
      for (const auto& p : r.products) out += fmt::format(" [{} {}]", p.id, p.name);
      for (auto s : r.supersedes) out += fmt::format(" <{}", s);
      out += '\n';
    }
  }
  auto tx = store.begin();
  if (!tx) return "begin failed";
  auto facts = (*tx)->month_facts("2020-Mar");
  if (!facts) return "month_facts failed";
  out += fmt::format("facts {} products {} kbs {} builds {} supersedes\n", facts->products.size(),
                     facts->kbs.size(), facts->fixed_builds.size(), facts->supersedes.size());
  auto names = (*tx)->product_names();
  if (!names) return "product_names failed";
  for (const auto& [name, id] : *names) out += fmt::format("name {} {}\n", name, id);
  return out;
}

// "" when equal, else the first line that differs in each.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "";
    if (!ga || !gb || la != lb) {
      return fmt::format("line {}:\n  {}\n  {}", line, ga ? la : "(end)", gb ? lb : "(end)");
    }
  }
}

Result<catalog::ImportSummary> import_months(catalog::CatalogStore& store, const test::TempDir& dir,
                                             const std::map<std::string, std::string>& months) {
  std::vector<std::string> paths;
  for (const auto& [id, xml] : months) {
    paths.push_back(dir.str(id + ".xml"));
    test::write_file(paths.back(), xml);
  }
  auto sources = catalog::ImportSources::from_paths(paths);
  if (!sources) return sources.error();
  return catalog::import_catalog(*sources, store, nullptr);
}

// The same months imported into each backend read back the same, row for row and in order
// (the engine breaks some ties by index), and a revised month replaces its rows whole.
TEST_P(StoreContract, ACatalogReadsBackAsTheSQLiteCatalogDoes) {
  test::TempDir files;
  const std::map<std::string, std::string> months = {{"2017-May", test::real_document("2017-May")},
                                                     {"2020-Feb", test::real_document("2020-Feb")},
                                                     {"2020-Mar", test::real_document("2020-Mar")},
                                                     {"2023-Dec", test::real_document("2023-Dec")}};
  std::size_t vulns = 0;
  const std::map<std::string, std::string> revision = {
      {"2020-Mar", test::newer_revision_of_march_2020(&vulns)}};
  SqliteBackend reference_backend;
  auto reference = reference_backend.catalog();
  auto store = catalog();
  ASSERT_TRUE(reference && store);
  for (catalog::CatalogStore* s : {reference->get(), store.get()}) {
    auto first = import_months(*s, files, months);
    ASSERT_TRUE(first) << first.error().message;
  }
  // Imported at another time, from the same files: every read but the import times is equal.
  const std::string before = describe(*store);
  EXPECT_EQ(first_difference(before, describe(**reference)), "");
  EXPECT_NE(before.find("\nfix 2023-Dec"), std::string::npos);
  test::TempDir newer;
  for (catalog::CatalogStore* s : {reference->get(), store.get()}) {
    auto second = import_months(*s, newer, revision);
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_EQ(second->count(catalog::DocumentOutcome::kReplaced), 1);
  }
  const std::string after = describe(*store);
  EXPECT_EQ(first_difference(after, describe(**reference)), "");
  EXPECT_EQ(before.find(" 2020-05-01T07:00:00Z 12 "), std::string::npos);
  EXPECT_NE(after.find(" 2020-05-01T07:00:00Z 12 "), std::string::npos);  // revision 12 stored
  // A transaction dropped without commit leaves nothing behind.
  {
    auto tx = store->begin();
    ASSERT_TRUE(tx);
    catalog::Document empty;
    empty.id = "2099-Jan";
    empty.title = "not committed";
    empty.initial_release = empty.current_release = "2099-01-13T08:00:00Z";
    ASSERT_TRUE((*tx)->replace_document(empty, "{}"));
  }
  EXPECT_EQ(first_difference(describe(*store), after), "");
}

// Everything a snapshot answers, as text: its devices in order, and for each its answer, its
// software, exposure and rows; its lookups by name; and the fleet-wide counts.
std::string describe(const server::FleetView& v) {
  std::ostringstream out;
  out << "version " << v.version() << "\n";
  for (std::uint32_t d = 0; d < v.devices().size(); ++d) {
    const inventory::Device& device = v.devices()[d];
    out << boost::json::serialize(inventory::device_json(device)) << "\n  "
        << *v.missing_kbs_value(d) << "\n  exposure " << v.state_facts(d).exposure << " software";
    for (const std::string& s : v.software_of(d)) out << " " << s;
    out << "\n  rows";
    for (const auto& r : v.open_rows(d))
      out << " " << r.cve.value() << "/" << r.kb.value() << "/" << r.product;
    const auto by_name = v.find(device.computer_dns_name);
    out << "\n  name " << device.computer_dns_name << " -> "
        << (by_name ? v.devices()[*by_name].id : "none") << "\n";
  }
  const server::FleetFacts& facts = v.facts();
  out << "rows " << facts.rows() << "\ncves";
  for (std::size_t c = 0; c < facts.devices_of_cve.size(); ++c) {
    if (facts.devices_of_cve[engine::CveIndex(static_cast<std::uint32_t>(c))]) {
      out << " " << c << ":"
          << facts.devices_of_cve[engine::CveIndex(static_cast<std::uint32_t>(c))];
    }
  }
  for (const auto& [name, sw] : facts.software) {
    out << "\nsoftware " << name << " " << sw.devices << " " << sw.exposed << " "
        << sw.public_exploit << " cves " << sw.cves.size();
    for (const auto& [kb, missed] : sw.missed) {
      out << " " << kb.value() << ":" << missed.devices << "/" << missed.cves.size();
    }
  }
  return out.str() + "\n";
}

// A database restored from a backup, or failed over to a copy that missed the last writes, has
// a lower version than the servers know, and numbers its next writes again: a server follows it,
// also when other servers have written past its old version before it looks and the copy holds
// as many devices (each version's token differs from the copy's), and reads every device from it.
TEST_P(StoreContract, ADatabaseRestoredToAnOlderCopyIsFollowed) {
  const auto catalog = shared_full_catalog();
  const inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  const inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  inventory::Device server = real_device("srv_2019_rtm_datacenter_en-us_systeminfo.txt");
  ASSERT_FALSE(win7.installed_kbs.empty());
  auto other = devices();  // another server
  ASSERT_TRUE(other);
  server::Service service(catalog, devices(), 1);
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win11, win7, server}));
  // The backup, taken at version 1.
  ASSERT_TRUE(
      backend_->sql("CREATE TABLE devices_copy AS SELECT * FROM devices;"
                    " CREATE TABLE tokens_copy AS SELECT * FROM version_tokens"));
  inventory::Device win7_later = win7;
  win7_later.installed_kbs.clear();
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win7_later}));
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win11}));
  ASSERT_EQ((*service.view(inventory::kDefaultTenant))->version(), 3);
  // Restored: as it was at version 1, the same three devices. The other server then writes past
  // version 3 (the server's device, changed) before this one looks.
  ASSERT_TRUE(backend_->sql(
      "DELETE FROM devices; INSERT INTO devices SELECT * FROM devices_copy;"
      " DELETE FROM version_tokens; INSERT INTO version_tokens SELECT * FROM tokens_copy;"
      " UPDATE fleet_version SET version = 1, devices = 3"));
  server.installed_kbs.clear();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(other->put({server}, "2026-11-30T00:00:00Z"));
  std::shared_ptr<const server::FleetView> view;
  auto kbs_of = [&](const std::string& id) {
    const auto found = view->find(id);
    return found ? view->devices()[*found].installed_kbs : std::vector<inventory::KbNumber>{1};
  };
  for (int wait = 0; wait < 500; ++wait) {
    view = *service.view(inventory::kDefaultTenant);
    if (view->version() == 4 && kbs_of(server.id).empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(view->version(), 4);
  ASSERT_EQ(view->devices().size(), 3u);
  EXPECT_TRUE(kbs_of(server.id).empty());          // the other server's write
  EXPECT_EQ(kbs_of(win7.id), win7.installed_kbs);  // the copy's, not the lost write's
  // And writes go on from there, brought up to date from the changes again.
  auto next = service.put_devices(inventory::kDefaultTenant, {win7_later});
  ASSERT_TRUE(next);
  EXPECT_EQ(next->version, 5);
  auto after = *service.view(inventory::kDefaultTenant);
  EXPECT_EQ(after->devices().ptr(*after->find(win11.id)),
            view->devices().ptr(*view->find(win11.id)));
  EXPECT_TRUE(after->devices()[*after->find(win7.id)].installed_kbs.empty());
}

// The fleet-wide counts (FleetFacts, worked out once per shared part of the states' answers) are
// the sums of the devices' own answers: for each CVE the devices it is open on, for each software
// and missing KB the devices missing it and the CVEs it closes there.
void expect_counts_are_the_answers_summed(const server::FleetView& v) {
  std::map<std::string, std::int64_t> devices_of_cve;
  std::map<std::pair<std::string, engine::KbNumber>, std::pair<std::int64_t, std::set<std::string>>>
      missed;
  std::map<std::string, std::set<std::string>> cves_of_software;
  for (std::uint32_t d = 0; d < v.devices().size(); ++d) {
    const auto ev = v.evaluation(d);
    for (const std::string& c : ev->open_cves) ++devices_of_cve[c];
    for (const engine::MissingKb& m : ev->missing) {
      for (const std::string& name : m.products_names) {
        auto& entry = missed[{name, m.kb}];
        ++entry.first;
        entry.second.insert(m.cves.begin(), m.cves.end());
        cves_of_software[name].insert(m.cves.begin(), m.cves.end());
      }
    }
  }
  const server::FleetFacts& facts = v.facts();
  const engine::CatalogIndex& catalog = v.catalog();
  std::map<std::string, std::int64_t> counted;
  for (engine::CveIndex c : catalog.cve_indices()) {
    if (facts.devices_of_cve[c]) counted[catalog.cves()[c].id] = facts.devices_of_cve[c];
  }
  EXPECT_EQ(counted, devices_of_cve);
  std::map<std::pair<std::string, engine::KbNumber>, std::pair<std::int64_t, std::set<std::string>>>
      facts_missed;
  std::map<std::string, std::set<std::string>> facts_cves;
  for (const auto& [name, sw] : facts.software) {
    for (const auto& [kb, m] : sw.missed) {
      auto& entry = facts_missed[{name, catalog.kbs()[kb].kb}];
      entry.first = m.devices;
      for (engine::CveIndex c : m.cves) entry.second.insert(catalog.cves()[c].id);
    }
    for (engine::CveIndex c : sw.cves) facts_cves[name].insert(catalog.cves()[c].id);
  }
  EXPECT_EQ(facts_missed, missed);
  EXPECT_EQ(facts_cves, cves_of_software);
}

// A server's snapshot brought up to date from what changed since it (its own writes, another
// server's, removals, a device written again after its removal) answers exactly as a snapshot
// built from every stored device, and shares the devices nobody wrote with the snapshot before.
TEST_P(StoreContract, ASnapshotBroughtUpToDateAnswersAsOneBuiltFromEveryDevice) {
  const auto catalog = shared_full_catalog();
  auto other = devices();  // another server on the same database
  auto reader = devices();
  ASSERT_TRUE(other && reader);
  server::Service service(catalog, devices(), 2);
  std::vector<inventory::Device> real = test::real_devices();
  ASSERT_GT(real.size(), 30u);
  std::mt19937 random(20261201);
  // Copies of the real devices under their own ids: a fleet of a few hundred, of many states.
  std::vector<inventory::Device> pool;
  for (int copy = 0; copy < 4; ++copy) {
    for (const inventory::Device& d : real) {
      inventory::Device c = d;
      c.id = fmt::format("{:040x}", pool.size() * 7919 + 1);
      c.computer_dns_name = fmt::format("{}-{}", d.computer_dns_name, copy);
      // Some of its KBs: another state.
      std::vector<inventory::KbNumber> kept;
      for (auto kb : c.installed_kbs) {
        if (random() % 4 != 0) kept.push_back(kb);
      }
      c.installed_kbs = std::move(kept);
      pool.push_back(std::move(c));
    }
  }
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {pool.begin(), pool.begin() + 90}));
  std::size_t next = 90;
  std::set<std::string> removed;
  for (int step = 0; step < 8; ++step) {
    const auto before = service.view(inventory::kDefaultTenant);
    ASSERT_TRUE(before) << before.error().message;
    std::vector<inventory::Device> batch;
    std::set<std::string> touched;
    const std::size_t n = (*before)->devices().size();
    for (int k = 0; k < 6 && n > 0; ++k) {
      inventory::Device d = (*before)->devices()[random() % n];
      if (random() % 2) {
        d.installed_kbs.clear();
        d.revision.reset();
      } else {
        d.computer_dns_name = (*before)->devices()[random() % n].computer_dns_name;  // a name twice
        d.last_seen.clear();
      }
      touched.insert(d.id);
      batch.push_back(std::move(d));
    }
    for (int k = 0; k < 4 && next < pool.size(); ++k) {
      touched.insert(pool[next].id);
      batch.push_back(pool[next++]);
    }
    if (step % 3 == 2 && !removed.empty()) {  // one removed earlier comes back
      const inventory::Device* back = nullptr;
      for (const auto& d : pool) {
        if (d.id == *removed.begin()) back = &d;
      }
      ASSERT_TRUE(back);
      touched.insert(back->id);
      batch.push_back(*back);
      removed.erase(removed.begin());
    }
    if (step % 2 == 0) {
      ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, batch));
    } else {
      auto written = other->put(batch, "2026-11-30T00:00:00Z");  // through another server
      ASSERT_TRUE(written) << written.error().message;
      ASSERT_TRUE(sees(*reader, written->version));
    }
    // Removals, through this server and the other.
    for (int k = 0; k < 2; ++k) {
      const auto latest = service.view(inventory::kDefaultTenant);
      ASSERT_TRUE(latest);
      const std::string id = (*latest)->devices()[random() % (*latest)->devices().size()].id;
      if (touched.count(id)) continue;
      touched.insert(id);
      removed.insert(id);
      ASSERT_TRUE(k == 0 ? *service.remove_device(inventory::kDefaultTenant, id)
                         : *other->remove(inventory::kDefaultTenant, id));
    }
    auto all = reader->all();  // the database's state now
    ASSERT_TRUE(all);
    const std::int64_t version = all->version;
    std::shared_ptr<const server::FleetView> after;
    for (int wait = 0; wait < 1000; ++wait) {  // the other server's removal: within a second
      auto v = service.view(inventory::kDefaultTenant);
      ASSERT_TRUE(v);
      after = *v;
      if (after->version() >= version) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(after->version(), version);
    const auto full = server::FleetView::build(catalog, std::move(all->devices), all->version, 1);
    ASSERT_EQ(describe(*after), describe(*full)) << "step " << step;
    if (step % 5 == 0) expect_counts_are_the_answers_summed(*after);
    // The devices nobody wrote are the snapshot before's, not read again.
    std::size_t shared = 0;
    for (std::uint32_t d = 0; d < after->devices().size(); ++d) {
      const auto was = (*before)->find(after->devices()[d].id);
      if (!was || touched.count(after->devices()[d].id)) continue;
      EXPECT_EQ(after->devices().ptr(d), (*before)->devices().ptr(*was)) << after->devices()[d].id;
      ++shared;
    }
    EXPECT_GT(shared, 50u);
  }
}

// Tenants (docs/api.md, "Tenants"): a device is its tenant and id. Two tenants may hold devices of
// one id; removing one's leaves the other's; what changed, the snapshots, their counts and the
// change log are each tenant's own.
TEST_P(StoreContract, TwoTenantsKeepTheirDevicesCountsAndChangesApart) {
  const auto catalog = shared_full_catalog();
  auto store = devices();
  ASSERT_TRUE(store);
  inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  inventory::Device contoso_win11 = win11, fabrikam_win11 = win11, fabrikam_win7 = win7;
  contoso_win11.tenant = "contoso";
  fabrikam_win11.tenant = fabrikam_win7.tenant = "fabrikam";
  fabrikam_win11.installed_kbs.clear();  // the same id, another device
  fabrikam_win11.revision.reset();
  fabrikam_win11.computer_dns_name = "fabrikam-pc";
  // A tenant that is not a name is refused with the device named, and nothing is written.
  inventory::Device bad = win7;
  bad.tenant = "a/b";
  auto refused = store->put({contoso_win11, bad}, "2026-01-01T00:00:00Z");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(refused.error().message.find("'a/b' is not a tenant name"), std::string::npos);
  EXPECT_TRUE(store->all()->devices.empty());

  auto first = store->put({fabrikam_win7, contoso_win11, fabrikam_win11}, "2026-01-01T00:00:00Z");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->created, 3u);
  auto all = store->all();
  ASSERT_TRUE(all);
  std::vector<DeviceKey> keys;
  for (const auto& d : all->devices) keys.push_back({d.tenant, d.id});
  std::vector<DeviceKey> expected{
      {"contoso", win11.id}, {"fabrikam", win11.id}, {"fabrikam", win7.id}};
  std::sort(expected.begin() + 1, expected.end());
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(all->devices[0].installed_kbs, win11.installed_kbs);
  // Written again in one tenant: replaced there only.
  auto again = store->put({contoso_win11}, "2026-01-02T00:00:00Z");
  EXPECT_EQ(again->replaced, 1u);
  EXPECT_EQ(again->created, 0u);
  // Removed from one tenant: the other's device of that id stays; another tenant's id is not
  // this one's to remove.
  const std::int64_t v = again->version;
  auto token = store->changed_since(0, "");  // the token of version v, read with it
  ASSERT_TRUE(token && *token);
  ASSERT_EQ((*token)->version, v);
  EXPECT_FALSE(*store->remove("contoso", win7.id));
  EXPECT_TRUE(*store->remove("contoso", win11.id));
  auto changed = store->changed_since(v, (*token)->token);
  ASSERT_TRUE(changed && *changed);
  EXPECT_EQ((*changed)->removed, (std::vector<DeviceKey>{{"contoso", win11.id}}));
  EXPECT_EQ((*changed)->stored, 2);
  all = store->all();
  ASSERT_EQ(all->devices.size(), 2u);
  EXPECT_EQ(all->devices[0].tenant, "fabrikam");

  // The server's snapshots: each tenant sees its own devices, by id and by name, and its counts.
  server::Service service(catalog, devices(), 1);
  ASSERT_TRUE(service.put_devices("contoso", {win11}));
  auto contoso = service.view("contoso");
  auto fabrikam = service.view("fabrikam");
  auto nobody = service.view("nobody");
  ASSERT_TRUE(contoso && fabrikam && nobody);
  EXPECT_EQ((*contoso)->devices().size(), 1u);
  EXPECT_EQ((*fabrikam)->devices().size(), 2u);
  EXPECT_EQ((*nobody)->devices().size(), 0u);
  EXPECT_FALSE((*contoso)->find(win7.id));
  EXPECT_FALSE((*contoso)->find("fabrikam-pc"));
  EXPECT_TRUE((*fabrikam)->find("fabrikam-pc"));
  EXPECT_FALSE((*nobody)->find(win11.id));
  expect_counts_are_the_answers_summed(**contoso);
  expect_counts_are_the_answers_summed(**fabrikam);
  EXPECT_TRUE((*nobody)->facts().software.empty());
  // Each has one Windows 11 device: counted once in each, never twice.
  for (const auto* v : {&*contoso, &*fabrikam}) {
    const auto& software = (*v)->facts().software;
    ASSERT_TRUE(software.count("windows_11"));
    EXPECT_EQ(software.at("windows_11").devices, 1u);
    for (const auto& [kb, missed] : software.at("windows_11").missed) EXPECT_EQ(missed.devices, 1);
  }
  EXPECT_FALSE((*contoso)->facts().software.count("windows_7"));
  // A write of one tenant leaves the other's snapshot as it was.
  ASSERT_TRUE(service.put_devices("contoso", {win7}));
  EXPECT_EQ(service.view("fabrikam")->get(), fabrikam->get());
  EXPECT_EQ((*service.view("contoso"))->devices().size(), 2u);
  // The last device of a tenant removed: it has none.
  ASSERT_TRUE(*service.remove_device("fabrikam", win7.id));
  ASSERT_TRUE(*service.remove_device("fabrikam", win11.id));
  EXPECT_TRUE((*service.view("fabrikam"))->devices().empty());
  EXPECT_EQ((*service.view("contoso"))->devices().size(), 2u);
  EXPECT_EQ(service.views().value()->views.size(), 1u);

  // The change log: each tenant's rows numbered from 0, read by that tenant only (once recorded,
  // as an export waits for them; this service's store records them, the only one on this
  // database).
  ASSERT_TRUE(
      service.wait_changes_recorded(service.views().value()->serial, std::chrono::seconds(60)));
  EXPECT_EQ(service.change_log_status().failed, 0);
  for (const char* tenant : {"contoso", "fabrikam"}) {
    auto range = service.changes_since(tenant, "2000-01-01T00:00:00Z");
    ASSERT_TRUE(range);
    EXPECT_EQ(range->first, 0) << tenant;
    EXPECT_GT(range->end, 0) << tenant;
    auto read = service.device_changes(tenant, 0, 1000);
    ASSERT_TRUE(read);
    for (const DeviceChange& c : *read) {
      EXPECT_TRUE(c.device_id == win11.id || c.device_id == win7.id) << tenant;
      if (c.device_id == win11.id) {
        EXPECT_EQ(c.device_name == "fabrikam-pc", std::string(tenant) == "fabrikam") << tenant;
      }
    }
  }
  EXPECT_EQ(service.changes_since("nobody", "2000-01-01T00:00:00Z")->end, 0);
}

// A store that holds each write, once committed, until the test lets it return.
class HeldWrites : public DeviceStore {
 public:
  explicit HeldWrites(std::unique_ptr<DeviceStore> store) : store_(std::move(store)) {}
  bool hold_puts = true;
  std::promise<void> committed;
  std::promise<void> go_on;
  // The next recording of changes, when asked: held once it has begun.
  std::atomic<bool> hold_records{false};
  std::promise<void> recording;
  std::promise<void> record_go_on;
  // The next publications and discards of changes that fail, and how (kUnavailable: as when the
  // database is down).
  std::atomic<int> failing_publishes{0}, failing_discards{0};
  std::atomic<ErrorCode> failure{ErrorCode::kUnavailable};
  Result<DeviceWrite> put(const std::vector<inventory::Device>& devices,
                          std::string_view now) override {
    auto written = store_->put(devices, now);
    if (!hold_puts) return written;
    committed.set_value();
    go_on.get_future().wait();
    return written;
  }
  Result<bool> remove(std::string_view tenant, std::string_view id) override {
    return store_->remove(tenant, id);
  }
  Result<StoredDevices> all() override { return store_->all(); }
  Result<std::optional<DeviceChanges>> changed_since(std::int64_t since,
                                                     std::string_view token) override {
    return store_->changed_since(since, token);
  }
  Result<void> recount() override { return store_->recount(); }
  Result<std::int64_t> version() override { return store_->version(); }
  Result<void> check() override { return store_->check(); }
  bool records_changes() override { return store_->records_changes(); }
  Result<void> record_changes(const std::vector<ChangeSet>& sets) override {
    if (hold_records.exchange(false)) {
      recording.set_value();
      record_go_on.get_future().wait();
    }
    return store_->record_changes(sets);
  }
  Result<void> publish_changes(std::string_view at, std::string_view forget_before) override {
    if (fails(failing_publishes)) return Error{failure, "the test's database failed to publish"};
    return store_->publish_changes(at, forget_before);
  }
  Result<void> discard_changes() override {
    if (fails(failing_discards)) return Error{failure, "the test's database failed to discard"};
    return store_->discard_changes();
  }
  Result<ChangeRange> changes_since(std::string_view tenant, std::string_view since) override {
    return store_->changes_since(tenant, since);
  }
  Result<std::vector<DeviceChange>> device_changes(std::string_view tenant, std::int64_t position,
                                                   std::size_t limit) override {
    return store_->device_changes(tenant, position, limit);
  }
  Result<std::vector<std::pair<std::string, VulnerabilityRow>>> change_set(
      std::int64_t id) override {
    return store_->change_set(id);
  }

 private:
  static bool fails(std::atomic<int>& count) {
    int left = count.load();
    while (left > 0 && !count.compare_exchange_weak(left, left - 1)) {
    }
    return left > 0;
  }
  std::unique_ptr<DeviceStore> store_;
};

// docs/scaling.md, "Writes cost the batch": a read while this server writes (its write committed,
// its snapshot not yet served) answers at once from the snapshot before the write, whose caller
// has no answer yet; once the write returns, every read sees it.
TEST_P(StoreContract, AReadDuringThisServersWriteAnswersFromTheSnapshotBeforeIt) {
  const auto catalog = shared_full_catalog();
  auto held = std::make_unique<HeldWrites>(devices());
  HeldWrites& store = *held;
  server::Service service(catalog, std::move(held), 1);
  inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  store.go_on.set_value();  // the first write goes through
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win11}));
  const auto before = service.view(inventory::kDefaultTenant);
  ASSERT_TRUE(before);
  store.committed = {};
  store.go_on = {};
  auto writing = std::async(std::launch::async,
                            [&] { return service.put_devices(inventory::kDefaultTenant, {win7}); });
  store.committed.get_future().wait();  // the store's version has moved
  auto read = std::async(std::launch::async, [&] {
    return std::pair{service.view(inventory::kDefaultTenant),
                     service.current_view(inventory::kDefaultTenant)};
  });
  const bool answered = read.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  store.go_on.set_value();
  ASSERT_TRUE(answered) << "a read waited for the write's reload";
  auto [during, current] = read.get();
  ASSERT_TRUE(during && current);
  EXPECT_EQ(during->get(), before->get());
  EXPECT_EQ(current->get(), before->get());
  ASSERT_TRUE(writing.get());
  const auto after = service.view(inventory::kDefaultTenant);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)->devices().size(), 2u);
}

// docs/scaling.md, "Writes cost the batch": a write is answered without waiting for its changes
// to be recorded in the delta export's change log; the exports wait for them instead
// (Service::wait_changes_recorded), and then the log holds the write's rows.
TEST_P(StoreContract, AWriteIsAnsweredBeforeItsChangesAreRecordedAndExportsWaitForThem) {
  const auto catalog = shared_full_catalog();
  auto held = std::make_unique<HeldWrites>(devices());
  HeldWrites& store = *held;
  store.hold_puts = false;
  server::Service service(catalog, std::move(held), 1);
  ASSERT_TRUE(service.views());  // the first snapshot: the baseline of the log
  // As the delta export asks (its sinceTime to the second, then the log's precision).
  const std::string since = utc_now().substr(0, 19) + ".0000000Z";
  store.hold_records = true;
  const inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  // Whatever fails below, the recorder goes on (else the service's destructor would wait).
  struct Release {
    std::promise<void>& go_on;
    bool done = false;
    void operator()() {
      if (!done) go_on.set_value();
      done = true;
    }
    ~Release() { (*this)(); }
  } release{store.record_go_on};
  auto writing = std::async(
      std::launch::async, [&] { return service.put_devices(inventory::kDefaultTenant, {win11}); });
  const bool answered = writing.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  if (!answered) release();  // else `writing` would wait for the write when it goes
  ASSERT_TRUE(answered) << "the write waited for the change log";
  ASSERT_TRUE(writing.get());
  ASSERT_EQ(store.recording.get_future().wait_for(std::chrono::seconds(30)),
            std::future_status::ready)
      << "the write's changes were not recorded";
  // Meanwhile a device comes and goes: the snapshots in between are recorded each, not skipped
  // (skipping them, the log would never say the device came, and a client that exported the
  // snapshot with it would keep it for good).
  const inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win7}));
  const std::uint64_t with_win7 = service.views().value()->serial;
  ASSERT_TRUE(service.remove_device(inventory::kDefaultTenant, win7.id));
  const std::uint64_t served = service.views().value()->serial;
  EXPECT_EQ(served, with_win7 + 1);
  EXPECT_FALSE(service.changes_recorded(with_win7));
  auto waiting = std::async(std::launch::async, [&] {
    return service.wait_changes_recorded(served, std::chrono::seconds(30));
  });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "an export did not wait for the change log";
  release();
  ASSERT_TRUE(waiting.get());
  EXPECT_TRUE(service.changes_recorded(served));
  EXPECT_TRUE(service.changes_recorded(with_win7));
  // The log holds the write's rows, published (stamped) since before the write.
  const auto range = service.changes_since(inventory::kDefaultTenant, since);
  ASSERT_TRUE(range);
  EXPECT_GT(range->end, range->first);
  const auto rows = service.device_changes(inventory::kDefaultTenant, range->first, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);  // win11 New; win7 New, then Fixed
  EXPECT_EQ((*rows)[0].device_id, win11.id);
  std::vector<std::string> win7_statuses;
  for (const DeviceChange& c : *rows) {
    EXPECT_GT(c.count, 0);
    EXPECT_FALSE(c.at.empty());
    if (c.device_id != win7.id) continue;
    const auto set = service.change_set(c.change_set);
    ASSERT_TRUE(set);
    ASSERT_FALSE(set->empty());
    win7_statuses.push_back(set->front().first);
  }
  EXPECT_EQ(win7_statuses, (std::vector<std::string>{"New", "Fixed"}));
}

// docs/api.md, "The delta export": while the database cannot be reached, the recorder tries
// again what it could not record (the snapshots are in memory), removing first what a failed try
// left; the log then holds the changes once, and no delta is refused for them. Any other failure
// is given up: the changes are missing, and a delta from before them is refused.
TEST_P(StoreContract, TheChangeLogWaitsForTheDatabaseAndGivesUpOnOtherFailures) {
  const auto catalog = shared_full_catalog();
  auto held = std::make_unique<HeldWrites>(devices());
  HeldWrites& store = *held;
  store.hold_puts = false;
  server::Service service(catalog, std::move(held), 1);
  ASSERT_TRUE(service.views());  // the baseline
  const std::string since = utc_now().substr(0, 19) + ".0000000Z";
  // Recorded, not published; not removed; recorded again, not published; then through.
  store.failing_publishes = 2;
  store.failing_discards = 1;
  const inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win11}));
  ASSERT_TRUE(
      service.wait_changes_recorded(service.views().value()->serial, std::chrono::seconds(60)));
  EXPECT_EQ(store.failing_publishes, 0);
  EXPECT_EQ(store.failing_discards, 0);
  EXPECT_EQ(service.change_log_status().failed, 0);
  EXPECT_EQ(service.change_log_status().missed_at, "");
  auto range = service.changes_since(inventory::kDefaultTenant, since);
  ASSERT_TRUE(range);
  auto rows = service.device_changes(inventory::kDefaultTenant, range->first, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);  // once, though recorded three times
  EXPECT_EQ((*rows)[0].device_id, win11.id);
  EXPECT_FALSE((*rows)[0].at.empty());

  store.failure = ErrorCode::kStorage;
  store.failing_publishes = 1;
  const inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  ASSERT_TRUE(service.put_devices(inventory::kDefaultTenant, {win7}));
  ASSERT_TRUE(
      service.wait_changes_recorded(service.views().value()->serial, std::chrono::seconds(60)));
  EXPECT_EQ(service.change_log_status().failed, 1);
  EXPECT_NE(service.change_log_status().missed_at, "");
  range = service.changes_since(inventory::kDefaultTenant, since);
  ASSERT_TRUE(range);
  rows = service.device_changes(inventory::kDefaultTenant, range->first, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);  // win7's are not in the log: unpublished, then removed
  EXPECT_EQ((*rows)[0].device_id, win11.id);
}

// docs/api.md, "The delta export": on PostgreSQL one server records the change log. When it is
// gone and another takes over, the log may miss changes around the handover: the new recorder
// says so (a delta from before is refused: take a full export), and the first recorder, which
// took over from nobody, does not.
TEST_P(StoreContract, ARecorderTakingOverFromAnotherServerSaysTheLogMayMissChanges) {
  if (std::string(GetParam()) != "postgres") GTEST_SKIP() << "one recorder a database: PostgreSQL";
  const auto catalog = shared_full_catalog();
  auto first = std::make_unique<server::Service>(catalog, devices(), 1);
  server::Service second(catalog, devices(), 1);
  ASSERT_TRUE(first->views());
  ASSERT_TRUE(second.views());
  const inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  const auto written = first->put_devices(inventory::kDefaultTenant, {win11});
  ASSERT_TRUE(written);
  ASSERT_TRUE(
      first->wait_changes_recorded(first->views().value()->serial, std::chrono::seconds(30)));
  EXPECT_EQ(first->change_log_status().failed, 0);
  // The second server sees the write (its notification may take a moment): another's to record.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::shared_ptr<const server::TenantViews> seen;
  do {
    auto views = second.views();
    ASSERT_TRUE(views);
    seen = *views;
    if (seen->version >= written->version) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_GE(seen->version, written->version);
  ASSERT_TRUE(second.wait_changes_recorded(seen->serial, std::chrono::seconds(30)));
  EXPECT_EQ(second.change_log_status().failed, 0);
  // The first server goes (its session, and the lock with it); the second records from now on.
  first.reset();
  const inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  ASSERT_TRUE(second.put_devices(inventory::kDefaultTenant, {win7}));
  ASSERT_TRUE(
      second.wait_changes_recorded(second.views().value()->serial, std::chrono::seconds(30)));
  const auto status = second.change_log_status();
  EXPECT_EQ(status.failed, 1);
  EXPECT_FALSE(status.missed_at.empty());
  EXPECT_NE(status.last_error.find("took over"), std::string::npos) << status.last_error;
  EXPECT_GT(status.recorded, 0);
}

// The changes a recorder recorded and never published (it was killed, or its connection lost,
// before it published them) are removed by the next server that takes the recorder's lock: no
// reader would ever list them, and they would be kept for good.
TEST_P(StoreContract, ANewRecorderRemovesTheChangesAGoneOneNeverPublished) {
  if (std::string(GetParam()) != "postgres") GTEST_SKIP() << "one recorder a database: PostgreSQL";
  const std::string tenant(inventory::kDefaultTenant);
  VulnerabilityRow row;
  row.software = "windows_11";
  row.version = "10.0.22631.3447";
  row.cve = "CVE-2024-26209";
  row.kb = 5036893;
  const std::string a(40, 'a'), b(40, 'b');
  {
    auto gone = devices();
    ASSERT_TRUE(gone && gone->records_changes());
    ASSERT_TRUE(gone->record_changes(
        {ChangeSet{tenant, {new_change_part({{"New", row}, {"New", row}})}, {{a, "pc-a"}}}}));
    auto seen = gone->device_changes(tenant, 0, 10);
    ASSERT_TRUE(seen);
    ASSERT_EQ(seen->size(), 1u);
    EXPECT_TRUE((*seen)[0].at.empty());  // unpublished
  }                                      // its session ends, and its lock with it
  auto next = devices();
  ASSERT_TRUE(next);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!next->records_changes() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(next->records_changes());
  // Its first recording removes them, and its own are numbered from the start of the log.
  ASSERT_TRUE(
      next->record_changes({ChangeSet{tenant, {new_change_part({{"New", row}})}, {{b, "pc-b"}}}}));
  ASSERT_TRUE(next->publish_changes("2026-11-01T00:00:00Z", "2026-10-01T00:00:00Z"));
  auto mine = next->device_changes(tenant, 0, 10);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].position, 0);
  EXPECT_EQ((*mine)[0].device_id, b);
  EXPECT_FALSE((*mine)[0].at.empty());
  auto nothing_unpublished = [&] {
    for (const char* table : {"device_changes", "change_sets", "change_parts"}) {
      EXPECT_TRUE(backend_->sql(
          fmt::format("DO $$ BEGIN IF EXISTS (SELECT 1 FROM {} WHERE NOT at >= '0') THEN "
                      "RAISE EXCEPTION 'unpublished rows left'; END IF; END $$",
                      table)))
          << table;
    }
  };
  nothing_unpublished();
  // Its session ends (PostgreSQL restarted, the connection cut), and the lock with it: what it
  // records or publishes on the session that replaces it is refused (another server may hold the
  // lock by then) until it has taken the lock again.
  ASSERT_TRUE(
      backend_->sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"));
  const ChangeSet again{tenant, {new_change_part({{"Fixed", row}})}, {{b, "pc-b"}}};
  auto refused = next->record_changes({again});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable) << refused.error().message;
  auto unpublished = next->publish_changes("2026-11-02T00:00:00Z", "2026-10-01T00:00:00Z");
  ASSERT_FALSE(unpublished);
  EXPECT_EQ(unpublished.error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(next->discard_changes());
  ASSERT_TRUE(next->records_changes());
  ASSERT_TRUE(next->record_changes({again}));
  ASSERT_TRUE(next->publish_changes("2026-11-02T00:00:00Z", "2026-10-01T00:00:00Z"));
  mine = next->device_changes(tenant, 0, 10);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[1].position, 1);
  nothing_unpublished();
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kbgap::store
