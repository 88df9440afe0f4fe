// Plan listings (partner-api.md §5.12–5.14). All System auth; the product listing may come
// before any installation exists, so it is not bound to one (§2.7).
#include "api/partner/routes.h"
#include "api/respond.h"

namespace wharf::api::partner {

void add_plan_routes(RouteTable& routes, Services& s) {
  auth::EndpointPolicy unbound = system_read();
  unbound.bind_installation = false;

  routes.add("GET", "/v1/products/{productSlug}/plans",
             {true, unbound, false,
              [&s](Context& ctx) {
                return net::Response::json(
                    200, s.plans.product_plans(std::string(ctx.param("productSlug")),
                                               ctx.req.query_param("metadata")));
              },
              /*quick=*/true});

  routes.add("GET", "/v1/installations/{installationId}/plans",
             {true, system_read(), false,
              [&s](Context& ctx) {
                return net::Response::json(
                    200, s.plans.installation_plans(std::string(ctx.param("installationId")),
                                                    ctx.req.query_param("metadata")));
              },
              /*quick=*/true});
}

}  // namespace wharf::api::partner
