// The endpoints of docs/api.md §2-3 over a fleet snapshot, behind docs/api.md §5's tokens.
#include "server/api.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cassert>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "api/defender_dto.h"
#include "api/metadata.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/gzip.h"
#include "common/text.h"
#include "common/utf8.h"
#include "engine/evaluate.h"
#include "inventory/json_inventory.h"
#include "server/odata.h"

namespace kbgap::server {
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxMachinesTop = 10000;
constexpr std::size_t kMaxVulnerabilitiesTop = 8000;
constexpr std::size_t kMaxMachinesVulnerabilitiesTop = 10000;  // Defender's documented maximum
constexpr std::size_t kMaxTokenCache = 10000;
// A read's limits (docs/security.md, "Limits"): collections render only their page; a scan that
// must look at items beyond it (a $filter, a $count of a filtered collection, the devices of one
// CVE) runs on a worker when the collection is large, and stops after kMaxScan items, the page
// then ending early with a nextLink that goes on where it stopped. A page's body stops growing
// at kMaxPageBytes (a nextLink carries on).
constexpr std::size_t kIoThreadScan = 20000;
constexpr std::size_t kMaxScan = 2000000;
constexpr std::size_t kMaxPageBytes = 32 * 1024 * 1024;
constexpr std::size_t kMaxOrderBy = 200000;  // items $orderby sorts (every page sorts them again)
constexpr std::size_t kMaxTagLength = 200;   // characters of a machine tag set by the API

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void error(Response& r, int status, std::string_view code, std::string_view message) {
  r.status = status;
  r.content_type = "application/json; charset=utf-8";
  // Messages quote the request (an id, a $filter): its bytes need not be UTF-8.
  r.body = json::serialize(json::object{{"error", json::object{{"code", code},
                                                               {"message", valid_utf8(message)},
                                                               {"target", r.correlation_id}}}});
}

// The Host header when it is a host name or address with an optional port, else localhost: it
// goes into @odata.context and @odata.nextLink, which must stay well-formed URLs and JSON.
std::string_view host_or_localhost(std::string_view host) {
  const bool plain =
      !host.empty() && host.size() <= 262 && std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
               c == ':' || c == '[' || c == ']';
      });
  return plain ? host : "localhost";
}

// A 500: never internals in the body, but the cause in the server's log under the correlation id.
Response& internal_error(Response& r, std::string cause) {
  error(r, 500, "InternalServerError",
        "An internal error occurred; quote the correlation id in target");
  r.problem = std::move(cause);
  return r;
}

// The database down or restarting: 503 with Retry-After (clients retry; reads of the last
// snapshot go on meanwhile). Any other storage failure is a 500.
Response& storage_fault(Response& r, const Error& e) {
  if (e.code == ErrorCode::kUnavailable) {
    error(r, 503, "ServiceUnavailable",
          "The database is unavailable; try again shortly (a write may have to be sent again)");
    r.headers.emplace_back("Retry-After", "5");
    r.problem = fmt::format("storage: {}", e.message);
    return r;
  }
  return internal_error(r, fmt::format("storage: {}", e.message));
}

// The exports are what the delta export's change log is the difference of: each answers from a
// snapshot whose changes, and those of every snapshot before it, are recorded
// (Service::wait_changes_recorded), waiting at most this long on a worker for the recorder.
constexpr std::chrono::seconds kChangeLogWait{2};

void not_found(Response& r, std::string_view what) {
  error(r, 404, "ResourceNotFound", what);
}

std::optional<RequestTarget> split_target(std::string_view target) {
  RequestTarget t;
  const auto q = target.find('?');
  if (q != std::string_view::npos) {
    t.query = std::string(target.substr(q + 1));
    target = target.substr(0, q);
  }
  std::size_t pos = 0;
  while (pos < target.size()) {
    while (pos < target.size() && target[pos] == '/') ++pos;
    const auto end = target.find('/', pos);
    const auto seg = target.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (!seg.empty()) {
      auto decoded = odata::url_decode(seg, false);
      if (!decoded) return std::nullopt;
      t.segments.push_back(std::move(*decoded));
    }
    if (end == std::string_view::npos) break;
    pos = end;
  }
  if (!t.segments.empty() && t.segments[0] == "api") {
    t.api = true;
    t.segments.erase(t.segments.begin());
    if (!t.segments.empty() && t.segments[0] == "v1.0") t.segments.erase(t.segments.begin());
  }
  return t;
}

// A device id (40 hex) or a computer DNS name: letters, digits, '-', '_' and '.'.
bool valid_machine_id(std::string_view id) {
  return !id.empty() && id.size() <= 255 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool valid_cve_id(std::string_view id) {
  return id.size() >= 9 && id.size() <= 20 && (id.starts_with("CVE-") || id.starts_with("ADV")) &&
         std::all_of(id.begin() + 3, id.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c)) || c == '-';
         });
}

// The catalog's freshness and syncs, and the change log's counts, in Prometheus' text format.
std::string catalog_metrics(const CatalogStatus& s, const Service::ChangeLogStatus& log) {
  std::string out;
  const std::string today = utc_now().substr(0, 10);
  const std::int64_t age = s.freshness.age_days(today).value_or(-1);
  const bool stale = s.freshness.stale_warning(today).has_value();
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    std::initializer_list<std::pair<std::string_view, std::int64_t>> values) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& [labels, value] : values) out += fmt::format("{}{} {}\n", name, labels, value);
  };
  metric("kbgap_catalog_age_days", "gauge",
         "Days since the catalog's newest complete Patch Tuesday.", {{"", age}});
  metric("kbgap_catalog_stale", "gauge",
         "1 when the newest complete month is more than 45 days old.", {{"", stale ? 1 : 0}});
  metric("kbgap_catalog_syncs_total", "counter", "Catalog syncs by result.",
         {{"{result=\"ok\"}", s.syncs_ok}, {"{result=\"failed\"}", s.syncs_failed}});
  metric("kbgap_catalog_months_changed_total", "counter", "Months a sync added or replaced.",
         {{"", s.months_changed}});
  metric("kbgap_catalog_last_sync_failed", "gauge", "1 when the last sync failed.",
         {{"", s.last_sync_error.empty() ? 0 : 1}});
  metric("kbgap_change_log_rows_total", "counter",
         "Changes of devices' vulnerability rows recorded for the delta export.",
         {{"", log.recorded}});
  metric("kbgap_change_log_failures_total", "counter",
         "Snapshots whose changes could not all be recorded.", {{"", log.failed}});
  return out;
}

std::string encode_query_value(std::string_view v) {
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '$') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace

namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `n` random bytes from OpenSSL (secret: the export links' key and export ids).
std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("OpenSSL has no random bytes");
  }
  return out;
}

std::string random_hex(std::size_t n) {
  std::string out;
  for (unsigned char c : random_bytes(n)) out += fmt::format("{:02x}", c);
  return out;
}

}  // namespace

std::string new_correlation_id() {
  // A per-thread generator seeded from OpenSSL: ids need to be unique, not secret.
  thread_local std::mt19937_64 random = [] {
    std::uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1) {
      seed =
          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    return std::mt19937_64(seed);
  }();
  unsigned char b[16];
  const std::uint64_t hi = random(), lo = random();
  std::memcpy(b, &hi, 8);
  std::memcpy(b + 8, &lo, 8);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:"
      "02x}{:02x}",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
      b[15]);
}

Api::Api(Service& service, auth::Verifier verifier, ApiOptions options)
    : service_(service),
      verifier_(std::move(verifier)),
      options_(std::move(options)),
      export_key_(random_bytes(32)) {}

std::optional<auth::Claims> Api::authenticate(const Request& request, Response& response) {
  std::string_view header = request.authorization;
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() ||
      to_lower(header.substr(0, kBearer.size())) != to_lower(kBearer)) {
    error(response, 401, "Unauthorized", "Authorization header with a Bearer token is required");
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return std::nullopt;
  }
  const std::string token(header.substr(kBearer.size()));
  const std::int64_t now = now_seconds();
  {
    std::shared_lock lock(tokens_mutex_);
    if (auto it = tokens_.find(token);
        it != tokens_.end() && now <= it->second.expires + options_.leeway_seconds) {
      return it->second;
    }
  }
  auto verified = verifier_.verify(token, now);
  if (std::holds_alternative<auth::TokenFailure>(verified)) {
    error(response, 401, "Unauthorized",
          auth::failure_message(std::get<auth::TokenFailure>(verified)));
    response.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return std::nullopt;
  }
  auth::Claims claims = std::get<auth::Claims>(std::move(verified));
  // The tenant whose devices it reads and writes (docs/api.md, "Tenants"): its `tid`; without
  // one, the default tenant.
  if (claims.tenant.empty()) claims.tenant = std::string(inventory::kDefaultTenant);
  if (!inventory::valid_tenant(claims.tenant)) {
    error(response, 401, "Unauthorized",
          fmt::format("The token's tid is not a tenant name ({})", inventory::kTenantRule));
    response.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return std::nullopt;
  }
  std::unique_lock lock(tokens_mutex_);
  if (tokens_.size() >= kMaxTokenCache) tokens_.clear();
  tokens_.insert_or_assign(token, claims);
  return claims;
}

bool Api::rate_limited(const std::string& app, const std::string& group, const RateLimit& limit,
                       Response& response) {
  if (limit.per_minute <= 0 && limit.per_hour <= 0) return false;
  const std::int64_t now = now_seconds();
  std::lock_guard lock(limits_mutex_);
  Window& w = windows_[app + "\n" + group];
  if (w.minute != now / 60) {
    w.minute = now / 60;
    w.in_minute = w.synced_minute = 0;
    w.others_minute = 0;
  }
  if (w.hour != now / 3600) {
    w.hour = now / 3600;
    w.in_hour = w.synced_hour = 0;
    w.others_hour = 0;
  }
  std::int64_t retry = 0;
  if (limit.per_minute > 0 && w.in_minute + w.others_minute >= limit.per_minute) {
    retry = 60 - now % 60;
  }
  if (limit.per_hour > 0 && w.in_hour + w.others_hour >= limit.per_hour) retry = 3600 - now % 3600;
  if (retry > 0) {
    error(response, 429, "TooManyRequests",
          fmt::format("Rate limit is exceeded. Try again in {} seconds.", retry));
    response.headers.emplace_back("Retry-After", std::to_string(retry));
    return true;
  }
  ++w.in_minute;
  ++w.in_hour;
  response.counted_as = app + "\n" + group;
  // Past half a limit, counts go to the other servers at once (exchange_rate_counts).
  if (exchange_wakeup_ &&
      ((limit.per_minute > 0 && 2 * (w.in_minute + w.others_minute) >= limit.per_minute) ||
       (limit.per_hour > 0 && 2 * (w.in_hour + w.others_hour) >= limit.per_hour))) {
    exchange_wakeup_();
  }
  return false;
}

void Api::refund(const std::string& key) {
  std::lock_guard lock(limits_mutex_);
  if (auto it = windows_.find(key); it != windows_.end()) {
    if (it->second.in_minute > 0) --it->second.in_minute;
    if (it->second.in_hour > 0) --it->second.in_hour;
  }
}

Result<void> Api::exchange_rate_counts(store::SharedCounters& counters) {
  // What is sent: per window, the calls counted here since the last exchange; and what this
  // server's own count was then, to take from the total.
  struct Sent {
    std::string key;
    bool hour;
    std::int64_t window;
    int own;
    int delta;
  };
  std::vector<Sent> sent;
  std::vector<store::SharedCounters::Add> adds;
  {
    std::lock_guard lock(limits_mutex_);
    const std::int64_t now = now_seconds();
    for (auto& [key, w] : windows_) {
      if (w.minute == now / 60) {
        sent.push_back({key, false, w.minute, w.in_minute, w.in_minute - w.synced_minute});
        w.synced_minute = w.in_minute;
      }
      if (w.hour == now / 3600) {
        sent.push_back({key, true, w.hour, w.in_hour, w.in_hour - w.synced_hour});
        w.synced_hour = w.in_hour;
      }
    }
  }
  adds.reserve(sent.size());
  for (const Sent& s : sent) {
    const std::int64_t length = s.hour ? 3600 : 60;
    adds.push_back({fmt::format("{}\n{}{}", s.key, s.hour ? 'h' : 'm', s.window), s.delta,
                    (s.window + 1) * length + 60});
  }
  auto totals = counters.add(adds);
  std::lock_guard lock(limits_mutex_);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const Sent& s = sent[i];
    auto it = windows_.find(s.key);
    if (it == windows_.end()) continue;
    Window& w = it->second;
    if ((s.hour ? w.hour : w.minute) != s.window) continue;  // a new window since
    if (!totals) {
      // Not counted anywhere: sent again next time. The others' counts stay as last learnt.
      (s.hour ? w.synced_hour : w.synced_minute) -= s.delta;
      continue;
    }
    const std::int64_t others = std::max<std::int64_t>(0, (*totals)[i] - s.own);
    (s.hour ? w.others_hour : w.others_minute) = others;
  }
  if (!totals) return totals.error();
  return ok_result();
}

Response Api::handle(const Request& request, bool may_block) {
  Response response;
  response.correlation_id = new_correlation_id();
  if (!may_block && request.method != "GET" && request.method != "HEAD") {
    response.status = 0;  // writes wait for storage: on a worker
    return response;
  }
  try {
    Response out = route(request, response, may_block);
    // Handed to a worker, which answers it and counts it then: not counted twice.
    if (out.status == 0 && !out.counted_as.empty()) refund(out.counted_as);
    return out;
  } catch (const std::exception& e) {
    return internal_error(response, fmt::format("unexpected exception: {}", e.what()));
  }
}

// One request on its way through a route: what the handlers need.
struct Api::Context {
  const Request& request;
  Response& response;
  const RequestTarget& target;
  bool may_block;
  std::string base;                           // scheme and host of @odata.context, nextLink
  std::string tenant;                         // the token's: every route sees its devices only
  std::shared_ptr<const FleetView> snapshot;  // the tenant's, for the routes that read the fleet
  bool count_only = false;                    // .../$count: the collection's number alone
  bool counted = false;                       // a collection answered it
  std::string as_of;  // an export's: a time before its snapshot was taken (precise ISO 8601 UTC)
};

Response Api::route(const Request& request, Response& response, bool may_block) {
  auto target = split_target(request.target);
  if (!target) {
    error(response, 400, "BadRequest", "The request path has a bad %-escape");
    return response;
  }
  // ".../$count" of a collection: its number alone (OData), routed as the collection.
  const bool count_only =
      target->api && target->segments.size() >= 2 && target->segments.back() == "$count";
  if (count_only) target->segments.pop_back();
  const auto& seg = target->segments;
  const std::string& method = request.method;
  if (!target->api && seg.size() == 1 && (seg[0] == "healthz" || seg[0] == "readyz")) {
    response.route = "/" + seg[0];
    if (method != "GET" && method != "HEAD") {
      error(response, 405, "MethodNotAllowed", "Only GET is allowed here");
      response.headers.emplace_back("Allow", "GET, HEAD");
      return response;
    }
    if (seg[0] == "readyz" && !may_block) {  // it asks the database: on a worker
      response.status = 0;
      return response;
    }
    const bool ready = seg[0] == "healthz" || service_.ready();
    response.status = ready ? 200 : 503;
    response.content_type = "application/json; charset=utf-8";
    json::object body{{"status", ready ? "ok" : "unavailable"}};
    if (seg[0] == "readyz") {
      // The details: how current the answers are, and the last catalog sync. A stale catalog
      // or a failed sync is said here; the server still serves (the catalog it has).
      const CatalogStatus s = service_.catalog_status();
      const std::string today = utc_now().substr(0, 10);
      json::object catalog{{"coverage", s.freshness.summary()}};
      if (auto age = s.freshness.age_days(today)) catalog["newestCompleteMonthAgeDays"] = *age;
      if (auto warning = s.freshness.stale_warning(today)) catalog["warning"] = *warning;
      if (!s.last_sync.empty()) catalog["lastSync"] = s.last_sync;
      if (!s.last_sync_error.empty()) catalog["lastSyncError"] = s.last_sync_error;
      body["catalog"] = std::move(catalog);
    }
    response.body = json::serialize(body);
    return response;
  }

  const Route* route = nullptr;
  const Route* path = nullptr;            // the first route of this path, whatever its method
  std::vector<std::string_view> allowed;  // methods of the routes of this path
  for (const Route& r : routes()) {
    if (!r.matches(*target)) continue;
    if (!path) path = &r;
    if (std::find(allowed.begin(), allowed.end(), r.method) == allowed.end()) {
      allowed.push_back(r.method);
    }
    const bool same = r.method == method || (r.method == "GET" && method == "HEAD");
    if (same && !route) route = &r;
  }
  // An export file's link carries its own permission (a signature), not a token.
  if (target->api && !seg.empty() && to_lower(seg[0]) == "exportfiles" &&
      (method == "GET" || method == "HEAD")) {
    return export_file(request, *target, response, may_block);
  }
  // Who asks comes first: without a valid token, no route is told apart from another (an
  // unknown path is a 401 too, so the routes cannot be listed anonymously).
  auto claims = authenticate(request, response);
  if (!claims) return response;
  response.app = claims->app;
  if (allowed.empty()) {
    error(response, 404, "ResourceNotFound",
          fmt::format("No such endpoint: {} {}", method, request.target.substr(0, 200)));
    return response;
  }
  if (!route) {
    response.route = std::string(path->pattern);
    error(response, 405, "MethodNotAllowed", fmt::format("{} is not allowed here", method));
    std::string allow;
    for (std::string_view m : allowed) {
      allow += allow.empty() ? "" : ", ";
      allow += m;
      if (m == "GET") allow += ", HEAD";
    }
    response.headers.emplace_back("Allow", allow);
    return response;
  }
  response.route = std::string(route->pattern) + (count_only ? "/$count" : "");
  if (count_only && (route->method != "GET" || route->handler == &Api::export_files)) {
    error(response, 404, "ResourceNotFound",
          fmt::format("No such endpoint: {} {}", method, request.target.substr(0, 200)));
    return response;
  }

  // Reads answer from the current fleet snapshot. On an I/O thread, a snapshot that must be
  // reloaded first sends the request to a worker, before anything is counted against it. An
  // export answers from a snapshot whose changes are in the change log (one that must wait for
  // them waits on a worker), and its time is taken before that snapshot, so that every later
  // change is stamped after it.
  Context ctx{request, response, *target, may_block, {}, claims->tenant, {}, count_only, false, {}};
  const bool exports = route->group == Group::kExports || route->group == Group::kExportFiles;
  if (exports) ctx.as_of = utc_time_precise(std::chrono::system_clock::now());
  bool recorded = false;  // the snapshot taken here is current (and, for an export, recorded)
  if (route->needs != Needs::kNothing) {
    auto current = service_.current_views();
    if (!current) return storage_fault(response, current.error());
    recorded = *current && (!exports || service_.changes_recorded((*current)->serial));
    if (recorded) ctx.snapshot = (*current)->of(ctx.tenant);
    if (!ctx.snapshot && !may_block) {
      response.status = 0;
      return response;
    }
  }

  const Permission& permission = route->permission;
  if (!permission.application.empty() &&
      !claims->allows(permission.application, permission.delegated) &&
      !claims->allows(permission.alternative, "")) {
    error(response, 403, "Forbidden",
          fmt::format("The application does not have any of the required application "
                      "permissions ({}) to access the resource.",
                      permission.application));
    return response;
  }
  if (exports && !recorded) {
    // Waited for before the call is counted: a client told to come back is not charged for it.
    auto all = service_.views();
    if (!all) return storage_fault(response, all.error());
    if (!service_.wait_changes_recorded((*all)->serial, kChangeLogWait)) {
      error(response, 503, "ServiceUnavailable",
            "The delta export's change log is still being recorded after a large change; try "
            "again shortly");
      response.headers.emplace_back("Retry-After", "5");
      return response;
    }
    ctx.snapshot = (*all)->of(ctx.tenant);
  }
  if (route->group != Group::kNone) {
    const auto& [limit, group] = rate_group(route->group);
    // Per application within its tenant, as Defender counts: one multi-tenant application's calls
    // for one customer do not use up another's budget.
    if (rate_limited(claims->tenant + "\n" + (claims->app.empty() ? claims->subject : claims->app),
                     std::string(group), limit, response)) {
      return response;
    }
  }
  if (route->handler == &Api::metrics) {  // Prometheus text, not OData
    (this->*route->handler)(ctx);
    return response;
  }

  const std::string scheme = request.scheme.empty() ? "http" : request.scheme;
  ctx.base = !options_.public_url.empty()
                 ? options_.public_url
                 : fmt::format("{}://{}", scheme, host_or_localhost(request.host));
  response.headers.emplace_back("OData-Version", "4.0");
  if (route->needs != Needs::kNothing) {
    if (!ctx.snapshot) {
      auto loaded = service_.view(ctx.tenant);
      if (!loaded) return storage_fault(response, loaded.error());
      ctx.snapshot = *loaded;
    }
  }
  (this->*route->handler)(ctx);
  // $count of what is not a collection (an entity, a missing-KB list): no such endpoint.
  if (count_only && !ctx.counted && response.status != 0 && response.status < 400) {
    response.headers.clear();
    error(response, 404, "ResourceNotFound",
          fmt::format("No such endpoint: {} {}", method, request.target.substr(0, 200)));
  }
  return response;
}

// ---- The routes (docs/api.md §2-3): one row each, matched in order. ----

namespace {

constexpr Permission kMachineRead{"Machine.Read.All", "Machine.Read", "Machine.ReadWrite.All"};
constexpr Permission kMachineWrite{"Machine.ReadWrite.All", "Machine.ReadWrite",
                                   "Machine.ReadWrite.All"};
constexpr Permission kSoftwareRead{"Software.Read.All", "Software.Read", "Software.Read.All"};
constexpr Permission kVulnerabilityRead{"Vulnerability.Read.All", "Vulnerability.Read",
                                        "Vulnerability.Read.All"};
constexpr Permission kAlertRead{"Alert.Read.All", "Alert.Read", "Alert.ReadWrite.All"};
constexpr Permission kRecommendationRead{"SecurityRecommendation.Read.All",
                                         "SecurityRecommendation.Read",
                                         "SecurityRecommendation.Read.All"};
constexpr Permission kAnyToken{"", "", ""};

}  // namespace

bool Api::Route::matches(const RequestTarget& target) const {
  std::string_view rest = pattern;
  const bool api = rest.starts_with("/api/");
  if (api) rest.remove_prefix(4);
  if (api != target.api) return false;
  std::size_t i = 0;
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    const std::string_view word = rest.substr(0, rest.find('/'));
    rest.remove_prefix(word.size());
    if (i >= target.segments.size()) return false;
    if (!word.starts_with('{') && to_lower(word) != to_lower(target.segments[i])) return false;
    ++i;
  }
  return i == target.segments.size();
}

const std::vector<Api::Route>& Api::routes() {
  // A literal word before a {parameter} in the same place: machinesVulnerabilities is not a CVE.
  static const std::vector<Route> kRoutes = {
      {"GET", "/api/machines/{id}/getmissingkbs", kSoftwareRead, Group::kMachines, Needs::kSnapshot,
       &Api::machine_missing_kbs},
      {"GET", "/api/machines", kMachineRead, Group::kMachines, Needs::kSnapshot, &Api::machines},
      {"GET", "/api/machines/SoftwareVulnerabilitiesByMachine", kVulnerabilityRead, Group::kExports,
       Needs::kSnapshot, &Api::software_vulnerabilities_by_machine},
      {"GET", "/api/machines/SoftwareInventoryByMachine", kSoftwareRead, Group::kExports,
       Needs::kSnapshot, &Api::software_inventory_by_machine},
      {"GET", "/api/machines/SoftwareVulnerabilityChangesByMachine", kVulnerabilityRead,
       Group::kExports, Needs::kSnapshot, &Api::software_vulnerability_changes_by_machine},
      {"GET", "/api/machines/SoftwareVulnerabilitiesExport", kVulnerabilityRead,
       Group::kExportFiles, Needs::kSnapshot, &Api::export_files},
      {"GET", "/api/machines/SoftwareInventoryExport", kSoftwareRead, Group::kExportFiles,
       Needs::kSnapshot, &Api::export_files},
      {"GET", "/api/machines/findbytag", kMachineRead, Group::kMachines, Needs::kSnapshot,
       &Api::machines_by_tag},
      {"GET", "/api/machines/{id}", kMachineRead, Group::kMachines, Needs::kSnapshot,
       &Api::machine_entity},
      {"GET", "/api/machines/{id}/alerts", kAlertRead, Group::kMachines, Needs::kSnapshot,
       &Api::alerts},
      {"GET", "/api/machines/{id}/recommendations", kRecommendationRead, Group::kMachines,
       Needs::kSnapshot, &Api::recommendations},
      {"GET", "/api/recommendations", kRecommendationRead, Group::kMachines, Needs::kSnapshot,
       &Api::recommendations},
      {"GET", "/api/recommendations/{id}", kRecommendationRead, Group::kMachines, Needs::kSnapshot,
       &Api::recommendation_entity},
      {"GET", "/api/recommendations/{id}/machineReferences", kRecommendationRead, Group::kMachines,
       Needs::kSnapshot, &Api::recommendation_machines},
      {"GET", "/api/recommendations/{id}/vulnerabilities", kRecommendationRead, Group::kMachines,
       Needs::kSnapshot, &Api::recommendation_vulnerabilities},
      {"GET", "/api/recommendations/{id}/software", kRecommendationRead, Group::kMachines,
       Needs::kSnapshot, &Api::recommendation_software},
      {"GET", "/api/alerts", kAlertRead, Group::kMachines, Needs::kNothing, &Api::alerts},
      {"GET", "/api/machines/{id}/software", kSoftwareRead, Group::kMachines, Needs::kSnapshot,
       &Api::machine_software},
      {"GET", "/api/machines/{id}/vulnerabilities", kVulnerabilityRead, Group::kVulnerabilities,
       Needs::kSnapshot, &Api::machine_vulnerabilities},
      {"GET", "/api/vulnerabilities", kVulnerabilityRead, Group::kVulnerabilities, Needs::kSnapshot,
       &Api::vulnerabilities},
      {"GET", "/api/vulnerabilities/machinesVulnerabilities", kVulnerabilityRead,
       Group::kVulnerabilities, Needs::kSnapshot, &Api::machines_vulnerabilities},
      {"GET", "/api/vulnerabilities/{id}", kVulnerabilityRead, Group::kVulnerabilities,
       Needs::kSnapshot, &Api::vulnerability},
      {"GET", "/api/vulnerabilities/{id}/machineReferences", kVulnerabilityRead,
       Group::kVulnerabilities, Needs::kSnapshot, &Api::vulnerability_machines},
      {"GET", "/api/Software", kSoftwareRead, Group::kSoftware, Needs::kSnapshot,
       &Api::software_list},
      {"GET", "/api/Software/{id}", kSoftwareRead, Group::kSoftware, Needs::kSnapshot,
       &Api::software_entity},
      {"GET", "/api/Software/{id}/getmissingkbs", kSoftwareRead, Group::kSoftware, Needs::kSnapshot,
       &Api::software_missing_kbs},
      {"GET", "/api/Software/{id}/vulnerabilities", kVulnerabilityRead, Group::kSoftware,
       Needs::kSnapshot, &Api::software_vulnerabilities},
      {"GET", "/api/Software/{id}/machineReferences", kSoftwareRead, Group::kSoftware,
       Needs::kSnapshot, &Api::software_machines},
      {"GET", "/api/Software/{id}/distributions", kSoftwareRead, Group::kSoftware, Needs::kSnapshot,
       &Api::software_distributions},
      {"POST", "/api/kbgap/devices", kMachineWrite, Group::kMachines, Needs::kNothing,
       &Api::put_devices},
      {"DELETE", "/api/kbgap/devices/{id}", kMachineWrite, Group::kMachines, Needs::kNothing,
       &Api::delete_device},
      {"POST", "/api/machines/{id}/tags", kMachineWrite, Group::kMachines, Needs::kSnapshot,
       &Api::machine_tags},
      {"GET", "/metrics", kAnyToken, Group::kNone, Needs::kNothing, &Api::metrics},
      {"GET", "/api/$metadata", kAnyToken, Group::kNone, Needs::kSnapshot, &Api::metadata},
  };
  return kRoutes;
}

std::pair<const RateLimit&, std::string_view> Api::rate_group(Group group) const {
  switch (group) {
    case Group::kVulnerabilities:
      return {options_.vulnerabilities, "vulnerabilities"};
    case Group::kSoftware:
      return {options_.software, "software"};
    case Group::kExports:
      return {options_.exports, "exports"};
    case Group::kExportFiles:
      return {options_.export_files, "export_files"};
    default:
      return {options_.machines, "machines"};
  }
}

// ---- Handlers ----

void Api::metrics(Context& ctx) {
  ctx.response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  ctx.response.body = (metrics_ ? metrics_() : "") +
                      catalog_metrics(service_.catalog_status(), service_.change_log_status());
}

void Api::put_devices(Context& ctx) {
  Response& response = ctx.response;
  if (ctx.request.body.empty()) {
    error(response, 400, "InvalidInput", "The body must be devices in kbgap JSON");
    return;
  }
  auto read = inventory::parse_kbgap_json(ctx.request.body, "body");
  if (!read) {
    error(response, 400, "InvalidInput", read.error().message);
    return;
  }
  if (read->size() > options_.max_batch_devices) {
    error(response, 413, "RequestEntityTooLarge",
          fmt::format("A batch holds at most {} devices; this one has {}",
                      options_.max_batch_devices, read->size()));
    return;
  }
  std::vector<inventory::Device> devices;
  for (auto& inv : *read) devices.push_back(std::move(inv.device));
  const auto catalog = service_.catalog();
  for (std::size_t i = 0; i < devices.size(); ++i) {
    inventory::Device known = devices[i];
    if (!engine::learn_release(*catalog, known)) {
      error(response, 400, "InvalidInput",
            fmt::format("body[{}].osBuild: unknown Windows build {}: neither kbgap's table of "
                        "releases nor the catalog's fixed builds know it",
                        i, inventory::os_build_string(devices[i])));
      return;
    }
  }
  auto written = service_.put_devices(ctx.tenant, std::move(devices));
  if (!written && written.error().code == ErrorCode::kInvalidInput) {
    error(response, 400, "InvalidInput", written.error().message);
    return;
  }
  if (!written) {
    storage_fault(response, written.error());
    return;
  }
  response.body =
      json::serialize(json::object{{"created", static_cast<std::int64_t>(written->created)},
                                   {"replaced", static_cast<std::int64_t>(written->replaced)},
                                   {"fleetVersion", written->version}});
}

// POST /api/machines/{id}/tags {"Value": "prod", "Action": "Add"} (or "Remove"): the machine
// with its tags changed, stored as a write of the device (its times kept).
void Api::machine_tags(Context& ctx) {
  Response& response = ctx.response;
  auto i = machine(ctx);
  if (!i) return;
  boost::system::error_code ec;
  const json::value body = json::parse(ctx.request.body, ec);
  const json::object* o = !ec ? body.if_object() : nullptr;
  auto text = [&](std::string_view key) -> std::string {
    if (!o) return "";
    for (const auto& kv : *o) {  // Defender's names, in any case
      if (to_lower(kv.key()) == key && kv.value().is_string())
        return std::string(kv.value().as_string());
    }
    return "";
  };
  const std::string value = text("value"), action = to_lower(text("action"));
  if (value.empty() || value.size() > kMaxTagLength || (action != "add" && action != "remove")) {
    error(response, 400, "InvalidInput",
          fmt::format("The body must be {{\"Value\": \"<tag, 1 to {} characters>\", \"Action\": "
                      "\"Add\" or \"Remove\"}}",
                      kMaxTagLength));
    return;
  }
  auto same = [&](const std::string& t) { return to_lower(t) == to_lower(value); };
  const std::string id = ctx.snapshot->devices()[*i].id;
  auto changed = service_.change_device(ctx.tenant, id, [&](inventory::Device& d) {
    if (action == "add") {
      if (std::none_of(d.tags.begin(), d.tags.end(), same)) d.tags.push_back(value);
    } else {
      std::erase_if(d.tags, same);
    }
  });
  if (!changed) {
    storage_fault(response, changed.error());
    return;
  }
  auto view = service_.view(ctx.tenant);
  if (!view) {
    storage_fault(response, view.error());
    return;
  }
  auto now = *changed ? (*view)->find(id) : std::nullopt;
  if (!now) {  // removed meanwhile
    not_found(response, fmt::format("Machine {} was not found", id));
    return;
  }
  ctx.snapshot = *view;
  entity(ctx, "Machines", machine_json(**view, *now));
}

void Api::delete_device(Context& ctx) {
  Response& response = ctx.response;
  const std::string& id = ctx.target.segments[2];
  if (!valid_machine_id(id)) {
    error(response, 400, "InvalidInput", "Malformed device id");
    return;
  }
  auto removed = service_.remove_device(ctx.tenant, id);
  if (!removed) {
    storage_fault(response, removed.error());
    return;
  }
  if (!*removed) {
    not_found(response, fmt::format("Machine {} was not found", id));
    return;
  }
  response.status = 204;
  response.body.clear();
}

std::optional<std::uint32_t> Api::machine(Context& ctx) {
  const std::string& id = ctx.target.segments[1];
  if (!valid_machine_id(id)) {
    error(ctx.response, 400, "InvalidInput",
          fmt::format("Malformed machine id '{}'", id.substr(0, 80)));
    return std::nullopt;
  }
  auto i = ctx.snapshot->find(id);
  if (!i) not_found(ctx.response, fmt::format("Machine {} was not found", id));
  return i;
}

// A collection with OData options: filtered, counted, paged with @odata.nextLink.
void Api::collection(Context& ctx, std::string_view context, const std::vector<std::string>& fields,
                     std::size_t max_top, const Source& source, const ExportPaging* paging) {
  Response& response = ctx.response;
  auto query = odata::parse_query(ctx.target.query, paging ? paging->max_size : max_top, fields);
  if (!query) {
    error(response, 400, "ODataError", query.error().message);
    return;
  }
  if (paging && !query->top_given) {
    const std::size_t size = query->page_size.value_or(paging->default_size);
    if (size > paging->max_size) {
      error(response, 400, "ODataError",
            fmt::format("Invalid pageSize: {} is above this export's maximum of {}", size,
                        paging->max_size));
      return;
    }
    query->top = size;
    // pageIndex (1, 2, ...) counts pages of that size; a skip token goes on from where it says.
    if (query->page_index && !query->skiptoken) {
      const std::size_t pages = *query->page_index - 1;
      const std::size_t most = std::numeric_limits<std::size_t>::max();
      query->skip = pages > (most - query->skip) / size ? most : query->skip + pages * size;
    }
  }
  if (ctx.count_only) query->top = 0;  // the number alone: no page to render
  // $expand: only what the collection can expand (Defender: an alert's evidence).
  for (const std::string& name : query->expand) {
    if (std::none_of(source.expandable.begin(), source.expandable.end(),
                     [&](const std::string& e) { return to_lower(e) == to_lower(name); })) {
      error(response, 400, "ODataError",
            fmt::format("Invalid $expand: '{}' cannot be expanded on this collection", name));
      return;
    }
  }
  // $select names properties of the entity, whether or not the page holds one.
  if (auto checked = odata::project(source.shape, query->select); !checked) {
    error(response, 400, "ODataError", checked.error().message);
    return;
  }
  const bool scans = query->filter || !source.dense || query->skiptoken || !query->orderby.empty();
  if (scans && !ctx.may_block && source.domain > kIoThreadScan) {
    response.status = 0;  // long: on a worker
    return;
  }
  auto matches = [&](const std::optional<json::object>& o) {
    return o && (!query->filter || query->filter->matches(*o));
  };
  if (!query->orderby.empty() && source.domain > kMaxScan) {
    error(response, 400, "ODataError",
          fmt::format("$orderby is refused on a collection of {} items (more than {}): "
                      "narrow it with $filter",
                      source.domain, kMaxScan));
    return;
  }
  std::optional<std::size_t> count;
  if (query->count || ctx.count_only) {
    if (!query->filter) {
      count = source.members;
    } else {
      if (source.domain > kMaxScan) {
        error(response, 400, "ODataError",
              fmt::format("$count with a $filter is refused on a collection of {} items "
                          "(more than {}): leave $count out and follow @odata.nextLink",
                          source.domain, kMaxScan));
        return;
      }
      count = 0;
      for (std::size_t p = 0; p < source.domain; ++p) *count += matches(source.item(p)) ? 1 : 0;
    }
  }
  std::string value = "[";
  std::size_t page = 0;
  // Appends an item to the page, projected by $select; false when it fails.
  auto append = [&](const json::object& o) {
    if (page++ > 0) value += ',';
    if (query->select.empty()) {
      value += json::serialize(o);
      return true;
    }
    auto projected = odata::project(o, query->select);
    if (!projected) {
      error(response, 400, "ODataError", projected.error().message);
      return false;
    }
    value += json::serialize(*projected);
    return true;
  };
  bool more = false;
  std::string resume;  // where the next page starts, in the link: "&$skip=N" or "&$skiptoken=P"
  if (!query->orderby.empty()) {
    // Every matching item's sort keys, sorted (stable: ties keep the collection's order); the
    // page is rendered from its positions, and the next one starts $skip items further.
    struct Keyed {
      std::vector<json::value> keys;
      std::size_t position;
    };
    std::vector<Keyed> sorted;
    for (std::size_t p = 0; p < source.domain; ++p) {
      auto o = source.item(p);
      if (!matches(o)) continue;
      if (sorted.size() == kMaxOrderBy) {
        error(response, 400, "ODataError",
              fmt::format("$orderby sorts at most {} items; this query matches more: narrow it "
                          "with $filter",
                          kMaxOrderBy));
        return;
      }
      sorted.push_back({odata::order_keys(*o, query->orderby), p});
    }
    std::stable_sort(sorted.begin(), sorted.end(), [&](const Keyed& a, const Keyed& b) {
      return odata::order_before(a.keys, b.keys, query->orderby);
    });
    std::size_t next = std::min(query->skip, sorted.size());
    while (next < sorted.size() && page < query->top) {
      if (!paging && page > 0 && value.size() >= kMaxPageBytes) break;
      // An item read again may be gone (the delta export's log, forgotten meanwhile).
      if (auto o = source.item(sorted[next].position); o && !append(*o)) return;
      ++next;
    }
    more = next < sorted.size() && query->top > 0;
    resume = fmt::format("&$skip={}", next);
  } else {
    std::size_t scanned = 0, position = query->skiptoken.value_or(0);
    std::size_t to_skip = query->skip;
    if (source.dense && !query->filter) {
      // Saturating: past the end is past the end.
      position = position >= source.domain
                     ? source.domain
                     : std::min(source.domain, position + std::min(to_skip, source.domain));
      to_skip = 0;
    }
    while (position < source.domain && query->top > 0) {
      // An export page holds its pageSize rows whatever their bytes (pageIndex counts on it).
      if (page == query->top || (!paging && page > 0 && value.size() >= kMaxPageBytes) ||
          (scans && scanned >= kMaxScan)) {
        more = source.dense && !query->filter;  // an item stands at every position
        if (!more) {
          // Is there another item? Look without taking it (a bounded look).
          for (std::size_t p = position; p < source.domain && scanned < kMaxScan; ++p, ++scanned) {
            if (matches(source.item(p))) {
              position = p;
              more = true;
              break;
            }
          }
          if (scanned >= kMaxScan) more = true;
        }
        break;
      }
      auto o = source.item(position);
      ++scanned;
      if (!matches(o)) {
        ++position;
        continue;
      }
      ++position;
      if (to_skip > 0) {
        --to_skip;
        continue;
      }
      if (!append(*o)) return;
    }
    // A dense collection without a filter pages by $skip, as Defender does; others go on from
    // the position reached.
    if (source.dense && !query->filter && !query->skiptoken && !paging) {
      resume = fmt::format("&$skip={}", position);
    } else {
      resume = fmt::format("&$skiptoken={}", position);
      // A page that stopped at the scan limit may not have skipped all it was asked to.
      if (to_skip > 0) resume += fmt::format("&$skip={}", to_skip);
    }
  }
  value += ']';
  if (ctx.count_only) {  // .../$count: the number alone, as text
    response.content_type = "text/plain; charset=utf-8";
    response.body = std::to_string(count.value_or(0));
    ctx.counted = true;
    return;
  }
  // With $select, the context names the properties, as Defender writes it: Machines(id,osPlatform).
  std::string body = fmt::format(
      R"({{"@odata.context":{})",
      json::serialize(json::value(fmt::format("{}/api/$metadata#{}{}", ctx.base, context,
                                              odata::selected_properties(query->select)))));
  if (count) body += fmt::format(R"(,"@odata.count":{})", *count);
  body += R"(,"value":)";
  body += value;
  if (more && paging && query->top_given) more = false;  // $top: that many, no link
  if (more) {
    std::string path;
    for (const auto& s : ctx.target.segments) path += "/" + encode_query_value(s);
    std::string link = paging ? fmt::format("{}/api{}?pageSize={}", ctx.base, path, query->top)
                              : fmt::format("{}/api{}?$top={}", ctx.base, path, query->top);
    link += resume;
    if (paging) link += paging->carry;
    if (query->filter) link += "&$filter=" + encode_query_value(query->filter_text);
    if (!query->orderby.empty()) link += "&$orderby=" + encode_query_value(query->orderby_text);
    if (query->count) link += "&$count=true";
    if (!query->select.empty()) link += "&$select=" + encode_query_value(query->select_text);
    body += R"(,"@odata.nextLink":)" + json::serialize(json::value(link));
  }
  body += '}';
  response.body = std::move(body);
}

namespace {

json::object software_json(const std::string& name, const FleetFacts::Software& sw) {
  return api::software_dto(name, sw.cves.size(), sw.exposed, sw.public_exploit);
}

json::object vulnerability_of(const FleetView& view, engine::CveIndex cve, std::size_t exposed) {
  return api::vulnerability_dto(view.catalog().cves()[cve], exposed);
}

Api::Source dense(std::size_t n, std::function<std::optional<json::object>(std::size_t)> item,
                  json::object shape) {
  return Api::Source{n, n, true, std::move(item), std::move(shape)};
}

}  // namespace

// An entity: its fields after its @odata.context; with $select (the one option an entity takes),
// only those.
void Api::entity(Context& ctx, std::string_view set, const json::object& fields) {
  auto select = odata::entity_select(ctx.target.query);
  if (!select) {
    error(ctx.response, 400, "ODataError", select.error().message);
    return;
  }
  auto projected = odata::project(fields, *select);
  if (!projected) {
    error(ctx.response, 400, "ODataError", projected.error().message);
    return;
  }
  json::object body{{"@odata.context", fmt::format("{}/api/$metadata#{}{}/$entity", ctx.base, set,
                                                   odata::selected_properties(*select))}};
  for (auto& [k, v] : *projected) body[k] = std::move(v);
  ctx.response.body = json::serialize(body);
}

void Api::machine_missing_kbs(Context& ctx) {
  auto i = machine(ctx);
  if (!i) return;
  ctx.response.body = fmt::format(R"({{"@odata.context":{},"value":{}}})",
                                  json::serialize(json::value(api::missing_kbs_context(ctx.base))),
                                  *ctx.snapshot->missing_kbs_value(*i));
}

void Api::machine_entity(Context& ctx) {
  auto i = machine(ctx);
  if (!i) return;
  entity(ctx, "Machines", machine_json(*ctx.snapshot, *i));
}

json::object Api::machine_json(const FleetView& view, std::uint32_t device) const {
  const inventory::Device& d = view.devices()[device];
  return api::machine_dto(d, view.state_facts(device).exposure,
                          api::machine_group(options_.machine_groups, d));
}

void Api::machines(Context& ctx) {
  const FleetView& view = *ctx.snapshot;
  collection(ctx, "Machines", api::kMachineFields, kMaxMachinesTop,
             dense(
                 view.devices().size(),
                 [&](std::size_t i) { return machine_json(view, static_cast<std::uint32_t>(i)); },
                 api::machine_dto(inventory::Device{}, 0)));
}

void Api::machine_software(Context& ctx) {
  auto i = machine(ctx);
  if (!i) return;
  const FleetView& view = *ctx.snapshot;
  const auto& facts = view.facts();
  const auto& names = view.software_of(*i);
  collection(ctx, "Software", api::kSoftwareFields, kMaxMachinesTop,
             dense(
                 names.size(),
                 [&](std::size_t k) {
                   const auto& sw = facts.software.at(names[k]);
                   return software_json(names[k], sw);
                 },
                 api::software_dto("", 0, 0)));
}

void Api::machine_vulnerabilities(Context& ctx) {
  auto i = machine(ctx);
  if (!i) return;
  const FleetView& view = *ctx.snapshot;
  cve_collection(ctx, view.open_cves(*i));
}

// Vulnerabilities: these CVEs, each with the devices it is open on.
void Api::cve_collection(Context& ctx, const std::vector<engine::CveIndex>& cves) {
  const FleetView& view = *ctx.snapshot;
  const auto& facts = view.facts();
  collection(ctx, "Vulnerabilities", api::kVulnerabilityFields, kMaxVulnerabilitiesTop,
             dense(
                 cves.size(),
                 [&](std::size_t k) {
                   return vulnerability_of(view, cves[k], facts.devices_of_cve[cves[k]]);
                 },
                 api::vulnerability_dto(engine::CveInfo{}, 0)));
}

void Api::vulnerabilities(Context& ctx) {
  const FleetView& view = *ctx.snapshot;
  const auto& facts = view.facts();
  collection(ctx, "Vulnerabilities", api::kVulnerabilityFields, kMaxVulnerabilitiesTop,
             dense(
                 view.catalog().cves().size(),
                 [&](std::size_t k) {
                   const engine::CveIndex c{static_cast<std::uint32_t>(k)};
                   return vulnerability_of(view, c, facts.devices_of_cve[c]);
                 },
                 api::vulnerability_dto(engine::CveInfo{}, 0)));
}

std::optional<engine::CveIndex> Api::cve(Context& ctx) {
  const std::string& id = ctx.target.segments[1];
  if (!valid_cve_id(id)) {
    error(ctx.response, 400, "InvalidInput", "Malformed vulnerability id (CVE-YYYY-NNNN)");
    return std::nullopt;
  }
  auto c = ctx.snapshot->catalog().find_cve(id);
  if (!c) not_found(ctx.response, fmt::format("Vulnerability {} was not found", id));
  return c;
}

void Api::vulnerability(Context& ctx) {
  auto c = cve(ctx);
  if (!c) return;
  const FleetView& view = *ctx.snapshot;
  entity(ctx, "Vulnerabilities", vulnerability_of(view, *c, view.facts().devices_of_cve[*c]));
}

void Api::vulnerability_machines(Context& ctx) {
  auto c = cve(ctx);
  if (!c) return;
  const FleetView& view = *ctx.snapshot;
  // The devices in order, those on which the CVE is open.
  // Asked once per state: most devices share one with others.
  std::unordered_map<std::uint32_t, bool> open_in;
  machine_references(ctx, view.facts().devices_of_cve[*c], [&](std::uint32_t d) {
    const std::uint32_t state = view.result().state_of(d);
    auto [it, inserted] = open_in.try_emplace(state, false);
    if (inserted) it->second = view.cve_open_on(d, *c);
    return it->second;
  });
}

// A collection of the devices (in fleet order) for which `keep(device)` holds.
void Api::machine_references(Context& ctx, std::size_t members,
                             const std::function<bool(std::uint32_t)>& keep) {
  const FleetView& view = *ctx.snapshot;
  collection(ctx, "MachineReferences", api::kMachineReferenceFields, kMaxMachinesTop,
             Source{view.devices().size(), members, false,
                    [&](std::size_t k) -> std::optional<json::object> {
                      const auto d = static_cast<std::uint32_t>(k);
                      if (!keep(d)) return std::nullopt;
                      return api::machine_reference_dto(
                          view.devices()[d],
                          api::machine_group(options_.machine_groups, view.devices()[d]));
                    },
                    api::machine_reference_dto(inventory::Device{}, nullptr)});
}

namespace {

// The rows of devices and their open CVEs, each with the reported KB that closes it (the newest
// that does), in the order FleetFacts numbers them (FleetFacts::rows_before): what
// machinesVulnerabilities and SoftwareVulnerabilitiesByMachine list. A page renders the rows of
// its devices only, one device at a time.
class DeviceCveRows {
 public:
  explicit DeviceCveRows(const FleetView& view) : view_(view) {}
  struct Row {
    std::uint32_t device = 0;
    FleetView::OpenRow row;
  };
  Row at(std::size_t k) {
    const auto [d, at] = view_.row_at(k);
    if (d != device_) {
      device_ = d;
      rows_ = view_.open_rows(d);
    }
    assert(at < rows_.size());
    return Row{d, rows_[at]};
  }

 private:
  const FleetView& view_;
  std::uint32_t device_ = UINT32_MAX;
  std::vector<FleetView::OpenRow> rows_;
};

}  // namespace

void Api::machines_vulnerabilities(Context& ctx) {
  const FleetView& view = *ctx.snapshot;
  const engine::CatalogIndex& catalog = view.catalog();
  DeviceCveRows rows(view);
  collection(ctx, "Collection(microsoft.windowsDefenderATP.api.PublicAssetVulnerabilityDto)",
             api::kMachineVulnerabilityFields, kMaxMachinesVulnerabilitiesTop,
             dense(
                 view.facts().rows(),
                 [&](std::size_t k) -> std::optional<json::object> {
                   const DeviceCveRows::Row r = rows.at(k);
                   return api::machine_vulnerability_dto(
                       view.devices()[r.device], r.row.product, catalog.cves()[r.row.cve],
                       std::to_string(catalog.kbs()[r.row.kb].kb));
                 },
                 api::machine_vulnerability_dto(inventory::Device{}, "", engine::CveInfo{}, "")));
}

// The rows of an export, numbered across the fleet: the JSON pages and the files render the same.
// The source keeps the snapshot it reads alive.
Api::Source Api::export_source(std::shared_ptr<const FleetView> view, ExportKind kind) const {
  if (kind == ExportKind::kVulnerabilities) {
    auto rows = std::make_shared<DeviceCveRows>(*view);
    return dense(
        view->facts().rows(),
        [this, view, rows](std::size_t k) -> std::optional<json::object> {
          const DeviceCveRows::Row r = rows->at(k);
          const inventory::Device& d = view->devices()[r.device];
          return api::vulnerability_export_dto(
              options_.machine_groups, d,
              api::vulnerability_row(d, view->catalog(), r.row.cve, r.row.kb, r.row.product));
        },
        api::vulnerability_export_dto(options_.machine_groups, inventory::Device{},
                                      store::VulnerabilityRow{}));
  }
  // One row per device and product it runs.
  struct Inventory {
    std::vector<std::uint64_t> before{0};
    std::uint32_t device = UINT32_MAX;
    std::map<std::string_view, std::set<std::string_view>> weak;  // the device's, by product
    std::shared_ptr<const engine::Evaluation> evaluation;
  };
  auto state = std::make_shared<Inventory>();
  state->before.reserve(view->devices().size() + 1);
  for (std::uint32_t d = 0; d < view->devices().size(); ++d) {
    state->before.push_back(state->before.back() + view->software_of(d).size());
  }
  return dense(
      state->before.back(),
      [this, view, state](std::size_t k) -> std::optional<json::object> {
        auto& s = *state;
        const auto d = static_cast<std::uint32_t>(
            std::upper_bound(s.before.begin(), s.before.end(), k) - s.before.begin() - 1);
        if (d != s.device) {
          s.device = d;
          s.weak.clear();
          s.evaluation = view->evaluation(d);
          for (const engine::MissingKb& kb : s.evaluation->missing) {
            for (const std::string& p : kb.products_names) {
              s.weak[p].insert(kb.cves.begin(), kb.cves.end());
            }
          }
        }
        const std::string& product = view->software_of(d)[k - s.before[d]];
        auto it = s.weak.find(product);
        return api::inventory_export_dto(options_.machine_groups, view->devices()[d], product,
                                         it == s.weak.end() ? 0 : it->second.size());
      },
      api::inventory_export_dto(options_.machine_groups, inventory::Device{}, "", 0));
}

void Api::software_vulnerabilities_by_machine(Context& ctx) {
  const ExportPaging paging;
  collection(ctx, "Collection(microsoft.windowsDefenderATP.api.AssetVulnerability)",
             api::kSoftwareVulnerabilityExportFields, paging.max_size,
             export_source(ctx.snapshot, ExportKind::kVulnerabilities), &paging);
}

void Api::software_inventory_by_machine(Context& ctx) {
  const ExportPaging paging;
  collection(ctx, "Collection(microsoft.windowsDefenderATP.api.AssetSoftware)",
             api::kSoftwareInventoryExportFields, paging.max_size,
             export_source(ctx.snapshot, ExportKind::kInventory), &paging);
}

// GET /api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=T: the changes of the
// devices' open vulnerability rows found at or after T, at most 14 days ago, from the change log
// (change_log.h), in the order they were found, with the export's paging.
void Api::software_vulnerability_changes_by_machine(Context& ctx) {
  if (!ctx.may_block) {
    ctx.response.status = 0;  // it reads the change log: on a worker
    return;
  }
  auto params = odata::parameters(ctx.target.query);
  if (!params) {
    error(ctx.response, 400, "InvalidInput", params.error().message);
    return;
  }
  auto given = params->find("sincetime");
  if (given == params->end()) {
    error(ctx.response, 400, "InvalidInput",
          "sinceTime is required: the time to list changes from, such as "
          "sinceTime=2026-11-20T06:00:00Z, at most 14 days ago");
    return;
  }
  std::optional<std::string> since = utc_time_from_rfc3339(given->second);
  if (!since && given->second.size() == 10) {  // a date alone: from its start
    if (parse_day(given->second)) since = utc_time_from_rfc3339(given->second + "T00:00:00Z");
  }
  if (!since) {
    error(ctx.response, 400, "InvalidInput",
          fmt::format("Invalid sinceTime: '{}' is not a date-time such as 2026-11-20T06:00:00Z",
                      given->second.substr(0, 64)));
    return;
  }
  const std::string earliest = utc_time(std::chrono::system_clock::now() - std::chrono::days(14));
  if (*since < earliest) {
    error(ctx.response, 400, "InvalidInput",
          fmt::format("Invalid sinceTime: {} is more than 14 days ago (the earliest is {}): take "
                      "a full export (SoftwareVulnerabilitiesByMachine), then changes from then on",
                      *since, earliest));
    return;
  }
  // Changes that could not be recorded (the server's log says why) are missing from any delta
  // that reaches back before them.
  if (const std::string missed = service_.change_log_status().missed_at;
      !missed.empty() && *since <= missed) {
    error(ctx.response, 400, "InvalidInput",
          fmt::format("Invalid sinceTime: changes found at {} could not be recorded (the server's "
                      "log says why): take a full export (SoftwareVulnerabilitiesByMachine), then "
                      "changes from then on",
                      missed));
    return;
  }
  // The log's times are to the tenth of a microsecond (clock.h): the whole second of sinceTime
  // (its fraction, if any, is dropped: a change of that second may come twice, never not at all).
  auto range = service_.changes_since(ctx.tenant, since->substr(0, 19) + ".0000000Z");
  if (!range) {
    storage_fault(ctx.response, range.error());
    return;
  }
  // The rows found since then, by their numbers in the log (which rows found later do not
  // move): a page reads the device changes it reaches, a block at a time, and their sets.
  struct Log {
    std::vector<store::DeviceChange> block;  // in order of position
    std::map<std::int64_t, std::vector<std::pair<std::string, store::VulnerabilityRow>>> sets;
    std::optional<Error> failed;
  };
  auto log = std::make_shared<Log>();
  const std::int64_t first = range->first;
  // The devices as they are now: at least as new as the changes read (whose snapshot was served
  // before they were published), so that a device they name is found.
  auto latest = service_.view(ctx.tenant);
  const std::shared_ptr<const FleetView> view = latest ? *latest : ctx.snapshot;
  Source source = dense(
      static_cast<std::size_t>(range->end - range->first),
      [this, log, view, first, tenant = ctx.tenant](std::size_t p) -> std::optional<json::object> {
        auto& l = *log;
        if (l.failed) return std::nullopt;
        const std::int64_t row = first + static_cast<std::int64_t>(p);
        auto holds = [&] {
          return !l.block.empty() && l.block.front().position <= row &&
                 row < l.block.back().position + l.block.back().count;
        };
        if (!holds()) {
          auto read = service_.device_changes(tenant, row, 512);
          if (!read) {
            l.failed = read.error();
            return std::nullopt;
          }
          l.block = std::move(*read);
          if (!holds()) return std::nullopt;  // forgotten meanwhile
        }
        const auto it = std::upper_bound(
            l.block.begin(), l.block.end(), row,
            [](std::int64_t r, const store::DeviceChange& c) { return r < c.position; });
        const store::DeviceChange& c = *std::prev(it);
        if (c.at.empty()) return std::nullopt;  // another server's, not published yet
        auto set = l.sets.find(c.change_set);
        if (set == l.sets.end()) {
          if (l.sets.size() >= 64) l.sets.clear();  // a page reads its sets in order: a few held
          auto rows = service_.change_set(c.change_set);
          if (!rows) {
            l.failed = rows.error();
            return std::nullopt;
          }
          set = l.sets.emplace(c.change_set, std::move(*rows)).first;
        }
        const auto k = static_cast<std::size_t>(row - c.position);
        if (k >= set->second.size()) return std::nullopt;  // forgotten meanwhile
        const store::VulnerabilityChange change{c.at, set->second[k].first, c.device_id,
                                                c.device_name, set->second[k].second};
        const auto found = view->find(c.device_id);
        const bool onboarded = found && view->devices()[*found].id == c.device_id;
        if (onboarded) {
          return api::vulnerability_change_dto(options_.machine_groups, view->devices()[*found],
                                               change, true);
        }
        inventory::Device removed;  // only its id and name are kept
        removed.id = c.device_id;
        removed.computer_dns_name = c.device_name;
        return api::vulnerability_change_dto(options_.machine_groups, removed, change, false);
      },
      api::vulnerability_change_dto(options_.machine_groups, inventory::Device{},
                                    store::VulnerabilityChange{}, false));
  ExportPaging paging;
  paging.carry = "&sinceTime=" + encode_query_value(*since);
  collection(ctx, "Collection(microsoft.windowsDefenderATP.api.DeltaAssetVulnerability)",
             api::kSoftwareVulnerabilityChangeFields, paging.max_size, source, &paging);
  if (log->failed) storage_fault(ctx.response, *log->failed);
}

// ---- The export files (docs/api.md, "The export APIs") ----

// GET /api/machines/SoftwareVulnerabilitiesExport (and SoftwareInventoryExport): links to gzip
// files of JSON lines, one row a line, valid for sasValidHours (1 by default, at most 6). The
// snapshot they were made from is held for them (the newest kMaxHeldExports exports); a link
// signs its file and expiry with this server's key, as an Azure SAS link does, and needs no token.
void Api::export_files(Context& ctx) {
  auto params = odata::parameters(ctx.target.query);
  if (!params) {
    error(ctx.response, 400, "InvalidInput", params.error().message);
    return;
  }
  long long hours = 1;
  if (auto it = params->find("sasvalidhours"); it != params->end()) {
    auto [end, ec] =
        std::from_chars(it->second.data(), it->second.data() + it->second.size(), hours);
    if (ec != std::errc() || end != it->second.data() + it->second.size() || hours < 1 ||
        hours > 6) {
      error(ctx.response, 400, "InvalidInput",
            "sasValidHours: expected a whole number of hours, 1 to 6");
      return;
    }
  }
  const ExportKind kind = to_lower(ctx.target.segments[1]) == "softwarevulnerabilitiesexport"
                              ? ExportKind::kVulnerabilities
                              : ExportKind::kInventory;
  const std::size_t rows = export_source(ctx.snapshot, kind).domain;
  HeldExport held;
  held.id = random_hex(16);
  held.app = ctx.response.app;
  held.tenant = ctx.tenant;
  held.kind = kind;
  held.view = ctx.snapshot;
  held.parts = std::max<std::size_t>(1, (rows + kExportPartRows - 1) / kExportPartRows);
  held.generated = ctx.as_of.substr(0, 19) + "Z";  // a whole second, not after the snapshot
  const std::string generated = held.generated;
  const std::int64_t expires = unix_now() + hours * 3600;
  json::array files;
  for (std::size_t part = 0; part < held.parts; ++part) {
    const std::string file = fmt::format("{}/part-{:05}.json.gz", held.id, part);
    files.emplace_back(
        fmt::format("{}/api/exportfiles/{}?se={}&sig={}", ctx.base, file, expires,
                    hmac_sha256_hex(export_key_, fmt::format("{}\n{}", file, expires))));
  }
  {
    std::lock_guard lock(exports_mutex_);
    held.expires = expires;
    // An application's new export of a kind replaces its older one; others' are kept (the
    // tenant's oldest go past kMaxHeldExports, anyone's past kMaxHeldExportsInAll).
    std::erase_if(exports_, [&](const HeldExport& e) {
      return (e.app == held.app && e.tenant == held.tenant && e.kind == held.kind) ||
             e.expires < unix_now();
    });
    const std::string tenant = held.tenant;
    exports_.push_back(std::move(held));
    auto own = [&](const HeldExport& e) { return e.tenant == tenant; };
    if (static_cast<std::size_t>(std::count_if(exports_.begin(), exports_.end(), own)) >
        kMaxHeldExports) {
      exports_.erase(std::find_if(exports_.begin(), exports_.end(), own));
    }
    while (exports_.size() > kMaxHeldExportsInAll) exports_.pop_front();
  }
  ctx.response.body = json::serialize(json::object{
      {"@odata.context",
       fmt::format("{}/api/$metadata#microsoft.windowsDefenderATP.api.ExportFilesResponse",
                   ctx.base)},
      {"exportFiles", std::move(files)},
      {"generatedTime", generated}});
}

// GET /api/exportfiles/{id}/part-NNNNN.json.gz?se=EXPIRY&sig=HMAC: one file of a held export. The
// signature is the permission (no token), checked in constant time; an expired link is refused.
Response Api::export_file(const Request& request, const RequestTarget& target, Response& response,
                          bool may_block) {
  response.route = "/api/exportfiles/{id}/{file}";
  auto params = odata::parameters(target.query);
  const std::string file = target.segments.size() == 3
                               ? fmt::format("{}/{}", target.segments[1], target.segments[2])
                               : std::string();
  std::int64_t expires = 0;
  std::string sig;
  if (params) {
    sig = (*params)["sig"];
    const std::string& se = (*params)["se"];
    auto [end, ec] = std::from_chars(se.data(), se.data() + se.size(), expires);
    if (ec != std::errc() || end != se.data() + se.size() || se.empty() || se[0] == '0') {
      expires = -1;  // signed as written: only the server's own digits match
    }
  }
  const std::string expected = hmac_sha256_hex(export_key_, fmt::format("{}\n{}", file, expires));
  if (file.empty() || sig.size() != expected.size() ||
      CRYPTO_memcmp(sig.data(), expected.data(), sig.size()) != 0) {
    error(response, 403, "AuthenticationFailed", "The link's signature does not match");
    return response;
  }
  if (unix_now() > expires) {
    error(response, 403, "AuthenticationFailed", "The link has expired: request the export again");
    return response;
  }
  if (!may_block) {  // rendering and compressing a file: on a worker
    response.status = 0;
    return response;
  }
  // "part-NNNNN.json.gz", as the server named it (the signature holds the name).
  std::size_t part = 0;
  const std::string& name = target.segments[2];
  if (name.size() != 18 || !name.starts_with("part-") || !name.ends_with(".json.gz") ||
      std::from_chars(name.data() + 5, name.data() + 10, part).ptr != name.data() + 10) {
    not_found(response, "No such export file");
    return response;
  }
  std::optional<HeldExport> held;
  {
    std::lock_guard lock(exports_mutex_);
    for (const HeldExport& e : exports_) {
      if (e.id == target.segments[1]) held = e;
    }
  }
  if (!held || part >= held->parts) {
    not_found(response,
              "This export is no longer held (a newer one replaced it): request it again");
    return response;
  }
  (void)request;
  const Source source = export_source(held->view, held->kind);
  GzipWriter gzip;
  std::string lines;
  const std::size_t end = std::min(source.domain, (part + 1) * kExportPartRows);
  for (std::size_t k = part * kExportPartRows; k < end; ++k) {
    lines += json::serialize(*source.item(k));
    lines += '\n';
    if (lines.size() >= (1u << 20)) {
      gzip.write(lines);
      lines.clear();
    }
  }
  gzip.write(lines);
  response.status = 200;
  response.content_type = "application/gzip";
  response.body = gzip.finish();
  return response;
}

// kbgap raises no alerts: Defender's alert routes answer an empty collection, so that a client
// that reads them (check_msdefender's alert check) works and finds none.
void Api::alerts(Context& ctx) {
  if (ctx.target.segments.size() == 3 && !machine(ctx)) return;  // /machines/{id}/alerts
  Source none = dense(
      0, [](std::size_t) { return json::object(); }, api::alert_shape());
  none.expandable = {"evidence"};
  collection(ctx, "Alerts", api::kAlertFields, kMaxMachinesTop, none);
}

// GET /api/$metadata: every entity as the endpoints render it (api/metadata.h).
void Api::metadata(Context& ctx) {
  inventory::Device addressed;
  addressed.ip_addresses = {"0.0.0.0"};  // an address, so that IpAddress is declared
  const FleetView& view = *ctx.snapshot;
  const std::vector<api::EntityDescription> entities = {
      {"Machine", "Machines", machine_json_shape(addressed)},
      {"Vulnerability", "Vulnerabilities", api::vulnerability_dto(engine::CveInfo{}, 0)},
      {"Software", "Software", api::software_dto("", 0, 0)},
      {"Recommendation", "Recommendations", recommendation_json(view, "", FleetFacts::Software{})},
      {"Alert", "Alerts", api::alert_shape()},
      {"MachineReference", "MachineReferences",
       api::machine_reference_dto(inventory::Device{}, nullptr)},
      {"AssetVulnerability", "",
       api::vulnerability_export_dto({}, inventory::Device{}, store::VulnerabilityRow{})},
      {"DeltaAssetVulnerability", "",
       api::vulnerability_change_dto({}, inventory::Device{}, store::VulnerabilityChange{}, false)},
      {"AssetSoftware", "", api::inventory_export_dto({}, inventory::Device{}, "", 0)},
      {"PublicSoftwareVersionDistributionDto", "", api::distribution_dto("", 0, 0)},
      {"ExportFilesResponse", "",
       json::object{{"exportFiles", json::array{""}}, {"generatedTime", ""}}},
      {"PublicAssetVulnerabilityDto", "",
       api::machine_vulnerability_dto(inventory::Device{}, "", engine::CveInfo{}, "")},
      {"PublicProductFixDto", "", api::product_fix_dto(engine::MissingKb{}, 0)},
  };
  ctx.response.content_type = "application/xml; charset=utf-8";
  ctx.response.body = api::csdl(entities);
}

json::object Api::machine_json_shape(const inventory::Device& d) const {
  return api::machine_dto(d, 0, api::machine_group(options_.machine_groups, d));
}

// GET /api/machines/findbytag?tag=prod&useStartsWithFilter=false: the machines carrying a tag
// (compared without case), or a tag that starts with it.
void Api::machines_by_tag(Context& ctx) {
  auto params = odata::parameters(ctx.target.query);
  if (!params) {
    error(ctx.response, 400, "InvalidInput", params.error().message);
    return;
  }
  const std::string tag = to_lower((*params)["tag"]);
  const std::string starts = to_lower((*params)["usestartswithfilter"]);
  if (tag.empty()) {
    error(ctx.response, 400, "InvalidInput", "findbytag needs a tag: ?tag=NAME");
    return;
  }
  if (!starts.empty() && starts != "true" && starts != "false") {
    error(ctx.response, 400, "InvalidInput", "Invalid useStartsWithFilter: expected true or false");
    return;
  }
  const bool starts_with = starts == "true";
  const FleetView& view = *ctx.snapshot;
  if (!ctx.may_block && view.devices().size() > kIoThreadScan) {
    ctx.response.status = 0;  // a pass over the fleet: on a worker
    return;
  }
  std::vector<std::uint32_t> found;
  for (std::uint32_t d = 0; d < view.devices().size(); ++d) {
    for (const std::string& t : view.devices()[d].tags) {
      const std::string lower = to_lower(t);
      if (starts_with ? lower.starts_with(tag) : lower == tag) {
        found.push_back(d);
        break;
      }
    }
  }
  collection(ctx, "Machines", api::kMachineFields, kMaxMachinesTop,
             dense(
                 found.size(), [&](std::size_t k) { return machine_json(view, found[k]); },
                 api::machine_dto(inventory::Device{}, 0)));
}

void Api::software_list(Context& ctx) {
  const auto& facts = ctx.snapshot->facts();
  std::vector<const std::pair<const std::string, FleetFacts::Software>*> list;
  for (const auto& entry : facts.software) list.push_back(&entry);
  collection(ctx, "Software", api::kSoftwareFields, kMaxMachinesTop,
             dense(
                 list.size(),
                 [&](std::size_t k) { return software_json(list[k]->first, list[k]->second); },
                 api::software_dto("", 0, 0)));
}

// The software product an id names: "{prefix}{productsNames name}", without case; 404 naming
// `what` when none (or, for a recommendation, none with an open CVE).
const std::pair<const std::string, FleetFacts::Software>* Api::product_of_id(
    Context& ctx, std::string_view prefix, std::string_view what, bool with_open_cves) {
  const std::string& id = ctx.target.segments[1];
  const std::string lower = to_lower(id);
  const auto& facts = ctx.snapshot->facts();
  auto it = lower.starts_with(prefix) ? facts.software.find(lower.substr(prefix.size()))
                                      : facts.software.end();
  if (it == facts.software.end() || (with_open_cves && it->second.cves.empty())) {
    not_found(ctx.response, fmt::format("{} {} was not found", what, id.substr(0, 120)));
    return nullptr;
  }
  return &*it;
}

const std::pair<const std::string, FleetFacts::Software>* Api::software(Context& ctx) {
  return product_of_id(ctx, api::kSoftwarePrefix, "Software", false);
}

void Api::software_entity(Context& ctx) {
  const auto* sw = software(ctx);
  if (!sw) return;
  entity(ctx, "Software", software_json(sw->first, sw->second));
}

void Api::software_missing_kbs(Context& ctx) {
  const auto* sw = software(ctx);
  if (!sw) return;
  const engine::CatalogIndex& catalog = ctx.snapshot->catalog();
  // Every KB some device misses for this software: how many devices, which CVEs.
  std::vector<engine::MissingKb> order;
  for (const auto& [kb, m] : sw->second.missed) {
    engine::MissingKb one = engine::missing_kb(catalog, kb);
    one.products_names = {sw->first};
    for (engine::CveIndex c : m.cves) one.cves.push_back(catalog.cves()[c].id);
    order.push_back(std::move(one));
  }
  std::vector<std::size_t> rank(order.size());
  for (std::size_t k = 0; k < rank.size(); ++k) rank[k] = k;
  std::sort(rank.begin(), rank.end(),
            [&](std::size_t a, std::size_t b) { return engine::newest_first(order[a], order[b]); });
  std::vector<std::int64_t> missed_on;
  for (const auto& [kb, m] : sw->second.missed) missed_on.push_back(m.devices);
  json::array value;
  for (std::size_t k : rank) value.push_back(api::product_fix_dto(order[k], missed_on[k]));
  ctx.response.body = json::serialize(
      json::object{{"@odata.context", api::missing_kbs_context(ctx.base)}, {"value", value}});
}

// ---- Software sub-routes and recommendations (docs/api.md §3) ----

void Api::software_vulnerabilities(Context& ctx) {
  if (const auto* sw = software(ctx)) cve_collection(ctx, sw->second.cves);
}

void Api::software_machines(Context& ctx) {
  const auto* sw = software(ctx);
  if (!sw) return;
  const FleetView& view = *ctx.snapshot;
  const std::string& name = sw->first;
  machine_references(ctx, sw->second.devices, [&](std::uint32_t d) {
    const auto& names = view.software_of(d);
    return std::find(names.begin(), names.end(), name) != names.end();
  });
}

// The versions of a software product the fleet runs: how many devices run each, and how many of
// the product's CVEs are open on them. The OS's version is the device's build; a component's is
// unknown (""), and its devices are one row.
void Api::software_distributions(Context& ctx) {
  const auto* sw = software(ctx);
  if (!sw) return;
  const FleetView& view = *ctx.snapshot;
  if (!ctx.may_block && view.devices().size() > kIoThreadScan) {
    ctx.response.status = 0;  // a pass over the fleet: on a worker
    return;
  }
  const std::string& name = sw->first;
  struct Version {
    std::int64_t installations = 0;
    std::set<engine::CveIndex> cves;
    std::set<std::uint32_t> states;
  };
  std::map<std::string, Version> versions;
  for (std::uint32_t d = 0; d < view.devices().size(); ++d) {
    const auto& names = view.software_of(d);
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;
    Version& v = versions[api::product_version(view.devices()[d], name)];
    ++v.installations;
    const std::uint32_t state = view.result().state_of(d);
    if (v.states.insert(state).second) {
      for (engine::CveIndex c : view.open_cves_of(state, name)) v.cves.insert(c);
    }
  }
  std::vector<json::object> rows;
  for (const auto& [version, v] : versions) {
    rows.push_back(api::distribution_dto(version, v.installations, v.cves.size()));
  }
  collection(
      ctx, "Collection(microsoft.windowsDefenderATP.api.PublicSoftwareVersionDistributionDto)",
      {"version", "installations", "vulnerabilities"}, kMaxMachinesTop,
      dense(
          rows.size(), [&](std::size_t k) { return rows[k]; }, api::distribution_dto("", 0, 0)));
}

// One "Update <product>" recommendation per software product with a CVE open somewhere: its
// exposed devices, its weaknesses, and the KB most of them miss (recommendedProgram, with the
// newest fixed build the catalog lists for it as recommendedVersion, for an OS).
json::object Api::recommendation_json(const FleetView& view, const std::string& name,
                                      const FleetFacts::Software& sw) const {
  const engine::CatalogIndex& catalog = view.catalog();
  api::RecommendationFacts f;
  f.weaknesses = sw.cves.size();
  f.devices = sw.devices;
  f.exposed = sw.exposed;
  f.public_exploit = sw.public_exploit;
  for (engine::CveIndex c : sw.cves) {
    f.severity_score = std::max(f.severity_score, catalog.cves()[c].cvss_base.value_or(0));
  }
  std::optional<engine::KbIndex> best;
  std::int64_t best_devices = -1;
  for (const auto& [kb, missed] : sw.missed) {
    if (missed.devices > best_devices ||
        (missed.devices == best_devices && catalog.release_day(kb) > catalog.release_day(*best))) {
      best = kb;
      best_devices = missed.devices;
    }
  }
  if (best) {
    f.program = fmt::format("KB{}", catalog.kbs()[*best].kb);
    const engine::Build* newest = nullptr;
    for (const engine::Build& b : catalog.kb_builds(*best)) {
      if (!newest || std::tie(b.major, b.minor, b.build, b.revision) >
                         std::tie(newest->major, newest->minor, newest->build, newest->revision)) {
        newest = &b;
      }
    }
    // A component's KB lists its OS's builds, not the component's own version.
    if (newest && api::is_os_software(name)) {
      f.version =
          fmt::format("{}.{}.{}.{}", newest->major, newest->minor, newest->build, newest->revision);
    }
  }
  return api::recommendation_dto(name, f);
}

void Api::recommendations(Context& ctx) {
  const FleetView& view = *ctx.snapshot;
  // For one machine: its own exposures' recommendations, as the fleet's.
  std::optional<std::uint32_t> device;
  if (to_lower(ctx.target.segments[0]) == "machines") {
    device = machine(ctx);
    if (!device) return;
  }
  std::vector<const std::pair<const std::string, FleetFacts::Software>*> list;
  for (const auto& entry : view.facts().software) {
    if (entry.second.cves.empty()) continue;
    if (device && !view.exposed_by(*device, entry.first)) continue;
    list.push_back(&entry);
  }
  collection(
      ctx, "Recommendations", api::kRecommendationFields, kMaxMachinesTop,
      dense(
          list.size(),
          [&](std::size_t k) { return recommendation_json(view, list[k]->first, list[k]->second); },
          recommendation_json(view, "", FleetFacts::Software{})));
}

const std::pair<const std::string, FleetFacts::Software>* Api::recommendation(Context& ctx) {
  return product_of_id(ctx, api::kRecommendationPrefix, "Recommendation", true);
}

void Api::recommendation_entity(Context& ctx) {
  const auto* r = recommendation(ctx);
  if (!r) return;
  entity(ctx, "Recommendations", recommendation_json(*ctx.snapshot, r->first, r->second));
}

void Api::recommendation_machines(Context& ctx) {
  const auto* r = recommendation(ctx);
  if (!r) return;
  const FleetView& view = *ctx.snapshot;
  const std::string& name = r->first;
  machine_references(ctx, r->second.exposed,
                     [&](std::uint32_t d) { return view.exposed_by(d, name); });
}

void Api::recommendation_vulnerabilities(Context& ctx) {
  if (const auto* r = recommendation(ctx)) cve_collection(ctx, r->second.cves);
}

void Api::recommendation_software(Context& ctx) {
  const auto* r = recommendation(ctx);
  if (!r) return;
  const std::string& name = r->first;  // not a structured binding: clang < 16 cannot capture one
  const FleetFacts::Software& sw = r->second;
  collection(
      ctx, "Software", api::kSoftwareFields, kMaxMachinesTop,
      dense(
          1, [&](std::size_t) { return software_json(name, sw); }, api::software_dto("", 0, 0)));
}

}  // namespace kbgap::server
