// libFuzzer target: kbgap JSON, the body of POST /api/kbgap/devices and the form the device
// store keeps. Every device that parses must be storable (store/device_batch.h) and read back as
// the same device: what the API accepts, the store can always read again.
#include <boost/json/serialize.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "inventory/json_inventory.h"
#include "store/device_batch.h"

namespace inv = kbgap::inventory;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = inv::parse_kbgap_json(text, "fuzz.json");
  if (!parsed) return 0;
  for (inv::Inventory& i : *parsed) {
    auto prepared = kbgap::store::prepare_batch({i.device}, "9999-12-31T23:59:59Z");
    if (!prepared) std::abort();  // accepted by the reader, refused by the store
    const std::string& stored = prepared->front().json;
    auto again = inv::parse_kbgap_json(stored, "stored.json");
    if (!again || again->size() != 1) std::abort();  // the store could not read what it wrote
    if (boost::json::serialize(inv::device_json((*again)[0].device)) != stored) std::abort();
  }
  return 0;
}
