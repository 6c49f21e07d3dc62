// libFuzzer target: an inventory file as `kbgap scan` and `kbgap devices import` read it
// (systeminfo in any language and encoding, wmic qfe, Get-HotFix; JSON is detected too), then
// the merge of what was read into devices.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "inventory/inventory_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto inventories = kbgap::inventory::read_inventory(bytes, "fuzz.txt");
  if (inventories) (void)kbgap::inventory::merge_inventories(std::move(*inventories));
  return 0;
}
