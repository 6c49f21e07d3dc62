#include "app/devices_command.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "app/cli_error.h"
#include "app/data_dir.h"
#include "app/inventory_files.h"
#include "common/clock.h"
#include "inventory/json_inventory.h"

namespace kbgap::app {

int run_devices_import(const DevicesImportOptions& options) {
  if (!check_tenant_option(options.tenant)) return kExitUsage;
  auto devices = read_inventory_files(options.inventories);
  if (!devices) return report(devices.error());
  for (inventory::Device& d : *devices) d.tenant = options.tenant;
  auto store = open_device_store(options.data_dir);
  if (!store) return report(store.error());
  auto written = (*store)->put(*devices, utc_now());
  if (!written) return report(written.error());
  fmt::print(
      "imported {} devices ({} new, {} replaced) from {} inventories for tenant {}; fleet version "
      "{}\n",
      written->created + written->replaced, written->created, written->replaced, devices->size(),
      options.tenant, written->version);
  return kExitOk;
}

int run_devices_list(const DevicesListOptions& options) {
  if (!options.tenant.empty() && !check_tenant_option(options.tenant)) return kExitUsage;
  auto store = open_device_store(options.data_dir);
  if (!store) return report(store.error());
  auto stored = (*store)->all();
  if (!stored) return report(stored.error());
  for (const store::DamagedDevice& d : stored->damaged) {
    if (!options.tenant.empty() && d.tenant != options.tenant) continue;
    std::fprintf(stderr,
                 "kbgap: stored device %s of tenant %s does not read back and is not listed: %s "
                 "(remove it with: kbgap devices remove --tenant %s %s)\n",
                 d.id.c_str(), d.tenant.c_str(), d.problem.c_str(), d.tenant.c_str(), d.id.c_str());
  }
  if (!options.tenant.empty()) {
    std::erase_if(stored->devices,
                  [&](const inventory::Device& d) { return d.tenant != options.tenant; });
  }
  const std::vector<inventory::Device>* devices = &stored->devices;
  if (options.format == "json") {
    boost::json::array out;
    for (const inventory::Device& d : *devices) out.push_back(inventory::device_json(d));
    fmt::print("{}\n", boost::json::serialize(out));
    return kExitOk;
  }
  fmt::print("{:<40}  {:<24} {:<28} {:<18} {:>4}  {:<20}  {}\n", "id", "computerDnsName", "OS",
             "build", "KBs", "lastSeen", "tenant");
  for (const inventory::Device& d : *devices) {
    fmt::print("{:<40}  {:<24} {:<28} {:<18} {:>4}  {:<20}  {}\n", d.id, d.computer_dns_name,
               fmt::format("{} {}", d.os_family, d.version), os_build_string(d),
               d.installed_kbs.size(), d.last_seen, d.tenant);
  }
  return kExitOk;
}

int run_devices_remove(const DevicesRemoveOptions& options) {
  if (!check_tenant_option(options.tenant)) return kExitUsage;
  auto store = open_device_store(options.data_dir);
  if (!store) return report(store.error());
  int status = kExitOk;
  for (const std::string& id : options.ids) {
    auto removed = (*store)->remove(options.tenant, id);
    if (!removed) return report(removed.error());
    if (*removed) {
      fmt::print("removed {}\n", id);
    } else {
      std::fprintf(stderr, "kbgap: no stored device %s of tenant %s\n", id.c_str(),
                   options.tenant.c_str());
      status = kExitBadInput;
    }
  }
  return status;
}

}  // namespace kbgap::app
