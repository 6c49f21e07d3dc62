// What Windows a build number is: family, release ("1909", "22H2") and catalog product names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "inventory/device.h"

namespace kbgap::inventory {

// Fills os_family, version, edition, server_core and azure_edition from os_name and the build
// (major.minor.build must be set). Returns false when the build is not a Windows release kbgap
// knows (the device is then kept, with os_family "").
bool classify_windows(Device& d);

// For a build classify_windows does not know: is it plausibly a Windows release newer than
// kbgap's table (10.0, a build above the table's newest)? Then fills edition and azure_edition and
// returns true; the release is then learnt from the catalog's fixed builds (engine::learn_release),
// or refused where the catalog is at hand.
bool accept_newer_release(Device& d);

// The catalog's names for the device's operating system, as MSRC spells them
// ("Windows 10 Version 1909 for x64-based Systems", "Windows Server 2019 (Server Core
// installation)"). Usually one; a few releases went by two names over the years (Windows 11 21H2).
std::vector<std::string> os_product_names(const Device& d);

// How MSRC's product names write an architecture: "x64-based Systems", "32-bit Systems" (with
// `lower_systems`, "x64-based systems", as Windows 8.1's names do), "ARM64-based Systems"; ""
// when unknown.
std::string_view arch_words(Architecture a, bool lower_systems);

// The .NET Framework version that ships in the device's OS ("4.8"), "" when unknown.
std::string_view builtin_dotnet_version(const Device& d);

}  // namespace kbgap::inventory
