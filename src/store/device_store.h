// Where devices are kept: an interface, so that one node can use an SQLite file and several
// stateless nodes one PostgreSQL database.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inventory/device.h"

namespace kbgap::store {

struct DeviceWrite {
  std::size_t created = 0, replaced = 0;
  std::int64_t version = 0;  // the fleet's version after the write
};

// A stored row that does not read back as a device (damaged outside kbgap, or written by an
// older version under looser rules): reported, never fatal.
struct DamagedDevice {
  std::string id;
  std::string problem;
};

struct StoredDevices {
  std::vector<inventory::Device> devices;  // in id order
  std::vector<DamagedDevice> damaged;      // skipped
};

class DeviceStore {
 public:
  virtual ~DeviceStore() = default;

  // Writes a batch atomically: every device or none. A device is its id: writing an id again
  // replaces the device and keeps its first-seen time (the earlier of the two). The batch is
  // first checked by prepare_batch (device_batch.h): an invalid device is an kInvalidInput
  // error and nothing is written.
  virtual Result<DeviceWrite> put(const std::vector<inventory::Device>& devices,
                                  std::string_view now) = 0;
  // Removes a device; false when there was none.
  virtual Result<bool> remove(std::string_view id) = 0;
  // Every device, in id order; rows that do not read back are skipped and listed.
  virtual Result<StoredDevices> all() = 0;
  // A number that changes with every committed write of devices, by any process. Cheap: may
  // be answered without asking the database.
  virtual Result<std::int64_t> version() = 0;
  // Asks the database itself (for readiness checks).
  virtual Result<void> check() = 0;
};

}  // namespace kbgap::store
