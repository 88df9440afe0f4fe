// Token verification and the Authenticator (partner-api.md §2), with real RSA keys.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "api/route.h"
#include "auth/authenticator.h"
#include "auth/jwks_cache.h"
#include "auth/jwt.h"
#include "test_keys.h"
#include "util/clock.h"

namespace wharf::auth {
namespace {

using nlohmann::json;
using testutil::hs256_token;
using testutil::jwks_json;
using testutil::kTestAudience;
using testutil::kTestIssuer;
using testutil::system_claims;
using testutil::TestKey;
using testutil::user_claims;

constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
constexpr const char* kInst = "icfg_9bceb8ccT32d3U417ezb5c8p";
constexpr const char* kOtherInst = "icfg_000000000000000000000000";

// Policies as the router would declare them (partner-api.md §2.6).
const EndpointPolicy kUserAdminBound{true, false, true, true};   // e.g. Upsert Installation
const EndpointPolicy kSystemBound{false, true, false, true};     // System only, strictly
const EndpointPolicy kEitherAdminBound{true, true, true, true};  // e.g. Delete Resource
const EndpointPolicy kUserReadBound{true, false, false, true};   // a read allowing USER
const EndpointPolicy kSystemUnbound{false, true, false, false};  // product plans

// Runs `fn`, expecting an AuthFailure with this status and reason.
void expect_failure(const std::function<void()>& fn, int status, const std::string& reason) {
  try {
    fn();
    ADD_FAILURE() << "expected AuthFailure " << reason;
  } catch (const AuthFailure& e) {
    EXPECT_EQ(e.status, status) << e.message;
    EXPECT_EQ(e.reason, reason) << e.message;
    EXPECT_FALSE(e.message.empty());
  }
}

// ---------------------------------------------------------------------------------------
// Verification against a fixed key set (JwtTest): decode → signature → registered claims.
class JwtTest : public ::testing::Test {
 protected:
  JwtTest() {
    options_.issuer = kTestIssuer;
    options_.audience = kTestAudience;
    options_.leeway_s = 10;
  }

  // Key lookup over a fixed list of JWKs.
  json verify(const std::string& token, std::vector<json> jwks = {TestKey::a().jwk()},
              int64_t now = kNow) {
    std::string error;
    auto parsed = parse_jwks(jwks_json(jwks), &error);
    EXPECT_TRUE(parsed.has_value()) << error;
    auto keys = parsed->keys;
    KeyLookup lookup = [keys](const std::string& kid) -> std::shared_ptr<const Jwk> {
      for (const auto& k : keys)
        if (k->kid() == kid) return k;
      return nullptr;
    };
    return verify_jws(token, lookup, options_, now);
  }

  void expect_rejected(const std::string& token, const std::string& reason,
                       std::vector<json> jwks = {TestKey::a().jwk()}, int64_t now = kNow) {
    expect_failure([&] { verify(token, jwks, now); }, 401, reason);
  }

  JwtOptions options_;
};

TEST_F(JwtTest, AcceptsValidRs256Token) {
  json payload = verify(TestKey::a().token(user_claims(kNow, kInst)));
  EXPECT_EQ(payload["installation_id"], kInst);
}

TEST_F(JwtTest, ExpiryHonoursLeeway) {
  json claims = user_claims(kNow, kInst);
  claims["exp"] = kNow - 10;  // expired 10 s ago: inside the 10 s leeway
  EXPECT_NO_THROW(verify(TestKey::a().token(claims)));
  claims["exp"] = kNow - 11;
  expect_rejected(TestKey::a().token(claims), "expired");
}

TEST_F(JwtTest, ExpIsRequiredAndNumeric) {
  json claims = user_claims(kNow, kInst);
  claims.erase("exp");
  expect_rejected(TestKey::a().token(claims), "bad_claims");
  claims["exp"] = std::to_string(kNow + 300);  // a string is not a NumericDate
  expect_rejected(TestKey::a().token(claims), "bad_claims");
}

TEST_F(JwtTest, FractionalTimesAccepted) {
  json claims = user_claims(kNow, kInst);
  claims["exp"] = static_cast<double>(kNow) + 60.5;
  claims["iat"] = static_cast<double>(kNow) - 0.25;
  EXPECT_NO_THROW(verify(TestKey::a().token(claims)));
  claims["exp"] = static_cast<double>(kNow) - 10.5;  // just outside the leeway
  expect_rejected(TestKey::a().token(claims), "expired");
}

TEST_F(JwtTest, NotYetValid) {
  json claims = user_claims(kNow, kInst);
  claims["nbf"] = kNow + 10;  // inside leeway
  EXPECT_NO_THROW(verify(TestKey::a().token(claims)));
  claims["nbf"] = kNow + 11;
  expect_rejected(TestKey::a().token(claims), "not_yet_valid");
}

TEST_F(JwtTest, IssuedInFuture) {
  json claims = user_claims(kNow, kInst);
  claims["iat"] = kNow + 11;
  expect_rejected(TestKey::a().token(claims), "issued_in_future");
  claims.erase("iat");  // optional
  claims.erase("nbf");
  EXPECT_NO_THROW(verify(TestKey::a().token(claims)));
}

TEST_F(JwtTest, WrongIssuer) {
  json claims = user_claims(kNow, kInst);
  claims["iss"] = "https://marketplace.vercel.com/";  // exact match only
  expect_rejected(TestKey::a().token(claims), "wrong_issuer");
  claims.erase("iss");
  expect_rejected(TestKey::a().token(claims), "wrong_issuer");
}

TEST_F(JwtTest, Audience) {
  json claims = user_claims(kNow, kInst);
  claims["aud"] = "oac_someoneelse";
  expect_rejected(TestKey::a().token(claims), "wrong_audience");
  claims["aud"] = json::array({"oac_someoneelse", kTestAudience});
  EXPECT_NO_THROW(verify(TestKey::a().token(claims)));
  claims["aud"] = json::array({"oac_someoneelse", "oac_another"});
  expect_rejected(TestKey::a().token(claims), "wrong_audience");
  claims["aud"] = json::array();
  expect_rejected(TestKey::a().token(claims), "wrong_audience");
  claims.erase("aud");
  expect_rejected(TestKey::a().token(claims), "wrong_audience");
}

TEST_F(JwtTest, TamperedPayloadFailsSignature) {
  const std::string token = TestKey::a().token(user_claims(kNow, kInst));
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.find('.', dot1 + 1);
  json evil = user_claims(kNow, kOtherInst);
  const std::string tampered =
      token.substr(0, dot1 + 1) + testutil::b64url(evil.dump()) + token.substr(dot2);
  expect_rejected(tampered, "bad_signature");
}

TEST_F(JwtTest, TamperedSignatureFails) {
  std::string token = TestKey::a().token(user_claims(kNow, kInst));
  const size_t sig = token.rfind('.') + 1;
  // Flip a character in the middle of the signature (keeps it valid base64url).
  char& c = token[sig + 10];
  c = c == 'A' ? 'B' : 'A';
  expect_rejected(token, "bad_signature");
}

TEST_F(JwtTest, SignatureFromAnotherKeyUnderSameKidFails) {
  // Key B's signature presented under key A's kid.
  json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", TestKey::a().kid()}};
  expect_rejected(TestKey::b().sign(header, user_claims(kNow, kInst), "RS256"), "bad_signature");
}

TEST_F(JwtTest, AlgNoneRejected) {
  json header = {{"alg", "none"}, {"typ", "JWT"}, {"kid", TestKey::a().kid()}};
  const std::string input = testutil::signing_input(header, user_claims(kNow, kInst));
  expect_rejected(input + ".", "alg_not_allowed");
  expect_rejected(input + ".c2ln", "alg_not_allowed");
  header["alg"] = "None";
  expect_rejected(testutil::signing_input(header, user_claims(kNow, kInst)) + ".",
                  "alg_not_allowed");
}

TEST_F(JwtTest, Hs256KeyConfusionRejected) {
  // The classic attack: HMAC keyed with the public key PEM, presented under the RSA kid.
  json header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", TestKey::a().kid()}};
  const std::string token =
      hs256_token(header, user_claims(kNow, kInst), TestKey::a().public_pem());
  expect_rejected(token, "alg_not_allowed");
  // Even against a JWK that claims to be for HS256.
  expect_rejected(token, "alg_not_allowed", {TestKey::a().jwk("HS256")});
}

TEST_F(JwtTest, OtherAlgorithmsRejected) {
  for (const char* alg : {"ES256", "EdDSA", "HS512", "rs256", ""}) {
    json header = {{"alg", alg}, {"kid", TestKey::a().kid()}};
    expect_rejected(testutil::signing_input(header, user_claims(kNow, kInst)) + ".c2ln",
                    "alg_not_allowed");
  }
}

TEST_F(JwtTest, KeyPinnedAlgMustMatch) {
  const std::vector<json> pinned512 = {TestKey::a().jwk("RS512")};
  // RS256 token against a key pinned to RS512: rejected even though RS256 would verify.
  expect_rejected(TestKey::a().token(user_claims(kNow, kInst), "RS256"), "alg_not_allowed",
                  pinned512);
  EXPECT_NO_THROW(verify(TestKey::a().token(user_claims(kNow, kInst), "RS512"), pinned512));
}

TEST_F(JwtTest, KeyWithoutAlgAllowsOnlyRs256) {
  const std::vector<json> unpinned = {TestKey::a().jwk(std::nullopt)};
  EXPECT_NO_THROW(verify(TestKey::a().token(user_claims(kNow, kInst), "RS256"), unpinned));
  expect_rejected(TestKey::a().token(user_claims(kNow, kInst), "RS384"), "alg_not_allowed",
                  unpinned);
  expect_rejected(TestKey::a().token(user_claims(kNow, kInst), "PS256"), "alg_not_allowed",
                  unpinned);
}

TEST_F(JwtTest, PssAndLargerDigestsVerify) {
  for (const char* alg : {"RS384", "PS256", "PS384", "PS512"}) {
    SCOPED_TRACE(alg);
    const std::vector<json> pinned = {TestKey::a().jwk(alg)};
    EXPECT_NO_THROW(verify(TestKey::a().token(user_claims(kNow, kInst), alg), pinned));
    // A PKCS#1 v1.5 signature does not pass as PSS (and vice versa).
    json header = {{"alg", alg}, {"kid", TestKey::a().kid()}};
    std::string other = alg[0] == 'P' ? std::string("RS") + (alg + 2) : "PS384";
    std::string forged = TestKey::a().sign(header, user_claims(kNow, kInst), other);
    expect_rejected(forged, "bad_signature", pinned);
  }
}

TEST_F(JwtTest, CritHeaderRejected) {
  json header = {{"alg", "RS256"}, {"kid", TestKey::a().kid()}, {"crit", {"exp"}}, {"exp", 1}};
  expect_rejected(TestKey::a().sign(header, user_claims(kNow, kInst), "RS256"), "malformed_token");
}

TEST_F(JwtTest, MalformedTokens) {
  const std::string good = TestKey::a().token(user_claims(kNow, kInst));
  const std::string input = good.substr(0, good.rfind('.'));
  expect_rejected("", "malformed_token");
  expect_rejected(input, "malformed_token");                                     // 2 parts
  expect_rejected(good + ".x", "malformed_token");                               // 4 parts
  expect_rejected(input + ".", "malformed_token");                               // empty signature
  expect_rejected("!!!." + good.substr(good.find('.') + 1), "malformed_token");  // bad base64
  expect_rejected(good + "=", "malformed_token");  // padding is not compact JWS
  expect_rejected(testutil::b64url("not json") + good.substr(good.find('.')),
                  "malformed_token");  // header
  expect_rejected(testutil::b64url("[1,2]") + good.substr(good.find('.')), "malformed_token");
  const std::string header = good.substr(0, good.find('.'));
  expect_rejected(header + "." + testutil::b64url("{nope") + ".c2ln", "malformed_token");
  expect_rejected(header + ".." + good.substr(good.rfind('.') + 1), "malformed_token");
  expect_rejected(std::string(20000, 'a') + "." + "b.c", "malformed_token");  // oversized
}

TEST_F(JwtTest, Base64urlIsStrict) {
  // Every length remainder decodes exactly (the payload is re-parsed as JSON).
  for (int k = 0; k < 12; ++k) {
    const json payload = {{"p", std::string(static_cast<size_t>(k), 'a')}};
    const std::string token = TestKey::a().token(payload);
    EXPECT_EQ(decode_jws(token).payload, payload) << k;
    // A non-canonical spelling (non-zero bits after the last byte) is a different token.
    std::string odd = token;
    const size_t last_payload_char = odd.rfind('.') - 1;
    const size_t rest = (odd.rfind('.') - odd.find('.') - 1) % 4;
    if (rest == 0) continue;
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const size_t v = alphabet.find(odd[last_payload_char]);
    odd[last_payload_char] = alphabet[v | 1];
    expect_failure([&] { decode_jws(odd); }, 401, "malformed_token");
  }
  const std::string good = TestKey::a().token(user_claims(kNow, kInst));
  std::string spaced = good;
  spaced.insert(good.find('.') + 3, " ");
  expect_rejected(spaced, "malformed_token");
  std::string std_alphabet = good;
  std_alphabet[good.find('.') + 2] = '+';
  expect_rejected(std_alphabet, "malformed_token");
}

TEST_F(JwtTest, KidRequired) {
  json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  expect_rejected(TestKey::a().sign(header, user_claims(kNow, kInst), "RS256"), "malformed_token");
  header["kid"] = 7;
  expect_rejected(TestKey::a().sign(header, user_claims(kNow, kInst), "RS256"), "malformed_token");
}

TEST_F(JwtTest, UnknownKidRejected) {
  expect_rejected(TestKey::b().token(user_claims(kNow, kInst)), "unknown_kid");
}

TEST(JwtSubjectTest, Patterns) {
  EXPECT_TRUE(is_user_subject("account:a1B2:user:09fF"));
  EXPECT_FALSE(is_user_subject("account:a1b2:user:"));
  EXPECT_FALSE(is_user_subject("account::user:12"));
  EXPECT_FALSE(is_user_subject("account:xyz:user:12"));
  EXPECT_FALSE(is_user_subject("account:12:user:12 "));
  EXPECT_FALSE(is_user_subject("account:12:user:12:user:1"));
  EXPECT_FALSE(is_user_subject("account:12"));
  EXPECT_TRUE(is_system_subject("account:abc123"));
  EXPECT_FALSE(is_system_subject("account:"));
  EXPECT_FALSE(is_system_subject("account:abc:user:12"));
  EXPECT_FALSE(is_system_subject("Account:abc"));
  EXPECT_FALSE(is_system_subject("account:abcg"));
}

TEST(JwtClaimsTest, UserSchema) {
  Claims c = parse_claims(user_claims(kNow, kInst, "USER"), AuthMode::kUser);
  EXPECT_EQ(c.mode, AuthMode::kUser);
  EXPECT_EQ(c.sub, "account:a1b2c3:user:d4e5f6");
  EXPECT_EQ(c.role, Role::kUser);
  EXPECT_EQ(c.installation_id, kInst);
  EXPECT_EQ(c.account_id, "team_a1b2c3");
  EXPECT_EQ(c.user_id, "d4e5f6");
  EXPECT_EQ(c.user_email, "user@example.com");
  EXPECT_EQ(c.type, "access_token");
  EXPECT_EQ(c.exp, kNow + 300);
  EXPECT_EQ(c.nbf, kNow - 5);
  ASSERT_EQ(c.aud.size(), 1u);
  EXPECT_EQ(c.raw["user_name"], "Test User");

  auto rejects = [](json claims) {
    expect_failure([&] { parse_claims(claims, AuthMode::kUser); }, 401, "bad_claims");
  };
  for (const char* required : {"sub", "account_id", "installation_id", "user_id", "user_role"}) {
    SCOPED_TRACE(required);
    json claims = user_claims(kNow, kInst);
    claims.erase(required);
    rejects(claims);
  }
  json claims = user_claims(kNow, kInst);
  claims["user_role"] = "admin";  // exact enum
  rejects(claims);
  claims = user_claims(kNow, kInst);
  claims["sub"] = "account:a1b2c3";  // a system subject
  rejects(claims);
  claims = user_claims(kNow, kInst);
  claims["sub"] = "account:zz:user:d4";
  rejects(claims);
  claims = user_claims(kNow, kInst);
  claims["user_email"] = 42;
  rejects(claims);
  claims = user_claims(kNow, kInst);
  claims["installation_id"] = nullptr;
  rejects(claims);

  // Unknown claims and any `type` string are fine.
  claims = user_claims(kNow, kInst);
  claims["type"] = "user";
  claims["jti"] = "abc";
  claims["something_new"] = {{"x", 1}};
  claims.erase("user_email");
  EXPECT_NO_THROW(parse_claims(claims, AuthMode::kUser));
}

TEST(JwtClaimsTest, SystemSchema) {
  Claims c = parse_claims(system_claims(kNow, kInst), AuthMode::kSystem);
  EXPECT_EQ(c.mode, AuthMode::kSystem);
  EXPECT_EQ(c.role, Role::kNone);
  EXPECT_EQ(c.sub, "account:a1b2c3");
  EXPECT_FALSE(c.sub_null);
  EXPECT_EQ(c.installation_id, kInst);

  json claims = system_claims(kNow, kInst);
  claims["sub"] = nullptr;
  claims["installation_id"] = nullptr;
  claims.erase("account_id");
  c = parse_claims(claims, AuthMode::kSystem);
  EXPECT_TRUE(c.sub_null);
  EXPECT_FALSE(c.installation_id.has_value());
  EXPECT_FALSE(c.account_id.has_value());
  claims.erase("sub");
  EXPECT_TRUE(parse_claims(claims, AuthMode::kSystem).sub_null);
  claims["sub"] = "";
  EXPECT_TRUE(parse_claims(claims, AuthMode::kSystem).sub_null);

  for (json bad_sub : {json("account:a1b2c3:user:d4"), json("team_abc"), json(5)}) {
    claims["sub"] = bad_sub;
    expect_failure([&] { parse_claims(claims, AuthMode::kSystem); }, 401, "bad_claims");
  }
  claims = system_claims(kNow, kInst);
  claims["installation_id"] = 12;
  expect_failure([&] { parse_claims(claims, AuthMode::kSystem); }, 401, "bad_claims");
}

TEST(JwtClaimsTest, ModeInference) {
  EXPECT_EQ(infer_mode(user_claims(kNow, kInst)), AuthMode::kUser);
  EXPECT_EQ(infer_mode(system_claims(kNow, kInst)), AuthMode::kSystem);
  json claims = system_claims(kNow, kInst);
  claims["user_role"] = "USER";
  EXPECT_EQ(infer_mode(claims), AuthMode::kUser);
  claims = system_claims(kNow, kInst);
  claims["user_id"] = "abc";
  EXPECT_EQ(infer_mode(claims), AuthMode::kUser);
}

TEST(JwtAlgTest, Names) {
  for (const char* name : {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}) {
    auto alg = parse_jws_alg(name);
    ASSERT_TRUE(alg.has_value()) << name;
    EXPECT_EQ(jws_alg_name(*alg), name);
  }
  for (const char* name : {"none", "HS256", "ES256", "RS1", "rs256", ""})
    EXPECT_FALSE(parse_jws_alg(name).has_value()) << name;
}

// ---------------------------------------------------------------------------------------
// The Authenticator end to end, with a JWKS cache whose fetches the test controls.
class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest()
      : clock_(kNow * 1000),
        served_(jwks_json({TestKey::a().jwk()})),
        cache_(
            cache_options(), [this](const std::string& url) { return serve(url); }, clock_),
        auth_(auth_options(), cache_, clock_) {}

  void SetUp() override {
    ASSERT_TRUE(cache_.refresh_now());
    fetches_ = 0;
  }

  static JwksCache::Options cache_options() {
    JwksCache::Options o;
    o.url = "https://marketplace.vercel.test/.well-known/jwks";
    o.unknown_kid_min_interval_ms = 30000;
    return o;
  }
  static Authenticator::Options auth_options() {
    Authenticator::Options o;
    o.issuer = kTestIssuer;
    o.audience = kTestAudience;
    o.leeway_s = 10;
    return o;
  }

  net::HttpResult serve(const std::string& url) {
    EXPECT_EQ(url, cache_options().url);
    ++fetches_;
    net::HttpResult r;
    r.status = 200;
    r.body = served_;
    return r;
  }

  Claims authenticate(const std::string& token, const std::string& mode,
                      const EndpointPolicy& policy, const std::string& path_inst = kInst) {
    return auth_.authenticate("Bearer " + token, mode, policy, path_inst);
  }

  void expect_denied(const std::string& token, const std::string& mode,
                     const EndpointPolicy& policy, int status, const std::string& reason,
                     const std::string& path_inst = kInst) {
    try {
      authenticate(token, mode, policy, path_inst);
      ADD_FAILURE() << "expected AuthFailure " << reason;
    } catch (const AuthFailure& e) {
      EXPECT_EQ(e.status, status) << e.message;
      EXPECT_EQ(e.reason, reason) << e.message;
      // Neither the message nor what() may leak the token (or its signature).
      const std::string signature = token.substr(token.rfind('.') + 1);
      if (!signature.empty()) {
        EXPECT_EQ(e.message.find(signature), std::string::npos);
      }
      EXPECT_EQ(std::string(e.what()).find(token), std::string::npos);
    }
  }

  util::ManualClock clock_;
  std::string served_;
  int fetches_ = 0;
  JwksCache cache_;
  Authenticator auth_;
};

TEST_F(AuthenticatorTest, UserAdminOnUserRoute) {
  Claims c = authenticate(TestKey::a().token(user_claims(kNow, kInst)), "user", kUserAdminBound);
  EXPECT_EQ(c.mode, AuthMode::kUser);
  EXPECT_EQ(c.role, Role::kAdmin);
  EXPECT_EQ(c.installation_id, kInst);
  EXPECT_EQ(fetches_, 0);  // known kid: no JWKS traffic
}

TEST_F(AuthenticatorTest, BearerParsing) {
  const std::string token = TestKey::a().token(system_claims(kNow, kInst));
  EXPECT_NO_THROW(auth_.authenticate("bearer " + token, "", kSystemBound, kInst));
  EXPECT_NO_THROW(auth_.authenticate("  BEARER   " + token + "  ", "", kSystemBound, kInst));
  expect_failure([&] { auth_.authenticate("", "", kSystemBound, kInst); }, 401, "missing_token");
  expect_failure([&] { auth_.authenticate("Bearer", "", kSystemBound, kInst); }, 401,
                 "missing_token");
  expect_failure([&] { auth_.authenticate("Bearer   ", "", kSystemBound, kInst); }, 401,
                 "missing_token");
  expect_failure([&] { auth_.authenticate("Basic " + token, "", kSystemBound, kInst); }, 401,
                 "missing_token");
  expect_failure([&] { auth_.authenticate(token, "", kSystemBound, kInst); }, 401, "missing_token");
  expect_failure([&] { auth_.authenticate("Bearer" + token, "", kSystemBound, kInst); }, 401,
                 "missing_token");
  expect_failure([&] { auth_.authenticate("Bearer a.b", "", kSystemBound, kInst); }, 401,
                 "malformed_token");
}

TEST_F(AuthenticatorTest, RejectionsPropagateFromVerification) {
  json claims = user_claims(kNow, kInst);
  claims["exp"] = kNow - 60;
  expect_denied(TestKey::a().token(claims), "user", kUserAdminBound, 401, "expired");
  claims = user_claims(kNow, kInst);
  claims["aud"] = "oac_other";
  expect_denied(TestKey::a().token(claims), "user", kUserAdminBound, 401, "wrong_audience");
  claims = user_claims(kNow, kInst);
  claims["sub"] = "account:a1b2c3:user:";
  expect_denied(TestKey::a().token(claims), "user", kUserAdminBound, 401, "bad_claims");

  // Time moves: a token valid now is expired 6 minutes later.
  const std::string token = TestKey::a().token(user_claims(kNow, kInst));
  EXPECT_NO_THROW(authenticate(token, "user", kUserAdminBound));
  clock_.advance_ms(360 * 1000);
  expect_denied(token, "user", kUserAdminBound, 401, "expired");
}

TEST_F(AuthenticatorTest, ModeNotAllowedForEndpoint) {
  expect_denied(TestKey::a().token(user_claims(kNow, kInst)), "user", kSystemBound, 403,
                "mode_not_allowed");
  expect_denied(TestKey::a().token(system_claims(kNow, kInst)), "system", kUserAdminBound, 403,
                "mode_not_allowed");
  EXPECT_NO_THROW(
      authenticate(TestKey::a().token(system_claims(kNow, kInst)), "system", kEitherAdminBound));
  EXPECT_NO_THROW(
      authenticate(TestKey::a().token(user_claims(kNow, kInst)), "user", kEitherAdminBound));
}

TEST_F(AuthenticatorTest, Roles) {
  const std::string user_role = TestKey::a().token(user_claims(kNow, kInst, "USER"));
  expect_denied(user_role, "user", kUserAdminBound, 403, "role_forbidden");
  expect_denied(user_role, "user", kEitherAdminBound, 403, "role_forbidden");
  Claims c = authenticate(user_role, "user", kUserReadBound);
  EXPECT_EQ(c.role, Role::kUser);
  // System tokens have no role and skip the role check.
  EXPECT_NO_THROW(
      authenticate(TestKey::a().token(system_claims(kNow, kInst)), "system", kEitherAdminBound));
}

TEST_F(AuthenticatorTest, InstallationBinding) {
  expect_denied(TestKey::a().token(user_claims(kNow, kInst)), "user", kUserAdminBound, 403,
                "installation_mismatch", kOtherInst);
  expect_denied(TestKey::a().token(system_claims(kNow, kInst)), "system", kSystemBound, 403,
                "installation_mismatch", kOtherInst);
  // A system token without installation context cannot act on an installation's route...
  json claims = system_claims(kNow, kInst);
  claims["installation_id"] = nullptr;
  const std::string no_inst = TestKey::a().token(claims);
  expect_denied(no_inst, "system", kSystemBound, 403, "installation_mismatch");
  // ...but is fine where nothing is bound (product plans before install, §2.7).
  Claims c = authenticate(no_inst, "system", kSystemUnbound, "");
  EXPECT_FALSE(c.installation_id.has_value());
  claims.erase("installation_id");
  claims.erase("account_id");
  claims["sub"] = nullptr;
  c = authenticate(TestKey::a().token(claims), "system", kSystemUnbound, "");
  EXPECT_TRUE(c.sub_null);
  // A binding policy on a route without a path id binds nothing.
  EXPECT_NO_THROW(authenticate(no_inst, "system", kSystemBound, ""));
}

TEST_F(AuthenticatorTest, HeaderMustMatchClaims) {
  expect_denied(TestKey::a().token(system_claims(kNow, kInst)), "user", kEitherAdminBound, 403,
                "mode_mismatch");
  expect_denied(TestKey::a().token(user_claims(kNow, kInst)), "system", kEitherAdminBound, 403,
                "mode_mismatch");
  // A system token carrying only user_role is a user-claims token: mismatch under "system"
  // (it would also fail the user schema, which is checked first: 401).
  json claims = system_claims(kNow, kInst);
  claims["user_role"] = "ADMIN";
  expect_denied(TestKey::a().token(claims), "system", kEitherAdminBound, 401, "bad_claims");
  // Case-insensitive header values.
  EXPECT_NO_THROW(
      authenticate(TestKey::a().token(user_claims(kNow, kInst)), "USER", kUserAdminBound));
  EXPECT_NO_THROW(
      authenticate(TestKey::a().token(system_claims(kNow, kInst)), " System ", kSystemBound));
}

TEST_F(AuthenticatorTest, ModeInferredWithoutHeader) {
  Claims user = authenticate(TestKey::a().token(user_claims(kNow, kInst)), "", kEitherAdminBound);
  EXPECT_EQ(user.mode, AuthMode::kUser);
  Claims sys = authenticate(TestKey::a().token(system_claims(kNow, kInst)), "", kEitherAdminBound);
  EXPECT_EQ(sys.mode, AuthMode::kSystem);
  // Inference still enforces the endpoint's modes.
  expect_denied(TestKey::a().token(user_claims(kNow, kInst)), "", kSystemBound, 403,
                "mode_not_allowed");
  expect_denied(TestKey::a().token(system_claims(kNow, kInst)), "", kUserAdminBound, 403,
                "mode_not_allowed");
  // An unknown header value falls back to inference.
  EXPECT_EQ(
      authenticate(TestKey::a().token(user_claims(kNow, kInst)), "robot", kUserAdminBound).mode,
      AuthMode::kUser);
}

TEST_F(AuthenticatorTest, LenientReadsAcceptUserTokensBoundToTheirInstallation) {
  // The reads §2.6 lists as System-only (Get Installation, Get/List Resources, plans) take
  // a user token of either role as well (§10 q13), flagged as an undocumented mode.
  const EndpointPolicy read = api::system_read();
  for (const char* role : {"ADMIN", "USER"}) {
    const std::string token = TestKey::a().token(user_claims(kNow, kInst, role));
    for (const char* header : {"user", "", "USER"}) {
      Claims c = authenticate(token, header, read);
      EXPECT_EQ(c.mode, AuthMode::kUser) << role << " " << header;
      EXPECT_EQ(c.installation_id, kInst);
    }
    // Still bound to the token's installation, and the header may not contradict the claims.
    expect_denied(token, "user", read, 403, "installation_mismatch", kOtherInst);
    expect_denied(token, "", read, 403, "installation_mismatch", kOtherInst);
    expect_denied(token, "system", read, 403, "mode_mismatch");
  }
  EXPECT_FALSE(mode_documented(read, AuthMode::kUser));
  EXPECT_TRUE(mode_documented(read, AuthMode::kSystem));
  const std::string sys = TestKey::a().token(system_claims(kNow, kInst));
  EXPECT_EQ(authenticate(sys, "", read).mode, AuthMode::kSystem);
  expect_denied(sys, "system", read, 403, "installation_mismatch", kOtherInst);

  // Writes stay strict: no System token where the docs say user, no USER role on them.
  const EndpointPolicy write = api::user_write();
  EXPECT_TRUE(mode_documented(write, AuthMode::kUser));
  EXPECT_FALSE(mode_documented(write, AuthMode::kSystem));
  expect_denied(sys, "", write, 403, "mode_not_allowed");
  expect_denied(sys, "system", write, 403, "mode_not_allowed");
  expect_denied(TestKey::a().token(user_claims(kNow, kInst, "USER")), "", write, 403,
                "role_forbidden");
  expect_denied(TestKey::a().token(user_claims(kNow, kInst, "USER")), "",
                api::user_or_system_write(), 403, "role_forbidden");
}

TEST_F(AuthenticatorTest, UnknownKidThenRotation) {
  // Vercel rotates to key B; our cache only knows A.
  const std::string token_b = TestKey::b().token(user_claims(kNow, kInst));
  expect_denied(token_b, "user", kUserAdminBound, 401, "unknown_kid");
  EXPECT_EQ(fetches_, 1);  // one refresh was tried

  // Within the throttle window a rotation is not noticed (nor is any other unknown kid)...
  served_ = jwks_json({TestKey::a().jwk(), TestKey::b().jwk()});
  clock_.advance_ms(10 * 1000);
  expect_denied(token_b, "user", kUserAdminBound, 401, "unknown_kid");
  EXPECT_EQ(fetches_, 1);

  // ...after it, the next unknown kid refreshes and the rotated key verifies.
  clock_.advance_ms(25 * 1000);
  EXPECT_NO_THROW(
      authenticate(TestKey::b().token(user_claims(kNow + 35, kInst)), "user", kUserAdminBound));
  EXPECT_EQ(fetches_, 2);
  // Key A still works; B is now known: no more fetches.
  EXPECT_NO_THROW(
      authenticate(TestKey::a().token(user_claims(kNow + 35, kInst)), "user", kUserAdminBound));
  EXPECT_NO_THROW(
      authenticate(TestKey::b().token(user_claims(kNow + 35, kInst)), "user", kUserAdminBound));
  EXPECT_EQ(fetches_, 2);

  // A different unknown kid right after a refresh: throttled.
  expect_denied(TestKey::c().token(user_claims(kNow + 35, kInst)), "user", kUserAdminBound, 401,
                "unknown_kid");
  EXPECT_EQ(fetches_, 2);
  clock_.advance_ms(30 * 1000);
  expect_denied(TestKey::c().token(user_claims(kNow + 65, kInst)), "user", kUserAdminBound, 401,
                "unknown_kid");
  EXPECT_EQ(fetches_, 3);
}

TEST_F(AuthenticatorTest, WithoutFetchingAnUncachedKeyAsksToRetryElsewhere) {
  // An I/O thread must not wait for a JWKS fetch: an unknown kid throws KeyNotCached and no
  // fetch happens; a cached key verifies as usual; the same token with fetching allowed
  // then refreshes once (and, B being unknown to Vercel's set too, is refused).
  const std::string token_a = TestKey::a().token(system_claims(kNow, kInst));
  Claims c = auth_.authenticate("Bearer " + token_a, "", kSystemBound, kInst, /*may_fetch=*/false);
  EXPECT_EQ(c.mode, AuthMode::kSystem);
  const std::string token_b = TestKey::b().token(system_claims(kNow, kInst));
  EXPECT_THROW(auth_.authenticate("Bearer " + token_b, "", kSystemBound, kInst, false),
               KeyNotCached);
  EXPECT_EQ(fetches_, 0);
  // Bad tokens are still refused outright, not deferred.
  expect_failure([&] { auth_.authenticate("Bearer a.b", "", kSystemBound, kInst, false); }, 401,
                 "malformed_token");
  expect_denied(token_b, "", kSystemBound, 401, "unknown_kid");
  EXPECT_EQ(fetches_, 1);
}

TEST_F(AuthenticatorTest, BadTokensNeverFetch) {
  // alg none / HS256 / malformed tokens are rejected before any key lookup, so they cannot
  // be used to drive JWKS traffic.
  json header = {{"alg", "HS256"}, {"kid", "made-up"}};
  expect_denied(hs256_token(header, user_claims(kNow, kInst), TestKey::a().public_pem()), "user",
                kUserAdminBound, 401, "alg_not_allowed");
  header = {{"alg", "none"}, {"kid", "made-up"}};
  expect_denied(testutil::signing_input(header, user_claims(kNow, kInst)) + ".", "user",
                kUserAdminBound, 401, "alg_not_allowed");
  EXPECT_EQ(fetches_, 0);
}

TEST_F(AuthenticatorTest, Hs256WithPublicPemUnderRealKid) {
  json header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", TestKey::a().kid()}};
  expect_denied(hs256_token(header, user_claims(kNow, kInst), TestKey::a().public_pem()), "user",
                kUserAdminBound, 401, "alg_not_allowed");
}

}  // namespace
}  // namespace wharf::auth
