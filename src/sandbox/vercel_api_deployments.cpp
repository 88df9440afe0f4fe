// General REST endpoints that marketplace providers call about projects and deployments
// (vercel-api.md §10.2 Checks v2, §10.3 legacy Checks v1, §10.4 lookups). Their paths name no
// installation: the installation is the bearer token's (Registrar::token), and a project,
// deployment, check or resource of another installation is answered 404, as if it did not
// exist. The model they read and change is sandbox/deployments.h.
#include <algorithm>
#include <iterator>

#include "sandbox/deployments.h"
#include "sandbox/vercel_api_internal.h"
#include "util/ids.h"

namespace wharf::sandbox::vercel_api {
namespace {

using deployments::find_deployment;
using deployments::find_project;

// A check timeout under a second is almost certainly seconds sent where Vercel wants ms.
constexpr int64_t kSuspiciousTimeoutMs = 1000;

const Json& project_or_404(const Json& doc, const Call& c, const std::string& id_or_name) {
  const Json* p = find_project(doc, c.icfg, id_or_name);
  if (!p) throw model::ApiError::not_found("project " + id_or_name + " not found");
  return *p;
}

// The stored deployment (by id or url) of the caller's installation; 404 otherwise.
Json& deployment_or_404(Json& doc, const Call& c, const std::string& id_or_url) {
  const Json* d = find_deployment(doc, c.icfg, id_or_url);
  if (!d) throw model::ApiError::not_found("deployment " + id_or_url + " not found");
  return doc["deployments"][get_str(*d, "id")];
}

std::string account_of(const Json& doc, const std::string& icfg) {
  return get_str(installation_of(doc, icfg), "accountId");
}

// ---- lookups (§10.4) ---------------------------------------------------------------------

net::Response get_deployment(Call& c) {
  std::string key = c.param("idOrUrl");
  Json view = c.ctx.state.read([&](const Json& doc) {
    const Json* d = find_deployment(doc, c.icfg, key);
    if (!d) throw model::ApiError::not_found("deployment " + key + " not found");
    return deployments::deployment_view(*d);
  });
  return json_reply(200, view);
}

net::Response get_project(Call& c) {
  Json view = c.ctx.state.read([&](const Json& doc) {
    return deployments::project_view(project_or_404(doc, c, c.param("idOrName")));
  });
  return json_reply(200, view);
}

// ---- Checks v2 (§10.2) ----------------------------------------------------------------------

net::Response create_check(Call& c) {
  Json body = c.body();
  require_valid(schema::create_check(body), "Create Check body");
  int64_t now = c.ctx.clock.now_ms();
  Json view = c.ctx.state.mutate([&](Json& doc) {
    const Json& p = project_or_404(doc, c, c.param("projectIdOrName"));
    std::string project_id = get_str(p, "id");
    Json source = {{"kind", "integration"}};
    if (body.contains("source") && body["source"].contains("externalResourceId")) {
      std::string rid = body["source"]["externalResourceId"].get<std::string>();
      if (!find_live_resource(doc, c.icfg, rid))
        throw model::ApiError(
            404, "not_found",
            "source.externalResourceId: resource " + rid + " not found in installation " + c.icfg,
            {{"source.externalResourceId", "is not a resource of installation " + c.icfg}});
      const Json& connected = p.value("connectedResources", Json::array());
      if (std::find(connected.begin(), connected.end(), Json(rid)) == connected.end())
        c.findings.push_back("source.externalResourceId: resource " + rid +
                             " is not connected to project " + project_id);
      source["externalResourceId"] = rid;
    }
    int64_t timeout = body.value("timeout", deployments::kDefaultCheckTimeoutMs);
    if (timeout < kSuspiciousTimeoutMs)
      c.findings.push_back("timeout: " + std::to_string(timeout) +
                           " ms is under a second; Vercel's check timeout is in milliseconds");
    std::string name = body["name"].get<std::string>();
    for (const auto& other : doc.value("checks", Json::object()))
      if (get_str(other, "api") == "v2" && get_str(other, "projectId") == project_id &&
          get_str(other, "installationId") == c.icfg && get_str(other, "name") == name)
        c.findings.push_back("name: project " + project_id + " already has a check named \"" +
                             name + "\" (" + get_str(other, "id") +
                             "); every deployment will run both");
    std::string id = util::new_id("chk");
    Json check = {{"id", id},
                  {"api", "v2"},
                  {"projectId", project_id},
                  {"installationId", c.icfg},
                  {"name", name},
                  {"isRerequestable", body.value("isRerequestable", false)},
                  {"requires", body.value("requires", std::string("deployment-url"))},
                  {"targets", body.value("targets", Json::array({"preview", "production"}))},
                  {"blocks", body.value("blocks", std::string("none"))},
                  {"timeout", timeout},
                  {"source", source},
                  {"createdAt", now},
                  {"updatedAt", now}};
    Json& all = doc["checks"];
    if (!all.is_object()) all = Json::object();
    all[id] = check;
    return deployments::check_view(check, account_of(doc, c.icfg));
  });
  return json_reply(200, view);
}

net::Response list_checks(Call& c) {
  auto blocks = c.req.query_param("blocks");
  if (blocks) {
    static const char* const kBlocks[] = {"build-start", "deployment-start", "deployment-alias",
                                          "deployment-promotion", "none"};
    if (std::find(std::begin(kBlocks), std::end(kBlocks), *blocks) == std::end(kBlocks))
      throw model::ApiError(400, "bad_request",
                            "blocks: must be one of build-start, deployment-start, "
                            "deployment-alias, deployment-promotion, none (got \"" +
                                *blocks + "\")",
                            {{"blocks", "must be a Checks v2 blocks value"}});
  }
  Json list = c.ctx.state.read([&](const Json& doc) {
    std::string project_id = get_str(project_or_404(doc, c, c.param("projectIdOrName")), "id");
    std::string owner = account_of(doc, c.icfg);
    Json out = Json::array();
    auto all = doc.find("checks");
    if (all == doc.end() || !all->is_object()) return out;
    for (const auto& check : *all)
      if (get_str(check, "api") == "v2" && get_str(check, "projectId") == project_id &&
          (!blocks || get_str(check, "blocks") == *blocks))
        out.push_back(deployments::check_view(check, owner));
    return out;
  });
  return json_reply(200, {{"checks", list}});
}

net::Response update_check_run(Call& c) {
  Json body = c.body();
  require_valid(schema::update_check_run(body), "Update Check Run body");
  std::string run_id = c.param("checkRunId");
  int64_t now = c.ctx.clock.now_ms();
  Json view = c.ctx.state.mutate([&](Json& doc) {
    Json& d = deployment_or_404(doc, c, c.param("deploymentId"));
    Json& runs = d["checkRuns"];
    if (!runs.is_object() || !runs.contains(run_id) || !runs[run_id].is_object() ||
        get_str(runs[run_id], "installationId") != c.icfg)
      throw model::ApiError::not_found("check run " + run_id + " not found on deployment " +
                                       get_str(d, "id"));
    Json& run = runs[run_id];
    if (get_str(run, "status") == "completed")
      throw model::ApiError(400, "bad_request",
                            "check run " + run_id + " is already completed (conclusion " +
                                get_str(run, "conclusion") + "); a completed run cannot be changed",
                            {{"status", "the run is already completed"}});
    std::string status =
        body.contains("status") ? body["status"].get<std::string>() : get_str(run, "status");
    if (body.contains("conclusion") && status != "completed")
      throw model::ApiError(400, "bad_request",
                            "conclusion: is only allowed when the run is completed (its status "
                            "is \"" +
                                status + "\"; send status \"completed\" with it)",
                            {{"conclusion", "is only allowed with status \"completed\""}});
    Json& updates = run["updates"];
    if (!updates.is_array()) updates = Json::array();
    updates.push_back({{"receivedAt", now}, {"body", body}});
    for (auto it = body.begin(); it != body.end(); ++it) run[it.key()] = *it;
    if (status == "completed" && !body.contains("completedAt")) run["completedAt"] = now;
    run["updatedAt"] = now;
    return deployments::check_run_view(run);
  });
  return json_reply(200, view);
}

// ---- Checks v1 (§10.3, legacy) ----------------------------------------------------------------

// The v1 check `checkId` of the deployment, of the caller's installation; 404 otherwise.
Json& check_v1_or_404(Json& doc, const Call& c, const std::string& deployment_id,
                      const std::string& check_id) {
  Json& checks = doc["checks"];
  if (!checks.is_object() || !checks.contains(check_id) || !checks[check_id].is_object() ||
      get_str(checks[check_id], "api") != "v1" ||
      get_str(checks[check_id], "deploymentId") != deployment_id ||
      get_str(checks[check_id], "installationId") != c.icfg)
    throw model::ApiError::not_found("check " + check_id + " not found on deployment " +
                                     deployment_id);
  return checks[check_id];
}

net::Response create_check_v1(Call& c) {
  Json body = c.body();
  require_valid(schema::create_check_v1(body), "Create Check body");
  int64_t now = c.ctx.clock.now_ms();
  Json check = c.ctx.state.mutate([&](Json& doc) {
    std::string deployment_id = get_str(deployment_or_404(doc, c, c.param("deploymentId")), "id");
    std::string id = util::new_id("chk");
    Json rec = {{"id", id},
                {"api", "v1"},
                {"deploymentId", deployment_id},
                {"installationId", c.icfg},
                {"name", body["name"]},
                {"blocking", body["blocking"]},
                {"rerequestable", body.value("rerequestable", false)},
                {"status", "registered"},
                {"createdAt", now},
                {"updatedAt", now}};
    for (const char* k : {"path", "detailsUrl", "externalId"})
      if (body.contains(k)) rec[k] = body[k];
    Json& all = doc["checks"];
    if (!all.is_object()) all = Json::object();
    all[id] = rec;
    return rec;
  });
  return json_reply(200, deployments::check_v1_view(check, c.ctx.config.client_id));
}

net::Response list_checks_v1(Call& c) {
  Json list = c.ctx.state.read([&](const Json& doc) {
    const Json* d = find_deployment(doc, c.icfg, c.param("deploymentId"));
    if (!d)
      throw model::ApiError::not_found("deployment " + c.param("deploymentId") + " not found");
    std::string deployment_id = get_str(*d, "id");
    Json out = Json::array();
    auto all = doc.find("checks");
    if (all == doc.end() || !all->is_object()) return out;
    for (const auto& check : *all)
      if (get_str(check, "api") == "v1" && get_str(check, "deploymentId") == deployment_id &&
          get_str(check, "installationId") == c.icfg)
        out.push_back(deployments::check_v1_view(check, c.ctx.config.client_id));
    return out;
  });
  return json_reply(200, {{"checks", list}});
}

net::Response update_check_v1(Call& c) {
  Json body = c.body();
  require_valid(schema::update_check_v1(body), "Update Check body");
  int64_t now = c.ctx.clock.now_ms();
  Json check = c.ctx.state.mutate([&](Json& doc) {
    std::string deployment_id = get_str(deployment_or_404(doc, c, c.param("deploymentId")), "id");
    Json& rec = check_v1_or_404(doc, c, deployment_id, c.param("checkId"));
    for (auto it = body.begin(); it != body.end(); ++it) rec[it.key()] = *it;
    if (get_str(body, "status") == "completed") rec["completedAt"] = now;
    rec["updatedAt"] = now;
    return rec;
  });
  return json_reply(200, deployments::check_v1_view(check, c.ctx.config.client_id));
}

net::Response rerequest_check_v1(Call& c) {
  int64_t now = c.ctx.clock.now_ms();
  c.ctx.state.mutate([&](Json& doc) {
    std::string deployment_id = get_str(deployment_or_404(doc, c, c.param("deploymentId")), "id");
    Json& rec = check_v1_or_404(doc, c, deployment_id, c.param("checkId"));
    if (!rec.value("rerequestable", false))
      throw model::ApiError(400, "bad_request",
                            "check " + get_str(rec, "id") +
                                " is not rerequestable (it was created without rerequestable: "
                                "true)",
                            {{"checkId", "is not rerequestable"}});
    rec["status"] = "registered";
    rec.erase("conclusion");
    rec.erase("completedAt");
    rec["rerequestedAt"] = now;
    rec["updatedAt"] = now;
  });
  return json_reply(200, Json::object());
}

}  // namespace

void add_deployment_routes(Registrar& r) {
  r.token("GET", "/v13/deployments/{idOrUrl}", get_deployment);
  r.token("GET", "/v9/projects/{idOrName}", get_project);
  r.token("POST", "/v2/projects/{projectIdOrName}/checks", create_check);
  r.token("GET", "/v2/projects/{projectIdOrName}/checks", list_checks);
  // The spec's table says check-runs; Vercel's REST reference page spells it checkruns.
  r.token("PATCH", "/v2/deployments/{deploymentId}/check-runs/{checkRunId}", update_check_run);
  r.token("PATCH", "/v2/deployments/{deploymentId}/checkruns/{checkRunId}", update_check_run);
  r.token("POST", "/v1/deployments/{deploymentId}/checks", create_check_v1);
  r.token("GET", "/v1/deployments/{deploymentId}/checks", list_checks_v1);
  r.token("PATCH", "/v1/deployments/{deploymentId}/checks/{checkId}", update_check_v1);
  r.token("POST", "/v1/deployments/{deploymentId}/checks/{checkId}/rerequest", rerequest_check_v1);
}

}  // namespace wharf::sandbox::vercel_api
