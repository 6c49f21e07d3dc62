// The Defender-compatible API (docs/api.md §1-5), independent of the HTTP transport: a request in,
// a response out. Routing, token checks, permissions, rate limits and the JSON of every endpoint.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "auth/jwt.h"
#include "server/service.h"

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
  std::string public_url;  // when set, the base of @odata.context and nextLink
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

 private:
  struct Caller;
  Response route(const Request& request, Response& response, bool may_block);
  std::optional<auth::Claims> authenticate(const Request& request, Response& response);
  bool rate_limited(const std::string& app, const std::string& group, const RateLimit& limit,
                    Response& response);
  void refund(const std::string& window);

  Service& service_;
  std::function<std::string()> metrics_;
  auth::Verifier verifier_;
  ApiOptions options_;
  // Tokens already verified, until they expire (a signature is checked once, not per request).
  std::shared_mutex tokens_mutex_;
  std::unordered_map<std::string, auth::Claims> tokens_;
  // Calls per (application, endpoint group) in the current minute and hour windows.
  struct Window {
    std::int64_t minute = 0, hour = 0;
    int in_minute = 0, in_hour = 0;
  };
  std::mutex limits_mutex_;
  std::unordered_map<std::string, Window> windows_;
};

// A fresh random correlation id (UUID version 4).
std::string new_correlation_id();

}  // namespace kbgap::server
