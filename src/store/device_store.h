// Where devices are kept: an interface, so that one node can use an SQLite file and several
// stateless nodes one PostgreSQL database.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inventory/device.h"

namespace kbgap::store {

struct DeviceWrite {
  std::size_t created = 0, replaced = 0;
  std::int64_t version = 0;  // the fleet's version after the write
  // What brings a snapshot of the version before (`version` - 1: each write numbers the version
  // on by one) to `version` without reading the devices back (docs/scaling.md, "Writes cost the
  // batch"): the batch's devices exactly as changed_since() reads them back, in the batch's
  // order; the two versions' tokens; the rows stored after the write.
  std::vector<inventory::Device> devices;
  std::string token, previous_token;
  std::int64_t stored = 0;
};

// A stored row that does not read back as a device (damaged outside kbgap, or written by an
// older version under looser rules): reported, never fatal.
struct DamagedDevice {
  std::string tenant, id;
  std::string problem;
};

// A stored device's key: its tenant and id (two tenants may each have a device of one id).
struct DeviceKey {
  std::string tenant, id;
  friend auto operator<=>(const DeviceKey&, const DeviceKey&) = default;
};

// One row of a vulnerability export apart from its device's fields (docs/api.md, "The export
// APIs"): a device's open CVE on one of its software products, with the KB that closes it.
struct VulnerabilityRow {
  std::string software;  // "windows_10", ".net_framework"
  std::string version;   // "10.0.19045.4291"; "" when the inventory does not give it
  std::string cve;
  double cvss = 0;
  std::string severity;        // Defender's: Low, Medium, High, Critical
  std::string exploitability;  // NoExploit, ExploitIsPublic, ExploitIsVerified
  std::int64_t kb = 0;         // the KB that closes it; 0 when none
  std::string kb_name, kb_url;
};

// A change of a device's open rows between two fleet snapshots: the delta export's row.
struct VulnerabilityChange {
  std::string at;      // ISO 8601 UTC
  std::string status;  // "New", "Fixed", "Updated"
  std::string device_id, device_name;
  VulnerabilityRow row;  // as it is after the change; for Fixed, as it was
};

// Rows of change that the sets of many devices hold alike (a KB's CVEs on one build, New): kept
// once per recording and named by each set that holds them. `serial` tells parts apart within a
// process (new_change_part); a part already recorded may be passed again with its rows left out.
struct ChangePart {
  std::uint64_t serial = 0;
  std::size_t count = 0;                                       // of rows
  std::vector<std::pair<std::string, VulnerabilityRow>> rows;  // by status: New, Fixed, Updated
};
inline std::shared_ptr<const ChangePart> new_change_part(
    std::vector<std::pair<std::string, VulnerabilityRow>> rows) {
  static std::atomic<std::uint64_t> serials{0};
  auto part = std::make_shared<ChangePart>();
  part->serial = ++serials;
  part->count = rows.size();
  part->rows = std::move(rows);
  return part;
}

// Changes found together, as they are kept: the rows' changes of a set of devices whose rows
// changed alike, part after part.
struct ChangeSet {
  std::string tenant;  // of its devices: each tenant has a log of its own
  std::vector<std::shared_ptr<const ChangePart>> parts;
  std::vector<std::pair<std::string, std::string>> devices;  // id, name
  std::size_t rows() const {
    std::size_t n = 0;
    for (const auto& p : parts) n += p->count;
    return n;
  }
};
// A device's changes in the log: its set's rows, numbered on from `position` (the rows of every
// device change recorded before it: a row's number in the log never changes).
struct DeviceChange {
  std::string at, device_id, device_name;
  std::int64_t change_set = 0;
  std::int64_t count = 0;  // the set's rows
  std::int64_t position = 0;
};

struct StoredDevices {
  std::vector<inventory::Device> devices;  // in order of tenant, then id
  std::vector<DamagedDevice> damaged;      // skipped
  std::int64_t version = 0;                // the fleet version they are, read with them
  std::string token;                       // that version's token ("" when none is kept)
};

// What changed after one fleet version (docs/scaling.md, "Writes cost the batch"): enough to bring
// a snapshot of that version to `version` without reading the other devices.
struct DeviceChanges {
  std::int64_t version = 0;                // the database's, read with them (may be past the asked)
  std::string token;                       // that version's token
  std::vector<inventory::Device> written;  // written after it, in order of tenant, then id
  std::vector<DeviceKey> removed;          // removed after it and not written again, in order
  std::vector<DamagedDevice> damaged;      // written after it, not read back: left out too
  std::int64_t stored = 0;                 // rows the database holds at `version`
};

// Removals are remembered for the last kKeepRemovals versions; a snapshot older than that is
// brought up to date by reading every device.
inline constexpr std::int64_t kKeepRemovals = 100000;

class DeviceStore {
 public:
  virtual ~DeviceStore() = default;

  // Writes a batch atomically: every device or none. A device is its tenant and id: writing them
  // again replaces the device and keeps its first-seen time (the earlier of the two). The batch is
  // first checked by prepare_batch (device_batch.h): an invalid device is an kInvalidInput
  // error and nothing is written.
  virtual Result<DeviceWrite> put(const std::vector<inventory::Device>& devices,
                                  std::string_view now) = 0;
  // Removes a tenant's device; false when it has none of that id.
  virtual Result<bool> remove(std::string_view tenant, std::string_view id) = 0;
  // Every device of every tenant, in order of tenant, then id; rows that do not read back are
  // skipped and listed.
  virtual Result<StoredDevices> all() = 0;
  // The devices written and removed after fleet version `since` (whose token the caller read with
  // it), read in one transaction with the version they bring it to; nullopt when the store cannot
  // tell: `since` is older than the removals it keeps, newer than the database, or its token is
  // not the caller's (a restored copy that numbered its writes again). Read all() then.
  virtual Result<std::optional<DeviceChanges>> changed_since(std::int64_t since,
                                                             std::string_view token) = 0;
  // Sets the count of stored devices that changed_since() reports to the rows the table holds
  // (rows written behind kbgap's back leave it off), with every writer held off meanwhile.
  virtual Result<void> recount() = 0;
  // A number that changes with every committed write of devices, by any process. Cheap: may
  // be answered without asking the database.
  virtual Result<std::int64_t> version() = 0;
  // Asks the database itself (for readiness checks).
  virtual Result<void> check() = 0;
  // Whether this store records the change log's changes. Every server on a shared database
  // builds the same snapshots, so one of them, and only one, records their differences (else the
  // delta export would list each change once per server). SQLite: always (one process writes at
  // a time, and each records only what it reloads).
  virtual bool records_changes() { return true; }

  // The change log of the delta export, one per tenant. Appends change sets in one transaction,
  // numbering their devices' changes on from the last of their tenant's log, unpublished: readers
  // pass over them until publish_changes stamps them with the time their snapshot is served (so
  // that a client that read the older snapshot at T finds them since T), or discard_changes removes
  // them. Both act on this store's own unpublished changes only. A part is stored once until
  // then, however many sets and calls name it; one passed without its rows must have been
  // recorded since (else a kStorage error).
  virtual Result<void> record_changes(const std::vector<ChangeSet>& sets) = 0;
  // Publishes them at `at` (ISO 8601 UTC), and removes what was published before `forget_before`.
  virtual Result<void> publish_changes(std::string_view at, std::string_view forget_before) = 0;
  virtual Result<void> discard_changes() = 0;
  // The rows of a tenant's log found at or after `since`: from the number of the first to the end
  // of the log (first == end when there is none).
  struct ChangeRange {
    std::int64_t first = 0, end = 0;
  };
  virtual Result<ChangeRange> changes_since(std::string_view tenant, std::string_view since) = 0;
  // Up to `limit` of a tenant's device changes, in order, from the one that holds row `position`
  // on; those not yet published (another server's, being written) have an empty `at`.
  virtual Result<std::vector<DeviceChange>> device_changes(std::string_view tenant,
                                                           std::int64_t position,
                                                           std::size_t limit) = 0;
  // A change set's rows (empty when it was forgotten meanwhile).
  virtual Result<std::vector<std::pair<std::string, VulnerabilityRow>>> change_set(
      std::int64_t id) = 0;
};

}  // namespace kbgap::store
