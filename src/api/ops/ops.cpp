#include "api/ops/ops.h"

#include "api/respond.h"

namespace wharf::api::ops {

void add_routes(RouteTable& routes, Metrics& metrics, Probes probes) {
  // Quick: answered on the I/O thread however busy the handler pool is.
  routes.add("GET", "/healthz",
             {false,
              {},
              false,
              [](Context&) {
                return json_response(200, model::Json{{"status", "ok"}});
              },
              /*quick=*/true});

  routes.add("GET", "/readyz", {false, {}, false, [probes](Context&) {
                                  bool store = probes.store_ready();
                                  bool jwks = probes.jwks_ready();
                                  if (!store || !jwks)
                                    return error_response(
                                        503, "not_ready",
                                        std::string("store ") + (store ? "ok" : "unreachable") +
                                            ", JWKS " + (jwks ? "loaded" : "not loaded"));
                                  model::Json out = {{"status", "ready"}};
                                  if (!probes.store.empty()) out["store"] = probes.store;
                                  if (probes.leader)
                                    out["role"] = probes.leader() ? "leader" : "replica";
                                  return json_response(200, out);
                                }});

  routes.add("GET", "/metrics", {false, {}, false, [&metrics](Context&) {
                                   net::Response r;
                                   r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                                   r.body = metrics.render();
                                   return r;
                                 }});
}

}  // namespace wharf::api::ops

namespace wharf::api::ops {

void add_test_clock_routes(RouteTable& routes, util::OffsetClock& clock,
                           std::function<model::Json(int64_t now_ms)> after_move) {
  routes.add(
      "POST", "/ops/clock",
      {false, {}, false, [&clock, after_move](Context& ctx) {
         model::Json body = ctx.json_body();
         model::Checker check;
         const model::Json* advance =
             check.get(body, "advanceMs", "", model::Kind::kInteger, false);
         const model::Json* set = check.get(body, "setMs", "", model::Kind::kInteger, false);
         if (!advance && !set) check.add("advanceMs", "advanceMs or setMs is required");
         check.throw_if_failed("clock");
         if (set && set->get<int64_t>() < clock.now_ms())
           throw model::ApiError::validation("setMs lies in the past: the clock only moves forward",
                                             {{"setMs", "must not be earlier than now"}});
         if (advance && advance->get<int64_t>() < 0)
           throw model::ApiError::validation("advanceMs must not be negative",
                                             {{"advanceMs", "must be >= 0"}});
         int64_t now =
             set ? clock.set_ms(set->get<int64_t>()) : clock.advance_ms(advance->get<int64_t>());
         model::Json out = after_move(now);
         out["nowMs"] = now;
         out["now"] = util::format_iso8601_ms(now);
         return json_response(200, out);
       }});
}

}  // namespace wharf::api::ops
