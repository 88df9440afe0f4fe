// Backend → Wharf callbacks of the product protocol (spec/product-protocol.md §5), under
// /v1/backend/{productId}/: not OIDC routes, the Wharf-Signature HMAC with that product's
// secret authenticates the raw body, checked before anything is parsed.
//   POST resources/{resourceId}/status   W1  {status, secrets?, notification?}
//   POST usage                           W2  {events: [...]} (≤ 1,000)
//   POST resources/{resourceId}/secrets  W3  {secrets}
#pragma once
#include "api/route.h"
#include "service/resources.h"

namespace wharf::api::backend {

void add_routes(RouteTable& routes, service::ResourceService& resources);

}  // namespace wharf::api::backend
