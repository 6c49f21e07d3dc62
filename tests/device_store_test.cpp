// The SQLite device store: batches, replacement by id, and a fleet version every opener sees.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <fstream>

#include "inventory/inventory_reader.h"
#include "inventory/json_inventory.h"
#include "store/sqlite/sqlite_device_store.h"
#include "test_support.h"

namespace kbgap::store::sqlite {
namespace {

inventory::Device real_device(const std::string& file) {
  const auto path = std::filesystem::path(KBGAP_SOURCE_DIR) / "data/inventories" / file;
  auto r = inventory::read_inventory(test::read_file(path), file);
  EXPECT_TRUE(r);
  return r->front().device;
}

TEST(DeviceStore, ReplacesByIdKeepsFirstSeenAndEveryOpenerSeesTheVersion) {
  test::TempDir dir;
  const std::string db = dir.str("kbgap.db");
  auto a = SqliteDeviceStore::open(db);
  auto b = SqliteDeviceStore::open(db);  // another process would open it the same way
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*(*a)->version(), 0);
  inventory::Device win11 = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device win7 = real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt");
  auto first = (*a)->put({win11, win7, win11}, "2026-01-01T00:00:00Z");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->created, 2u);
  EXPECT_EQ(first->replaced, 0u);
  // The other store sees the write the moment it returned.
  EXPECT_EQ(*(*b)->version(), first->version);
  win11.installed_kbs.push_back(5044284);
  auto second = (*b)->put({win11}, "2026-02-01T00:00:00Z");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->replaced, 1u);
  EXPECT_GT(second->version, first->version);
  EXPECT_EQ(*(*a)->version(), second->version);
  auto all = (*a)->all();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->devices.size(), 2u);
  EXPECT_TRUE(all->damaged.empty());
  for (const auto& d : all->devices) {
    if (d.id != win11.id) continue;
    EXPECT_EQ(d.first_seen, "2026-01-01T00:00:00Z");
    EXPECT_EQ(d.last_seen, "2026-02-01T00:00:00Z");
    EXPECT_EQ(d.installed_kbs, win11.installed_kbs);
  }
  EXPECT_TRUE(*(*a)->remove(win7.id));
  EXPECT_FALSE(*(*a)->remove(win7.id));
  EXPECT_GT(*(*b)->version(), second->version);
  // A store opened later starts from the database's version, whatever the shared file says.
  std::filesystem::remove(db + "-fleet-version");
  auto c = SqliteDeviceStore::open(db);
  ASSERT_TRUE(c);
  EXPECT_EQ(*(*c)->version(), *(*a)->version());
}

// Runs SQL on the database file behind the store's back, as damage from outside would.
void raw_sql(const std::string& db, const std::string& sql) {
  sqlite3* handle = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &handle), SQLITE_OK);
  char* message = nullptr;
  const int rc = sqlite3_exec(handle, sql.c_str(), nullptr, nullptr, &message);
  EXPECT_EQ(rc, SQLITE_OK) << (message ? message : "");
  sqlite3_free(message);
  sqlite3_close(handle);
}

// A store in a new directory, holding the real Windows 11 device written on 2026-01-01.
struct StoreWithADevice {
  test::TempDir dir;
  std::string db = dir.str("kbgap.db");
  std::unique_ptr<SqliteDeviceStore> store;
  inventory::Device device = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  StoreWithADevice() {
    auto opened = SqliteDeviceStore::open(db);
    EXPECT_TRUE(opened);
    store = std::move(*opened);
    EXPECT_TRUE(store->put({device}, "2026-01-01T00:00:00Z"));
  }
};

std::string without_times(const inventory::Device& d) {
  inventory::Device copy = d;
  copy.first_seen.clear();
  copy.last_seen.clear();
  return boost::json::serialize(inventory::device_json(copy));
}

// Every device any reader accepts (the real inventories and every saved fuzz input of the three
// inventory readers) is stored, and reads back the same after the store is opened again.
TEST(DeviceStore, EveryDeviceAReaderAcceptsRoundTripsThroughTheStoreAndARestart) {
  std::vector<inventory::Device> accepted;
  std::size_t files = 0;
  for (const char* dir : {"data/inventories", "fuzz/corpus/inventory_text",
                          "fuzz/corpus/kbgap_json", "fuzz/corpus/osquery_json"}) {
    for (const auto& entry :
         std::filesystem::directory_iterator(std::filesystem::path(KBGAP_SOURCE_DIR) / dir)) {
      ++files;
      auto read = inventory::read_inventory(test::read_file(entry.path()), entry.path().string());
      if (!read) continue;
      // As `kbgap devices import` takes them: a hotfix list alone is no device.
      auto devices = inventory::merge_inventories(std::move(*read));
      if (!devices) continue;
      for (auto& d : *devices) accepted.push_back(std::move(d));
    }
  }
  ASSERT_GT(files, 1000u);
  ASSERT_GT(accepted.size(), 500u);
  // Devices of one id (the fuzz inputs repeat machines): the batch keeps the later, so do we.
  std::map<std::string, const inventory::Device*> expected;
  for (const auto& d : accepted) expected[d.id] = &d;
  test::TempDir dir;
  const std::string db = dir.str("kbgap.db");
  {
    auto store = SqliteDeviceStore::open(db);
    ASSERT_TRUE(store);
    auto written = (*store)->put(accepted, "2026-11-29T00:00:00Z");
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(written->created, expected.size());
  }
  auto reopened = SqliteDeviceStore::open(db);
  ASSERT_TRUE(reopened);
  auto all = (*reopened)->all();
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

TEST(DeviceStore, ABatchWithADeviceThatWouldNotReadBackWritesNothing) {
  test::TempDir dir;
  auto store = SqliteDeviceStore::open(dir.str("kbgap.db"));
  ASSERT_TRUE(store);
  inventory::Device good = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  inventory::Device bad = real_device("10_1809_x64_pro_en-us_20190307_systeminfo.txt");
  bad.architecture = inventory::Architecture::kUnknown;  // kbgap JSON requires one
  auto written = (*store)->put({good, bad}, "2026-01-01T00:00:00Z");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(written.error().message.find("cannot be stored"), std::string::npos);
  EXPECT_EQ(*(*store)->version(), 0);
  EXPECT_TRUE((*store)->all()->devices.empty());
  bad.architecture = inventory::Architecture::kX64;
  bad.last_seen = "yesterday";
  EXPECT_FALSE((*store)->put({bad}, "2026-01-01T00:00:00Z"));
  EXPECT_EQ(*(*store)->version(), 0);
}

TEST(DeviceStore, TimesAreUtcAndNeverAheadOfTheWritersClock) {
  test::TempDir dir;
  auto store = SqliteDeviceStore::open(dir.str("kbgap.db"));
  ASSERT_TRUE(store);
  inventory::Device d = real_device("11_24H2_x64_enterprise_systeminfo.txt");
  d.first_seen = "2025-06-01T08:00:00.5+02:00";
  d.last_seen = "9999-12-31T00:00:00Z";
  ASSERT_TRUE((*store)->put({d}, "2026-01-01T00:00:00Z"));
  auto all = (*store)->all();
  ASSERT_EQ(all->devices.size(), 1u);
  EXPECT_EQ(all->devices[0].first_seen, "2025-06-01T06:00:00Z");
  EXPECT_EQ(all->devices[0].last_seen, "2026-01-01T00:00:00Z");
}

TEST(DeviceStore, ADamagedRowIsSkippedAndReportedNeverFatal) {
  StoreWithADevice s;
  const std::string& db = s.db;
  auto& store = s.store;
  const inventory::Device& d = s.device;
  // The row an older kbgap wrote for "KB00001" (stored as KB1), and one that is not JSON.
  const std::string older = std::string(40, 'a');
  raw_sql(db, "INSERT INTO devices VALUES ('" + older + "', 'p', 'p', '{\"id\":\"" + older +
                  "\",\"computerDnsName\":\"p\",\"osBuild\":\"10.0.19045.3803\","
                  "\"osArchitecture\":\"x64\",\"installedKbs\":[\"KB1\"]}', 'x', 'x', 'x');"
                  "INSERT INTO devices VALUES ('" +
                  std::string(40, 'b') + "', 'q', 'q', '{not json', 'x', 'x', 'x')");
  auto all = store->all();
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->devices.size(), 1u);
  EXPECT_EQ(all->devices[0].id, d.id);
  ASSERT_EQ(all->damaged.size(), 2u);
  EXPECT_EQ(all->damaged[0].id, older);
  EXPECT_NE(all->damaged[0].problem.find("installedKbs[0]"), std::string::npos);
  EXPECT_TRUE(*store->remove(older));
  EXPECT_EQ(store->all()->damaged.size(), 1u);
}

// An older kbgap stored times as given; such a row is a device (its times are left unknown, and
// an earlier stored first-seen time in another RFC 3339 form is kept by the next write).
TEST(DeviceStore, RowsWithTimesAnOlderKbgapStoredAsGivenStillRead) {
  StoreWithADevice s;
  const std::string& db = s.db;
  auto& store = s.store;
  inventory::Device d = s.device;
  raw_sql(db,
          "UPDATE devices SET first_seen = '2024-05-01T10:00:00.1234567+02:00', "
          "last_seen = 'yesterday', inventory = json_set(inventory, '$.firstSeen', "
          "'2024-05-01T10:00:00.1234567+02:00', '$.lastSeen', 'yesterday')");
  auto all = store->all();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->devices.size(), 1u);
  EXPECT_TRUE(all->damaged.empty());
  EXPECT_EQ(all->devices[0].first_seen, "2024-05-01T08:00:00Z");
  EXPECT_EQ(all->devices[0].last_seen, "");
  d.first_seen.clear();
  d.last_seen.clear();
  ASSERT_TRUE(store->put({d}, "2026-02-01T00:00:00Z"));
  all = store->all();
  EXPECT_EQ(all->devices[0].first_seen, "2024-05-01T08:00:00Z");
  EXPECT_EQ(all->devices[0].last_seen, "2026-02-01T00:00:00Z");
}

TEST(DeviceStore, OpeningSetsTheSharedVersionToTheDatabasesEvenWhenTheFileSaysMore) {
  test::TempDir dir;
  const std::string db = dir.str("kbgap.db");
  {
    auto store = SqliteDeviceStore::open(db);
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->put({real_device("11_24H2_x64_enterprise_systeminfo.txt")},
                              "2026-01-01T00:00:00Z"));
  }
  // A restored older database, or a damaged file: the file says 2^40.
  {
    std::fstream f(db + "-fleet-version", std::ios::in | std::ios::out | std::ios::binary);
    const std::int64_t huge = std::int64_t{1} << 40;
    f.write(reinterpret_cast<const char*>(&huge), sizeof huge);
  }
  auto store = SqliteDeviceStore::open(db);
  ASSERT_TRUE(store);
  EXPECT_EQ(*(*store)->version(), 1);
  auto next = (*store)->put({real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt")},
                            "2026-01-02T00:00:00Z");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->version, 2);
  EXPECT_EQ(*(*store)->version(), 2);
}

TEST(DeviceStore, AnEmptiedOrMissingDatabaseWithWritesBehindItIsRefused) {
  test::TempDir dir;
  const std::string db = dir.str("kbgap.db");
  EXPECT_TRUE(SqliteDeviceStore::check_not_lost(db));  // a new data directory
  {
    auto store = SqliteDeviceStore::open(db);
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->put({real_device("11_24H2_x64_enterprise_systeminfo.txt")},
                              "2026-01-01T00:00:00Z"));
  }
  EXPECT_TRUE(SqliteDeviceStore::check_not_lost(db));
  std::filesystem::resize_file(db, 0);
  auto lost = SqliteDeviceStore::check_not_lost(db);
  ASSERT_FALSE(lost);
  EXPECT_NE(lost.error().message.find("truncated"), std::string::npos);
  std::filesystem::remove(db);
  EXPECT_FALSE(SqliteDeviceStore::check_not_lost(db));
  std::filesystem::remove(db + "-fleet-version");
  EXPECT_TRUE(SqliteDeviceStore::check_not_lost(db));
}

}  // namespace
}  // namespace kbgap::store::sqlite

namespace kbgap::store::sqlite {
namespace {

// The delta export's change log: sets shared by devices, rows numbered on for good (also when
// older ones are forgotten), read back from any row, and a damaged set is an error, not a guess.
TEST(DeviceStore, TheChangeLogNumbersRowsForGoodAndForgetsTheOldest) {
  test::TempDir dir;
  auto store = SqliteDeviceStore::open(dir.str("kbgap.db"));
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
  ChangeSet alike{{{"New", row("CVE-2024-26234", 7.8)}, {"Fixed", row("CVE-2024-26158", 0)}},
                  {{a, "pc-a"}, {b, "pc-b"}}};
  ChangeSet one{{{"Updated", row("CVE-2024-29988", 8.8)}}, {{c, "pc-c"}}};
  auto record = [&](const std::string& at, std::vector<ChangeSet> sets, const std::string& forget) {
    ASSERT_TRUE((*store)->record_changes(sets));
    ASSERT_TRUE((*store)->publish_changes(at, forget));
  };
  record("2026-11-01T00:00:00Z", {alike, one}, "2026-10-01T00:00:00Z");
  // Recorded, not published: no range reaches it, and it reads without a time; discarded: gone
  // (no reader saw its numbers: the next changes take them).
  ASSERT_TRUE((*store)->record_changes({one}));
  EXPECT_EQ((*store)->changes_since("2026-10-31T00:00:00Z")->end, 5);
  auto pending = (*store)->device_changes(5, 10);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().at, "");
  ASSERT_TRUE((*store)->discard_changes());
  auto after_discard = (*store)->device_changes(5, 10);
  ASSERT_EQ(after_discard->size(), 1u);  // the change before: none holds row 5
  EXPECT_EQ(after_discard->front().position, 4);
  record("2026-11-20T00:00:00Z", {one}, "2026-10-01T00:00:00Z");
  // Rows: a's 0-1, b's 2-3, c's 4, then c's 5.
  auto all = (*store)->changes_since("2026-10-31T00:00:00Z");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->first, 0);
  EXPECT_EQ(all->end, 6);
  auto later = (*store)->changes_since("2026-11-10T00:00:00Z");
  EXPECT_EQ(later->first, 5);
  EXPECT_EQ(later->end, 6);
  auto none = (*store)->changes_since("2026-11-21T00:00:00Z");
  EXPECT_EQ(none->first, none->end);
  // From any row: the device change that holds it, and on.
  auto from_3 = (*store)->device_changes(3, 10);
  ASSERT_TRUE(from_3);
  ASSERT_EQ(from_3->size(), 3u);
  EXPECT_EQ(from_3->front().device_id, b);
  EXPECT_EQ(from_3->front().position, 2);
  EXPECT_EQ(from_3->back().position, 5);
  auto set = (*store)->change_set(from_3->front().change_set);
  ASSERT_TRUE(set);
  ASSERT_EQ(set->size(), 2u);
  EXPECT_EQ((*set)[0].first, "New");
  EXPECT_EQ((*set)[0].second.cve, "CVE-2024-26234");
  EXPECT_EQ((*set)[0].second.cvss, 7.8);
  EXPECT_EQ((*set)[1].second.kb_url, row("", 0).kb_url);
  // Forgetting what was found before 2026-11-10 keeps the later rows' numbers.
  record("2026-11-25T00:00:00Z", {one}, "2026-11-10T00:00:00Z");
  auto kept = (*store)->changes_since("2026-01-01T00:00:00Z");
  EXPECT_EQ(kept->first, 5);
  EXPECT_EQ(kept->end, 7);
  EXPECT_TRUE((*store)->change_set(from_3->front().change_set)->empty());
  // A set damaged outside kbgap: an error naming it.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir.str("kbgap.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE change_sets SET rows = '[[1,2]]'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto damaged = (*store)->change_set(from_3->back().change_set);
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().message.find("malformed"), std::string::npos);
}

}  // namespace
}  // namespace kbgap::store::sqlite
