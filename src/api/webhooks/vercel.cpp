#include "api/webhooks/vercel.h"

#include "api/respond.h"

namespace wharf::api::webhooks {

void add_routes(RouteTable& routes, const std::string& path, service::WebhookService& webhooks) {
  routes.add(
      "POST", path,
      {false, {}, false, [&webhooks](Context& ctx) {
         return json_response(
             200, webhooks.receive(ctx.req.body,
                                   std::string(ctx.req.header("x-vercel-signature").value_or(""))));
       }});
}

}  // namespace wharf::api::webhooks
