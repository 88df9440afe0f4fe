// The dashboard's HTML building blocks: escaping, the session cookie, forms, CSRF, the
// billing period and the usage chart.
#include <gtest/gtest.h>

#include "api/dashboard/html.h"

namespace wharf::api::dashboard {
namespace {

net::Request with_headers(net::Headers headers, std::string body = {}) {
  net::Request r;
  r.method = "POST";
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

TEST(DashboardHtml, EscapesEverythingThatCouldOpenMarkup) {
  EXPECT_EQ(esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
  EXPECT_EQ(esc("plain"), "plain");
}

TEST(DashboardHtml, SessionCookieIsFoundAmongOthers) {
  auto r = with_headers({{"cookie", "a=1; wharf_session=abc ;b=2"}});
  EXPECT_EQ(cookie(r, "wharf_session"), "abc");
  EXPECT_EQ(cookie(r, "b"), "2");
  EXPECT_FALSE(cookie(r, "wharf"));
  EXPECT_FALSE(cookie(with_headers({}), "wharf_session"));
  EXPECT_EQ(
      cookie(with_headers({{"cookie", "x=1"}, {"cookie", "wharf_session=z"}}), "wharf_session"),
      "z");
}

TEST(DashboardHtml, CookieAttributes) {
  EXPECT_EQ(session_cookie_header("v", 60, true),
            "wharf_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
  EXPECT_EQ(session_cookie_header("", 0, false),
            "wharf_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
  EXPECT_TRUE(loopback_http("http://127.0.0.1:3000"));
  EXPECT_TRUE(loopback_http("http://localhost:3000"));
  EXPECT_TRUE(loopback_http("http://[::1]:3000"));
  EXPECT_FALSE(loopback_http("https://127.0.0.1:3000"));
  EXPECT_FALSE(loopback_http("http://localhost.evil.example"));
  EXPECT_FALSE(loopback_http("http://db.example.com"));
}

TEST(DashboardHtml, FormFieldsAndCsrf) {
  auto r = with_headers({{"content-type", "application/x-www-form-urlencoded"}},
                        "csrf=a%2Bb&x=1+2&csrf=second");
  auto f = form_fields(r);
  EXPECT_EQ(f["csrf"], "a+b");  // the first value counts
  EXPECT_EQ(f["x"], "1 2");
  EXPECT_TRUE(form_fields(with_headers({{"content-type", "text/plain"}}, "csrf=a")).empty());

  service::Session s;
  s.csrf_token = "a+b";
  EXPECT_NO_THROW(check_csrf(r, s));
  EXPECT_NO_THROW(check_csrf(with_headers({{"x-csrf-token", "a+b"}}), s));
  EXPECT_THROW(check_csrf(with_headers({{"x-csrf-token", "a+c"}}), s), model::ApiError);
  EXPECT_THROW(check_csrf(with_headers({}), s), model::ApiError);
  EXPECT_NE(csrf_input(s).find("value=\"a+b\""), std::string::npos);
}

TEST(DashboardHtml, BillingPeriodIsTheMonthToDate) {
  // 2026-03-05T12:00:00Z
  auto days = billing_period_days(1772712000000);
  ASSERT_EQ(days.size(), 5u);
  EXPECT_EQ(days.front(), "2026-03-01");
  EXPECT_EQ(days.back(), "2026-03-05");
}

TEST(DashboardHtml, UsageChartHasOneBarPerDayAndEscapedLabels) {
  std::vector<std::string> days = {"2026-03-01", "2026-03-02", "2026-03-03"};
  std::string svg = usage_chart("queries", days, {0, 5, 10});
  size_t bars = 0;
  for (size_t p = svg.find("class=\"bar\""); p != std::string::npos;
       p = svg.find("class=\"bar\"", p + 1))
    ++bars;
  EXPECT_EQ(bars, 3u);
  EXPECT_NE(svg.find("<title>2026-03-03: 10</title>"), std::string::npos);
  EXPECT_NE(svg.find("total 15"), std::string::npos);
  EXPECT_EQ(svg.find("style="), std::string::npos);  // the CSP allows no inline styles
  std::string storage = usage_chart("storageBytes", days, {0, 2048, 1536}, true, "bytes");
  EXPECT_NE(storage.find("latest 1.5 KiB"), std::string::npos);
  EXPECT_NE(usage_chart("<m>", days, {}).find("&lt;m&gt;"), std::string::npos);
}

}  // namespace
}  // namespace wharf::api::dashboard
