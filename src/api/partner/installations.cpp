// /v1/installations/{installationId} — Upsert, Get, Update, Delete (partner-api.md §5.1–5.4).
#include "api/partner/routes.h"
#include "api/respond.h"

namespace wharf::api::partner {
namespace {

service::Actor actor_of(const Context& ctx) {
  service::Actor a;
  a.account_id = ctx.claims->account_id.value_or("");
  a.user_id = ctx.claims->user_id;
  return a;
}

}  // namespace

void add_installation_routes(RouteTable& routes, Services& s) {
  const std::string path = "/v1/installations/{installationId}";

  routes.add("PUT", path, {true, user_write(), true, [&s](Context& ctx) {
                             auto req = model::UpsertInstallationRequest::parse(ctx.json_body());
                             auto state = s.installations.upsert(
                                 std::string(ctx.param("installationId")), actor_of(ctx), req);
                             return json_response(200, state.to_json());
                           }});

  routes.add("GET", path,
             {true, system_read(), false,
              [&s](Context& ctx) {
                auto state = s.installations.get(std::string(ctx.param("installationId")));
                return json_response(200, state.to_json());
              },
              /*quick=*/true});

  routes.add("PATCH", path, {true, user_write(), true, [&s](Context& ctx) {
                               auto req = model::UpdateInstallationRequest::parse(ctx.json_body());
                               auto state = s.installations.update(
                                   std::string(ctx.param("installationId")), req);
                               return json_response(200, state.to_json());
                             }});

  routes.add("DELETE", path, {true, user_or_system_write(), true, [&s](Context& ctx) {
                                auto req = model::DeleteInstallationRequest::parse(
                                    ctx.req.header("content-type").value_or(""), ctx.req.body);
                                std::string id(ctx.param("installationId"));
                                // Resources first: deleting them needs the installation active.
                                if (req.cascade_resource_deletion) s.resources.remove_all(id);
                                bool finalized = s.installations.remove(id, req);
                                // Nothing to bill: resources left without cascade go at once.
                                if (finalized) s.resources.remove_leftovers(id);
                                return json_response(200, model::Json{{"finalized", finalized}});
                              }});
}

}  // namespace wharf::api::partner
