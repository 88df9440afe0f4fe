// POST <WHARF_WEBHOOK_PATH> (default /webhooks/vercel): Vercel's signed webhook deliveries.
// Not an OIDC route: the x-vercel-signature HMAC authenticates the body.
#pragma once
#include "api/route.h"
#include "service/webhooks.h"

namespace wharf::api::webhooks {

void add_routes(RouteTable& routes, const std::string& path, service::WebhookService& webhooks);

}  // namespace wharf::api::webhooks
