// Building blocks of the dashboard's HTML: escaping, the page frame and its security
// headers, the session cookie, form bodies and the usage chart.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/dashboard/routes.h"
#include "model/api_error.h"

namespace wharf::api::dashboard {

inline constexpr std::string_view kSessionCookie = "wharf_session";

// Escapes & < > " ' for text and attribute values alike.
std::string esc(std::string_view s);

// A whole page: the frame (navigation, who is signed in, sign-out form) around `body`, with
// no-store caching, a strict CSP and anti-framing headers. `session` may be null.
net::Response html_page(int status, std::string_view title, const service::Session* session,
                        const std::string& body);
net::Response error_page(const model::ApiError& error, const service::Session* session);
net::Response see_other(const std::string& location);

// A cookie's value from the Cookie header; nullopt when absent.
std::optional<std::string> cookie(const net::Request& req, std::string_view name);
std::string session_cookie_header(const std::string& value, int64_t max_age_s, bool secure);

// The signed-in session, or nullopt (no cookie, tampered, unknown or expired).
std::optional<service::Session> session_of(const Context& ctx, const Deps& deps);
// As session_of, else ApiError 401.
service::Session require_session(const Context& ctx, const Deps& deps);

// application/x-www-form-urlencoded body → name → first value.
std::map<std::string, std::string> form_fields(const net::Request& req);
// ApiError 403 unless the submitted token (form field `csrf` or header X-CSRF-Token) is the
// session's.
void check_csrf(const net::Request& req, const service::Session& session);
// ApiError 403 naming `what` unless the session's role is ADMIN (changes; USER reads).
void require_admin(const service::Session& session, std::string_view what);
// <input type=hidden name=csrf …> for forms.
std::string csrf_input(const service::Session& session);

// The billing period shown: the current UTC calendar month up to today (YYYY-MM-DD each).
std::vector<std::string> billing_period_days(int64_t now_ms);
// A bar chart of one metric over `days` (inline SVG, styled by the stylesheet). A `level`
// metric (storage) is summed up by its latest value, others by their total; `units` "bytes"
// are shown as KiB/MiB/….
std::string usage_chart(std::string_view metric, const std::vector<std::string>& days,
                        const std::vector<int64_t>& values, bool level = false,
                        std::string_view units = "");
std::string format_metric(std::string_view units, int64_t value);

// A page handler that needs a session: ApiErrors (401 included) become the error page.
using PageFn = std::function<net::Response(Context&, const service::Session&)>;
HandlerFn page_route(const Deps& deps, PageFn fn);
// The same for a form's POST: the session's CSRF token is checked before `fn` runs.
HandlerFn form_route(const Deps& deps, PageFn fn);

}  // namespace wharf::api::dashboard
