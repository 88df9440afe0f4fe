#include "service/imports.h"

#include <set>

#include "model/api_error.h"
#include "service/resources.h"
#include "util/log.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

ImportService::ImportService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                             InstallationService& installations, const util::SecretBox& box,
                             Send send)
    : store_(store),
      catalog_(std::move(catalog)),
      installations_(installations),
      box_(box),
      send_(std::move(send)) {}

Json ImportService::body(const store::ResourceRow& row) const {
  Json b = {{"productId", row.product_id},
            {"name", row.name},
            {"status", row.status},
            {"ownership", "owned"}};
  Json metadata = Json::parse(row.metadata_json, nullptr, false);
  if (metadata.is_object()) b["metadata"] = metadata;
  if (const model::Plan* plan = catalog_->plan(row.billing_plan_id))
    b["billingPlan"] = plan->public_json;
  if (row.notification_json) b["notification"] = Json::parse(*row.notification_json);
  Json secrets = open_resource_secrets(box_, row);
  if (!secrets.empty()) b["secrets"] = secrets;
  return b;
}

Json ImportService::import(const std::string& installation_id, const std::string& resource_id) {
  std::optional<store::ResourceRow> row;
  std::optional<store::InstallationRow> inst;
  store_.read([&](store::ReadTx& tx) {
    inst = tx.installation(installation_id);
    row = tx.resource(resource_id);
  });
  if (!inst) throw ApiError::not_found("installation " + installation_id + " not found");
  if (inst->status != "active")
    throw ApiError::conflict("installation " + installation_id + " is not active")
        .with_user("This installation was removed; resources cannot be imported into it.");
  if (!row || row->deleted_ms || row->installation_id != installation_id)
    throw ApiError::not_found("resource " + resource_id + " not found in " + installation_id);
  auto token = installations_.access_token(installation_id);
  if (!token)
    throw ApiError::conflict("installation " + installation_id + " has no access token")
        .with_user("This installation cannot reach Vercel right now. Open it from Vercel again.");
  net::HttpResult r = send_(vercel::api::import_resource(installation_id, resource_id, body(*row)),
                            *token, installation_id);
  if (!r.ok()) {
    std::string why = r.error.empty() ? "Vercel answered " + std::to_string(r.status) : r.error;
    util::log_warn("import resource failed")
        .str("installation", installation_id)
        .str("resource", resource_id)
        .str("error", why)
        .str("body", r.body.substr(0, 500));
    throw ApiError(502, "vercel_error", "Import Resource failed: " + why)
        .with_user("Vercel did not accept the database just now. Try again in a moment.");
  }
  util::log_info("resource imported")
      .str("installation", installation_id)
      .str("resource", resource_id);
  Json answer = Json::parse(r.body, nullptr, false);
  return answer.is_discarded() ? Json::object() : answer;
}

Json ImportService::Report::to_json() const {
  Json j = {{"installation", installation_id},
            {"reimported", reimported},
            {"unknownAtVercel", unknown},
            {"missingAtVercel", missing}};
  if (!error.empty()) j["error"] = error;
  return j;
}

ImportService::Report ImportService::reconcile(const std::string& installation_id, bool repair) {
  Report rep;
  rep.installation_id = installation_id;
  auto token = installations_.access_token(installation_id);
  if (!token) {
    rep.error = "no access token";
    return rep;
  }
  net::HttpResult r = send_(vercel::api::get_resources(installation_id), *token, installation_id);
  Json answer = r.ok() ? Json::parse(r.body, nullptr, false) : Json();
  if (!answer.is_object() || !answer.contains("resources") || !answer["resources"].is_array()) {
    rep.error = r.ok() ? "Get Integration Resources answered no resources list"
                       : (r.error.empty() ? "status " + std::to_string(r.status) : r.error);
    return rep;
  }
  std::set<std::string> at_vercel;
  for (const auto& res : answer["resources"]) {
    // partnerId is ours (Get Integration Resource names it id).
    std::string id;
    for (const char* key : {"partnerId", "id"})
      if (auto it = res.find(key); it != res.end() && it->is_string()) {
        id = it->get<std::string>();
        break;
      }
    if (!id.empty()) at_vercel.insert(id);
  }
  std::vector<store::ResourceRow> ours;
  std::set<std::string> live;
  store_.read([&](store::ReadTx& tx) {
    ours = tx.live_resources_of(installation_id);
    for (const auto& id : at_vercel) {
      auto row = tx.resource(id);
      if (!row || row->deleted_ms || row->installation_id != installation_id)
        rep.unknown.push_back(id);
    }
  });
  for (const auto& row : ours) {
    if (at_vercel.count(row.id)) continue;
    // Still being provisioned: Vercel learns of it from the Provision answer.
    if (row.status == "pending") continue;
    if (!repair) {
      rep.missing.push_back(row.id);  // a comparison only
      continue;
    }
    try {
      import(installation_id, row.id);
      rep.reimported.push_back(row.id);
    } catch (const std::exception&) {
      rep.missing.push_back(row.id);
    }
  }
  if (!rep.unknown.empty() || !rep.reimported.empty() || !rep.missing.empty())
    util::log_warn("reconcile found differences")
        .str("installation", installation_id)
        .num("reimported", static_cast<int64_t>(rep.reimported.size()))
        .num("unknownAtVercel", static_cast<int64_t>(rep.unknown.size()))
        .num("missingAtVercel", static_cast<int64_t>(rep.missing.size()));
  return rep;
}

std::vector<ImportService::Report> ImportService::reconcile_all(bool repair) {
  std::vector<std::string> ids;
  store_.read([&](store::ReadTx& tx) {
    for (const auto& inst : tx.installations_to_bill())
      if (inst.status == "active") ids.push_back(inst.id);
  });
  std::vector<Report> out;
  int64_t unknown = 0;
  for (const auto& id : ids) {
    out.push_back(reconcile(id, repair));
    unknown += static_cast<int64_t>(out.back().unknown.size());
    reimported_ += static_cast<int64_t>(out.back().reimported.size());
  }
  unknown_ = unknown;
  return out;
}

}  // namespace wharf::service
