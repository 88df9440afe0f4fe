// The Vercel Marketplace REST API (spec/vercel-api.md §3 rows 1–34: the Marketplace
// endpoints, deployment actions, Checks v2 and legacy v1, the deployment and project lookups,
// the OAuth code exchange) as wharf-sandbox serves it to a partner — every route also under
// the /api prefix (the https://vercel.com/api base) — plus Vercel's identity documents
// (/.well-known/jwks, /.well-known/openid-configuration). Behaviour follows the spec
// strictly so that a partner that passes against the sandbox is close to passing against
// Vercel:
//   * every installation-scoped call needs `Authorization: Bearer <installation access
//     token>` (state installations[icfg].accessTokens): missing/unknown token → 401, a token
//     of another installation → 403, unknown installation → 404, finalized installation →
//     401 (its token stops working);
//   * every body is validated strictly (sandbox/vercel_schema.h); a bad one → 400
//     {"error":{"code":"bad_request","message":"<path>: <problem>; …"}};
//   * state is kept as Vercel keeps it (see the keys in sandbox/state.h), and every inbound
//     call is recorded in the ExchangeLog (direction "from-partner") with the problems found
//     as findings.
//
// Fields this module adds inside the state keys it shares:
//   installations[icfg].partnerStatus   the `status` sent with Update Installation (a display
//                                       ResourceStatus such as "suspended"; `status` itself
//                                       stays the lifecycle active|pending_deletion|finalized)
//   installations[icfg].externalId/billingPlan/notification, updatedAt
//   resources[icfg][rid].secretsVersion, secretsUpdatedAt, deletedAt
//   invoices[icfg][id]: the §7.3 invoice plus sandbox fields `installationId`, `teamId`,
//     `charged` (false: test invoice or total under $0.50), `final`, `refundRequestedAt`.
#pragma once
#include <string>

#include "sandbox/context.h"
#include "sandbox/driver.h"

namespace wharf::sandbox {

// Registers every endpoint on `routes`. `ctx` and `driver` must outlive `routes`: a small
// background worker owned by the registered handlers (stopped and joined when the last
// handler is destroyed) performs what Vercel does after a call — the Partner API refresh after
// Create Event, the invoice webhooks after Submit Invoice — so the call itself answers
// promptly and no State lock is held while the partner is called.
void add_vercel_api_routes(Routes& routes, Context& ctx, Driver& driver);

// The environment variables a project connected to `resource` (a state resources[icfg][rid]
// object) receives: {"development": {NAME: value}, "preview": {...}, "production": {...}},
// applying each secret's `prefix` (env_var_name) and `environmentOverrides`.
model::Json project_env(const model::Json& resource);
// The variable name Vercel builds for a secret (§2.3): PREFIX_NAME with hyphens/spaces of the
// prefix turned into '_', no second prefix if the name already carries it, and for
// NEXT_PUBLIC_* names the prefix placed after NEXT_PUBLIC_. An empty prefix keeps the name.
std::string env_var_name(const std::string& name, const std::string& prefix);

// Get Integration Resource(s) rendering (§5.1/§5.2) of a stored resource: `id` for the single
// resource, `partnerId` for a list item.
model::Json resource_view(const model::Json& resource, const std::string& partner_id,
                          bool list_item);
// Get Invoice rendering (§7.3) of a stored invoice (sandbox-only fields dropped).
model::Json invoice_view(const model::Json& invoice);

// Moves an invoice to `state` (an InvoiceState, §2.4) as Vercel's billing would — e.g. the
// control API marking a scheduled invoice paid/notpaid/overdue, or completing a requested
// refund with "refunded" — stamping paidAt/refundedAt/updated. Returns the stored invoice.
// Throws model::ApiError: 404 unknown installation/invoice, 400 unknown state.
model::Json set_invoice_state(Context& ctx, const std::string& icfg, const std::string& invoice_id,
                              const std::string& state);
// The payload of the marketplace.invoice.* webhooks (flows.md §3.2–3.3) for a stored invoice:
// installationId, configuration{id}, team{id}, invoiceId, externalInvoiceId (nullable),
// period{start,end}, invoiceDate, invoiceTotal, and for refunds amount and reason.
model::Json invoice_webhook_payload(const model::Json& invoice, const std::string& icfg);

}  // namespace wharf::sandbox
