// Reads device inventories: systeminfo, wmic qfe / Get-HotFix, kbgap JSON and osquery JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inventory/device.h"

namespace kbgap::inventory {

enum class InventoryFormat {
  kSysteminfo,
  kHotfixList,
  kKbgapJson,
  kOsqueryJson,
  kRegistry,
  kComputerInfo,
  kUninstallList,  // Get-ItemProperty of the Uninstall registry keys, as JSON: programs and updates
};
std::string_view format_name(InventoryFormat f);

struct Inventory {
  InventoryFormat format = InventoryFormat::kSysteminfo;
  Device device;       // a hotfix list fills only computer_dns_name and installed_kbs;
                       // registry values only the build and its revision (UBR)
  bool has_os = true;  // false for hotfix lists and registry values: they complete a device
  // Installed programs: the entries (into device.software) listed in the registry's native view.
  std::vector<std::uint32_t> native_software;
};

// One file's bytes; `source` names it in errors ("<source>:<line>: <what>").
Result<std::vector<Inventory>> read_inventory(std::string_view bytes, std::string_view source);

// Parsers for one format each, over text already decoded to UTF-8 with "\n" line ends.
Result<Inventory> parse_systeminfo(std::string_view text, std::string_view source);
Result<Inventory> parse_hotfix_list(std::string_view text, std::string_view source);
// `Get-ComputerInfo` (PowerShell 5.1 and later, its default list layout; property names are not
// translated): the computer, OS, architecture and hotfixes (OsHotFixes; PowerShell cuts a long
// list with "...", so give the hotfix list too for the whole of it).
Result<Inventory> parse_computer_info(std::string_view text, std::string_view source);
// `reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"`: the build and its revision
// (UBR), which systeminfo does not print.
Result<Inventory> parse_registry(std::string_view text, std::string_view source);

// Folds hotfix lists into the device of the same computer name (systeminfo truncates long
// hotfix lists; the matching qfe output has them all). A hotfix list with no such device is an
// error. Devices keep the order in which they came.
Result<std::vector<Device>> merge_inventories(std::vector<Inventory> inventories);

// Sorts and de-duplicates installed_kbs; derives the id when there is none.
void finish_device(Device& d, std::string_view identity);

}  // namespace kbgap::inventory
