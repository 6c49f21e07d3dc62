// HTTP/1.1 on Boost.Beast: a listener, one session per connection with keep-alive, time and
// size limits, the API's blocking work on a separate pool, an access log line and metrics per
// request, and a clean stop (in-flight requests finish) on SIGTERM or SIGINT.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "server/api.h"

namespace kbgap::server {

struct HttpOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;                 // 0: any free port (see HttpServer::port)
  unsigned threads = 0;                      // I/O threads and as many workers; 0: one per core
  std::size_t max_header_bytes = 32 * 1024;  // larger: 431 (above a token's 16 KiB: 401)
  std::size_t max_body_bytes = 32 * 1024 * 1024;  // larger: 413
  std::chrono::seconds request_timeout{20};       // a request not read whole by then: 408
  std::chrono::seconds idle_timeout{60};          // a kept-alive connection with nothing to do
  bool access_log = true;                         // one JSON line per request on stdout
  // Open connections at most; 0: the process's file limit less the files open at start and
  // kReservedFiles. When full, a new
  // connection closes the oldest one that has sent nothing (then the oldest idle kept-alive
  // one); when every connection is busy, the new one is closed.
  std::size_t max_connections = 0;
};

// Files kept, beyond those open at start, for what is not a connection.
inline constexpr std::size_t kReservedFiles = 64;

class HttpServer {
 public:
  HttpServer(Api& api, HttpOptions options);
  ~HttpServer();
  // Binds and listens; the bound port is port() afterwards.
  Result<void> start();
  std::uint16_t port() const;
  // Serves until stop() or SIGTERM/SIGINT; returns when in-flight requests have finished.
  void run();
  void stop();
  // Prometheus text: requests by route and status, latency histograms, in-flight requests.
  std::string metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kbgap::server
