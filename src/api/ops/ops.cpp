#include "api/ops/ops.h"

#include "api/respond.h"

namespace wharf::api::ops {

void add_routes(RouteTable& routes, Metrics& metrics, Probes probes) {
  routes.add("GET", "/healthz", {false, {}, false, [](Context&) {
                                   return json_response(200, model::Json{{"status", "ok"}});
                                 }});

  routes.add("GET", "/readyz", {false, {}, false, [probes](Context&) {
                                  bool store = probes.store_ready();
                                  bool jwks = probes.jwks_ready();
                                  if (!store || !jwks)
                                    return error_response(
                                        503, "not_ready",
                                        std::string("store ") + (store ? "ok" : "unreachable") +
                                            ", JWKS " + (jwks ? "loaded" : "not loaded"));
                                  return json_response(200, model::Json{{"status", "ready"}});
                                }});

  routes.add("GET", "/metrics", {false, {}, false, [&metrics](Context&) {
                                   net::Response r;
                                   r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                                   r.body = metrics.render();
                                   return r;
                                 }});
}

}  // namespace wharf::api::ops
