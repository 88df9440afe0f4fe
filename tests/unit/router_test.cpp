#include <gtest/gtest.h>

#include "net/http.h"
#include "net/router.h"

namespace wharf::net {

TEST(Router, MatchesLiteralsBeforeParameters) {
  Router<int> r;
  r.add("GET", "/v1/installations/{installationId}", 1);
  r.add("GET", "/v1/installations/{installationId}/plans", 2);
  r.add("GET", "/v1/installations/{installationId}/resources/{resourceId}/plans", 3);
  r.add("GET", "/v1/products/{productSlug}/plans", 4);
  r.add("PUT", "/v1/installations/{installationId}", 5);

  auto m = r.match("GET", "/v1/installations/icfg_1/resources/res%2F1/plans");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(*m.route, 3);
  EXPECT_EQ(m.params[0].second, "icfg_1");
  EXPECT_EQ(m.params[1].second, "res/1");  // percent-decoded per segment
  EXPECT_EQ(m.pattern, "/v1/installations/{installationId}/resources/{resourceId}/plans");

  EXPECT_EQ(*r.match("PUT", "/v1/installations/x").route, 5);
  EXPECT_EQ(*r.match("GET", "/v1/installations/x/").route, 1);  // trailing slash tolerated
  auto bad_method = r.match("DELETE", "/v1/installations/x");
  EXPECT_FALSE(bad_method.route);
  EXPECT_TRUE(bad_method.method_not_allowed);
  EXPECT_FALSE(r.match("GET", "/v1/nothing").route);
  EXPECT_FALSE(r.match("GET", "/v1/installations/x/unknown").method_not_allowed);
}

TEST(Request, QueryParamsArePercentDecoded) {
  Request req;
  req.query = "metadata=%7B%22region%22%3A%22sfo1%22%7D&ids=a&ids=b+c&flag";
  EXPECT_EQ(req.query_param("metadata"), "{\"region\":\"sfo1\"}");
  EXPECT_EQ(req.query_params("ids"), (std::vector<std::string>{"a", "b c"}));
  EXPECT_EQ(req.query_param("flag"), "");
  EXPECT_FALSE(req.query_param("missing"));
  req.headers = {{"content-type", "application/json"}};
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_FALSE(percent_decode("%zz", false));
}

}  // namespace wharf::net
