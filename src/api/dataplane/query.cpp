#include "api/dataplane/query.h"

#include "api/respond.h"

namespace wharf::api::dataplane {

void add_routes(RouteTable& routes, service::ResourceService& resources) {
  // Not an OIDC route: the database token is checked by the service.
  routes.add("POST", "/v1/databases/{resourceId}/query",
             {false, {}, false, [&resources](Context& ctx) {
                auto token = auth::bearer_token(ctx.req.header("authorization").value_or(""));
                return json_response(200, resources.query(std::string(ctx.param("resourceId")),
                                                          std::string(token), ctx.json_body()));
              }});
}

}  // namespace wharf::api::dataplane
