#include "auth/authenticator.h"

#include <atomic>
#include <limits>
#include <optional>

#include "util/log.h"

namespace wharf::auth {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The mode named by X-Vercel-Auth; nullopt when absent or a value we do not know (the docs
// allow for further values, so an unknown one falls back to inference instead of failing).
std::optional<AuthMode> header_mode(std::string_view value, int64_t now_s) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (iequals(value, "user")) return AuthMode::kUser;
  if (iequals(value, "system")) return AuthMode::kSystem;
  // Worth knowing about (Vercel may have added a mode), but if it starts arriving on every
  // request one line a minute is enough.
  static std::atomic<int64_t> last_warn_s{std::numeric_limits<int64_t>::min()};
  int64_t last = last_warn_s.load();
  if ((last == std::numeric_limits<int64_t>::min() || now_s - last >= 60) &&
      last_warn_s.compare_exchange_strong(last, now_s))
    util::log_warn("unknown X-Vercel-Auth value; inferring mode from claims")
        .str("value", value.substr(0, 32));
  return std::nullopt;
}

[[noreturn]] void forbid(std::string reason, std::string message) {
  throw AuthFailure(403, std::move(reason), std::move(message));
}

}  // namespace

std::string_view bearer_token(std::string_view header) {
  header = trim(header);
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size() || !iequals(header.substr(0, kScheme.size()), kScheme))
    return {};
  const char sep = header[kScheme.size()];
  if (sep != ' ' && sep != '\t') return {};
  return trim(header.substr(kScheme.size()));
}

bool mode_documented(const EndpointPolicy& policy, AuthMode mode) {
  return mode == AuthMode::kUser ? policy.allow_user && !policy.user_undocumented
                                 : policy.allow_system && !policy.system_undocumented;
}

Authenticator::Authenticator(Options options, JwksCache& jwks, const util::Clock& clock)
    : options_(std::move(options)),
      jwt_options_{options_.issuer, options_.audience, options_.leeway_s, options_.max_lifetime_s},
      jwks_(jwks),
      clock_(clock) {}

Claims Authenticator::verify_id_token(std::string_view token) const {
  if (token.empty())
    throw AuthFailure(401, "missing_token", "the token exchange returned no id_token");
  DecodedJws jws = decode_jws(token);
  std::shared_ptr<const Jwk> key = jwks_.find(jws.kid);
  if (!key) throw AuthFailure(401, "unknown_kid", "id_token is signed with an unknown key");
  verify_signature(jws, *key);
  check_registered_claims(jws.payload, jwt_options_, clock_.now_s());
  if (infer_mode(jws.payload) != AuthMode::kUser)
    throw AuthFailure(401, "bad_claims", "id_token does not identify a user");
  Claims claims = parse_claims(std::move(jws.payload), AuthMode::kUser);
  // flows.md §2.1 step 4: a `type` other than id_token is worth a log line, not a refusal.
  if (claims.type && *claims.type != "id_token")
    util::log_warn("SSO id_token has an unexpected type claim")
        .str("type", claims.type->substr(0, 32));
  return claims;
}

Claims Authenticator::authenticate(std::string_view authorization_header,
                                   std::string_view x_vercel_auth, const EndpointPolicy& policy,
                                   std::string_view path_installation_id, bool may_fetch) const {
  const std::string_view token = bearer_token(authorization_header);
  if (token.empty()) throw AuthFailure(401, "missing_token", "missing bearer token");

  // 401s: the token does not prove who is calling.
  DecodedJws jws = decode_jws(token);
  std::shared_ptr<const Jwk> key = may_fetch ? jwks_.find(jws.kid) : jwks_.find_cached(jws.kid);
  if (!key && !may_fetch) throw KeyNotCached{};
  if (!key) throw AuthFailure(401, "unknown_kid", "token is signed with an unknown key");
  verify_signature(jws, *key);
  check_registered_claims(jws.payload, jwt_options_, clock_.now_s());
  // The claims decide which schema applies; the header is then checked against them, so a
  // system token cannot pass as user (or vice versa) by relabelling the request.
  const AuthMode token_mode = infer_mode(jws.payload);
  Claims claims = parse_claims(std::move(jws.payload), token_mode);

  // 403s: a genuine token that may not do this.
  if (auto declared = header_mode(x_vercel_auth, clock_.now_s());
      declared && *declared != token_mode)
    forbid("mode_mismatch", "X-Vercel-Auth says " + std::string(auth_mode_name(*declared)) +
                                " but the token carries " +
                                std::string(auth_mode_name(token_mode)) + " claims");
  const bool mode_allowed = token_mode == AuthMode::kUser ? policy.allow_user : policy.allow_system;
  if (!mode_allowed)
    forbid("mode_not_allowed", std::string(auth_mode_name(token_mode)) +
                                   " authentication is not allowed for this endpoint");
  if (policy.bind_installation && !path_installation_id.empty() &&
      (!claims.installation_id || *claims.installation_id != path_installation_id))
    forbid("installation_mismatch", "token is not for this installation");
  if (token_mode == AuthMode::kUser && policy.admin_required && claims.role != Role::kAdmin)
    forbid("role_forbidden", "this operation requires the ADMIN role");
  return claims;
}

}  // namespace wharf::auth
