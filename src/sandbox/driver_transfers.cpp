// The resource transfer flows: transfer-create (current or legacy shape), transfer-verify and
// transfer-accept (which moves the resources to the target installation).
#include "sandbox/driver_internal.h"

#include <set>

namespace wharf::sandbox::detail::flows {

Json transfer_create(DriverImpl& d, const Json& params) {
  Params a(params, "transfer-create",
           {"installationId", "resourceIds", "expiresAt", "legacy", "claimId", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  std::vector<std::string> ids = a.strings("resourceIds", true, true);
  auto expires = a.integer("expiresAt", false);
  bool legacy = a.boolean("legacy").value_or(false);
  auto claim_param = a.str("claimId", false);
  if (claim_param && !legacy) a.add("claimId", "is only sent with the legacy shape");
  if (!icfg) a.done();
  Json inst = d.require_installation(*icfg, true);
  for (size_t i = 0; i < ids.size(); ++i) {
    Json res = d.resource(*icfg, ids[i]);
    if (!res.is_object() || res.value("deleted", false))
      a.add(model::Checker::index("resourceIds", i), "is not a resource of the installation");
  }
  a.done();
  int64_t expires_at = expires.value_or(d.ctx.clock.now_ms() + 24LL * 3600 * 1000);
  std::string key = idempotency_key(params);

  CallSpec s{"transfer-create",
             "transfer-create",
             "POST",
             "/v1/installations/" + pct_encode(*icfg) + "/resource-transfer-requests",
             "system",
             d.system_token(*icfg, inst),
             Json{{"resourceIds", ids}, {"expiresAt", expires_at}},
             key,
             "application/json",
             conformance_for(inst)};
  std::string transfer_id;
  if (legacy) {
    // Legacy shape: Vercel picks the id and PUTs the request under it (§5.16).
    transfer_id = "tr_" + random_alnum(24);
    s.endpoint = "transfer-create-legacy";
    s.method = "PUT";
    s.path += "/" + pct_encode(transfer_id);
    s.body = Json{{"resourceIds", ids}, {"expiration", expires_at}};
    if (claim_param) (*s.body)["claimId"] = *claim_param;
  }
  CallResult r = d.call(s);
  Outcome o;
  o.primary(r);
  o.out["idempotencyKey"] = key;
  if (!r.ok()) return o.finish();
  std::string claim = legacy ? transfer_id : str_member(r.response, "providerClaimId");
  if (claim.empty()) {
    o.out["ok"] = false;
    o.out["error"] = "the partner's answer has no providerClaimId; nothing was recorded";
    return o.finish();
  }
  Json rec = {{"claimId", claim},
              {"legacy", legacy},
              {"sourceInstallationId", *icfg},
              {"resourceIds", ids},
              {"expiresAt", expires_at},
              {"status", "created"},
              {"verifiedBy", Json::array()},
              {"createdAt", d.now_iso()}};
  d.ctx.state.mutate([&](Json& doc) { doc["transfers"][claim] = rec; });
  o.out["claimId"] = claim;
  o.out["transfer"] = rec;
  return o.finish();
}

namespace {

// transfer-verify and transfer-accept: the same claim, two steps.
Json transfer_step(DriverImpl& d, const Json& params, bool accept) {
  const std::string flow = accept ? "transfer-accept" : "transfer-verify";
  Params a(params, flow, {"installationId", "claimId", "legacy", "idempotencyKey"});
  auto icfg = a.str("installationId", true);
  auto claim = a.str("claimId", true);
  auto legacy_param = a.boolean("legacy");
  a.done();
  Json target = d.require_installation(*icfg, true);
  Json transfer = d.ctx.state.read([&](const Json& doc) -> Json {
    const Json* all = member(doc, "transfers");
    const Json* t = all ? member(*all, *claim) : nullptr;
    return t ? *t : Json();
  });
  // An unknown claim is still sent: a partner must answer it with 404.
  bool legacy = legacy_param.value_or(transfer.is_object() && transfer.value("legacy", false));
  std::string path = "/v1/installations/" + pct_encode(*icfg) + "/resource-transfer-requests/" +
                     pct_encode(*claim) + (accept ? "/accept" : "/verify");
  CallSpec s{flow,
             flow,
             "POST",
             path,
             "system",
             d.system_token(*icfg, target),
             std::nullopt,
             idempotency_key(params),
             "application/json",
             conformance_for(target)};
  if (accept) {
    // The flows page shows this body; the reference page defines none — partners must
    // accept and ignore it (§5.18).
    s.body = Json{{"targetInstallationId", *icfg}, {"targetTeamId", target["accountId"]}};
  } else if (!legacy) {
    s.method = "GET";  // current shape: GET …/verify, no key (not a mutation)
    s.idempotency_key.clear();
  }
  CallResult r = d.call(s);
  Outcome o;
  o.primary(r);
  o.out["legacy"] = legacy;
  if (!r.ok() || !transfer.is_object()) return o.finish();

  std::string now = d.now_iso();
  Json moved = Json::array();
  d.ctx.state.mutate([&](Json& doc) {
    Json& t = doc["transfers"][*claim];
    if (!accept) {
      t["status"] = t.value("status", "") == "completed" ? "completed" : "verified";
      if (!t["verifiedBy"].is_array()) t["verifiedBy"] = Json::array();
      t["verifiedBy"].push_back(*icfg);
      t["verifiedAt"] = now;
      return;
    }
    std::string source = str_member(t, "sourceInstallationId");
    // On success Vercel moves the resources too, keeping their project connections.
    if (source != *icfg && t["resourceIds"].is_array()) {
      Json& from = doc["resources"][source];
      Json& to = doc["resources"][*icfg];
      for (const auto& rid_json : t["resourceIds"]) {
        if (!rid_json.is_string()) continue;
        std::string rid = rid_json.get<std::string>();
        if (!from.is_object() || !from.contains(rid)) continue;
        Json rec = from[rid];
        rec["transferredFrom"] = source;
        rec["updatedAt"] = now;
        to[rid] = rec;
        from.erase(rid);
        moved.push_back(rid);
      }
    }
    t["status"] = "completed";
    t["targetInstallationId"] = *icfg;
    t["completedAt"] = now;
  });
  if (accept) {
    o.out["moved"] = moved;
    // What Vercel relies on after an accept: the target installation now lists what moved
    // (a partner that answers 204 but keeps the resources under the source is caught here).
    if (!moved.empty()) {
      CallResult listed = d.call(
          d.system_get(flow, "list-resources",
                       "/v1/installations/" + pct_encode(*icfg) + "/resources", *icfg, target));
      o.follow_up("targetResources", "list-resources", listed);
      std::set<std::string> ids;
      if (listed.ok() && listed.response.is_object() && listed.response.contains("resources") &&
          listed.response["resources"].is_array())
        for (const auto& res : listed.response["resources"])
          if (res.is_object() && res.contains("id") && res["id"].is_string())
            ids.insert(res["id"].get<std::string>());
      for (const auto& rid : moved)
        if (listed.ok() && !ids.count(rid.get<std::string>()))
          o.findings.push_back("list-resources: the accepted resource " + rid.get<std::string>() +
                               " is not listed under the target " + "installation " + *icfg +
                               " after the transfer");
    }
  }
  return o.finish();
}

}  // namespace

Json transfer_verify(DriverImpl& d, const Json& params) {
  return transfer_step(d, params, false);
}

Json transfer_accept(DriverImpl& d, const Json& params) {
  return transfer_step(d, params, true);
}

}  // namespace wharf::sandbox::detail::flows
