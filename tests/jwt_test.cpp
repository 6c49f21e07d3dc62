// Tokens: base64url, kbgap's own signing key, and every way a token is refused.
#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <limits>
#include <optional>

#include "test_support.h"

namespace kbgap::auth {
namespace {

namespace json = boost::json;
constexpr std::int64_t kNow = 1'790'000'000;
constexpr const char* kAudience = "https://api.securitycenter.microsoft.com";

json::object claims(std::int64_t exp = kNow + 3600) {
  return json::object{{"iss", "kbgap"},
                      {"aud", kAudience},
                      {"sub", "tester"},
                      {"appid", "app-1"},
                      {"tid", "t"},
                      {"iat", kNow},
                      {"nbf", kNow - 10},
                      {"exp", exp},
                      {"roles", json::array{"Software.Read.All", "Machine.Read.All"}}};
}

struct Keys {
  test::TempDir dir;
  SigningKey key = *SigningKey::load_or_create(dir.path() / "keys" / "signing-key.pem");
  SigningKey other = *SigningKey::load_or_create(dir.path() / "other" / "signing-key.pem");
  Verifier verifier() const {
    auto set = KeySet::from_jwks(key.jwks(), "jwks");
    EXPECT_TRUE(set);
    return Verifier({{"kbgap", {kAudience}, std::make_shared<KeySet>(std::move(*set))}}, 60);
  }
};

std::string part(const json::object& o) {
  return base64url_encode(json::serialize(o));
}

TEST(Base64Url, RoundTripsAndRefusesOtherAlphabets) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    EXPECT_EQ(base64url_decode(base64url_encode(s)), s);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_FALSE(base64url_decode("ab+/"));   // base64, not base64url
  EXPECT_FALSE(base64url_decode("Zm9v="));  // padding
  EXPECT_FALSE(base64url_decode("Zm9vY"));  // a length no encoding has
  EXPECT_FALSE(base64url_decode("Zh"));     // non-zero leftover bits
}

TEST(SigningKey, IsCreatedPrivateOnceAndKeptAcrossLoads) {
  test::TempDir dir;
  const auto pem = dir.path() / "keys" / "signing-key.pem";
  auto first = SigningKey::load_or_create(pem);
  ASSERT_TRUE(first) << first.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(pem.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = SigningKey::load_or_create(pem);
  ASSERT_TRUE(again);
  EXPECT_EQ(first->kid(), again->kid());
  EXPECT_EQ(first->kid().size(), 43u);  // a base64url SHA-256
  test::write_file(dir.path() / "bad.pem", "not a key");
  auto bad = SigningKey::load_or_create(dir.path() / "bad.pem");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.pem"), std::string::npos);
}

TEST(Verifier, AcceptsItsIssuersTokensWithTheirPermissions) {
  Keys k;
  auto v = k.verifier().verify(k.key.sign(claims()), kNow);
  ASSERT_TRUE(std::holds_alternative<Claims>(v));
  const Claims& c = std::get<Claims>(v);
  EXPECT_EQ(c.app, "app-1");
  EXPECT_TRUE(c.allows("Software.Read.All", "Software.Read"));
  EXPECT_FALSE(c.allows("Machine.ReadWrite.All", "Machine.ReadWrite"));
  // Delegated tokens carry scp, and azp (v2) names the application.
  json::object delegated = claims();
  delegated.erase("roles");
  delegated.erase("appid");
  delegated["scp"] = "Machine.Read Software.Read";
  delegated["azp"] = "app-2";
  delegated["aud"] = json::array{"something-else", kAudience};
  auto d = k.verifier().verify(k.key.sign(delegated), kNow);
  ASSERT_TRUE(std::holds_alternative<Claims>(d));
  EXPECT_EQ(std::get<Claims>(d).app, "app-2");
  EXPECT_TRUE(std::get<Claims>(d).allows("Software.Read.All", "Software.Read"));
  // Within the leeway: just expired, not quite valid yet.
  EXPECT_TRUE(
      std::holds_alternative<Claims>(k.verifier().verify(k.key.sign(claims()), kNow + 3650)));
}

TokenFailure failure(const Verifier& v, const std::string& token) {
  auto r = v.verify(token, kNow);
  EXPECT_TRUE(std::holds_alternative<TokenFailure>(r)) << token;
  return std::holds_alternative<TokenFailure>(r) ? std::get<TokenFailure>(r)
                                                 : TokenFailure::kMalformed;
}

// Why the token is refused, or nullopt when it is accepted.
std::optional<TokenFailure> outcome(const Verifier& v, const std::string& token) {
  auto r = v.verify(token, kNow);
  if (std::holds_alternative<TokenFailure>(r)) return std::get<TokenFailure>(r);
  return std::nullopt;
}

TEST(Verifier, RefusesEveryBadToken) {
  Keys k;
  const Verifier v = k.verifier();
  const std::string good = k.key.sign(claims());
  const auto dot1 = good.find('.'), dot2 = good.rfind('.');
  const std::string header = good.substr(0, dot1), payload = good.substr(dot1 + 1, dot2 - dot1 - 1),
                    signature = good.substr(dot2 + 1);
  EXPECT_EQ(failure(v, ""), TokenFailure::kMalformed);
  EXPECT_EQ(failure(v, "abc"), TokenFailure::kMalformed);
  EXPECT_EQ(failure(v, header + "." + payload), TokenFailure::kMalformed);
  EXPECT_EQ(failure(v, good + ".x"), TokenFailure::kMalformed);
  EXPECT_EQ(failure(v, header + ".%%%." + signature), TokenFailure::kMalformed);
  EXPECT_EQ(failure(v, std::string(Verifier::kMaxTokenBytes + 1, 'a')), TokenFailure::kMalformed);
  // alg none, and HS256 keyed with the public JWKS (the classic confusion attack).
  EXPECT_EQ(failure(v, part({{"alg", "none"}, {"typ", "JWT"}}) + "." + payload + "."),
            TokenFailure::kAlgorithm);
  EXPECT_EQ(
      failure(v, part({{"alg", "HS256"}, {"kid", k.key.kid()}}) + "." + payload + "." + signature),
      TokenFailure::kAlgorithm);
  // Another key, an unknown kid, a changed payload, a cut signature.
  EXPECT_EQ(failure(v, k.other.sign(claims())), TokenFailure::kUnknownKey);
  EXPECT_EQ(failure(v, part({{"alg", "RS256"}, {"kid", "nope"}}) + "." + payload + "." + signature),
            TokenFailure::kUnknownKey);
  json::object more = claims();
  more["roles"] = json::array{"Machine.ReadWrite.All"};
  EXPECT_EQ(failure(v, header + "." + part(more) + "." + signature), TokenFailure::kSignature);
  const std::string cut = base64url_decode(signature)->substr(0, 200);
  EXPECT_EQ(failure(v, header + "." + payload + "." + base64url_encode(cut)),
            TokenFailure::kSignature);
  // Time, audience, issuer.
  EXPECT_EQ(failure(v, k.key.sign(claims(kNow - 61))), TokenFailure::kExpired);
  json::object no_exp = claims();
  no_exp.erase("exp");
  EXPECT_EQ(failure(v, k.key.sign(no_exp)), TokenFailure::kExpired);
  json::object later = claims();
  later["nbf"] = kNow + 120;
  EXPECT_EQ(failure(v, k.key.sign(later)), TokenFailure::kNotYetValid);
  json::object aud = claims();
  aud["aud"] = "https://graph.microsoft.com";
  EXPECT_EQ(failure(v, k.key.sign(aud)), TokenFailure::kAudience);
  json::object iss = claims();
  iss["iss"] = "https://sts.windows.net/other/";
  EXPECT_EQ(failure(v, k.key.sign(iss)), TokenFailure::kIssuer);
  // An issuer whose JWKS could not be had refuses all its tokens.
  const Verifier without({{"kbgap", {kAudience}, nullptr}}, 60);
  EXPECT_EQ(failure(without, good), TokenFailure::kUnknownKey);
}

// NumericDates (RFC 7519 §2): a number of seconds; anything else, or a number no clock reaches,
// is refused before any arithmetic (1e300 once converted to int64 with undefined behaviour and
// was accepted; exp near the int64 maximum overflowed exp + leeway; a string nbf was ignored).
// The sanitizer build runs this test too.
TEST(Verifier, TimeClaimsAreNumericDatesInRange) {
  Keys k;
  const Verifier v = k.verifier();
  auto with = [&](const char* key, json::value value) {
    json::object c = claims();
    c[key] = std::move(value);
    return outcome(v, k.key.sign(c));
  };
  for (const char* key : {"exp", "nbf", "iat"}) {
    EXPECT_EQ(with(key, 1e300), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, -1e300), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, std::numeric_limits<std::int64_t>::max()), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, std::numeric_limits<std::int64_t>::min()), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, std::numeric_limits<std::uint64_t>::max()), TokenFailure::kTimeClaim)
        << key;
    EXPECT_EQ(with(key, json::string(std::to_string(kNow))), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, true), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, nullptr), TokenFailure::kTimeClaim) << key;
    EXPECT_EQ(with(key, json::array{kNow}), TokenFailure::kTimeClaim) << key;
  }
  // Within range they are times: fractional seconds, the last second of year 9999.
  EXPECT_EQ(with("exp", static_cast<double>(kNow) + 0.5), std::nullopt);
  EXPECT_EQ(with("exp", 253402300799), std::nullopt);
  EXPECT_EQ(with("nbf", static_cast<double>(kNow + 120)), TokenFailure::kNotYetValid);
  EXPECT_EQ(with("nbf", 253402300799), TokenFailure::kNotYetValid);
  EXPECT_EQ(with("exp", static_cast<double>(kNow - 61)), TokenFailure::kExpired);
}

TEST(KeySet, ReadsRsaKeysAndRefusesDocumentsWithout) {
  Keys k;
  auto set = KeySet::from_jwks(k.key.jwks(), "jwks");
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->contains(k.key.kid()));
  EXPECT_FALSE(KeySet::from_jwks("{}", "a.json"));
  EXPECT_FALSE(KeySet::from_jwks("[1,2]", "a.json"));
  EXPECT_FALSE(KeySet::from_jwks(R"({"keys":[{"kty":"EC","kid":"x","crv":"P-256"}]})", "a.json"));
  auto err = KeySet::from_jwks("not json", "jwks.json");
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().message.find("jwks.json"), std::string::npos);
}

}  // namespace
}  // namespace kbgap::auth
