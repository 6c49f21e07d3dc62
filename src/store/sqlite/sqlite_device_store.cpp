// SQLite device store: one transaction per batch, the fleet version bumped inside it.
#include "store/sqlite/sqlite_device_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <thread>
#include <unordered_map>

#include "common/text.h"
#include "inventory/json_inventory.h"
#include "store/sqlite/sqlite_catalog_store.h"

namespace kbgap::store::sqlite {
namespace {

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) {}
  ~Transaction() {
    if (open_) (void)db_.exec("ROLLBACK");
  }
  Result<void> begin() {
    KBGAP_TRY(db_.exec("BEGIN IMMEDIATE"));
    open_ = true;
    return ok_result();
  }
  Result<void> commit() {
    KBGAP_TRY(db_.exec("COMMIT"));
    open_ = false;
    return ok_result();
  }

 private:
  Database& db_;
  bool open_ = false;
};

}  // namespace

Result<std::unique_ptr<SqliteDeviceStore>> SqliteDeviceStore::open(const std::string& path) {
  auto db = Database::open(path);
  if (!db) return db.error();
  KBGAP_TRY(migrate(*db));
  auto store = std::unique_ptr<SqliteDeviceStore>(new SqliteDeviceStore(std::move(*db)));
  const std::string version_path = path + "-fleet-version";
  store->shared_fd_ = ::open(version_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (store->shared_fd_ < 0 || ::ftruncate(store->shared_fd_, sizeof(std::int64_t)) != 0) {
    return io_error(fmt::format("{}: cannot open: {}", version_path, std::strerror(errno)));
  }
  void* mapped = ::mmap(nullptr, sizeof(std::int64_t), PROT_READ | PROT_WRITE, MAP_SHARED,
                        store->shared_fd_, 0);
  if (mapped == MAP_FAILED) {
    return io_error(fmt::format("{}: cannot map: {}", version_path, std::strerror(errno)));
  }
  store->shared_version_ = static_cast<std::int64_t*>(mapped);
  auto version = store->database_version();
  if (!version) return version.error();
  store->publish(*version);
  return store;
}

SqliteDeviceStore::~SqliteDeviceStore() {
  if (shared_version_) ::munmap(shared_version_, sizeof(std::int64_t));
  if (shared_fd_ >= 0) ::close(shared_fd_);
}

void SqliteDeviceStore::publish(std::int64_t version) {
  std::atomic_ref<std::int64_t> shared(*shared_version_);
  std::int64_t seen = shared.load();
  while (seen < version && !shared.compare_exchange_weak(seen, version)) {
  }
}

Result<std::int64_t> SqliteDeviceStore::database_version() {
  std::lock_guard lock(mutex_);
  auto stmt = db_.prepare("SELECT version FROM fleet_version WHERE id = 1");
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  return *row ? stmt->column_int(0) : 0;
}

Result<std::int64_t> SqliteDeviceStore::bump_version() {
  KBGAP_TRY(db_.exec("UPDATE fleet_version SET version = version + 1 WHERE id = 1"));
  auto stmt = db_.prepare("SELECT version FROM fleet_version WHERE id = 1");
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return storage_error(fmt::format("{}: fleet_version has no row", db_.path()));
  return stmt->column_int(0);
}

Result<DeviceWrite> SqliteDeviceStore::put(const std::vector<inventory::Device>& devices,
                                           std::string_view now) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  auto existing = db_.prepare("SELECT first_seen FROM devices WHERE id = ?");
  if (!existing) return existing.error();
  auto upsert = db_.prepare(
      "INSERT INTO devices (id, computer_dns_name, name_key, inventory, first_seen, last_seen,"
      " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
      " ON CONFLICT (id) DO UPDATE SET computer_dns_name = excluded.computer_dns_name,"
      " name_key = excluded.name_key, inventory = excluded.inventory,"
      " first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
      " updated_at = excluded.updated_at");
  if (!upsert) return upsert.error();
  // The same id twice in one batch: the later one is the device.
  std::unordered_map<std::string_view, std::size_t> last;
  for (std::size_t i = 0; i < devices.size(); ++i) last[devices[i].id] = i;
  DeviceWrite write;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    if (last[devices[i].id] != i) continue;
    inventory::Device d = devices[i];
    existing->bind(1, d.id);
    auto row = existing->step();
    if (!row) return row.error();
    const std::string stored_first = *row ? existing->column_text(0) : std::string();
    existing->reset();
    (*row ? write.replaced : write.created) += 1;
    if (d.first_seen.empty()) d.first_seen = std::string(now);
    if (!stored_first.empty() && stored_first < d.first_seen) d.first_seen = stored_first;
    if (d.last_seen.empty()) d.last_seen = std::string(now);
    upsert->bind(1, d.id)
        .bind(2, d.computer_dns_name)
        .bind(3, to_lower(d.computer_dns_name))
        .bind(4, boost::json::serialize(inventory::device_json(d)))
        .bind(5, d.first_seen)
        .bind(6, d.last_seen)
        .bind(7, now);
    KBGAP_TRY(upsert->run());
  }
  auto version = bump_version();
  if (!version) return version.error();
  write.version = *version;
  KBGAP_TRY(tx.commit());
  publish(write.version);
  return write;
}

Result<bool> SqliteDeviceStore::remove(std::string_view id) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  auto stmt = db_.prepare("DELETE FROM devices WHERE id = ?");
  if (!stmt) return stmt.error();
  stmt->bind(1, id);
  KBGAP_TRY(stmt->run());
  const bool removed = sqlite3_changes(db_.handle()) > 0;
  std::int64_t version = 0;
  if (removed) {
    auto bumped = bump_version();
    if (!bumped) return bumped.error();
    version = *bumped;
  }
  KBGAP_TRY(tx.commit());
  if (removed) publish(version);
  return removed;
}

Result<std::vector<inventory::Device>> SqliteDeviceStore::all() {
  std::lock_guard lock(mutex_);
  auto stmt = db_.prepare("SELECT id, inventory, first_seen, last_seen FROM devices ORDER BY id");
  if (!stmt) return stmt.error();
  std::vector<inventory::Device> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    const std::string id = stmt->column_text(0);
    auto read = inventory::parse_kbgap_json(stmt->column_text(1), fmt::format("device {}", id));
    if (!read) {
      return storage_error(fmt::format("{}: stored device {} cannot be read: {}", db_.path(), id,
                                       read.error().message));
    }
    inventory::Device d = std::move(read->front().device);
    d.first_seen = stmt->column_text(2);
    d.last_seen = stmt->column_text(3);
    out.push_back(std::move(d));
  }
  return out;
}

Result<void> SqliteDeviceStore::check() {
  auto version = database_version();
  if (!version) return version.error();
  return ok_result();
}

Result<std::int64_t> SqliteDeviceStore::version() {
  return std::atomic_ref<std::int64_t>(*shared_version_).load();
}

}  // namespace kbgap::store::sqlite
