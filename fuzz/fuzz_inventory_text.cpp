// libFuzzer target: an inventory file as `kbgap scan` and `kbgap devices import` read it
// (systeminfo in any language and encoding, wmic qfe, Get-HotFix; JSON is detected too), then
// the merge of what was read into devices, which must be storable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "inventory/inventory_reader.h"
#include "store/device_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto inventories = kbgap::inventory::read_inventory(bytes, "fuzz.txt");
  if (!inventories) return 0;
  auto devices = kbgap::inventory::merge_inventories(std::move(*inventories));
  // What `kbgap devices import` accepts, the store keeps and reads back (store/device_batch.h).
  if (devices && !kbgap::store::prepare_batch(*devices, "9999-12-31T23:59:59Z")) std::abort();
  return 0;
}
