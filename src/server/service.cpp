#include "server/service.h"

#include "common/clock.h"

namespace kbgap::server {

Service::Service(std::shared_ptr<const engine::CatalogIndex> catalog,
                 std::unique_ptr<store::DeviceStore> devices, unsigned threads)
    : catalog_(std::move(catalog)), devices_(std::move(devices)), threads_(threads) {}

Result<std::shared_ptr<const FleetView>> Service::reload(std::int64_t version) {
  // Called with mutex_ held.
  if (view_ && view_->version() == version) return view_;
  auto all = devices_->all();
  if (!all) return all.error();
  view_ = FleetView::build(catalog_, std::move(*all), version, threads_);
  return view_;
}

Result<std::shared_ptr<const FleetView>> Service::view() {
  auto version = devices_->version();
  if (!version) return version.error();
  {
    std::lock_guard lock(mutex_);
    if (view_ && view_->version() == *version) return view_;
  }
  std::lock_guard lock(mutex_);
  return reload(*version);
}

Result<store::DeviceWrite> Service::put_devices(const std::vector<inventory::Device>& devices) {
  auto written = devices_->put(devices, utc_now());
  if (!written) return written.error();
  std::lock_guard lock(mutex_);
  auto reloaded = reload(written->version);
  if (!reloaded) return reloaded.error();
  return written;
}

Result<bool> Service::remove_device(std::string_view id) {
  auto removed = devices_->remove(id);
  if (!removed) return removed.error();
  auto version = devices_->version();
  if (!version) return version.error();
  std::lock_guard lock(mutex_);
  auto reloaded = reload(*version);
  if (!reloaded) return reloaded.error();
  return removed;
}

bool Service::ready() {
  return devices_->version().ok();
}

}  // namespace kbgap::server
