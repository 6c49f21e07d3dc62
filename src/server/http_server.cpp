// The Beast transport of the API.
#include "server/http_server.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/text.h"

namespace kbgap::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};

// Requests by route and status and latency histograms. Each I/O thread counts in its own shard
// (no lock is shared on the hot path); /metrics adds the shards up.
class Metrics {
 public:
  explicit Metrics(std::size_t shards) : shards_(shards) {}
  void record(std::size_t shard, const std::string& route, int status, double seconds) {
    Shard& s = shards_[shard % shards_.size()];
    std::lock_guard lock(s.mutex);
    ++s.requests[{route, status}];
    Histogram& h = s.latency[route];
    for (std::size_t i = 0; i < std::size(kBuckets); ++i) {
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
  }
  std::string text(std::int64_t in_flight, std::int64_t connections) const {
    std::map<std::pair<std::string, int>, std::uint64_t> requests;
    std::map<std::string, Histogram> latency;
    for (const Shard& s : shards_) {
      std::lock_guard lock(s.mutex);
      for (const auto& [key, n] : s.requests) requests[key] += n;
      for (const auto& [route, h] : s.latency) {
        Histogram& total = latency[route];
        for (std::size_t i = 0; i < std::size(kBuckets); ++i) total.buckets[i] += h.buckets[i];
        total.count += h.count;
        total.sum += h.sum;
      }
    }
    std::string out =
        "# HELP kbgap_http_requests_total HTTP requests by route and status.\n"
        "# TYPE kbgap_http_requests_total counter\n";
    for (const auto& [key, n] : requests) {
      out += fmt::format("kbgap_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first,
                         key.second, n);
    }
    out +=
        "# HELP kbgap_http_request_duration_seconds Time to answer a request, by route.\n"
        "# TYPE kbgap_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency) {
      for (std::size_t i = 0; i < std::size(kBuckets); ++i) {
        out +=
            fmt::format("kbgap_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                        route, kBuckets[i], h.buckets[i]);
      }
      out +=
          fmt::format("kbgap_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                      route, h.count);
      out +=
          fmt::format("kbgap_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, h.sum);
      out += fmt::format("kbgap_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route,
                         h.count);
    }
    out += fmt::format(
        "# HELP kbgap_http_requests_in_flight Requests being answered.\n"
        "# TYPE kbgap_http_requests_in_flight gauge\nkbgap_http_requests_in_flight {}\n"
        "# HELP kbgap_http_connections Open connections.\n"
        "# TYPE kbgap_http_connections gauge\nkbgap_http_connections {}\n",
        in_flight, connections);
    return out;
  }

 private:
  struct Histogram {
    std::uint64_t buckets[std::size(kBuckets)] = {};
    std::uint64_t count = 0;
    double sum = 0;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::map<std::pair<std::string, int>, std::uint64_t> requests;
    std::map<std::string, Histogram> latency;
  };
  std::vector<Shard> shards_;
};

// A field value without its optional white space (RFC 9110 §5.5).
std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string json_string(std::string_view s) {
  return boost::json::serialize(boost::json::value(s));
}

}  // namespace

struct HttpServer::Impl {
  Api& api;
  HttpOptions options;
  // One io_context per I/O thread: a connection lives on one thread, without locks or strands.
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  std::size_t next_io = 0;
  std::unique_ptr<asio::thread_pool> workers;
  tcp::acceptor acceptor;
  asio::signal_set signals;
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> in_flight{0}, connections{0};
  std::size_t max_connections = 0;
  std::uint64_t next_serial = 0;  // on the acceptor's thread
  asio::steady_timer accept_pause{*ios[0]};
  Metrics metrics{64};
  std::mutex log_mutex;

  class Session;
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<Session>> sessions;

  static unsigned thread_count(unsigned wanted) {
    return wanted != 0 ? wanted : std::max(1u, std::thread::hardware_concurrency());
  }
  static std::vector<std::unique_ptr<asio::io_context>> make_ios(unsigned n) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (unsigned i = 0; i < n; ++i) out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }
  Impl(Api& a, HttpOptions o)
      : api(a),
        options(std::move(o)),
        ios(make_ios(thread_count(options.threads))),
        acceptor(*ios[0]),
        signals(*ios[0], SIGINT, SIGTERM) {
    for (auto& io : ios) keep_running.push_back(asio::make_work_guard(*io));
  }

  void accept();
  void on_accept(asio::io_context& io, std::size_t shard, beast::error_code ec, tcp::socket socket);
  // Closes the oldest connection that has sent nothing, else the oldest idle one; false when
  // every connection is busy.
  bool evict_one();
  void begin_stop();
  void log(const Response& r, const std::string& method, double seconds, int status) {
    if (!r.problem.empty()) {
      // A fault's cause is logged even without the access log: the body only has the id.
      std::lock_guard lock(log_mutex);
      std::fprintf(stderr, "kbgap: %d on %s %s (correlation id %s): %s\n", status, method.c_str(),
                   r.route.c_str(), r.correlation_id.c_str(), r.problem.c_str());
    }
    if (!options.access_log) return;
    const std::string line = fmt::format(
        R"({{"time":"{}","correlationId":"{}","method":{},"route":{},"status":{},"latencyMs":{:.3f},"app":{}}})",
        utc_now(), r.correlation_id, json_string(method), json_string(r.route), status,
        seconds * 1000, json_string(r.app));
    std::lock_guard lock(log_mutex);
    std::fprintf(stdout, "%s\n", line.c_str());
    std::fflush(stdout);
  }
};

class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  // What a connection is doing, for eviction when the server is full.
  // Never sent a byte; between requests; chosen to make room; in a request.
  enum State { kSilent, kIdle, kEvicted, kBusy };
  Session(Impl& server, asio::io_context& io, std::size_t shard, tcp::socket socket,
          std::uint64_t serial)
      : server_(server), io_(io), shard_(shard), serial_(serial), stream_(std::move(socket)) {}
  State state() const { return state_.load(std::memory_order_relaxed); }
  // Marks a waiting connection to be closed for room; false when it is busy or already marked.
  bool mark_evicted() {
    State seen = state();
    while (seen == kSilent || seen == kIdle) {
      if (state_.compare_exchange_weak(seen, kEvicted)) return true;
    }
    return false;
  }
  std::uint64_t serial() const { return serial_; }

  void start() {
    ++server_.connections;
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }
  // Closes the connection when it is waiting for a request (used when the server stops, and to
  // make room for a new connection).
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state() != kBusy) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.close();
      }
    });
  }

 private:
  // Moves to `next` unless the acceptor chose this connection to make room: then false, and the
  // connection is to close (so that an eviction is never lost to a request arriving meanwhile).
  bool move_to(State next) {
    State seen = state();
    while (seen != kEvicted) {
      if (state_.compare_exchange_weak(seen, next)) return true;
    }
    return false;
  }

  void read() {
    if (!move_to(served_ ? kIdle : kSilent) || server_.stopping) return finish();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    if (buffer_.size() > 0) {
      if (!move_to(kBusy)) return finish();
      return read_header();
    }
    // The first byte of a request may take the idle time; the rest only the request time.
    stream_.expires_after(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->on_error(ec);
                              if (!self->move_to(kBusy)) return self->finish();
                              self->buffer_.commit(n);
                              self->read_header();
                            });
  }

  // The request must be read whole within the request time; then the connection is not closed
  // under the client (as the stream's own timeout would) but answered 408.
  void read_header() {
    stream_.expires_never();
    timed_out_ = false;
    timer_.expires_after(server_.options.request_timeout);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // cancelled: the request arrived
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_error(ec);
    // RFC 9112 §6.1-6.3: a request's body is framed by "chunked" as its final transfer coding
    // or by Content-Length, never both; kbgap takes no other coding. Anything else ("chunked,
    // identity", "identity", "xchunked") would make the body and the next request ambiguous
    // (request smuggling): 400, and the connection is closed.
    const auto& head = parser_->get();
    if (head.count(http::field::transfer_encoding) > 0) {
      const std::string coding = to_lower(trim_ows(head[http::field::transfer_encoding]));
      if (head.count(http::field::transfer_encoding) != 1 || coding != "chunked" ||
          head.count(http::field::content_length) > 0 || head.version() < 11) {
        timer_.cancel();
        return refuse(400, "BadRequest",
                      "Transfer-Encoding must be chunked alone, without Content-Length");
      }
    }
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec2, std::size_t) { self->on_read(ec2); });
  }

  void on_error(beast::error_code ec) {
    timer_.cancel();
    if (timed_out_) ec = beast::error::timeout;
    const bool started = (parser_ && parser_->got_some()) || buffer_.size() > 0;
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        (ec == beast::error::timeout && !started)) {
      return finish();
    }
    int status = 400;
    std::string code = "BadRequest", message = "The request is not valid HTTP/1.1";
    if (ec == beast::error::timeout) {
      status = 408;
      code = "RequestTimeout";
      message = "The request did not arrive in time";
    } else if (ec == http::error::header_limit) {
      status = 431;
      code = "RequestHeaderFieldsTooLarge";
      message =
          fmt::format("Request headers are limited to {} bytes", server_.options.max_header_bytes);
    } else if (ec == http::error::body_limit) {
      status = 413;
      code = "RequestEntityTooLarge";
      message =
          fmt::format("Request bodies are limited to {} bytes", server_.options.max_body_bytes);
    }
    refuse(status, code, message);
  }

  // Answers a request that cannot be read with an error, and closes the connection.
  void refuse(int status, std::string_view code, std::string_view message) {
    Response r;
    r.correlation_id = new_correlation_id();
    r.route = "invalid";
    r.status = status;
    r.content_type = "application/json; charset=utf-8";
    r.body = boost::json::serialize(boost::json::object{
        {"error",
         boost::json::object{{"code", code}, {"message", message}, {"target", r.correlation_id}}}});
    server_.metrics.record(shard_, r.route, status, 0);
    server_.log(r, "", 0, status);
    write(std::move(r), 11, false, false);
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_error(ec);
    timer_.cancel();
    auto req = std::make_shared<http::request<http::string_body>>(parser_->release());
    ++server_.in_flight;
    const auto started = std::chrono::steady_clock::now();
    Request in;
    in.method = std::string(req->method_string());
    in.target = std::string(req->target());
    in.authorization = std::string((*req)[http::field::authorization]);
    in.host = std::string((*req)[http::field::host]);
    in.scheme = (*req)["X-Forwarded-Proto"] == "https" ? "https" : "http";
    in.body = std::move(req->body());
    const bool head = req->method() == http::verb::head;
    const unsigned version = req->version();
    const bool keep = req->keep_alive();
    // Reads from the current snapshot are answered here; what would wait for storage (writes,
    // a snapshot to reload) runs on the worker pool.
    Response out = server_.api.handle(in, false);
    if (out.status != 0) return answer(std::move(out), in.method, started, version, keep, head);
    // The guard keeps the I/O threads running until the answer is written, even while stopping.
    auto guard = asio::make_work_guard(io_);
    asio::post(*server_.workers, [self = shared_from_this(), in = std::move(in), started, version,
                                  keep, head, guard]() mutable {
      Response later = self->server_.api.handle(in, true);
      asio::post(self->stream_.get_executor(),
                 [self, later = std::move(later), method = std::move(in.method), started, version,
                  keep, head]() mutable {
                   self->answer(std::move(later), method, started, version, keep, head);
                 });
    });
  }

  void answer(Response out, const std::string& method,
              std::chrono::steady_clock::time_point started, unsigned version, bool keep,
              bool head) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    server_.metrics.record(shard_, out.route, out.status, seconds);
    server_.log(out, method, seconds, out.status);
    --server_.in_flight;
    served_ = true;
    write(std::move(out), version, keep, head);
  }

  // The response as bytes, written in one go: status line, headers, body.
  void write(Response r, unsigned version, bool keep_alive, bool head) {
    const bool keep = keep_alive && !server_.stopping;
    out_.clear();
    const unsigned minor = version % 10;
    fmt::format_to(std::back_inserter(out_), "HTTP/1.{} {} {}\r\nServer: kbgap\r\n", minor,
                   r.status,
                   std::string_view(http::obsolete_reason(static_cast<http::status>(r.status))));
    if (r.status != 204) {
      fmt::format_to(std::back_inserter(out_), "Content-Type: {}\r\nContent-Length: {}\r\n",
                     r.content_type, r.body.size());
    }
    fmt::format_to(std::back_inserter(out_), "request-id: {}\r\n", r.correlation_id);
    for (const auto& [name, value] : r.headers) {
      fmt::format_to(std::back_inserter(out_), "{}: {}\r\n", name, value);
    }
    if (!keep) {
      out_ += "Connection: close\r\n";
    } else if (minor == 0) {
      out_ += "Connection: keep-alive\r\n";
    }
    out_ += "\r\n";
    if (!head && r.status != 204) out_ += r.body;
    stream_.expires_after(server_.options.request_timeout);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                        if (ec || !keep) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                          return self->finish();
                        }
                        self->read();
                      });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    --server_.connections;
    std::lock_guard lock(server_.sessions_mutex);
    server_.sessions.erase(shared_from_this());
  }

  Impl& server_;
  asio::io_context& io_;
  std::size_t shard_;     // its I/O thread's number: which metrics shard it counts in
  std::uint64_t serial_;  // the order of acceptance: lower is older
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  asio::steady_timer timer_{stream_.get_executor()};
  bool timed_out_ = false;
  std::atomic<State> state_{kSilent};
  bool served_ = false;  // has answered a request
  std::string out_;      // the response being written
  bool finished_ = false;
};

void HttpServer::Impl::accept() {
  const std::size_t shard = next_io;
  asio::io_context& io = *ios[shard];
  next_io = (next_io + 1) % ios.size();
  acceptor.async_accept(io, [this, &io, shard](beast::error_code ec, tcp::socket socket) {
    on_accept(io, shard, ec, std::move(socket));
  });
}

void HttpServer::Impl::on_accept(asio::io_context& io, std::size_t shard, beast::error_code ec,
                                 tcp::socket socket) {
  if (stopping || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of files (EMFILE, ENFILE) or memory: accepting again at once would spin a core while
    // nothing frees. Make room, and try again a little later.
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE ||
        ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
      evict_one();
    }
    accept_pause.expires_after(std::chrono::milliseconds(10));
    accept_pause.async_wait([this](beast::error_code wait) {
      if (!wait && !stopping) accept();
    });
    return;
  }
  if (static_cast<std::size_t>(connections.load()) >= max_connections && !evict_one()) {
    // Full of busy connections: this one cannot be served.
    beast::error_code ignored;
    socket.close(ignored);
  } else {
    auto session = std::make_shared<Session>(*this, io, shard, std::move(socket), next_serial++);
    {
      std::lock_guard lock(sessions_mutex);
      sessions.insert(session);
    }
    session->start();
  }
  accept();
}

bool HttpServer::Impl::evict_one() {
  for (;;) {
    std::shared_ptr<Session> pick;
    {
      std::lock_guard lock(sessions_mutex);
      for (const auto& s : sessions) {
        const Session::State state = s->state();
        if (state != Session::kSilent && state != Session::kIdle) continue;
        if (!pick || state < pick->state() ||
            (state == pick->state() && s->serial() < pick->serial())) {
          pick = s;
        }
      }
    }
    if (!pick) return false;
    // Marked here, so that the next eviction picks another even before this one has closed.
    if (pick->mark_evicted()) {
      pick->close_if_idle();
      return true;
    }
  }
}

void HttpServer::Impl::begin_stop() {
  if (stopping.exchange(true)) return;
  asio::post(*ios[0], [this] {
    beast::error_code ec;
    acceptor.close(ec);
    signals.cancel(ec);
    // Threads now run only as long as their connections (and answers in flight) need them.
    for (auto& guard : keep_running) guard.reset();
    std::lock_guard lock(sessions_mutex);
    for (const auto& s : sessions) s->close_if_idle();
  });
}

HttpServer::HttpServer(Api& api, HttpOptions options)
    : impl_(std::make_unique<Impl>(api, std::move(options))) {
  api.set_metrics([this] { return metrics(); });
  // As many files as the system allows this process (systemd's soft default is 1024 of a hard
  // 524288), and connections well below that, so that a crowd of idle clients cannot take the
  // files the server needs to answer.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
    (void)::getrlimit(RLIMIT_NOFILE, &files);
  }
  const std::size_t limit = files.rlim_cur == RLIM_INFINITY
                                ? std::size_t{1} << 20
                                : static_cast<std::size_t>(files.rlim_cur);
  // Kept for the rest: the files open now (database, I/O threads' queues) and kReservedFiles
  // more for what opens later (catalog reloads, JWKS fetches, logs).
  std::error_code ec;
  std::size_t open_now = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++open_now;
  }
  const std::size_t reserved = open_now + kReservedFiles;
  const std::size_t fit = limit > 2 * reserved ? limit - reserved : limit / 2;
  impl_->max_connections =
      impl_->options.max_connections == 0 ? fit : std::min(impl_->options.max_connections, fit);
}

HttpServer::~HttpServer() = default;

Result<void> HttpServer::start() {
  beast::error_code ec;
  const auto address = asio::ip::make_address(impl_->options.address, ec);
  if (ec)
    return invalid_input(fmt::format("listen: '{}' is not an IP address", impl_->options.address));
  const tcp::endpoint endpoint(address, impl_->options.port);
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return io_error(fmt::format("cannot listen on {}:{}: {}", impl_->options.address,
                                impl_->options.port, ec.message()));
  }
  return ok_result();
}

std::uint16_t HttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void HttpServer::run() {
  const unsigned threads = static_cast<unsigned>(impl_->ios.size());
  impl_->workers = std::make_unique<asio::thread_pool>(threads);
  impl_->signals.async_wait([this](beast::error_code ec, int) {
    if (!ec) impl_->begin_stop();
  });
  impl_->accept();
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([this, i] { impl_->ios[i]->run(); });
  impl_->ios[0]->run();
  for (auto& t : pool) t.join();
  impl_->workers->join();
}

void HttpServer::stop() {
  impl_->begin_stop();
}

std::string HttpServer::metrics() const {
  return impl_->metrics.text(impl_->in_flight.load(), impl_->connections.load());
}

}  // namespace kbgap::server
