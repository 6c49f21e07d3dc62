// The server's state: the catalog index, the device store, and the current fleet snapshot,
// reloaded whenever the store's fleet version moves (a write here, another process's or another
// node's), so that every answer reflects every write that has returned.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
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
  // The snapshot at the store's current fleet version (blocking: may reload the fleet).
  Result<std::shared_ptr<const FleetView>> view();
  // The current snapshot when it is still the store's version, else null (a reload is due);
  // never waits for a writer.
  Result<std::shared_ptr<const FleetView>> current_view();
  Result<store::DeviceWrite> put_devices(const std::vector<inventory::Device>& devices);
  Result<bool> remove_device(std::string_view id);
  // Whether the store's database answers and the fleet can be read at its current version (for
  // /readyz; blocking).
  bool ready();

 private:
  Result<std::shared_ptr<const FleetView>> reload(std::int64_t version);
  // Says on stderr which stored rows are skipped, when that changes.
  void report_damaged(const std::vector<store::DamagedDevice>& damaged);

  std::shared_ptr<const engine::CatalogIndex> catalog_;
  std::unique_ptr<store::DeviceStore> devices_;
  unsigned threads_;
  std::mutex reload_mutex_;  // serializes reloads (held while a fleet is read and evaluated)
  std::atomic<std::shared_ptr<const FleetView>> view_;
  std::vector<std::string> damaged_;  // the skipped rows last reported (under reload_mutex_)
  std::shared_ptr<const FleetView> snapshot();
};

}  // namespace kbgap::server
