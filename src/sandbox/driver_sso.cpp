// The SSO flow: issues a single-use code for a team member and builds the partner's Redirect
// Login URL with it (flows.md §2.1); the partner exchanges the code at the sandbox's token
// endpoint.
#include "sandbox/driver_internal.h"

#include <iterator>
#include "util/crypto.h"

namespace wharf::sandbox::detail::flows {

Json sso(DriverImpl& d, const Json& params) {
  Params a(params, "sso",
           {"installationId", "userHex", "role", "resourceId", "projectId", "invoiceId", "path",
            "url", "checkId", "experimentationItemId", "productId", "pr", "support"});
  auto icfg = a.str("installationId", true);
  auto user_hex = a.str("userHex", false);
  // Which member signs in: a given user, else one with this role (created if none), else
  // the installer.
  auto role = a.one_of("role", false, {"ADMIN", "USER"});
  auto path = a.one_of("path", false, {"billing", "usage", "onboarding", "secrets", "support"});
  auto url = a.str("url", false);
  if (url && url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0)
    a.add("url", "must be an http:// or https:// URL");
  // Context parameters as the Redirect Login URL receives them (flows.md §2.1).
  static const std::vector<std::pair<const char*, const char*>> kContext = {
      {"productId", "product_id"},
      {"resourceId", "resource_id"},
      {"checkId", "check_id"},
      {"projectId", "project_id"},
      {"experimentationItemId", "experimentation_item_id"},
      {"invoiceId", "invoice_id"},
      {"pr", "pr"},
      {"path", "path"},
      {"url", "url"},
      {"support", "support"}};
  std::vector<std::pair<std::string, std::string>> context;
  for (const auto& [param, query] : kContext) {
    auto v = std::string(param) == "path"  ? path
             : std::string(param) == "url" ? url
                                           : a.str(param, false);
    if (v) context.emplace_back(query, *v);
  }
  a.done();
  Json inst = d.require_installation(*icfg, false);
  UserIdentity user = d.pick_user(*icfg, inst, user_hex, role);

  std::string code = util::random_token(24);
  std::string state = util::random_token(16);
  int64_t now = d.ctx.clock.now_ms();
  int64_t expires = now + d.ctx.config.sso_code_ttl_ms;
  Json ctx_json = Json::object();
  for (const auto& [k, v] : context) ctx_json[k] = v;
  d.ctx.state.mutate([&](Json& doc) {
    Json& codes = doc["ssoCodes"];
    // Spent and expired codes are of no further use; drop them so the map stays small.
    if (codes.is_object()) {
      for (auto it = codes.begin(); it != codes.end();) {
        const Json& c = it.value();
        bool dead = c.value("used", false) || c.value("expiresAt", int64_t{0}) < now - 3600000;
        it = dead && codes.size() > 100 ? codes.erase(it) : std::next(it);
      }
    }
    codes[code] = {{"installationId", *icfg}, {"userHex", user.user_hex}, {"state", state},
                   {"expiresAt", expires},    {"createdAt", now},         {"used", false},
                   {"context", ctx_json}};
  });
  std::string target = d.redirect_login_url();
  target += target.find('?') == std::string::npos ? '?' : '&';
  target += "mode=sso&code=" + pct_encode(code) + "&state=" + pct_encode(state);
  for (const auto& [k, v] : context) target += "&" + k + "=" + pct_encode(v);

  Outcome o;
  o.out["redirectUrl"] = target;
  o.out["code"] = code;
  o.out["state"] = state;
  o.out["expiresAt"] = expires;
  o.out["userHex"] = user.user_hex;
  return o.finish();
}

}  // namespace wharf::sandbox::detail::flows
