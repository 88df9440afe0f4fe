// Fuzz target: OIDC token verification (src/auth/jwt.*, src/auth/authenticator.*).
//
// The input is the token. It goes through the Authenticator exactly as a Partner API
// request's bearer token does (and as the SSO id_token does), against a JWKS holding one
// fixed test key under two kids: "fuzz-rs" pins RS256, "fuzz-ps" pins PS256. The clock is
// fixed, so tokens signed with that key by make_seeds.py (the private half is there) stay
// valid and the fuzzer starts from inputs that reach claim parsing.
//
// AuthFailure is the expected way to refuse a token; any other exception is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/authenticator.h"
#include "auth/jwk.h"
#include "auth/jwks_cache.h"
#include "auth/jwt.h"
#include "util/clock.h"
#include "util/log.h"

namespace {

using namespace wharf;

// The public half of the key in make_seeds.py (2048-bit RSA, e = 65537).
constexpr const char* kModulus =
    "tQrTBoQLkB_v79ikuI840SgI4R6FlCJ5wnN7cum-Zr-sowqL7Ddd30v7xABsneN4UaRnCDAysXB7KDbPlaBw3H8e-"
    "IhoIFoj7HPTqFFECB3IDSa7sV-IDNUKE9nA0d93GD7bhA-hSi5r03VpXM1qHYvCcFPDJb92zFWf7LXjz7ubBkU_"
    "QoUtijV44icpviFUeSy8QD4GeBY3SUrftKrNcxzdFSTVXQvTb_hjRM2gCqfQo8Ydw5UO9HW2s7r3yF7bd3_"
    "W05fwut7BkhHhCEHMx3avvW5japNRupqmAOaPj3oRPEqVO9-EjeHs-rowACQibJOSV-"
    "6NrgiGY0lrYu53nQ";
constexpr int64_t kNowMs = 1750000000000;  // 2025-06-15T15:06:40Z, the seeds' iat
constexpr const char* kIssuer = "https://marketplace.vercel.com";
constexpr const char* kAudience = "oac_9f4YG9JFjgKkRlxoaaGG0y05";
constexpr const char* kInstallation = "icfg_fuzz0000000000000000";

struct Fixture {
  util::ManualClock clock{kNowMs};
  // Never fetches anything: an unknown kid costs one (failed, throttled) fake fetch.
  auth::JwksCache jwks{{"http://jwks.invalid/", 600000, 3600000, 600000},
                       [](const std::string&) {
                         net::HttpResult r;
                         r.error = "fuzzing: no network";
                         return r;
                       },
                       clock};
  auth::Authenticator authenticator{{kIssuer, kAudience, 10}, jwks, clock};

  Fixture() {
    util::set_log_level(util::LogLevel::kError);
    std::string keys =
        std::string(R"({"keys":[)") +
        R"({"kty":"RSA","kid":"fuzz-rs","alg":"RS256","use":"sig","e":"AQAB","n":")" + kModulus +
        R"("},)" + R"({"kty":"RSA","kid":"fuzz-ps","alg":"PS256","use":"sig","e":"AQAB","n":")" +
        kModulus + R"("}]})";
    if (!jwks.load_json(keys)) __builtin_trap();
  }
};

void authenticate(const Fixture& f, std::string_view authorization, std::string_view mode,
                  const auth::EndpointPolicy& policy) {
  try {
    auth::Claims c = f.authenticator.authenticate(authorization, mode, policy, kInstallation);
    (void)c.raw.dump();
  } catch (const auth::AuthFailure& e) {
    if (e.status != 401 && e.status != 403) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture& f = *new Fixture();
  const std::string_view token(reinterpret_cast<const char*>(data), size);

  // A Partner API call: "Authorization: Bearer <input>", with each endpoint policy shape and
  // both X-Vercel-Auth values (and none).
  const std::string header = "Bearer " + std::string(token);
  authenticate(f, header, "", {true, true, true, true});
  authenticate(f, header, "user", {true, false, true, true});
  authenticate(f, header, "system", {false, true, false, true});
  // The whole input as the header value: the bearer scheme parsing.
  authenticate(f, token, "", {true, true, false, false});

  // The SSO id_token.
  try {
    (void)f.authenticator.verify_id_token(token);
  } catch (const auth::AuthFailure&) {
  }
  // The building blocks on their own, as verify_jws chains them.
  try {
    auth::JwtOptions options{kIssuer, kAudience, 10};
    auth::JwksCache& jwks = f.jwks;
    (void)auth::verify_jws(
        token, [&jwks](const std::string& kid) { return jwks.find_cached(kid); }, options,
        kNowMs / 1000);
  } catch (const auth::AuthFailure&) {
  }
  return 0;
}
