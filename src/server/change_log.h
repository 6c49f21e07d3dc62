// The delta export's change log (docs/api.md, "The delta export"): what changed in the devices'
// open vulnerability rows from one fleet snapshot to the next. Rows are the exports' own
// (device, software, version, CVE); a row that appears is New, one that goes is Fixed (also when
// its device is removed, or its software's version moves: Fixed on the old version, New on the
// new one), one whose score, severity, exploitability or closing KB changes is Updated.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inventory/device.h"
#include "server/fleet_view.h"
#include "store/device_store.h"

namespace kbgap::server {

// The changes from `before` to `after`, as change sets (devices whose rows changed alike share
// one), handed to `sink` in chunks of about `chunk` devices and rows as they are found (a new
// catalog month touches every device: they are not all held at once), by one thread at a time,
// in no set order. Devices are matched by id. A device whose inventory is evaluated alike is
// skipped unread: on one catalog always, across two only when the new catalog leaves its products
// untouched (engine::CatalogChange). Devices in the same pair of states and builds share one
// diff, worked out on `threads` threads (0: one per core) at niceness `nice` (setpriority; 0:
// this thread's), which hand their chunks to the calling thread: it alone calls the sink, at
// its own priority (a sink that holds a store's lock is not slowed by the workers' niceness).
// A set's rows are parts (store::ChangePart) shared by the sets that hold them alike; a part
// the sink was handed may come again without its rows: the sink must have kept it by then.
// Stops at the sink's first error.
struct DiffStats {
  std::size_t changes = 0;           // rows of devices found changed
  std::size_t devices = 0;           // devices in either snapshot
  std::size_t compared = 0;          // of those, the devices whose rows were compared
  std::size_t touched_products = 0;  // across two catalogs: the new one's products it touches
};
Result<DiffStats> diff_snapshots(
    const FleetView& before, const FleetView& after,
    const std::function<Result<void>(std::vector<store::ChangeSet>&)>& sink, unsigned threads = 1,
    std::size_t chunk = 50000, int nice = 0);

}  // namespace kbgap::server
