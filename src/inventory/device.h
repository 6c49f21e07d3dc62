// A device as kbgap knows it: what OS it runs, at which build, with which updates and software.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kbgap::inventory {

using KbNumber = std::uint32_t;

enum class Architecture { kUnknown, kX86, kX64, kArm64, kItanium };

struct InstalledSoftware {
  std::string name;     // "Microsoft Edge", "Microsoft Office Professional Plus 2019"
  std::string vendor;   // "Microsoft Corporation"
  std::string version;  // "120.0.2210.91"
  // Its own architecture where the inventory tells it (a 32-bit Office on 64-bit Windows):
  // Office's product code, the registry view it is listed in, its folder.
  Architecture architecture = Architecture::kUnknown;
  friend bool operator==(const InstalledSoftware&, const InstalledSoftware&) = default;
};

// The tenant of devices written by a token without a `tid` claim (and by kbgap's own tokens
// minted without --tenant), and of every device stored before kbgap kept tenants
// (docs/api.md, "Tenants").
inline constexpr std::string_view kDefaultTenant = "kbgap";
// A tenant's name: 1 to 128 characters of A-Z a-z 0-9 . _ - (an Entra tenant id is a GUID).
bool valid_tenant(std::string_view name);
// The rule, as every message about a name that breaks it says it.
inline constexpr std::string_view kTenantRule = "1 to 128 of A-Z a-z 0-9 . _ -";

struct Device {
  // Whose device it is: the `tid` of the token that wrote it. Kept by the store beside the
  // inventory, never read from one: an inventory cannot move a device to another tenant.
  std::string tenant = std::string(kDefaultTenant);
  std::string id;                  // 40 lower-case hex characters
  std::string computer_dns_name;   // "PC044", or "pc044.intranet.example.com"
  std::string os_name;             // as reported: "Microsoft Windows 10 Pro"
  std::string os_family;           // "Windows 10", "Windows 11", "Windows Server 2022", "Windows 7"
  std::string version;             // release: "1909", "22H2", "" where the OS has none (Windows 7)
  std::string edition;             // "Pro", "Enterprise", "Datacenter", ...
  bool server_core = false;        // "Server Core installation" products apply
  bool azure_edition = false;      // Windows Server 2022 Datacenter: Azure Edition
  bool hotpatch_enrolled = false;  // receives Security Hotpatch Updates
  std::string service_pack;        // "Service Pack 1", "" when none
  Architecture architecture = Architecture::kUnknown;
  int major = 0, minor = 0, build = 0;  // 10.0.18363
  std::optional<int> revision;          // UBR: 10.0.18363.<revision>; unknown from systeminfo
  bool revision_inferred = false;       // revision was derived from the installed cumulative update
  std::vector<KbNumber> installed_kbs;  // sorted, without repeats
  std::vector<InstalledSoftware> software;
  std::string first_seen, last_seen;  // ISO 8601 UTC, "" when unknown
  std::vector<std::string> tags;
  // The addresses of its network cards, as the inventory lists them (systeminfo's "Network
  // Card(s)", osquery's interface_addresses, kbgap JSON's ipAddresses): canonical text, in order.
  std::vector<std::string> ip_addresses;
  std::string agent_version;  // the collecting agent's version, where the inventory says it
  std::string source;         // the inventory file it was read from
  friend bool operator==(const Device&, const Device&) = default;
};

// An IPv4 or IPv6 address in its canonical text ("192.168.0.1", "fe80::1"); nullopt when the
// text is not one.
std::optional<std::string> canonical_ip(std::string_view text);
// The address Defender calls lastIpAddress: the first IPv4 address that is neither loopback,
// link-local (169.254/16) nor unspecified, else the first such IPv6 address (not fe80::/10), else
// the first address; "" when there is none.
std::string primary_ip(const std::vector<std::string>& addresses);

// The KB numbers kbgap stores: from 10000 (KB10000) to 99999999 (KB99999999).
constexpr KbNumber kMinKbNumber = 10000;
constexpr KbNumber kMaxKbNumber = 99999999;
// A KB number from its digits ("5034122", "00123456"): 0 unless every character is a digit and
// the value is a KB number kbgap stores. Every reader takes KB numbers through it, so that what
// one reader accepts the stored form (KB<number>) reads back.
KbNumber kb_number(std::string_view digits);

std::string_view architecture_name(Architecture a);  // "x64", "x86", "arm64", "itanium", ""

// The KB an installed-programs entry of an update names: "Security Update for Microsoft Word 2016
// (KB4461543) 64-Bit Edition" -> 4461543; 0 when it names none (then it is a program).
KbNumber update_kb(std::string_view display_name);
// What an entry's identity tells of its architecture: an Office product code
// ({90160000-0011-0000-1000-0000000FF1CE}: the digit after the third dash is 1 for 64-bit, 0 for
// 32-bit) or a folder under "Program Files (x86)"; kUnknown otherwise.
Architecture software_architecture(std::string_view product_code, std::string_view folder);

// "10.0.18363.1556" (or "10.0.18363" when the revision is unknown).
std::string os_build_string(const Device& d);

}  // namespace kbgap::inventory
