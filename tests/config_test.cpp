// `kbgap serve` configuration: TOML over defaults, environment over TOML, clear errors.
#include "server/config.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace kbgap::server {
namespace {

TEST(Config, DefaultsAreDefendersFigures) {
  auto c = load_config("", {});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->http.address, "127.0.0.1");
  EXPECT_EQ(c->http.port, 8080);
  EXPECT_EQ(c->api.machines.per_minute, 100);
  EXPECT_EQ(c->api.machines.per_hour, 1500);
  EXPECT_EQ(c->api.vulnerabilities.per_minute, 50);
  EXPECT_TRUE(c->self_issuer);
  EXPECT_TRUE(c->issuers.empty());
}

TEST(Config, FileThenEnvironment) {
  test::TempDir dir;
  test::write_file(dir.path() / "kbgap.toml", R"(
[server]
listen = "0.0.0.0:9090"
threads = 4
public_url = "https://kbgap.example.com"
request_timeout_seconds = 5
access_log = false

[api]
max_batch_devices = 500

[auth]
leeway_seconds = 30
audiences = ["api://kbgap"]

[[auth.issuers]]
issuer = "https://sts.windows.net/tenant/"
jwks_url = "https://login.microsoftonline.com/common/discovery/keys"

[[auth.issuers]]
issuer = "https://keycloak.example.com/realms/it"
jwks_file = "/etc/kbgap/jwks.json"
audiences = ["kbgap"]

[rate_limits]
machines_per_minute = 10
vulnerabilities_per_hour = 0
)");
  auto c = load_config(dir.str("kbgap.toml"), {{"KBGAP_SERVER_LISTEN", "127.0.0.1:7070"},
                                               {"KBGAP_RATE_LIMITS_MACHINES_PER_MINUTE", "7"}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->http.address, "127.0.0.1");
  EXPECT_EQ(c->http.port, 7070);
  EXPECT_EQ(c->http.threads, 4u);
  EXPECT_EQ(c->http.request_timeout, std::chrono::seconds(5));
  EXPECT_FALSE(c->http.access_log);
  EXPECT_EQ(c->api.public_url, "https://kbgap.example.com");
  EXPECT_EQ(c->api.max_batch_devices, 500u);
  EXPECT_EQ(c->api.leeway_seconds, 30);
  EXPECT_EQ(c->api.machines.per_minute, 7);
  EXPECT_EQ(c->api.vulnerabilities.per_hour, 0);
  ASSERT_EQ(c->issuers.size(), 2u);
  EXPECT_EQ(c->issuers[0].audiences, std::vector<std::string>{"api://kbgap"});
  EXPECT_EQ(c->issuers[1].audiences, std::vector<std::string>{"kbgap"});
  EXPECT_EQ(c->issuers[1].jwks_file, "/etc/kbgap/jwks.json");
}

TEST(Config, ErrorsNameTheFileLineAndKey) {
  test::TempDir dir;
  auto error_of = [&](const std::string& toml, const std::map<std::string, std::string>& env = {}) {
    test::write_file(dir.path() / "k.toml", toml);
    auto c = load_config(dir.str("k.toml"), env);
    EXPECT_FALSE(c) << toml;
    return c ? std::string() : c.error().message;
  };
  EXPECT_NE(error_of("[server]\nlisten = \"x\"\nthreds = 2\n")
                .find("k.toml:3: unknown key server.threds"),
            std::string::npos);
  EXPECT_NE(error_of("[server]\nthreads = \"two\"\n")
                .find("k.toml:2: server.threads: expected a whole number"),
            std::string::npos);
  EXPECT_NE(error_of("[server\n").find("k.toml:1:"), std::string::npos);
  EXPECT_NE(error_of("[[auth.issuers]]\nissuer = \"x\"\n").find("jwks_file or jwks_url"),
            std::string::npos);
  EXPECT_NE(error_of("", {{"KBGAP_SERVER_THREADS", "many"}}).find("KBGAP_SERVER_THREADS"),
            std::string::npos);
  EXPECT_NE(error_of("[server]\nlisten = \"nowhere\"\n").find("ADDRESS:PORT"), std::string::npos);
  EXPECT_NE(error_of("[rate_limits]\nmachines_per_minute = -1\n").find("outside"),
            std::string::npos);
  EXPECT_NE(error_of("[[machine_groups]]\nname = \"Servers\"\n").find("k.toml:1:"),
            std::string::npos);
  EXPECT_NE(error_of("[[machine_groups]]\nname = \"A\"\ntag = \"a\"\ncolour = 1\n")
                .find("k.toml:4: unknown key machine_groups.colour"),
            std::string::npos);
  EXPECT_NE(error_of("[[machine_groups]]\nname = \"A\"\ntag = \"a\"\n"
                     "[[machine_groups]]\nname = \"A\"\ntag = \"b\"\n")
                .find("k.toml:4: machine group 'A' is named twice"),
            std::string::npos);
  EXPECT_NE(error_of("[[machine_groups]]\nname = \"A\"\ntag = \"a\"\nid = 5\n"
                     "[[machine_groups]]\nname = \"B\"\ntag = \"b\"\nid = 5\n")
                .find("k.toml:5: machine groups 'A' and 'B' have one id, 5"),
            std::string::npos);
  EXPECT_NE(error_of("machine_groups = 3\n").find("expected [[machine_groups]] tables"),
            std::string::npos);
}

// Defender's rbacGroupId and rbacGroupName: [[machine_groups]] by tag, numbered in order unless
// given an id; a device carrying several groups' tags is in the first.
TEST(Config, MachineGroups) {
  test::TempDir dir;
  test::write_file(dir.path() / "kbgap.toml", R"(
[[machine_groups]]
name = "Domain controllers"
tag = "dc"

[[machine_groups]]
name = "Servers"
tag = "Server"
id = 140

[[machine_groups]]
name = "Workstations"
tag = "ws"
)");
  auto c = load_config(dir.str("kbgap.toml"), {});
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->api.machine_groups.size(), 3u);
  EXPECT_EQ(c->api.machine_groups[0].id, 1);
  EXPECT_EQ(c->api.machine_groups[1].id, 140);
  EXPECT_EQ(c->api.machine_groups[2].id, 141);  // after the ids taken
  inventory::Device d;
  d.tags = {"server", "dc"};
  EXPECT_EQ(api::machine_group(c->api.machine_groups, d)->name, "Domain controllers");
  d.tags = {"SERVER"};
  EXPECT_EQ(api::machine_group(c->api.machine_groups, d)->id, 140);
  d.tags = {"workstation"};
  EXPECT_EQ(api::machine_group(c->api.machine_groups, d), nullptr);
}

}  // namespace
}  // namespace kbgap::server
