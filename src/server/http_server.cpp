// The Beast transport of the API.
#include "server/http_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/clock.h"

namespace kbgap::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};

class Metrics {
 public:
  void record(const std::string& route, int status, double seconds) {
    std::lock_guard lock(mutex_);
    ++requests_[{route, status}];
    Histogram& h = latency_[route];
    for (std::size_t i = 0; i < std::size(kBuckets); ++i) {
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
  }
  std::string text(std::int64_t in_flight, std::int64_t connections) const {
    std::lock_guard lock(mutex_);
    std::string out =
        "# HELP kbgap_http_requests_total HTTP requests by route and status.\n"
        "# TYPE kbgap_http_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      out += fmt::format("kbgap_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first,
                         key.second, n);
    }
    out +=
        "# HELP kbgap_http_request_duration_seconds Time to answer a request, by route.\n"
        "# TYPE kbgap_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
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
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

std::string json_string(std::string_view s) {
  return boost::json::serialize(boost::json::value(s));
}

}  // namespace

struct HttpServer::Impl {
  Api& api;
  HttpOptions options;
  asio::io_context io;
  std::unique_ptr<asio::thread_pool> workers;
  tcp::acceptor acceptor{io};
  asio::signal_set signals{io, SIGINT, SIGTERM};
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> in_flight{0}, connections{0};
  Metrics metrics;
  std::mutex log_mutex;

  class Session;
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<Session>> sessions;

  Impl(Api& a, HttpOptions o) : api(a), options(std::move(o)) {}

  void accept();
  void begin_stop();
  void log(const Response& r, const std::string& method, double seconds, int status) {
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
  Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}

  void start() {
    ++server_.connections;
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }
  // Closes the connection when it is waiting for a request (used when the server stops).
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.close();
      }
    });
  }

 private:
  void read() {
    busy_ = false;
    if (server_.stopping) return finish();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    if (buffer_.size() > 0) return read_header();
    // The first byte of a request may take the idle time; the rest only the request time.
    stream_.expires_after(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->on_error(ec);
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
    busy_ = true;
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
    Response r;
    r.correlation_id = new_correlation_id();
    r.route = "invalid";
    r.status = status;
    r.content_type = "application/json; charset=utf-8";
    r.body = boost::json::serialize(boost::json::object{
        {"error",
         boost::json::object{{"code", code}, {"message", message}, {"target", r.correlation_id}}}});
    server_.metrics.record(r.route, status, 0);
    server_.log(r, "", 0, status);
    write(std::move(r), 11, false, false);
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_error(ec);
    timer_.cancel();
    auto req = std::make_shared<http::request<http::string_body>>(parser_->release());
    ++server_.in_flight;
    const auto started = std::chrono::steady_clock::now();
    // The API may block (store, evaluation): it runs on the worker pool.
    // The guard keeps the I/O threads running until the answer is written, even while stopping.
    auto guard = asio::make_work_guard(server_.io);
    asio::post(*server_.workers, [self = shared_from_this(), req, started, guard] {
      Request in;
      in.method = std::string(req->method_string());
      in.target = std::string(req->target());
      in.authorization = std::string((*req)[http::field::authorization]);
      in.host = std::string((*req)[http::field::host]);
      const auto proto = (*req)["X-Forwarded-Proto"];
      in.scheme = proto == "https" ? "https" : "http";
      in.content_type = std::string((*req)[http::field::content_type]);
      in.body = std::move(req->body());
      Response out = self->server_.api.handle(in);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      self->server_.metrics.record(out.route, out.status, seconds);
      self->server_.log(out, in.method, seconds, out.status);
      const bool head = req->method() == http::verb::head;
      asio::post(self->stream_.get_executor(),
                 [self, out = std::move(out), version = req->version(), keep = req->keep_alive(),
                  head]() mutable {
                   --self->server_.in_flight;
                   self->write(std::move(out), version, keep, head);
                 });
    });
  }

  void write(Response r, unsigned version, bool keep_alive, bool head) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version);
    res->set(http::field::server, "kbgap");
    if (!r.body.empty() || r.status != 204) res->set(http::field::content_type, r.content_type);
    res->set("request-id", r.correlation_id);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    const bool keep = keep_alive && !server_.stopping && r.status != 408 && r.status != 413 &&
                      r.status != 431 && r.status != 400;
    res->keep_alive(keep);
    if (!head) res->body() = std::move(r.body);
    res->prepare_payload();
    if (head) res->body().clear();
    stream_.expires_after(server_.options.request_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep](beast::error_code ec, std::size_t) {
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
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  asio::steady_timer timer_{stream_.get_executor()};
  bool timed_out_ = false;
  bool busy_ = false;
  bool finished_ = false;
};

void HttpServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!stopping && ec != asio::error::operation_aborted) accept();
      return;
    }
    auto session = std::make_shared<Session>(*this, std::move(socket));
    {
      std::lock_guard lock(sessions_mutex);
      sessions.insert(session);
    }
    session->start();
    if (!stopping) accept();
  });
}

void HttpServer::Impl::begin_stop() {
  if (stopping.exchange(true)) return;
  asio::post(io, [this] {
    beast::error_code ec;
    acceptor.close(ec);
    signals.cancel(ec);
    std::lock_guard lock(sessions_mutex);
    for (const auto& s : sessions) s->close_if_idle();
  });
}

HttpServer::HttpServer(Api& api, HttpOptions options)
    : impl_(std::make_unique<Impl>(api, std::move(options))) {
  api.set_metrics([this] { return metrics(); });
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
  const unsigned threads = impl_->options.threads != 0
                               ? impl_->options.threads
                               : std::max(1u, std::thread::hardware_concurrency());
  impl_->workers = std::make_unique<asio::thread_pool>(threads);
  impl_->signals.async_wait([this](beast::error_code ec, int) {
    if (!ec) impl_->begin_stop();
  });
  impl_->accept();
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([this] { impl_->io.run(); });
  impl_->io.run();
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
