// The SQLite device store: batches, replacement by id, and a fleet version every opener sees.
#include <gtest/gtest.h>

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
  ASSERT_EQ(all->size(), 2u);
  for (const auto& d : *all) {
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

}  // namespace
}  // namespace kbgap::store::sqlite
