// JWT verification and signing on OpenSSL 3: RS256 only, keys from JWKS documents.
#include "auth/jwt.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <shared_mutex>
#include <sstream>

namespace kbgap::auth {
namespace json = boost::json;

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string bignum_bytes(const BIGNUM* bn) {
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// An RSA key's modulus and exponent, base64url, as JWKS and thumbprints write them.
struct PublicNumbers {
  std::string n, e;
};
std::optional<PublicNumbers> public_numbers(const EVP_PKEY* key) {
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
  EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e);
  std::optional<PublicNumbers> out;
  if (n && e)
    out = PublicNumbers{base64url_encode(bignum_bytes(n)), base64url_encode(bignum_bytes(e))};
  BN_free(n);
  BN_free(e);
  return out;
}

// An RSA public key from its modulus and exponent (big-endian bytes).
PkeyPtr rsa_public_key(std::string_view n, std::string_view e) {
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn_n(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()),
                nullptr),
      BN_free);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn_e(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()),
                nullptr),
      BN_free);
  if (!bn_n || !bn_e) return nullptr;
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                        OSSL_PARAM_BLD_free);
  if (!build || OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
      OSSL_PARAM_BLD_to_param(build.get()), OSSL_PARAM_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return PkeyPtr(key);
}

// A JSON object from base64url text; nullopt when it is not one.
std::optional<json::object> json_part(std::string_view part) {
  auto bytes = base64url_decode(part);
  if (!bytes) return std::nullopt;
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  json::value v = json::parse(*bytes, ec, {}, options);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

std::optional<std::string> string_claim(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return std::nullopt;
  return std::string(it->value().as_string());
}

// RFC 7519 NumericDates kbgap takes: whole or fractional seconds up to the end of year 9999, so
// that no arithmetic on them can overflow.
constexpr double kMaxNumericDate = 253402300799.0;  // 9999-12-31T23:59:59Z

// A NumericDate claim: nullopt when absent; an error when present but not a NumericDate in
// range (a string, a boolean, 1e300, NaN cannot be written in JSON but huge values can).
std::optional<Result<std::int64_t>> time_claim(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  const json::value& v = it->value();
  double seconds = 0;
  if (v.is_int64()) {
    seconds = static_cast<double>(v.as_int64());
  } else if (v.is_uint64()) {
    seconds = static_cast<double>(v.as_uint64());
  } else if (v.is_double()) {
    seconds = v.as_double();
  } else {
    return Result<std::int64_t>(invalid_input("not a number"));
  }
  if (!(seconds >= -kMaxNumericDate && seconds <= kMaxNumericDate)) {
    return Result<std::int64_t>(invalid_input("out of range"));
  }
  return Result<std::int64_t>(static_cast<std::int64_t>(std::floor(seconds)));
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const auto pos = kAlphabet.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero: one text, one byte string.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

struct KeySet::Key {
  std::string kid;
  PkeyPtr pkey;
};

Result<KeySet> KeySet::from_jwks(std::string_view text, std::string_view source) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return invalid_input(
        fmt::format("{}: not a JWKS document (a JSON object with \"keys\")", source));
  }
  auto keys = v.as_object().find("keys");
  if (keys == v.as_object().end() || !keys->value().is_array()) {
    return invalid_input(fmt::format("{}: JWKS without a \"keys\" array", source));
  }
  KeySet set;
  for (const json::value& k : keys->value().as_array()) {
    if (!k.is_object()) continue;
    const json::object& o = k.as_object();
    auto kty = string_claim(o, "kty");
    auto kid = string_claim(o, "kid");
    auto use = string_claim(o, "use");
    auto alg = string_claim(o, "alg");
    auto n = string_claim(o, "n");
    auto e = string_claim(o, "e");
    if (kty != "RSA" || !kid || !n || !e || (use && *use != "sig") || (alg && *alg != "RS256")) {
      continue;
    }
    auto nb = base64url_decode(*n);
    auto eb = base64url_decode(*e);
    if (!nb || !eb || nb->size() < 256) continue;  // RSA 2048 at least
    auto key = std::make_shared<Key>();
    key->kid = *kid;
    key->pkey = rsa_public_key(*nb, *eb);
    if (!key->pkey) continue;
    set.keys_.push_back(std::move(key));
  }
  if (set.keys_.empty()) {
    return invalid_input(
        fmt::format("{}: JWKS has no RSA signing key of 2048 bits or more", source));
  }
  return set;
}

const KeySet::Key* KeySet::find(std::string_view kid) const {
  for (const auto& k : keys_) {
    if (k->kid == kid) return k.get();
  }
  return nullptr;
}

bool Claims::allows(std::string_view application, std::string_view delegated) const {
  return std::find(roles.begin(), roles.end(), application) != roles.end() ||
         std::find(scopes.begin(), scopes.end(), delegated) != scopes.end();
}

std::string_view failure_message(TokenFailure f) {
  switch (f) {
    case TokenFailure::kMalformed:
      return "the bearer token is not a well-formed JWT";
    case TokenFailure::kAlgorithm:
      return "the token's signing algorithm is not accepted (only RS256)";
    case TokenFailure::kIssuer:
      return "the token's issuer is not accepted";
    case TokenFailure::kUnknownKey:
      return "the token is signed with a key the issuer does not publish";
    case TokenFailure::kSignature:
      return "the token's signature is not valid";
    case TokenFailure::kExpired:
      return "the token has expired";
    case TokenFailure::kNotYetValid:
      return "the token is not valid yet";
    case TokenFailure::kAudience:
      return "the token is not meant for this API (audience)";
    case TokenFailure::kTimeClaim:
      return "the token's exp, nbf or iat is not a NumericDate (seconds since 1970, up to 9999)";
    case TokenFailure::kTenant:
      return "the token's tid is not a string, or not the tenant its issuer serves";
  }
  return "the token is not valid";
}

struct Verifier::Shared {
  mutable std::shared_mutex mutex;
  std::vector<Issuer> issuers;
};

Verifier::Verifier(std::vector<Issuer> issuers, std::int64_t leeway_seconds)
    : shared_(std::make_shared<Shared>()), leeway_(leeway_seconds) {
  shared_->issuers = std::move(issuers);
}

void Verifier::set_keys(std::string_view issuer, std::shared_ptr<const KeySet> keys) {
  std::unique_lock lock(shared_->mutex);
  for (Issuer& i : shared_->issuers) {
    if (i.issuer == issuer) i.keys = keys;
  }
}

std::variant<Claims, TokenFailure> Verifier::verify(std::string_view token,
                                                    std::int64_t now) const {
  if (token.size() > kMaxTokenBytes) return TokenFailure::kMalformed;
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return TokenFailure::kMalformed;
  }
  auto header = json_part(token.substr(0, dot1));
  auto payload = json_part(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header || !payload || !signature) return TokenFailure::kMalformed;
  if (string_claim(*header, "alg") != "RS256") return TokenFailure::kAlgorithm;

  const auto iss = string_claim(*payload, "iss");
  std::shared_lock lock(shared_->mutex);
  const Issuer* issuer = nullptr;
  for (const Issuer& i : shared_->issuers) {
    if (iss && i.issuer == *iss) issuer = &i;
  }
  if (!issuer) return TokenFailure::kIssuer;
  const auto kid = string_claim(*header, "kid");
  const KeySet::Key* key = issuer->keys && kid ? issuer->keys->find(*kid) : nullptr;
  if (!key) return TokenFailure::kUnknownKey;

  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const std::string_view signed_part = token.substr(0, dot2);
  if (!ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key->pkey.get()) != 1 ||
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()), signature->size(),
          reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) != 1) {
    return TokenFailure::kSignature;
  }

  const auto exp = time_claim(*payload, "exp");
  const auto nbf = time_claim(*payload, "nbf");
  const auto iat = time_claim(*payload, "iat");
  for (const auto* claim : {&exp, &nbf, &iat}) {
    if (*claim && !**claim) return TokenFailure::kTimeClaim;
  }
  // Both sides stay far from the int64 limits: claims are within year 9999, and so is now.
  if (!exp || now - leeway_ > **exp) return TokenFailure::kExpired;
  if (nbf && now + leeway_ < **nbf) return TokenFailure::kNotYetValid;
  bool audience = false;
  if (auto aud = payload->find("aud"); aud != payload->end()) {
    auto accepted = [&](const json::value& a) {
      return a.is_string() && std::find(issuer->audiences.begin(), issuer->audiences.end(),
                                        std::string_view(a.as_string())) != issuer->audiences.end();
    };
    if (aud->value().is_array()) {
      for (const json::value& a : aud->value().as_array()) audience = audience || accepted(a);
    } else {
      audience = accepted(aud->value());
    }
  }
  if (!audience) return TokenFailure::kAudience;

  Claims c;
  c.issuer = *iss;
  c.subject = string_claim(*payload, "sub").value_or("");
  if (auto tid = payload->find("tid"); tid != payload->end()) {
    if (!tid->value().is_string()) return TokenFailure::kTenant;
    c.tenant = std::string(tid->value().as_string());
  }
  if (!issuer->tenant.empty()) {
    if (!c.tenant.empty() && c.tenant != issuer->tenant) return TokenFailure::kTenant;
    c.tenant = issuer->tenant;
  }
  c.app = string_claim(*payload, "appid").value_or(string_claim(*payload, "azp").value_or(""));
  c.expires = **exp;
  if (auto roles = payload->find("roles"); roles != payload->end() && roles->value().is_array()) {
    for (const json::value& r : roles->value().as_array()) {
      if (r.is_string()) c.roles.emplace_back(r.as_string());
    }
  }
  if (auto scp = string_claim(*payload, "scp")) {
    std::istringstream words(*scp);
    for (std::string w; words >> w;) c.scopes.push_back(w);
  }
  return c;
}

struct SigningKey::Pkey {
  PkeyPtr pkey;
};

Result<SigningKey> SigningKey::load_or_create(const std::filesystem::path& pem) {
  SigningKey key;
  key.key_ = std::make_shared<Pkey>();
  std::error_code ec;
  if (!std::filesystem::exists(pem, ec)) {
    std::filesystem::create_directories(pem.parent_path(), ec);
    if (ec) {
      return io_error(
          fmt::format("{}: cannot create directory: {}", pem.parent_path().string(), ec.message()));
    }
    PkeyPtr fresh(EVP_RSA_gen(2048));
    if (!fresh) return io_error("cannot generate an RSA key (OpenSSL)");
    // Written to a private temporary file, then renamed: never a half key, never readable by
    // others.
    const std::filesystem::path tmp = pem.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return io_error(fmt::format("{}: cannot write the signing key", tmp.string()));
    FILE* f = ::fdopen(fd, "w");
    const bool written =
        f && PEM_write_PrivateKey(f, fresh.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
    const bool flushed = f && std::fflush(f) == 0 && ::fsync(fd) == 0;
    if (f) std::fclose(f);
    if (!written || !flushed) {
      return io_error(fmt::format("{}: cannot write the signing key", tmp.string()));
    }
    std::filesystem::rename(tmp, pem, ec);
    if (ec) return io_error(fmt::format("{}: {}", pem.string(), ec.message()));
  }
  FILE* f = std::fopen(pem.c_str(), "r");
  if (!f) return io_error(fmt::format("{}: cannot read the signing key", pem.string()));
  key.key_->pkey.reset(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!key.key_->pkey || EVP_PKEY_get_base_id(key.key_->pkey.get()) != EVP_PKEY_RSA) {
    return invalid_input(fmt::format("{}: not an RSA private key in PEM", pem.string()));
  }
  // RFC 7638 thumbprint: SHA-256 of {"e":..,"kty":"RSA","n":..} with members in that order.
  const auto numbers = public_numbers(key.key_->pkey.get());
  if (!numbers) {
    return invalid_input(fmt::format("{}: the RSA key has no modulus or exponent", pem.string()));
  }
  const std::string thumb_input =
      fmt::format(R"({{"e":"{}","kty":"RSA","n":"{}"}})", numbers->e, numbers->n);
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(thumb_input.data()), thumb_input.size(),
         digest.data());
  key.kid_ = base64url_encode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  return key;
}

std::string SigningKey::jwks() const {
  const auto numbers = public_numbers(key_->pkey.get());  // checked when the key was loaded
  json::object k{{"kty", "RSA"}, {"use", "sig"},    {"alg", "RS256"},
                 {"kid", kid_},  {"n", numbers->n}, {"e", numbers->e}};
  return json::serialize(json::object{{"keys", json::array{k}}});
}

std::string SigningKey::sign(const json::object& claims) const {
  const std::string header = base64url_encode(
      json::serialize(json::object{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid_}}));
  const std::string signing_input = header + "." + base64url_encode(json::serialize(claims));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t length = 0;
  std::string signature;
  if (ctx && EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_->pkey.get()) == 1 &&
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) == 1) {
    signature.resize(length);
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
      signature.clear();
    }
    signature.resize(length);
  }
  return signing_input + "." + base64url_encode(signature);
}

}  // namespace kbgap::auth
