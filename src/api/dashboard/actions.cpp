// Dashboard POSTs. Each needs a session and its CSRF token; the ones that change something
// need the ADMIN role and go through the same service calls as the Partner API.
#include "api/dashboard/html.h"
#include "api/dashboard/pages.h"
#include "api/respond.h"

namespace wharf::api::dashboard {

void add_action_routes(RouteTable& routes, Deps& d) {
  const std::string item = "/dashboard/resources/{resourceId}";
  auto add = [&routes, &d](const std::string& path, PageFn fn) {
    routes.add("POST", path, {false, {}, false, form_route(d, std::move(fn))});
  };

  add(item + "/secrets", [&d](Context& ctx, const service::Session& s) {
    require_admin(s, "Showing secrets");
    std::string rid(ctx.param("resourceId"));
    return resource_page(d, ctx, s, rid,
                         {d.resources.secrets(s.user.installation_id, rid), std::string()});
  });

  add(item + "/rotate", [&d](Context& ctx, const service::Session& s) {
    require_admin(s, "Rotating secrets");
    std::string rid(ctx.param("resourceId"));
    model::RotateSecretsRequest req;
    req.reason = "rotated from the dashboard by " + s.user.user_id;
    auto out = d.resources.rotate(s.user.installation_id, rid, req, /*ours=*/true);
    if (out.status == 200)
      return resource_page(
          d, ctx, s, rid,
          {out.body["secrets"], "Secrets rotated. Redeploy your projects to use the new values."});
    return resource_page(
        d, ctx, s, rid,
        {std::nullopt, "Rotation started: the new secrets are being sent to Vercel."});
  });

  for (const char* action : {"suspend", "resume"}) {
    add(item + "/" + action, [&d, action](Context& ctx, const service::Session& s) {
      require_admin(s, std::string(action) == "suspend" ? "Suspending" : "Resuming");
      std::string rid(ctx.param("resourceId"));
      model::UpdateResourceRequest req;
      req.status = std::string(action) == "suspend" ? "suspended" : "resumed";
      d.resources.update(s.user.installation_id, rid, req, /*ours=*/true);
      return see_other("/dashboard/resources/" + net::percent_encode(rid));
    });
  }

  // The SQL console: JSON in ({input}), REPL blocks out; errors in the JSON envelope. USER
  // sessions always run read-only, as USER tokens do on the Partner API.
  routes.add("POST", item + "/console",
             {false, {}, false, [&d](Context& ctx) {
                auto s = require_session(ctx, d);
                check_csrf(ctx.req, s);
                auto req = model::ReplRequest::parse(ctx.json_body());
                if (!s.admin()) req.read_only = true;
                d.resources.admit_repl(s.user.installation_id, "user:" + s.user.user_id);
                return json_response(
                    200, d.resources.repl(s.user.installation_id,
                                          std::string(ctx.param("resourceId")), req, {}));
              }});
}

}  // namespace wharf::api::dashboard
