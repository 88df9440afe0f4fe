// Plan changes scheduled for the new plan's `effectiveDate` (flows.md F13 step 5;
// docs/decisions.md "A plan's effectiveDate schedules the change"): recorded by the plan
// change request, made by the billing pass at that date.
#include "model/api_error.h"
#include "service/billing.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::Json;

namespace {

const char* kScheduledTitle = "Plan change scheduled";

// Whether a stored notification is the notice of a scheduled change (another notice, such
// as a billing hold's, is never replaced by it nor cleared with it).
bool scheduled_notice(const std::optional<std::string>& notification_json) {
  if (!notification_json) return false;
  Json n = Json::parse(*notification_json, nullptr, false);
  return n.is_object() && n.value("title", "") == kScheduledTitle;
}

}  // namespace

std::optional<int64_t> scheduled_start(const model::Plan& plan, int64_t now_ms) {
  if (plan.effective_ms && *plan.effective_ms > now_ms) return plan.effective_ms;
  return std::nullopt;
}

Json scheduled_change_notice(const model::Plan& plan, int64_t effective_ms) {
  return Json{{"level", "info"},
              {"title", kScheduledTitle},
              {"message", "Switches to the " + plan.name + " plan on " +
                              util::format_iso8601_ms(effective_ms) +
                              ". The current plan stays active, and is billed, until then."}};
}

void schedule_plan_change(store::WriteTx& tx, const std::string& installation_id,
                          const std::string& resource_id, const model::Plan& plan,
                          int64_t effective_ms, std::optional<std::string>& notification_json,
                          int64_t now_ms) {
  tx.put_plan_schedule({installation_id, resource_id, plan.id, effective_ms, now_ms});
  if (!notification_json || scheduled_notice(notification_json))
    notification_json = scheduled_change_notice(plan, effective_ms).dump();
  util::log_info("plan change scheduled")
      .str("installation", installation_id)
      .str("resource", resource_id)
      .str("plan", plan.id)
      .str("effective", util::format_iso8601_ms(effective_ms));
}

bool cancel_plan_change(store::WriteTx& tx, const std::string& installation_id,
                        const std::string& resource_id,
                        std::optional<std::string>& notification_json) {
  if (!tx.delete_plan_schedule(installation_id, resource_id)) return false;
  if (scheduled_notice(notification_json)) notification_json.reset();
  return true;
}

int BillingService::apply_scheduled_plans(store::WriteTx& tx, const std::string& installation_id,
                                          int64_t now) {
  int applied = 0;
  for (const auto& s : tx.plan_schedules_of(installation_id)) {
    if (s.effective_ms > now) break;  // ordered by effective time
    tx.delete_plan_schedule(s.installation_id, s.resource_id);
    const model::Plan* plan = catalog_->plan(s.plan_id);
    if (!plan) continue;  // gone from the catalog since: nothing to switch to
    auto inst = tx.installation(installation_id);
    if (!inst || inst->status != "active") continue;
    // The installation takes the plan: an installation-scope plan scheduled for it, or for
    // one of its resources (which bills through the installation's span).
    auto take_installation_plan = [&](store::InstallationRow row) {
      bool cleared = scheduled_notice(row.notification_json);
      if (cleared) row.notification_json.reset();
      if (row.billing_plan_id == plan->id && !cleared) return;
      const bool changed = row.billing_plan_id != plan->id;
      row.billing_plan_id = plan->id;
      // The store splits the plan spans at updated_ms: the new plan bills from its date.
      row.updated_ms = changed ? s.effective_ms : now;
      tx.put_installation(row);
      if (!changed) return;
      plan_taken(tx, installation_id, "", plan->id, s.effective_ms);
      Json event = {{"type", "installation.updated"}, {"billingPlanId", plan->id}};
      vercel::Outbox::enqueue_event(tx, installation_id, event, now);
      if (cleared)
        vercel::Outbox::enqueue(
            tx, installation_id,
            vercel::api::update_installation(installation_id, Json{{"notification", nullptr}}),
            now);
    };
    if (s.resource_id.empty()) {
      take_installation_plan(*inst);
    } else {
      auto row = tx.resource(s.resource_id);
      if (!row || row->deleted_ms || row->installation_id != installation_id) continue;
      if (scheduled_notice(row->notification_json)) row->notification_json.reset();
      const bool changed = row->billing_plan_id != plan->id;
      row->billing_plan_id = plan->id;
      row->updated_ms = changed ? s.effective_ms : now;
      tx.put_resource(*row);
      if (changed) plan_taken(tx, installation_id, row->id, plan->id, s.effective_ms);
      if (plan->scope == "installation") take_installation_plan(*inst);
      // Vercel re-reads the resource (its new plan); a remote product learns the plan, as
      // from Update Resource (a local product's limits follow the row's plan).
      vercel::Outbox::enqueue_resource_updated(tx, *row, now);
      const product::Descriptor* kind = descriptor_of(row->product_id);
      if (changed && kind && kind->capabilities.async_provisioning)
        vercel::Outbox::enqueue_product_call(tx, installation_id, row->id, "change",
                                             Json{{"plan", true}}, now);
    }
    ++applied;
    util::log_info("scheduled plan change made")
        .str("installation", installation_id)
        .str("resource", s.resource_id)
        .str("plan", plan->id)
        .str("effective", util::format_iso8601_ms(s.effective_ms));
  }
  return applied;
}

}  // namespace wharf::service
