// Test helper: signs any claims with a given kbgap key file, so that the API tests can make
// expired, not-yet-valid, wrong-audience and wrong-issuer tokens. Not installed, not in kbgap.
// Usage: kbgap_token_tool <signing-key.pem> '<claims as JSON>'
//        kbgap_token_tool <signing-key.pem> --jwks      (the key's public JWKS)
#include <boost/json.hpp>
#include <cstdio>
#include <string_view>

#include "auth/jwt.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kbgap_token_tool <signing-key.pem> '<claims JSON>'\n");
    return 2;
  }
  auto key = kbgap::auth::SigningKey::load_or_create(argv[1]);
  if (!key) {
    std::fprintf(stderr, "%s\n", key.error().message.c_str());
    return 1;
  }
  if (std::string_view(argv[2]) == "--jwks") {
    std::printf("%s\n", key->jwks().c_str());
    return 0;
  }
  boost::system::error_code ec;
  auto claims = boost::json::parse(argv[2], ec);
  if (ec || !claims.is_object()) {
    std::fprintf(stderr, "claims must be a JSON object\n");
    return 2;
  }
  std::printf("%s\n", key->sign(claims.as_object()).c_str());
  return 0;
}
