#include "service/installations.h"

#include "model/api_error.h"
#include "service/billing.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

InstallationService::InstallationService(store::Store& store,
                                         std::shared_ptr<const model::Catalog> catalog,
                                         const util::SecretBox& box, const util::Clock& clock)
    : store_(store), catalog_(std::move(catalog)), box_(box), clock_(clock) {}

model::InstallationState InstallationService::upsert(const std::string& id, const Actor& actor,
                                                     const model::UpsertInstallationRequest& req) {
  model::InstallationState state;
  store_.write([&](store::WriteTx& tx) {
    int64_t now = clock_.now_ms();
    auto existing = tx.installation(id);
    store::InstallationRow row;
    if (existing) {
      if (existing->status != "active")
        throw ApiError::conflict("installation " + id +
                                 " was uninstalled; a reinstall uses a new installation id")
            .with_user("This installation was removed. Install the integration again to continue.");
      if (!actor.account_id.empty() && existing->account_id != actor.account_id)
        throw ApiError::conflict("installation " + id + " belongs to another account")
            .with_user("This installation belongs to another Vercel team.");
      row = *existing;
    } else {
      row.id = id;
      row.account_id = actor.account_id;
      row.installer_user_id = actor.user_id;
      row.created_ms = now;
      if (const model::Plan* def = catalog_->default_installation_plan())
        row.billing_plan_id = def->id;
    }
    row.scopes_json = Json(req.scopes).dump();
    row.accepted_policies_json = req.accepted_policies.dump();
    if (req.account) row.account_json = req.account->dump();
    row.token_type = req.token_type;
    row.access_token_sealed = box_.seal(req.access_token, token_aad(id));
    row.token_issued_ms = now;
    row.token_expires_ms.reset();
    if (!row.billing_plan_id && catalog_->default_installation_plan())
      row.billing_plan_id = catalog_->default_installation_plan()->id;
    row.updated_ms = now;
    tx.put_installation(row);
    // A new installation's account as Vercel has it now (the Upsert's copy may be older).
    if (!existing) vercel::Outbox::enqueue(tx, id, vercel::api::get_account(id), now);
    state = state_of(row);
    util::log_info(existing ? "installation updated" : "installation created")
        .str("installation", id)
        .str("account", row.account_id);
  });
  return state;
}

model::InstallationState InstallationService::get(const std::string& id) {
  model::InstallationState state;
  store_.read([&](store::ReadTx& tx) { state = state_of(require_active(tx, id)); });
  return state;
}

model::InstallationState InstallationService::update(const std::string& id,
                                                     const model::UpdateInstallationRequest& req) {
  model::InstallationState state;
  store_.write([&](store::WriteTx& tx) {
    auto row = require_active(tx, id);
    const int64_t now = clock_.now_ms();
    if (req.billing_plan_id && row.billing_plan_id != req.billing_plan_id) {
      const model::Plan& plan = require_installation_plan(*req.billing_plan_id);
      if (plan.max_resources) {
        // The installation's resources are billed under its plan: all must fit the new cap.
        int64_t held = 0;
        for (const auto& r : tx.live_resources_of(id)) {
          const model::Plan* rp = catalog_->plan(r.billing_plan_id);
          if (!rp || rp->scope == "installation") ++held;
        }
        if (held > *plan.max_resources) {
          const std::string cap = std::to_string(*plan.max_resources);
          throw ApiError(409, "max_resources",
                         "installation " + id + " has " + std::to_string(held) +
                             " resources, plan '" + plan.id + "' allows " + cap)
              .with_user("The " + plan.name + " plan allows " + cap + " resource" +
                         (*plan.max_resources == 1 ? "" : "s") + " and this installation has " +
                         std::to_string(held) + ". Delete resources before switching.");
        }
      }
      if (auto effective = scheduled_start(plan, now)) {
        // Its effectiveDate lies ahead: the plan stays, the billing pass changes it then.
        schedule_plan_change(tx, id, "", plan, *effective, row.notification_json, now);
        row.updated_ms = now;
        tx.put_installation(row);
      } else {
        cancel_plan_change(tx, id, "", row.notification_json);
        row.billing_plan_id = plan.id;
        row.updated_ms = now;
        tx.put_installation(row);
        if (billing_.plan_taken) billing_.plan_taken(tx, id, plan.id, row.updated_ms);
        util::log_info("installation plan changed").str("installation", id).str("plan", plan.id);
      }
    } else if (req.billing_plan_id && cancel_plan_change(tx, id, "", row.notification_json)) {
      // Asked for the plan it has: a change still pending is called off.
      row.updated_ms = now;
      tx.put_installation(row);
    }
    state = state_of(row);
  });
  return state;
}

bool InstallationService::remove(const std::string& id,
                                 const model::DeleteInstallationRequest& req) {
  bool finalized = false;
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.installation(id);
    if (!row) throw ApiError::not_found("installation " + id + " not found");
    if (row->status != "active") {
      finalized = row->finalized;  // a repeated delete answers what the first one did
      return;
    }
    bool owed = false;
    if (billing_.owes) {
      owed = billing_.owes(tx, *row, clock_.now_ms());
    } else {
      // Without billing (unit tests of this service alone): a paid plan, on the installation
      // or on any resource, counts as owing.
      const model::Plan* plan =
          row->billing_plan_id ? catalog_->plan(*row->billing_plan_id) : nullptr;
      owed = plan && !plan->free();
      for (const auto& res : tx.resources_of(id)) {
        const model::Plan* rp = catalog_->plan(res.billing_plan_id);
        owed = owed || (rp && !rp->free());
      }
    }
    int64_t now = clock_.now_ms();
    row->status = "uninstalled";
    row->deleted_ms = now;
    row->updated_ms = now;
    row->delete_reason = req.reason;
    row->cascade_delete = req.cascade_resource_deletion;
    row->finalized = !owed;
    // Once finalized nothing more will be sent to Vercel: the access token has no further use.
    if (row->finalized) row->access_token_sealed.reset();
    tx.put_installation(*row);
    finalized = row->finalized;
    util::log_info("installation uninstalled")
        .str("installation", id)
        .flag("finalized", finalized)
        .flag("cascade", req.cascade_resource_deletion);
  });
  if (billing_.uninstalled) billing_.uninstalled();
  return finalized;
}

store::InstallationRow InstallationService::require_active(store::ReadTx& tx,
                                                           const std::string& id) const {
  auto row = tx.installation(id);
  if (!row) throw ApiError::not_found("installation " + id + " not found");
  if (row->status != "active") throw ApiError::not_found("installation " + id + " was uninstalled");
  return *row;
}

std::optional<std::string> InstallationService::access_token(const std::string& id) {
  std::optional<std::string> token;
  store_.read([&](store::ReadTx& tx) {
    auto row = tx.installation(id);
    if (row && row->access_token_sealed)
      token = box_.open(*row->access_token_sealed, token_aad(id));
  });
  return token;
}

std::optional<model::Json> InstallationService::account(const std::string& id) {
  std::optional<model::Json> out;
  store_.read([&](store::ReadTx& tx) {
    auto row = tx.installation(id);
    if (row && row->account_json) {
      Json j = Json::parse(*row->account_json, nullptr, false);
      if (j.is_object()) out = std::move(j);
    }
  });
  return out;
}

void InstallationService::request_account_info(const std::string& id) {
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.installation(id);
    if (!row || row->status != "active") return;
    vercel::Outbox::enqueue(tx, id, vercel::api::get_account(id), clock_.now_ms());
  });
}

void InstallationService::account_read(store::WriteTx& tx, const store::OutboxRow& item,
                                       const std::string& response) {
  if (item.method != "GET" || item.path != vercel::api::get_account(item.installation_id).path)
    return;
  // Only what §4.2 defines, each checked: a malformed answer leaves the stored account.
  Json j = Json::parse(response, nullptr, false);
  if (!j.is_object()) return;
  Json account = Json::object();
  if (j.contains("name") && j["name"].is_string()) account["name"] = j["name"];
  if (j.contains("url") && j["url"].is_string()) account["url"] = j["url"];
  if (j.contains("contact") && j["contact"].is_object() && j["contact"].contains("email") &&
      j["contact"]["email"].is_string()) {
    account["contact"] = {{"email", j["contact"]["email"]}};
    if (j["contact"].contains("name") && j["contact"]["name"].is_string())
      account["contact"]["name"] = j["contact"]["name"];
  } else {
    account["contact"] = nullptr;  // required but nullable
  }
  auto row = tx.installation(item.installation_id);
  if (!row || row->status != "active") return;
  std::string text = account.dump();
  if (row->account_json == text) return;
  row->account_json = std::move(text);
  row->updated_ms = clock_.now_ms();
  tx.put_installation(*row);
  util::log_info("installation account information read").str("installation", row->id);
}

bool InstallationService::replace_access_token(const std::string& id, const std::string& token,
                                               std::optional<int64_t> expires_ms) {
  bool replaced = false;
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.installation(id);
    // Uninstalled meanwhile: the token has no further use (finalization clears it).
    if (!row || row->status != "active" || !row->access_token_sealed) return;
    int64_t now = clock_.now_ms();
    row->access_token_sealed = box_.seal(token, token_aad(id));
    row->token_issued_ms = now;
    row->token_expires_ms = expires_ms;
    row->updated_ms = now;
    tx.put_installation(*row);
    replaced = true;
  });
  return replaced;
}

model::InstallationState InstallationService::state_of(const store::InstallationRow& row) const {
  model::InstallationState state;
  if (row.billing_plan_id) {
    if (const model::Plan* plan = catalog_->plan(*row.billing_plan_id))
      state.billing_plan = plan->public_json;
  }
  if (row.notification_json) {
    model::Checker check;
    state.notification =
        model::Notification::parse(Json::parse(*row.notification_json), "notification", check);
  }
  return state;
}

const model::Plan& InstallationService::require_installation_plan(
    const std::string& plan_id) const {
  const model::Plan* plan = catalog_->plan(plan_id);
  if (!plan)
    throw ApiError::validation("unknown billing plan '" + plan_id + "'",
                               {{"billingPlanId", "is not a plan in the catalog"}})
        .with_user("This plan does not exist. Choose one of the plans listed.");
  if (plan->scope != "installation")
    throw ApiError::validation(
        "plan '" + plan_id + "' is billed per resource, not per installation",
        {{"billingPlanId", "is not an installation-scope plan"}})
        .with_user("The " + plan->name +
                   " plan applies to a single resource; choose it for a resource instead.");
  if (plan->disabled)
    throw ApiError::validation("plan '" + plan_id + "' is not selectable",
                               {{"billingPlanId", "is disabled"}})
        .with_user("The " + plan->name + " plan is not available. Choose another plan.");
  return *plan;
}

}  // namespace wharf::service
