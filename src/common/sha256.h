// SHA-256 of a byte string, as lower-case hex (OpenSSL).
#pragma once

#include <string>
#include <string_view>

namespace kbgap {

std::string sha256_hex(std::string_view data);

}  // namespace kbgap
