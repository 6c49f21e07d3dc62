// Devices in PostgreSQL: several `kbgap serve` processes on one database (docs/scaling.md).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/device_batch.h"
#include "store/device_store.h"
#include "store/postgres/pg_db.h"

namespace kbgap::store::postgres {

class PgDeviceStore final : public DeviceStore {
 public:
  // Connects to `url`, brings the schema up to date, and starts listening for other servers'
  // writes (NOTIFY kbgap_fleet).
  static Result<std::unique_ptr<PgDeviceStore>> open(const std::string& url);
  ~PgDeviceStore() override;
  PgDeviceStore(const PgDeviceStore&) = delete;
  PgDeviceStore& operator=(const PgDeviceStore&) = delete;

  Result<DeviceWrite> put(const std::vector<inventory::Device>& devices,
                          std::string_view now) override;
  Result<bool> remove(std::string_view tenant, std::string_view id) override;
  Result<StoredDevices> all() override;
  Result<std::optional<DeviceChanges>> changed_since(std::int64_t since,
                                                     std::string_view token) override;
  Result<void> recount() override;
  // The newest version this process knows: its own writes at once, every other server's when
  // its notification arrives (or the listener's check, every 500 ms, finds it). Never asks the
  // database on the caller's thread.
  Result<std::int64_t> version() override;
  Result<void> check() override;
  // The server holding the change log's advisory lock (a session lock: released when its
  // connection ends, so another server takes over when it dies) records; the others do not.
  bool records_changes() override;
  Result<void> record_changes(const std::vector<ChangeSet>& sets) override;
  Result<void> publish_changes(std::string_view at, std::string_view forget_before) override;
  Result<void> discard_changes() override;
  Result<ChangeRange> changes_since(std::string_view tenant, std::string_view since) override;
  Result<std::vector<DeviceChange>> device_changes(std::string_view tenant, std::int64_t position,
                                                   std::size_t limit) override;
  Result<std::vector<std::pair<std::string, VulnerabilityRow>>> change_set(
      std::int64_t id) override;

 private:
  explicit PgDeviceStore(Connection c) : c_(std::move(c)) {}
  void raise(std::int64_t version);  // the known version, to at least `version`
  void listen(std::string url);      // the listener thread
  Result<VersionStep> bump_version();
  // Reads, a page at a time in id order, the devices whose rows match `where` (with $1 the last
  // id read and $2 `since`, when given), the damaged ones aside. Inside a transaction, under
  // mutex_.
  Result<void> read_devices(std::string_view where, std::optional<std::int64_t> since,
                            std::vector<inventory::Device>& devices,
                            std::vector<DamagedDevice>& damaged);
  // The fleet's version, the newest whose removals are forgotten, and the devices stored. Under
  // mutex_.
  struct VersionRow {
    std::int64_t version = 0, forgotten = 0, devices = 0;
  };
  Result<VersionRow> database_version();
  Result<std::string> token_of(std::int64_t version);  // "" when none is kept. Under mutex_.
  Result<void> on_change_log(std::string_view sql, const std::vector<Param>& params);

  std::mutex mutex_;  // the connection, used by one thread at a time
  Connection c_;
  std::atomic<std::int64_t> version_{0};
  std::atomic<bool> stop_{false};
  std::thread listener_;
  std::string pending_;  // the time written on changes not yet published (see SQLite's store)
  RecordedParts parts_;  // the change parts recorded since the last publish or discard
  // The session (Connection::session) that holds the recorder's lock, 0 if none did (under
  // mutex_); and whether the unpublished changes of the recorder before are still to be removed.
  std::uint64_t recorder_session_ = 0;
  bool clean_log_ = false;
  // kUnavailable if this store took the recorder's lock and its session has ended since: what
  // it records, or publishes, is then another recorder's to remove.
  Result<void> check_recorder_session() const;
};

}  // namespace kbgap::store::postgres
