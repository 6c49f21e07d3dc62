// The one HTTP(S) client for everything kbgap fetches (the catalog sync, issuers' JWKS): libcurl
// with TLS verified against the system's CA certificates (or a given bundle), the usual proxy
// variables (https_proxy / HTTPS_PROXY, http_proxy, NO_PROXY), redirects within http(s), connect
// and transfer timeouts, a size limit, and retries with backoff on 429, 5xx and broken
// transfers, honouring Retry-After (docs/operations.md, "Fetching").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"

namespace kbgap::net {

struct FetchOptions {
  std::string accept = "application/json";
  std::chrono::seconds connect_timeout{15};
  std::chrono::seconds timeout{300};  // one attempt, from connecting to the last byte
  std::size_t max_bytes = std::size_t{1} << 20;
  int attempts = 4;  // tries in all, for 429, 5xx and transfers that failed on the way
  std::chrono::milliseconds first_backoff{1000};  // doubled after each failed try
  // A Retry-After longer than this ends the fetch with an error instead of waiting.
  std::chrono::seconds max_retry_after{600};
  // A PEM bundle of the certificate authorities to trust instead of the system's (a relay or
  // mirror with a private CA); "" for the system's.
  std::string ca_file;
  // Told before each wait: why the last try failed and how long the wait is.
  std::function<void(const std::string& why, std::chrono::milliseconds wait)> on_retry;
  // Bytes received so far and the expected total (0 when the server did not say).
  std::function<void(std::uint64_t received, std::uint64_t total)> on_progress;
  // Set from another thread to end a fetch early (a server stopping): "cancelled".
  const std::atomic<bool>* cancel = nullptr;
};

// The body of a 200 answer to GET `url`. Errors are one line naming the URL and the cause
// ("HTTP 500 after 4 tries", "SSL certificate problem: ...", "timed out after 30 s", ...).
Result<std::string> http_get(const std::string& url, const FetchOptions& options);

// The URL without its query and user information, for messages and logs.
std::string url_for_messages(const std::string& url);
// "https://host:443" for any URL of that scheme, host and port; "" when it is not a URL.
std::string url_origin(const std::string& url);

}  // namespace kbgap::net
