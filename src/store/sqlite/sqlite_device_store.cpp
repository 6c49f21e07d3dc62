// SQLite device store: one transaction per batch, the fleet version bumped inside it.
#include "store/sqlite/sqlite_device_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unordered_map>

#include "common/clock.h"
#include "common/text.h"
#include "inventory/json_inventory.h"
#include "store/device_batch.h"
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

// An exclusive lock on the shared version file (flock: between processes; each store has its
// own descriptor, so between the stores of one process too).
class VersionLock {
 public:
  explicit VersionLock(int fd) : fd_(fd) {
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~VersionLock() { ::flock(fd_, LOCK_UN); }
  VersionLock(const VersionLock&) = delete;
  VersionLock& operator=(const VersionLock&) = delete;

 private:
  int fd_;
};

}  // namespace

Result<void> SqliteDeviceStore::check_not_lost(const std::string& path) {
  const std::string version_path = path + "-fleet-version";
  std::error_code ec;
  const bool present = std::filesystem::exists(path, ec);
  const auto size = present ? std::filesystem::file_size(path, ec) : 0;
  if (present && (ec || size > 0)) return ok_result();
  std::int64_t version = 0;
  {
    std::ifstream in(version_path, std::ios::binary);
    if (!in || !in.read(reinterpret_cast<char*>(&version), sizeof version)) return ok_result();
  }
  if (version <= 0) return ok_result();
  return storage_error(fmt::format(
      "{} is {} but its fleet had {} writes ({}): the database was lost or truncated. Restore it "
      "from a backup, or remove {} to start again with an empty fleet",
      path, present ? "empty" : "missing", version, version_path, version_path));
}

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
  // The database is the truth: the shared number is set to its version, also when the file says
  // more (a database restored from a backup, a damaged file). Under the file's lock, so that a
  // write of another process that commits meanwhile publishes after this, never before.
  VersionLock lock(store->shared_fd_);
  auto version = store->database_version();
  if (!version) return version.error();
  std::atomic_ref<std::int64_t>(*store->shared_version_).store(*version);
  return store;
}

SqliteDeviceStore::~SqliteDeviceStore() {
  if (shared_version_) ::munmap(shared_version_, sizeof(std::int64_t));
  if (shared_fd_ >= 0) ::close(shared_fd_);
}

void SqliteDeviceStore::publish(std::int64_t version) {
  VersionLock lock(shared_fd_);
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
  auto prepared = prepare_batch(devices, now);
  if (!prepared) return prepared.error();
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
  DeviceWrite write;
  for (PreparedDevice& p : *prepared) {
    inventory::Device& d = p.device;
    existing->bind(1, d.id);
    auto row = existing->step();
    if (!row) return row.error();
    const std::string stored_first = *row ? existing->column_text(0) : std::string();
    existing->reset();
    (*row ? write.replaced : write.created) += 1;
    // The earlier first-seen time is kept; one that is not a time (an older kbgap stored times
    // as given) is replaced.
    if (auto stored = utc_time_from_rfc3339(stored_first); stored && *stored < d.first_seen) {
      d.first_seen = std::move(*stored);
      p.json = stored_json(d);
    }
    upsert->bind(1, d.id)
        .bind(2, d.computer_dns_name)
        .bind(3, to_lower(d.computer_dns_name))
        .bind(4, p.json)
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

Result<StoredDevices> SqliteDeviceStore::all() {
  std::lock_guard lock(mutex_);
  auto stmt = db_.prepare("SELECT id, inventory, first_seen, last_seen FROM devices ORDER BY id");
  if (!stmt) return stmt.error();
  StoredDevices out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    const std::string id = stmt->column_text(0);
    // The times are the columns' (below): a row an older kbgap wrote with times as given is
    // not damaged for that.
    auto read =
        inventory::parse_kbgap_json(stmt->column_text(1), "stored", inventory::TimeFields::kIgnore);
    if (read && (read->size() != 1 || read->front().device.id != id)) {
      read = invalid_input("stored: the row's inventory is of another device");
    }
    if (!read) {
      out.damaged.push_back({id, read.error().message});
      continue;
    }
    inventory::Device d = std::move(read->front().device);
    // The columns are the times kbgap keeps (the earliest first-seen of every write).
    for (auto [column, time] : {std::pair{2, &d.first_seen}, std::pair{3, &d.last_seen}}) {
      auto utc = utc_time_from_rfc3339(stmt->column_text(column));
      *time = utc ? std::move(*utc) : std::string();
    }
    out.devices.push_back(std::move(d));
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

namespace kbgap::store::sqlite {

Result<void> SqliteDeviceStore::record_changes(const std::vector<VulnerabilityChange>& changes,
                                               std::string_view forget_before) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  auto insert = db_.prepare(
      "INSERT INTO vulnerability_changes (at, status, device_id, device_name, software, version,"
      " cve, cvss, severity, exploitability, kb, kb_name, kb_url)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert) return insert.error();
  for (const VulnerabilityChange& c : changes) {
    const VulnerabilityRow& r = c.row;
    insert->bind(1, c.at)
        .bind(2, c.status)
        .bind(3, c.device_id)
        .bind(4, c.device_name)
        .bind(5, r.software)
        .bind(6, r.version)
        .bind(7, r.cve)
        .bind(8, std::optional<double>(r.cvss))
        .bind(9, r.severity)
        .bind(10, r.exploitability)
        .bind(11, r.kb)
        .bind(12, r.kb_name)
        .bind(13, r.kb_url);
    KBGAP_TRY(insert->run());
  }
  auto forget = db_.prepare("DELETE FROM vulnerability_changes WHERE at < ?");
  if (!forget) return forget.error();
  forget->bind(1, forget_before);
  KBGAP_TRY(forget->run());
  return tx.commit();
}

Result<DeviceStore::ChangeRange> SqliteDeviceStore::changes_since(std::string_view since) {
  std::lock_guard lock(mutex_);
  auto stmt = db_.prepare(
      "SELECT coalesce((SELECT min(seq) FROM vulnerability_changes WHERE at >= ?), 0),"
      " coalesce((SELECT max(seq) FROM vulnerability_changes), 0)");
  if (!stmt) return stmt.error();
  stmt->bind(1, since);
  auto row = stmt->step();
  if (!row) return row.error();
  ChangeRange range;
  if (*row && stmt->column_int(0) > 0) {
    range.first = stmt->column_int(0);
    range.last = stmt->column_int(1);
  }
  return range;
}

Result<std::vector<VulnerabilityChange>> SqliteDeviceStore::changes(std::int64_t from,
                                                                    std::size_t limit) {
  std::lock_guard lock(mutex_);
  auto stmt = db_.prepare(
      "SELECT seq, at, status, device_id, device_name, software, version, cve, cvss, severity,"
      " exploitability, kb, kb_name, kb_url FROM vulnerability_changes WHERE seq >= ?"
      " ORDER BY seq LIMIT ?");
  if (!stmt) return stmt.error();
  stmt->bind(1, from).bind(2, static_cast<std::int64_t>(limit));
  std::vector<VulnerabilityChange> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    VulnerabilityChange c;
    c.seq = stmt->column_int(0);
    c.at = stmt->column_text(1);
    c.status = stmt->column_text(2);
    c.device_id = stmt->column_text(3);
    c.device_name = stmt->column_text(4);
    c.row.software = stmt->column_text(5);
    c.row.version = stmt->column_text(6);
    c.row.cve = stmt->column_text(7);
    c.row.cvss = stmt->column_optional_double(8).value_or(0.0);
    c.row.severity = stmt->column_text(9);
    c.row.exploitability = stmt->column_text(10);
    c.row.kb = stmt->column_int(11);
    c.row.kb_name = stmt->column_text(12);
    c.row.kb_url = stmt->column_text(13);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace kbgap::store::sqlite
