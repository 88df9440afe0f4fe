#include "model/resource.h"

namespace wharf::model {

Json Secret::to_json() const {
  Json j = {{"name", name}, {"value", value}};
  if (prefix) j["prefix"] = *prefix;
  if (environment_overrides.is_object() && !environment_overrides.empty())
    j["environmentOverrides"] = environment_overrides;
  return j;
}

Secret Secret::from_json(const Json& j) {
  Secret s;
  s.name = j.value("name", "");
  s.value = j.value("value", "");
  if (j.contains("prefix") && j["prefix"].is_string()) s.prefix = j["prefix"].get<std::string>();
  if (j.contains("environmentOverrides")) s.environment_overrides = j["environmentOverrides"];
  return s;
}

bool is_resource_status(const std::string& s) {
  for (auto v : {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"})
    if (s == v) return true;
  return false;
}

std::optional<Json> parse_protocol_settings(const Json& body, Checker& check) {
  const Json* ps = check.get(body, "protocolSettings", "", Kind::kObject, false);
  if (!ps) return std::nullopt;
  if (const Json* exp = check.get(*ps, "experimentation", "protocolSettings", Kind::kObject, false))
    check.string(*exp, "edgeConfigId", "protocolSettings.experimentation", false);
  return *ps;
}

bool wants_config_sync(const Json& stored) {
  if (!stored.is_object() || !stored.contains("experimentation") ||
      !stored["experimentation"].is_object())
    return false;
  const Json& exp = stored["experimentation"];
  if (exp.contains("syncStopped")) return false;
  for (const char* k : {"edgeConfigId", "globalConfigId"})
    if (exp.contains(k) && exp[k].is_string() && !exp[k].get<std::string>().empty()) return true;
  return false;
}

void mark_config_sync_stopped(Json& stored, const std::string& why) {
  if (stored.is_object() && stored.contains("experimentation") &&
      stored["experimentation"].is_object())
    stored["experimentation"]["syncStopped"] = why;
}

Json render_protocol_settings(const Json& stored, bool syncs) {
  Json out = Json::object();
  if (stored.is_object() && stored.contains("experimentation") &&
      stored["experimentation"].is_object()) {
    const Json& exp = stored["experimentation"];
    Json e = Json::object();
    e["edgeConfigSyncingEnabled"] = syncs && wants_config_sync(stored);
    if (exp.contains("edgeConfigId") && exp["edgeConfigId"].is_string())
      e["edgeConfigId"] = exp["edgeConfigId"];
    out["experimentation"] = e;
  }
  return out;
}

ProvisionResourceRequest ProvisionResourceRequest::parse(const Json& body) {
  Checker check;
  ProvisionResourceRequest r;
  r.product_id = check.string(body, "productId", "", true, true).value_or("");
  r.name = check.string(body, "name", "", true, true).value_or("");
  if (const Json* m = check.get(body, "metadata", "", Kind::kObject, true)) r.metadata = *m;
  r.billing_plan_id = request_plan_id(body, check, true).value_or("");
  r.external_id = check.string(body, "externalId", "", false);
  r.protocol_settings = parse_protocol_settings(body, check);
  check.throw_if_failed("Provision Resource request");
  return r;
}

UpdateResourceRequest UpdateResourceRequest::parse(const Json& body) {
  Checker check;
  UpdateResourceRequest r;
  r.name = check.string(body, "name", "", false, true);
  if (const Json* m = check.get(body, "metadata", "", Kind::kObject, false)) r.metadata = *m;
  r.billing_plan_id = request_plan_id(body, check, false);
  if (auto st = check.string(body, "status", "", false)) {
    if (!is_resource_status(*st))
      check.add(
          "status",
          "must be one of ready, pending, onboarding, suspended, resumed, uninstalled, error");
    else
      r.status = st;
  }
  r.protocol_settings = parse_protocol_settings(body, check);
  check.throw_if_failed("Update Resource request");
  return r;
}

RotateSecretsRequest RotateSecretsRequest::parse(std::string_view content_type,
                                                 std::string_view body) {
  RotateSecretsRequest r;
  auto parsed = parse_optional_json_object_body(content_type, body);
  if (!parsed) return r;
  const Json& j = *parsed;
  Checker check;
  r.reason = check.string(j, "reason", "", false);
  if (const Json* d = check.get(j, "delayOldSecretsExpirationHours", "", Kind::kNumber, false)) {
    r.delay_hours = d->get<double>();
    if (!(r.delay_hours >= 0 && r.delay_hours <= 720))
      check.add("delayOldSecretsExpirationHours", "must be between 0 and 720");
  }
  check.throw_if_failed("Request Secrets Rotation request");
  return r;
}

ReplRequest ReplRequest::parse(const Json& body) {
  Checker check;
  ReplRequest r;
  r.input = check.string(body, "input", "", true).value_or("");
  r.read_only = check.boolean(body, "readOnly", "", false).value_or(false);
  check.throw_if_failed("REPL request");
  return r;
}

}  // namespace wharf::model
