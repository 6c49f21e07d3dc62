// The server's state: the catalog index, the device store, and the current fleet snapshot,
// reloaded whenever the store's fleet version moves (a write here, another process's or another
// node's), so that every answer reflects every write that has returned.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "engine/catalog_index.h"
#include "server/fleet_view.h"
#include "store/device_store.h"
#include "update/freshness.h"

namespace kbgap::server {

// What /readyz and /metrics say of the catalog: how current it is and how its syncs went.
struct CatalogStatus {
  catalog::Freshness freshness;  // of the catalog served: its age is worked out when asked
  std::string last_sync;         // when the last sync ended (UTC), "" before the first
  std::string last_sync_error;
  std::int64_t syncs_ok = 0, syncs_failed = 0, months_changed = 0;
};

// Every tenant's snapshot at one fleet version (docs/api.md, "Tenants"): each tenant's reads see
// its own devices and counts, and nothing of another's.
struct TenantViews {
  std::int64_t version = 0;  // the store's fleet version
  std::string token;         // its token (DeviceStore::changed_since)
  std::uint64_t serial = 0;  // this process's number of it: 1, 2, ... as they are served
  // The tenants that have devices. A tenant no write since `version` touched keeps the snapshot
  // it had (FleetView::version() is the version it was made at).
  std::map<std::string, std::shared_ptr<const FleetView>, std::less<>> views;
  std::shared_ptr<const FleetView> empty;  // any other tenant's: no device, on the catalog
  const std::shared_ptr<const FleetView>& of(std::string_view tenant) const {
    auto it = views.find(tenant);
    return it == views.end() ? empty : it->second;
  }
  std::size_t devices() const;  // of every tenant
};

class Service {
 public:
  Service(std::shared_ptr<const engine::CatalogIndex> catalog,
          std::unique_ptr<store::DeviceStore> devices, unsigned threads);
  // Records the changes still to record (the change log, below) before it returns, unless the
  // database cannot be reached.
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  std::shared_ptr<const engine::CatalogIndex> catalog() const { return catalog_.load(); }
  // A newer catalog: the fleet is evaluated again (the devices whose products it touches) on the
  // caller's thread while reads go on from the current snapshot, which the new one then
  // replaces. Returns the new snapshots.
  Result<std::shared_ptr<const TenantViews>> replace_catalog(
      std::shared_ptr<const engine::CatalogIndex> catalog);
  CatalogStatus catalog_status() const;
  void update_catalog_status(const std::function<void(CatalogStatus&)>& change);
  // Every tenant's snapshot at the store's current fleet version (blocking: may reload). While
  // this process writes (from before its commit until its caller is answered), the snapshot
  // before the write, at once: no read waits for a write's reload.
  Result<std::shared_ptr<const TenantViews>> views();
  // A tenant's snapshot at the store's current fleet version (blocking: may reload the fleet).
  Result<std::shared_ptr<const FleetView>> view(std::string_view tenant);
  // Every tenant's snapshot when it is still the store's version, else null (a reload is due);
  // never waits for a writer.
  Result<std::shared_ptr<const TenantViews>> current_views();
  // The tenant's current snapshot when it is still the store's version, else null (a reload is
  // due); never waits for a writer.
  Result<std::shared_ptr<const FleetView>> current_view(std::string_view tenant);
  // Writes the devices as the tenant's (whatever tenant they carried).
  Result<store::DeviceWrite> put_devices(std::string_view tenant,
                                         std::vector<inventory::Device> devices);
  Result<bool> remove_device(std::string_view tenant, std::string_view id);
  // Changes one of the tenant's stored devices as `change` says, read from the newest snapshot and
  // written back with no other write of this process in between (a tag added while a batch is
  // written keeps both). nullopt when there is no such device. Between servers sharing a store,
  // the last write wins.
  Result<std::optional<inventory::Device>> change_device(
      std::string_view tenant, std::string_view id,
      const std::function<void(inventory::Device&)>& change);
  // Whether the store's database answers and the fleet can be read at its current version (for
  // /readyz; blocking).
  bool ready();

  // The delta export's change log (change_log.h): once a snapshot is served, a thread of the
  // service's own records its changes from the snapshot served before it, and publishes (stamps)
  // them, so that a client that read an older snapshot at T finds them since T. The write that
  // made the snapshot is answered without waiting for this (docs/scaling.md, "Writes cost the
  // batch"); the exports wait instead (wait_changes_recorded). Kept for kKeepChanges; the first
  // snapshot of a process is the baseline of the next.
  static constexpr std::chrono::hours kKeepChanges{15 * 24};
  Result<store::DeviceStore::ChangeRange> changes_since(std::string_view tenant,
                                                        std::string_view since) {
    return devices_->changes_since(tenant, since);
  }
  Result<std::vector<store::DeviceChange>> device_changes(std::string_view tenant,
                                                          std::int64_t position,
                                                          std::size_t limit) {
    return devices_->device_changes(tenant, position, limit);
  }
  Result<std::vector<std::pair<std::string, store::VulnerabilityRow>>> change_set(std::int64_t id) {
    return devices_->change_set(id);
  }
  struct ChangeLogStatus {
    std::int64_t recorded = 0, failed = 0;  // changes recorded; snapshots whose changes failed
    std::string last_error;
    std::string missed_at;  // when changes last went unrecorded (ISO 8601 UTC), "" if never
  };
  ChangeLogStatus change_log_status() const;
  // Whether the change log holds the changes of every snapshot up to the one numbered `serial`
  // (TenantViews::serial), so that the log's next changes are from that one on: never waits.
  bool changes_recorded(std::uint64_t serial);
  // Waits until it does, at most `timeout`; whether it does.
  bool wait_changes_recorded(std::uint64_t serial, std::chrono::milliseconds timeout);
  // At most this many snapshots wait for the recorder: a write that would make one more waits
  // for it (their memory is bounded; every snapshot served is recorded, none is skipped).
  static constexpr std::size_t kMaxUnrecorded = 3;
  // The niceness of the threads that compare snapshots for the change log (setpriority): they
  // yield the cores to the writes and reads they trail (on a machine of two cores, a write of
  // 10,000 real devices into a million was answered in 1.5-1.9 s with the comparison of the write
  // before at the same priority; docs/scaling.md, "Writes cost the batch"). The recorder thread
  // itself, which holds the store while it writes the log, keeps the server's priority.
  static constexpr int kRecorderNice = 10;

 private:
  // Called with reload_mutex_ held. With `catalog`, the snapshot is built on it even when the
  // current one is of that version, and the catalog is swapped in with it (only if it builds).
  // With `own`, this process's write that made `version`: when the current snapshot is of the
  // version before it, the write's devices are taken from it rather than read back.
  Result<std::shared_ptr<const TenantViews>> reload(
      std::int64_t version, std::shared_ptr<const engine::CatalogIndex> catalog = nullptr,
      store::DeviceWrite* own = nullptr);
  // The snapshots of every stored device (in order of tenant, then id), each tenant's built with
  // its snapshot in `previous` (if any) as FleetView::build's.
  std::shared_ptr<TenantViews> build(std::shared_ptr<const engine::CatalogIndex> catalog,
                                     std::vector<inventory::Device> devices, std::int64_t version,
                                     std::string token, const TenantViews* previous) const;
  // `previous` brought up to date by the changes read since it: only the tenants they touch get
  // new snapshots.
  std::shared_ptr<TenantViews> apply(const TenantViews& previous,
                                     store::DeviceChanges changes) const;
  // Says on stderr which stored rows are skipped (every one, read by all()), when that changes.
  void report_damaged(const std::vector<store::DamagedDevice>& damaged);
  // The same for the rows written and removed since the last snapshot.
  void track_damaged(const store::DeviceChanges& changes);
  void report_damaged_rows(const std::vector<store::DamagedDevice>& damaged);
  // Records the changes from `before` to `after` in the change log (each tenant's in its own),
  // unpublished, on the recorder's thread once `after` is served (record_step then publishes them:
  // stamps them); how many. The snapshots are served whatever becomes of their changes.
  Result<std::size_t> record_changes(const TenantViews& before, const TenantViews& after);
  // Hands the recorder a snapshot just served, and the one it replaced.
  void queue_changes(std::shared_ptr<const TenantViews> before,
                     std::shared_ptr<const TenantViews> after);
  void record_loop();  // the recorder's thread
  // Records the changes from one snapshot to the next: recorded, or given up (logged, counted and
  // remembered: a delta from before it is refused, it would miss them). Or an error that the
  // database could not be reached: the step is to be tried again (its snapshots are in memory;
  // writes wait for it at kMaxUnrecorded, and fail anyway meanwhile).
  std::optional<Error> record_step(const TenantViews& from, const TenantViews& to);
  // `error`, if the step that failed with it is to be tried again; if not, it is given up.
  std::optional<Error> retry_step(std::int64_t version, Error error);
  static constexpr std::chrono::milliseconds kRetryMin{250}, kRetryMax{4000};
  bool recorded_through(std::uint64_t serial) const;  // under record_mutex_
  std::mutex record_mutex_;
  std::condition_variable record_cv_;
  // The last snapshot whose changes are recorded (the baseline), then every snapshot served since,
  // in order: the recorder records each one's changes from the one before it, so that whichever
  // snapshot an export answers from, the log's changes go on from exactly that one.
  std::deque<std::shared_ptr<const TenantViews>> chain_;
  std::uint64_t serial_ = 0;            // of the last snapshot served (under reload_mutex_)
  bool recording_for_another_ = false;  // another server records (the recorder's thread only)
  // A step that failed may have left unpublished rows, removed before the next try (ditto).
  bool leftovers_ = false;
  bool stopping_ = false;
  std::thread recorder_;  // started by the constructor's body, joined by the destructor's
  void change_log_missed(std::int64_t version, const std::string& why);
  ChangeLogStatus change_log_;  // under status_mutex_

  std::atomic<std::shared_ptr<const engine::CatalogIndex>> catalog_;
  std::unique_ptr<store::DeviceStore> devices_;
  mutable std::mutex status_mutex_;
  CatalogStatus status_;
  unsigned threads_;
  std::mutex write_mutex_;   // serializes this process's writes (held across a read-modify-write)
  std::mutex reload_mutex_;  // serializes reloads (held while a fleet is read and evaluated)
  std::atomic<int> writing_{0};  // writes of this process from before their commit to their reload
  std::atomic<std::shared_ptr<const TenantViews>> views_;
  std::set<store::DeviceKey> damaged_;  // the stored rows skipped (under reload_mutex_)
  std::shared_ptr<const TenantViews> snapshot() const { return views_.load(); }
};

}  // namespace kbgap::server
