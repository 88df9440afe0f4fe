// Operational endpoints: GET /healthz (process alive), GET /readyz (store reachable and
// JWKS loaded), GET /metrics (Prometheus text). Unauthenticated by design: expose them only
// on a network you trust, or put them behind the load balancer's own auth.
#pragma once
#include <functional>

#include "api/metrics.h"
#include "api/route.h"

namespace wharf::api::ops {

struct Probes {
  std::function<bool()> store_ready;
  std::function<bool()> jwks_ready;
};

void add_routes(RouteTable& routes, Metrics& metrics, Probes probes);

}  // namespace wharf::api::ops
