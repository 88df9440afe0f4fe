// Billing's reactions to the outside: outbox outcomes, invoice webhooks, credit purchases,
// refunds, and what an uninstall still owes.
#include <map>

#include "model/api_error.h"
#include "service/billing.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::ApiError;
using model::Json;
using util::Money;

namespace {

// What a Vercel user reads when a credit purchase is refused (Provision Purchase, 422).
constexpr const char* kPurchaseNotFoundUser =
    "This purchase could not be found, so no credits were added. Please contact the provider.";
constexpr const char* kPurchaseInvalidUser =
    "This purchase is not a credit purchase for this integration, so no credits were added. "
    "Please contact the provider.";

// The title of the notification an installation shows ("" for none).
std::string installation_notice(store::ReadTx& tx, const std::string& installation_id) {
  auto inst = tx.installation(installation_id);
  if (!inst || !inst->notification_json) return "";
  return Json::parse(*inst->notification_json, nullptr, false).value("title", "");
}

Json invoice_json(const store::InvoiceRow& inv) {
  Json j = {{"id", inv.id},
            {"resourceId", inv.resource_id.empty() ? Json(nullptr) : Json(inv.resource_id)},
            {"planId", inv.plan_id},
            {"period",
             {{"start", util::format_iso8601_ms(inv.period_start_ms)},
              {"end", util::format_iso8601_ms(inv.period_end_ms)}}},
            {"total", inv.total},
            {"state", inv.state},
            {"final", inv.final},
            {"test", inv.test},
            {"items", Json::parse(inv.items_json)}};
  if (inv.vercel_invoice_id) j["invoiceId"] = *inv.vercel_invoice_id;
  if (inv.carried_into) j["carriedInto"] = *inv.carried_into;
  if (inv.refund_total) j["refundTotal"] = *inv.refund_total;
  if (inv.refund_reason) j["refundReason"] = *inv.refund_reason;
  if (inv.paid_ms) j["paidAt"] = util::format_iso8601_ms(*inv.paid_ms);
  j["createdAt"] = util::format_iso8601_ms(inv.created_ms);
  if (inv.suspended) j["suspendedResources"] = true;
  return j;
}

}  // namespace

bool BillingService::owes(store::ReadTx& tx, const store::InstallationRow& inst,
                          int64_t now) const {
  Money carried;
  for (const auto& inv : tx.invoices_of(inst.id)) {
    if (invoice_open(inv.state)) return true;  // an invoice not settled yet
    if (inv.state == "carried" && !inv.carried_into) carried += *Money::parse(inv.total);
  }
  auto st = tx.billing_state(inst.id);
  int64_t from = st ? st->invoiced_through_ms : month_start_ms(inst.created_ms);
  Money due = carried;
  Ledger ledger;
  for (int64_t ps = from; ps < now; ps = next_month_start_ms(ps)) {
    Period p{ps, next_month_start_ms(ps)};
    Computed c = compute(tx, ledger, inst, p, std::min(now, p.end), p.start, Detail::kTotals);
    for (const auto& g : c.groups)
      if (g.plan && g.plan->type == "subscription") due += g.net();
  }
  return due >= Money::cents(50);
}

Json BillingService::statement(const std::string& installation_id, int64_t at) {
  Json out;
  store_.read([&](store::ReadTx& tx) {
    auto inst = tx.installation(installation_id);
    if (!inst) throw ApiError::not_found("installation " + installation_id + " not found");
    Period p{month_start_ms(at), next_month_start_ms(at)};
    int64_t cutoff = inst->status == "active" ? p.end : inst->deleted_ms.value_or(p.end);
    out = Json::parse(billing_data_body(compute(tx, *inst, p, cutoff, day_start_ms(at)), p, at,
                                        day_start_ms(at)));
  });
  return out;
}

Json BillingService::summary(const std::string& installation_id) {
  Json out;
  store_.read([&](store::ReadTx& tx) {
    auto inst = tx.installation(installation_id);
    if (!inst) throw ApiError::not_found("installation " + installation_id + " not found");
    Json invoices = Json::array();
    for (const auto& inv : tx.invoices_of(installation_id)) invoices.push_back(invoice_json(inv));
    Json state = Json::object();
    if (auto st = tx.billing_state(installation_id)) {
      state = {
          {"lastBillingDataAt",
           st->last_data_ms ? Json(util::format_iso8601_ms(st->last_data_ms)) : Json(nullptr)},
          {"invoicedThrough", util::format_iso8601_ms(st->invoiced_through_ms)},
          {"finalSubmitted", st->final_submitted},
          {"finalizeEnqueued", st->finalize_enqueued},
          {"gone", st->gone_ms.has_value()},
          {"leftoversSuspendedAt", st->leftovers_suspended_ms
                                       ? Json(util::format_iso8601_ms(*st->leftovers_suspended_ms))
                                       : Json(nullptr)},
          {"leftoversDeletedAt", st->leftovers_deleted_ms
                                     ? Json(util::format_iso8601_ms(*st->leftovers_deleted_ms))
                                     : Json(nullptr)}};
    }
    out = {{"installationId", installation_id},
           {"status", inst->status},
           {"finalized", inst->finalized},
           {"invoices", invoices},
           {"balances", balances_json(tx, installation_id)},
           {"billing", state}};
  });
  return out;
}

std::vector<store::InvoiceRow> BillingService::invoices(const std::string& installation_id) {
  std::vector<store::InvoiceRow> out;
  store_.read([&](store::ReadTx& tx) { out = tx.invoices_of(installation_id); });
  return out;
}

Json BillingService::balances(const std::string& installation_id) {
  Json out;
  store_.read([&](store::ReadTx& tx) { out = balances_json(tx, installation_id); });
  return out;
}

// ---------------------------------------------------------------------------------------
// Outbox outcomes.

void BillingService::delivered(store::WriteTx& tx, const store::OutboxRow& item,
                               const std::string& response) {
  int64_t now = clock_.now_ms();
  if (item.kind == "invoice") {
    Json body = Json::parse(item.body, nullptr, false);
    Json resp = Json::parse(response, nullptr, false);
    if (!body.is_object() || !body.contains("externalId")) return;
    auto inv = tx.invoice(item.installation_id, body["externalId"].get<std::string>());
    if (!inv) return;
    if (resp.is_object() && resp.value("invoiceId", Json()).is_string() && !inv->vercel_invoice_id)
      inv->vercel_invoice_id = resp["invoiceId"].get<std::string>();
    if (invoice_state_rank(inv->state) < invoice_state_rank("submitted")) inv->state = "submitted";
    inv->updated_ms = now;
    tx.put_invoice(*inv);
  } else if (item.kind == "finalize") {
    // Nothing more will be sent for this installation: its access token goes.
    auto inst = tx.installation(item.installation_id);
    if (!inst) return;
    inst->finalized = true;
    inst->access_token_sealed.reset();
    inst->updated_ms = now;
    tx.put_installation(*inst);
    util::log_info("installation finalized").str("installation", inst->id);
  }
}

void BillingService::gone(store::WriteTx& tx, const store::OutboxRow& item, int64_t now) {
  auto st = tx.billing_state(item.installation_id);
  store::BillingStateRow row;
  if (st) {
    row = *st;
  } else {
    auto inst = tx.installation(item.installation_id);
    if (!inst) return;
    row.installation_id = inst->id;
    row.final_through_ms = day_start_ms(inst->created_ms);
    row.invoiced_through_ms = month_start_ms(inst->created_ms);
  }
  if (row.gone_ms) return;
  row.gone_ms = now;
  util::log_warn("installation gone at Vercel: billing stops")
      .str("installation", item.installation_id)
      .num("status", item.last_status);
  // An uninstall that cannot be finalized any more: its leftover resources are suspended at
  // once, in this transaction (their deletion follows from the billing pass).
  if (auto inst = tx.installation(item.installation_id)) {
    int suspended = 0;
    bool due = false;
    cleanup_leftovers(tx, *inst, row, now, suspended, due);
  }
  tx.put_billing_state(row);
}

// ---------------------------------------------------------------------------------------
// marketplace.invoice.* webhooks.

bool BillingService::invoice_event(const std::string& type, const std::string& installation_id,
                                   const Json& payload) {
  std::string vercel_id =
      payload.value("invoiceId", Json()).is_string() ? payload["invoiceId"].get<std::string>() : "";
  std::string external = payload.value("externalInvoiceId", Json()).is_string()
                             ? payload["externalInvoiceId"].get<std::string>()
                             : "";
  std::string event = type.substr(type.rfind('.') + 1);
  bool ours = false;
  store_.write([&](store::WriteTx& tx) {
    int64_t now = clock_.now_ms();
    std::optional<store::InvoiceRow> inv;
    if (!vercel_id.empty()) inv = tx.invoice_by_vercel_id(installation_id, vercel_id);
    if (!inv && !external.empty()) inv = tx.invoice(installation_id, external);
    if (!inv) return;
    ours = true;
    if (!vercel_id.empty() && !inv->vercel_invoice_id) inv->vercel_invoice_id = vercel_id;
    std::string target = event == "created" ? "invoiced" : event;
    bool forward = invoice_state_rank(target) > invoice_state_rank(inv->state);
    if (event == "refunded") {
      if (payload.value("amount", Json()).is_string())
        inv->refund_total = payload["amount"].get<std::string>();
      if (payload.value("reason", Json()).is_string())
        inv->refund_reason = payload["reason"].get<std::string>();
    }
    if (forward) inv->state = target;
    if (event == "paid" && forward) inv->paid_ms = now;
    if (event == "overdue" && forward) inv->overdue_ms = now;
    inv->updated_ms = now;
    std::vector<std::string> targets;
    if (!inv->resource_id.empty())
      targets.push_back(inv->resource_id);
    else
      for (const auto& r : tx.live_resources_of(installation_id)) targets.push_back(r.id);
    if (event == "paid" && forward) {
      // Restore service suspended for this invoice and clear payment notifications.
      for (const auto& rid : targets) {
        release(tx, installation_id, rid, "overdue:" + inv->id, now);
        auto row = tx.resource(rid);
        if (row && !row->billing_hold && row->notification_json &&
            Json::parse(*row->notification_json).value("title", "") == "Payment failed") {
          row->notification_json.reset();
          row->updated_ms = now;
          tx.put_resource(*row);
          vercel::Outbox::enqueue_resource_updated(tx, *row, now);
        }
      }
      // An installation-level invoice: its payment notices on the installation end, and a
      // suspension shown for it is lifted.
      if (inv->resource_id.empty()) {
        std::string title = installation_notice(tx, installation_id);
        if (title == "Payment failed" || title == "Payment overdue")
          installation_state(tx, installation_id,
                             inv->suspended ? std::optional<std::string>("resumed") : std::nullopt,
                             nullptr, now);
      }
      inv->suspended = false;
    } else if (event == "notpaid" && forward) {
      const Json failed = notification(
          "warn", "Payment failed",
          "Payment of invoice " + inv->vercel_invoice_id.value_or(inv->id) + " (" + inv->total +
              " USD) failed; Vercel will retry. Please check the payment method "
              "of the team.",
          "/billing?invoice=" + inv->vercel_invoice_id.value_or(inv->id));
      // A failed attempt (Vercel retries): tell the customer, take nothing away.
      for (const auto& rid : targets) {
        auto row = tx.resource(rid);
        if (!row || row->deleted_ms || row->billing_hold) continue;
        row->notification_json = failed.dump();
        row->updated_ms = now;
        tx.put_resource(*row);
        vercel::Outbox::enqueue_resource_updated(tx, *row, now);
      }
      // An installation-level invoice: the notice is the installation's (unless it is
      // already suspended for one).
      bool overdue_shown = installation_notice(tx, installation_id) == "Payment overdue";
      if (inv->resource_id.empty() && !overdue_shown)
        installation_state(tx, installation_id, std::nullopt, failed, now);
    }
    tx.put_invoice(*inv);
    if (event == "overdue") suspend_overdue(tx, installation_id, now);
    util::log_info("invoice event")
        .str("installation", installation_id)
        .str("invoice", inv->id)
        .str("event", event)
        .str("state", inv->state);
  });
  if (ours) wake();
  return ours;
}

// ---------------------------------------------------------------------------------------
// Provision Purchase (§5.15).

Json BillingService::purchase(const std::string& installation_id, const std::string& invoice_id,
                              const FetchInvoice& fetch_invoice) {
  auto answer = [&](store::ReadTx& tx) {
    return Json{{"timestamp", util::format_iso8601_ms(clock_.now_ms())},
                {"balances", balances_json(tx, installation_id)}};
  };
  Json out;
  bool done = false;
  store_.read([&](store::ReadTx& tx) {
    auto inst = tx.installation(installation_id);
    if (!inst) throw ApiError::not_found("installation " + installation_id + " not found");
    if (inst->status != "active")
      throw ApiError::not_found("installation " + installation_id + " was uninstalled");
    if (tx.purchase(installation_id, invoice_id)) {
      out = answer(tx);  // already credited: the same answer, nothing credited again
      done = true;
    }
  });
  if (done) return out;

  net::HttpResult r = fetch_invoice(invoice_id);
  if (!r.error.empty() || r.status == 429 || r.status >= 500)
    throw ApiError(503, "vercel_unavailable",
                   "could not fetch invoice " + invoice_id + " from Vercel (" +
                       (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) +
                       "); retry later")
        .with_user(
            "This purchase could not be confirmed with Vercel just now, so no credits were "
            "added yet. They are added once it is confirmed; you are not charged twice.");
  if (r.status == 404)
    throw ApiError::unprocessable("invoice " + invoice_id +
                                  " does not exist in this installation at Vercel")
        .with_user(kPurchaseNotFoundUser);
  if (r.status < 200 || r.status >= 300)
    throw ApiError(502, "vercel_error",
                   "Vercel answered " + std::to_string(r.status) + " for invoice " + invoice_id)
        .with_user(
            "This purchase could not be confirmed with Vercel just now, so no credits were "
            "added yet. They are added once it is confirmed; you are not charged twice.");
  Json inv = Json::parse(r.body, nullptr, false);
  if (!inv.is_object() || !inv.contains("items") || !inv["items"].is_array())
    throw ApiError(502, "vercel_error", "Vercel's invoice " + invoice_id + " has no items");
  std::string state =
      inv.value("state", Json("")).is_string() ? inv["state"].get<std::string>() : "";
  if (state != "paid")
    throw ApiError::unprocessable("invoice " + invoice_id + " is " +
                                  (state.empty() ? std::string("without a state") : state) +
                                  ", not paid: nothing is credited")
        .with_user(
            "This purchase has not been paid yet, so no credits were added. Credits "
            "are added once the payment goes through.");

  struct Credit {
    std::string resource_id;
    Money amount;
  };
  std::vector<Credit> credits;
  Json credits_json = Json::array();
  for (size_t i = 0; i < inv["items"].size(); ++i) {
    const Json& item = inv["items"][i];
    std::string where = "invoice " + invoice_id + " items[" + std::to_string(i) + "]";
    std::string plan_id = item.value("billingPlanId", Json("")).is_string()
                              ? item["billingPlanId"].get<std::string>()
                              : "";
    const model::Plan* plan = catalog_->plan(plan_id);
    if (!plan || plan->type != "prepayment")
      throw ApiError::unprocessable(where + ": plan '" + plan_id +
                                    "' is not a prepayment plan; this is not a credit purchase")
          .with_user(kPurchaseInvalidUser);
    auto amount = item.value("total", Json()).is_string()
                      ? Money::parse(item["total"].get<std::string>())
                      : std::nullopt;
    if (!amount || *amount <= Money())
      throw ApiError::unprocessable(where + ": total must be a positive amount")
          .with_user(kPurchaseInvalidUser);
    std::string rid =
        item.value("resourceId", Json()).is_string() ? item["resourceId"].get<std::string>() : "";
    credits.push_back({rid, *amount});
    Json c = {{"micros", amount->micros()}};
    if (!rid.empty()) c["resourceId"] = rid;
    credits_json.push_back(c);
  }

  store_.write([&](store::WriteTx& tx) {
    int64_t now = clock_.now_ms();
    auto inst = tx.installation(installation_id);
    if (!inst || inst->status != "active")
      throw ApiError::not_found("installation " + installation_id + " was uninstalled");
    for (const auto& c : credits) {
      if (c.resource_id.empty()) continue;
      auto row = tx.resource(c.resource_id);
      if (!row || row->installation_id != installation_id || row->deleted_ms)
        throw ApiError::unprocessable("invoice " + invoice_id + " credits resource " +
                                      c.resource_id + ", which is not a resource of " +
                                      installation_id)
            .with_user(
                "This purchase is for a resource that no longer exists in this team, "
                "so no credits were added. Please contact the provider.");
    }
    // The purchase row is the once-only guard: a concurrent or repeated purchase of the same
    // invoice finds it and credits nothing.
    if (!tx.insert_purchase({installation_id, invoice_id, credits_json.dump(), now})) {
      out = answer(tx);
      return;
    }
    std::map<std::string, store::BalanceRow> balances;
    for (auto& b : tx.balances_of(installation_id)) balances[b.resource_id] = b;
    for (const auto& c : credits) {
      auto& b = balances[c.resource_id];
      b.installation_id = installation_id;
      b.resource_id = c.resource_id;
      b.credited_micros += c.amount.micros();
      b.updated_ms = now;
    }
    for (const auto& [rid, b] : balances) tx.put_balance(b);
    int64_t shared_left = balances.count("") ? balances[""].remaining() : 0;
    for (const auto& res : tx.resources_of(installation_id)) {
      int64_t left = balances.count(res.id) ? balances[res.id].remaining() : 0;
      if (left > 0 || shared_left > 0) release(tx, installation_id, res.id, "credits", now);
    }
    enqueue_balances(tx, installation_id, now);
    auto st = tx.billing_state(installation_id);
    if (st) {
      st->last_balance_ms = now;
      tx.put_billing_state(*st);
    }
    out = answer(tx);
    util::log_info("credits purchased")
        .str("installation", installation_id)
        .str("invoice", invoice_id)
        .num("items", static_cast<int64_t>(credits.size()));
  });
  if (enqueued_) enqueued_();
  return out;
}

// ---------------------------------------------------------------------------------------
// Refunds (§7.4), from `wharf refund`.

Json BillingService::request_refund(const std::string& installation_id, const std::string& invoice,
                                    const std::string& total, const std::string& reason) {
  auto amount = Money::parse(total);
  if (!amount || *amount <= Money())
    throw ApiError::validation("total must be a positive amount such as \"5.00\"",
                               {{"total", "must be a positive decimal amount"}});
  if (reason.empty())
    throw ApiError::validation("a refund needs a reason", {{"reason", "is required"}});
  Json out;
  store_.write([&](store::WriteTx& tx) {
    int64_t now = clock_.now_ms();
    auto inv = tx.invoice(installation_id, invoice);
    if (!inv) inv = tx.invoice_by_vercel_id(installation_id, invoice);
    if (!inv)
      throw ApiError::not_found("invoice " + invoice + " not found in installation " +
                                installation_id);
    if (!inv->vercel_invoice_id)
      throw ApiError::conflict("invoice " + inv->id + " has no Vercel invoice id yet (" +
                               inv->state + ")");
    if (inv->state != "paid" && inv->state != "notpaid" && inv->state != "overdue")
      throw ApiError::conflict("invoice " + inv->id + " is " + inv->state +
                               "; only paid, notpaid or overdue invoices can be refunded");
    if (*amount > *Money::parse(inv->total))
      throw ApiError::validation("total " + total + " exceeds the invoice total " + inv->total,
                                 {{"total", "must not exceed " + inv->total}});
    vercel::Outbox::enqueue(
        tx, installation_id,
        vercel::api::invoice_action(
            installation_id, *inv->vercel_invoice_id,
            {{"action", "refund"}, {"reason", reason}, {"total", amount->str_cents()}}),
        now);
    inv->state = "refund_requested";
    inv->refund_total = amount->str_cents();
    inv->refund_reason = reason;
    inv->updated_ms = now;
    tx.put_invoice(*inv);
    out = invoice_json(*inv);
  });
  return out;
}

}  // namespace wharf::service
