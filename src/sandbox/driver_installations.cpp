// The installation flows: install (Upsert Installation), get-installation, plans, change-plan
// and uninstall (Delete Installation, then the removed webhook).
#include "sandbox/driver_internal.h"

#include <cctype>
#include "util/crypto.h"

namespace wharf::sandbox::detail::flows {

Json install(DriverImpl& d, const Json& params) {
  Params a(params, "install",
           {"installationId", "team", "accountHex", "user", "member", "scopes", "policies",
            "idempotencyKey"});
  auto icfg_param = a.str("installationId", false);
  if (icfg_param && (icfg_param->rfind("icfg_", 0) != 0 || !is_alnum(icfg_param->substr(5))))
    a.add("installationId", "must look like icfg_ followed by letters and digits");
  auto team = a.str("team", false);
  auto account_hex_param = a.str("accountHex", false);
  if (account_hex_param && !is_hex(*account_hex_param))
    a.add("accountHex", "must be hexadecimal (it forms the token's sub)");
  Json user = Json::object(), extra_member;
  // `user` (the installer) and `member` (an extra team member) share one shape.
  auto person = [&a](const std::string& key, Json* into) {
    const Json* p = a.object(key, false);
    if (!p) return;
    model::Checker c;
    c.string(*p, "name", key, false);
    c.string(*p, "email", key, false);
    c.one_of(*p, "role", key, false, {"ADMIN", "USER"});
    if (auto hex = c.string(*p, "userHex", key, false); hex && !is_hex(*hex))
      c.add(key + ".userHex", "must be hexadecimal");
    for (const auto& e : c.errors()) a.add(e.key, e.message);
    *into = *p;
  };
  person("user", &user);
  person("member", &extra_member);
  std::vector<std::string> scopes = a.strings("scopes", false, true);
  if (!a.has("scopes"))
    scopes = {"read:integration-configuration", "read-write:integration-resource"};
  std::string now = d.now_iso();
  Json policies = {{"toc", now}};
  if (const Json* given = a.structure("policies")) {
    const Json& pol = *given;
    policies = Json::object();
    if (pol.is_array()) {
      for (size_t i = 0; i < pol.size(); ++i) {
        if (pol[i].is_string() && !pol[i].get_ref<const std::string&>().empty())
          policies[pol[i].get<std::string>()] = now;
        else
          a.add(model::Checker::index("policies", i), "must be a policy id");
      }
    } else if (pol.is_object()) {
      for (auto it = pol.begin(); it != pol.end(); ++it) {
        int64_t ms = 0;
        if (!it.value().is_string() || !util::parse_iso8601(it.value().get<std::string>(), &ms))
          a.add("policies." + it.key(), "must be an ISO-8601 acceptance time");
        else
          policies[it.key()] = it.value();
      }
    } else {
      a.add("policies", "must be an array of policy ids or an object of id -> ISO time");
    }
  }
  a.done();

  std::string icfg = icfg_param.value_or("icfg_" + random_alnum(24));
  std::string key = idempotency_key(params);

  // Create (or, for a retry/re-upsert, refresh) the installation before calling the
  // partner: Vercel holds it while the partner may already call the Vercel API with the
  // token it is being handed.
  struct Prepared {
    Json inst;
    bool existed;
    std::string previous_status;
  };
  Prepared prep = d.ctx.state.mutate([&](Json& doc) -> Prepared {
    Json& all = doc["installations"];
    if (!all.is_object()) all = Json::object();
    bool existed = all.contains(icfg);
    std::string previous = existed ? str_member(all[icfg], "status") : "";
    if (previous == "pending_deletion" || previous == "finalized")
      throw ApiError(409, "conflict",
                     "installation " + icfg + " was uninstalled; a reinstall gets a new id",
                     {{"installationId", "was uninstalled (" + previous + ")"}});
    std::string hex =
        account_hex_param.value_or(existed ? str_member(all[icfg], "accountHex") : random_hex(12));
    // Vercel allows one native installation of an integration per team.
    for (auto it = all.begin(); it != all.end(); ++it) {
      if (it.key() == icfg) continue;
      std::string st = str_member(it.value(), "status");
      if (str_member(it.value(), "accountHex") == hex && st != "finalized" &&
          st != "install_failed")
        throw ApiError(409, "conflict",
                       "team team_" + hex + " already has installation " + it.key(),
                       {{"accountHex", "already has installation " + it.key()}});
    }
    Json inst = existed ? all[icfg] : Json::object();
    inst["id"] = icfg;
    inst["accountHex"] = hex;
    inst["accountId"] = "team_" + hex;
    if (!inst.contains("accessTokens") || !inst["accessTokens"].is_array() ||
        inst["accessTokens"].empty())
      inst["accessTokens"] = Json::array({"vat_" + util::random_token(24)});
    if (!inst.contains("tokenRotations")) inst["tokenRotations"] = Json::array();
    if (!inst.contains("users") || !inst["users"].is_object()) inst["users"] = Json::object();
    std::string installer = str_member(user, "userHex");
    if (installer.empty()) installer = str_member(inst, "installedBy");
    if (installer.empty()) installer = random_hex(12);
    Json& urec = inst["users"][installer];
    if (!urec.is_object()) urec = Json::object();
    urec["role"] = user.value("role", urec.value("role", std::string("ADMIN")));
    urec["email"] = user.value("email", urec.value("email", std::string("admin@example.com")));
    urec["name"] = user.value("name", urec.value("name", std::string("Sandbox Admin")));
    inst["installedBy"] = installer;
    if (extra_member.is_object()) {
      std::string mhex = str_member(extra_member, "userHex");
      if (mhex.empty()) mhex = random_hex(12);
      inst["users"][mhex] = {
          {"role", extra_member.value("role", std::string("USER"))},
          {"email", extra_member.value("email", std::string("viewer@example.com"))},
          {"name", extra_member.value("name", std::string("Sandbox Viewer"))}};
    }
    std::string team_name = team.value_or(str_member(inst.value("account", Json()), "name"));
    if (team_name.empty()) team_name = "Sandbox Team";
    std::string slug;
    for (char ch : team_name)
      slug += std::isalnum(static_cast<unsigned char>(ch))
                  ? static_cast<char>(std::tolower(static_cast<unsigned char>(ch)))
                  : '-';
    inst["account"] = {{"name", team_name},
                       {"url", "https://vercel.com/" + slug + "/~/integrations/" +
                                   d.ctx.config.url_slug + "/" + icfg},
                       {"contact", {{"email", urec["email"]}, {"name", urec["name"]}}}};
    inst["scopes"] = scopes;
    inst["acceptedPolicies"] = policies;
    if (!inst.contains("billingPlan")) inst["billingPlan"] = nullptr;
    if (!inst.contains("notification")) inst["notification"] = nullptr;
    if (!inst.contains("externalId")) inst["externalId"] = nullptr;
    if (!inst.contains("createdAt")) inst["createdAt"] = now;
    inst["status"] = "active";
    all[icfg] = inst;
    return Prepared{inst, existed, previous};
  });

  const Json& inst = prep.inst;
  UserIdentity installer = d.pick_user(icfg, inst, str_member(inst, "installedBy"), std::nullopt);
  Json body = {
      {"scopes", inst["scopes"]},
      {"acceptedPolicies", inst["acceptedPolicies"]},
      {"credentials", {{"access_token", inst["accessTokens"].back()}, {"token_type", "Bearer"}}},
      {"account", inst["account"]}};
  CallResult r = d.call(
      {"install", "upsert-installation", "PUT", "/v1/installations/" + pct_encode(icfg), "user",
       d.user_token(icfg, installer), body, key, "application/json", conformance_for(inst)});
  // A re-upsert of a working installation that fails leaves it working; a first install
  // (or a retry of a failed one) that fails is kept as failed so it can be retried.
  bool keep_active = prep.existed && prep.previous_status == "active";
  d.ctx.state.mutate([&](Json& doc) {
    Json& rec = doc["installations"][icfg];
    if (r.ok()) {
      rec["status"] = "active";
      apply_installation_state(rec, r.response);
    } else if (!keep_active) {
      rec["status"] = "install_failed";
    }
  });

  Outcome o;
  o.primary(r);
  o.out["installationId"] = icfg;
  o.out["accountId"] = inst["accountId"];
  o.out["userHex"] = installer.user_hex;
  o.out["idempotencyKey"] = key;
  o.out["installation"] = d.installation(icfg);
  return o.finish();
}

Json get_installation(DriverImpl& d, const Json& params) {
  Params a(params, "get-installation", {"installationId"});
  auto icfg = a.str("installationId", true);
  a.done();
  return d.refresh_installation_flow("get-installation", *icfg);
}

Json plans(DriverImpl& d, const Json& params) {
  Params a(params, "plans", {"installationId", "productId", "resourceId", "metadata"});
  auto icfg = a.str("installationId", false);
  auto product = a.str("productId", false);
  auto rid = a.str("resourceId", false);
  const Json* metadata = a.object("metadata", false);
  if (!icfg && !product) a.add("installationId", "installationId or productId is required");
  if (rid && !icfg) a.add("installationId", "is required with resourceId");
  if (rid && product) a.add("productId", "cannot be combined with resourceId");
  a.done();

  std::string query = metadata ? "?metadata=" + pct_encode(dump(*metadata)) : "";
  CallSpec s;
  s.flow = "plans";
  s.method = "GET";
  s.auth = "system";
  Json inst;
  if (icfg) {
    inst = d.require_installation(*icfg, false);
    s.token = d.system_token(*icfg, inst);
    s.conformance = conformance_for(inst);
  } else {
    // Before any installation exists Vercel's token is incomplete (§5.12).
    s.token = d.ctx.identity.system_token(std::nullopt, std::nullopt);
  }
  if (product) {
    s.endpoint = "product-plans";
    s.path = "/v1/products/" + pct_encode(*product) + "/plans" + query;
  } else if (rid) {
    s.endpoint = "resource-plans";
    s.path = "/v1/installations/" + pct_encode(*icfg) + "/resources/" + pct_encode(*rid) +
             "/plans" + query;
  } else {
    s.endpoint = "installation-plans";
    s.path = "/v1/installations/" + pct_encode(*icfg) + "/plans" + query;
  }
  Outcome o;
  o.primary(d.call(s));
  o.out["endpoint"] = s.endpoint;
  return o.finish();
}

Json change_plan(DriverImpl& d, const Json& params) {
  Params a(params, "change-plan",
           {"installationId", "resourceId", "billingPlanId", "role", "userHex", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", false);
  auto plan = a.str("billingPlanId", true);
  auto role = a.one_of("role", false, {"ADMIN", "USER"});
  auto user_hex = a.str("userHex", false);
  a.done();
  if (rid)
    return d.patch_resource("change-plan", *icfg, *rid, Json{{"billingPlanId", *plan}}, role,
                            user_hex, params);

  Json inst = d.require_installation(*icfg, true);
  UserIdentity user = d.pick_user(*icfg, inst, user_hex, role);
  std::string key = idempotency_key(params);
  CallResult r =
      d.call({"change-plan", "update-installation", "PATCH",
              "/v1/installations/" + pct_encode(*icfg), "user", d.user_token(*icfg, user),
              Json{{"billingPlanId", *plan}}, key, "application/json", conformance_for(inst)});
  Outcome o;
  o.primary(r);
  o.out["idempotencyKey"] = key;
  if (r.ok() && r.response.is_object()) {
    d.ctx.state.mutate(
        [&](Json& doc) { apply_installation_state(doc["installations"][*icfg], r.response); });
  } else if (r.ok()) {
    // 204 says nothing about the new plan: read it back as Vercel would.
    o.follow_up("getInstallation", "get-installation",
                d.get_installation_call("change-plan", *icfg, inst));
  }
  o.out["installation"] = d.installation(*icfg);
  return o.finish();
}

Json uninstall(DriverImpl& d, const Json& params) {
  Params a(params, "uninstall",
           {"installationId", "cascadeResourceDeletion", "reason", "auth", "role", "userHex",
            "webhook", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto cascade = a.boolean("cascadeResourceDeletion");
  auto reason = a.str("reason", false);
  bool webhook = a.boolean("webhook").value_or(true);
  if (!icfg) a.done();
  Json inst = d.installation(*icfg);
  if (!inst.is_object()) throw no_installation(*icfg);
  std::string status = str_member(inst, "status");
  if (status == "pending_deletion" || status == "finalized")
    throw ApiError(409, "conflict", "installation " + *icfg + " is already " + status,
                   {{"installationId", "is " + status}});
  auto auth = d.auth_for(a, *icfg, inst, "user");
  const std::string& mode = auth.first;
  const std::string& token = auth.second;
  std::optional<Json> body;
  if (cascade || reason) {
    body = Json::object();
    if (cascade) (*body)["cascadeResourceDeletion"] = *cascade;
    if (reason) (*body)["reason"] = *reason;
  }
  std::string key = idempotency_key(params);
  // The user's uninstall is recorded before the partner hears of it, as on Vercel: a partner
  // may answer `finalized: false` and send Finalize Installation from another replica before
  // this call returns, and that Finalize must find the installation pending deletion. A
  // refused Delete Installation puts the status back.
  d.ctx.state.mutate(
      [&](Json& doc) { doc["installations"][*icfg]["status"] = "pending_deletion"; });
  CallResult r = d.call({"uninstall", "delete-installation", "DELETE",
                         "/v1/installations/" + pct_encode(*icfg), mode, token, body, key,
                         "application/json", conformance_for(inst)});
  Outcome o;
  o.primary(r);
  o.out["auth"] = mode;
  o.out["idempotencyKey"] = key;
  if (!r.ok()) {
    d.ctx.state.mutate([&](Json& doc) {
      Json& rec = doc["installations"][*icfg];
      if (str_member(rec, "status") != "pending_deletion") return;
      if (status.empty())
        rec.erase("status");
      else
        rec["status"] = status;
    });
    return o.finish();
  }

  const Json* fin = member(r.response, "finalized");
  bool finalized = fin && fin->is_boolean() && fin->get<bool>();
  std::string now = d.now_iso();
  d.ctx.state.mutate([&](Json& doc) {
    Json& rec = doc["installations"][*icfg];
    rec["deletedAt"] = now;
    if (finalized) {
      // Nothing left to bill: the installation is gone at once and its token stops working.
      rec["status"] = "finalized";
      rec["finalizedAt"] = now;
    }
    // Otherwise pending deletion (set above), or already finalized by a Finalize Installation
    // that arrived before this answer.
    if (cascade.value_or(false) && doc["resources"][*icfg].is_object()) {
      for (auto& res : doc["resources"][*icfg]) {
        if (!res.is_object() || res.value("deleted", false)) continue;
        res["deleted"] = true;
        res["status"] = "uninstalled";
        res["deletedAt"] = now;
      }
    }
  });
  o.out["finalized"] = finalized;
  o.out["installationStatus"] = str_member(d.installation(*icfg), "status");
  if (webhook) {
    Json delivery = d.webhooks.deliver_now("uninstall", "integration-configuration.removed",
                                           d.removed_payload(*icfg, inst), false);
    o.exchanges.push_back(delivery["exchange"].get<int64_t>());
    for (const auto& f : delivery["findings"])
      o.findings.push_back("webhook: " + f.get<std::string>());
    o.out["webhook"] = delivery;
  }
  o.out["installation"] = d.installation(*icfg);
  return o.finish();
}

}  // namespace wharf::sandbox::detail::flows
