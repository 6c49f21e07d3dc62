#include "net/http_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

namespace kbgap::net {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct ListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

struct Transfer {
  std::string body;
  std::size_t max_bytes = 0;
  bool too_large = false;
  const FetchOptions* options = nullptr;
};

std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (t->body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;  // ends the transfer with CURLE_WRITE_ERROR
  }
  t->body.append(data, n);
  return n;
}

int on_progress(void* user, curl_off_t total, curl_off_t received, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->options->cancel && t->options->cancel->load()) return 1;  // ends it: aborted by callback
  if (t->options->on_progress) {
    t->options->on_progress(static_cast<std::uint64_t>(std::max<curl_off_t>(received, 0)),
                            static_cast<std::uint64_t>(std::max<curl_off_t>(total, 0)));
  }
  return 0;
}

// What one try ended with.
struct Outcome {
  std::string error;  // empty: a 200 with its body in the transfer
  bool retry = false;
  std::chrono::seconds retry_after{0};
};

// Failures worth another try: the server said so (429, 5xx, 408) or the transfer broke on the
// way. A timeout, a refused certificate, an unknown host or another 4xx will not change.
bool transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

Outcome try_once(const std::string& url, const FetchOptions& options, Transfer& transfer) {
  std::unique_ptr<CURL, EasyDeleter> curl(curl_easy_init());
  if (!curl) return {"cannot start a transfer (libcurl)", false, {}};
  CURL* c = curl.get();
  char error[CURL_ERROR_SIZE] = {};
  std::unique_ptr<curl_slist, ListDeleter> headers(
      curl_slist_append(nullptr, ("Accept: " + options.accept).c_str()));
  transfer.body.clear();
  transfer.too_large = false;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kbgap/" KBGAP_VERSION);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  // An https fetch never follows a redirect to plain http (it could then be altered in transit).
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR,
                   url.starts_with("https://") ? "https" : "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decompress
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options.connect_timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_bytes));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, options.on_progress || options.cancel ? 0L : 1L);
  if (!options.ca_file.empty()) {  // instead of the system's CAs, not beside them
    curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
  }

  const CURLcode code = curl_easy_perform(c);
  if (options.cancel && options.cancel->load()) return {"cancelled", false, {}};
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (transfer.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return {fmt::format("the answer is larger than {} bytes", options.max_bytes), false, {}};
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    curl_off_t connected_after = 0;  // microseconds; 0 when it never connected
    curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connected_after);
    const bool connecting = connected_after == 0;
    return {fmt::format("timed out after {} s{}",
                        (connecting ? options.connect_timeout : options.timeout).count(),
                        connecting ? " (connecting)" : ""),
            false,
            {}};
  }
  if (code != CURLE_OK) {
    return {error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(code)),
            transient(code),
            {}};
  }
  if (status == 200) return {};
  curl_off_t retry_after = 0;
  curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after);
  const bool again = status == 429 || status == 408 || (status >= 500 && status <= 599);
  return {fmt::format("HTTP {}", status), again,
          std::chrono::seconds(std::max<curl_off_t>(retry_after, 0))};
}

}  // namespace

std::string url_for_messages(const std::string& url) {
  global_init();
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return url;
  curl_url_set(u.get(), CURLUPART_QUERY, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
  char* text = nullptr;
  if (curl_url_get(u.get(), CURLUPART_URL, &text, 0) != CURLUE_OK || !text) return url;
  std::string out(text);
  curl_free(text);
  return out;
}

std::string url_origin(const std::string& url) {
  global_init();
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "";
  std::string parts[3];
  const CURLUPart which[3] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
  for (int i = 0; i < 3; ++i) {
    char* text = nullptr;
    if (curl_url_get(u.get(), which[i], &text, CURLU_DEFAULT_PORT) != CURLUE_OK || !text) return "";
    parts[i] = text;
    curl_free(text);
  }
  std::string origin = fmt::format("{}://{}:{}", parts[0], parts[1], parts[2]);
  std::transform(origin.begin(), origin.end(), origin.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return origin;
}

Result<std::string> http_get(const std::string& url, const FetchOptions& options) {
  global_init();
  if (!url.starts_with("https://") && !url.starts_with("http://")) {
    return invalid_input(fmt::format("'{}' is not an http:// or https:// URL", url));
  }
  Transfer transfer;
  transfer.max_bytes = options.max_bytes;
  transfer.options = &options;
  const int attempts = std::max(1, options.attempts);
  std::chrono::milliseconds backoff = options.first_backoff;
  for (int attempt = 1;; ++attempt) {
    Outcome outcome = try_once(url, options, transfer);
    if (outcome.error.empty()) return std::move(transfer.body);
    if (!outcome.retry || attempt >= attempts) {
      return io_error(fmt::format("{}: {}{}", url_for_messages(url), outcome.error,
                                  attempt > 1 ? fmt::format(" (after {} tries)", attempt) : ""));
    }
    if (outcome.retry_after > options.max_retry_after) {
      return io_error(fmt::format("{}: {}, and the server asks to wait {} s (more than {} s)",
                                  url_for_messages(url), outcome.error, outcome.retry_after.count(),
                                  options.max_retry_after.count()));
    }
    const auto wait = std::max<std::chrono::milliseconds>(backoff, outcome.retry_after);
    if (options.on_retry) {
      options.on_retry(fmt::format("{}: {}", url_for_messages(url), outcome.error), wait);
    }
    // The wait, in steps short enough for a cancel to end it.
    for (auto left = wait; left.count() > 0; left -= std::chrono::milliseconds(100)) {
      if (options.cancel && options.cancel->load()) {
        return io_error(fmt::format("{}: cancelled", url_for_messages(url)));
      }
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(100)));
    }
    backoff *= 2;
  }
}

}  // namespace kbgap::net
