// A small HTTP(S) GET for fetching an issuer's JWKS: TLS with the system's CA certificates and
// host name checks, a deadline, and a size limit.
#pragma once

#include <chrono>
#include <string>

#include "common/result.h"

namespace kbgap::server {

Result<std::string> http_get(const std::string& url, std::chrono::seconds timeout,
                             std::size_t max_bytes = 1 << 20);

}  // namespace kbgap::server
