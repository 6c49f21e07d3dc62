#include "server/http_client.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace kbgap::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

struct Url {
  bool tls = false;
  std::string host, port, target;
};

std::optional<Url> parse_url(std::string_view url) {
  Url u;
  if (url.starts_with("https://")) {
    u.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  const auto colon = authority.rfind(':');
  u.host = std::string(authority.substr(0, colon));
  u.port = colon == std::string_view::npos ? (u.tls ? "443" : "80")
                                           : std::string(authority.substr(colon + 1));
  if (u.host.empty()) return std::nullopt;
  return u;
}

template <typename Stream>
Result<std::string> exchange(Stream& stream, asio::io_context& io, const Url& u,
                             std::chrono::seconds timeout, std::size_t max_bytes) {
  http::request<http::empty_body> req{http::verb::get, u.target, 11};
  req.set(http::field::host, u.host);
  req.set(http::field::user_agent, "kbgap");
  req.set(http::field::accept, "application/json");
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_bytes);
  beast::error_code result;
  beast::get_lowest_layer(stream).expires_after(timeout);
  http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
    if (ec) {
      result = ec;
      return;
    }
    http::async_read(stream, buffer, parser,
                     [&](beast::error_code ec2, std::size_t) { result = ec2; });
  });
  io.restart();
  io.run();
  if (result) return io_error(fmt::format("{}: {}", u.host, result.message()));
  if (parser.get().result() != http::status::ok) {
    return io_error(fmt::format("{}{}: HTTP {}", u.host, u.target, parser.get().result_int()));
  }
  return std::move(parser.get().body());
}

}  // namespace

Result<std::string> http_get(const std::string& url, std::chrono::seconds timeout,
                             std::size_t max_bytes) {
  auto u = parse_url(url);
  if (!u) return invalid_input(fmt::format("'{}' is not an http:// or https:// URL", url));
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(u->host, u->port, ec);
  if (ec) return io_error(fmt::format("{}: {}", u->host, ec.message()));
  beast::error_code connected;
  if (!u->tls) {
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    stream.async_connect(endpoints,
                         [&](beast::error_code e, const tcp::endpoint&) { connected = e; });
    io.run();
    if (connected) return io_error(fmt::format("{}: {}", u->host, connected.message()));
    return exchange(stream, io, *u, timeout, max_bytes);
  }
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_default_verify_paths();
  ctx.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), u->host.c_str())) {
    return io_error(fmt::format("{}: cannot set the TLS server name", u->host));
  }
  stream.set_verify_callback(ssl::host_name_verification(u->host));
  beast::get_lowest_layer(stream).expires_after(timeout);
  beast::get_lowest_layer(stream).async_connect(endpoints, [&](beast::error_code e,
                                                               const tcp::endpoint&) {
    if (e) {
      connected = e;
      return;
    }
    stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e2) { connected = e2; });
  });
  io.run();
  if (connected) return io_error(fmt::format("{}: {}", u->host, connected.message()));
  return exchange(stream, io, *u, timeout, max_bytes);
}

}  // namespace kbgap::server
