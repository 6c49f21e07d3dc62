#include "app/serve_command.h"

#include <fmt/format.h>
#include <malloc.h>

#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>

#include "app/catalog_loader.h"
#include "app/cli_error.h"
#include "app/data_dir.h"
#include "auth/jwt.h"
#include "common/clock.h"
#include "common/file.h"
#include "net/http_client.h"
#include "server/api.h"
#include "server/config.h"
#include "server/http_server.h"
#include "server/service.h"
#include "store/postgres/pg_shared_counters.h"
#include "update/freshness.h"
#include "update/sync.h"

namespace kbgap::app {
namespace {

std::filesystem::path signing_key_path(const std::string& data_dir) {
  return std::filesystem::path(data_dir) / "keys" / "signing-key.pem";
}

// "90", "90s", "15m", "1h", "7d" -> seconds; nullopt otherwise.
std::optional<std::int64_t> parse_ttl(std::string_view s) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || n <= 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  if (unit.empty() || unit == "s") return n;
  if (unit == "m") return n * 60;
  if (unit == "h") return n * 3600;
  if (unit == "d") return n * 86400;
  return std::nullopt;
}

}  // namespace

int run_token(const TokenOptions& options) {
  const auto ttl = parse_ttl(options.ttl);
  if (!ttl || *ttl > 366 * 86400) {
    std::fprintf(stderr, "kbgap: --ttl must be like 90s, 15m, 1h or 7d (at most 366d), not '%s'\n",
                 options.ttl.c_str());
    return kExitUsage;
  }
  if (!check_tenant_option(options.tenant)) return kExitUsage;
  auto key = auth::SigningKey::load_or_create(signing_key_path(options.data_dir));
  if (!key) return report(key.error());
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  boost::json::array roles;
  for (const std::string& r : options.roles) roles.emplace_back(r);
  const boost::json::object claims{
      {"iss", kSelfIssuer},   {"aud", kDefenderAudience}, {"sub", options.app},
      {"appid", options.app}, {"tid", options.tenant},    {"iat", now},
      {"nbf", now},           {"exp", now + *ttl},        {"roles", std::move(roles)}};
  fmt::print("{}\n", key->sign(claims));
  return kExitOk;
}

namespace {

// Fetches a URL issuer's JWKS now and then: hourly, or every 30 s while it cannot be had.
class KeyRefresher {
 public:
  KeyRefresher(auth::Verifier verifier, std::vector<server::IssuerConfig> issuers)
      : verifier_(std::move(verifier)), issuers_(std::move(issuers)) {}
  ~KeyRefresher() { stop(); }
  // One round now; true when every issuer's keys were had.
  bool refresh() {
    bool all = true;
    for (const auto& issuer : issuers_) {
      net::FetchOptions fetch;
      fetch.timeout = std::chrono::seconds(10);
      fetch.attempts = 2;
      auto body = net::http_get(issuer.jwks_url, fetch);
      auto keys = body ? auth::KeySet::from_jwks(*body, issuer.jwks_url)
                       : Result<auth::KeySet>(body.error());
      if (!keys) {
        std::fprintf(stderr,
                     "kbgap: cannot get the keys of issuer %s: %s (its tokens are refused)\n",
                     issuer.issuer.c_str(), keys.error().message.c_str());
        all = false;
        continue;
      }
      verifier_.set_keys(issuer.issuer, std::make_shared<auth::KeySet>(std::move(*keys)));
    }
    return all;
  }
  void start(bool ok) {
    if (issuers_.empty()) return;
    thread_ = std::thread([this, ok]() mutable {
      std::unique_lock lock(mutex_);
      while (!stopping_) {
        if (wake_.wait_for(lock, ok ? std::chrono::seconds(3600) : std::chrono::seconds(30),
                           [&] { return stopping_; })) {
          break;
        }
        lock.unlock();
        ok = refresh();
        lock.lock();
      }
    });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  auth::Verifier verifier_;
  std::vector<server::IssuerConfig> issuers_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

// What the server says of its catalog's freshness: on stderr, and in /readyz and /metrics.
void publish_freshness(server::Service& service,
                       const std::vector<catalog::StoredDocument>& documents, bool log) {
  const catalog::Freshness fresh = catalog::freshness(documents);
  const auto warning = fresh.stale_warning(utc_now().substr(0, 10));
  service.update_catalog_status([&](server::CatalogStatus& s) { s.freshness = fresh; });
  if (!log) return;
  std::fprintf(stderr, "kbgap: %s\n", fresh.summary().c_str());
  if (warning) std::fprintf(stderr, "kbgap: warning: %s\n", warning->c_str());
}

// Keeps the catalog current while serving ([catalog] sync_interval): a sync at start and then
// every interval, on its own thread and its own database connection. A sync that changed months
// rebuilds the index and evaluates the fleet again off the I/O threads; reads go on from the
// snapshot they have until the new one replaces it. A failed sync keeps the catalog as it was
// and says so in the log, /readyz and /metrics.
class CatalogSyncer {
 public:
  CatalogSyncer(server::Service& service, std::string data_dir, server::CatalogConfig config,
                std::string served_fingerprint)
      : service_(service),
        data_dir_(std::move(data_dir)),
        config_(std::move(config)),
        served_fingerprint_(std::move(served_fingerprint)) {}
  ~CatalogSyncer() { stop(); }

  void start() {
    if (config_.sync_interval.count() == 0) return;
    thread_ = std::thread([this] {
      std::unique_lock lock(mutex_);
      while (!stopping_) {
        lock.unlock();
        sync_once();
        lock.lock();
        if (wake_.wait_for(lock, config_.sync_interval, [&] { return stopping_; })) break;
      }
    });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cancel_ = true;  // a sync under way ends at its next progress report (the month rolls back)
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void sync_once() {
    const bool first_sync = std::exchange(first_sync_, false);
    catalog::SyncOptions options;
    options.fetch.cancel = &cancel_;
    if (!config_.source.empty()) options.source = config_.source;
    options.fetch.ca_file = config_.ca_file;
    const std::string source = net::url_for_messages(options.source);  // no credentials in logs
    const auto start = std::chrono::steady_clock::now();
    auto store = open_catalog_store(data_dir_);
    auto summary = store ? catalog::sync_catalog(**store, options)
                         : Result<catalog::SyncSummary>(store.error());
    const auto changed = static_cast<std::int64_t>(summary ? summary->changed() : 0);
    // Serve what the store holds, whatever this sync did: the months a failed sync committed
    // before its failure, and what another process imported, count as much as a clean sync's.
    std::string reload_error, evaluated;
    if (store) {
      auto documents = (*store)->documents();
      if (!documents) {
        reload_error = documents.error().message;
      } else if (const std::string fingerprint = catalog_fingerprint(*documents);
                 fingerprint != served_fingerprint_) {
        auto index = load_catalog_index(data_dir_);
        const auto evaluating = std::chrono::steady_clock::now();
        auto replaced = index ? service_.replace_catalog(
                                    std::make_shared<const engine::CatalogIndex>(std::move(*index)))
                              : Result<std::shared_ptr<const server::TenantViews>>(index.error());
        if (!replaced) {
          reload_error = replaced.error().message;
        } else {
          served_fingerprint_ = fingerprint;
          const std::chrono::duration<double> took = std::chrono::steady_clock::now() - evaluating;
          // The snapshots this catalog change built (a write may have reloaded since).
          const std::size_t devices = (*replaced)->devices();
          std::size_t kept = 0;
          for (const auto& [tenant, view] : (*replaced)->views) {
            kept += view->result().reused_devices();
          }
          evaluated = fmt::format(
              "; {} of the fleet's {} devices evaluated again (the others' products are "
              "untouched), in {:.2f} s (the change log is recorded after)",
              devices - kept, devices, took.count());
          publish_freshness(service_, *documents, true);
        }
      }
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (!summary) {
      std::fprintf(stderr, "kbgap: catalog sync from %s failed: %s%s\n", source.c_str(),
                   summary.error().message.c_str(),
                   evaluated.empty() ? " (serving the catalog as it was)"
                                     : " (serving the months it imported before)");
    } else {
      std::fprintf(stderr, "kbgap: catalog sync from %s: %zu months listed, %lld changed; %.1f s\n",
                   source.c_str(), summary->listed, static_cast<long long>(changed),
                   elapsed.count());
    }
    if (!evaluated.empty())
      std::fprintf(stderr, "kbgap: new catalog served%s\n", evaluated.c_str());
    if (!reload_error.empty()) {
      std::fprintf(stderr,
                   "kbgap: the catalog changed but could not be loaded: %s (serving the catalog "
                   "as it was)\n",
                   reload_error.c_str());
    }
    const std::string error =
        !summary
            ? summary.error().message
            : (reload_error.empty() ? "" : "the new catalog could not be loaded: " + reload_error);
    service_.update_catalog_status([&](server::CatalogStatus& s) {
      s.last_sync = utc_now();
      s.last_sync_error = error;
      ++(error.empty() ? s.syncs_ok : s.syncs_failed);
      s.months_changed += changed;
      // The log says a stale catalog at every sync after the first (`serve` said it at start).
      if (evaluated.empty() && !first_sync) {
        if (auto warning = s.freshness.stale_warning(utc_now().substr(0, 10))) {
          std::fprintf(stderr, "kbgap: warning: %s\n", warning->c_str());
        }
      }
    });
  }

  server::Service& service_;
  std::string data_dir_;
  server::CatalogConfig config_;
  std::string served_fingerprint_;  // of the catalog the service serves
  bool first_sync_ = true;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};
};

}  // namespace

int run_serve(const ServeOptions& options) {
  // A fixed mmap threshold turns off glibc's sliding thresholds. By default, freeing a large
  // mapped block (a request body, a snapshot's array) raises the threshold to that size and the
  // trim threshold to twice it, so each thread's heap keeps ever more freed memory at its top and
  // the resident size creeps up under steady writes. Fixed at 32 MiB (where the sliding threshold
  // stops anyway), large responses still come from the heaps, and freed tops over 128 KiB go back.
  // Measured with bench/soak.sh (RSS 64 MiB and rising before, 47 MiB flat after) and on 2.2 MB
  // answers (same speed): docs/security.md, "Load and soak".
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  const auto env = server::kbgap_environment();
  std::string config_path = options.config;
  if (config_path.empty()) {
    if (auto it = env.find("KBGAP_CONFIG"); it != env.end()) config_path = it->second;
  }
  auto config = server::load_config(config_path, env);
  if (!config) return report(config.error());
  if (!options.listen.empty() && !server::set_listen(config->http, options.listen)) {
    std::fprintf(stderr, "kbgap: --listen must be ADDRESS:PORT, not '%s'\n",
                 options.listen.c_str());
    return kExitUsage;
  }
  if (options.threads >= 0) config->http.threads = static_cast<unsigned>(options.threads);
  if (auto checked = check_storage_url(config->storage.url); !checked) {
    return report(checked.error());
  }
  set_storage_url(config->storage.url);
  if (options.quiet) config->http.access_log = false;

  std::vector<catalog::StoredDocument> documents;
  auto catalog = load_catalog_index(options.data_dir, &documents);
  if (!catalog) return report(catalog.error());
  auto devices = open_device_store(options.data_dir);
  if (!devices) return report(devices.error());

  std::vector<auth::Issuer> issuers;
  if (config->self_issuer) {
    auto key = auth::SigningKey::load_or_create(signing_key_path(options.data_dir));
    if (!key) return report(key.error());
    auto keys = auth::KeySet::from_jwks(key->jwks(), "kbgap's own key");
    if (!keys) return report(keys.error());
    // Its tokens name their tenant (kbgap token --tenant): whoever holds the key runs kbgap.
    issuers.push_back(
        {kSelfIssuer, config->audiences, std::make_shared<auth::KeySet>(std::move(*keys)), ""});
  }
  std::vector<server::IssuerConfig> fetched;
  for (const server::IssuerConfig& i : config->issuers) {
    std::shared_ptr<const auth::KeySet> keys;
    if (!i.jwks_file.empty()) {
      auto text = read_file_limited(i.jwks_file, 1 << 20, "a JWKS document");
      if (!text) return report(text.error());
      auto set = auth::KeySet::from_jwks(*text, i.jwks_file);
      if (!set) return report(set.error());
      keys = std::make_shared<auth::KeySet>(std::move(*set));
    } else {
      fetched.push_back(i);
    }
    issuers.push_back({i.issuer, i.audiences, keys, i.tenant});
  }
  if (issuers.empty()) {
    std::fprintf(stderr, "kbgap: no token issuer: set auth.self_issuer or add [[auth.issuers]]\n");
    return kExitUsage;
  }
  auth::Verifier verifier(std::move(issuers), config->api.leeway_seconds);
  KeyRefresher refresher(verifier, fetched);
  refresher.start(refresher.refresh());

  server::Service service(std::make_shared<const engine::CatalogIndex>(std::move(*catalog)),
                          std::move(*devices), config->http.threads);
  auto views = service.views();
  if (!views) return report(views.error());
  publish_freshness(service, documents, true);
  CatalogSyncer syncer(service, options.data_dir, config->catalog, catalog_fingerprint(documents));
  server::Api api(service, verifier, config->api);
  // On a shared database the rate limits are counted across servers (docs/scaling.md).
  std::unique_ptr<store::SharedCounters> counters;
  if (!config->storage.url.empty()) {
    auto opened = store::postgres::PgSharedCounters::open(config->storage.url);
    if (!opened) return report(opened.error());
    counters = std::move(*opened);
  }
  std::mutex exchange_mutex;
  std::condition_variable_any exchange_due;
  bool exchange_now = false;  // under exchange_mutex
  std::jthread exchanger;     // last: stopped and joined before what it uses goes
  if (counters) {
    api.set_exchange_wakeup([&] {
      {
        std::lock_guard lock(exchange_mutex);
        exchange_now = true;
      }
      exchange_due.notify_one();
    });
    exchanger = std::jthread([&](std::stop_token stop) {
      bool failing = false;
      while (!stop.stop_requested()) {
        auto exchanged = api.exchange_rate_counts(*counters);
        if (!exchanged && !failing) {
          std::fprintf(stderr,
                       "kbgap: rate limits are counted by this server alone until the database "
                       "answers again: %s\n",
                       exchanged.error().message.c_str());
        }
        failing = !exchanged;
        // Every 200 ms, or at once when an application nears a limit.
        // At most one exchange each 20 ms however many calls ask for one.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::unique_lock lock(exchange_mutex);
        exchange_due.wait_for(lock, stop, std::chrono::milliseconds(180),
                              [&] { return exchange_now; });
        exchange_now = false;
      }
    });
  }
  server::HttpServer server(api, config->http);
  if (auto started = server.start(); !started) return report(started.error());
  if (!options.port_file.empty()) {
    std::ofstream(options.port_file + ".tmp") << server.port() << "\n";
    std::filesystem::rename(options.port_file + ".tmp", options.port_file);
  }
  std::fprintf(
      stderr, "kbgap: serving %zu devices of %zu tenants on http://%s:%u (stop with Ctrl-C)\n",
      (*views)->devices(), (*views)->views.size(), config->http.address.c_str(), server.port());
  syncer.start();
  server.run();
  if (exchanger.joinable()) {
    exchanger.request_stop();
    exchanger.join();
  }
  syncer.stop();
  refresher.stop();
  std::fprintf(stderr, "kbgap: stopped\n");
  return kExitOk;
}

}  // namespace kbgap::app
