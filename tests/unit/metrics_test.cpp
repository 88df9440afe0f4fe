// /metrics rendering: what it shows, and that rendering never holds the lock every request
// takes to count itself while an external gauge reads (possibly slowly, from the store).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "api/metrics.h"

namespace wharf::api {
namespace {

TEST(Metrics, RendersCountersAndExternals) {
  Metrics m;
  m.observe_request("/v1/x", "GET", 200, 3.0);
  m.observe_request("/v1/x", "GET", 200, 3.0);
  m.auth_failure("expired");
  m.add_external("wharf_test_gauge", "A gauge.", "gauge", [] { return 42.0; });
  std::string out = m.render();
  EXPECT_NE(out.find("wharf_http_requests_total{route=\"/v1/x\",method=\"GET\",status=\"200\"} 2"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("wharf_auth_failures_total{reason=\"expired\"} 1"), std::string::npos);
  EXPECT_NE(out.find("wharf_test_gauge 42"), std::string::npos);
}

TEST(Metrics, UndocumentedAuthModesAreCountedAndReportedFirstOnce) {
  Metrics m;
  EXPECT_TRUE(m.auth_undocumented_mode("/v1/installations/{installationId}", "GET", "user"));
  EXPECT_FALSE(m.auth_undocumented_mode("/v1/installations/{installationId}", "GET", "user"));
  EXPECT_TRUE(m.auth_undocumented_mode("/v1/products/{productSlug}/plans", "GET", "user"));
  std::string out = m.render();
  EXPECT_NE(out.find("wharf_auth_undocumented_mode_total{route=\"/v1/installations/"
                     "{installationId}\",method=\"GET\",mode=\"user\"} 2"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("wharf_auth_undocumented_mode_total{route=\"/v1/products/{productSlug}/"
                     "plans\",method=\"GET\",mode=\"user\"} 1"),
            std::string::npos)
      << out;
}

TEST(Metrics, ASlowGaugeDoesNotHoldUpRequests) {
  Metrics m;
  std::promise<void> reading;
  std::promise<void> release;
  auto released = release.get_future().share();
  m.add_external("wharf_slow_gauge", "Reads the store.", "gauge", [&reading, released] {
    reading.set_value();
    released.wait();  // a store read that takes its time
    return 1.0;
  });
  auto rendered = std::async(std::launch::async, [&m] { return m.render(); });
  reading.get_future().wait();
  // The gauge is being read: requests must still count themselves at once.
  auto counted = std::async(std::launch::async, [&m] {
    m.observe_request("/v1/y", "GET", 200, 1.0);
    m.auth_failure("bad_signature");
  });
  EXPECT_EQ(counted.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "a request waited for /metrics";
  release.set_value();
  EXPECT_NE(rendered.get().find("wharf_slow_gauge 1"), std::string::npos);
  counted.get();
}

}  // namespace
}  // namespace wharf::api
