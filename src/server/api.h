// The Defender-compatible API (docs/api.md §1-5), independent of the HTTP transport: a request in,
// a response out. Routing, token checks, permissions, rate limits and the JSON of every endpoint.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "api/defender_dto.h"
#include "auth/jwt.h"
#include "server/fleet_view.h"
#include "server/service.h"
#include "store/shared_counters.h"

namespace kbgap::server {

struct Request {
  std::string method;  // "GET"
  std::string target;  // "/api/machines?$top=10"
  std::string authorization;
  std::string host;    // Host header
  std::string scheme;  // "http", or X-Forwarded-Proto
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json; odata.metadata=minimal; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string route = "unmatched";  // the route's pattern, for logs and metrics
  std::string correlation_id;
  std::string app;         // the calling application, when the token was valid
  std::string problem;     // for a 500: its cause, logged with the correlation id, never sent
  std::string counted_as;  // the rate-limit window it was counted in
};

// The path split at "/" after the API prefix (/api or /api/v1.0), and the query.
struct RequestTarget {
  std::vector<std::string> segments;
  std::string query;
  bool api = false;
};

// What a route requires of a token: an application permission (roles), a delegated one (scp),
// or an alternative that is also enough (a write permission covers reading). All empty: any
// valid token.
struct Permission {
  std::string_view application, delegated, alternative;
};

struct RateLimit {
  int per_minute = 0;  // 0: no limit
  int per_hour = 0;
};

struct ApiOptions {
  std::size_t max_batch_devices = 10000;
  std::int64_t leeway_seconds = 60;
  // Defender's published limits (docs/api.md §3-4).
  RateLimit machines{100, 1500};
  RateLimit vulnerabilities{50, 1500};
  RateLimit software{50, 1500};
  RateLimit exports{30, 1000};    // SoftwareVulnerabilitiesByMachine, SoftwareInventoryByMachine
  RateLimit export_files{5, 20};  // SoftwareVulnerabilitiesExport, SoftwareInventoryExport
  std::string public_url;         // when set, the base of @odata.context and nextLink
  std::vector<api::MachineGroup> machine_groups;  // [[machine_groups]] of kbgap.toml
};

class Api {
 public:
  Api(Service& service, auth::Verifier verifier, ApiOptions options);
  // The answer. With may_block false (on an I/O thread) a request that would wait for storage
  // (a write, or a fleet snapshot to reload) is not answered: the response's status is 0 and the
  // caller hands it to a thread that may block.
  Response handle(const Request& request, bool may_block = true);
  // What GET /metrics answers (Prometheus text), supplied by the transport that counts.
  void set_metrics(std::function<std::string()> metrics) { metrics_ = std::move(metrics); }
  // Servers sharing a database share their rate limits: this adds the calls this server counted
  // since the last exchange to `counters` and learns every server's, so that a limit holds for
  // an application across all of them. `kbgap serve` calls it every 200 ms; a limit can be
  // passed by what the other servers counted since their last exchange (docs/scaling.md).
  Result<void> exchange_rate_counts(store::SharedCounters& counters);
  // Called (cheaply, on the request's thread) when an application nears a limit: the caller
  // exchanges counts at once rather than at the next tick, which narrows what a burst through
  // several servers can pass.
  void set_exchange_wakeup(std::function<void()> wakeup) { exchange_wakeup_ = std::move(wakeup); }

  // A collection's items (docs/api.md §4): positions 0 .. domain-1; item(p) renders position p,
  // or nullopt when no item stands there (`dense`: every position holds one, so $skip jumps and
  // counts are known without a scan).
  struct Source {
    std::size_t domain = 0;
    std::size_t members = 0;  // how many positions hold an item
    bool dense = true;
    std::function<std::optional<boost::json::object>(std::size_t)> item;
    boost::json::object shape;                 // an item with every property: what $select may name
    std::vector<std::string> expandable = {};  // what $expand may name
  };

 private:
  struct Context;
  // Rate-limit groups.
  enum class Group { kNone, kMachines, kVulnerabilities, kSoftware, kExports, kExportFiles };
  enum class Needs { kNothing, kSnapshot };  // the fleet snapshot (its facts are ready with it)
  // One endpoint: the table in api.cpp (routes()) is the whole of the routing.
  struct Route {
    std::string_view method;   // "GET" (HEAD too), "POST", "DELETE"
    std::string_view pattern;  // "/api/machines/{id}/getmissingkbs"; words compare without case
    Permission permission;
    Group group;
    Needs needs;
    void (Api::*handler)(Context&);
    bool matches(const RequestTarget& target) const;
  };
  static const std::vector<Route>& routes();
  std::pair<const RateLimit&, std::string_view> rate_group(Group group) const;

  Response route(const Request& request, Response& response, bool may_block);
  std::optional<auth::Claims> authenticate(const Request& request, Response& response);
  bool rate_limited(const std::string& app, const std::string& group, const RateLimit& limit,
                    Response& response);
  void refund(const std::string& window);

  // The handlers (docs/api.md §2-3), and what several share.
  void machine_missing_kbs(Context& ctx);
  void machines(Context& ctx);
  void machine_entity(Context& ctx);
  // A machine as Defender renders it, with its machine group.
  boost::json::object machine_json(const FleetView& view, std::uint32_t device) const;
  void machine_software(Context& ctx);
  void machine_vulnerabilities(Context& ctx);
  void vulnerabilities(Context& ctx);
  void vulnerability(Context& ctx);
  void vulnerability_machines(Context& ctx);
  void machines_vulnerabilities(Context& ctx);
  void software_list(Context& ctx);
  void software_entity(Context& ctx);
  void software_missing_kbs(Context& ctx);
  void put_devices(Context& ctx);
  void delete_device(Context& ctx);
  void metrics(Context& ctx);
  std::optional<std::uint32_t> machine(Context& ctx);  // the {id} of /machines/{id}/...
  std::optional<engine::CveIndex> cve(Context& ctx);   // the {id} of /vulnerabilities/{id}/...
  const std::pair<const std::string, FleetFacts::Software>* software(Context& ctx);
  void entity(Context& ctx, std::string_view set, const boost::json::object& fields);
  // The export APIs' paging: pageSize items a page (default and maximum), @odata.nextLink with
  // pageSize and a skip token; an explicit $top answers one page without a link.
  struct ExportPaging {
    std::size_t default_size = 50000;
    std::size_t max_size = 200000;
    std::string carry = {};  // the endpoint's own parameters for the link: "&sinceTime=..."
  };
  void collection(Context& ctx, std::string_view context, const std::vector<std::string>& fields,
                  std::size_t max_top, const Source& source, const ExportPaging* paging = nullptr);
  enum class ExportKind { kVulnerabilities, kInventory };
  Source export_source(std::shared_ptr<const FleetView> view, ExportKind kind) const;
  void export_files(Context& ctx);
  Response export_file(const Request& request, const RequestTarget& target, Response& response,
                       bool may_block);
  // The exports whose files links point at, with their snapshots: each application's newest of
  // each kind, each tenant's newest kMaxHeldExports (one tenant's exports never push out
  // another's) and the newest kMaxHeldExportsInAll, until they expire.
  struct HeldExport {
    std::string id;      // 32 hex characters
    std::string app;     // the application that asked for it
    std::string tenant;  // its tenant, whose snapshot `view` is
    ExportKind kind = ExportKind::kVulnerabilities;
    std::shared_ptr<const FleetView> view;
    std::size_t parts = 1;
    std::string generated;
    std::int64_t expires = 0;
  };
  static constexpr std::size_t kMaxHeldExports = 4;
  static constexpr std::size_t kMaxHeldExportsInAll = 64;
  static constexpr std::size_t kExportPartRows = 50000;  // rows of one file
  void software_vulnerabilities_by_machine(Context& ctx);
  void software_inventory_by_machine(Context& ctx);
  void software_vulnerability_changes_by_machine(Context& ctx);
  void alerts(Context& ctx);
  void machines_by_tag(Context& ctx);
  void machine_tags(Context& ctx);
  void metadata(Context& ctx);
  boost::json::object machine_json_shape(const inventory::Device& d) const;
  void machine_references(Context& ctx, std::size_t members,
                          const std::function<bool(std::uint32_t)>& keep);
  void software_vulnerabilities(Context& ctx);
  void cve_collection(Context& ctx, const std::vector<engine::CveIndex>& cves);
  void software_machines(Context& ctx);
  void software_distributions(Context& ctx);
  boost::json::object recommendation_json(const FleetView& view, const std::string& name,
                                          const FleetFacts::Software& sw) const;
  const std::pair<const std::string, FleetFacts::Software>* recommendation(Context& ctx);
  const std::pair<const std::string, FleetFacts::Software>* product_of_id(Context& ctx,
                                                                          std::string_view prefix,
                                                                          std::string_view what,
                                                                          bool with_open_cves);
  void recommendations(Context& ctx);
  void recommendation_entity(Context& ctx);
  void recommendation_machines(Context& ctx);
  void recommendation_vulnerabilities(Context& ctx);
  void recommendation_software(Context& ctx);

  Service& service_;
  std::function<std::string()> metrics_;
  auth::Verifier verifier_;
  ApiOptions options_;
  std::string export_key_;  // signs the files' links; random per process
  std::mutex exports_mutex_;
  std::deque<HeldExport> exports_;
  // Tokens already verified, until they expire (a signature is checked once, not per request).
  std::shared_mutex tokens_mutex_;
  std::unordered_map<std::string, auth::Claims> tokens_;
  // Calls per (application, endpoint group) in the current minute and hour windows: this
  // server's (in_*), how many of those it has told the other servers (synced_*), and theirs as
  // last learnt (others_*).
  struct Window {
    std::int64_t minute = 0, hour = 0;
    int in_minute = 0, in_hour = 0;
    int synced_minute = 0, synced_hour = 0;
    std::int64_t others_minute = 0, others_hour = 0;
  };
  std::mutex limits_mutex_;
  std::unordered_map<std::string, Window> windows_;
  std::function<void()> exchange_wakeup_;
};

// A fresh random correlation id (UUID version 4).
std::string new_correlation_id();

}  // namespace kbgap::server
