// Bearer tokens (docs/api.md §5): RS256 JWTs checked against configured issuers, their audiences
// and their JWKS; and kbgap as its own issuer for one machine (an RSA key in the data directory).
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace kbgap::auth {

std::string base64url_encode(std::string_view bytes);
// nullopt when `text` holds anything but the base64url alphabet (no padding) or cannot be one.
std::optional<std::string> base64url_decode(std::string_view text);

// The RSA public keys of a JWKS document, by key id.
class KeySet {
 public:
  // {"keys": [{"kty": "RSA", "kid": "...", "n": "...", "e": "..."}, ...]}; keys of other types or
  // uses are passed over; a document with no usable RSA key is an error.
  static Result<KeySet> from_jwks(std::string_view json, std::string_view source);
  std::size_t size() const { return keys_.size(); }
  bool contains(std::string_view kid) const { return find(kid) != nullptr; }

 private:
  friend class Verifier;
  struct Key;
  const Key* find(std::string_view kid) const;
  std::vector<std::shared_ptr<const Key>> keys_;
};

// Who may call, and with which keys.
struct Issuer {
  std::string issuer;                  // the exact `iss`
  std::vector<std::string> audiences;  // accepted `aud` values
  std::shared_ptr<const KeySet> keys;  // null while its JWKS cannot be had: its tokens fail
  // The tenant every token of this issuer belongs to (docs/api.md, "Tenants"): a token naming
  // another in `tid` is refused. "": the token's `tid` says (kbgap's own issuer; Entra's, whose
  // `iss` names the tenant already).
  std::string tenant = {};
};

struct Claims {
  std::string issuer, subject;
  std::string tenant;               // the issuer's tenant, else the token's tid, else ""
  std::string app;                  // appid (v1) or azp (v2): the calling application
  std::vector<std::string> roles;   // application permissions
  std::vector<std::string> scopes;  // delegated permissions (scp, space-separated)
  std::int64_t expires = 0;         // exp, seconds since the epoch
  // An application token with `application` in roles, or a delegated one with `delegated` in scp.
  bool allows(std::string_view application, std::string_view delegated) const;
};

enum class TokenFailure {
  kMalformed,    // not three base64url parts of JSON, or too large
  kAlgorithm,    // alg is not RS256 (none, HS256, ...)
  kIssuer,       // iss is not a configured issuer
  kUnknownKey,   // kid not in the issuer's JWKS (or the JWKS could not be had)
  kSignature,    // the signature does not verify
  kExpired,      // exp (plus leeway) is past, or there is no exp
  kNotYetValid,  // nbf (minus leeway) is in the future
  kAudience,     // aud is none of the issuer's audiences
  kTimeClaim,    // exp, nbf or iat is not a NumericDate in range (a string, 1e300, ...)
  kTenant,       // tid is not a string, or names a tenant other than the issuer's
};
std::string_view failure_message(TokenFailure f);

class Verifier {
 public:
  static constexpr std::size_t kMaxTokenBytes = 16 * 1024;
  Verifier(std::vector<Issuer> issuers, std::int64_t leeway_seconds);
  // The token's claims at `now` (seconds since the epoch), or why it is refused.
  std::variant<Claims, TokenFailure> verify(std::string_view token, std::int64_t now) const;
  // Replaces an issuer's keys (a refreshed JWKS); copies of this verifier see the change.
  void set_keys(std::string_view issuer, std::shared_ptr<const KeySet> keys);

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
  std::int64_t leeway_;
};

// kbgap's own signing key (RSA 2048), kept as PEM in the data directory with mode 0600.
class SigningKey {
 public:
  // Loads the key at `pem`, creating it (and its directory) when there is none.
  static Result<SigningKey> load_or_create(const std::filesystem::path& pem);
  const std::string& kid() const { return kid_; }             // RFC 7638 thumbprint, base64url
  std::string jwks() const;                                   // the public key as a JWKS document
  std::string sign(const boost::json::object& claims) const;  // an RS256 JWT

 private:
  struct Pkey;
  std::shared_ptr<Pkey> key_;
  std::string kid_;
};

}  // namespace kbgap::auth
