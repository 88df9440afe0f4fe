// The Redirect Login URL (flows.md §2.1), sign-out, and provider-initiated SSO links (§2.2).
#include "api/dashboard/html.h"
#include "api/respond.h"

namespace wharf::api::dashboard {

void add_sso_routes(RouteTable& routes, Deps& d) {
  // Vercel sends the browser here with mode=sso, code, state and deep-link parameters. Every
  // parameter is checked before the code is spent; any failure is an error page and no session.
  routes.add("GET", d.options.callback_path,
             {false, {}, false, [&d](Context& ctx) {
                try {
                  // Before anything else, and before the code is spent with Vercel.
                  if (d.rate_limits) d.rate_limits->sso_address(ctx.req.remote);
                  auto cb = service::parse_sso_callback(
                      [&](std::string_view name) { return ctx.req.query_param(name); },
                      d.options.public_url);
                  auto started = d.sso.sign_in(cb);
                  // A session this browser already had is replaced, not left behind.
                  if (auto old = cookie(ctx.req, kSessionCookie)) d.sessions.end(*old);
                  auto r = see_other(service::landing_path(cb.link));
                  r.headers.emplace_back(
                      "Set-Cookie",
                      session_cookie_header(started.cookie_value, d.sessions.ttl_ms() / 1000,
                                            d.options.secure_cookie));
                  r.headers.emplace_back("Referrer-Policy", "no-referrer");
                  return r;
                } catch (const model::ApiError& e) {
                  return error_page(e, nullptr);
                }
              }});

  routes.add("POST", "/dashboard/signout",
             {false, {}, false, [&d](Context& ctx) {
                auto value = cookie(ctx.req, kSessionCookie);
                if (auto s = value ? d.sessions.find(*value) : std::nullopt) {
                  try {
                    check_csrf(ctx.req, *s);
                  } catch (const model::ApiError& e) {
                    return error_page(e, &*s);
                  }
                  d.sessions.end(*value);
                }
                auto r = html_page(200, "Signed out", nullptr,
                                   "<section class=\"card\"><h1>You are signed out</h1><p>Open "
                                   "this integration from Vercel to sign in again.</p></section>");
                r.headers.emplace_back("Set-Cookie",
                                       session_cookie_header("", 0, d.options.secure_cookie));
                return r;
              }});

  // A provider-initiated SSO link into this installation (flows.md §2.2), for the signed-in
  // user to share or bookmark: deep-link parameters from the query are passed through.
  routes.add("GET", "/dashboard/api/sso-link",
             {false, {}, false, [&d](Context& ctx) {
                auto s = require_session(ctx, d);
                if (d.options.url_slug.empty())
                  throw model::ApiError::not_found(
                      "provider-initiated SSO links need WHARF_URL_SLUG to be set");
                std::vector<std::pair<std::string, std::string>> query;
                for (const char* name : {"resource_id", "project_id", "invoice_id", "check_id",
                                         "experimentation_item_id", "product_id", "path", "url"})
                  if (auto v = ctx.req.query_param(name); v && !v->empty())
                    query.emplace_back(name, *v);
                return json_response(
                    200, {{"url", service::provider_sso_url(d.options.sso_base, d.options.url_slug,
                                                            s.user.installation_id, query)}});
              }});
}

}  // namespace wharf::api::dashboard
