// Digests through OpenSSL's one-shot EVP interface.
#include "common/digest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

namespace kbgap {

namespace {

std::string hex(const unsigned char* digest, unsigned int length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::string hex_digest(std::string_view data, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, md, nullptr) != 1) {
    throw std::runtime_error("OpenSSL digest failed");  // only on allocation failure
  }
  return hex(digest, length);
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  return hex_digest(data, EVP_sha256());
}
std::string sha1_hex(std::string_view data) {
  return hex_digest(data, EVP_sha1());
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest,
           &length) == nullptr) {
    throw std::runtime_error("OpenSSL HMAC failed");  // only on allocation failure
  }
  return hex(digest, length);
}

}  // namespace kbgap
