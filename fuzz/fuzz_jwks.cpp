// libFuzzer target: a JWKS document, as fetched from an issuer's jwks_uri or read from a file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/jwt.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto keys = kbgap::auth::KeySet::from_jwks(json, "fuzz.jwks");
  if (keys) (void)keys->contains("kid");
  return 0;
}
