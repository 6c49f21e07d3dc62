#include "server/service.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/clock.h"
#include "server/change_log.h"

namespace kbgap::server {

Service::Service(std::shared_ptr<const engine::CatalogIndex> catalog,
                 std::unique_ptr<store::DeviceStore> devices, unsigned threads)
    : catalog_(std::move(catalog)), devices_(std::move(devices)), threads_(threads) {}

std::shared_ptr<const FleetView> Service::snapshot() {
  return view_.load();
}

void Service::report_damaged(const std::vector<store::DamagedDevice>& damaged) {
  std::set<std::string> ids;
  for (const store::DamagedDevice& d : damaged) ids.insert(d.id);
  if (ids == damaged_) return;
  damaged_ = std::move(ids);
  report_damaged_rows(damaged);
}

void Service::track_damaged(const store::DeviceChanges& changes) {
  // Written again (and read back) or removed: no longer skipped.
  for (const inventory::Device& d : changes.written) damaged_.erase(d.id);
  for (const std::string& id : changes.removed) damaged_.erase(id);
  std::vector<store::DamagedDevice> fresh;  // said once each
  for (const store::DamagedDevice& d : changes.damaged) {
    if (damaged_.insert(d.id).second) fresh.push_back(d);
  }
  report_damaged_rows(fresh);
}

void Service::report_damaged_rows(const std::vector<store::DamagedDevice>& damaged) {
  for (const store::DamagedDevice& d : damaged) {
    std::fprintf(stderr,
                 "kbgap: stored device %s does not read back and is left out of every answer: "
                 "%s (write it again, or remove it with: kbgap devices remove %s)\n",
                 d.id.c_str(), d.problem.c_str(), d.id.c_str());
  }
}

Result<std::shared_ptr<const FleetView>> Service::reload(
    std::int64_t version, std::shared_ptr<const engine::CatalogIndex> catalog) {
  if (auto current = snapshot(); !catalog && current && current->version() == version) {
    return current;
  }
  // The snapshot this one replaces: the devices it evaluated alike are not evaluated again, and the
  // change log is its difference from the new one.
  auto previous = snapshot();
  std::shared_ptr<const FleetView> fresh;
  if (previous && !catalog) {
    // What was written and removed since it: the other devices are neither read nor evaluated
    // again (docs/scaling.md, "Writes cost the batch").
    auto changes = devices_->changed_since(previous->version(), previous->token());
    if (!changes) return changes.error();
    if (*changes) {
      store::DeviceChanges& c = **changes;
      if (c.version == previous->version()) return previous;  // nothing new yet
      track_damaged(c);
      for (const store::DamagedDevice& d : c.damaged) c.removed.push_back(d.id);
      std::sort(c.removed.begin(), c.removed.end());
      fresh = FleetView::apply(*previous, std::move(c.written), c.removed, c.version, threads_,
                               std::move(c.token));
      // Every stored row is in the snapshot or skipped as damaged; else the database is not the
      // one the snapshot was read from (restored, or failed over to a copy that numbered its
      // writes again): every device is read from it.
      if (static_cast<std::int64_t>(fresh->devices().size() + damaged_.size()) != c.stored) {
        std::fprintf(stderr,
                     "kbgap: the database counts %lld devices, this server's snapshot brought "
                     "up to date %zu (and %zu skipped): the database was restored or failed over, "
                     "or written behind kbgap's back; reading every device again\n",
                     static_cast<long long>(c.stored), fresh->devices().size(), damaged_.size());
        fresh.reset();
        // Rows written behind kbgap's back leave the count off too: it is made exact, so that the
        // next snapshots are brought up to date again. Reading every device needs no recount: a
        // store that cannot write now (busy, read-only) is said, and the read goes on.
        if (auto recounted = devices_->recount(); !recounted) {
          std::fprintf(stderr, "kbgap: the device count could not be made exact: %s\n",
                       recounted.error().message.c_str());
        }
      }
    }
  }
  if (!fresh) {
    auto all = devices_->all();
    if (!all) return all.error();
    report_damaged(all->damaged);
    fresh = FleetView::build(catalog ? catalog : catalog_.load(), std::move(all->devices),
                             all->version, threads_, previous.get(), std::move(all->token));
  }
  bool recorded = false;
  if (previous && devices_->records_changes()) recorded = record_changes(*previous, *fresh);
  if (catalog) catalog_.store(std::move(catalog));
  view_.store(fresh);
  if (recorded) publish_changes(fresh->version());
  previous.reset();  // before the trim below: requests still on it keep it alive, not this
  // Give the memory the reload's temporaries used back to the system. Without this, glibc keeps
  // the freed pages of every thread's arena and the resident size creeps up under steady writes
  // (bench/soak.sh: +5% in 150 s at 2.7 writes/s with the heap in use flat; docs/security.md).
  // `kbgap serve` also fixes glibc's mmap and trim thresholds (serve_command.cpp).
  malloc_trim(0);
  return fresh;
}

bool Service::record_changes(const FleetView& before, const FleetView& after) {
  auto found = diff_snapshots(
      before, after,
      [&](std::vector<store::ChangeSet>& sets) { return devices_->record_changes(sets); },
      threads_);
  if (found) {
    if (&before.catalog() != &after.catalog()) {
      const std::size_t devices = after.devices().size();
      std::fprintf(stderr,
                   "kbgap: the new catalog touches %zu of its %zu products: %zu of %zu devices "
                   "evaluated again (the others' answers kept), %zu compared for the change log, "
                   "%zu rows changed\n",
                   found->touched_products, after.catalog().products().size(),
                   devices - after.result().reused_devices(), devices, found->compared,
                   found->changes);
    }
    std::lock_guard lock(status_mutex_);
    change_log_.recorded += static_cast<std::int64_t>(found->changes);
    return true;
  }
  (void)devices_->discard_changes();  // no part of them: the log says they are missing
  change_log_missed(after.version(), found.error().message);
  return false;
}

void Service::publish_changes(std::int64_t version) {
  const auto now = std::chrono::system_clock::now();
  if (auto published =
          devices_->publish_changes(utc_time_precise(now), utc_time_precise(now - kKeepChanges));
      !published) {
    (void)devices_->discard_changes();
    change_log_missed(version, published.error().message);
  }
}

void Service::change_log_missed(std::int64_t version, const std::string& why) {
  std::lock_guard lock(status_mutex_);
  ++change_log_.failed;
  change_log_.last_error = why;
  change_log_.missed_at = utc_now();
  std::fprintf(stderr,
               "kbgap: the change log (the delta export) misses the changes of fleet version "
               "%lld: %s; a delta from before now is refused until it is older than 14 days\n",
               static_cast<long long>(version), why.c_str());
}

Service::ChangeLogStatus Service::change_log_status() const {
  std::lock_guard lock(status_mutex_);
  return change_log_;
}

Result<std::shared_ptr<const FleetView>> Service::view() {
  auto version = devices_->version();
  if (!version) return version.error();
  if (auto current = snapshot(); current && current->version() == *version) return current;
  std::lock_guard lock(reload_mutex_);
  return reload(*version);
}

Result<std::shared_ptr<const FleetView>> Service::current_view() {
  auto version = devices_->version();
  if (!version) return version.error();
  if (auto current = snapshot(); current && current->version() == *version) return current;
  return std::shared_ptr<const FleetView>();
}

Result<store::DeviceWrite> Service::put_devices(const std::vector<inventory::Device>& devices) {
  std::lock_guard write(write_mutex_);
  auto written = devices_->put(devices, utc_now());
  if (!written) return written.error();
  std::lock_guard lock(reload_mutex_);
  auto reloaded = reload(written->version);
  if (!reloaded) return reloaded.error();
  return written;
}

Result<std::optional<inventory::Device>> Service::change_device(
    std::string_view id, const std::function<void(inventory::Device&)>& change) {
  std::lock_guard write(write_mutex_);
  auto current = view();
  if (!current) return current.error();
  auto found = (*current)->find(id);
  if (!found) return std::optional<inventory::Device>();
  inventory::Device d = (*current)->devices()[*found];
  change(d);
  auto written = devices_->put({d}, utc_now());
  if (!written) return written.error();
  std::lock_guard lock(reload_mutex_);
  auto reloaded = reload(written->version);
  if (!reloaded) return reloaded.error();
  return std::optional<inventory::Device>(std::move(d));
}

Result<bool> Service::remove_device(std::string_view id) {
  std::lock_guard write(write_mutex_);
  auto removed = devices_->remove(id);
  if (!removed) return removed.error();
  auto version = devices_->version();
  if (!version) return version.error();
  std::lock_guard lock(reload_mutex_);
  auto reloaded = reload(*version);
  if (!reloaded) return reloaded.error();
  return removed;
}

Result<std::shared_ptr<const FleetView>> Service::replace_catalog(
    std::shared_ptr<const engine::CatalogIndex> catalog) {
  std::lock_guard lock(reload_mutex_);
  auto version = devices_->version();
  if (!version) return version.error();
  return reload(*version, std::move(catalog));
}

CatalogStatus Service::catalog_status() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

void Service::update_catalog_status(const std::function<void(CatalogStatus&)>& change) {
  std::lock_guard lock(status_mutex_);
  change(status_);
}

bool Service::ready() {
  return devices_->check().ok() && view().ok();
}

}  // namespace kbgap::server
