// /v1/installations/{installationId}/resources[/{resourceId}[/plans|/secrets/rotate|/repl]]
// (partner-api.md §5.5–5.11, §5.13).
#include "api/partner/routes.h"
#include "api/respond.h"
#include "service/plans.h"

namespace wharf::api::partner {
namespace {

std::string param(const Context& ctx, std::string_view name) {
  return std::string(ctx.param(name));
}

// The client accepts streamed REPL output (one block per line).
bool wants_jsonl(const net::Request& req) {
  auto accept = req.header("accept");
  return accept && accept->find("application/jsonl") != std::string_view::npos;
}

}  // namespace

void add_resource_routes(RouteTable& routes, Services& s) {
  const std::string collection = "/v1/installations/{installationId}/resources";
  const std::string item = collection + "/{resourceId}";

  routes.add("POST", collection,
             {true, user_write(), true, [&s](Context& ctx) {
                auto req = model::ProvisionResourceRequest::parse(ctx.json_body());
                std::optional<std::string> key;
                if (auto k = ctx.req.header("idempotency-key"); k && !k->empty())
                  key = std::string(*k);
                return json_response(200,
                                     s.resources.provision(param(ctx, "installationId"), req, key));
              }});

  // Deprecated, still served (§5.6); `ids` restricts the list.
  routes.add("GET", collection,
             {true, system_read(), false,
              [&s](Context& ctx) {
                return json_response(200, s.resources.list(param(ctx, "installationId"),
                                                           ctx.req.query_params("ids")));
              },
              /*quick=*/true});

  routes.add("GET", item,
             {true, system_read(), false,
              [&s](Context& ctx) {
                return json_response(
                    200, s.resources.get(param(ctx, "installationId"), param(ctx, "resourceId")));
              },
              /*quick=*/true});

  routes.add("PATCH", item, {true, user_write(), true, [&s](Context& ctx) {
                               auto req = model::UpdateResourceRequest::parse(ctx.json_body());
                               return json_response(
                                   200, s.resources.update(param(ctx, "installationId"),
                                                           param(ctx, "resourceId"), req));
                             }});

  routes.add("DELETE", item, {true, user_or_system_write(), true, [&s](Context& ctx) {
                                s.resources.remove(param(ctx, "installationId"),
                                                   param(ctx, "resourceId"));
                                return net::Response::empty(204);
                              }});

  routes.add("POST", item + "/secrets/rotate",
             {true, user_or_system_write(), true, [&s](Context& ctx) {
                auto req = model::RotateSecretsRequest::parse(
                    ctx.req.header("content-type").value_or(""), ctx.req.body);
                auto out =
                    s.resources.rotate(param(ctx, "installationId"), param(ctx, "resourceId"), req);
                return json_response(out.status, out.body);
              }});

  // User auth; a USER-role token may use the console read-only (§2.5).
  auth::EndpointPolicy repl_policy{true, false, false, true};
  routes.add("POST", item + "/repl",
             {true, repl_policy, true, [&s](Context& ctx) {
                auto req = model::ReplRequest::parse(ctx.json_body());
                if (ctx.claims && ctx.claims->role != auth::Role::kAdmin) req.read_only = true;
                std::string inst = param(ctx, "installationId"), rid = param(ctx, "resourceId");
                s.resources.admit_repl(inst, ctx.claims && !ctx.claims->user_id.empty()
                                                 ? "user:" + ctx.claims->user_id
                                                 : std::string("system"));
                if (!wants_jsonl(ctx.req))
                  return json_response(200, s.resources.repl(inst, rid, req, {}));
                // application/jsonl: each block goes out as soon as it is produced.
                s.resources.check_repl(inst, rid);
                net::Response r;
                r.content_type = "application/jsonl";
                r.stream = [&svc = s.resources, inst, rid, req](const net::ChunkWriter& write) {
                  try {
                    svc.repl(inst, rid, req,
                             [&](const model::Json& block) { write(block.dump() + "\n"); });
                  } catch (const std::exception& e) {
                    // Headers are gone already: the failure becomes the last block.
                    model::Json text = {{"type", "text"},
                                        {"text", std::string("Error: ") + e.what()},
                                        {"color", "#ff0000"}};
                    write(model::Json{{"type", "paragraph"}, {"children", {text}}}.dump() + "\n");
                  }
                };
                return r;
              }});

  routes.add(
      "GET", item + "/plans",
      {true, system_read(), false,
       [&s](Context& ctx) {
         auto metadata = service::PlanService::parse_metadata(ctx.req.query_param("metadata"));
         return net::Response::json(200, s.resources.plans(param(ctx, "installationId"),
                                                           param(ctx, "resourceId"), metadata));
       },
       /*quick=*/true});
}

}  // namespace wharf::api::partner
