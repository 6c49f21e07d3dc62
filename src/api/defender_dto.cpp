// Defender's entities as kbgap renders them (docs/api.md §2-3).
#include "api/defender_dto.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/text.h"
#include "inventory/device.h"

namespace kbgap::api {
namespace json = boost::json;

std::string os_platform(const inventory::Device& d) {
  std::string out;
  for (char c : d.os_family.empty() ? std::string("Windows") : d.os_family) {
    if (c != ' ') out.push_back(c);
  }
  return out;
}

const MachineGroup* machine_group(const std::vector<MachineGroup>& groups,
                                  const inventory::Device& d) {
  for (const MachineGroup& g : groups) {
    for (const std::string& tag : d.tags) {
      if (to_lower(tag) == to_lower(g.tag)) return &g;
    }
  }
  return nullptr;
}

json::object machine_dto(const inventory::Device& d, int exposure, const MachineGroup* group) {
  static constexpr const char* kExposure[] = {"None", "Low", "Medium", "High"};
  json::array tags;
  for (const std::string& t : d.tags) tags.emplace_back(t);
  // Defender's IpAddress objects; an inventory gives the address alone.
  json::array addresses;
  for (const std::string& ip : d.ip_addresses) {
    addresses.emplace_back(json::object{{"ipAddress", ip},
                                        {"macAddress", nullptr},
                                        {"type", nullptr},
                                        {"operationalStatus", "Unknown"}});
  }
  const bool wide = d.architecture != inventory::Architecture::kX86;
  std::string processor(inventory::architecture_name(d.architecture));
  if (processor == "arm64") processor = "ARM64";
  return json::object{
      {"id", d.id},
      {"computerDnsName", d.computer_dns_name},
      {"firstSeen", d.first_seen},
      {"lastSeen", d.last_seen},
      {"osPlatform", os_platform(d)},
      {"osVersion", inventory::os_build_string(d)},
      {"osProcessor", processor},
      {"version", d.version.empty() ? json::value(nullptr) : json::value(d.version)},
      {"osBuild", static_cast<std::int64_t>(d.build)},
      {"osArchitecture", wide ? "64-bit" : "32-bit"},
      // Strings, "" where the inventory has none: Defender's clients type them as strings.
      {"lastIpAddress", inventory::primary_ip(d.ip_addresses)},
      {"lastExternalIpAddress", ""},
      {"agentVersion", d.agent_version},
      {"healthStatus", "Active"},
      {"deviceValue", "Normal"},
      {"riskScore", "None"},
      {"exposureLevel", kExposure[std::clamp(exposure, 0, 3)]},
      {"machineTags", std::move(tags)},
      {"rbacGroupId", group ? group->id : 0},
      {"rbacGroupName", group ? json::value(group->name) : json::value(nullptr)},
      {"aadDeviceId", nullptr},
      {"isAadJoined", false},
      {"isPotentialDuplication", false},
      {"onboardingStatus", "Onboarded"},
      {"defenderAvStatus", "Unknown"},
      {"managedBy", "Unknown"},
      {"ipAddresses", std::move(addresses)},
  };
}

const std::vector<std::string> kMachineFields = {
    "id",           "computerDnsName",  "firstSeen",     "lastSeen",    "osPlatform",
    "osVersion",    "osProcessor",      "version",       "osBuild",     "osArchitecture",
    "healthStatus", "riskScore",        "exposureLevel", "machineTags", "rbacGroupName",
    "aadDeviceId",  "onboardingStatus", "lastIpAddress", "deviceValue", "rbacGroupId",
    "agentVersion"};
const std::vector<std::string> kVulnerabilityFields = {"id",
                                                       "name",
                                                       "severity",
                                                       "msrcSeverity",
                                                       "cvssV3",
                                                       "cvssVector",
                                                       "publishedOn",
                                                       "updatedOn",
                                                       "exposedMachines",
                                                       "publicExploit",
                                                       "exploitVerified",
                                                       "exploitInKit"};
const std::vector<std::string> kSoftwareFields = {"id", "name", "vendor", "weaknesses",
                                                  "exposedMachines"};
const std::vector<std::string> kMachineVulnerabilityFields = {
    "id", "cveId", "machineId", "fixingKbId", "productName", "productVendor", "severity"};
const std::vector<std::string> kMachineReferenceFields = {"id", "computerDnsName", "osPlatform"};
const std::vector<std::string> kSoftwareVulnerabilityExportFields = {"deviceId",
                                                                     "deviceName",
                                                                     "osPlatform",
                                                                     "rbacGroupName",
                                                                     "softwareName",
                                                                     "cveId",
                                                                     "vulnerabilitySeverityLevel",
                                                                     "exploitabilityLevel",
                                                                     "recommendedSecurityUpdateId",
                                                                     "cvssScore"};
const std::vector<std::string> kSoftwareVulnerabilityChangeFields = [] {
  std::vector<std::string> fields = kSoftwareVulnerabilityExportFields;
  for (const char* f : {"deviceId", "status", "eventTimestamp", "isOnboarded", "softwareVersion"}) {
    if (std::find(fields.begin(), fields.end(), f) == fields.end()) fields.push_back(f);
  }
  return fields;
}();
const std::vector<std::string> kRecommendationFields = {"id",
                                                        "productName",
                                                        "recommendationName",
                                                        "weaknesses",
                                                        "vendor",
                                                        "recommendationCategory",
                                                        "severityScore",
                                                        "publicExploit",
                                                        "remediationType",
                                                        "status",
                                                        "exposedMachinesCount",
                                                        "totalMachineCount"};
const std::vector<std::string> kAlertFields = {"id",
                                               "incidentId",
                                               "investigationId",
                                               "severity",
                                               "status",
                                               "category",
                                               "title",
                                               "alertCreationTime",
                                               "lastUpdateTime",
                                               "firstEventTime",
                                               "lastEventTime",
                                               "machineId",
                                               "computerDnsName",
                                               "detectionSource",
                                               "classification"};

json::object alert_shape() {
  json::object o;
  for (const char* name : {"id",
                           "incidentId",
                           "investigationId",
                           "assignedTo",
                           "severity",
                           "status",
                           "classification",
                           "determination",
                           "investigationState",
                           "detectionSource",
                           "detectorId",
                           "category",
                           "threatFamilyName",
                           "threatName",
                           "title",
                           "description",
                           "alertCreationTime",
                           "firstEventTime",
                           "lastEventTime",
                           "lastUpdateTime",
                           "resolvedTime",
                           "machineId",
                           "computerDnsName",
                           "rbacGroupName",
                           "aadTenantId"}) {
    o[name] = nullptr;
  }
  o["incidentId"] = 0;
  o["investigationId"] = 0;
  o["relatedUser"] = nullptr;
  o["comments"] = json::array();
  o["evidence"] = json::array();
  o["mitreTechniques"] = json::array();
  return o;
}

const std::vector<std::string> kSoftwareInventoryExportFields = {
    "deviceId", "deviceName", "osPlatform", "rbacGroupName", "softwareName", "numberOfWeaknesses"};

std::string_view defender_severity(const engine::CveInfo& cve) {
  if (cve.cvss_base && *cve.cvss_base > 0) {
    const double s = *cve.cvss_base;
    return s < 4.0 ? "Low" : s < 7.0 ? "Medium" : s < 9.0 ? "High" : "Critical";
  }
  const std::string& msrc = cve.severity;
  if (msrc == "Critical") return "Critical";
  if (msrc == "Important") return "High";
  if (msrc == "Moderate") return "Medium";
  if (msrc == "Low") return "Low";
  return "Medium";
}

int severity_rank(std::string_view severity) {
  return severity == "Critical" ? 3 : severity == "High" ? 2 : severity == "Medium" ? 1 : 0;
}

json::object vulnerability_dto(const engine::CveInfo& c, std::size_t exposed) {
  auto text_or_null = [](const std::string& s) {
    return s.empty() ? json::value(nullptr) : json::value(s);
  };
  // MSRC's threat data: "Exploited: Yes" is an exploit seen working (in the wild); "Publicly
  // Disclosed: Yes" or exploited is an exploit (or its details) in public (docs/api.md).
  const bool exploited = c.exploited.value_or(false);
  return json::object{
      {"id", c.id},
      {"name", c.id},
      {"description", c.title},
      {"severity", defender_severity(c)},
      {"msrcSeverity", text_or_null(c.severity)},
      // A number always (clients type it so): 0 where MSRC published no score; the severity
      // is then MSRC's rating's, and cvssVector null.
      {"cvssV3", c.cvss_base.value_or(0.0)},
      {"cvssVector", text_or_null(c.cvss_vector)},
      {"exposedMachines", static_cast<std::int64_t>(exposed)},
      {"publishedOn", text_or_null(c.published)},
      {"updatedOn", text_or_null(c.updated)},
      {"publicExploit", exploited || c.publicly_disclosed.value_or(false)},
      {"exploitVerified", exploited},
      {"exploitInKit", false},
      {"exploitTypes", json::array()},
      {"exploitUris", json::array()},
      {"cveSupportability", "Supported"},  // kbgap judges every CVE its catalog lists
      {"epss", nullptr},                   // not in MSRC's data
  };
}

std::string software_id(std::string_view name) {
  return fmt::format("{}{}", kSoftwarePrefix, name);
}

json::object software_dto(std::string_view name, std::size_t weaknesses, std::size_t exposed,
                          bool public_exploit) {
  return json::object{{"id", software_id(name)},
                      {"name", name},
                      {"vendor", "microsoft"},
                      {"weaknesses", static_cast<std::int64_t>(weaknesses)},
                      {"publicExploit", public_exploit},
                      {"activeAlert", false},
                      {"exposedMachines", static_cast<std::int64_t>(exposed)},
                      {"impactScore", 0.0}};
}

std::string missing_kbs_context(std::string_view base_url) {
  return fmt::format(
      "{}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)",
      base_url);
}

boost::json::object product_fix_dto(const engine::MissingKb& kb, std::int64_t machine_missed_on) {
  boost::json::object o;
  o["id"] = std::to_string(kb.kb);
  o["name"] = kb.name;
  boost::json::array products;
  for (const std::string& p : kb.products_names) products.emplace_back(p);
  o["productsNames"] = std::move(products);
  o["url"] = kb.url;
  o["machineMissedOn"] = machine_missed_on;
  o["cveAddressed"] = static_cast<std::int64_t>(kb.cves.size());
  return o;
}

boost::json::object missing_kbs_body(const engine::Evaluation& evaluation,
                                     std::string_view base_url) {
  boost::json::object body;
  body["@odata.context"] = missing_kbs_context(base_url);
  boost::json::array value;
  for (const engine::MissingKb& kb : evaluation.missing) value.push_back(product_fix_dto(kb, 1));
  body["value"] = std::move(value);
  return body;
}

std::string product_version(const inventory::Device& d, std::string_view product) {
  return is_os_software(product) ? inventory::os_build_string(d) : std::string();
}

json::object machine_reference_dto(const inventory::Device& d, const MachineGroup* group) {
  return json::object{{"id", d.id},
                      {"computerDnsName", d.computer_dns_name},
                      {"osPlatform", os_platform(d)},
                      {"rbacGroupName", group ? json::value(group->name) : json::value(nullptr)},
                      {"rbacGroupId", group ? group->id : 0}};
}

json::object machine_vulnerability_dto(const inventory::Device& d, std::string_view product,
                                       const engine::CveInfo& cve, std::string_view kb) {
  const std::string version = product_version(d, product);
  return json::object{
      {"id", fmt::format("{}-_-{}-_-microsoft-_-{}-_-{}-_-", d.id, cve.id, product, version)},
      {"cveId", cve.id},
      {"machineId", d.id},
      {"fixingKbId", kb},
      {"productName", product},
      {"productVendor", "microsoft"},
      {"productVersion", version},
      {"severity", defender_severity(cve)}};
}

namespace {

// "2026-11-23T15:04:05Z" -> "2026-11-23 15:04:05", the export APIs' time format; null when unknown.
json::value export_time(const std::string& iso) {
  if (iso.size() < 19) return nullptr;
  std::string out = iso.substr(0, 19);
  out[10] = ' ';
  return json::value(out);
}

// The device fields of an export row. The group's name as the exports write it: "None" when no
// group is configured, "Unassigned" for a device in none.
json::object export_device_fields(const std::vector<MachineGroup>& groups,
                                  const inventory::Device& d) {
  const MachineGroup* group = machine_group(groups, d);
  const json::value name = groups.empty() ? json::value("None")
                           : group        ? json::value(group->name)
                                          : json::value("Unassigned");
  return json::object{{"deviceId", d.id},
                      {"deviceName", d.computer_dns_name},
                      {"osPlatform", os_platform(d)},
                      {"osVersion", inventory::os_build_string(d)},
                      {"osArchitecture", inventory::architecture_name(d.architecture)},
                      {"rbacGroupName", name},
                      {"rbacGroupId", group ? group->id : 0}};
}

}  // namespace

std::string_view exploitability_level(const engine::CveInfo& cve) {
  if (cve.exploited.value_or(false)) return "ExploitIsVerified";
  if (cve.publicly_disclosed.value_or(false)) return "ExploitIsPublic";
  return "NoExploit";
}

store::VulnerabilityRow vulnerability_row(const inventory::Device& d,
                                          const engine::CatalogIndex& catalog, engine::CveIndex cve,
                                          engine::KbIndex kb, std::string_view product) {
  const engine::CveInfo& info = catalog.cves()[cve];
  const engine::MissingKb fix = engine::missing_kb(catalog, kb);
  store::VulnerabilityRow row;
  row.software = product;
  row.version = product_version(d, product);
  row.cve = info.id;
  row.cvss = info.cvss_base.value_or(0.0);
  row.severity = defender_severity(info);
  row.exploitability = exploitability_level(info);
  row.kb = fix.kb;
  row.kb_name = fix.name;
  row.kb_url = fix.url;
  return row;
}

json::object vulnerability_export_dto(const std::vector<MachineGroup>& groups,
                                      const inventory::Device& d,
                                      const store::VulnerabilityRow& row) {
  json::object o = export_device_fields(groups, d);
  const bool kb = row.kb != 0;
  o.emplace("id", fmt::format("{}_{}_{}_{}_", d.id, row.software, row.version, row.cve));
  o.emplace("softwareVendor", "microsoft");
  o.emplace("softwareName", row.software);
  o.emplace("softwareVersion",
            row.version.empty() ? json::value(nullptr) : json::value(row.version));
  o.emplace("cveId", row.cve);
  o.emplace("cvssScore", row.cvss);
  o.emplace("vulnerabilitySeverityLevel", row.severity);
  o.emplace("recommendedSecurityUpdate", kb ? json::value(row.kb_name) : json::value(nullptr));
  o.emplace("recommendedSecurityUpdateId",
            kb ? json::value(std::to_string(row.kb)) : json::value(nullptr));
  o.emplace("recommendedSecurityUpdateUrl", kb ? json::value(row.kb_url) : json::value(nullptr));
  o.emplace("diskPaths", json::array());
  o.emplace("registryPaths", json::array());
  o.emplace("firstSeenTimestamp", export_time(d.first_seen));
  o.emplace("lastSeenTimestamp", export_time(d.last_seen));
  o.emplace("exploitabilityLevel", row.exploitability);
  o.emplace("recommendationReference", fmt::format("{}{}", kRecommendationPrefix, row.software));
  o.emplace("securityUpdateAvailable", kb);
  return o;
}

json::object vulnerability_change_dto(const std::vector<MachineGroup>& groups,
                                      const inventory::Device& d,
                                      const store::VulnerabilityChange& change, bool onboarded) {
  json::object o = vulnerability_export_dto(groups, d, change.row);
  o.emplace("status", change.status);
  // "2026-11-30T08:12:58.1234567Z" -> "2026-11-30 08:12:58.1234567", as Defender writes it.
  std::string at = change.at;
  if (at.size() > 19) at[10] = ' ';
  if (at.ends_with('Z')) at.pop_back();
  o.emplace("eventTimestamp", at);
  o.emplace("isOnboarded", onboarded);
  return o;
}

json::object inventory_export_dto(const std::vector<MachineGroup>& groups,
                                  const inventory::Device& d, std::string_view product,
                                  std::size_t weaknesses) {
  json::object o = export_device_fields(groups, d);
  const std::string version = product_version(d, product);
  o.emplace("id", fmt::format("{}_{}_{}", d.id, product, version));
  o.emplace("softwareVendor", "microsoft");
  o.emplace("softwareName", product);
  o.emplace("softwareVersion", version.empty() ? json::value(nullptr) : json::value(version));
  o.emplace("numberOfWeaknesses", static_cast<std::int64_t>(weaknesses));
  o.emplace("diskPaths", json::array());
  o.emplace("registryPaths", json::array());
  o.emplace("softwareFirstSeenTimestamp", export_time(d.first_seen));
  o.emplace("endOfSupportStatus", nullptr);
  o.emplace("endOfSupportDate", nullptr);
  return o;
}

json::object distribution_dto(std::string_view version, std::int64_t installations,
                              std::size_t vulnerabilities) {
  return json::object{{"version", version},
                      {"installations", installations},
                      {"vulnerabilities", static_cast<std::int64_t>(vulnerabilities)}};
}

std::string display_name(std::string_view snake) {
  std::string out;
  bool word_start = true;
  for (char c : snake) {
    if (c == '_') {
      out += ' ';
      word_start = true;
      continue;
    }
    out += word_start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    word_start = false;
  }
  if (out.starts_with(".net")) out.replace(0, 4, ".NET");
  return out;
}

json::object recommendation_dto(std::string_view name, const RecommendationFacts& f) {
  return json::object{{"id", fmt::format("{}{}", kRecommendationPrefix, name)},
                      {"productName", name},
                      {"recommendationName", fmt::format("Update {}", display_name(name))},
                      {"weaknesses", static_cast<std::int64_t>(f.weaknesses)},
                      {"vendor", "microsoft"},
                      {"recommendedVersion", f.version},
                      {"recommendedProgram", f.program},
                      {"recommendedVendor", "microsoft"},
                      {"recommendationCategory", is_os_software(name) ? "OS" : "Application"},
                      {"subCategory", display_name(name)},
                      {"severityScore", f.severity_score},
                      {"publicExploit", f.public_exploit},
                      {"activeAlert", false},
                      {"associatedThreats", json::array()},
                      {"remediationType", "Update"},
                      {"status", "Active"},
                      {"configScoreImpact", 0.0},
                      {"exposureImpact", 0.0},
                      {"totalMachineCount", static_cast<std::int64_t>(f.devices)},
                      {"exposedMachinesCount", static_cast<std::int64_t>(f.exposed)},
                      {"nonProductivityImpactedAssets", 0},
                      {"relatedComponent", display_name(name)},
                      {"exposedCriticalDevices", 0}};
}

}  // namespace kbgap::api
