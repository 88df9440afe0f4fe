#include "api/dashboard/html.h"

#include <algorithm>
#include <cstdio>

#include "util/clock.h"
#include "util/markup.h"

namespace wharf::api::dashboard {
namespace {

// Scripts and styles come only from our own asset routes; no inline script or style at all.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string title_for(int status) {
  switch (status) {
    case 400:
      return "This link cannot be used";
    case 401:
      return "You are not signed in";
    case 403:
      return "Not allowed";
    case 404:
      return "Not found";
    case 409:
      return "Not possible right now";
    case 429:
      return "Too many requests";
    case 502:
      return "Vercel could not be reached";
    default:
      return "Something went wrong";
  }
}

}  // namespace

bool loopback_http(const std::string& url) {
  for (const char* p : {"http://127.", "http://localhost:", "http://localhost/", "http://[::1]"})
    if (url.rfind(p, 0) == 0) return true;
  return url == "http://localhost";
}

std::string esc(std::string_view s) {
  return util::markup_escape(s);
}

net::Response html_page(int status, std::string_view title, const service::Session* session,
                        const std::string& body) {
  std::string h;
  h.reserve(body.size() + 2048);
  h += "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  h += "<title>" + esc(title) + " · Wharf</title>";
  // data: icon: browsers would otherwise ask for /favicon.ico on every page.
  h += "<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" "
       "href=\"/dashboard/assets/app.css\">";
  h += "<script src=\"/dashboard/assets/app.js\" defer></script></head><body>";
  h += "<header class=\"top\"><a class=\"brand\" href=\"/dashboard\">Wharf</a>";
  if (session) {
    h += "<nav><a href=\"/dashboard\">Resources</a><a href=\"/dashboard/usage\">Usage</a>"
         "<a href=\"/dashboard/billing\">Billing</a><a "
         "href=\"/dashboard/support\">Support</a></nav>";
    const auto& u = session->user;
    h += "<div class=\"who\"><span class=\"user\">" +
         esc(u.name.empty() ? (u.email.empty() ? u.user_id : u.email) : u.name) +
         "</span> <span class=\"role role-" + esc(u.role) + "\">" + esc(u.role) + "</span>";
    h += "<form method=\"post\" action=\"/dashboard/signout\" class=\"inline\">" +
         csrf_input(*session) + "<button type=\"submit\" class=\"link\">Sign out</button></form>";
    h += "</div>";
  }
  h += "</header><main>";
  h += body;
  h += "</main></body></html>\n";
  net::Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(h);
  r.headers.emplace_back("Content-Security-Policy", kCsp);
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "same-origin");
  return r;
}

net::Response error_page(const model::ApiError& e, const service::Session* session) {
  std::string title = title_for(e.status);
  std::string body = "<section class=\"card error\"><h1>" + esc(title) + "</h1><p class=\"msg\">" +
                     esc(e.message) + "</p>";
  if (e.status == 400 || e.status == 401 || e.status == 502)
    body +=
        "<p>Open this integration again from your Vercel dashboard (\"Open in\" on the "
        "installation or resource page) to sign in.</p><p><a class=\"button\" "
        "href=\"https://vercel.com/dashboard\">Back to Vercel</a></p>";
  else if (session)
    body += "<p><a class=\"button\" href=\"/dashboard\">Back to your resources</a></p>";
  body += "</section>";
  auto res = html_page(e.status, title, session, body);
  if (e.retry_after_s) res.headers.emplace_back("Retry-After", std::to_string(*e.retry_after_s));
  return res;
}

net::Response see_other(const std::string& location) {
  net::Response r;
  r.status = 303;
  r.headers.emplace_back("Location", location);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

std::optional<std::string> cookie(const net::Request& req, std::string_view name) {
  for (const auto& [k, v] : req.headers) {
    if (k != "cookie") continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      auto semi = rest.find(';');
      std::string_view pair = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      auto eq = pair.find('=');
      if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == name)
        return std::string(trim(pair.substr(eq + 1)));
    }
  }
  return std::nullopt;
}

std::string session_cookie_header(const std::string& value, int64_t max_age_s, bool secure) {
  std::string c = std::string(kSessionCookie) + "=" + value +
                  "; Path=/; Max-Age=" + std::to_string(max_age_s) + "; HttpOnly; SameSite=Lax";
  if (secure) c += "; Secure";
  return c;
}

std::optional<service::Session> session_of(const Context& ctx, const Deps& deps) {
  auto value = cookie(ctx.req, kSessionCookie);
  if (!value) return std::nullopt;
  return deps.sessions.find(*value);
}

service::Session require_session(const Context& ctx, const Deps& deps) {
  auto s = session_of(ctx, deps);
  if (!s)
    throw model::ApiError::unauthorized(
        "Your session is missing or has expired. Sign in again from Vercel.");
  return *s;
}

std::map<std::string, std::string> form_fields(const net::Request& req) {
  std::map<std::string, std::string> out;
  if (net::media_type(req.header("content-type").value_or("")) !=
      "application/x-www-form-urlencoded")
    return out;
  std::string_view b = req.body;
  while (!b.empty()) {
    auto amp = b.find('&');
    std::string_view pair = b.substr(0, amp);
    b = amp == std::string_view::npos ? std::string_view() : b.substr(amp + 1);
    auto eq = pair.find('=');
    auto k = net::percent_decode(pair.substr(0, eq), true);
    auto v = net::percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (k && v) out.emplace(*k, *v);
  }
  return out;
}

void check_csrf(const net::Request& req, const service::Session& session) {
  std::string submitted(req.header("x-csrf-token").value_or(""));
  if (submitted.empty()) {
    auto fields = form_fields(req);
    if (auto it = fields.find("csrf"); it != fields.end()) submitted = it->second;
  }
  if (!service::SessionService::csrf_matches(session, submitted))
    throw model::ApiError::forbidden(
        "This form has expired or did not come from this dashboard (CSRF check failed). Reload "
        "the page and try again.");
}

void require_admin(const service::Session& s, std::string_view what) {
  if (!s.admin())
    throw model::ApiError::forbidden(std::string(what) +
                                     " needs the ADMIN role; your role on this team is " +
                                     s.user.role + ".");
}

std::string csrf_input(const service::Session& session) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + esc(session.csrf_token) + "\">";
}

std::vector<std::string> billing_period_days(int64_t now_ms) {
  std::string today = util::format_iso8601_ms(now_ms).substr(0, 10);
  int last = std::stoi(today.substr(8, 2));
  std::vector<std::string> days;
  for (int d = 1; d <= last && d <= 31; ++d)
    days.push_back(today.substr(0, 8) + static_cast<char>('0' + d / 10) +
                   static_cast<char>('0' + d % 10));
  return days;
}

std::string format_metric(std::string_view units, int64_t v) {
  if (units != "bytes") return std::to_string(v);
  const char* prefixes[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(v);
  int u = 0;
  while (x >= 1024 && u < 4) {
    x /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", x, prefixes[u]);
  return buf;
}

std::string usage_chart(std::string_view metric, const std::vector<std::string>& days,
                        const std::vector<int64_t>& values, bool level, std::string_view units) {
  constexpr int kW = 400, kH = 200, kLeft = 64, kBottom = 24, kTop = 12;
  const int plot_w = kW - kLeft - 8, plot_h = kH - kBottom - kTop;
  int64_t max = 0, total = 0;
  for (auto v : values) {
    max = std::max(max, v);
    total += v;
  }
  // A level is the day's maximum (storage), the others are counts per day.
  std::string summary = level ? "latest " + format_metric(units, values.empty() ? 0 : values.back())
                              : "total " + format_metric(units, total);
  std::string label = std::string(metric) + " per day, " + summary;
  std::string s = "<figure class=\"chart\"><figcaption><strong>" + esc(metric) +
                  "</strong> <span class=\"muted\">" + esc(summary) + "</span></figcaption>";
  s += "<svg viewBox=\"0 0 " + std::to_string(kW) + " " + std::to_string(kH) +
       "\" role=\"img\" aria-label=\"" + esc(label) + "\" data-metric=\"" + esc(metric) +
       "\" preserveAspectRatio=\"xMidYMid meet\"><title>" + esc(label) + "</title>";
  // Axes and the top gridline with the maximum.
  int x0 = kLeft, y0 = kTop + plot_h;
  s += "<line class=\"axis\" x1=\"" + std::to_string(x0) + "\" y1=\"" + std::to_string(y0) +
       "\" x2=\"" + std::to_string(x0 + plot_w) + "\" y2=\"" + std::to_string(y0) + "\"/>";
  s += "<line class=\"grid\" x1=\"" + std::to_string(x0) + "\" y1=\"" + std::to_string(kTop) +
       "\" x2=\"" + std::to_string(x0 + plot_w) + "\" y2=\"" + std::to_string(kTop) + "\"/>";
  s += "<text class=\"tick\" x=\"" + std::to_string(x0 - 6) + "\" y=\"" + std::to_string(kTop + 4) +
       "\" text-anchor=\"end\">" + esc(format_metric(units, max)) + "</text>";
  s += "<text class=\"tick\" x=\"" + std::to_string(x0 - 6) + "\" y=\"" + std::to_string(y0) +
       "\" text-anchor=\"end\">0</text>";
  const size_t n = std::max<size_t>(days.size(), 1);
  const double slot = static_cast<double>(plot_w) / static_cast<double>(n);
  for (size_t i = 0; i < days.size(); ++i) {
    int64_t v = i < values.size() ? values[i] : 0;
    double h = max > 0 ? static_cast<double>(v) / static_cast<double>(max) * plot_h : 0;
    if (v > 0 && h < 2) h = 2;  // a non-zero day stays visible
    char rect[160];
    std::snprintf(rect, sizeof rect,
                  "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">",
                  x0 + slot * static_cast<double>(i) + slot * 0.15, y0 - h, slot * 0.7, h);
    s += rect;
    s += "<title>" + esc(days[i]) + ": " + esc(format_metric(units, v)) + "</title></rect>";
  }
  if (!days.empty()) {
    s += "<text class=\"tick\" x=\"" + std::to_string(x0) + "\" y=\"" + std::to_string(kH - 6) +
         "\">" + esc(days.front().substr(5)) + "</text>";
    s += "<text class=\"tick\" x=\"" + std::to_string(x0 + plot_w) + "\" y=\"" +
         std::to_string(kH - 6) + "\" text-anchor=\"end\">" + esc(days.back().substr(5)) +
         "</text>";
  }
  s += "</svg></figure>";
  return s;
}

HandlerFn page_route(const Deps& deps, PageFn fn) {
  return [&deps, fn = std::move(fn)](Context& ctx) {
    std::optional<service::Session> session;
    try {
      session = session_of(ctx, deps);
      if (!session)
        throw model::ApiError::unauthorized(
            "Your session is missing or has expired. Sign in again from Vercel.");
      return fn(ctx, *session);
    } catch (const model::ApiError& e) {
      return error_page(e, session ? &*session : nullptr);
    }
  };
}

HandlerFn form_route(const Deps& deps, PageFn fn) {
  return page_route(deps, [fn = std::move(fn)](Context& ctx, const service::Session& s) {
    check_csrf(ctx.req, s);
    return fn(ctx, s);
  });
}

}  // namespace wharf::api::dashboard
