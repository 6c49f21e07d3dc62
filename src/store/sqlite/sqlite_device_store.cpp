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
#include <map>
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
  // IMMEDIATE for a write (it takes the write lock at once); DEFERRED for reads that must see one
  // state of the database.
  Result<void> begin(const char* mode = "BEGIN IMMEDIATE") {
    KBGAP_TRY(db_.exec(mode));
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

// The fleet's version, the newest version whose removals are forgotten, and the devices stored.
struct VersionRow {
  std::int64_t version = 0, forgotten = 0, devices = 0;
};
Result<VersionRow> query_version(Database& db) {
  auto stmt = db.prepare("SELECT version, forgotten, devices FROM fleet_version WHERE id = 1");
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return storage_error(fmt::format("{}: fleet_version has no row", db.path()));
  return VersionRow{stmt->column_int(0), stmt->column_int(1), stmt->column_int(2)};
}

// The token written with `version`, "" when none is kept.
Result<std::string> query_token(Database& db, std::int64_t version) {
  auto stmt = db.prepare("SELECT token FROM version_tokens WHERE version = ?");
  if (!stmt) return stmt.error();
  stmt->bind(1, version);
  auto row = stmt->step();
  if (!row) return row.error();
  return *row ? stmt->column_text(0) : std::string();
}

// Keeps fleet_version.devices: `delta` devices more (or fewer).
Result<void> count_devices(Database& db, std::int64_t delta) {
  if (delta == 0) return ok_result();
  auto stmt = db.prepare("UPDATE fleet_version SET devices = devices + ? WHERE id = 1");
  if (!stmt) return stmt.error();
  stmt->bind(1, delta);
  return stmt->run();
}

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
  static std::atomic<std::uint64_t> stores{0};
  store->pending_ = fmt::format(" pending {}-{}", ::getpid(), stores++);
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

Result<VersionStep> SqliteDeviceStore::bump_version() {
  KBGAP_TRY(db_.exec("UPDATE fleet_version SET version = version + 1 WHERE id = 1"));
  auto now = query_version(db_);
  if (!now) return now.error();
  VersionStep step;
  step.version = now->version;
  step.devices = now->devices;
  auto previous = query_token(db_, step.version - 1);
  if (!previous) return previous.error();
  step.previous_token = std::move(*previous);
  step.token = new_version_token();
  // Its token, and the tokens kept as long as removals are.
  auto token = db_.prepare(
      "INSERT INTO version_tokens (version, token) VALUES (?, ?)"
      " ON CONFLICT (version) DO UPDATE SET token = excluded.token");
  if (!token) return token.error();
  token->bind(1, step.version).bind(2, step.token);
  KBGAP_TRY(token->run());
  auto forget = db_.prepare("DELETE FROM version_tokens WHERE version <= ?");
  if (!forget) return forget.error();
  forget->bind(1, step.version - kKeepRemovals);
  KBGAP_TRY(forget->run());
  return step;
}

Result<DeviceWrite> SqliteDeviceStore::put(const std::vector<inventory::Device>& devices,
                                           std::string_view now) {
  auto prepared = prepare_batch(devices, now);
  if (!prepared) return prepared.error();
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  auto existing = db_.prepare("SELECT first_seen FROM devices WHERE tenant = ? AND id = ?");
  if (!existing) return existing.error();
  auto upsert = db_.prepare(
      "INSERT INTO devices (tenant, id, computer_dns_name, name_key, inventory, first_seen,"
      " last_seen, updated_at, written_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
      " ON CONFLICT (tenant, id) DO UPDATE SET computer_dns_name = excluded.computer_dns_name,"
      " name_key = excluded.name_key, inventory = excluded.inventory,"
      " first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
      " updated_at = excluded.updated_at, written_version = excluded.written_version");
  if (!upsert) return upsert.error();
  auto step = bump_version();
  if (!step) return step.error();
  DeviceWrite write;
  write.version = step->version;
  write.token = std::move(step->token);
  write.previous_token = std::move(step->previous_token);
  write.devices.reserve(prepared->size());
  for (PreparedDevice& p : *prepared) {
    inventory::Device& d = p.device;
    existing->bind(1, d.tenant).bind(2, d.id);
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
    upsert->bind(1, d.tenant)
        .bind(2, d.id)
        .bind(3, d.computer_dns_name)
        .bind(4, to_lower(d.computer_dns_name))
        .bind(5, p.json)
        .bind(6, d.first_seen)
        .bind(7, d.last_seen)
        .bind(8, now)
        .bind(9, write.version);
    KBGAP_TRY(upsert->run());
    write.devices.push_back(stored_device(p));
  }
  write.stored = step->devices + static_cast<std::int64_t>(write.created);
  KBGAP_TRY(count_devices(db_, static_cast<std::int64_t>(write.created)));
  KBGAP_TRY(tx.commit());
  publish(write.version);
  return write;
}

Result<bool> SqliteDeviceStore::remove(std::string_view tenant, std::string_view id) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  auto stmt = db_.prepare("DELETE FROM devices WHERE tenant = ? AND id = ?");
  if (!stmt) return stmt.error();
  stmt->bind(1, tenant).bind(2, id);
  KBGAP_TRY(stmt->run());
  const bool removed = sqlite3_changes(db_.handle()) > 0;
  std::int64_t version = 0;
  if (removed) {
    auto bumped = bump_version();
    if (!bumped) return bumped.error();
    version = bumped->version;
    // Remembered for changed_since(); the oldest forgotten (a snapshot from before them reads
    // every device).
    auto remember = db_.prepare(
        "INSERT INTO removed_devices (tenant, id, version) VALUES (?, ?, ?)"
        " ON CONFLICT (tenant, id) DO UPDATE SET version = excluded.version");
    if (!remember) return remember.error();
    remember->bind(1, tenant).bind(2, id).bind(3, version);
    KBGAP_TRY(remember->run());
    KBGAP_TRY(count_devices(db_, -1));
    if (version > kKeepRemovals) {
      auto forget = db_.prepare("DELETE FROM removed_devices WHERE version <= ?");
      if (!forget) return forget.error();
      forget->bind(1, version - kKeepRemovals);
      KBGAP_TRY(forget->run());
      auto mark =
          db_.prepare("UPDATE fleet_version SET forgotten = max(forgotten, ?) WHERE id = 1");
      if (!mark) return mark.error();
      mark->bind(1, version - kKeepRemovals);
      KBGAP_TRY(mark->run());
    }
  }
  KBGAP_TRY(tx.commit());
  if (removed) publish(version);
  return removed;
}

Result<void> SqliteDeviceStore::read_devices(const char* sql, std::optional<std::int64_t> since,
                                             std::vector<inventory::Device>& devices,
                                             std::vector<DamagedDevice>& damaged) {
  auto stmt = db_.prepare(sql);
  if (!stmt) return stmt.error();
  if (since) stmt->bind(1, *since);
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    const std::string tenant = stmt->column_text(0);
    const std::string id = stmt->column_text(1);
    auto read = read_stored_device(tenant, id, stmt->column_text(2), stmt->column_text(3),
                                   stmt->column_text(4));
    if (!read) {
      damaged.push_back({tenant, id, read.error().message});
      continue;
    }
    devices.push_back(std::move(*read));
  }
  return ok_result();
}

Result<StoredDevices> SqliteDeviceStore::all() {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);  // the rows and the version they are, as one state
  KBGAP_TRY(tx.begin("BEGIN"));
  StoredDevices out;
  auto version = query_version(db_);
  if (!version) return version.error();
  out.version = version->version;
  auto token = query_token(db_, out.version);
  if (!token) return token.error();
  out.token = std::move(*token);
  KBGAP_TRY(read_devices(
      "SELECT tenant, id, inventory, first_seen, last_seen FROM devices ORDER BY tenant, id",
      std::nullopt, out.devices, out.damaged));
  KBGAP_TRY(tx.commit());
  return out;
}

Result<void> SqliteDeviceStore::recount() {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());  // IMMEDIATE: no other writer until it commits
  KBGAP_TRY(
      db_.exec("UPDATE fleet_version SET devices = (SELECT count(*) FROM devices) WHERE id = 1"));
  return tx.commit();
}

Result<std::optional<DeviceChanges>> SqliteDeviceStore::changed_since(std::int64_t since,
                                                                      std::string_view token) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin("BEGIN"));
  auto version = query_version(db_);
  if (!version) return version.error();
  if (since > version->version || since < version->forgotten) return std::optional<DeviceChanges>();
  auto then = query_token(db_, since);
  if (!then) return then.error();
  if (*then != token) return std::optional<DeviceChanges>();  // not the version the caller read
  DeviceChanges out;
  out.version = version->version;
  auto now = query_token(db_, out.version);
  if (!now) return now.error();
  out.token = std::move(*now);
  out.stored = version->devices;
  KBGAP_TRY(
      read_devices("SELECT tenant, id, inventory, first_seen, last_seen FROM devices"
                   " WHERE written_version > ? ORDER BY tenant, id",
                   since, out.written, out.damaged));
  // A device removed, then written again, is listed as written only.
  auto removed = db_.prepare(
      "SELECT tenant, id FROM removed_devices r WHERE version > ? AND NOT EXISTS"
      " (SELECT 1 FROM devices d WHERE d.tenant = r.tenant AND d.id = r.id) ORDER BY tenant, id");
  if (!removed) return removed.error();
  removed->bind(1, since);
  for (;;) {
    auto row = removed->step();
    if (!row) return row.error();
    if (!*row) break;
    out.removed.push_back({removed->column_text(0), removed->column_text(1)});
  }
  KBGAP_TRY(tx.commit());
  return std::optional<DeviceChanges>(std::move(out));
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

Result<void> SqliteDeviceStore::record_changes(const std::vector<ChangeSet>& sets) {
  const std::string& at = pending_;
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  auto insert_part = db_.prepare("INSERT INTO change_parts (at, rows, count) VALUES (?, ?, ?)");
  if (!insert_part) return insert_part.error();
  auto insert_set =
      db_.prepare("INSERT INTO change_sets (at, rows, count, parts) VALUES (?, '[]', ?, ?)");
  if (!insert_set) return insert_set.error();
  auto insert_device = db_.prepare(
      "INSERT INTO device_changes (tenant, at, device_id, device_name, change_set, count,"
      " position) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!insert_device) return insert_device.error();
  // Rows are numbered on from the end of their tenant's log (kept when older rows are forgotten).
  auto end = db_.prepare(
      "SELECT position + count FROM device_changes WHERE tenant = ? ORDER BY position DESC"
      " LIMIT 1");
  if (!end) return end.error();
  std::map<std::string, std::int64_t, std::less<>> ends;
  parts_.begin();
  auto insert = [&](const ChangePart& part) -> Result<std::int64_t> {
    insert_part->bind(1, at)
        .bind(2, change_rows_json(part.rows))
        .bind(3, static_cast<std::int64_t>(part.count));
    KBGAP_TRY(insert_part->run());
    return db_.last_insert_rowid();
  };
  for (const ChangeSet& set : sets) {
    auto it = ends.find(set.tenant);
    if (it == ends.end()) {
      end->bind(1, set.tenant);
      auto row = end->step();
      if (!row) return row.error();
      it = ends.emplace(set.tenant, *row ? end->column_int(0) : 0).first;
      end->reset();
    }
    std::int64_t& position = it->second;
    const auto count = static_cast<std::int64_t>(set.rows());
    std::vector<std::int64_t> ids;
    ids.reserve(set.parts.size());
    for (const auto& part : set.parts) {
      auto id = parts_.id(*part, db_.path(), insert);
      if (!id) return id.error();
      ids.push_back(*id);
    }
    insert_set->bind(1, at).bind(2, count).bind(3, part_ids_json(ids));
    KBGAP_TRY(insert_set->run());
    const std::int64_t id = db_.last_insert_rowid();
    for (const auto& [device_id, device_name] : set.devices) {
      insert_device->bind(1, set.tenant)
          .bind(2, at)
          .bind(3, device_id)
          .bind(4, device_name)
          .bind(5, id)
          .bind(6, count)
          .bind(7, position);
      KBGAP_TRY(insert_device->run());
      position += count;
    }
  }
  KBGAP_TRY(tx.commit());
  parts_.committed();
  return ok_result();
}

namespace {

// Runs `sql` on both tables of the change log, with the texts bound in order.
Result<void> on_change_log(Database& db, std::string_view sql,
                           std::initializer_list<std::string_view> texts) {
  for (const char* table : {"device_changes", "change_sets", "change_parts"}) {
    auto stmt = db.prepare(fmt::format(fmt::runtime(sql), table));
    if (!stmt) return stmt.error();
    int i = 0;
    for (std::string_view t : texts) stmt->bind(++i, t);
    KBGAP_TRY(stmt->run());
  }
  return ok_result();
}

}  // namespace

Result<void> SqliteDeviceStore::publish_changes(std::string_view at,
                                                std::string_view forget_before) {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  KBGAP_TRY(on_change_log(db_, "UPDATE {} SET at = ? WHERE at = ?", {at, pending_}));
  // Times start with a digit; unpublished changes (a space first) are not forgotten here.
  KBGAP_TRY(on_change_log(db_, "DELETE FROM {} WHERE at >= '0' AND at < ?", {forget_before}));
  KBGAP_TRY(tx.commit());
  parts_.clear();
  return ok_result();
}

Result<void> SqliteDeviceStore::discard_changes() {
  std::lock_guard lock(mutex_);
  Transaction tx(db_);
  KBGAP_TRY(tx.begin());
  KBGAP_TRY(on_change_log(db_, "DELETE FROM {} WHERE at = ?", {pending_}));
  parts_.clear();  // whether or not they are gone: passed again, they are stored again
  return tx.commit();
}

Result<DeviceStore::ChangeRange> SqliteDeviceStore::changes_since(std::string_view tenant,
                                                                  std::string_view since) {
  std::lock_guard lock(mutex_);
  // A tenant's rows are numbered in the order they were recorded.
  auto stmt = db_.prepare(
      "SELECT coalesce((SELECT position + count FROM device_changes WHERE tenant = ?1"
      " AND at >= '0' ORDER BY position DESC LIMIT 1), 0),"
      " (SELECT min(position) FROM device_changes WHERE tenant = ?1 AND at >= ?2) IS NULL,"
      " coalesce((SELECT min(position) FROM device_changes WHERE tenant = ?1 AND at >= ?2), 0)");
  if (!stmt) return stmt.error();
  stmt->bind(1, tenant).bind(2, since);
  auto row = stmt->step();
  if (!row) return row.error();
  ChangeRange range;
  if (*row) {
    range.end = stmt->column_int(0);
    range.first = stmt->column_int(1) != 0 ? range.end : stmt->column_int(2);
  }
  return range;
}

Result<std::vector<DeviceChange>> SqliteDeviceStore::device_changes(std::string_view tenant,
                                                                    std::int64_t position,
                                                                    std::size_t limit) {
  std::lock_guard lock(mutex_);
  auto stmt = db_.prepare(
      "SELECT CASE WHEN at >= '0' THEN at ELSE '' END, device_id, device_name, change_set,"
      " count, position FROM device_changes"
      " WHERE tenant = ?1 AND position >= coalesce((SELECT max(position) FROM device_changes"
      " WHERE tenant = ?1 AND position <= ?2), 0) ORDER BY position LIMIT ?3");
  if (!stmt) return stmt.error();
  stmt->bind(1, tenant).bind(2, position).bind(3, static_cast<std::int64_t>(limit));
  std::vector<DeviceChange> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back({stmt->column_text(0), stmt->column_text(1), stmt->column_text(2),
                   stmt->column_int(3), stmt->column_int(4), stmt->column_int(5)});
  }
  return out;
}

Result<std::vector<std::pair<std::string, VulnerabilityRow>>> SqliteDeviceStore::change_set(
    std::int64_t id) {
  using Rows = std::vector<std::pair<std::string, VulnerabilityRow>>;
  const std::string where = fmt::format("{}: change set {}", db_.path(), id);
  std::vector<std::pair<std::int64_t, std::string>> texts;  // read under the lock, parsed after
  {
    std::lock_guard lock(mutex_);
    auto stmt = db_.prepare("SELECT rows, parts FROM change_sets WHERE id = ?");
    if (!stmt) return stmt.error();
    stmt->bind(1, id);
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) return Rows();
    // A set recorded before parts were (migration 009) holds its rows itself.
    if (stmt->column_is_null(1)) {
      texts.emplace_back(0, stmt->column_text(0));
    } else {
      auto ids = parse_part_ids(stmt->column_text(1), where);
      if (!ids) return ids.error();
      auto part = db_.prepare("SELECT rows FROM change_parts WHERE id = ?");
      if (!part) return part.error();
      for (std::int64_t p : *ids) {
        part->bind(1, p);
        auto found = part->step();
        if (!found) return found.error();
        if (!*found) return Rows();  // forgotten meanwhile, with its set
        texts.emplace_back(p, part->column_text(0));
        part->reset();
      }
    }
  }
  return assemble_change_rows(texts, where);
}

}  // namespace kbgap::store::sqlite
