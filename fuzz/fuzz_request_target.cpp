// libFuzzer target: the request target (path and query) of a GET, through the whole API: routing,
// percent-decoding, ids, OData options and every read endpoint's answer. The fleet is real: one
// real MSRC month and the real systeminfo inventories, in a SQLite store in a temporary
// directory. The token is valid and holds every role, so the fuzzer reaches the handlers.
// Checked: a GET of a healthy fleet is never a 5xx, and every JSON answer is well-formed JSON.
#include <unistd.h>

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "catalog/bundled_catalog.h"
#include "catalog/cvrf_reader.h"
#include "catalog/tar_zst_reader.h"
#include "common/file.h"
#include "engine/catalog_index.h"
#include "inventory/inventory_reader.h"
#include "server/api.h"
#include "server/service.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "store/sqlite/sqlite_device_store.h"

namespace fs = std::filesystem;
using namespace kbgap;

namespace {

template <typename T>
T must(Result<T> r) {
  if (!r) {
    std::fprintf(stderr, "fuzz setup: %s\n", r.error().message.c_str());
    std::abort();
  }
  return std::move(*r);
}

std::shared_ptr<const engine::CatalogIndex> one_month(std::string_view month) {
  auto reader = catalog::TarZstReader::from_memory(catalog::bundled_catalog_archive(), "bundled");
  auto store = must(store::sqlite::SqliteCatalogStore::open(":memory:"));
  for (;;) {
    auto member = must(reader.next());
    if (!member) break;
    if (member->name.find(month) == std::string::npos) continue;
    auto doc = must(catalog::read_cvrf(member->content, member->name));
    auto tx = must(store->begin());
    if (!tx->replace_document(doc.document, "{}") || !tx->commit()) std::abort();
    break;
  }
  return std::make_shared<engine::CatalogIndex>(engine::CatalogIndex::build(must(store->load())));
}

struct World {
  fs::path dir;
  std::unique_ptr<server::Service> service;
  std::unique_ptr<server::Api> api;
  std::string authorization;

  World() {
    dir = fs::temp_directory_path() / ("kbgap-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto devices = must(store::sqlite::SqliteDeviceStore::open((dir / "kbgap.db").string()));
    std::vector<inventory::Inventory> inventories;
    for (const auto& e : fs::directory_iterator(KBGAP_SOURCE_DIR "/data/inventories")) {
      if (!e.path().string().ends_with("_systeminfo.txt")) continue;
      auto text = must(read_file_limited(e.path().string(), 1 << 20, "an inventory"));
      for (auto& i : must(inventory::read_inventory(text, e.path().filename().string()))) {
        inventories.push_back(std::move(i));
      }
    }
    must(devices->put(must(inventory::merge_inventories(std::move(inventories))),
                      "2026-11-01T00:00:00Z"));
    service = std::make_unique<server::Service>(one_month("2021-Jan"), std::move(devices), 1);

    auto key = must(auth::SigningKey::load_or_create((dir / "key.pem").string()));
    auto keys = must(auth::KeySet::from_jwks(key.jwks(), "fuzz key"));
    const std::string audience = "https://api.securitycenter.microsoft.com";
    auth::Verifier verifier(
        {{"kbgap", {audience}, std::make_shared<auth::KeySet>(std::move(keys))}}, 60);
    server::ApiOptions options;
    options.machines = options.vulnerabilities = options.software = server::RateLimit{};
    api = std::make_unique<server::Api>(*service, std::move(verifier), options);
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    authorization =
        "Bearer " +
        key.sign(boost::json::object{
            {"iss", "kbgap"},
            {"aud", audience},
            {"appid", "fuzz"},
            {"exp", now + 30 * 24 * 3600},
            {"roles", boost::json::array{"Machine.Read.All", "Software.Read.All",
                                         "Vulnerability.Read.All", "Machine.ReadWrite.All"}}});
  }
  ~World() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  server::Request request;
  request.method = "GET";
  request.target.assign(reinterpret_cast<const char*>(data), size);
  request.authorization = world.authorization;
  request.host = "localhost";
  request.scheme = "http";
  const server::Response response = world.api->handle(request, true);
  if (response.status >= 500 || response.status < 200) {
    std::fprintf(stderr, "status %d for %s: %s\n", response.status, request.target.c_str(),
                 response.body.c_str());
    std::abort();
  }
  if (response.content_type.starts_with("application/json")) {
    boost::system::error_code ec;
    (void)boost::json::parse(response.body, ec);
    if (ec) {
      std::fprintf(stderr, "status %d for %s: the body is not JSON (%s): %s\n", response.status,
                   request.target.c_str(), ec.message().c_str(), response.body.c_str());
      std::abort();
    }
  }
  return 0;
}
