// Billing endpoints (vercel-api.md §7, §4.6): interim billing data, invoices and their state
// machine, refunds, prepayment balances and installation finalization.
//
// Invoice states in the sandbox (InvoiceState, §2.4), kept deterministic so tests can drive
// them:
//   * a test invoice (`test` present) takes its outcome at once: `test.result` (default
//     "paid"); it is never charged;
//   * a live invoice of $0.50 or more is created "scheduled"; the control API (or a test)
//     moves it on with set_invoice_state() — invoiced, paid, notpaid, overdue — and sends the
//     matching webhook, as Vercel's billing does when it collects;
//   * a live invoice under $0.50 is recorded but, like Vercel, never sent to the customer:
//     state "invoiced" with `charged: false`. Nothing is owed on it, so it does not block
//     finalization and cannot be refunded;
//   * a refund moves a paid/notpaid/overdue invoice to "refund_requested"; a test invoice's
//     refund completes at once ("refunded"), a live one when set_invoice_state(…,
//     "refunded") is called (the control API), which is when Vercel would send
//     marketplace.invoice.refunded.
#include <algorithm>

#include "sandbox/vercel_api.h"
#include "sandbox/vercel_api_internal.h"
#include "util/ids.h"
#include "util/log.h"

namespace wharf::sandbox {

using model::Json;

namespace {

bool is_refund_state(const std::string& s) {
  return s == "refund_requested" || s == "refunded";
}

}  // namespace

Json invoice_view(const Json& inv) {
  Json out = Json::object();
  for (const char* k :
       {"invoiceId", "externalId", "test", "state", "invoiceNumber", "invoiceDate", "period",
        "paidAt", "refundedAt", "memo", "items", "discounts", "total", "created", "updated"})
    if (inv.contains(k) && !inv[k].is_null()) out[k] = inv[k];
  if (is_refund_state(vercel_api::get_str(inv, "state"))) {
    for (const char* k : {"refundReason", "refundTotal"})
      if (inv.contains(k) && !inv[k].is_null()) out[k] = inv[k];
  }
  return out;
}

Json invoice_webhook_payload(const Json& invoice, const std::string& icfg) {
  using vercel_api::get_str;
  std::string team = get_str(invoice, "teamId");
  std::string external = get_str(invoice, "externalId");
  Json p = {{"installationId", icfg},
            {"configuration", {{"id", icfg}}},
            {"team", {{"id", team.empty() ? Json(nullptr) : Json(team)}}},
            {"invoiceId", get_str(invoice, "invoiceId")},
            {"externalInvoiceId", external.empty() ? Json(nullptr) : Json(external)},
            {"period", invoice.value("period", Json::object())},
            {"invoiceDate", get_str(invoice, "invoiceDate")},
            {"invoiceTotal", get_str(invoice, "total")}};
  if (is_refund_state(get_str(invoice, "state")) || invoice.contains("refundTotal")) {
    std::string amount = get_str(invoice, "refundTotal");
    p["amount"] = amount.empty() ? get_str(invoice, "total") : amount;
    p["reason"] = get_str(invoice, "refundReason");
  }
  return p;
}

Json set_invoice_state(Context& ctx, const std::string& icfg, const std::string& invoice_id,
                       const std::string& state) {
  static const char* const kStates[] = {"draft",   "pending", "scheduled", "invoiced",
                                        "paid",    "notpaid", "overdue",   "refund_requested",
                                        "refunded"};
  if (std::none_of(std::begin(kStates), std::end(kStates),
                   [&](const char* s) { return state == s; }))
    throw model::ApiError(400, "bad_request",
                          "state: must be an InvoiceState (draft, pending, scheduled, invoiced, "
                          "paid, notpaid, overdue, refund_requested, refunded), got \"" +
                              state + "\"",
                          {{"state", "must be an InvoiceState"}});
  std::string now = util::format_iso8601_ms(ctx.clock.now_ms());
  return ctx.state.mutate([&](Json& doc) {
    vercel_api::installation_of(doc, icfg);
    Json& mine = doc["invoices"][icfg];
    if (!mine.is_object() || !mine.contains(invoice_id))
      throw model::ApiError::not_found("invoice " + invoice_id + " not found in installation " +
                                       icfg);
    Json& inv = mine[invoice_id];
    std::string before = vercel_api::get_str(inv, "state");
    inv["state"] = state;
    inv["updated"] = now;
    if (state == "paid" && before != "paid") inv["paidAt"] = now;
    if (state == "refunded") {
      inv["refundedAt"] = now;
      // A refund completed without a request (control API shortcut) refunds everything.
      if (!inv.contains("refundTotal")) inv["refundTotal"] = inv.value("total", Json("0.00"));
      if (!inv.contains("refundReason")) inv["refundReason"] = "refunded through the sandbox";
    }
    return inv;
  });
}

namespace vercel_api {
namespace {

constexpr std::string_view kMinimumCharge = "0.50";

bool money_at_least(const std::string& amount, std::string_view minimum) {
  auto a = schema::Money::parse(amount);
  auto m = schema::Money::parse(minimum);
  return a && m && a->compare(*m) >= 0;
}

// Vercel would send the marketplace.invoice.* webhooks after these calls; queuing cannot
// undo the call that caused it, so a failure is only reported in the log.
void queue_webhook(Call& c, const std::string& type, const Json& invoice) {
  try {
    c.driver.send_webhook(type, invoice_webhook_payload(invoice, c.icfg));
  } catch (const std::exception& e) {
    util::Log(util::LogLevel::kWarn, "sandbox could not queue webhook")
        .str("type", type)
        .str("error", e.what());
  }
}

// Submit Billing Data (§7.1): kept per installation per usage day, latest `timestamp` wins.
net::Response submit_billing_data(Call& c) {
  Json body = c.body();
  require_valid(schema::billing_data(body, c.ctx.clock.now_ms()), "Submit Billing Data body");
  int64_t eod = 0, ts = 0;
  schema::parse_date_time(body["eod"].get<std::string>(), &eod);
  schema::parse_date_time(body["timestamp"].get<std::string>(), &ts);
  // `eod` is the end of the usage day: an instant at or just before the next day starts, so
  // the day is the UTC date of the last millisecond it covers.
  std::string day = util::format_iso8601_ms(eod - 1).substr(0, 10);
  c.ctx.state.mutate_in({"installations", "billing"}, [&](Json& doc) {
    installation_of(doc, c.icfg);
    Json& list = doc["billing"][c.icfg];
    if (!list.is_array()) list = Json::array();
    Json entry = {{"receivedAt", c.now_iso()}, {"day", day}, {"body", body}};
    for (auto& e : list) {
      if (get_str(e, "day") != day) continue;
      int64_t old_ts = 0;
      if (e.contains("body") && e["body"].is_object() &&
          schema::parse_date_time(get_str(e["body"], "timestamp"), &old_ts) && old_ts > ts)
        return;  // older data for a day Vercel already has newer data for: dropped
      e = entry;
      return;
    }
    list.push_back(entry);
    std::sort(list.begin(), list.end(),
              [](const Json& a, const Json& b) { return get_str(a, "day") < get_str(b, "day"); });
  });
  return net::Response::empty(201);
}

// Resource ids on invoice lines should name resources of the installation (deleted ones too:
// final invoices bill resources that are gone). The spec implies but does not state the rule,
// so the sandbox reports it as a warning finding instead of refusing the invoice.
void check_line_resources(const Json& doc, const std::string& icfg, const Json& body,
                          schema::Errors* errs) {
  const Json* mine = nullptr;
  if (auto rs = doc.find("resources"); rs != doc.end() && rs->is_object() && rs->contains(icfg))
    mine = &(*rs)[icfg];
  for (const char* list : {"items", "discounts"}) {
    if (!body.contains(list)) continue;
    for (size_t i = 0; i < body[list].size(); ++i) {
      std::string rid = get_str(body[list][i], "resourceId");
      if (rid.empty() || (mine && mine->is_object() && mine->contains(rid))) continue;
      errs->push_back({model::Checker::join(model::Checker::index(list, i), "resourceId"),
                       "\"" + rid + "\" is not a resource of installation " + icfg});
    }
  }
}

net::Response submit_invoice(Call& c) {
  Json body = c.body();
  require_valid(schema::invoice(body), "Submit Invoice body");
  bool test = body.contains("test");
  Json test_opts = test ? body["test"] : Json::object();
  // Outside test mode full validation always runs; in test mode `validate: false` skips its
  // enforcement. The problems it would have found are still answered as `validationErrors`
  // (and logged) so a rehearsal shows what a live submission would be refused for.
  bool validate = !test || test_opts.value("validate", true);
  schema::Errors rules = schema::invoice_rules(body);

  schema::Money sum;
  for (const auto& item : body["items"])
    sum = sum + *schema::Money::parse(item["total"].get<std::string>());
  if (body.contains("discounts"))
    for (const auto& d : body["discounts"])
      sum = sum - *schema::Money::parse(d["amount"].get<std::string>());
  if (sum.negative()) sum = schema::Money();  // only reachable with test.validate false
  std::string total = sum.round_cents().str();
  bool charged = !test && money_at_least(total, kMinimumCharge);
  std::string now = c.now_iso();
  std::string invoice_id = util::new_id("mi");

  Json response;
  Json created;
  c.ctx.state.mutate([&](Json& doc) {
    Json& inst = installation_of(doc, c.icfg);
    std::string status = get_str(inst, "status");
    if (body.value("final", false) && status != "pending_deletion")
      throw model::ApiError(
          400, "bad_request",
          "final: true is only accepted while the installation is pending deletion (it is " +
              (status.empty() ? std::string("active") : status) + ")",
          {{"final", "is only accepted while the installation is pending deletion"}});
    Json& mine = doc["invoices"][c.icfg];
    if (!mine.is_object()) mine = Json::object();
    schema::Errors errs = rules;
    schema::Errors unknown_resources;
    check_line_resources(doc, c.icfg, body, &unknown_resources);
    for (const auto& f : schema::findings(unknown_resources))
      c.findings.push_back("warning: " + f + " (Vercel may refuse to bill it)");
    std::string external = get_str(body, "externalId");
    std::string duplicate_of;
    // `externalId` is unique per installation; test and live invoices are kept apart (test
    // invoices appear nowhere in Vercel's dashboard), so a rehearsal does not block launch.
    if (!external.empty()) {
      for (auto it = mine.begin(); it != mine.end(); ++it)
        if (get_str(*it, "externalId") == external && it->value("test", false) == test)
          duplicate_of = it.key();
    }
    std::vector<std::string> skipped;
    if (validate) {
      require_valid(errs, "Submit Invoice body");
      if (!duplicate_of.empty())
        throw model::ApiError(409, "conflict",
                              "externalId: \"" + external + "\" is already used by invoice " +
                                  duplicate_of +
                                  " of this installation (externalId must be unique)",
                              {{"externalId", "is already used by invoice " + duplicate_of}});
    } else {
      skipped = schema::findings(errs);
      if (!duplicate_of.empty())
        skipped.push_back("externalId: \"" + external + "\" is already used by invoice " +
                          duplicate_of);
    }
    Json inv = {{"invoiceId", invoice_id},
                {"invoiceNumber", "SBX-" + std::to_string(mine.size() + 1)},
                {"invoiceDate", body["invoiceDate"]},
                {"period", body["period"]},
                {"items", body["items"]},
                {"total", total},
                {"created", now},
                {"updated", now},
                {"installationId", c.icfg},
                {"charged", charged},
                {"final", body.value("final", false)}};
    if (std::string team = get_str(inst, "accountId"); !team.empty()) inv["teamId"] = team;
    if (!external.empty()) inv["externalId"] = external;
    if (body.contains("memo")) inv["memo"] = body["memo"];
    if (body.contains("discounts")) inv["discounts"] = body["discounts"];
    if (test) {
      inv["test"] = true;
      inv["state"] = test_opts.value("result", std::string("paid"));
      if (inv["state"] == "paid") inv["paidAt"] = now;
    } else {
      inv["state"] = charged ? "scheduled" : "invoiced";
    }
    mine[invoice_id] = inv;
    created = inv;
    response = {{"invoiceId", invoice_id}};
    if (test) response["test"] = true;
    if (!skipped.empty()) {
      response["validationErrors"] = skipped;
      c.findings.insert(c.findings.end(), skipped.begin(), skipped.end());
    }
  });
  if (created.is_object() && (charged || test)) {
    queue_webhook(c, "marketplace.invoice.created", created);
    if (test) queue_webhook(c, "marketplace.invoice." + get_str(created, "state"), created);
  }
  return json_reply(200, response);
}

net::Response get_invoice(Call& c) {
  std::string id = c.param("invoiceId");
  Json view = c.ctx.state.read([&](const Json& doc) {
    installation_of(doc, c.icfg);
    auto all = doc.find("invoices");
    if (all == doc.end() || !all->contains(c.icfg) || !(*all)[c.icfg].contains(id))
      throw model::ApiError::not_found("invoice " + id + " not found in installation " + c.icfg);
    return invoice_view((*all)[c.icfg][id]);
  });
  return json_reply(200, view);
}

net::Response invoice_action(Call& c) {
  std::string id = c.param("invoiceId");
  Json body = c.body();
  require_valid(schema::invoice_action(body), "Invoice Actions body");
  std::string now = c.now_iso();
  Json completed;
  c.ctx.state.mutate([&](Json& doc) {
    installation_of(doc, c.icfg);
    Json& mine = doc["invoices"][c.icfg];
    if (!mine.is_object() || !mine.contains(id))
      throw model::ApiError::not_found("invoice " + id + " not found in installation " + c.icfg);
    Json& inv = mine[id];
    std::string state = get_str(inv, "state");
    if (state == "refund_requested")
      throw model::ApiError::conflict("invoice " + id +
                                      " already has a refund in progress (refund_requested)");
    if (state != "paid" && state != "notpaid" && state != "overdue")
      throw model::ApiError::conflict("invoice " + id + " is " + state +
                                      "; only paid, notpaid or overdue invoices can be refunded");
    auto refund = *schema::Money::parse(body["total"].get<std::string>());
    auto invoice_total = schema::Money::parse(get_str(inv, "total")).value_or(schema::Money());
    if (refund.compare(schema::Money()) == 0)
      throw model::ApiError(400, "bad_request", "total: must be greater than 0",
                            {{"total", "must be greater than 0"}});
    if (refund.compare(invoice_total) > 0)
      throw model::ApiError(
          400, "bad_request",
          "total: must not exceed the invoice total " + invoice_total.str() + " (got " +
              body["total"].get<std::string>() + ")",
          {{"total", "must not exceed the invoice total " + invoice_total.str()}});
    inv["state"] = "refund_requested";
    inv["refundReason"] = body["reason"];
    inv["refundTotal"] = body["total"];
    inv["refundRequestedAt"] = now;
    inv["updated"] = now;
    // No money moved for a test invoice: its refund completes at once.
    if (inv.value("test", false)) {
      inv["state"] = "refunded";
      inv["refundedAt"] = now;
      completed = inv;
    }
  });
  if (completed.is_object()) queue_webhook(c, "marketplace.invoice.refunded", completed);
  return net::Response::empty(204);
}

// Submit Prepayment Balances (§7.5): balances are kept per resource (an entry without
// `resourceId` is the installation's), so a submission naming some resources leaves the
// others' as they were; for one resource the newest `timestamp` wins.
net::Response submit_balances(Call& c) {
  Json body = c.body();
  require_valid(schema::balances(body), "Submit Prepayment Balances body");
  int64_t ts = 0;
  schema::parse_date_time(body["timestamp"].get<std::string>(), &ts);
  c.ctx.state.mutate_in({"installations", "balances"}, [&](Json& doc) {
    installation_of(doc, c.icfg);
    Json& b = doc["balances"][c.icfg];
    int64_t old_ts = 0;
    bool had = b.is_object() && schema::parse_date_time(get_str(b, "timestamp"), &old_ts);
    Json merged = b.is_object() && b.contains("balances") && b["balances"].is_array()
                      ? b["balances"]
                      : Json::array();
    Json stamps = b.is_object() && b.contains("timestamps") && b["timestamps"].is_object()
                      ? b["timestamps"]
                      : Json::object();
    for (const auto& entry : body["balances"]) {
      std::string key = get_str(entry, "resourceId");
      int64_t seen = 0;
      if (stamps.contains(key) && stamps[key].is_number_integer())
        seen = stamps[key].get<int64_t>();
      else if (had)
        seen = old_ts;
      bool found = false;
      for (auto& existing : merged) {
        if (get_str(existing, "resourceId") != key) continue;
        found = true;
        if (ts >= seen) existing = entry;
      }
      if (!found) merged.push_back(entry);
      if (!found || ts >= seen) stamps[key] = ts;
    }
    b = {{"timestamp", had && old_ts > ts ? b["timestamp"] : body["timestamp"]},
         {"balances", merged},
         {"timestamps", stamps},
         {"receivedAt", c.now_iso()}};
  });
  return net::Response::empty(201);
}

// Finalize Installation (§4.6, F11): only after uninstall, and only once every invoice that
// was charged is settled.
net::Response finalize(Call& c) {
  c.ctx.state.mutate([&](Json& doc) {
    Json& inst = installation_of(doc, c.icfg);
    std::string status = get_str(inst, "status");
    if (status != "pending_deletion")
      throw model::ApiError(400, "bad_request",
                            "installation " + c.icfg + " is " +
                                (status.empty() ? std::string("active") : status) +
                                "; Finalize Installation is only accepted after the user "
                                "uninstalled it (pending deletion)");
    std::vector<std::string> open;
    if (auto all = doc.find("invoices"); all != doc.end() && all->contains(c.icfg)) {
      for (auto it = (*all)[c.icfg].begin(); it != (*all)[c.icfg].end(); ++it) {
        const Json& inv = *it;
        if (inv.value("test", false) || inv.value("charged", true) == false) continue;
        std::string s = get_str(inv, "state");
        if (s == "paid" || s == "refunded") continue;
        std::string ext = get_str(inv, "externalId");
        open.push_back(it.key() + (ext.empty() ? "" : " (" + ext + ")") + " is " + s);
      }
    }
    if (!open.empty()) {
      std::string list;
      for (const auto& o : open) list += (list.empty() ? "" : ", ") + o;
      throw model::ApiError::conflict("cannot finalize while invoices are open: " + list);
    }
    inst["status"] = "finalized";
    inst["finalizedAt"] = c.now_iso();
  });
  return net::Response::empty(204);
}

}  // namespace

void add_billing_routes(Registrar& r) {
  r.installation("POST", "/billing", submit_billing_data);
  r.installation("POST", "/billing/invoices", submit_invoice);
  r.installation("GET", "/billing/invoices/{invoiceId}", get_invoice);
  r.installation("POST", "/billing/invoices/{invoiceId}/actions", invoice_action);
  r.installation("POST", "/billing/balance", submit_balances);
  r.installation("POST", "/billing/finalize", finalize);
}

}  // namespace vercel_api
}  // namespace wharf::sandbox
