// Api::handle without HTTP (docs/api.md): routing from the route table, errors, permissions and
// an answer, on the real catalog and a real inventory. The HTTP suites (api_test.py and others)
// run the same server over a socket.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>

#include "auth/jwt.h"
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
    ASSERT_TRUE(service_->put_devices({device_}));
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
  const std::string all = token(
      {"Machine.Read.All", "Software.Read.All", "Vulnerability.Read.All", "Machine.ReadWrite.All"});
  const std::string name = device_.computer_dns_name;
  const std::vector<std::string> targets = {"/api/machines",
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

// On an I/O thread (may_block false), what would wait is handed to a worker (status 0): the
// fleet-wide facts before they are gathered; not a device's missing KBs, which need the snapshot
// only, nor /metrics.
TEST_F(ApiHandle, WhatWouldWaitGoesToAWorker) {
  const std::string t = token({"Machine.Read.All", "Software.Read.All"});
  const std::string kbs = "/api/machines/" + device_.computer_dns_name + "/getmissingkbs";
  get(kbs, t);  // the snapshot is built (the write above made it already)
  EXPECT_EQ(get("/api/machines", t, "GET", false).status, 0);
  EXPECT_EQ(get(kbs, t, "GET", false).status, 200);
  EXPECT_EQ(get("/metrics", t, "GET", false).status, 200);
  EXPECT_EQ(get("/api/machines", t).status, 200);  // on a worker: gathers the facts
  EXPECT_EQ(get("/api/machines", t, "GET", false).status, 200);
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

}  // namespace
}  // namespace kbgap::server
