#include "model/installation.h"

#include "util/clock.h"

namespace wharf::model {

std::optional<Notification> Notification::parse(const Json& j, const std::string& path,
                                                Checker& check) {
  if (!j.is_object()) {
    check.add(path, "must be an object");
    return std::nullopt;
  }
  size_t before = check.errors().size();
  Notification n;
  n.level = check.one_of(j, "level", path, true, {"info", "warn", "error"}).value_or("");
  n.title = check.string(j, "title", path, true, true).value_or("");
  n.message = check.string(j, "message", path, false);
  n.href = check.string(j, "href", path, false);
  if (n.href && !(n.href->rfind("https://", 0) == 0 || n.href->rfind("http://", 0) == 0 ||
                  n.href->rfind("sso:", 0) == 0))
    check.add(Checker::join(path, "href"), "must start with https://, http:// or sso:");
  if (check.errors().size() != before) return std::nullopt;
  return n;
}

Json Notification::to_json() const {
  Json j = {{"level", level}, {"title", title}};
  if (message) j["message"] = *message;
  if (href) j["href"] = *href;
  return j;
}

UpsertInstallationRequest UpsertInstallationRequest::parse(const Json& body) {
  Checker check;
  UpsertInstallationRequest r;
  if (const Json* scopes = check.get(body, "scopes", "", Kind::kArray, true)) {
    for (size_t i = 0; i < scopes->size(); ++i) {
      if (!(*scopes)[i].is_string())
        check.add(Checker::index("scopes", i), "must be a string");
      else
        r.scopes.push_back((*scopes)[i].get<std::string>());
    }
  }
  if (const Json* policies = check.get(body, "acceptedPolicies", "", Kind::kObject, true)) {
    for (auto it = policies->begin(); it != policies->end(); ++it) {
      int64_t ms;
      if (!it->is_string() || !util::parse_iso8601(it->get<std::string>(), &ms))
        check.add(Checker::join("acceptedPolicies", it.key()),
                  "must be an ISO-8601 date-time string");
    }
    r.accepted_policies = *policies;
  }
  if (const Json* creds = check.get(body, "credentials", "", Kind::kObject, true)) {
    r.access_token = check.string(*creds, "access_token", "credentials", true, true).value_or("");
    r.token_type = check.string(*creds, "token_type", "credentials", true, true).value_or("");
  }
  // `account` is required by current docs but was added later; older re-upserts omit it.
  if (const Json* account = check.get(body, "account", "", Kind::kObject, false)) {
    check.string(*account, "name", "account", false);
    check.string(*account, "url", "account", true, true);
    if (const Json* contact =
            check.get(*account, "contact", "account", Kind::kObject, true, /*nullable=*/true);
        contact && !contact->is_null()) {
      check.string(*contact, "email", "account.contact", true, true);
      check.string(*contact, "name", "account.contact", false);
    }
    r.account = *account;
  }
  check.throw_if_failed("Upsert Installation request");
  return r;
}

UpdateInstallationRequest UpdateInstallationRequest::parse(const Json& body) {
  Checker check;
  UpdateInstallationRequest r;
  r.billing_plan_id = request_plan_id(body, check, false);
  check.throw_if_failed("Update Installation request");
  return r;
}

DeleteInstallationRequest DeleteInstallationRequest::parse(std::string_view content_type,
                                                           std::string_view body) {
  DeleteInstallationRequest r;
  auto parsed = parse_optional_json_object_body(content_type, body);
  if (!parsed) return r;
  const Json& j = *parsed;
  Checker check;
  r.cascade_resource_deletion =
      check.boolean(j, "cascadeResourceDeletion", "", false).value_or(false);
  r.reason = check.string(j, "reason", "", false);
  check.throw_if_failed("Delete Installation request");
  return r;
}

Json InstallationState::to_json() const {
  Json j = Json::object();
  if (billing_plan) j["billingPlan"] = *billing_plan;
  j["notification"] = notification ? notification->to_json() : Json(nullptr);
  return j;
}

}  // namespace wharf::model
