// Devices in the SQLite file of the data directory (the embedded default).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/device_batch.h"
#include "store/device_store.h"
#include "store/sqlite/sqlite_db.h"

namespace kbgap::store::sqlite {

class SqliteDeviceStore final : public DeviceStore {
 public:
  // Opens or creates the database at `path` and brings its schema up to date.
  static Result<std::unique_ptr<SqliteDeviceStore>> open(const std::string& path);
  // Before anything opens (and so creates) the database: an error when it is missing or empty
  // while its version file says the fleet was written to (a lost or truncated database must not
  // start quietly as an empty fleet).
  static Result<void> check_not_lost(const std::string& path);
  ~SqliteDeviceStore() override;
  SqliteDeviceStore(const SqliteDeviceStore&) = delete;
  SqliteDeviceStore& operator=(const SqliteDeviceStore&) = delete;

  Result<DeviceWrite> put(const std::vector<inventory::Device>& devices,
                          std::string_view now) override;
  Result<bool> remove(std::string_view tenant, std::string_view id) override;
  Result<StoredDevices> all() override;
  Result<std::optional<DeviceChanges>> changed_since(std::int64_t since,
                                                     std::string_view token) override;
  Result<void> recount() override;
  Result<std::int64_t> version() override;
  Result<void> check() override;
  Result<void> record_changes(const std::vector<ChangeSet>& sets) override;
  Result<void> publish_changes(std::string_view at, std::string_view forget_before) override;
  Result<void> discard_changes() override;
  Result<ChangeRange> changes_since(std::string_view tenant, std::string_view since) override;
  Result<std::vector<DeviceChange>> device_changes(std::string_view tenant, std::int64_t position,
                                                   std::size_t limit) override;
  Result<std::vector<std::pair<std::string, VulnerabilityRow>>> change_set(
      std::int64_t id) override;

 private:
  explicit SqliteDeviceStore(Database db) : db_(std::move(db)) {}
  Result<VersionStep> bump_version();
  Result<std::int64_t> database_version();
  // Reads the rows `sql` selects (id, inventory, first_seen, last_seen; `since` bound to its
  // parameter, if any) as devices, the damaged ones aside. Under mutex_.
  Result<void> read_devices(const char* sql, std::optional<std::int64_t> since,
                            std::vector<inventory::Device>& devices,
                            std::vector<DamagedDevice>& damaged);
  void publish(std::int64_t version);  // raises the shared version to at least `version`
  std::mutex mutex_;                   // the writing connection, used by one thread at a time
  Database db_;
  // The fleet version, shared by every process that opens this database: an 8-byte file next
  // to it, mapped into memory. A write commits (fleet_version in the database), then raises it,
  // then returns; so a reader that sees the number unchanged has seen every returned write, and
  // reads it without a system call or a lock. The database stays the truth: opening a store
  // sets the number to the database's version.
  std::int64_t* shared_version_ = nullptr;
  int shared_fd_ = -1;
  // What this store writes as the time of changes it has not published yet: it sorts before
  // every time, so that readers (who ask for times from a date on) pass over them.
  std::string pending_;
  RecordedParts parts_;  // the change parts recorded since the last publish or discard
};

}  // namespace kbgap::store::sqlite
