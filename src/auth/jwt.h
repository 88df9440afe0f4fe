// Verification of Vercel's OIDC tokens (compact JWS, RFC 7515/7519) and the two claim
// schemas of partner-api.md §2.3 (user) and §2.4 (system).
//
// The pieces are separate functions so the Authenticator can apply them in the order the
// spec recommends and report a precise reason for each failure; verify_jws() chains the
// cryptographic and registered-claim checks for callers that only need a verified payload.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/jwk.h"

namespace wharf::auth {

enum class AuthMode { kUser, kSystem };
enum class Role { kNone, kAdmin, kUser };  // kNone for system tokens

std::string_view auth_mode_name(AuthMode mode);  // "user" / "system"
std::string_view role_name(Role role);           // "" / "ADMIN" / "USER"

struct Claims {
  using Role = auth::Role;

  AuthMode mode = AuthMode::kSystem;
  std::string iss;
  std::string sub;        // empty when sub_null
  bool sub_null = false;  // system tokens: sub absent, null or ""
  std::vector<std::string> aud;
  std::optional<std::string> account_id;       // always set in user mode
  std::optional<std::string> installation_id;  // always set in user mode
  std::string user_id;                         // user mode only
  Role role = Role::kNone;                     // user mode only
  std::optional<std::string> user_email, user_name, user_avatar_url;
  std::optional<std::string> type;  // access_token / id_token (not validated beyond string)
  int64_t exp = 0;
  int64_t iat = 0;     // 0 if absent
  int64_t nbf = 0;     // 0 if absent
  nlohmann::json raw;  // the whole verified payload
};

// Why a request was not authenticated. `reason` is a short fixed label for metrics
// (auth failures by reason); `message` is for humans and never contains the token.
struct AuthFailure : std::runtime_error {
  AuthFailure(int status_code, std::string reason_label, std::string human_message)
      : std::runtime_error(human_message),
        status(status_code),
        reason(std::move(reason_label)),
        message(std::move(human_message)) {}

  int status;  // 401 (not authenticated) or 403 (authenticated but not allowed)
  std::string reason;
  std::string message;
};

struct JwtOptions {
  std::string issuer;    // exact match against iss
  std::string audience;  // must be (one of) aud: our integration / OAuth client id
  int64_t leeway_s = 10;
  // Longest lifetime accepted (exp - now, and exp - iat when iat is present); 0 = no cap.
  // Vercel's tokens live minutes; a token valid for years is a forged or leaked one.
  int64_t max_lifetime_s = 86400;
};

// A compact JWS split and decoded, signature not yet checked. `signing_input` points into
// the token passed to decode_jws, which must outlive this object.
struct DecodedJws {
  std::string_view signing_input;  // "<header>.<payload>" exactly as received
  std::string signature;           // raw bytes
  std::string alg;
  JwsAlg jws_alg = JwsAlg::kRS256;
  std::string kid;
  nlohmann::json payload;  // a JSON object
};

// Splits and decodes a token. Throws AuthFailure 401: malformed_token (structure, base64url,
// JSON, missing kid, "crit" present) or alg_not_allowed (alg outside RS*/PS*: none, HS*, ES*…).
DecodedJws decode_jws(std::string_view token);

// Checks the signature with `key`: the token's alg must be the key's allowed alg (its pinned
// JWK alg, else RS256) — alg_not_allowed otherwise — and the signature must verify
// (bad_signature). Throws AuthFailure 401.
void verify_signature(const DecodedJws& jws, const Jwk& key);

// iss, aud, exp (required), nbf and iat (when present), with leeway, and the lifetime cap.
// Throws AuthFailure 401: wrong_issuer, wrong_audience, expired, not_yet_valid,
// issued_in_future, lifetime_too_long, bad_claims (a time claim that is missing or not a
// number).
void check_registered_claims(const nlohmann::json& payload, const JwtOptions& options,
                             int64_t now_s);

// The mode a payload's claims describe: user iff it carries user_id or user_role.
AuthMode infer_mode(const nlohmann::json& payload);

// Validates `payload` against the schema for `mode` and returns typed claims (taking the
// payload as Claims::raw). Throws AuthFailure 401 bad_claims.
Claims parse_claims(nlohmann::json payload, AuthMode mode);

// The schema's subject patterns, hand-matched (no std::regex on the request path).
bool is_user_subject(std::string_view sub);    // ^account:[0-9a-fA-F]+:user:[0-9a-fA-F]+$
bool is_system_subject(std::string_view sub);  // ^account:[0-9a-fA-F]+$

using KeyLookup = std::function<std::shared_ptr<const Jwk>(const std::string& kid)>;

// decode_jws + key lookup (unknown_kid when it returns nullptr) + verify_signature +
// check_registered_claims. Returns the verified payload.
nlohmann::json verify_jws(std::string_view token, const KeyLookup& find_key,
                          const JwtOptions& options, int64_t now_s);

}  // namespace wharf::auth
