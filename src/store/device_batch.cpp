#include "store/device_batch.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <unordered_map>

#include "common/clock.h"
#include "inventory/json_inventory.h"

namespace kbgap::store {

std::string stored_json(const inventory::Device& device) {
  return boost::json::serialize(inventory::device_json(device));
}

Result<std::vector<PreparedDevice>> prepare_batch(const std::vector<inventory::Device>& devices,
                                                  std::string_view now) {
  std::unordered_map<std::string_view, std::size_t> last;
  for (std::size_t i = 0; i < devices.size(); ++i) last[devices[i].id] = i;
  std::vector<PreparedDevice> out;
  out.reserve(last.size());
  for (std::size_t i = 0; i < devices.size(); ++i) {
    if (last[devices[i].id] != i) continue;
    PreparedDevice p{devices[i], {}};
    inventory::Device& d = p.device;
    const std::string where = d.source.empty() ? std::string("device") : d.source;
    auto fail = [&](std::string_view why) {
      return invalid_input(fmt::format("{}: device {} ({}) cannot be stored: {}", where,
                                       d.computer_dns_name.substr(0, 80), d.id, why));
    };
    for (auto [name, time] :
         {std::pair{"firstSeen", &d.first_seen}, std::pair{"lastSeen", &d.last_seen}}) {
      if (time->empty()) continue;
      auto utc = utc_time_from_rfc3339(*time);
      if (!utc) {
        return fail(fmt::format("{} is not an RFC 3339 time: '{}'", name, time->substr(0, 40)));
      }
      *time = *utc < now ? std::move(*utc) : std::string(now);
    }
    // Seen last now unless told; seen first when last seen unless told; never first after last.
    if (d.last_seen.empty()) d.last_seen = std::string(now);
    if (d.first_seen.empty() || d.last_seen < d.first_seen) d.first_seen = d.last_seen;
    p.json = stored_json(d);
    // The stored form must read back, or the row would be lost to every later read.
    // The read-back document in a buffer on the stack: parsed for every device of every
    // write, it would otherwise leave the heap fragmented (bench/soak.sh: the resident size grew
    // 6-9% in 60 s with the heap, under 1% without the check; docs/security.md).
    unsigned char buffer[64 * 1024];
    boost::json::monotonic_resource arena(buffer, sizeof buffer);
    auto back = inventory::parse_kbgap_json(p.json, where, inventory::TimeFields::kCheck, &arena);
    if (!back) return fail(back.error().message);
    if (back->size() != 1 || back->front().device.id != d.id) {
      return fail("its stored form reads back as another device");
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace kbgap::store
