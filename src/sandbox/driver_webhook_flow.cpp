// The webhook flow: one signed delivery of any event type, its payload built from the
// sandbox's state (invoice events, integration-configuration.removed) or given.
#include "sandbox/driver_internal.h"

namespace wharf::sandbox::detail::flows {

namespace {

Json invoice_payload(const std::string& type, const std::string& icfg, const Json& inst,
                     const Json& invoice, const std::optional<std::string>& amount,
                     const std::optional<std::string>& reason) {
  Json p = {{"installationId", icfg},
            {"configuration", {{"id", icfg}}},
            {"team", {{"id", inst.value("accountId", Json())}}},
            {"invoiceId", invoice.value("invoiceId", Json())},
            {"externalInvoiceId", invoice.value("externalId", Json())},
            {"period", invoice.value("period", Json())},
            {"invoiceDate", invoice.value("invoiceDate", Json())},
            {"invoiceTotal", invoice.value("total", Json())}};
  if (type == "marketplace.invoice.refunded") {
    p["amount"] =
        amount ? Json(*amount) : invoice.value("refundTotal", invoice.value("total", Json()));
    p["reason"] = reason ? Json(*reason) : invoice.value("refundReason", Json("refund"));
  }
  return p;
}

}  // namespace

Json webhook(DriverImpl& d, const Json& params) {
  Params a(params, "webhook",
           {"type", "payload", "installationId", "invoiceId", "amount", "reason", "signature"});
  auto type = a.str("type", true);
  const Json* payload = a.object("payload", false);
  auto icfg = a.str("installationId", false);
  auto invoice_id = a.str("invoiceId", false);
  auto amount = a.str("amount", false);
  auto reason = a.str("reason", false);
  auto signature = a.one_of("signature", false, {"good", "bad"});
  bool is_invoice = type && type->rfind("marketplace.invoice.", 0) == 0;
  bool is_removed = type && *type == "integration-configuration.removed";
  if (!payload && (is_invoice || is_removed) && !icfg)
    a.add("installationId", "is required to build a " + *type + " payload");
  if (!payload && is_invoice && !invoice_id)
    a.add("invoiceId", "is required to build a " + *type + " payload");
  a.done();

  Json body = Json::object();
  Json inst;
  if (icfg) {
    inst = d.installation(*icfg);
    if (!inst.is_object()) throw no_installation(*icfg);
  }
  if (is_invoice && icfg && invoice_id) {
    Json invoice = d.ctx.state.read([&](const Json& doc) -> Json {
      const Json* all = member(doc, "invoices");
      const Json* in = all ? member(*all, *icfg) : nullptr;
      const Json* inv = in ? member(*in, *invoice_id) : nullptr;
      return inv ? *inv : Json();
    });
    if (!invoice.is_object())
      throw ApiError(404, "not_found", "no invoice " + *invoice_id + " in " + *icfg,
                     {{"invoiceId", "is not an invoice of the installation"}});
    body = invoice_payload(*type, *icfg, inst, invoice, amount, reason);
  } else if (is_removed && icfg) {
    body = d.removed_payload(*icfg, inst);
  } else if (icfg) {
    body = {{"installationId", *icfg}, {"configuration", {{"id", *icfg}}}};
  }
  // An explicit payload overrides (key by key) what the sandbox would send.
  if (payload) body.update(*payload);
  Json delivery =
      d.webhooks.deliver_now("webhook", *type, body, signature.value_or("good") == "bad");
  Outcome o;
  o.out["ok"] = delivery["ok"];
  o.out["status"] = delivery["status"];
  o.out["response"] = delivery["response"];
  o.exchanges.push_back(delivery["exchange"].get<int64_t>());
  for (const auto& f : delivery["findings"]) o.findings.push_back(f.get<std::string>());
  o.out["webhookId"] = delivery["id"];
  o.out["delivery"] = delivery;
  return o.finish();
}

}  // namespace wharf::sandbox::detail::flows
