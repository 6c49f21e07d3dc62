// Digests of byte strings as lower-case hex (OpenSSL).
#pragma once

#include <string>
#include <string_view>

namespace kbgap {

std::string sha256_hex(std::string_view data);
std::string sha1_hex(std::string_view data);  // 40 characters: the shape of a Defender device id
// HMAC-SHA-256 of `data` under `key`, as hex (the export APIs' signed download links).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

}  // namespace kbgap
