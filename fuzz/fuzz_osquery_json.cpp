// libFuzzer target: osquery JSON (`osqueryi --json` tables combined into one object).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "inventory/json_inventory.h"
#include "store/device_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)kbgap::inventory::looks_like_osquery(text);
  auto read = kbgap::inventory::parse_osquery_json(text, "fuzz.json");
  if (!read) return 0;
  // What the reader accepts, the store keeps and reads back (store/device_batch.h).
  for (const auto& inventory : *read) {
    if (!kbgap::store::prepare_batch({inventory.device}, "9999-12-31T23:59:59Z")) std::abort();
  }
  return 0;
}
