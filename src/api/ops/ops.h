// Operational endpoints: GET /healthz (process alive), GET /readyz (store reachable and
// JWKS loaded), GET /metrics (Prometheus text). Unauthenticated by design: expose them only
// on a network you trust, or put them behind the load balancer's own auth.
#pragma once
#include <functional>
#include <string>

#include "api/metrics.h"
#include "api/route.h"
#include "util/clock.h"

namespace wharf::api::ops {

struct Probes {
  std::function<bool()> store_ready;
  std::function<bool()> jwks_ready;
  // For load balancers and operators: which store, and whether this replica leads the
  // periodic passes (billing, reconcile, rotation, retention). Unset: not reported.
  std::function<bool()> leader;
  std::string store;  // Store::describe() (no secrets)
};

void add_routes(RouteTable& routes, Metrics& metrics, Probes probes);

}  // namespace wharf::api::ops

namespace wharf::api::ops {

// Test deployments only (WHARF_TEST_CLOCK=1): POST /ops/clock {"advanceMs": n} or
// {"setMs": n} moves the server's clock forward, then runs `after_move(now)` (a billing
// pass and an outbox drain) and answers {"nowMs", "now", …what after_move returned}.
void add_test_clock_routes(RouteTable& routes, util::OffsetClock& clock,
                           std::function<model::Json(int64_t now_ms)> after_move);

}  // namespace wharf::api::ops
