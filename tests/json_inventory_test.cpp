// kbgap JSON and osquery JSON inventories: what they read, and the errors they give.
#include "inventory/json_inventory.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <filesystem>

#include "inventory/inventory_reader.h"
#include "test_support.h"

namespace kbgap::inventory {
namespace {

TEST(KbgapJson, ReadsDevices) {
  auto r = read_inventory(R"({"devices": [
    {"computerDnsName": "srv22.example.com", "osName": "Microsoft Windows Server 2022 Datacenter",
     "osBuild": "10.0.20348.2762", "osArchitecture": "x64", "serverCore": true,
     "installedKbs": ["KB5044281", "5041160"], "tags": ["prod", "dmz"],
     "software": [{"name": "Microsoft Edge", "vendor": "Microsoft Corporation", "version": "130.0"}]},
    {"id": "2339ad7f1e4c0b3a8c1e2f3a4b5c6d7e8f901234", "computerDnsName": "w11",
     "osBuild": "10.0.22631", "osArchitecture": "64-bit"}]})",
                          "fleet.json");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  const Device& srv = (*r)[0].device;
  EXPECT_EQ((*r)[0].format, InventoryFormat::kKbgapJson);
  EXPECT_EQ(srv.os_family, "Windows Server 2022");
  EXPECT_TRUE(srv.server_core);
  EXPECT_EQ(srv.edition, "Datacenter");
  EXPECT_EQ(srv.revision, std::optional<int>(2762));
  EXPECT_EQ(srv.installed_kbs, (std::vector<KbNumber>{5041160, 5044281}));
  EXPECT_EQ(srv.tags, (std::vector<std::string>{"prod", "dmz"}));
  ASSERT_EQ(srv.software.size(), 1u);
  EXPECT_EQ(srv.software[0].version, "130.0");
  EXPECT_EQ(srv.id.size(), 40u);
  const Device& w11 = (*r)[1].device;
  EXPECT_EQ(w11.id, "2339ad7f1e4c0b3a8c1e2f3a4b5c6d7e8f901234");
  EXPECT_EQ(w11.os_family, "Windows 11");
  EXPECT_EQ(w11.version, "23H2");
  EXPECT_FALSE(w11.revision.has_value());
}

TEST(KbgapJson, ErrorsNameTheFileAndField) {
  struct Case {
    const char* json;
    const char* error;
  };
  const Case cases[] = {
      {R"({"devices": [{"computerDnsName": "a", "osBuild": "10.0", "osArchitecture": "x64"}]})",
       "f.json: devices[0].osBuild: expected a Windows build like 10.0.19045.3803, not '10.0'"},
      {R"({"devices": [{"osBuild": "10.0.19045", "osArchitecture": "x64"}]})",
       "f.json: devices[0].computerDnsName: required"},
      {R"({"computerDnsName": "a", "osBuild": "10.0.19045", "osArchitecture": "sparc"})",
       "f.json: $.osArchitecture: expected x64, x86 or arm64, not 'sparc'"},
      {R"({"computerDnsName": "a", "osBuild": "10.0.19045", "osArchitecture": "x64",
           "installedKbs": ["yes"]})",
       "f.json: $.installedKbs[0]: expected \"KB1234567\""},
      {R"({"computerDnsName": "a", "osBuild": "10.0.19045", "osArchitecture": "x64", "id": "XYZ"})",
       "f.json: $.id: expected 40 lower-case hex characters"},
      {R"({"computerDnsName": "a", "osBuild": "10.0.12345", "osArchitecture": "x64"})",
       "f.json: $.osBuild: unknown Windows build 10.0.12345"},
      {R"({"devices": []})", "f.json: no device in the inventory"},
      {"{\"devices\": [\n{\"computerDnsName\": \"a\",\n", "f.json:3: malformed JSON"},
  };
  for (const Case& c : cases) {
    auto r = read_inventory(c.json, "f.json");
    ASSERT_FALSE(r) << c.json;
    EXPECT_TRUE(r.error().message.starts_with(c.error)) << r.error().message;
  }
}

TEST(KbgapJson, DeeplyNestedJsonIsAnErrorNotACrash) {
  std::string deep = "{\"devices\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = read_inventory(deep, "deep.json");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("malformed JSON"), std::string::npos) << r.error().message;
}

TEST(OsqueryJson, ReadsTheFourTables) {
  auto r = read_inventory(R"js({
    "os_version": [{"name": "Microsoft Windows 10 Pro", "version": "10.0.19045", "build": "19045",
                    "revision": "3803", "arch": "64-bit", "platform": "windows"}],
    "system_info": [{"hostname": "DESKTOP-1", "uuid": "4C4C4544-0042-3510-8052-B7C04F4E3732"}],
    "patches": [{"hotfix_id": "KB5034122", "description": "Security Update"},
                {"hotfix_id": "KB5032907", "description": "Update"}],
    "windows_update_history": [
      {"title": "2024-01 Cumulative Update for Windows 10 Version 22H2 for x64-based Systems (KB5034122)",
       "result_code": "2"},
      {"title": "2024-01 Security Update for Windows 10 Version 22H2 for x64-based Systems (KB5034441)",
       "result_code": "4"}],
    "programs": [{"name": "Microsoft Edge", "version": "120.0.2210.91", "publisher": "Microsoft Corporation"}]
  })js",
                          "host.json");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const Device& d = r->front().device;
  EXPECT_EQ(r->front().format, InventoryFormat::kOsqueryJson);
  EXPECT_EQ(d.computer_dns_name, "DESKTOP-1");
  EXPECT_EQ(d.os_family, "Windows 10");
  EXPECT_EQ(d.version, "22H2");
  EXPECT_EQ(d.revision, std::optional<int>(3803));
  EXPECT_EQ(d.architecture, Architecture::kX64);
  // KB5034441 failed to install (result_code 4): not counted.
  EXPECT_EQ(d.installed_kbs, (std::vector<KbNumber>{5032907, 5034122}));
  ASSERT_EQ(d.software.size(), 1u);
  EXPECT_EQ(d.software[0].vendor, "Microsoft Corporation");
}

TEST(OsqueryJson, NeedsOsVersionAndHostname) {
  auto no_host = read_inventory(
      R"({"os_version": [{"name": "Microsoft Windows 10 Pro", "version": "10.0.19045", "arch": "64-bit"}]})",
      "h.json");
  ASSERT_FALSE(no_host);
  EXPECT_EQ(no_host.error().message, "h.json: system_info.hostname: required");
  auto empty = read_inventory(R"({"os_version": []})", "h.json");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "h.json: os_version: required, with one row");
}

// Every real inventory, written as kbgap JSON and read back, is the same device: this is how
// the device store keeps devices.
TEST(KbgapJson, EveryRealDeviceRoundTrips) {
  namespace fs = std::filesystem;
  std::vector<Inventory> all;
  for (const auto& e : fs::directory_iterator(fs::path(KBGAP_SOURCE_DIR) / "data/inventories")) {
    if (e.path().extension() != ".txt" || e.path().filename() == "LICENSE.txt") continue;
    auto r = read_inventory(test::read_file(e.path()), e.path().filename().string());
    ASSERT_TRUE(r) << r.error().message;
    for (auto& inv : *r) {
      if (inv.has_os) all.push_back(std::move(inv));
    }
  }
  ASSERT_EQ(all.size(), 41u);
  for (const Inventory& inv : all) {
    Device d = inv.device;
    SCOPED_TRACE(d.source);
    d.software.push_back({"Microsoft Edge", "Microsoft Corporation", "130.0.2849.68"});
    d.tags = {"prod", "dmz"};
    d.first_seen = "2024-10-01T08:00:00Z";
    const std::string text = boost::json::serialize(device_json(d));
    auto back = parse_kbgap_json(text, "stored");
    ASSERT_TRUE(back) << back.error().message << "\n" << text;
    ASSERT_EQ(back->size(), 1u);
    const Device& b = back->front().device;
    EXPECT_EQ(b.id, d.id);
    EXPECT_EQ(b.computer_dns_name, d.computer_dns_name);
    EXPECT_EQ(b.os_name, d.os_name);
    EXPECT_EQ(b.os_family, d.os_family);
    EXPECT_EQ(b.version, d.version);
    EXPECT_EQ(b.edition, d.edition);
    EXPECT_EQ(b.server_core, d.server_core);
    EXPECT_EQ(b.azure_edition, d.azure_edition);
    EXPECT_EQ(b.service_pack, d.service_pack);
    EXPECT_EQ(b.architecture, d.architecture);
    EXPECT_EQ(std::tie(b.major, b.minor, b.build), std::tie(d.major, d.minor, d.build));
    EXPECT_EQ(b.revision, d.revision);
    EXPECT_EQ(b.installed_kbs, d.installed_kbs);
    ASSERT_EQ(b.software.size(), 1u);
    EXPECT_EQ(b.software[0].version, "130.0.2849.68");
    EXPECT_EQ(b.tags, d.tags);
    EXPECT_EQ(b.first_seen, d.first_seen);
    EXPECT_EQ(b.ip_addresses, d.ip_addresses);
    EXPECT_EQ(b.agent_version, d.agent_version);
  }
}

// Defender's machine fields lastIpAddress, ipAddresses and agentVersion, from kbgap JSON: addresses
// as strings or as Defender's IpAddress objects, canonical, each once; anything else an error.
TEST(KbgapJson, ReadsAddressesAndAgentVersion) {
  auto r = parse_kbgap_json(R"([{"computerDnsName": "pc1", "osBuild": "10.0.19045.3803",
      "osArchitecture": "x64", "agentVersion": "10.8760.19045.3803",
      "ipAddresses": ["10.0.0.4", {"ipAddress": "FE80:0:0:0:0:0:0:1", "macAddress": "00155D3C3A14"},
                      "10.0.0.4"]}])",
                            "batch.json");
  ASSERT_TRUE(r) << r.error().message;
  const Device& d = r->front().device;
  EXPECT_EQ(d.ip_addresses, (std::vector<std::string>{"10.0.0.4", "fe80::1"}));
  EXPECT_EQ(d.agent_version, "10.8760.19045.3803");
  for (const char* bad :
       {R"(["10.0.0.256"])", R"([7])", R"([{"macAddress": "00155D3C3A14"}])", R"(["10.0.0.4 "])"}) {
    auto e = parse_kbgap_json(fmt::format(R"([{{"computerDnsName": "pc1", "osBuild": "10.0.19045",
        "osArchitecture": "x64", "ipAddresses": {}}}])",
                                          bad),
                              "batch.json");
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(
        e.error().message,
        "batch.json: devices[0].ipAddresses[0]: expected an IPv4 or IPv6 address like \"10.0.0.4\"")
        << bad;
  }
}

TEST(OsqueryJson, ReadsInterfaceAddressesAndTheAgentVersion) {
  auto r = read_inventory(R"js({
    "os_version": [{"name": "Microsoft Windows 11 Pro", "version": "10.0.22631", "arch": "64-bit"}],
    "system_info": [{"hostname": "DESKTOP-2"}],
    "osquery_info": [{"version": "5.11.0"}],
    "interface_addresses": [{"interface": "1", "address": "127.0.0.1"},
                            {"interface": "12", "address": "fe80::5d2c:9a1e:6b1f:2a3c%12"},
                            {"interface": "12", "address": "192.168.1.23"}]
  })js",
                          "host.json");
  ASSERT_TRUE(r) << r.error().message;
  const Device& d = r->front().device;
  // A zone-scoped link-local address ("%12") is not an address kbgap keeps.
  EXPECT_EQ(d.ip_addresses, (std::vector<std::string>{"127.0.0.1", "192.168.1.23"}));
  EXPECT_EQ(primary_ip(d.ip_addresses), "192.168.1.23");
  EXPECT_EQ(d.agent_version, "5.11.0");
}

}  // namespace
}  // namespace kbgap::inventory
