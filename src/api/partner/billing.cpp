// Provision Purchase (partner-api.md §5.15): Vercel says credits were bought; we check the
// invoice with Vercel and credit it once. User auth for purchases, System for auto top-ups.
#include "api/partner/routes.h"
#include "api/respond.h"
#include "model/purchase.h"

namespace wharf::api::partner {

void add_billing_routes(RouteTable& routes, Services& s) {
  routes.add("POST", "/v1/installations/{installationId}/billing/provision",
             {true, user_or_system_write(), true, [&s](Context& ctx) {
                auto req = model::ProvisionPurchaseRequest::parse(ctx.json_body());
                std::string installation(ctx.param("installationId"));
                return json_response(
                    200,
                    s.billing.purchase(installation, req.invoice_id, [&](const std::string& id) {
                      return s.get_invoice(installation, id);
                    }));
              }});
}

}  // namespace wharf::api::partner
