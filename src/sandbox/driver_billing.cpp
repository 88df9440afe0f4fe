// The billing flows: purchase (a prepayment: a paid invoice, then Provision Purchase).
#include "sandbox/driver_internal.h"

namespace wharf::sandbox::detail::flows {

Json purchase(DriverImpl& d, const Json& params) {
  Params a(params, "purchase",
           {"installationId", "resourceId", "amount", "planId", "auth", "role", "userHex",
            "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", false);
  auto amount = a.str("amount", false);
  if (!a.has("amount"))
    a.add("amount", "is required");
  else if (amount && (!model::is_decimal_string(*amount) ||
                      amount->find_first_not_of("0.") == std::string::npos))
    a.add("amount", "must be a positive decimal USD amount such as \"25.00\"");
  auto plan_param = a.str("planId", false);
  if (!icfg || !amount) a.done();
  Json inst = d.require_installation(*icfg, true);
  Json res;
  if (rid) {
    res = d.resource(*icfg, *rid);
    if (!res.is_object() || res.value("deleted", false))
      a.add("resourceId", "is not a resource of the installation");
  }
  std::string plan = plan_param.value_or("");
  if (plan.empty() && res.is_object()) plan = str_member(res.value("billingPlan", Json()), "id");
  if (plan.empty()) plan = str_member(inst.value("billingPlan", Json()), "id");
  if (plan.empty()) a.add("planId", "is required (no plan is known for the purchase)");
  auto auth = d.auth_for(a, *icfg, inst, "user");
  const std::string& mode = auth.first;
  const std::string& token = auth.second;

  // Like Vercel: the purchase is invoiced and paid first; the partner then verifies the
  // invoice through Get Invoice before crediting it.
  std::string now = d.now_iso();
  std::string invoice_id = "mi_" + random_alnum(24);
  Json item = {{"billingPlanId", plan}, {"name", "Credits"}, {"price", *amount},
               {"quantity", 1},         {"units", "credit"}, {"total", *amount}};
  if (rid) item["resourceId"] = *rid;
  Json invoice = {{"invoiceId", invoice_id},
                  {"test", false},
                  {"state", "paid"},
                  {"invoiceDate", now},
                  {"period", {{"start", now}, {"end", now}}},
                  {"paidAt", now},
                  {"items", Json::array({item})},
                  {"total", *amount},
                  {"created", now},
                  {"updated", now}};
  d.ctx.state.mutate([&](Json& doc) {
    Json& mine = doc["invoices"][*icfg];
    invoice["invoiceNumber"] = "SBX-" + std::to_string(mine.is_object() ? mine.size() + 1 : 1);
    mine[invoice_id] = invoice;
  });

  std::string key = idempotency_key(params);
  CallResult r =
      d.call({"purchase", "provision-purchase", "POST",
              "/v1/installations/" + pct_encode(*icfg) + "/billing/provision", mode, token,
              Json{{"invoiceId", invoice_id}}, key, "application/json", conformance_for(inst)});
  // The answer carries the up-to-date balances; as with Submit Prepayment Balances the
  // newest timestamp wins.
  if (r.ok() && r.response.is_object() && member(r.response, "balances") &&
      r.response["balances"].is_array()) {
    int64_t ts = 0;
    if (util::parse_iso8601(str_member(r.response, "timestamp"), &ts)) {
      d.ctx.state.mutate([&](Json& doc) {
        Json& b = doc["balances"][*icfg];
        int64_t old_ts = 0;
        if (b.is_object() && util::parse_iso8601(str_member(b, "timestamp"), &old_ts) &&
            old_ts > ts)
          return;
        b = {{"timestamp", r.response["timestamp"]}, {"balances", r.response["balances"]}};
      });
    }
  }
  Outcome o;
  o.primary(r);
  o.out["auth"] = mode;
  o.out["idempotencyKey"] = key;
  o.out["invoiceId"] = invoice_id;
  o.out["invoice"] = invoice;
  return o.finish();
}

}  // namespace wharf::sandbox::detail::flows
