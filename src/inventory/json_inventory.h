// kbgap's own JSON inventory (docs/inventory.md) and osquery's JSON results.
#pragma once

#include <boost/json/object.hpp>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inventory/inventory_reader.h"

namespace kbgap::inventory {

// {"devices": [...]}, an array of devices, or one device object (docs/inventory.md).
// What to do with firstSeen and lastSeen: check them (RFC 3339, kept in UTC), or leave them out
// (the device store, whose columns hold the times).
enum class TimeFields { kCheck, kIgnore };
// `storage`: where the parsed document lives while it is read (a caller checking many devices
// gives a buffer of its own, so the document's many small blocks do not scatter over the heap).
Result<std::vector<Inventory>> parse_kbgap_json(std::string_view text, std::string_view source,
                                                TimeFields times = TimeFields::kCheck,
                                                boost::json::storage_ptr storage = {});

// osquery results: an object keyed by table name ({"os_version": [...], "patches": [...],
// "windows_update_history": [...], "programs": [...], "system_info": [...]}), as
// `osqueryi --json` prints each table.
Result<std::vector<Inventory>> parse_osquery_json(std::string_view text, std::string_view source);

// A device as kbgap JSON (docs/inventory.md); parse_kbgap_json reads it back to the same device.
boost::json::object device_json(const Device& d);

// Which of the two a JSON document is.
bool looks_like_osquery(std::string_view text);

// The Uninstall registry keys as PowerShell gives them (docs/inventory.md): `Get-ItemProperty
// HKLM:\Software\Microsoft\Windows\CurrentVersion\Uninstall\*, HKLM:\Software\WOW6432Node\...
// | ConvertTo-Json`: installed programs (name, publisher, version, architecture) and the updates
// listed with them (Office's MSI updates are there, not in Get-HotFix).
bool looks_like_uninstall_list(std::string_view text);
Result<std::vector<Inventory>> parse_uninstall_list(std::string_view text, std::string_view source);

}  // namespace kbgap::inventory
