// libFuzzer target: an OData query string (`$filter`, `$top`, `$skip`, `$count`) as the list
// endpoints take it, and the parsed filter applied to a machine.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/odata.h"

namespace odata = kbgap::server::odata;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<std::string> fields = {
      "id",          "computerDnsName", "osPlatform", "osBuild",     "riskScore",      "lastSeen",
      "machineTags", "exposureLevel",   "cvssV3",     "publishedOn", "exposedMachines"};
  static const boost::json::object machine = boost::json::parse(R"({
    "id": "01070a597ab3e13eb6731cb96cb0bfef7ad793e0", "computerDnsName": "DESKTOP",
    "osPlatform": "Windows10", "osBuild": 19044, "riskScore": "None",
    "lastSeen": "2026-11-23T17:40:31Z", "machineTags": ["prod", "dmz"],
    "exposureLevel": "High", "cvssV3": 9.8, "publishedOn": null, "exposedMachines": 3})")
                                                 .as_object();
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  auto parsed = odata::parse_query(query, 10000, fields);
  if (parsed && parsed->filter) (void)parsed->filter->matches(machine);
  // The filter text alone, as it arrives after URL decoding.
  auto filter = odata::Filter::parse(query, fields);
  if (filter) (void)filter->matches(machine);
  return 0;
}
