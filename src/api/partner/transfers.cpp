// /v1/installations/{installationId}/resource-transfer-requests[/{claimId}[/verify|/accept]]
// (partner-api.md §5.16–5.18), current and legacy shapes. Verify and accept carry the
// *target* installation in the path; whose installation_id their token names is not
// documented (§10 q3), so those two are not bound to the path.
#include "api/partner/routes.h"
#include "api/respond.h"

namespace wharf::api::partner {
namespace {

std::string param(const Context& ctx, std::string_view name) {
  return std::string(ctx.param(name));
}

}  // namespace

void add_transfer_routes(RouteTable& routes, Services& s) {
  const std::string base = "/v1/installations/{installationId}/resource-transfer-requests";
  const auth::EndpointPolicy bound{false, true, false, true};
  const auth::EndpointPolicy target{false, true, false, false};

  routes.add("POST", base,
             {true, bound, true, [&s](Context& ctx) {
                return json_response(
                    200, s.transfers.create(param(ctx, "installationId"), ctx.json_body()));
              }});
  routes.add("PUT", base + "/{claimId}", {true, bound, true, [&s](Context& ctx) {
                                            s.transfers.create_legacy(param(ctx, "installationId"),
                                                                      param(ctx, "claimId"),
                                                                      ctx.json_body());
                                            return net::Response::empty(204);
                                          }});
  routes.add("GET", base + "/{claimId}/verify",
             {true, target, false, [&s](Context& ctx) {
                return json_response(
                    200, s.transfers.verify(param(ctx, "installationId"), param(ctx, "claimId")));
              }});
  routes.add("POST", base + "/{claimId}/verify",
             {true, target, true, [&s](Context& ctx) {
                return json_response(
                    200, s.transfers.verify(param(ctx, "installationId"), param(ctx, "claimId")));
              }});
  // The flows page shows an optional body ({targetInstallationId, targetTeamId}); it is
  // accepted and ignored — the path names the target.
  routes.add(
      "POST", base + "/{claimId}/accept",
      {true, target, true, [&s](Context& ctx) {
         bool legacy = s.transfers.accept(param(ctx, "installationId"), param(ctx, "claimId"));
         return legacy ? json_response(200, model::Json::object()) : net::Response::empty(204);
       }});
}

}  // namespace wharf::api::partner
