// The JSON shapes of Defender for Endpoint's API that kbgap serves (docs/api.md §2-3): one place
// renders them for the server and for `kbgap scan --format json`.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/evaluate.h"
#include "inventory/device.h"
#include "store/device_store.h"

namespace kbgap::api {

// "https://<host>" -> "https://<host>/api/$metadata#Collection(...PublicProductFixDto)".
std::string missing_kbs_context(std::string_view base_url);

// One PublicProductFixDto: id, name, productsNames, url, machineMissedOn, cveAddressed.
boost::json::object product_fix_dto(const engine::MissingKb& kb, std::int64_t machine_missed_on);

// The entities of docs/api.md §3, with Defender's field names, and the fields each collection
// takes in $filter.
std::string os_platform(const inventory::Device& d);  // "Windows10", "WindowsServer2022"
// Defender's severity of a CVE, never empty: from its CVSS v3 base score by the CVSS v3 scale
// (Low below 4.0, Medium below 7.0, High below 9.0, else Critical); without a score, from MSRC's
// rating (Critical, Important -> High, Moderate -> Medium, Low); without either, Medium.
std::string_view defender_severity(const engine::CveInfo& cve);
// 0 Low, 1 Medium, 2 High, 3 Critical.
int severity_rank(std::string_view defender_severity);
// A machine group (Defender's rbacGroupId and rbacGroupName), from kbgap.toml's
// [[machine_groups]]: the devices carrying its tag. A device in several is in the first.
struct MachineGroup {
  std::int64_t id = 0;  // 1, 2, ... in the order of the file unless given
  std::string name;
  std::string tag;  // compared without case, as tags are in $filter
};
const MachineGroup* machine_group(const std::vector<MachineGroup>& groups,
                                  const inventory::Device& d);
// `exposure`: 0 None, 1 Low, 2 Medium, 3 High (from the severity of the device's open CVEs).
// `group`: its machine group, nullptr when in none (rbacGroupId 0, rbacGroupName null).
boost::json::object machine_dto(const inventory::Device& d, int exposure,
                                const MachineGroup* group = nullptr);
boost::json::object vulnerability_dto(const engine::CveInfo& cve, std::size_t exposed_machines);
inline constexpr std::string_view kSoftwarePrefix = "microsoft-_-";
std::string software_id(std::string_view name);  // "windows_10" -> "microsoft-_-windows_10"
// The operating system among a device's software ("windows_10", "windows_server_2022"), not one
// of its components.
inline bool is_os_software(std::string_view name) {
  return name.starts_with("windows");
}
// `public_exploit`: some of its open CVEs are exploited or publicly disclosed (MSRC's threat data).
boost::json::object software_dto(std::string_view name, std::size_t weaknesses,
                                 std::size_t exposed_machines, bool public_exploit = false);
extern const std::vector<std::string> kMachineFields;
extern const std::vector<std::string> kVulnerabilityFields;
extern const std::vector<std::string> kSoftwareFields;
extern const std::vector<std::string> kMachineVulnerabilityFields;
extern const std::vector<std::string> kMachineReferenceFields;
extern const std::vector<std::string> kSoftwareVulnerabilityExportFields;
extern const std::vector<std::string> kRecommendationFields;
extern const std::vector<std::string> kAlertFields;
// An Alert with every property Defender documents, empty: kbgap raises none, but its clients
// select, filter and order alerts by these names.
boost::json::object alert_shape();
extern const std::vector<std::string> kSoftwareInventoryExportFields;
extern const std::vector<std::string> kSoftwareVulnerabilityChangeFields;

// The device's version of one of its products: its OS build for the OS; "" for a component,
// whose version an inventory does not give.
std::string product_version(const inventory::Device& d, std::string_view product);
// A MachineRef: id, computerDnsName, osPlatform, its machine group.
boost::json::object machine_reference_dto(const inventory::Device& d, const MachineGroup* group);
// One row of machinesVulnerabilities (PublicAssetVulnerabilityDto), its id as Defender writes it:
// "{machineId}-_-{cveId}-_-{vendor}-_-{product}-_-{version}-_-"; `kb` the closing KB's number.
boost::json::object machine_vulnerability_dto(const inventory::Device& d, std::string_view product,
                                              const engine::CveInfo& cve, std::string_view kb);
// Defender's exploitability level from MSRC's threat data: ExploitIsVerified (exploited),
// ExploitIsPublic (publicly disclosed), NoExploit.
std::string_view exploitability_level(const engine::CveInfo& cve);
// The export APIs' rows (docs/api.md, "The export APIs"). A device's open CVE on `product`,
// with the reported KB that closes it, as the exports and the change log keep it; and rendered
// with the device's fields.
store::VulnerabilityRow vulnerability_row(const inventory::Device& d,
                                          const engine::CatalogIndex& catalog, engine::CveIndex cve,
                                          engine::KbIndex kb, std::string_view product);
boost::json::object vulnerability_export_dto(const std::vector<MachineGroup>& groups,
                                             const inventory::Device& d,
                                             const store::VulnerabilityRow& row);
// A row of the delta export: the export row as the change left it (as it was, for Fixed), with
// status, eventTimestamp, and isOnboarded: whether the device is still in the fleet (`d` is then
// the device as it is now; else only its id and name are known).
boost::json::object vulnerability_change_dto(const std::vector<MachineGroup>& groups,
                                             const inventory::Device& d,
                                             const store::VulnerabilityChange& change,
                                             bool onboarded);
// A product it runs, with the open CVEs of its missing KBs.
boost::json::object inventory_export_dto(const std::vector<MachineGroup>& groups,
                                         const inventory::Device& d, std::string_view product,
                                         std::size_t weaknesses);
// One version of a software product in the fleet (/api/Software/{id}/distributions).
boost::json::object distribution_dto(std::string_view version, std::int64_t installations,
                                     std::size_t vulnerabilities);
// "windows_server_2022" -> "Windows Server 2022", ".net_framework" -> ".NET Framework".
std::string display_name(std::string_view snake);
// The "Update <product>" security recommendation of a software product.
struct RecommendationFacts {
  std::size_t weaknesses = 0;  // its CVEs open somewhere
  std::size_t devices = 0;     // running it
  std::size_t exposed = 0;     // of those, missing a KB for it
  double severity_score = 0;   // its CVEs' highest CVSS score
  bool public_exploit = false;
  std::string program;  // "KB5087544": the KB most of its exposed devices miss
  std::string version;  // the newest build that KB brings (an OS), or ""
};
inline constexpr std::string_view kRecommendationPrefix = "va-_-microsoft-_-";
boost::json::object recommendation_dto(std::string_view name, const RecommendationFacts& facts);

// The whole body of GET /api/machines/{id}/getmissingkbs.
boost::json::object missing_kbs_body(const engine::Evaluation& evaluation,
                                     std::string_view base_url);

}  // namespace kbgap::api
