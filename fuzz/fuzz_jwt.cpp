// libFuzzer target: a bearer token, verified as every API request's is. The key is the fuzz
// key (fuzz/fuzz-key.pem, a test key and nothing else), so seeds minted with it (make_corpus.py)
// reach the signature and claim checks. Time is fixed so that the seeds stay valid.
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

const auth::Verifier& verifier() {
  static const auth::Verifier v = [] {
    auto key = auth::SigningKey::load_or_create(KBGAP_SOURCE_DIR "/fuzz/fuzz-key.pem");
    if (!key) std::abort();
    auto keys = auth::KeySet::from_jwks(key->jwks(), "fuzz key");
    if (!keys) std::abort();
    return auth::Verifier({{"kbgap",
                            {"https://api.securitycenter.microsoft.com"},
                            std::make_shared<auth::KeySet>(std::move(*keys))}},
                          60);
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  auto result = verifier().verify(token, kNow);
  if (const auto* claims = std::get_if<auth::Claims>(&result)) {
    (void)claims->allows("Machine.Read.All", "Machine.Read");
  }
  (void)auth::base64url_decode(token);
  return 0;
}
