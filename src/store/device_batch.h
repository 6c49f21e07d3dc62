// The rules every write of devices passes before a backend's transaction begins, whichever path
// it came by (the API's POST, `kbgap devices import`): docs/security.md, "What is stored".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "inventory/device.h"
#include "store/device_store.h"

namespace kbgap::store {

struct PreparedDevice {
  inventory::Device device;     // times filled in and normalized
  std::string json;             // its stored form (kbgap JSON), which reads back
  inventory::Device read_back;  // `json` read back, but for the times (stored_device)
};

// The devices of one batch as they will be stored: the later of two with one id; times as UTC
// RFC 3339, missing ones `now`, ones ahead of `now` set to `now` (a writer's clock cannot put a
// device ahead of every other for good). An error naming the device when a time is not RFC 3339
// or its stored form would not read back (then nothing of the batch is written).
Result<std::vector<PreparedDevice>> prepare_batch(const std::vector<inventory::Device>& devices,
                                                  std::string_view now);

// The stored form of a prepared device whose first-seen time moved to an earlier stored one.
std::string stored_json(const inventory::Device& device);

// A prepared device as read_stored_device reads its row back once it is stored with
// `p.device`'s times (its first-seen time may have moved to an earlier stored one since
// prepare_batch). Leaves `p.read_back` empty.
inventory::Device stored_device(PreparedDevice& p);

// A write's step of the fleet version (each write numbers it on by one, under the database's
// lock): the new version and its token, the token of the one before, and the rows stored before
// the write.
struct VersionStep {
  std::int64_t version = 0;
  std::string token, previous_token;
  std::int64_t devices = 0;
};

// A stored row read back as a device: its inventory (kbgap JSON) with the row's times, which are
// the ones kbgap keeps (the earliest first-seen of every write). An error says why the row is
// damaged (it is then skipped and listed, never fatal).
Result<inventory::Device> read_stored_device(std::string_view tenant, std::string_view id,
                                             std::string_view inventory,
                                             std::string_view first_seen,
                                             std::string_view last_seen);

// The stored form of a change set's rows (JSON), and reading it back; `where` names the store
// and set in the error a row that does not read back gives.
std::string change_rows_json(const std::vector<std::pair<std::string, VulnerabilityRow>>& rows);
Result<std::vector<std::pair<std::string, VulnerabilityRow>>> parse_change_rows(
    std::string_view text, std::string_view where);
// The row ids of the change parts a store recorded since it last published or discarded its
// changes (DeviceStore::record_changes): each part is stored once, however many sets and calls
// name it.
class RecordedParts {
 public:
  // Stores a part's rows (change_rows_json) and gives its row id.
  using Insert = std::function<Result<std::int64_t>(const ChangePart&)>;
  // A call begins: the parts stored by one whose transaction did not commit are dropped.
  void begin() { added_.clear(); }
  // The row id of `part`: recorded before, or stored now by `insert`. A part passed without its
  // rows that was not recorded is a kStorage error naming `where`.
  Result<std::int64_t> id(const ChangePart& part, std::string_view where, const Insert& insert);
  // The call's transaction committed: its parts are known to the next calls.
  void committed() {
    known_.merge(added_);
    added_.clear();
  }
  // Published or discarded: parts passed again are stored again.
  void clear() {
    known_.clear();
    added_.clear();
  }

 private:
  std::unordered_map<std::uint64_t, std::int64_t> known_, added_;  // serial, row id
};

// A change set's rows from the texts of its parts (part id, change_rows_json), in order; a set
// recorded before parts were is one text of id 0.
Result<std::vector<std::pair<std::string, VulnerabilityRow>>> assemble_change_rows(
    const std::vector<std::pair<std::int64_t, std::string>>& texts, std::string_view where);

// A change set's parts as it keeps them (a JSON array of their ids), and reading it back.
std::string part_ids_json(const std::vector<std::int64_t>& ids);
Result<std::vector<std::int64_t>> parse_part_ids(std::string_view text, std::string_view where);

// A random token for a new fleet version (version_tokens, docs/scaling.md): 16 hex digits.
std::string new_version_token();

}  // namespace kbgap::store
