// libFuzzer target: the claims of correctly signed tokens. fuzz_jwt's inputs rarely get past the
// signature check; here each input, when it is a JSON object, is signed with the fuzz key
// (fuzz/fuzz-key.pem) and verified, so the time, audience and permission checks see every
// claim the fuzzer makes (exp 1e300, nbf as a string, ...).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <variant>

#include "auth/jwt.h"

namespace auth = kbgap::auth;

namespace {

constexpr std::int64_t kNow = 1795000000;  // 2026-11-18, inside the seeds' validity

struct Keys {
  auth::SigningKey key;
  auth::Verifier verifier;
};

const Keys& keys() {
  static const Keys k = [] {
    auto key = auth::SigningKey::load_or_create(KBGAP_SOURCE_DIR "/fuzz/fuzz-key.pem");
    if (!key) std::abort();
    auto set = auth::KeySet::from_jwks(key->jwks(), "fuzz key");
    if (!set) std::abort();
    auth::Verifier verifier({{"kbgap",
                              {"https://api.securitycenter.microsoft.com"},
                              std::make_shared<auth::KeySet>(std::move(*set))}},
                            60);
    return Keys{std::move(*key), std::move(verifier)};
  }();
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::system::error_code ec;
  boost::json::parse_options options;
  options.max_depth = 16;
  const boost::json::value claims = boost::json::parse(
      std::string_view(reinterpret_cast<const char*>(data), size), ec, {}, options);
  if (ec || !claims.is_object()) return 0;
  const Keys& k = keys();
  const auto result = k.verifier.verify(k.key.sign(claims.as_object()), kNow);
  if (const auto* c = std::get_if<auth::Claims>(&result)) {
    // An accepted token has a time the verifier could compare without overflow.
    if (c->expires < kNow - 60) std::abort();
    (void)c->allows("Machine.Read.All", "Machine.Read");
  }
  return 0;
}
