// Windows builds and the catalog's product names for them. Facts from Microsoft's release
// information pages (build numbers per release) and from the MSRC product tree (the names).
#include "inventory/windows_release.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace kbgap::inventory {
namespace {

struct Release {
  int major, minor, build;
  std::string_view client_family;  // "" when there is no client release of that build
  std::string_view server_family;  // "" when there is no server release of that build
  std::string_view version;        // release name, "" for releases that have none
  std::string_view dotnet;         // .NET Framework shipped in the OS
};

// clang-format off
constexpr std::array kReleases = {
    Release{5, 1, 2600, "Windows XP", "", "", ""},
    Release{5, 2, 3790, "Windows XP", "Windows Server 2003", "", ""},
    Release{6, 0, 6000, "Windows Vista", "", "", "3.0"},
    Release{6, 0, 6001, "Windows Vista", "Windows Server 2008", "", "3.0"},
    Release{6, 0, 6002, "Windows Vista", "Windows Server 2008", "", "3.0"},
    Release{6, 0, 6003, "Windows Vista", "Windows Server 2008", "", "3.0"},
    Release{6, 1, 7600, "Windows 7", "Windows Server 2008 R2", "", "3.5.1"},
    Release{6, 1, 7601, "Windows 7", "Windows Server 2008 R2", "", "3.5.1"},
    Release{6, 2, 9200, "Windows 8", "Windows Server 2012", "", "4.5"},
    Release{6, 3, 9600, "Windows 8.1", "Windows Server 2012 R2", "", "4.5.1"},
    Release{10, 0, 10240, "Windows 10", "", "1507", "4.6"},
    Release{10, 0, 10586, "Windows 10", "", "1511", "4.6.1"},
    Release{10, 0, 14393, "Windows 10", "Windows Server 2016", "1607", "4.6.2"},
    Release{10, 0, 15063, "Windows 10", "", "1703", "4.7"},
    Release{10, 0, 16299, "Windows 10", "Windows Server", "1709", "4.7.1"},
    Release{10, 0, 17134, "Windows 10", "Windows Server", "1803", "4.7.2"},
    Release{10, 0, 17763, "Windows 10", "Windows Server 2019", "1809", "4.7.2"},
    Release{10, 0, 18362, "Windows 10", "Windows Server", "1903", "4.8"},
    Release{10, 0, 18363, "Windows 10", "Windows Server", "1909", "4.8"},
    Release{10, 0, 19041, "Windows 10", "Windows Server", "2004", "4.8"},
    Release{10, 0, 19042, "Windows 10", "Windows Server", "20H2", "4.8"},
    Release{10, 0, 19043, "Windows 10", "", "21H1", "4.8"},
    Release{10, 0, 19044, "Windows 10", "", "21H2", "4.8"},
    Release{10, 0, 19045, "Windows 10", "", "22H2", "4.8"},
    Release{10, 0, 20348, "", "Windows Server 2022", "", "4.8"},
    Release{10, 0, 22000, "Windows 11", "", "21H2", "4.8"},
    Release{10, 0, 22621, "Windows 11", "", "22H2", "4.8.1"},
    Release{10, 0, 22631, "Windows 11", "", "23H2", "4.8.1"},
    Release{10, 0, 25398, "", "Windows Server 2022, 23H2 Edition", "", "4.8"},
    Release{10, 0, 26100, "Windows 11", "Windows Server 2025", "24H2", "4.8.1"},
    Release{10, 0, 26200, "Windows 11", "", "25H2", "4.8.1"},
};
// clang-format on

const Release* find_release(const Device& d) {
  for (const Release& r : kReleases) {
    if (r.major == d.major && r.minor == d.minor && r.build == d.build) return &r;
  }
  return nullptr;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// "Microsoft Windows 10 Pro" -> "Pro"; "Microsoft Windows Server 2019 Datacenter" -> "Datacenter".
std::string edition_of(std::string_view os_name) {
  static constexpr std::string_view kEditions[] = {
      "Enterprise LTSC",      "Enterprise N",  "Enterprise",   "Education",
      "Pro for Workstations", "Pro Education", "Professional", "Pro",
      "Home Single Language", "Home",          "Ultimate",     "Datacenter: Azure Edition",
      "Datacenter",           "Standard",      "Essentials",   "Web",
      "Foundation",           "Starter",       "Business",     "IoT Enterprise",
  };
  for (std::string_view e : kEditions) {
    if (contains(os_name, e)) return std::string(e);
  }
  return "";
}

}  // namespace

bool classify_windows(Device& d) {
  const Release* r = find_release(d);
  if (r == nullptr) return false;
  const bool server = contains(d.os_name, "Server");
  std::string_view family = server ? r->server_family : r->client_family;
  if (family.empty()) family = server ? r->client_family : r->server_family;
  d.os_family = std::string(family);
  if (d.os_family == "Windows Server 2003" && contains(d.os_name, "R2")) {
    d.os_family = "Windows Server 2003 R2";
  }
  d.version = std::string(r->version);
  if (d.edition.empty()) d.edition = edition_of(d.os_name);
  if (contains(d.os_name, "Azure Edition")) d.azure_edition = true;
  // Semi-annual channel servers (Windows Server, version 1709 .. 20H2) are Server Core only.
  if (d.os_family == "Windows Server" || d.os_family == "Windows Server 2022, 23H2 Edition") {
    d.server_core = true;
  }
  return true;
}

bool accept_newer_release(Device& d) {
  // Newer than every release in the table; a build between known ones is an Insider build or
  // a typo, not a release.
  int newest = 0;
  for (const Release& r : kReleases) newest = std::max(newest, r.build);
  if (d.major != 10 || d.minor != 0 || d.build <= newest || d.build > 99999) return false;
  if (d.edition.empty()) d.edition = edition_of(d.os_name);
  if (contains(d.os_name, "Azure Edition")) d.azure_edition = true;
  return true;
}

std::string_view arch_words(Architecture a, bool lower_systems) {
  switch (a) {
    case Architecture::kX64:
      return lower_systems ? "x64-based systems" : "x64-based Systems";
    case Architecture::kX86:
      return lower_systems ? "32-bit systems" : "32-bit Systems";
    case Architecture::kArm64:
      return "ARM64-based Systems";
    case Architecture::kItanium:
      return "Itanium-Based Systems";
    case Architecture::kUnknown:
      break;
  }
  return "";
}

std::vector<std::string> os_product_names(const Device& d) {
  std::vector<std::string> names;
  const std::string core = d.server_core ? " (Server Core installation)" : "";
  const std::string_view arch = arch_words(d.architecture, false);
  const std::string& f = d.os_family;
  if (f == "Windows 10") {
    if (arch.empty()) return names;
    names.push_back(d.version == "1507"
                        ? fmt::format("Windows 10 for {}", arch)
                        : fmt::format("Windows 10 Version {} for {}", d.version, arch));
  } else if (f == "Windows 11") {
    if (arch.empty()) return names;
    names.push_back(fmt::format("Windows 11 Version {} for {}", d.version, arch));
    if (d.version == "21H2") names.push_back(fmt::format("Windows 11 for {}", arch));
  } else if (f == "Windows Server") {
    names.push_back(
        fmt::format("Windows Server, version {} (Server Core installation)", d.version));
  } else if (f == "Windows Server 2022, 23H2 Edition") {
    names.push_back("Windows Server 2022, 23H2 Edition (Server Core installation)");
  } else if (f == "Windows Server 2016" || f == "Windows Server 2019" ||
             f == "Windows Server 2022" || f == "Windows Server 2025" ||
             f == "Windows Server 2012" || f == "Windows Server 2012 R2") {
    names.push_back(f + core);
    if (f == "Windows Server 2022" && d.azure_edition && d.hotpatch_enrolled) {
      names.push_back("Windows Server 2022 Azure Edition Core Hotpatch");
    }
  } else if (f == "Windows Server 2008 R2") {
    if (d.architecture != Architecture::kItanium) {
      names.push_back(
          fmt::format("Windows Server 2008 R2 for x64-based Systems Service Pack 1{}", core));
    } else {
      names.push_back("Windows Server 2008 R2 for Itanium-Based Systems Service Pack 1");
    }
  } else if (f == "Windows Server 2008") {
    if (!arch.empty()) {
      names.push_back(fmt::format("Windows Server 2008 for {} Service Pack 2{}", arch, core));
    }
  } else if (f == "Windows 7") {
    if (!arch.empty()) names.push_back(fmt::format("Windows 7 for {} Service Pack 1", arch));
  } else if (f == "Windows 8.1") {
    std::string_view lower = arch_words(d.architecture, true);
    if (!lower.empty()) names.push_back(fmt::format("Windows 8.1 for {}", lower));
  } else if (f == "Windows Vista") {
    names.push_back(d.architecture == Architecture::kX64
                        ? "Windows Vista x64 Edition Service Pack 2"
                        : "Windows Vista Service Pack 2");
  } else if (f == "Windows 8") {
    if (!arch.empty()) names.push_back(fmt::format("Windows 8 for {}", arch));
  } else if (f == "Windows XP") {
    // The names of MSRC's bulletins (before 2016, from WES-NG's definitions).
    names.push_back(d.architecture == Architecture::kX64
                        ? "Microsoft Windows XP Professional x64 Edition Service Pack 2"
                        : "Microsoft Windows XP Service Pack 3");
  } else if (f == "Windows Server 2003" || f == "Windows Server 2003 R2") {
    // R2 is Server 2003 SP2 with optional components: the bulletins name Server 2003, and a few
    // (KB2868846, KB3045685) R2 itself.
    const bool r2 = f == "Windows Server 2003 R2";
    switch (d.architecture) {
      case Architecture::kX64:
        names.push_back("Microsoft Windows Server 2003 x64 Edition Service Pack 2");
        if (r2) names.push_back("Windows Server 2003 R2 x64 Edition Service Pack 2");
        break;
      case Architecture::kItanium:
        names.push_back("Microsoft Windows Server 2003 for Itanium-based Systems Service Pack 2");
        break;
      default:
        names.push_back("Microsoft Windows Server 2003 Service Pack 2");
        if (r2) names.push_back("Windows Server 2003 R2 Service Pack 2");
    }
  }
  return names;
}

std::string_view builtin_dotnet_version(const Device& d) {
  const Release* r = find_release(d);
  return r ? r->dotnet : std::string_view{};
}

}  // namespace kbgap::inventory
