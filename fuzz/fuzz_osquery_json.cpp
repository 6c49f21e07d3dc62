// libFuzzer target: osquery JSON (`osqueryi --json` tables combined into one object).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "inventory/json_inventory.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)kbgap::inventory::looks_like_osquery(text);
  (void)kbgap::inventory::parse_osquery_json(text, "fuzz.json");
  return 0;
}
