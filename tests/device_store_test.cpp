// What only the SQLite device store does: its version file beside the database, rows an older
// kbgap wrote, and a lost database refused. The rules every backend keeps are in
// store_contract_test.cpp.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>

#include "inventory/inventory_reader.h"
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

// The file beside the database that carries the version between processes is a cache: a store
// opened without it starts from the database's version (the contract suite covers the rest on
// both backends: store_contract_test.cpp).
TEST(DeviceStore, AStoreOpenedWithoutItsVersionFileStartsFromTheDatabases) {
  test::TempDir dir;
  const std::string db = dir.str("kbgap.db");
  auto a = SqliteDeviceStore::open(db);
  ASSERT_TRUE(a);
  ASSERT_TRUE(
      (*a)->put({real_device("11_24H2_x64_enterprise_systeminfo.txt")}, "2026-01-01T00:00:00Z"));
  ASSERT_TRUE((*a)->put({real_device("7_sp1_x64_enterprise_en-us_A_systeminfo.txt")},
                        "2026-01-02T00:00:00Z"));
  std::filesystem::remove(db + "-fleet-version");
  auto c = SqliteDeviceStore::open(db);
  ASSERT_TRUE(c);
  EXPECT_EQ(*(*c)->version(), *(*a)->version());
  EXPECT_EQ(*(*c)->version(), 2);
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
