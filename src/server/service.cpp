#include "server/service.h"

#include <malloc.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <set>
#include <tuple>

#include "common/clock.h"
#include "server/change_log.h"

namespace kbgap::server {

Service::Service(std::shared_ptr<const engine::CatalogIndex> catalog,
                 std::unique_ptr<store::DeviceStore> devices, unsigned threads)
    : catalog_(std::move(catalog)), devices_(std::move(devices)), threads_(threads) {
  recorder_ = std::thread([this] { record_loop(); });
}

Service::~Service() {
  {
    std::lock_guard lock(record_mutex_);
    stopping_ = true;
  }
  record_cv_.notify_all();
  recorder_.join();
}

void Service::queue_changes(std::shared_ptr<const TenantViews> before,
                            std::shared_ptr<const TenantViews> after) {
  {
    std::unique_lock lock(record_mutex_);
    if (chain_.empty()) {
      chain_.push_back(std::move(before));  // the first baseline
    } else {
      assert(chain_.back() == before);  // reloads are serialized: each queues what it replaced
    }
    // Enough snapshots wait already: this write waits for the recorder (reads go on).
    record_cv_.wait(lock, [&] { return stopping_ || chain_.size() <= kMaxUnrecorded; });
    chain_.push_back(std::move(after));
  }
  record_cv_.notify_all();
}

std::optional<Error> Service::retry_step(std::int64_t version, Error error) {
  if (error.code == ErrorCode::kUnavailable) return error;
  change_log_missed(version, error.message);
  return std::nullopt;
}

std::optional<Error> Service::record_step(const TenantViews& from, const TenantViews& to) {
  try {
    if (leftovers_) {
      // What a try that failed recorded goes before the next: else it would come twice.
      if (auto discarded = devices_->discard_changes(); !discarded) {
        return retry_step(to.version, discarded.error());
      }
      leftovers_ = false;
    }
    if (devices_->records_changes()) {
      if (recording_for_another_) {
        // The server that recorded is gone: what it had not recorded, and what changed between
        // its snapshots and this server's, may be missing (docs/api.md, "The delta export").
        recording_for_another_ = false;
        change_log_missed(to.version,
                          "this server took over recording the change log from another server; "
                          "changes around the handover may be missing");
      }
      // `to` was served before it was queued, so the stamp comes after: a client that read an
      // older snapshot before it finds these changes since its time.
      Result<std::size_t> recorded = record_changes(from, to);
      if (recorded) {
        const auto now = std::chrono::system_clock::now();
        if (auto published = devices_->publish_changes(utc_time_precise(now),
                                                       utc_time_precise(now - kKeepChanges));
            !published) {
          recorded = published.error();
        }
      }
      if (!recorded) {
        // None of them is published: the rows a failure left are removed, now or before the
        // next try.
        leftovers_ = !devices_->discard_changes();
        return retry_step(to.version, recorded.error());
      }
      std::lock_guard lock(status_mutex_);
      change_log_.recorded += static_cast<std::int64_t>(*recorded);
    } else if (auto checked = devices_->check(); !checked) {
      // Not known to be another server's to record: the database did not answer.
      return retry_step(to.version, checked.error());
    } else {
      recording_for_another_ = true;
    }
  } catch (const std::exception& e) {
    try {
      leftovers_ = !devices_->discard_changes();
      change_log_missed(to.version, e.what());
    } catch (...) {  // out of memory again: the count is all that can be kept
    }
  }
  return std::nullopt;
}

void Service::record_loop() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point waiting{};  // since when the database is waited for; {} if it is not
  std::chrono::milliseconds pause = kRetryMin;
  std::unique_lock lock(record_mutex_);
  for (;;) {
    record_cv_.wait(lock, [&] { return stopping_ || chain_.size() >= 2; });
    if (chain_.size() < 2) return;  // stopping, with nothing left to record
    {
      const auto from = chain_[0];
      const auto to = chain_[1];
      lock.unlock();
      const std::optional<Error> retry = record_step(*from, *to);
      lock.lock();
      if (retry) {
        // The database could not be reached: the same step again after a pause, longer each
        // time up to kRetryMax, until it can be, or the server stops.
        if (waiting == Clock::time_point{}) {
          waiting = Clock::now();
          std::fprintf(stderr,
                       "kbgap: the change log waits for the database to record the changes of "
                       "fleet version %lld: %s\n",
                       static_cast<long long>(to->version), retry->message.c_str());
        }
        const bool stopping = record_cv_.wait_for(lock, pause, [&] { return stopping_; });
        pause = std::min(pause * 2, kRetryMax);
        if (!stopping) continue;
        change_log_missed(to->version, "the server stopped before the database could be reached");
        return;
      }
      if (waiting != Clock::time_point{}) {
        std::fprintf(stderr, "kbgap: the database answers the change log again after %.1f s\n",
                     std::chrono::duration<double>(Clock::now() - waiting).count());
        waiting = {};
        pause = kRetryMin;
      }
    }
    auto done = std::move(chain_.front());  // `to` is the baseline now
    chain_.pop_front();
    record_cv_.notify_all();
    lock.unlock();
    done.reset();  // the snapshot it was, outside the lock; its memory back to the system
    malloc_trim(0);
    lock.lock();
  }
}

bool Service::recorded_through(std::uint64_t serial) const {
  // Before a second snapshot, the only one served is the first: the log's baseline.
  return chain_.empty() || chain_.front()->serial >= serial;
}

bool Service::changes_recorded(std::uint64_t serial) {
  std::lock_guard lock(record_mutex_);
  return recorded_through(serial);
}

bool Service::wait_changes_recorded(std::uint64_t serial, std::chrono::milliseconds timeout) {
  std::unique_lock lock(record_mutex_);
  return record_cv_.wait_for(lock, timeout, [&] { return recorded_through(serial); });
}

std::size_t TenantViews::devices() const {
  std::size_t n = 0;
  for (const auto& [tenant, view] : views) n += view->devices().size();
  return n;
}

void Service::report_damaged(const std::vector<store::DamagedDevice>& damaged) {
  std::set<store::DeviceKey> keys;
  for (const store::DamagedDevice& d : damaged) keys.insert({d.tenant, d.id});
  if (keys == damaged_) return;
  damaged_ = std::move(keys);
  report_damaged_rows(damaged);
}

void Service::track_damaged(const store::DeviceChanges& changes) {
  // Written again (and read back) or removed: no longer skipped.
  for (const inventory::Device& d : changes.written) damaged_.erase({d.tenant, d.id});
  for (const store::DeviceKey& key : changes.removed) damaged_.erase(key);
  std::vector<store::DamagedDevice> fresh;  // said once each
  for (const store::DamagedDevice& d : changes.damaged) {
    if (damaged_.insert({d.tenant, d.id}).second) fresh.push_back(d);
  }
  report_damaged_rows(fresh);
}

void Service::report_damaged_rows(const std::vector<store::DamagedDevice>& damaged) {
  for (const store::DamagedDevice& d : damaged) {
    std::fprintf(stderr,
                 "kbgap: stored device %s of tenant %s does not read back and is left out of "
                 "every answer: %s (write it again, or remove it with: kbgap devices remove "
                 "--tenant %s %s)\n",
                 d.id.c_str(), d.tenant.c_str(), d.problem.c_str(), d.tenant.c_str(), d.id.c_str());
  }
}

std::shared_ptr<TenantViews> Service::build(std::shared_ptr<const engine::CatalogIndex> catalog,
                                            std::vector<inventory::Device> devices,
                                            std::int64_t version, std::string token,
                                            const TenantViews* previous) const {
  auto out = std::make_shared<TenantViews>();
  out->version = version;
  out->token = token;
  out->empty = FleetView::build(catalog, {}, version, 1, nullptr, token);
  // The stores give the devices in order of tenant (then id): each tenant's run is one snapshot.
  auto by_tenant = [](const inventory::Device& a, const inventory::Device& b) {
    return a.tenant < b.tenant;
  };
  if (!std::is_sorted(devices.begin(), devices.end(), by_tenant)) {
    std::stable_sort(devices.begin(), devices.end(), by_tenant);
  }
  for (std::size_t begin = 0; begin < devices.size();) {
    std::size_t end = begin + 1;
    while (end < devices.size() && devices[end].tenant == devices[begin].tenant) ++end;
    std::vector<inventory::Device> own(std::make_move_iterator(devices.begin() + begin),
                                       std::make_move_iterator(devices.begin() + end));
    std::string tenant = own.front().tenant;
    const FleetView* before = nullptr;
    if (previous) {
      if (auto it = previous->views.find(tenant); it != previous->views.end()) {
        before = it->second.get();
      }
    }
    out->views.emplace(std::move(tenant),
                       FleetView::build(catalog, std::move(own), version, threads_, before, token));
    begin = end;
  }
  return out;
}

std::shared_ptr<TenantViews> Service::apply(const TenantViews& previous,
                                            store::DeviceChanges changes) const {
  auto out = std::make_shared<TenantViews>(previous);
  out->version = changes.version;
  out->token = changes.token;
  // Each tenant the changes touch (both lists are in order of tenant, then id, as the stores give
  // them; kept so here whatever a store does).
  auto by_key = [](const inventory::Device& a, const inventory::Device& b) {
    return std::tie(a.tenant, a.id) < std::tie(b.tenant, b.id);
  };
  if (!std::is_sorted(changes.written.begin(), changes.written.end(), by_key)) {
    std::sort(changes.written.begin(), changes.written.end(), by_key);
  }
  std::sort(changes.removed.begin(), changes.removed.end());
  std::set<std::string, std::less<>> touched;
  for (const inventory::Device& d : changes.written) touched.insert(d.tenant);
  for (const store::DeviceKey& k : changes.removed) touched.insert(k.tenant);
  auto written = changes.written.begin();
  auto removed = changes.removed.begin();
  for (const std::string& tenant : touched) {
    std::vector<inventory::Device> own;
    for (; written != changes.written.end() && written->tenant == tenant; ++written) {
      own.push_back(std::move(*written));
    }
    std::vector<std::string> gone;
    for (; removed != changes.removed.end() && removed->tenant == tenant; ++removed) {
      gone.push_back(removed->id);
    }
    auto fresh = FleetView::apply(*previous.of(tenant), std::move(own), gone, changes.version,
                                  threads_, changes.token);
    if (fresh->devices().empty()) {
      out->views.erase(tenant);
    } else {
      out->views.insert_or_assign(tenant, std::move(fresh));
    }
  }
  return out;
}

Result<std::shared_ptr<const TenantViews>> Service::reload(
    std::int64_t version, std::shared_ptr<const engine::CatalogIndex> catalog,
    store::DeviceWrite* own) {
  // The snapshots these replace: the devices they evaluated alike are not evaluated again, and
  // the change log is their difference from the new ones.
  auto previous = snapshot();
  if (!catalog && previous && previous->version == version) return previous;
  std::shared_ptr<TenantViews> fresh;
  if (previous && !catalog) {
    // What was written and removed since them: the other devices are neither read nor evaluated
    // again (docs/scaling.md, "Writes cost the batch"). When that is this process's write alone,
    // its devices as stored are at hand: nothing is read back.
    auto read_changes = [&]() -> Result<std::optional<store::DeviceChanges>> {
      if (own && own->version == version && own->version == previous->version + 1 &&
          own->previous_token == previous->token) {
        store::DeviceChanges c;
        c.version = own->version;
        c.token = std::move(own->token);
        c.written = std::move(own->devices);
        c.stored = own->stored;
        return std::optional<store::DeviceChanges>(std::move(c));
      }
      return devices_->changed_since(previous->version, previous->token);
    };
    auto changes = read_changes();
    if (!changes) return changes.error();
    if (*changes) {
      store::DeviceChanges& c = **changes;
      if (c.version == previous->version) return previous;  // nothing new yet
      track_damaged(c);
      for (const store::DamagedDevice& d : c.damaged) c.removed.push_back({d.tenant, d.id});
      const std::int64_t stored = c.stored;
      fresh = apply(*previous, std::move(c));
      // Every stored row is in a snapshot or skipped as damaged; else the database is not the
      // one the snapshots were read from (restored, or failed over to a copy that numbered its
      // writes again): every device is read from it.
      if (const std::size_t held = fresh->devices();
          static_cast<std::int64_t>(held + damaged_.size()) != stored) {
        std::fprintf(stderr,
                     "kbgap: the database counts %lld devices, this server's snapshots brought "
                     "up to date %zu (and %zu skipped): the database was restored or failed over, "
                     "or written behind kbgap's back; reading every device again\n",
                     static_cast<long long>(stored), held, damaged_.size());
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
    fresh = build(catalog ? catalog : catalog_.load(), std::move(all->devices), all->version,
                  std::move(all->token), previous.get());
  }
  if (catalog) catalog_.store(std::move(catalog));
  fresh->serial = ++serial_;
  views_.store(fresh);
  // Its changes from the one before go to the change log on the recorder's thread (this waits
  // only when kMaxUnrecorded snapshots wait for it already).
  if (previous) queue_changes(std::move(previous), fresh);
  previous.reset();  // before the trim below: requests still on it keep it alive, not this
  // Give the memory the reload's temporaries used back to the system. Without this, glibc keeps
  // the freed pages of every thread's arena and the resident size creeps up under steady writes
  // (bench/soak.sh: +5% in 150 s at 2.7 writes/s with the heap in use flat; docs/security.md).
  // `kbgap serve` also fixes glibc's mmap and trim thresholds (serve_command.cpp).
  malloc_trim(0);
  return std::shared_ptr<const TenantViews>(std::move(fresh));
}

Result<std::size_t> Service::record_changes(const TenantViews& before, const TenantViews& after) {
  std::set<std::string, std::less<>> tenants;
  for (const auto* side : {&before, &after}) {
    for (const auto& [tenant, view] : side->views) tenants.insert(tenant);
  }
  DiffStats total;
  std::size_t evaluated = 0;
  for (const std::string& tenant : tenants) {
    const FleetView& b = *before.of(tenant);
    const FleetView& a = *after.of(tenant);
    if (&b == &a) continue;  // untouched
    auto found = diff_snapshots(
        b, a,
        [&](std::vector<store::ChangeSet>& sets) {
          for (store::ChangeSet& set : sets) set.tenant = tenant;
          return devices_->record_changes(sets);
        },
        threads_, 50000, kRecorderNice);
    if (!found) return found.error();
    total.changes += found->changes;
    total.devices += a.devices().size();
    total.compared += found->compared;
    total.touched_products = found->touched_products;
    evaluated += a.devices().size() - a.result().reused_devices();
  }
  const engine::CatalogIndex& catalog = after.empty->catalog();
  if (&before.empty->catalog() != &catalog) {
    std::fprintf(stderr,
                 "kbgap: the new catalog touches %zu of its %zu products: %zu of %zu devices "
                 "evaluated again (the others' answers kept), %zu compared for the change log, "
                 "%zu rows changed\n",
                 total.touched_products, catalog.products().size(), evaluated, total.devices,
                 total.compared, total.changes);
  }
  return total.changes;
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

namespace {

// Counts a write of this process from before its commit to after its reload.
class Writing {
 public:
  explicit Writing(std::atomic<int>& count) : count_(count) { ++count_; }
  ~Writing() { --count_; }
  Writing(const Writing&) = delete;
  Writing& operator=(const Writing&) = delete;

 private:
  std::atomic<int>& count_;
};

}  // namespace

Result<std::shared_ptr<const TenantViews>> Service::views() {
  auto version = devices_->version();
  if (!version) return version.error();
  if (auto current = snapshot(); current && current->version == *version) return current;
  std::unique_lock lock(reload_mutex_, std::try_to_lock);
  if (!lock) {
    // This process is writing, and holds the lock until its write is read in: that write's
    // caller has no answer yet, so the snapshot before it is still the fleet every answered write
    // of this process left (docs/scaling.md, "Writes cost the batch"). Reads go on from it rather
    // than wait for the reload.
    if (auto current = snapshot(); current && writing_.load() > 0) return current;
    lock.lock();
  }
  return reload(*version);
}

Result<std::shared_ptr<const FleetView>> Service::view(std::string_view tenant) {
  auto all = views();
  if (!all) return all.error();
  return (*all)->of(tenant);
}

Result<std::shared_ptr<const TenantViews>> Service::current_views() {
  auto version = devices_->version();
  if (!version) return version.error();
  if (auto current = snapshot(); current && (current->version == *version || writing_.load() > 0)) {
    return current;  // during a write of this process: as views() says
  }
  return std::shared_ptr<const TenantViews>();
}

Result<std::shared_ptr<const FleetView>> Service::current_view(std::string_view tenant) {
  auto current = current_views();
  if (!current) return current.error();
  return *current ? (*current)->of(tenant) : std::shared_ptr<const FleetView>();
}

Result<store::DeviceWrite> Service::put_devices(std::string_view tenant,
                                                std::vector<inventory::Device> devices) {
  for (inventory::Device& d : devices) d.tenant = std::string(tenant);
  std::lock_guard write(write_mutex_);
  // The reload lock from before the commit: no read takes the reload on itself (views()).
  std::lock_guard lock(reload_mutex_);
  Writing writing(writing_);
  auto written = devices_->put(devices, utc_now());
  if (!written) return written.error();
  devices.clear();
  auto reloaded = reload(written->version, nullptr, &*written);
  if (!reloaded) return reloaded.error();
  written->devices.clear();
  return written;
}

Result<std::optional<inventory::Device>> Service::change_device(
    std::string_view tenant, std::string_view id,
    const std::function<void(inventory::Device&)>& change) {
  std::lock_guard write(write_mutex_);
  std::lock_guard lock(reload_mutex_);
  Writing writing(writing_);
  auto version = devices_->version();
  if (!version) return version.error();
  auto newest = reload(*version);
  if (!newest) return newest.error();
  const std::shared_ptr<const FleetView> current = (*newest)->of(tenant);
  auto found = current->find(id);
  if (!found) return std::optional<inventory::Device>();
  inventory::Device d = current->devices()[*found];
  change(d);
  auto written = devices_->put({d}, utc_now());
  if (!written) return written.error();
  auto reloaded = reload(written->version, nullptr, &*written);
  if (!reloaded) return reloaded.error();
  return std::optional<inventory::Device>(std::move(d));
}

Result<bool> Service::remove_device(std::string_view tenant, std::string_view id) {
  std::lock_guard write(write_mutex_);
  std::lock_guard lock(reload_mutex_);
  Writing writing(writing_);
  auto removed = devices_->remove(tenant, id);
  if (!removed) return removed.error();
  auto version = devices_->version();
  if (!version) return version.error();
  auto reloaded = reload(*version);
  if (!reloaded) return reloaded.error();
  return removed;
}

Result<std::shared_ptr<const TenantViews>> Service::replace_catalog(
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
  return devices_->check().ok() && views().ok();
}

}  // namespace kbgap::server
