// Provision Purchase (partner-api.md §5.15): Vercel says credits were bought; we check the
// invoice with Vercel and credit it once. User auth for purchases, System for auto top-ups.
#include "api/partner/routes.h"
#include "api/respond.h"

namespace wharf::api::partner {

void add_billing_routes(RouteTable& routes, Services& s) {
  routes.add("POST", "/v1/installations/{installationId}/billing/provision",
             {true, user_or_system_write(), true, [&s](Context& ctx) {
                model::Json body = ctx.json_body();
                model::Checker check;
                auto invoice_id = check.string(body, "invoiceId", "", true, true);
                // It goes into a Vercel URL path: Vercel's ids are [A-Za-z0-9_-].
                if (invoice_id && invoice_id->find_first_not_of(
                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789_-") != std::string::npos)
                  check.add("invoiceId", "must consist of letters, digits, _ and -");
                check.throw_if_failed("Provision Purchase body");
                std::string installation(ctx.param("installationId"));
                return json_response(
                    200, s.billing.purchase(installation, *invoice_id, [&](const std::string& id) {
                      return s.get_invoice(installation, id);
                    }));
              }});
}

}  // namespace wharf::api::partner
