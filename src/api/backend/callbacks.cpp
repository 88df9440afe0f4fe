#include "api/backend/callbacks.h"

#include "api/respond.h"

namespace wharf::api::backend {

namespace {

// The product named in the path, once the body's signature is valid for it.
std::string verified_product(Context& ctx, service::ResourceService& resources) {
  std::string product(ctx.param("productId"));
  resources.verify_callback(product, std::string(ctx.req.header("wharf-signature").value_or("")),
                            ctx.req.body);
  return product;
}

}  // namespace

void add_routes(RouteTable& routes, service::ResourceService& resources) {
  // W1 and W3: a call on one resource of the signing product.
  using ResourceCall = model::Json (service::ResourceService::*)(
      const std::string& product_id, const std::string& resource_id, const model::Json& body);
  for (auto [name, call] :
       {std::pair<const char*, ResourceCall>{"status", &service::ResourceService::backend_status},
        std::pair<const char*, ResourceCall>{"secrets",
                                             &service::ResourceService::backend_secrets}})
    routes.add("POST", std::string("/v1/backend/{productId}/resources/{resourceId}/") + name,
               {false, {}, false, [&resources, call = call](Context& ctx) {
                  std::string product = verified_product(ctx, resources);
                  return json_response(
                      200, (resources.*call)(product, std::string(ctx.param("resourceId")),
                                             ctx.json_body()));
                }});
  routes.add("POST", "/v1/backend/{productId}/usage",
             {false, {}, false, [&resources](Context& ctx) {
                std::string product = verified_product(ctx, resources);
                return json_response(200, resources.ingest_usage(product, ctx.json_body()));
              }});
}

}  // namespace wharf::api::backend
