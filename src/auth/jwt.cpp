#include "auth/jwt.h"

#include <array>
#include <cmath>
#include <limits>

namespace wharf::auth {
namespace {

// Real tokens are ~1 KB. A cap bounds the work (base64, JSON) an unauthenticated caller can
// make us do before the signature check rejects them.
constexpr size_t kMaxTokenBytes = 16 * 1024;

[[noreturn]] void fail(std::string reason, std::string message) {
  throw AuthFailure(401, std::move(reason), std::move(message));
}

[[noreturn]] void malformed(std::string message) {
  fail("malformed_token", std::move(message));
}

[[noreturn]] void bad_claims(std::string message) {
  fail("bad_claims", std::move(message));
}

constexpr std::array<int8_t, 256> make_b64url_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kB64Url = make_b64url_table();

// Strict unpadded base64url (RFC 7515 §2): no '=', no whitespace, canonical trailing bits, so
// a token has exactly one spelling. A local decoder rather than util::base64url_decode because
// this runs three times per request and writing into a pre-sized buffer is several times
// faster than appending byte by byte.
std::optional<std::string> decode_part(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out(in.size() / 4 * 3 + (in.size() % 4 == 0 ? 0 : in.size() % 4 - 1), '\0');
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  char* dst = out.data();
  size_t i = 0;
  for (; i + 4 <= in.size(); i += 4) {
    const int a = kB64Url[src[i]], b = kB64Url[src[i + 1]], c = kB64Url[src[i + 2]],
              d = kB64Url[src[i + 3]];
    if ((a | b | c | d) < 0) return std::nullopt;
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    *dst++ = static_cast<char>(v >> 16);
    *dst++ = static_cast<char>(v >> 8);
    *dst++ = static_cast<char>(v);
  }
  const size_t rest = in.size() - i;
  if (rest >= 2) {
    const int a = kB64Url[src[i]], b = kB64Url[src[i + 1]];
    const int c = rest == 3 ? kB64Url[src[i + 2]] : 0;
    if ((a | b | c) < 0) return std::nullopt;
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6);
    // Bits past the last whole byte must be zero (a canonical encoding).
    if (rest == 2 ? (v & 0xFFFF) != 0 : (v & 0xFF) != 0) return std::nullopt;
    *dst++ = static_cast<char>(v >> 16);
    if (rest == 3) *dst++ = static_cast<char>(v >> 8);
  }
  return out;
}

nlohmann::json parse_object(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return nlohmann::json();  // null = failure
  return j;
}

bool present(const nlohmann::json& obj, const char* name) {
  auto it = obj.find(name);
  return it != obj.end() && !it->is_null();
}

int64_t to_int64(double v) {
  // Clamp so absurd values (1e300) cannot overflow the conversion (undefined behaviour).
  constexpr double kMax = 9.2e18;
  if (v >= kMax) return std::numeric_limits<int64_t>::max();
  if (v <= -kMax) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(std::floor(v));
}

// A NumericDate claim (RFC 7519 §2: integer or fractional seconds). nullopt when absent or
// null; bad_claims when present with another type.
std::optional<double> numeric_date(const nlohmann::json& payload, const char* name) {
  auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) bad_claims(std::string(name) + " is not a number");
  const double v = it->get<double>();
  if (!std::isfinite(v)) bad_claims(std::string(name) + " is not finite");
  return v;
}

std::string required_string(const nlohmann::json& payload, const char* name) {
  auto it = payload.find(name);
  if (it == payload.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    bad_claims(std::string(name) + " must be a non-empty string");
  return it->get<std::string>();
}

// Absent or null → nullopt; a string → its value; anything else → bad_claims.
std::optional<std::string> optional_string(const nlohmann::json& payload, const char* name) {
  auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad_claims(std::string(name) + " must be a string");
  return it->get<std::string>();
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Consumes one or more hex digits from the front of s; false if there are none.
bool eat_hex(std::string_view& s) {
  size_t i = 0;
  while (i < s.size() && is_hex(s[i])) ++i;
  if (i == 0) return false;
  s.remove_prefix(i);
  return true;
}

bool eat(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

}  // namespace

std::string_view auth_mode_name(AuthMode mode) {
  return mode == AuthMode::kUser ? "user" : "system";
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "ADMIN";
    case Role::kUser:
      return "USER";
    case Role::kNone:
      break;
  }
  return "";
}

bool is_user_subject(std::string_view sub) {
  return eat(sub, "account:") && eat_hex(sub) && eat(sub, ":user:") && eat_hex(sub) && sub.empty();
}

bool is_system_subject(std::string_view sub) {
  return eat(sub, "account:") && eat_hex(sub) && sub.empty();
}

DecodedJws decode_jws(std::string_view token) {
  if (token.empty()) malformed("empty token");
  if (token.size() > kMaxTokenBytes) malformed("token too large");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    malformed("token is not a compact JWS (three dot-separated parts)");
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty()) malformed("empty token header or payload");

  auto header_json = decode_part(header_b64);
  if (!header_json) malformed("token header is not base64url");
  nlohmann::json header = parse_object(*header_json);
  if (header.is_null()) malformed("token header is not a JSON object");
  // RFC 7515 §4.1.11: a recipient must reject a token whose critical extensions it does not
  // understand; we understand none.
  if (header.contains("crit")) malformed("token header has crit");

  DecodedJws out;
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) malformed("token header has no alg");
  out.alg = alg->get<std::string>();
  auto jws_alg = parse_jws_alg(out.alg);
  // Decided before any key is looked up: "none", HMAC (the key-confusion attack) and curve
  // algorithms never reach signature code, and cannot trigger a JWKS refresh either.
  if (!jws_alg) fail("alg_not_allowed", "token alg is not allowed");
  out.jws_alg = *jws_alg;

  auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string() || kid->get_ref<const std::string&>().empty())
    malformed("token header has no kid");
  out.kid = kid->get<std::string>();

  auto payload_json = decode_part(payload_b64);
  if (!payload_json) malformed("token payload is not base64url");
  out.payload = parse_object(*payload_json);
  if (out.payload.is_null()) malformed("token payload is not a JSON object");

  if (signature_b64.empty()) malformed("token has no signature");
  auto signature = decode_part(signature_b64);
  if (!signature) malformed("token signature is not base64url");
  out.signature = std::move(*signature);
  out.signing_input = token.substr(0, dot2);
  return out;
}

void verify_signature(const DecodedJws& jws, const Jwk& key) {
  // The key decides the algorithm, never the token: a token claiming another alg than the
  // key's is refused even if its signature would check out under that alg.
  if (key.allowed_alg() != jws.jws_alg) fail("alg_not_allowed", "token alg does not match key");
  if (!key.verify(jws.jws_alg, jws.signing_input, jws.signature))
    fail("bad_signature", "token signature does not verify");
}

void check_registered_claims(const nlohmann::json& payload, const JwtOptions& options,
                             int64_t now_s) {
  auto iss = payload.find("iss");
  if (iss == payload.end() || !iss->is_string() ||
      iss->get_ref<const std::string&>() != options.issuer)
    fail("wrong_issuer", "token issuer is not " + options.issuer);

  auto aud = payload.find("aud");
  bool aud_ok = false;
  if (aud != payload.end()) {
    if (aud->is_string()) {
      aud_ok = aud->get_ref<const std::string&>() == options.audience;
    } else if (aud->is_array()) {
      bool all_strings = true;
      for (const auto& a : *aud) {
        if (!a.is_string()) {
          all_strings = false;
          break;
        }
        aud_ok = aud_ok || a.get_ref<const std::string&>() == options.audience;
      }
      aud_ok = aud_ok && all_strings;
    }
  }
  if (!aud_ok) fail("wrong_audience", "token audience does not include this integration");

  const double now = static_cast<double>(now_s);
  const double leeway = static_cast<double>(options.leeway_s);
  const auto exp = numeric_date(payload, "exp");
  if (!exp) bad_claims("token has no exp");
  if (now > *exp + leeway) fail("expired", "token has expired");
  if (const auto nbf = numeric_date(payload, "nbf"); nbf && now < *nbf - leeway)
    fail("not_yet_valid", "token is not valid yet (nbf)");
  const auto iat = numeric_date(payload, "iat");
  if (iat && *iat > now + leeway) fail("issued_in_future", "token is issued in the future (iat)");
  if (options.max_lifetime_s > 0) {
    const double cap = static_cast<double>(options.max_lifetime_s) + leeway;
    if (*exp - now > cap || (iat && *exp - *iat > cap))
      fail("lifetime_too_long", "token lifetime exceeds " + std::to_string(options.max_lifetime_s) +
                                    " s (WHARF_TOKEN_MAX_LIFETIME_S)");
  }
}

AuthMode infer_mode(const nlohmann::json& payload) {
  return present(payload, "user_id") || present(payload, "user_role") ? AuthMode::kUser
                                                                      : AuthMode::kSystem;
}

Claims parse_claims(nlohmann::json payload, AuthMode mode) {
  if (!payload.is_object()) bad_claims("token payload is not an object");
  Claims c;
  c.mode = mode;
  if (auto iss = optional_string(payload, "iss")) c.iss = std::move(*iss);
  if (auto aud = payload.find("aud"); aud != payload.end()) {
    if (aud->is_string()) {
      c.aud.push_back(aud->get<std::string>());
    } else if (aud->is_array()) {
      for (const auto& a : *aud)
        if (a.is_string()) c.aud.push_back(a.get<std::string>());
    }
  }
  if (auto v = numeric_date(payload, "exp")) c.exp = to_int64(*v);
  if (auto v = numeric_date(payload, "iat")) c.iat = to_int64(*v);
  if (auto v = numeric_date(payload, "nbf")) c.nbf = to_int64(*v);
  c.type = optional_string(payload, "type");

  if (mode == AuthMode::kUser) {
    auto sub = payload.find("sub");
    if (sub == payload.end() || !sub->is_string() ||
        !is_user_subject(sub->get_ref<const std::string&>()))
      bad_claims("sub must look like account:<hex>:user:<hex>");
    c.sub = sub->get<std::string>();
    c.account_id = required_string(payload, "account_id");
    c.installation_id = required_string(payload, "installation_id");
    c.user_id = required_string(payload, "user_id");
    auto role = payload.find("user_role");
    if (role == payload.end() || !role->is_string()) bad_claims("user_role is required");
    const std::string& r = role->get_ref<const std::string&>();
    if (r == "ADMIN") {
      c.role = Role::kAdmin;
    } else if (r == "USER") {
      c.role = Role::kUser;
    } else {
      bad_claims("user_role must be ADMIN or USER");
    }
    c.user_email = optional_string(payload, "user_email");
    c.user_name = optional_string(payload, "user_name");
    c.user_avatar_url = optional_string(payload, "user_avatar_url");
  } else {
    // §2.4: sub is "possibly null"; like PostHog, only a non-empty sub is pattern-checked.
    auto sub = optional_string(payload, "sub");
    if (!sub || sub->empty()) {
      c.sub_null = true;
    } else if (!is_system_subject(*sub)) {
      bad_claims("sub must look like account:<hex>");
    } else {
      c.sub = std::move(*sub);
    }
    c.account_id = optional_string(payload, "account_id");
    if (c.account_id && c.account_id->empty()) c.account_id.reset();
    // Null when there is no installation context (product plans before install, §2.7).
    c.installation_id = optional_string(payload, "installation_id");
    if (c.installation_id && c.installation_id->empty()) c.installation_id.reset();
  }
  c.raw = std::move(payload);
  return c;
}

nlohmann::json verify_jws(std::string_view token, const KeyLookup& find_key,
                          const JwtOptions& options, int64_t now_s) {
  DecodedJws jws = decode_jws(token);
  std::shared_ptr<const Jwk> key = find_key(jws.kid);
  if (!key) fail("unknown_kid", "token is signed with an unknown key");
  verify_signature(jws, *key);
  check_registered_claims(jws.payload, options, now_s);
  return std::move(jws.payload);
}

}  // namespace wharf::auth
