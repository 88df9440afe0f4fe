// The resource flows: provision, get-resource, list-resources, update-resource,
// delete-resource, repl and rotate-secrets.
#include "sandbox/driver_internal.h"

namespace wharf::sandbox::detail::flows {

Json provision(DriverImpl& d, const Json& params) {
  Params a(params, "provision",
           {"installationId", "productId", "name", "metadata", "billingPlanId", "externalId",
            "protocolSettings", "role", "userHex", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto product = a.str("productId", true);
  auto name = a.str("name", true);
  const Json* metadata = a.object("metadata", false);
  auto plan = a.str("billingPlanId", true);
  auto external = a.str("externalId", false);
  const Json* protocol = a.object("protocolSettings", false);
  auto role = a.one_of("role", false, {"ADMIN", "USER"});
  auto user_hex = a.str("userHex", false);
  a.done();
  Json inst = d.require_installation(*icfg, true);
  UserIdentity user = d.pick_user(*icfg, inst, user_hex, role);

  Json body = {{"productId", *product},
               {"name", *name},
               {"metadata", metadata ? *metadata : Json::object()},
               {"billingPlanId", *plan}};
  if (external) body["externalId"] = *external;
  if (protocol) body["protocolSettings"] = *protocol;
  std::string key = idempotency_key(params);
  CallResult r =
      d.call({"provision", "provision-resource", "POST",
              "/v1/installations/" + pct_encode(*icfg) + "/resources", "user",
              d.user_token(*icfg, user), body, key, "application/json", conformance_for(inst)});
  Outcome o;
  o.primary(r);
  o.out["idempotencyKey"] = key;
  if (!r.ok()) return o.finish();

  const Json* id = member(r.response, "id");
  if (!id || !id->is_string() || id->get_ref<const std::string&>().empty()) {
    o.out["ok"] = false;
    o.out["error"] = "the partner's answer has no resource id; nothing was stored";
    return o.finish();
  }
  std::string rid = id->get<std::string>();
  std::string now = d.now_iso();
  std::string internal = d.ctx.state.mutate([&](Json& doc) {
    Json& in = doc["resources"][*icfg];
    Json rec = in.is_object() && in.contains(rid) ? in[rid] : Json::object();
    // A replayed provision (same Idempotency-Key) returns the same resource: keep the
    // identity Vercel already gave it.
    if (!rec.contains("internalId")) rec["internalId"] = "ir_" + random_alnum(24);
    if (!rec.contains("createdAt")) rec["createdAt"] = now;
    rec["id"] = rid;
    rec["productId"] = *product;
    rec["name"] = *name;
    rec["metadata"] = body["metadata"];
    rec["status"] = "pending";
    apply_resource(rec, r.response, now);
    rec["secrets"] = valid_secrets(r.response.value("secrets", Json()));
    rec["ownership"] = "owned";
    rec["deleted"] = false;
    if (external) rec["externalId"] = *external;
    in[rid] = rec;
    return rec["internalId"].get<std::string>();
  });
  o.out["resourceId"] = rid;
  o.out["internalId"] = internal;
  // Like Vercel, read the resource back right away (partner-api.md §8 step 3).
  o.follow_up("getResource", "get-resource", d.get_resource_call("provision", *icfg, rid, inst));
  o.out["resource"] = d.resource(*icfg, rid);
  return o.finish();
}

Json get_resource(DriverImpl& d, const Json& params) {
  Params a(params, "get-resource", {"installationId", "resourceId"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", true);
  a.done();
  return d.refresh_resource_flow("get-resource", *icfg, *rid);
}

Json list_resources(DriverImpl& d, const Json& params) {
  Params a(params, "list-resources", {"installationId", "ids"});
  auto icfg = a.str("installationId", true);
  std::vector<std::string> ids = a.strings("ids", false, false);
  a.done();
  Json inst = d.require_installation(*icfg, false);
  std::string query;
  for (const auto& id : ids) query += (query.empty() ? "?ids=" : "&ids=") + pct_encode(id);
  Outcome o;
  o.primary(d.call(d.system_get("list-resources", "list-resources",
                                "/v1/installations/" + pct_encode(*icfg) + "/resources" + query,
                                *icfg, inst)));
  return o.finish();
}

Json update_resource(DriverImpl& d, const Json& params) {
  Params a(params, "update-resource",
           {"installationId", "resourceId", "name", "metadata", "billingPlanId", "status",
            "protocolSettings", "role", "userHex", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", true);
  Json body = Json::object();
  if (auto v = a.str("name", false)) body["name"] = *v;
  if (const Json* v = a.object("metadata", false)) body["metadata"] = *v;
  if (auto v = a.str("billingPlanId", false)) body["billingPlanId"] = *v;
  if (auto v = a.one_of(
          "status", false,
          {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"}))
    body["status"] = *v;
  if (const Json* v = a.object("protocolSettings", false)) body["protocolSettings"] = *v;
  auto role = a.one_of("role", false, {"ADMIN", "USER"});
  auto user_hex = a.str("userHex", false);
  a.done();
  return d.patch_resource("update-resource", *icfg, *rid, body, role, user_hex, params);
}

Json delete_resource(DriverImpl& d, const Json& params) {
  Params a(params, "delete-resource",
           {"installationId", "resourceId", "auth", "role", "userHex", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", true);
  if (!icfg || !rid) a.done();
  Json inst = d.require_installation(*icfg, false);
  auto auth = d.auth_for(a, *icfg, inst, "user");
  const std::string& mode = auth.first;
  const std::string& token = auth.second;
  std::string key = idempotency_key(params);
  CallResult r =
      d.call({"delete-resource", "delete-resource", "DELETE",
              "/v1/installations/" + pct_encode(*icfg) + "/resources/" + pct_encode(*rid), mode,
              token, std::nullopt, key, "application/json", conformance_for(inst)});
  if (r.ok()) {
    std::string now = d.now_iso();
    d.ctx.state.mutate([&](Json& doc) {
      Json& in = doc["resources"][*icfg];
      if (!in.is_object() || !in.contains(*rid)) return;
      in[*rid]["deleted"] = true;
      in[*rid]["status"] = "uninstalled";
      in[*rid]["deletedAt"] = now;
      in[*rid]["updatedAt"] = now;
    });
  }
  Outcome o;
  o.primary(r);
  o.out["auth"] = mode;
  o.out["idempotencyKey"] = key;
  return o.finish();
}

Json repl(DriverImpl& d, const Json& params) {
  Params a(params, "repl",
           {"installationId", "resourceId", "input", "readOnly", "stream", "role", "userHex",
            "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", true);
  // An empty command is still a command (the console may send it); only the type matters.
  model::Checker c;
  auto input = c.string(a.json(), "input", "", true);
  for (const auto& e : c.errors()) a.add(e.key, e.message);
  auto read_only = a.boolean("readOnly");
  bool stream = a.boolean("stream").value_or(false);
  auto role = a.one_of("role", false, {"ADMIN", "USER"});
  auto user_hex = a.str("userHex", false);
  a.done();
  Json inst = d.require_installation(*icfg, true);
  UserIdentity user = d.pick_user(*icfg, inst, user_hex, role);
  Json body = {{"input", *input}};
  // Vercel marks the console read-only for USER members (§5.11); an explicit value wins.
  body["readOnly"] = read_only.value_or(user.role == "USER");
  std::string key = idempotency_key(params);
  Outcome o;
  o.primary(
      d.call({"repl", "repl", "POST",
              "/v1/installations/" + pct_encode(*icfg) + "/resources/" + pct_encode(*rid) + "/repl",
              "user", d.user_token(*icfg, user), body, key,
              stream ? "application/jsonl" : "application/json", conformance_for(inst)}));
  o.out["idempotencyKey"] = key;
  return o.finish();
}

Json rotate_secrets(DriverImpl& d, const Json& params) {
  Params a(params, "rotate-secrets",
           {"installationId", "resourceId", "reason", "delayOldSecretsExpirationHours", "auth",
            "role", "userHex", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", true);
  auto reason = a.str("reason", false);
  auto delay = a.number("delayOldSecretsExpirationHours", false);
  if (delay && (*delay < 0 || *delay > 720))
    a.add("delayOldSecretsExpirationHours", "must be between 0 and 720");
  if (!icfg || !rid) a.done();
  Json inst = d.require_installation(*icfg, true);
  auto auth = d.auth_for(a, *icfg, inst, "user");
  const std::string& mode = auth.first;
  const std::string& token = auth.second;
  Json body = Json::object();
  if (reason) body["reason"] = *reason;
  if (delay) body["delayOldSecretsExpirationHours"] = a.json()["delayOldSecretsExpirationHours"];
  std::string key = idempotency_key(params);
  // The partner may push the new secrets (async rotation) before its 202 reaches us.
  int64_t version_before = d.ctx.state.read([&](const Json& doc) -> int64_t {
    auto r = doc.value("/resources"_json_pointer / *icfg / *rid / "secretsVersion", Json(0));
    return r.is_number_integer() ? r.get<int64_t>() : 0;
  });
  CallResult r = d.call({"rotate-secrets", "rotate-secrets", "POST",
                         "/v1/installations/" + pct_encode(*icfg) + "/resources/" +
                             pct_encode(*rid) + "/secrets/rotate",
                         mode, token, body, key, "application/json", conformance_for(inst)});
  Outcome o;
  o.primary(r);
  o.out["auth"] = mode;
  o.out["idempotencyKey"] = key;
  if (!r.ok() || !r.response.is_object()) return o.finish();
  std::string now = d.now_iso();
  const Json* sync = member(r.response, "sync");
  bool is_sync = r.status == 200 && sync && sync->is_boolean() && sync->get<bool>();
  d.ctx.state.mutate([&](Json& doc) {
    Json& in = doc["resources"][*icfg];
    if (!in.is_object() || !in.contains(*rid)) return;
    Json& rec = in[*rid];
    if (is_sync) {
      Json fresh = valid_secrets(r.response.value("secrets", Json()));
      const Json* partial = member(r.response, "partial");
      if (partial && partial->is_boolean() && partial->get<bool>() && rec["secrets"].is_array()) {
        // partial: only the listed secrets changed; the rest stay.
        Json merged = rec["secrets"];
        for (const auto& s : fresh) {
          bool replaced = false;
          for (auto& old : merged)
            if (old.is_object() && str_member(old, "name") == str_member(s, "name")) {
              old = s;
              replaced = true;
            }
          if (!replaced) merged.push_back(s);
        }
        rec["secrets"] = merged;
      } else {
        rec["secrets"] = fresh;
      }
      rec["secretsRotatedAt"] = now;
      rec["rotationPending"] = false;
    } else if (rec.value("secretsVersion", int64_t{0}) > version_before) {
      // The partner already PUT the new secrets while answering: the rotation is done.
      rec["rotationPending"] = false;
      rec["secretsRotatedAt"] = now;
      rec["rotationRequestedAt"] = now;
    } else {
      // The partner will PUT the new secrets to the sandbox's Vercel API later.
      rec["rotationPending"] = true;
      rec["rotationRequestedAt"] = now;
    }
    rec["updatedAt"] = now;
  });
  o.out["sync"] = is_sync;
  o.out["resource"] = d.resource(*icfg, *rid);
  return o.finish();
}

}  // namespace wharf::sandbox::detail::flows
