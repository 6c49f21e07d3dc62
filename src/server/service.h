// The server's state: the catalog index, the device store, and the current fleet snapshot,
// reloaded whenever the store's fleet version moves (a write here, another process's or another
// node's), so that every answer reflects every write that has returned.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "common/result.h"
#include "engine/catalog_index.h"
#include "server/fleet_view.h"
#include "store/device_store.h"

namespace kbgap::server {

class Service {
 public:
  Service(std::shared_ptr<const engine::CatalogIndex> catalog,
          std::unique_ptr<store::DeviceStore> devices, unsigned threads);

  const engine::CatalogIndex& catalog() const { return *catalog_; }
  // The snapshot at the store's current fleet version (blocking: reads the store).
  Result<std::shared_ptr<const FleetView>> view();
  Result<store::DeviceWrite> put_devices(const std::vector<inventory::Device>& devices);
  Result<bool> remove_device(std::string_view id);
  // Whether the store answers (for /readyz).
  bool ready();

 private:
  Result<std::shared_ptr<const FleetView>> reload(std::int64_t version);

  std::shared_ptr<const engine::CatalogIndex> catalog_;
  std::unique_ptr<store::DeviceStore> devices_;
  unsigned threads_;
  std::mutex mutex_;  // guards view_ and serializes reloads
  std::shared_ptr<const FleetView> view_;
};

}  // namespace kbgap::server
