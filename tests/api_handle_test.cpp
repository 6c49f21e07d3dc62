// Api::handle without HTTP (docs/api.md): routing from the route table, errors, permissions and
// an answer, on the real catalog and a real inventory. The HTTP suites (api_test.py and others)
// run the same server over a socket.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <pugixml.hpp>
#include <set>
#include <thread>

#include "auth/jwt.h"
#include "common/clock.h"
#include "common/text.h"
#include "engine/evaluate.h"
#include "engine_support.h"
#include "server/api.h"
#include "server/service.h"
#include "store/sqlite/sqlite_device_store.h"
#include "test_support.h"

namespace kbgap::server {
namespace {

constexpr const char* kAudience = "api://kbgap-test";

class ApiHandle : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = auth::SigningKey::load_or_create(dir_.path() / "key.pem");
    ASSERT_TRUE(key) << key.error().message;
    key_ = std::make_unique<auth::SigningKey>(std::move(*key));
    auto keys = auth::KeySet::from_jwks(key_->jwks(), "test");
    ASSERT_TRUE(keys) << keys.error().message;
    auth::Verifier verifier({{"kbgap", {kAudience}, std::make_shared<auth::KeySet>(*keys)}}, 60);
    auto devices = store::sqlite::SqliteDeviceStore::open(dir_.str("devices.db"));
    ASSERT_TRUE(devices) << devices.error().message;
    // The process-wide catalog outlives the service: shared without ownership.
    std::shared_ptr<const engine::CatalogIndex> catalog(&test::full_catalog(),
                                                        [](const engine::CatalogIndex*) {});
    service_ = std::make_unique<Service>(catalog, std::move(*devices), 1);
    device_ = test::real_device("10_21H2_x64_pro");
    ASSERT_TRUE(service_->put_devices(kbgap::inventory::kDefaultTenant, {device_}));
    api_ = std::make_unique<Api>(*service_, verifier, ApiOptions{});
  }

  std::string token(std::initializer_list<const char*> roles) const {
    boost::json::array r;
    for (const char* role : roles) r.emplace_back(role);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return key_->sign(boost::json::object{{"iss", "kbgap"},
                                          {"aud", kAudience},
                                          {"sub", "test"},
                                          {"appid", "api-handle-test"},
                                          {"roles", std::move(r)},
                                          {"exp", now + 3600}});
  }

  Response get(const std::string& target, const std::string& bearer,
               const std::string& method = "GET", bool may_block = true) {
    Request request;
    request.method = method;
    request.target = target;
    request.host = "localhost";
    if (!bearer.empty()) request.authorization = "Bearer " + bearer;
    return api_->handle(request, may_block);
  }

  static std::string header(const Response& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }

  test::TempDir dir_;
  std::unique_ptr<auth::SigningKey> key_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<Api> api_;
  inventory::Device device_;
};

TEST_F(ApiHandle, EveryRouteOfTheTableAnswersAndUnknownPathsAreNoSuchEndpoint) {
  const std::string all =
      token({"Machine.Read.All", "Software.Read.All", "Vulnerability.Read.All",
             "Machine.ReadWrite.All", "Alert.Read.All", "SecurityRecommendation.Read.All"});
  const std::string name = device_.computer_dns_name;
  const std::vector<std::string> targets = {
      "/api/machines",
      "/api/machines/" + name,
      "/api/machines/" + name + "/getmissingkbs",
      "/api/machines/" + name + "/software",
      "/api/machines/" + name + "/vulnerabilities",
      "/api/vulnerabilities?$top=2",
      "/api/vulnerabilities/CVE-2022-21907",
      "/api/vulnerabilities/CVE-2022-21907/machineReferences",
      "/api/vulnerabilities/machinesVulnerabilities?$top=2",
      "/api/Software",
      "/api/software/microsoft-_-windows_10",
      "/api/Software/microsoft-_-windows_10/getmissingkbs",
      "/api/v1.0/machines",
      "/api/machines/SoftwareVulnerabilitiesByMachine",
      "/api/machines/softwareinventorybymachine",
      "/api/machines/findbytag?tag=x",
      "/api/machines/" + name + "/alerts",
      "/api/alerts",
      "/api/recommendations",
      "/api/recommendations/va-_-microsoft-_-windows_10",
      "/api/recommendations/va-_-microsoft-_-windows_10/machineReferences",
      "/api/recommendations/va-_-microsoft-_-windows_10/vulnerabilities",
      "/api/recommendations/va-_-microsoft-_-windows_10/software",
      "/api/machines/" + name + "/recommendations",
      "/api/Software/microsoft-_-windows_10/vulnerabilities",
      "/api/Software/microsoft-_-windows_10/machineReferences",
      "/api/Software/microsoft-_-windows_10/distributions",
      "/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=" + utc_now(),
      "/metrics"};
  const std::vector<std::string> patterns = {"/api/machines",
                                             "/api/machines/{id}",
                                             "/api/machines/{id}/getmissingkbs",
                                             "/api/machines/{id}/software",
                                             "/api/machines/{id}/vulnerabilities",
                                             "/api/vulnerabilities",
                                             "/api/vulnerabilities/{id}",
                                             "/api/vulnerabilities/{id}/machineReferences",
                                             "/api/vulnerabilities/machinesVulnerabilities",
                                             "/api/Software",
                                             "/api/Software/{id}",
                                             "/api/Software/{id}/getmissingkbs",
                                             "/api/machines",
                                             "/api/machines/SoftwareVulnerabilitiesByMachine",
                                             "/api/machines/SoftwareInventoryByMachine",
                                             "/api/machines/findbytag",
                                             "/api/machines/{id}/alerts",
                                             "/api/alerts",
                                             "/api/recommendations",
                                             "/api/recommendations/{id}",
                                             "/api/recommendations/{id}/machineReferences",
                                             "/api/recommendations/{id}/vulnerabilities",
                                             "/api/recommendations/{id}/software",
                                             "/api/machines/{id}/recommendations",
                                             "/api/Software/{id}/vulnerabilities",
                                             "/api/Software/{id}/machineReferences",
                                             "/api/Software/{id}/distributions",
                                             "/api/machines/SoftwareVulnerabilityChangesByMachine",
                                             "/metrics"};
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const Response r = get(targets[i], all);
    EXPECT_EQ(r.status, 200) << targets[i] << ": " << r.body;
    EXPECT_EQ(r.route, patterns[i]) << targets[i];
  }
  // Unknown: 401 without a token (routes cannot be listed), "no such endpoint" with one.
  EXPECT_EQ(get("/api/nosuch", "").status, 401);
  const Response unknown = get("/api/machines/SoftwareVulnerabilitiesByMachine/x/y", all);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("No such endpoint"), std::string::npos) << unknown.body;
}

TEST_F(ApiHandle, AMethodARouteDoesNotTakeIs405WithAllow) {
  const std::string all = token({"Machine.Read.All", "Machine.ReadWrite.All"});
  const Response post = get("/api/machines", all, "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(header(post, "Allow"), "GET, HEAD");
  EXPECT_EQ(post.route, "/api/machines");  // logged and counted under its route
  const Response get_devices = get("/api/kbgap/devices", all);
  EXPECT_EQ(get_devices.status, 405);
  EXPECT_EQ(header(get_devices, "Allow"), "POST");
  EXPECT_EQ(get("/api/machines", all, "HEAD").status, 200);
}

TEST_F(ApiHandle, PermissionsAreThoseOfTheRoute) {
  const Response r = get("/api/machines/" + device_.computer_dns_name + "/getmissingkbs",
                         token({"Machine.Read.All"}));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("(Software.Read.All)"), std::string::npos) << r.body;
  EXPECT_EQ(get("/api/machines", token({"Machine.ReadWrite.All"})).status,
            200);  // write covers read
  EXPECT_EQ(get("/api/vulnerabilities", token({"Software.Read.All"})).status, 403);
}

// check_msdefender's requests: $select on a collection and with a $filter, and on an entity.
TEST_F(ApiHandle, SelectKeepsTheNamedPropertiesInTheirOrder) {
  const std::string t = token({"Machine.Read.All", "Vulnerability.Read.All"});
  const Response all =
      get("/api/machines?$select=id,computerDnsName,onboardingStatus,osPlatform", t);
  ASSERT_EQ(all.status, 200) << all.body;
  const auto body = boost::json::parse(all.body).as_object();
  EXPECT_TRUE(body.at("@odata.context")
                  .as_string()
                  .ends_with("#Machines(id,computerDnsName,onboardingStatus,osPlatform)"));
  ASSERT_EQ(body.at("value").as_array().size(), 1u);
  const auto& machine = body.at("value").as_array()[0].as_object();
  std::vector<std::string> keys;
  for (const auto& [k, v] : machine) keys.emplace_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"id", "computerDnsName", "onboardingStatus", "osPlatform"}));
  EXPECT_EQ(machine.at("osPlatform").as_string(), "Windows10");

  const Response one = get(
      "/api/machines?$filter=computerDnsName%20eq%20'" + device_.computer_dns_name + "'&$select=id",
      t);
  ASSERT_EQ(one.status, 200) << one.body;
  const boost::json::value parsed = boost::json::parse(one.body);
  const auto& only = parsed.as_object().at("value").as_array();
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].as_object().size(), 1u);
  EXPECT_EQ(only[0].as_object().at("id").as_string(), device_.id);

  const Response entity =
      get("/api/machines/" + device_.computer_dns_name + "?$select=id,version", t);
  ASSERT_EQ(entity.status, 200) << entity.body;
  const auto e = boost::json::parse(entity.body).as_object();
  EXPECT_EQ(e.size(), 3u);  // @odata.context, id, version
  EXPECT_EQ(e.at("version").as_string(), device_.version);

  for (const std::string& bad :
       {std::string("/api/machines?$select=nosuch"), std::string("/api/machines?$select=id,,x"),
        // Checked against the entity's properties, also when the page holds none.
        std::string("/api/machines?$top=0&$select=nosuch"),
        std::string("/api/vulnerabilities/machinesVulnerabilities?$top=0&$select=nosuch"),
        "/api/machines/" + device_.computer_dns_name + "?$select=id;drop"}) {
    const Response r = get(bad, t);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("ODataError"), std::string::npos) << r.body;
  }
}

// PSMDE filters severity eq 'High'; check_msdefender counts by severity and fails on null:
// Defender's words, never null, MSRC's rating kept apart.
TEST_F(ApiHandle, SeverityIsDefendersWordAndNeverNull) {
  const std::string t = token({"Vulnerability.Read.All"});
  std::map<std::string, int> seen;
  for (std::size_t skip = 0;; skip += 8000) {
    const Response page = get("/api/vulnerabilities?$skip=" + std::to_string(skip), t);
    ASSERT_EQ(page.status, 200) << page.body;
    const boost::json::value parsed = boost::json::parse(page.body);
    const auto& value = parsed.as_object().at("value").as_array();
    for (const auto& v : value) {
      const auto& o = v.as_object();
      ASSERT_TRUE(o.at("severity").is_string()) << o.at("id");
      ++seen[std::string(o.at("severity").as_string())];
      // Where MSRC gives a CVSS score, Defender's severity is its CVSS v3 band.
      if (o.at("cvssV3").is_double()) {
        const double s = o.at("cvssV3").as_double();
        const std::string expected = s < 4.0   ? "Low"
                                     : s < 7.0 ? "Medium"
                                     : s < 9.0 ? "High"
                                               : "Critical";
        if (s > 0) {
          EXPECT_EQ(o.at("severity").as_string(), expected) << o.at("id");
        }
      }
    }
    if (value.size() < 8000) break;
  }
  for (const auto& [word, n] : seen) {
    EXPECT_TRUE(word == "Low" || word == "Medium" || word == "High" || word == "Critical") << word;
  }
  EXPECT_GT(seen["High"], 0);
  EXPECT_GT(seen["Critical"], 0);
  const Response high = get("/api/vulnerabilities?$filter=severity%20eq%20'High'&$top=5", t);
  ASSERT_EQ(high.status, 200) << high.body;
  const boost::json::value parsed = boost::json::parse(high.body);
  ASSERT_EQ(parsed.as_object().at("value").as_array().size(), 5u);
  for (const auto& v : parsed.as_object().at("value").as_array()) {
    EXPECT_EQ(v.as_object().at("severity").as_string(), "High");
  }
}

// Dates compare as dates (Defender's example: lastSeen gt 2018-08-01Z), the day's start included.
TEST_F(ApiHandle, DatesInAFilterCompareAsDates) {
  const std::string t = token({"Machine.Read.All"});
  const Response all = get("/api/machines?$select=lastSeen", t);
  ASSERT_EQ(all.status, 200) << all.body;
  const boost::json::value parsed = boost::json::parse(all.body);
  const std::string last_seen(
      parsed.as_object().at("value").as_array()[0].as_object().at("lastSeen").as_string());
  ASSERT_EQ(last_seen.size(), 20u) << last_seen;  // 2026-11-30T05:56:10Z
  const std::string day = last_seen.substr(0, 10);
  auto count = [&](const std::string& filter) {
    const Response r = get("/api/machines?$count=true&$top=0&$filter=" + filter, t);
    EXPECT_EQ(r.status, 200) << filter << ": " << r.body;
    return boost::json::parse(r.body).as_object().at("@odata.count").as_int64();
  };
  EXPECT_EQ(count("lastSeen%20gt%202018-08-01Z"), 1);
  EXPECT_EQ(count("lastSeen%20lt%202018-08-01Z"), 0);
  EXPECT_EQ(count("lastSeen%20ge%20" + day + "Z"), 1);  // later that day
  EXPECT_EQ(count("lastSeen%20ge%20" + day), 1);
  EXPECT_EQ(count("lastSeen%20le%20" + last_seen), 1);
  EXPECT_EQ(count("lastSeen%20gt%20" + last_seen), 0);
  EXPECT_EQ(count("lastSeen%20ge%20" + last_seen.substr(0, 16) + "Z"), 1);  // no seconds
  EXPECT_EQ(get("/api/machines?$filter=lastSeen%20gt%202018-13-01Z", t).status, 400);
}

// On an I/O thread (may_block false), what would wait is handed to a worker (status 0): a write.
// Not a read of a snapshot that is there, be it a device's missing KBs or a fleet-wide count (the
// counts are ready with the snapshot), nor /metrics.
TEST_F(ApiHandle, WhatWouldWaitGoesToAWorker) {
  const std::string t = token({"Machine.Read.All", "Software.Read.All"});
  const std::string kbs = "/api/machines/" + device_.computer_dns_name + "/getmissingkbs";
  get(kbs, t);  // the snapshot is built (the write above made it already)
  EXPECT_EQ(get("/api/machines", t, "GET", false).status, 200);
  EXPECT_EQ(get(kbs, t, "GET", false).status, 200);
  EXPECT_EQ(get("/metrics", t, "GET", false).status, 200);
  EXPECT_EQ(get("/api/Software", t, "GET", false).status, 200);
  EXPECT_EQ(
      get("/api/kbgap/devices/" + device_.id, token({"Machine.ReadWrite.All"}), "DELETE", false)
          .status,
      0);  // a write waits for storage
}

TEST_F(ApiHandle, MissingKbsAreTheEnginesAnswer) {
  const Response r = get("/api/machines/" + device_.computer_dns_name + "/getmissingkbs",
                         token({"Software.Read.All"}));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = boost::json::parse(r.body).as_object();
  std::vector<std::string> served;
  for (const auto& v : body.at("value").as_array()) {
    served.emplace_back(v.as_object().at("id").as_string());
  }
  inventory::Device d = device_;
  engine::learn_release(test::full_catalog(), d);
  const engine::Evaluation ev = engine::evaluate(test::full_catalog(), d, {});
  std::vector<std::string> expected;
  for (const engine::MissingKb& m : ev.missing) expected.push_back(std::to_string(m.kb));
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(served, expected);
}

// What the Azure Sentinel playbook Get-MDATPVulnerabilities validates with its JSON schemas
// (Azure/Azure-Sentinel, Playbooks/Get-MDATPVulnerabilities/azuredeploy.json): every required
// property present, with its type; only the ones its schema leaves open may be null.
TEST_F(ApiHandle, MachinesAndVulnerabilitiesCarryWhatClientsValidate) {
  const std::string t = token({"Machine.Read.All", "Vulnerability.Read.All"});
  using Kind = boost::json::kind;
  const std::map<std::string, std::vector<Kind>> machine = {
      {"id", {Kind::string}},
      {"computerDnsName", {Kind::string}},
      {"firstSeen", {Kind::string}},
      {"lastSeen", {Kind::string}},
      {"osPlatform", {Kind::string}},
      {"osVersion", {Kind::string, Kind::null}},
      {"osProcessor", {Kind::string}},
      {"version", {Kind::string, Kind::null}},
      {"lastIpAddress", {Kind::string}},
      {"lastExternalIpAddress", {Kind::string}},
      {"agentVersion", {Kind::string}},
      {"osBuild", {Kind::int64}},
      {"healthStatus", {Kind::string}},
      {"rbacGroupId", {Kind::int64}},
      {"rbacGroupName", {Kind::string, Kind::null}},
      {"riskScore", {Kind::string}},
      {"exposureLevel", {Kind::string}},
      {"aadDeviceId", {Kind::string, Kind::null}},
      {"machineTags", {Kind::array}},
      {"ipAddresses", {Kind::array}}};
  const std::map<std::string, std::vector<Kind>> vulnerability = {
      {"id", {Kind::string}},           {"name", {Kind::string}},
      {"description", {Kind::string}},  {"severity", {Kind::string}},
      {"cvssV3", {Kind::double_}},      {"exposedMachines", {Kind::int64}},
      {"publishedOn", {Kind::string}},  {"updatedOn", {Kind::string}},
      {"publicExploit", {Kind::bool_}}, {"exploitVerified", {Kind::bool_}},
      {"exploitInKit", {Kind::bool_}},  {"exploitTypes", {Kind::array}},
      {"exploitUris", {Kind::array}}};
  auto check = [](const boost::json::object& o,
                  const std::map<std::string, std::vector<Kind>>& schema) {
    for (const auto& [name, kinds] : schema) {
      const auto* v = o.if_contains(name);
      ASSERT_NE(v, nullptr) << name << " in " << boost::json::serialize(o);
      EXPECT_NE(std::find(kinds.begin(), kinds.end(), v->kind()), kinds.end())
          << name << " in " << boost::json::serialize(o);
    }
  };
  const Response machines = get("/api/machines", t);
  ASSERT_EQ(machines.status, 200) << machines.body;
  const auto listed = boost::json::parse(machines.body);
  ASSERT_FALSE(listed.at("value").as_array().empty());
  for (const auto& m : listed.at("value").as_array()) check(m.as_object(), machine);
  // The device's own addresses, from the network cards its systeminfo lists.
  const auto& m = listed.at("value").as_array().front().as_object();
  ASSERT_FALSE(device_.ip_addresses.empty());
  EXPECT_EQ(m.at("lastIpAddress").as_string(), inventory::primary_ip(device_.ip_addresses));
  EXPECT_EQ(m.at("ipAddresses").as_array().size(), device_.ip_addresses.size());
  const Response open = get("/api/machines/" + device_.id + "/vulnerabilities", t);
  ASSERT_EQ(open.status, 200) << open.body;
  const auto cves = boost::json::parse(open.body).at("value").as_array();
  ASSERT_GT(cves.size(), 100u);
  std::size_t exploited = 0, with_vector = 0;
  for (const auto& v : cves) {
    check(v.as_object(), vulnerability);
    const auto& o = v.as_object();
    EXPECT_LE(o.at("publishedOn").as_string(), o.at("updatedOn").as_string()) << o.at("id");
    exploited += o.at("exploitVerified").as_bool() ? 1 : 0;
    if (o.at("cvssVector").is_string()) {
      ++with_vector;
      EXPECT_GT(o.at("cvssV3").as_double(), 0) << o.at("id");
    }
    // Verified implies public.
    if (o.at("exploitVerified").as_bool()) {
      EXPECT_TRUE(o.at("publicExploit").as_bool());
    }
  }
  // A Windows 10 21H2 machine last patched in 2022 misses fixes for CVEs exploited in the wild.
  EXPECT_GT(exploited, 0u);
  EXPECT_GT(with_vector, cves.size() / 2);
}

// The export API's JSON pages (SoftwareVulnerabilitiesByMachine): pageSize rows a page, followed by
// @odata.nextLink to the end, each row once: the same rows as machinesVulnerabilities.
TEST_F(ApiHandle, ExportPagesCoverEveryRowOnce) {
  const std::string t = token({"Vulnerability.Read.All", "Software.Read.All"});
  const Response counted =
      get("/api/vulnerabilities/machinesVulnerabilities?$top=0&$count=true", t);
  ASSERT_EQ(counted.status, 200) << counted.body;
  const std::int64_t rows = boost::json::parse(counted.body).at("@odata.count").as_int64();
  ASSERT_GT(rows, 120);
  // About six pages: the export's rate limit is 30 calls a minute.
  const std::size_t size = static_cast<std::size_t>(rows / 6 + 1);
  const std::string size_text = std::to_string(size);
  std::set<std::string> ids;
  std::vector<std::string> first_ids;
  std::string next = "/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=" + size_text;
  int pages = 0;
  while (!next.empty()) {
    const Response page = get(next, t);
    ASSERT_EQ(page.status, 200) << next << ": " << page.body;
    const auto body = boost::json::parse(page.body).as_object();
    const auto& value = body.at("value").as_array();
    EXPECT_LE(value.size(), size);
    for (const auto& v : value) {
      const auto& o = v.as_object();
      EXPECT_TRUE(ids.insert(std::string(o.at("id").as_string())).second) << o.at("id");
      EXPECT_EQ(o.at("deviceId").as_string(), device_.id);
      EXPECT_TRUE(o.at("cvssScore").is_double());
      EXPECT_EQ(o.at("recommendedSecurityUpdateId").as_string().size(), 7u) << o;
      if (pages == 1) first_ids.emplace_back(o.at("id").as_string());
    }
    ++pages;
    next.clear();
    if (const auto* link = body.if_contains("@odata.nextLink")) {
      next = std::string(link->as_string());
      next = next.substr(next.find("/api/"));
    }
  }
  EXPECT_EQ(static_cast<std::int64_t>(ids.size()), rows);
  EXPECT_EQ(pages, static_cast<int>((static_cast<std::size_t>(rows) + size - 1) / size));
  // pageIndex (check_msdefender sends pageIndex=1): page 2 is the second page.
  const Response second =
      get("/api/machines/SoftwareVulnerabilitiesByMachine?pageIndex=2&pageSize=" + size_text, t);
  ASSERT_EQ(second.status, 200) << second.body;
  std::vector<std::string> second_ids;
  const boost::json::value second_page = boost::json::parse(second.body);
  for (const auto& v : second_page.at("value").as_array()) {
    second_ids.emplace_back(v.at("id").as_string());
  }
  EXPECT_EQ(second_ids, first_ids);
  // $top: that many, without a link; pageSize above 200,000 is refused.
  const auto top =
      boost::json::parse(get("/api/machines/SoftwareVulnerabilitiesByMachine?$top=3", t).body);
  EXPECT_EQ(top.at("value").as_array().size(), 3u);
  EXPECT_EQ(top.as_object().if_contains("@odata.nextLink"), nullptr);
  EXPECT_EQ(get("/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=200001", t).status, 400);
  // The inventory export: one row per product the device runs, as /machines/{id}/software lists.
  const auto software =
      boost::json::parse(get("/api/machines/" + device_.id + "/software", t).body);
  const auto inventory =
      boost::json::parse(get("/api/machines/SoftwareInventoryByMachine", t).body);
  std::set<std::string> listed, exported;
  for (const auto& s : software.at("value").as_array()) listed.emplace(s.at("name").as_string());
  for (const auto& s : inventory.at("value").as_array()) {
    exported.emplace(s.at("softwareName").as_string());
    EXPECT_TRUE(s.at("numberOfWeaknesses").is_int64());
  }
  EXPECT_EQ(exported, listed);
}

// Defender's own clients spell names in other cases: $Filter and ComputerDNSName (PSMDE), $Select.
// Parameters that are not options (Top=1, a typo of one client) are passed over.
TEST_F(ApiHandle, OptionAndPropertyNamesAreWithoutCase) {
  const std::string t = token({"Machine.Read.All"});
  const Response r = get("/api/machines?$Filter=ComputerDNSName%20eq%20'" +
                             to_lower(device_.computer_dns_name) + "'&$SELECT=ID,osplatform&Top=1",
                         t);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto value = boost::json::parse(r.body).at("value").as_array();
  ASSERT_EQ(value.size(), 1u);
  // The entity's own spelling of the names.
  EXPECT_EQ(
      boost::json::serialize(value[0]),
      boost::json::serialize(boost::json::object{{"id", device_.id}, {"osPlatform", "Windows10"}}));
}

// Tags (PSMDE's Add-MachineTag, findbytag) and machine groups by tag.
TEST_F(ApiHandle, TagsFindByTagAndMachineGroups) {
  ApiOptions options;
  options.machine_groups = {{7, "Lab", "lab"}};
  auto keys = auth::KeySet::from_jwks(key_->jwks(), "test");
  ASSERT_TRUE(keys);
  api_ = std::make_unique<Api>(
      *service_,
      auth::Verifier({{"kbgap", {kAudience}, std::make_shared<auth::KeySet>(*keys)}}, 60), options);
  const std::string reader = token({"Machine.Read.All"});
  const std::string writer = token({"Machine.ReadWrite.All"});
  auto post = [&](const std::string& body, const std::string& bearer) {
    Request request;
    request.method = "POST";
    request.target = "/api/machines/" + device_.id + "/tags";
    request.host = "localhost";
    request.authorization = "Bearer " + bearer;
    request.body = body;
    return api_->handle(request, true);
  };
  auto found = [&](const std::string& query) {
    const Response r = get("/api/machines/findbytag?" + query, reader);
    EXPECT_EQ(r.status, 200) << r.body;
    return boost::json::parse(r.body).at("value").as_array().size();
  };
  EXPECT_EQ(found("tag=Lab"), 0u);
  const std::string seen_before(boost::json::parse(get("/api/machines/" + device_.id, reader).body)
                                    .at("lastSeen")
                                    .as_string());
  std::this_thread::sleep_for(
      std::chrono::milliseconds(1100));  // a write now would be a later second
  EXPECT_EQ(post(R"({"Value": "Lab", "Action": "Add"})", reader).status, 403);
  const Response added = post(R"({"Value": "Lab", "Action": "Add"})", writer);
  ASSERT_EQ(added.status, 200) << added.body;
  const auto machine = boost::json::parse(added.body);
  EXPECT_EQ(machine.at("machineTags").as_array(), boost::json::array{"Lab"});
  EXPECT_EQ(machine.at("rbacGroupId").as_int64(), 7);
  EXPECT_EQ(machine.at("rbacGroupName").as_string(), "Lab");
  // Its times are kept: a tag is not a report from the device.
  EXPECT_EQ(machine.at("lastSeen").as_string(), seen_before);
  EXPECT_EQ(found("tag=lab"), 1u);
  EXPECT_EQ(found("tag=La"), 0u);
  EXPECT_EQ(found("tag=La&useStartsWithFilter=true"), 1u);
  EXPECT_EQ(post(R"({"Value": "lab", "Action": "Add"})", writer).status, 200);  // once
  EXPECT_EQ(boost::json::parse(get("/api/machines/" + device_.id, reader).body)
                .at("machineTags")
                .as_array()
                .size(),
            1u);
  for (const char* bad : {R"({"Value": "", "Action": "Add"})",
                          R"({"Value": "x", "Action": "Toggle"})", "not json", R"(["x"])"}) {
    EXPECT_EQ(post(bad, writer).status, 400) << bad;
  }
  ASSERT_EQ(post(R"({"value": "LAB", "action": "remove"})", writer).status, 200);
  EXPECT_EQ(found("tag=lab"), 0u);
  EXPECT_EQ(get("/api/machines/findbytag", reader).status, 400);
  EXPECT_EQ(boost::json::parse(get("/api/machines/" + device_.id, reader).body).at("rbacGroupId"),
            0);
}

// kbgap raises no alerts: the alert routes answer, with none.
TEST_F(ApiHandle, AlertsAreAnEmptyCollection) {
  const std::string t = token({"Alert.Read.All"});
  for (const std::string& target :
       std::vector<std::string>{"/api/alerts", "/api/machines/" + device_.id + "/alerts"}) {
    const Response r = get(target, t);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(boost::json::parse(r.body).at("value").as_array().size(), 0u);
  }
  EXPECT_EQ(get("/api/machines/" + std::string(40, 'a') + "/alerts", t).status, 404);
  EXPECT_EQ(get("/api/alerts", token({"Machine.Read.All"})).status, 403);
}

// One "Update <product>" recommendation per product with open CVEs; its devices, CVEs and software
// are the product's; a machine's recommendations are the products its missing KBs are for.
TEST_F(ApiHandle, RecommendationsAreTheProductsWithOpenCves) {
  const std::string t =
      token({"SecurityRecommendation.Read.All", "Software.Read.All", "Vulnerability.Read.All"});
  auto body = [&](const std::string& target) {
    const Response r = get(target, t);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return boost::json::parse(r.body);
  };
  const auto listed = body("/api/recommendations");
  std::set<std::string> products;
  for (const auto& r : listed.at("value").as_array()) {
    const auto& o = r.as_object();
    const std::string id(o.at("id").as_string());
    const std::string product(o.at("productName").as_string());
    EXPECT_EQ(id, "va-_-microsoft-_-" + product);
    products.insert(product);
    EXPECT_EQ(o.at("remediationType"), "Update");
    const auto cves = body("/api/recommendations/" + id + "/vulnerabilities?$count=true");
    EXPECT_EQ(cves.at("@odata.count").as_int64(), o.at("weaknesses").as_int64()) << id;
    EXPECT_GT(o.at("weaknesses").as_int64(), 0) << id;
    const auto machines = body("/api/recommendations/" + id + "/machineReferences?$count=true");
    EXPECT_EQ(machines.at("@odata.count").as_int64(), o.at("exposedMachinesCount").as_int64());
    const auto software = body("/api/recommendations/" + id + "/software");
    EXPECT_EQ(software.at("value").at(0).at("id").as_string(), "microsoft-_-" + product);
    const std::string program(o.at("recommendedProgram").as_string());
    EXPECT_TRUE(program.starts_with("KB")) << id;
    EXPECT_EQ(body("/api/recommendations/" + id).at("recommendedProgram").as_string(), program);
  }
  // The device's missing KBs name exactly the recommended products.
  const auto ev = engine::evaluate(test::full_catalog(), device_, {});
  std::set<std::string> expected;
  for (const engine::MissingKb& kb : ev.missing) {
    expected.insert(kb.products_names.begin(), kb.products_names.end());
  }
  EXPECT_EQ(products, expected);
  std::set<std::string> mine;
  const auto own = body("/api/machines/" + device_.id + "/recommendations");
  for (const auto& r : own.at("value").as_array()) mine.emplace(r.at("productName").as_string());
  EXPECT_EQ(mine, expected);
  EXPECT_EQ(get("/api/recommendations/va-_-microsoft-_-office_2016", t).status, 404);
  // Software: its devices and the versions they run.
  const auto machines = body("/api/Software/microsoft-_-windows_10/machineReferences");
  ASSERT_EQ(machines.at("value").as_array().size(), 1u);
  const auto versions = body("/api/Software/microsoft-_-windows_10/distributions");
  ASSERT_EQ(versions.at("value").as_array().size(), 1u);
  const auto& v = versions.at("value").at(0);
  EXPECT_EQ(v.at("version").as_string(), inventory::os_build_string(device_));
  EXPECT_EQ(v.at("installations").as_int64(), 1);
  EXPECT_EQ(v.at("vulnerabilities").as_int64(),
            body("/api/Software/microsoft-_-windows_10/vulnerabilities?$count=true")
                .at("@odata.count")
                .as_int64());
}

// $orderby (Defender's `$orderby=lastSeen desc`): the collection sorted, ties in its own order,
// paged to its end by @odata.nextLink; .../$count the number alone; $expand what can be.
TEST_F(ApiHandle, OrderbyCountAndExpand) {
  const std::string t = token({"Vulnerability.Read.All", "Alert.Read.All"});
  const std::string open = "/api/machines/" + device_.id + "/vulnerabilities";
  std::vector<boost::json::object> all;
  std::string next = open + "?$orderby=cvssV3%20desc,id&$top=300";  // within 50 calls a minute
  while (!next.empty()) {
    const Response r = get(next, t);
    ASSERT_EQ(r.status, 200) << next << ": " << r.body;
    const boost::json::value page = boost::json::parse(r.body);
    for (const auto& v : page.at("value").as_array()) all.push_back(v.as_object());
    next.clear();
    if (const auto* link = page.as_object().if_contains("@odata.nextLink")) {
      next = std::string(link->as_string());
      next = next.substr(next.find("/api/"));
    }
  }
  const Response counted = get(open + "/$count", t);
  ASSERT_EQ(counted.status, 200) << counted.body;
  EXPECT_EQ(counted.content_type, "text/plain; charset=utf-8");
  ASSERT_EQ(std::to_string(all.size()), counted.body);
  for (std::size_t i = 1; i < all.size(); ++i) {
    const double a = all[i - 1].at("cvssV3").as_double(), b = all[i].at("cvssV3").as_double();
    EXPECT_GE(a, b) << i;
    if (a == b) {
      EXPECT_LT(all[i - 1].at("id").as_string(), all[i].at("id").as_string()) << i;
    }
  }
  // $count with a $filter counts what the filter keeps.
  const Response high = get(open + "?$filter=severity%20eq%20'High'&$count=true&$top=0", t);
  const auto high_count = boost::json::parse(high.body).at("@odata.count").as_int64();
  EXPECT_EQ(get(open + "/$count?$filter=severity%20eq%20'High'", t).body,
            std::to_string(high_count));
  EXPECT_EQ(get("/api/machines/" + device_.id + "/$count", token({"Machine.Read.All"})).status,
            404);  // an entity
  EXPECT_EQ(get("/api/kbgap/devices/$count", token({"Machine.ReadWrite.All"}), "POST").status, 404);
  EXPECT_EQ(get(open + "?$orderby=nosuch", t).status, 400);
  EXPECT_EQ(get(open + "?$orderby=id%20sideways", t).status, 400);
  EXPECT_EQ(get("/api/alerts?$expand=evidence", t).status, 200);
  EXPECT_EQ(get(open + "?$expand=evidence", t).status, 400);
}

// The delta export: the full export taken before some writes, with the changes since then
// applied as Defender's pull pattern says (New adds, Fixed removes, Updated replaces), is the
// full export taken after them.
TEST_F(ApiHandle, DeltaExportReplaysTheFullExportToTheNext) {
  const std::string t = token({"Vulnerability.Read.All"});
  auto rows_of = [&](const std::string& first) {
    std::vector<boost::json::object> rows;
    std::string next = first;
    while (!next.empty()) {
      const Response page = get(next, t);
      EXPECT_EQ(page.status, 200) << next << ": " << page.body;
      if (page.status != 200) break;
      const auto body = boost::json::parse(page.body).as_object();
      for (const auto& v : body.at("value").as_array()) rows.push_back(v.as_object());
      next.clear();
      if (const auto* link = body.if_contains("@odata.nextLink")) {
        next = std::string(link->as_string());
        next = next.substr(next.find("/api/"));
      }
    }
    return rows;
  };
  // A row's own fields: what a change carries (the device's come from the fleet as it is now).
  auto own = [](boost::json::object o) {
    for (const char* device_field :
         {"deviceName", "osPlatform", "osVersion", "osArchitecture", "rbacGroupName", "rbacGroupId",
          "firstSeenTimestamp", "lastSeenTimestamp", "status", "eventTimestamp", "isOnboarded"}) {
      o.erase(device_field);
    }
    return o;
  };
  auto full = [&] {
    std::map<std::string, boost::json::object> out;
    for (auto& o : rows_of("/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=200000")) {
      out.emplace(std::string(o.at("id").as_string()), own(o));
    }
    return out;
  };
  const std::string since = utc_now();
  auto rows = full();
  ASSERT_FALSE(rows.empty());
  // Another device comes; this one installs its newest missing update.
  const inventory::Device other = test::real_device("10_1809_x64_pro_en-us_20190307");
  ASSERT_TRUE(service_->put_devices(kbgap::inventory::kDefaultTenant, {other}));
  inventory::Device patched = device_;
  const auto ev = engine::evaluate(test::full_catalog(), device_, {});
  ASSERT_FALSE(ev.missing.empty());
  patched.installed_kbs.push_back(ev.missing.front().kb);
  std::sort(patched.installed_kbs.begin(), patched.installed_kbs.end());
  ASSERT_TRUE(service_->put_devices(kbgap::inventory::kDefaultTenant, {patched}));
  // In about five pages (the exports' rate limit is 30 calls a minute), the link carrying
  // sinceTime on.
  const Response counted = get(
      "/api/machines/SoftwareVulnerabilityChangesByMachine?$top=0&$count=true&sinceTime=" + since,
      t);
  ASSERT_EQ(counted.status, 200) << counted.body;
  const std::int64_t count = boost::json::parse(counted.body).at("@odata.count").as_int64();
  ASSERT_GT(count, 10);
  const auto changes = rows_of("/api/machines/SoftwareVulnerabilityChangesByMachine?pageSize=" +
                               std::to_string(count / 5 + 1) + "&sinceTime=" + since);
  EXPECT_EQ(static_cast<std::int64_t>(changes.size()), count);
  std::map<std::string, int> statuses;
  for (const auto& c : changes) {
    const std::string id(c.at("id").as_string());
    const std::string status(c.at("status").as_string());
    ++statuses[status];
    EXPECT_TRUE(c.at("isOnboarded").as_bool());
    EXPECT_GE(std::string(c.at("eventTimestamp").as_string()), since.substr(0, 10)) << c;
    if (status == "New") {
      EXPECT_TRUE(rows.emplace(id, own(c)).second) << id;
    } else if (status == "Fixed") {
      EXPECT_EQ(rows.erase(id), 1u) << id;
    } else {
      EXPECT_EQ(status, "Updated");
      EXPECT_TRUE(rows.contains(id)) << id;
      rows[id] = own(c);
    }
  }
  EXPECT_GT(statuses["New"], 0);
  EXPECT_GT(statuses["Fixed"], 0);
  // /metrics counts them.
  const std::string metrics = get("/metrics", t).body;
  EXPECT_NE(metrics.find("kbgap_change_log_rows_total " + std::to_string(count) + "\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kbgap_change_log_failures_total 0\n"), std::string::npos);
  const auto after = full();
  EXPECT_EQ(rows.size(), after.size());
  EXPECT_TRUE(rows == after);
  // A device removed: its rows are Fixed, and it is no longer onboarded.
  ASSERT_TRUE(service_->remove_device(kbgap::inventory::kDefaultTenant, other.id));
  const std::string later = utc_now();
  std::size_t fixed = 0;
  for (const auto& c : rows_of("/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=" +
                               since + "&$filter=deviceId eq '" + other.id + "'")) {
    if (c.at("status").as_string() != "Fixed" ||
        c.at("eventTimestamp").as_string() < later.substr(0, 10)) {
      continue;
    }
    ++fixed;
    EXPECT_FALSE(c.at("isOnboarded").as_bool());
    EXPECT_EQ(c.at("deviceName").as_string(), other.computer_dns_name);
  }
  EXPECT_GT(fixed, 0u);
  // sinceTime: required, a time or a date, at most 14 days ago; a later time has no changes.
  const std::string delta = "/api/machines/SoftwareVulnerabilityChangesByMachine";
  EXPECT_EQ(get(delta, t).status, 400);
  EXPECT_EQ(get(delta + "?sinceTime=yesterday", t).status, 400);
  const std::string old = utc_time(std::chrono::system_clock::now() - std::chrono::days(15));
  const Response too_old = get(delta + "?sinceTime=" + old, t);
  EXPECT_EQ(too_old.status, 400);
  EXPECT_NE(too_old.body.find("14 days"), std::string::npos) << too_old.body;
  const Response by_day = get(delta + "?sincetime=" + since.substr(0, 10) + "&$top=1", t);
  EXPECT_EQ(by_day.status, 200) << by_day.body;
  EXPECT_EQ(boost::json::parse(by_day.body).at("value").as_array().size(), 1u);
  const std::string future = utc_time(std::chrono::system_clock::now() + std::chrono::hours(1));
  const Response none = get(delta + "?sinceTime=" + future, t);
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_TRUE(boost::json::parse(none.body).at("value").as_array().empty());
}

// Changes that cannot be recorded: the write is served all the same, the failure is counted, and
// a delta that would miss them is refused, one from after them is not.
TEST_F(ApiHandle, ADeltaThatWouldMissUnrecordedChangesIsRefused) {
  const std::string t = token({"Vulnerability.Read.All"});
  const std::string delta = "/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=";
  const std::string before = utc_now();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.str("devices.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE change_sets", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  ASSERT_TRUE(service_->put_devices(kbgap::inventory::kDefaultTenant,
                                    {test::real_device("10_1809_x64_pro_en-us_20190307")}));
  EXPECT_EQ(service_->view(kbgap::inventory::kDefaultTenant).value()->devices().size(),
            2u);  // written and served
  const Response refused = get(delta + before, t);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("could not be recorded"), std::string::npos) << refused.body;
  const std::string metrics = get("/metrics", t).body;
  EXPECT_NE(metrics.find("kbgap_change_log_failures_total 1\n"), std::string::npos) << metrics;
  const std::string later = utc_time(std::chrono::system_clock::now() + std::chrono::seconds(1));
  EXPECT_EQ(get(delta + later, t).status, 200);
}

// GET /api/$metadata declares every entity set the contexts name and every property the
// endpoints answer, with a type that fits its values (Power BI's OData.Feed reads it).
TEST_F(ApiHandle, MetadataDeclaresWhatTheEndpointsAnswer) {
  const std::string t = token({"Machine.Read.All", "Vulnerability.Read.All", "Software.Read.All",
                               "SecurityRecommendation.Read.All"});
  const Response r = get("/api/$metadata", t);
  ASSERT_EQ(r.status, 200) << r.body;
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(r.body.c_str()));
  const pugi::xml_node schema = doc.child("edmx:Edmx").child("edmx:DataServices").child("Schema");
  ASSERT_TRUE(schema);
  std::map<std::string, std::string> set_type;
  for (const auto& set : schema.child("EntityContainer").children("EntitySet")) {
    set_type[set.attribute("Name").value()] = set.attribute("EntityType").value();
  }
  auto declared = [&](const std::string& type) {
    std::map<std::string, std::string> props;
    const std::string local = type.substr(type.rfind('.') + 1);
    for (const auto& e : schema.children("EntityType")) {
      if (local != e.attribute("Name").value()) continue;
      for (const auto& p : e.children("Property")) {
        props[p.attribute("Name").value()] = p.attribute("Type").value();
      }
    }
    return props;
  };
  // Every collection the token may read: its context names an entity set or a declared type.
  const std::vector<std::string> targets = {
      "/api/machines",
      "/api/vulnerabilities?$top=50",
      "/api/Software",
      "/api/recommendations",
      "/api/vulnerabilities/machinesVulnerabilities?$top=50",
      "/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=50",
      "/api/machines/SoftwareInventoryByMachine",
      "/api/Software/microsoft-_-windows_10/distributions",
      "/api/Software/microsoft-_-windows_10/machineReferences",
      "/api/machines/" + device_.id + "/getmissingkbs"};
  for (const std::string& target : targets) {
    const Response page = get(target, t);
    ASSERT_EQ(page.status, 200) << page.body;
    const boost::json::value body = boost::json::parse(page.body);
    const std::string context(body.at("@odata.context").as_string());
    std::string set = context.substr(context.find('#') + 1);
    std::string type;
    if (set.starts_with("Collection(")) {
      type = set.substr(11, set.size() - 12);
    } else {
      ASSERT_TRUE(set_type.contains(set)) << set;
      type = set_type[set];
    }
    const auto props = declared(type);
    ASSERT_FALSE(props.empty()) << type;
    for (const auto& item : body.at("value").as_array()) {
      for (const auto& kv : item.as_object()) {
        const std::string name(kv.key());
        ASSERT_TRUE(props.contains(name)) << set << "." << name;
        const std::string& type = props.at(name);
        const auto kind = kv.value().kind();
        if (kind == boost::json::kind::null) continue;
        const bool fits = (type == "Edm.String" && kind == boost::json::kind::string) ||
                          (type == "Edm.DateTimeOffset" && kind == boost::json::kind::string) ||
                          (type == "Edm.Int64" && kind == boost::json::kind::int64) ||
                          (type == "Edm.Double" && (kind == boost::json::kind::double_)) ||
                          (type == "Edm.Boolean" && kind == boost::json::kind::bool_) ||
                          (type.starts_with("Collection(") && kind == boost::json::kind::array);
        EXPECT_TRUE(fits) << set << "." << name << ": " << type << " for "
                          << boost::json::serialize(kv.value());
      }
    }
  }
  EXPECT_EQ(get("/api/$metadata", "").status, 401);
}

}  // namespace
}  // namespace kbgap::server
