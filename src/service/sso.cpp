#include "service/sso.h"

#include <array>

#include "model/api_error.h"
#include "net/http.h"
#include "util/log.h"

namespace wharf::service {
namespace {

using model::ApiError;

constexpr size_t kMaxCodeChars = 2048;
constexpr size_t kMaxIdChars = 256;
constexpr size_t kMaxUrlChars = 2048;
constexpr std::array<std::string_view, 5> kPaths = {"billing", "usage", "onboarding", "secrets",
                                                    "support"};

// Visible ASCII only: codes, states and ids never contain blanks or control characters.
bool visible_ascii(std::string_view s) {
  for (char c : s)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// scheme://host[:port] of a base URL (its path dropped), lowercased.
std::string origin_of(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  auto path = url.find('/', scheme_end + 3);
  return lower(url.substr(0, path));
}

std::optional<std::string> token_param(const QueryLookup& q, const char* name, size_t max) {
  auto v = q(name);
  if (!v || v->empty()) return std::nullopt;
  if (v->size() > max || !visible_ascii(*v))
    throw ApiError::bad_request(std::string("The sign-in link's ") + name + " is malformed.");
  return v;
}

}  // namespace

std::optional<std::string> same_origin_path(std::string_view url, std::string_view public_url) {
  if (url.empty() || url.size() > kMaxUrlChars) return std::nullopt;
  for (char c : url)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') return std::nullopt;
  std::string_view path = url;
  if (url.front() != '/') {
    // Absolute: only this server's own origin, followed by a path, query, fragment or nothing.
    std::string origin = origin_of(public_url);
    if (origin.empty() || url.size() < origin.size() ||
        lower(url.substr(0, origin.size())) != origin)
      return std::nullopt;
    path = url.substr(origin.size());
    if (path.empty()) return std::string("/");
    if (path.front() == '?' || path.front() == '#') return "/" + std::string(path);
    if (path.front() != '/') return std::nullopt;  // e.g. https://our.host.evil.com
  }
  if (path.size() >= 2 && path[1] == '/') return std::nullopt;  // "//host": another origin
  return std::string(path);
}

SsoCallback parse_sso_callback(const QueryLookup& q, std::string_view public_url) {
  auto mode = q("mode");
  if (!mode || *mode != "sso")
    throw ApiError::bad_request("This is not a Vercel sign-in link (mode must be sso).");
  SsoCallback cb;
  auto code = token_param(q, "code", kMaxCodeChars);
  if (!code) throw ApiError::bad_request("The sign-in link has no code.");
  auto state = token_param(q, "state", kMaxCodeChars);
  if (!state) throw ApiError::bad_request("The sign-in link has no state.");
  cb.code = *code;
  cb.state = *state;
  DeepLink& l = cb.link;
  l.product_id = token_param(q, "product_id", kMaxIdChars);
  l.resource_id = token_param(q, "resource_id", kMaxIdChars);
  l.project_id = token_param(q, "project_id", kMaxIdChars);
  l.check_id = token_param(q, "check_id", kMaxIdChars);
  l.experimentation_item_id = token_param(q, "experimentation_item_id", kMaxIdChars);
  l.invoice_id = token_param(q, "invoice_id", kMaxIdChars);
  l.pr = token_param(q, "pr", kMaxUrlChars);
  if (auto p = q("path"); p && !p->empty()) {
    for (auto known : kPaths)
      if (*p == known) l.path = *p;
  }
  // The reference implementation routes on a `support` parameter (flows.md §6 q9).
  if (!l.path && q("support")) l.path = "support";
  if (auto u = q("url"); u && !u->empty()) {
    l.url = same_origin_path(*u, public_url);
    if (!l.url)
      throw ApiError::bad_request(
          "The sign-in link asks to continue to an address outside this site; it was refused.");
  }
  return cb;
}

std::string landing_path(const DeepLink& l) {
  const std::string home = "/dashboard";
  if (l.url) return *l.url;
  if (l.invoice_id) return home + "/billing?invoice=" + net::percent_encode(*l.invoice_id);
  if (l.experimentation_item_id)
    return home + "/experimentation?item=" + net::percent_encode(*l.experimentation_item_id);
  if (l.resource_id) {
    std::string p = home + "/resources/" + net::percent_encode(*l.resource_id);
    std::string q;
    if (l.project_id) q += "&project=" + net::percent_encode(*l.project_id);
    if (l.check_id) q += "&check=" + net::percent_encode(*l.check_id);
    if (!q.empty()) p += "?" + q.substr(1);
    return p;
  }
  if (l.path) return home + "/" + *l.path;
  return home;
}

bool is_deep_link_param(std::string_view name) {
  static constexpr std::array<std::string_view, 10> kNames = {
      "product_id", "resource_id", "project_id", "check_id", "experimentation_item_id",
      "invoice_id", "pr",          "path",       "url",      "support"};
  for (auto n : kNames)
    if (n == name) return true;
  return false;
}

std::string provider_sso_url(std::string_view sso_base, std::string_view url_slug,
                             std::string_view installation_id,
                             const std::vector<std::pair<std::string, std::string>>& query) {
  std::string out(sso_base);
  while (!out.empty() && out.back() == '/') out.pop_back();
  out += "/" + net::percent_encode(url_slug) + "/" + net::percent_encode(installation_id);
  char sep = '?';
  for (const auto& [k, v] : query) {
    out += sep + net::percent_encode(k) + "=" + net::percent_encode(v);
    sep = '&';
  }
  return out;
}

SsoService::SsoService(const vercel::SsoClient& client, const auth::Authenticator& authenticator,
                       store::Store& store, SessionService& sessions, RateLimits* rate_limits)
    : client_(client),
      authenticator_(authenticator),
      store_(store),
      sessions_(sessions),
      rate_limits_(rate_limits) {}

SessionService::Started SsoService::sign_in(const SsoCallback& cb) {
  // Never retried: the code is single-use (flows.md §2.1 step 8).
  vercel::SsoExchangeResult ex = client_.exchange(cb.code, cb.state);
  if (!ex.ok) {
    util::log_warn("SSO code exchange failed").num("status", ex.status).str("error", ex.error);
    if (ex.status == 0 || ex.status >= 500)
      throw ApiError(502, "bad_gateway", "Vercel could not confirm the sign-in: " + ex.error);
    throw ApiError(400, "bad_request",
                   "Vercel did not accept this sign-in link (it may have been used already or "
                   "have expired): " +
                       ex.error);
  }
  auth::Claims claims;
  try {
    claims = authenticator_.verify_id_token(ex.id_token);
  } catch (const auth::AuthFailure& f) {
    util::log_warn("SSO id_token refused").str("reason", f.reason);
    throw ApiError::unauthorized("The identity Vercel returned could not be verified: " +
                                 f.message);
  }
  bool active = false;
  store_.read([&](store::ReadTx& tx) {
    auto inst = tx.installation(*claims.installation_id);
    active = inst && inst->status == "active";
  });
  if (!active)
    throw ApiError::forbidden("This installation (" + *claims.installation_id +
                              ") is not installed here any more.");
  if (rate_limits_) rate_limits_->sso_installation(*claims.installation_id);
  SessionUser user{*claims.installation_id,
                   claims.account_id.value_or(""),
                   claims.user_id,
                   std::string(auth::role_name(claims.role)),
                   claims.user_name.value_or(""),
                   claims.user_email.value_or("")};
  auto started = sessions_.start(user);
  util::log_info("SSO sign-in")
      .str("installation", user.installation_id)
      .str("user", user.user_id)
      .str("role", user.role);
  return started;
}

}  // namespace wharf::service
