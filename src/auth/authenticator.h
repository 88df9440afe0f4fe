// The one entry point the HTTP layer calls to authenticate a Partner API request: bearer
// token → signature (key from the JWKS cache) → iss/aud/time → claim schema → auth mode →
// endpoint policy → installation binding → role, in the order of partner-api.md §2.2.
// Failures are AuthFailure (auth/jwt.h): 401 when the token does not authenticate anyone,
// 403 when it does but may not do this.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/jwks_cache.h"
#include "auth/jwt.h"
#include "util/clock.h"

namespace wharf::auth {

// What an endpoint accepts (partner-api.md §2.5–2.7).
struct EndpointPolicy {
  bool allow_user = false;
  bool allow_system = false;
  bool admin_required = false;     // user mode: the token's role must be ADMIN
  bool bind_installation = false;  // path installationId must equal claims.installation_id
  // An allowed mode that §2.6's table does not list for this endpoint: accepted because the
  // table has drifted at Vercel before (§2.6 robustness note, §10 q13), but worth a log line
  // when it happens. Only set where the mode grants nothing more (reads).
  bool user_undocumented = false;
  bool system_undocumented = false;
};

// Whether `mode` is one the endpoint's documentation lists (false for a mode accepted only
// leniently, or not allowed at all).
bool mode_documented(const EndpointPolicy& policy, AuthMode mode);

// authenticate(…, may_fetch=false) met a kid the cached key set does not have: the caller
// should retry where it may wait for a JWKS fetch.
struct KeyNotCached {};

class Authenticator {
 public:
  struct Options {
    std::string issuer = "https://marketplace.vercel.com";
    std::string audience;  // our integration / OAuth client id (oac_…)
    int64_t leeway_s = 10;
    int64_t max_lifetime_s = 86400;  // 0 = no cap
  };

  Authenticator(Options options, JwksCache& jwks, const util::Clock& clock);

  // `authorization_header` and `x_vercel_auth` are the raw header values (empty when
  // absent); `path_installation_id` is empty when the route has no {installationId}.
  // Returns the verified claims or throws AuthFailure. Thread-safe. With `may_fetch` false
  // (a caller that must not wait, e.g. on an I/O thread) a token signed with a key not in the
  // cached key set throws KeyNotCached instead of fetching the JWKS.
  Claims authenticate(std::string_view authorization_header, std::string_view x_vercel_auth,
                      const EndpointPolicy& policy, std::string_view path_installation_id,
                      bool may_fetch = true) const;

  // The SSO id_token from the code exchange (flows.md §2.1 step 4): verified exactly like a
  // user token — signature, iss, aud, exp/nbf/iat, the user claim schema — and it must carry
  // user claims. Returns the claims or throws AuthFailure (401). Thread-safe.
  Claims verify_id_token(std::string_view token) const;

  const Options& options() const { return options_; }

 private:
  Options options_;
  JwtOptions jwt_options_;
  JwksCache& jwks_;
  const util::Clock& clock_;
};

// "Bearer <token>" → token (scheme case-insensitive, surrounding blanks ignored); empty when
// the header is missing, uses another scheme or carries no token.
std::string_view bearer_token(std::string_view authorization_header);

}  // namespace wharf::auth
