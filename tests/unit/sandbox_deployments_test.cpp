// The sandbox's projects/deployments model (sandbox/deployments.h), the general REST
// endpoints that use it (Checks v2 and v1, deployment and project lookups), deployment-action
// recording and the judges, connectable-account OAuth codes, and the control routes — called
// through the route table with hand-built requests, as in sandbox_vercel_api_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "net/http_client.h"
#include "sandbox/context.h"
#include "sandbox/control_api.h"
#include "sandbox/deployments.h"
#include "sandbox/driver.h"
#include "sandbox/vercel_api.h"
#include "sandbox_api_fixture.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

using model::Json;
namespace dep = deployments;

using testing_support::at;
using testing_support::kNow;

class DeploymentsTest : public testing_support::SandboxApiFixture {
 protected:
  void SetUp() override {
    start("wharf_deployments_test", true);
    state_->mutate([](Json& doc) {
      for (const char* id : {"icfg_a", "icfg_b"}) {
        std::string suffix = std::string(id).substr(5);
        doc["installations"][id] = installation_record(id);
        doc["resources"][id]["res_" + suffix] = {
            {"id", "res_" + suffix}, {"name", "db " + suffix}, {"deleted", false}};
      }
    });
  }

  static std::vector<std::string> rules(const Json& findings, const std::string& severity) {
    std::vector<std::string> out;
    for (const auto& f : findings)
      if (f.value("severity", "") == severity) out.push_back(f.value("rule", ""));
    return out;
  }

  // A project of icfg_a named "web" with res_a connected, and a preview deployment of it.
  void project_and_deployment() {
    project_ = dep::create_project(*ctx_, "icfg_a", "web");
    dep::connect_resource(*ctx_, project_["id"], "res_a");
    deployment_ = dep::create_deployment(*ctx_, project_["id"], "preview",
                                         {{"githubCommitRef", "feature/x"}});
  }
  std::string pid() const { return project_["id"]; }
  std::string did() const { return deployment_["id"]; }

  Json project_, deployment_;
};

// ---- the model -------------------------------------------------------------------------------

TEST_F(DeploymentsTest, ProjectsAndDeploymentsAreRecordedWithVercelShapedIds) {
  Json p = dep::create_project(*ctx_, "icfg_a", "web");
  EXPECT_EQ(p["id"].get<std::string>().rfind("prj_", 0), 0u);
  EXPECT_EQ(p["accountId"], "team_a1b2c3a");
  EXPECT_EQ(p["installationId"], "icfg_a");
  EXPECT_EQ(p["createdAt"], at(kNow));
  EXPECT_EQ(p["connectedResources"], Json::array());
  try {
    dep::create_project(*ctx_, "icfg_a", "web");
    ADD_FAILURE() << "a second project named web was created";
  } catch (const model::ApiError& e) {
    EXPECT_EQ(e.status, 409);
  }
  // Names are unique per team, not globally.
  EXPECT_NO_THROW(dep::create_project(*ctx_, "icfg_b", "web"));
  EXPECT_THROW(dep::create_project(*ctx_, "icfg_zzz", "x"), model::ApiError);
  EXPECT_THROW(dep::create_project(*ctx_, "icfg_a", ""), model::ApiError);

  EXPECT_THROW(dep::connect_resource(*ctx_, p["id"], "res_b"), model::ApiError);  // other inst
  dep::connect_resource(*ctx_, p["id"], "res_a");
  Json again = dep::connect_resource(*ctx_, p["id"], "res_a");
  EXPECT_EQ(again["connectedResources"], Json::array({"res_a"}));

  EXPECT_THROW(dep::create_deployment(*ctx_, p["id"], "staging"), model::ApiError);
  EXPECT_THROW(dep::create_deployment(*ctx_, p["id"], "preview", {{"n", 1}}), model::ApiError);
  EXPECT_THROW(dep::create_deployment(*ctx_, "prj_nope", "preview"), model::ApiError);
  Json d = dep::create_deployment(*ctx_, p["id"], "production");
  std::string id = d["id"];
  EXPECT_EQ(id.rfind("dpl_", 0), 0u);
  std::string url = d["url"];
  EXPECT_EQ(url.rfind("web-", 0), 0u) << url;
  EXPECT_NE(url.find(".vercel.app"), std::string::npos);
  EXPECT_EQ(d["meta"]["githubCommitSha"].get<std::string>().size(), 40u);
  EXPECT_EQ(d["meta"]["githubCommitRef"], "main");
  EXPECT_EQ(d["readyState"], "BUILDING");
  EXPECT_EQ(dep::set_ready_state(*ctx_, id, "READY")["readyState"], "READY");
  EXPECT_THROW(dep::set_ready_state(*ctx_, id, "DONE"), model::ApiError);
  EXPECT_EQ(doc()["deployments"][id]["projectId"], p["id"]);
}

// ---- lookups, token-scoped auth, teamId, /api ------------------------------------------------

TEST_F(DeploymentsTest, LookupsAreScopedToTheTokensInstallation) {
  project_and_deployment();
  auto byid = call("GET", "/v9/projects/" + pid());
  ASSERT_EQ(byid.status, 200) << byid.body;
  EXPECT_EQ(
      body_of(byid),
      (Json{
          {"id", pid()}, {"name", "web"}, {"accountId", "team_a1b2c3a"}, {"createdAt", at(kNow)}}));
  EXPECT_EQ(body_of(call("GET", "/v9/projects/web"))["id"], pid());
  // Another installation's token does not see the project at all.
  EXPECT_EQ(call("GET", "/v9/projects/" + pid(), "", "tok_b").status, 404);
  EXPECT_EQ(call("GET", "/v9/projects/nope").status, 404);
  EXPECT_EQ(call("GET", "/v9/projects/web", "", std::nullopt).status, 401);
  EXPECT_EQ(call("GET", "/v9/projects/web", "", "tok_wrong").status, 401);
  // teamId is optional; when given it must be the token's team.
  EXPECT_EQ(call("GET", "/v9/projects/web?teamId=team_a1b2c3a").status, 200);
  auto other_team = call("GET", "/v9/projects/web?teamId=team_a1b2c3b");
  EXPECT_EQ(other_team.status, 403);
  EXPECT_NE(message_of(other_team).find("teamId"), std::string::npos);

  auto d = call("GET", "/v13/deployments/" + did());
  ASSERT_EQ(d.status, 200) << d.body;
  Json view = body_of(d);
  EXPECT_EQ(view["id"], did());
  EXPECT_EQ(view["uid"], did());
  EXPECT_EQ(view["url"], deployment_["url"]);
  EXPECT_EQ(view["name"], "web");
  EXPECT_EQ(view["projectId"], pid());
  EXPECT_TRUE(view["target"].is_null());  // Vercel's target of a preview deployment
  EXPECT_EQ(view["readyState"], "BUILDING");
  EXPECT_EQ(view["meta"]["githubCommitRef"], "feature/x");
  EXPECT_EQ(view["meta"]["githubCommitSha"], deployment_["meta"]["githubCommitSha"]);
  EXPECT_EQ(view["createdAt"], at(kNow));
  std::string url = deployment_["url"];
  EXPECT_EQ(body_of(call("GET", "/v13/deployments/" + url))["id"], did());
  EXPECT_EQ(
      body_of(call("GET", "/v13/deployments/https%3A%2F%2F" + url + "?withGitRepoInfo=true"))["id"],
      did());
  EXPECT_EQ(call("GET", "/v13/deployments/" + did(), "", "tok_b").status, 404);
  EXPECT_EQ(call("GET", "/v13/deployments/dpl_unknown").status, 404);
  // Served under /api as well, identically.
  auto proxied = call("GET", "/api/v13/deployments/" + did());
  EXPECT_EQ(proxied.status, 200);
  EXPECT_EQ(proxied.body, d.body);
  Json prod = dep::create_deployment(*ctx_, pid(), "production");
  EXPECT_EQ(body_of(call("GET", "/v13/deployments/" + prod["id"].get<std::string>()))["target"],
            "production");
}

// ---- Checks v2 -------------------------------------------------------------------------------

TEST_F(DeploymentsTest, ChecksV2BodiesAreStrict) {
  project_and_deployment();
  std::string path = "/v2/projects/" + pid() + "/checks";
  auto bad = call_json("POST", path,
                       {{"name", "e2e"},
                        {"requires", "always"},
                        {"timeout", "5m"},
                        {"color", "red"},
                        {"source", {{"kind", "github"}, {"extra", 1}}}});
  ASSERT_EQ(bad.status, 400);
  EXPECT_EQ(body_of(bad)["error"]["code"], "bad_request");
  std::string m = message_of(bad);
  for (const char* part :
       {"requires: must be one of", "timeout: must be", "color: is not allowed",
        "source.kind: must be one of \"integration\"", "source.extra: is not allowed"})
    EXPECT_NE(m.find(part), std::string::npos) << part << " in " << m;
  EXPECT_NE(
      message_of(call_json("POST", path, {{"isRerequestable", true}})).find("name: is required"),
      std::string::npos);
  EXPECT_EQ(call_json("POST", path, {{"name", "e2e"}, {"timeout", 0}}).status, 400);
  EXPECT_EQ(call_json("POST", path, {{"name", "e2e"}, {"targets", {"preview", 3}}}).status, 400);
  // The resource must be this installation's.
  auto foreign = call_json(
      "POST", path,
      {{"name", "e2e"}, {"source", {{"kind", "integration"}, {"externalResourceId", "res_b"}}}});
  EXPECT_EQ(foreign.status, 404);
  EXPECT_NE(message_of(foreign).find("externalResourceId"), std::string::npos);
  EXPECT_EQ(
      call_json("POST", "/v2/projects/" + pid() + "/checks", {{"name", "e2e"}}, "tok_b").status,
      404);
  EXPECT_EQ(call_json("POST", path + "?teamId=team_other", {{"name", "e2e"}}).status, 403);
  EXPECT_FALSE(doc().contains("checks"));  // nothing was registered by the failures
}

TEST_F(DeploymentsTest, ChecksV2RegisterListAndOpenRunsPerTarget) {
  project_and_deployment();
  std::string path = "/v2/projects/web/checks";  // by name
  auto r = call_json("POST", path,
                     {{"name", "e2e"},
                      {"isRerequestable", true},
                      {"blocks", "deployment-alias"},
                      {"timeout", 60000},
                      {"source", {{"kind", "integration"}, {"externalResourceId", "res_a"}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json check = body_of(r);
  std::string check_id = check["id"];
  EXPECT_EQ(check_id.rfind("chk_", 0), 0u);
  EXPECT_EQ(check["projectId"], pid());
  EXPECT_EQ(check["ownerId"], "team_a1b2c3a");
  EXPECT_EQ(check["requires"], "deployment-url");  // the default
  EXPECT_EQ(check["sourceKind"], "integration");
  EXPECT_EQ(check["source"]["externalResourceId"], "res_a");
  EXPECT_EQ(check["timeout"], 60000);
  // A production-only check and a check with a suspicious timeout (findings, not failures).
  auto prod = call_json("POST", path,
                        {{"name", "lighthouse"}, {"targets", {"production"}}, {"timeout", 300}});
  ASSERT_EQ(prod.status, 200) << prod.body;
  bool timeout_finding = false;
  auto exchanges = log_.list(0, 1000);
  ASSERT_FALSE(exchanges.empty());
  for (const auto& f : exchanges.back().findings)
    timeout_finding = timeout_finding || f.find("milliseconds") != std::string::npos;
  EXPECT_TRUE(timeout_finding);

  auto list = call("GET", path);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(body_of(list)["checks"].size(), 2u);
  auto blocking = body_of(call("GET", path + "?blocks=deployment-alias"))["checks"];
  ASSERT_EQ(blocking.size(), 1u);
  EXPECT_EQ(blocking[0]["id"], check_id);
  EXPECT_EQ(call("GET", path + "?blocks=sometimes").status, 400);
  EXPECT_EQ(call("GET", path, "", "tok_b").status, 404);

  // The preview deployment runs only the check without a production-only target.
  Json runs = dep::start_check_runs(*ctx_, did());
  ASSERT_EQ(runs.size(), 1u) << runs.dump();
  std::string run_id = runs[0]["id"];
  EXPECT_EQ(run_id.rfind("crn_", 0), 0u);
  EXPECT_EQ(runs[0]["checkId"], check_id);
  EXPECT_EQ(runs[0]["deploymentId"], did());
  EXPECT_EQ(runs[0]["timeout"], 60000);
  EXPECT_EQ(runs[0]["source"], (Json{{"kind", "integration"},
                                     {"integrationConfigurationId", "icfg_a"},
                                     {"externalResourceId", "res_a"}}));
  EXPECT_EQ(doc()["deployments"][did()]["checkRuns"][run_id]["status"], "queued");
  Json prod_dep = dep::create_deployment(*ctx_, pid(), "production");
  EXPECT_EQ(dep::start_check_runs(*ctx_, prod_dep["id"]).size(), 2u);
  Json payload = dep::checkrun_webhook_payload(*ctx_, did(), run_id);
  EXPECT_EQ(payload["checkRun"], runs[0]);
  EXPECT_EQ(payload["project"]["id"], pid());
  EXPECT_EQ(payload["team"]["id"], "team_a1b2c3a");
  EXPECT_EQ(payload["deployment"]["url"], deployment_["url"]);
}

TEST_F(DeploymentsTest, CheckRunUpdatesFollowTheStatusRules) {
  project_and_deployment();
  ASSERT_EQ(call_json("POST", "/v2/projects/" + pid() + "/checks", {{"name", "e2e"}}).status, 200);
  std::string run_id = dep::start_check_runs(*ctx_, did())[0]["id"];
  std::string path = "/v2/deployments/" + did() + "/check-runs/" + run_id;

  auto early = call_json("PATCH", path, {{"status", "running"}, {"conclusion", "succeeded"}});
  EXPECT_EQ(early.status, 400);
  EXPECT_NE(message_of(early).find("conclusion: is only allowed"), std::string::npos);
  auto no_status_conclusion = call_json("PATCH", path, {{"conclusion", "succeeded"}});
  EXPECT_EQ(no_status_conclusion.status, 400);  // the run is queued, not completed
  auto bare = call_json("PATCH", path, {{"status", "completed"}});
  EXPECT_EQ(bare.status, 400);
  EXPECT_NE(message_of(bare).find("conclusion: is required"), std::string::npos);
  EXPECT_EQ(call_json("PATCH", path, {{"status", "done"}}).status, 400);
  EXPECT_EQ(call_json("PATCH", path, {{"status", "running"}, {"completedAt", "soon"}}).status, 400);
  EXPECT_EQ(call_json("PATCH", path, {{"status", "running"}, {"logs", "x"}}).status, 400);
  EXPECT_EQ(call_json("PATCH", path, {{"status", "running"}}, "tok_b").status, 404);
  EXPECT_EQ(call_json("PATCH", "/v2/deployments/" + did() + "/check-runs/crn_nope",
                      {{"status", "running"}})
                .status,
            404);

  auto running = call_json("PATCH", path, {{"status", "running"}, {"externalId", "job-1"}});
  ASSERT_EQ(running.status, 200) << running.body;
  EXPECT_EQ(body_of(running)["status"], "running");
  EXPECT_FALSE(body_of(running).contains("updates"));
  clock_->advance_ms(1000);
  // Vercel's reference spells the path checkruns; both reach the same run.
  auto done = call_json("PATCH", "/v2/deployments/" + did() + "/checkruns/" + run_id,
                        {{"status", "completed"},
                         {"conclusion", "succeeded"},
                         {"output", {{"metrics", Json::object()}}}});
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(body_of(done)["conclusion"], "succeeded");
  EXPECT_EQ(body_of(done)["completedAt"], at(kNow) + 1000);
  auto after = call_json("PATCH", path, {{"externalUrl", "https://p.example/runs/1"}});
  EXPECT_EQ(after.status, 400);
  EXPECT_NE(message_of(after).find("already completed"), std::string::npos);

  Json run = doc()["deployments"][did()]["checkRuns"][run_id];
  ASSERT_EQ(run["updates"].size(), 2u);
  EXPECT_EQ(run["updates"][0]["receivedAt"], at(kNow));
  EXPECT_EQ(run["updates"][0]["body"]["externalId"], "job-1");
  EXPECT_EQ(run["updates"][1]["receivedAt"], at(kNow) + 1000);
  EXPECT_TRUE(dep::judge_check_run(*ctx_, did(), run_id, clock_->now_ms()).empty());
}

TEST_F(DeploymentsTest, CheckRunJudge) {
  project_and_deployment();
  ASSERT_EQ(
      call_json("POST", "/v2/projects/" + pid() + "/checks", {{"name", "e2e"}, {"timeout", 10000}})
          .status,
      200);
  ASSERT_EQ(call_json("POST", "/v2/projects/" + pid() + "/checks",
                      {{"name", "smoke"}, {"timeout", 10000}})
                .status,
            200);
  Json runs = dep::start_check_runs(*ctx_, did());
  ASSERT_EQ(runs.size(), 2u);
  std::string a = runs[0]["id"], b = runs[1]["id"];
  int64_t now = clock_->now_ms();
  EXPECT_EQ(rules(dep::judge_check_run(*ctx_, did(), a, now), "warning"),
            std::vector<std::string>{"checkrun.incomplete"});
  EXPECT_TRUE(rules(dep::judge_check_run(*ctx_, did(), a, now), "error").empty());
  EXPECT_EQ(rules(dep::judge_check_run(*ctx_, did(), a, now + 10001), "error"),
            std::vector<std::string>{"checkrun.timeout"});
  EXPECT_EQ(rules(dep::judge_check_run(*ctx_, did(), "crn_nope", now), "error"),
            std::vector<std::string>{"checkrun.exists"});

  // Backwards, and completed too late: both found.
  std::string pb = "/v2/deployments/" + did() + "/check-runs/" + b;
  ASSERT_EQ(call_json("PATCH", pb, {{"status", "running"}}).status, 200);
  ASSERT_EQ(call_json("PATCH", pb, {{"status", "queued"}}).status, 200);
  clock_->advance_ms(20000);
  ASSERT_EQ(call_json("PATCH", pb, {{"status", "completed"}, {"conclusion", "failed"}}).status,
            200);
  auto errors = rules(dep::judge_check_run(*ctx_, did(), b, clock_->now_ms()), "error");
  EXPECT_EQ(errors, (std::vector<std::string>{"checkrun.status-order", "checkrun.timeout"}));
}

// ---- Checks v1
// -----------------------------------------------------------------------------------

TEST_F(DeploymentsTest, LegacyChecksV1) {
  project_and_deployment();
  std::string base = "/v1/deployments/" + did() + "/checks";
  auto missing = call_json("POST", base, {{"name", "perf"}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(message_of(missing).find("blocking: is required"), std::string::npos);
  EXPECT_EQ(call_json("POST", base, {{"name", std::string(101, 'n')}, {"blocking", true}}).status,
            400);
  EXPECT_EQ(call_json("POST", base, {{"name", "perf"}, {"blocking", true}}, "tok_b").status, 404);
  auto r = call_json("POST", base, {{"name", "perf"}, {"blocking", true}, {"path", "/"}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json c = body_of(r);
  std::string id = c["id"];
  EXPECT_EQ(c["status"], "registered");
  EXPECT_EQ(c["deploymentId"], did());
  EXPECT_EQ(c["integrationId"], config_.client_id);
  EXPECT_FALSE(c.contains("installationId"));

  auto list = body_of(call("GET", base))["checks"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], id);
  EXPECT_EQ(call("GET", base, "", "tok_b").status, 404);

  EXPECT_EQ(call_json("PATCH", base + "/" + id, {{"status", "queued"}}).status, 400);
  EXPECT_EQ(call_json("PATCH", base + "/" + id, {{"blocking", false}}).status, 400);
  auto upd =
      call_json("PATCH", base + "/" + id, {{"status", "completed"}, {"conclusion", "failed"}});
  ASSERT_EQ(upd.status, 200) << upd.body;
  EXPECT_EQ(body_of(upd)["conclusion"], "failed");
  EXPECT_EQ(call_json("PATCH", base + "/chk_nope", {{"status", "running"}}).status, 404);

  auto refused = call("POST", base + "/" + id + "/rerequest");
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(message_of(refused).find("not rerequestable"), std::string::npos);
  std::string again = body_of(call_json(
      "POST", base, {{"name", "perf2"}, {"blocking", false}, {"rerequestable", true}}))["id"];
  ASSERT_EQ(
      call_json("PATCH", base + "/" + again, {{"status", "completed"}, {"conclusion", "failed"}})
          .status,
      200);
  EXPECT_EQ(call("POST", base + "/" + again + "/rerequest").status, 200);
  Json stored = doc()["checks"][again];
  EXPECT_EQ(stored["status"], "registered");
  EXPECT_FALSE(stored.contains("conclusion"));
  EXPECT_EQ(stored["rerequestedAt"], at(kNow));
}

// ---- deployment actions
// ----------------------------------------------------------------------------

TEST_F(DeploymentsTest, ActionUpdatesAreRecordedOnTheModelledDeploymentAndJudged) {
  project_and_deployment();
  std::string path =
      "/v1/deployments/" + did() + "/integrations/icfg_a/resources/res_a/actions/branch-db";
  EXPECT_EQ(rules(dep::judge_action(*ctx_, did(), "res_a", "branch-db"), "error"),
            std::vector<std::string>{"action.recorded"});
  Json started = dep::start_action(*ctx_, did(), "res_a", "branch-db");
  EXPECT_EQ(started["startedAt"], at(kNow));
  EXPECT_EQ(started["status"], "pending");
  EXPECT_THROW(dep::start_action(*ctx_, did(), "res_b", "branch-db"), model::ApiError);
  EXPECT_EQ(rules(dep::judge_action(*ctx_, did(), "res_a", "branch-db"), "error"),
            std::vector<std::string>{"action.updates"});

  ASSERT_EQ(call_json("PATCH", path, {{"status", "running"}}).status, 202);
  EXPECT_EQ(rules(dep::judge_action(*ctx_, did(), "res_a", "branch-db"), "error"),
            std::vector<std::string>{"action.terminal"});
  clock_->advance_ms(500);
  ASSERT_EQ(call_json("PATCH", path,
                      {{"status", "succeeded"},
                       {"statusUrl", "sso:https://p.example/branches/1"},
                       {"outcomes",
                        {{{"kind", "resource-secrets"},
                          {"secrets", {{{"name", "DATABASE_URL"}, {"value", "postgres://b"}}}}}}}})
                .status,
            202);
  EXPECT_TRUE(dep::judge_action(*ctx_, did(), "res_a", "branch-db").empty())
      << dep::judge_action(*ctx_, did(), "res_a", "branch-db").dump();
  Json rec = doc()["deployments"][did()]["actions"]["res_a/branch-db"];
  EXPECT_EQ(rec["status"], "succeeded");
  ASSERT_EQ(rec["updates"].size(), 2u);
  EXPECT_EQ(rec["updates"][1]["receivedAt"], at(kNow) + 500);
  // The flat list keeps working as before.
  EXPECT_EQ(doc()["deploymentActions"].size(), 2u);

  // Anything after the terminal status, and empty outcome secrets, are errors.
  ASSERT_EQ(call_json("PATCH", path,
                      {{"status", "running"},
                       {"outcomes", {{{"kind", "resource-secrets"}, {"secrets", Json::array()}}}}})
                .status,
            202);
  auto errors = rules(dep::judge_action(*ctx_, did(), "res_a", "branch-db"), "error");
  EXPECT_EQ(errors, (std::vector<std::string>{"action.status-order", "action.outcomes"}));

  // An action the sandbox never started is recorded, and judged so.
  std::string other =
      "/v1/deployments/" + did() + "/integrations/icfg_a/resources/res_a/actions/seed";
  ASSERT_EQ(call_json("PATCH", other, {{"status", "failed"}}).status, 202);
  EXPECT_EQ(rules(dep::judge_action(*ctx_, did(), "res_a", "seed"), "warning"),
            std::vector<std::string>{"action.started"});
  // A modelled deployment of another installation is not found.
  EXPECT_EQ(call_json("PATCH",
                      "/v1/deployments/" + did() +
                          "/integrations/icfg_b/resources/res_b/actions/branch-db",
                      {{"status", "running"}}, "tok_b")
                .status,
            404);
  // Unmodelled deployments keep the old behaviour.
  EXPECT_EQ(call_json("PATCH",
                      "/v1/deployments/dpl_elsewhere/integrations/icfg_b/resources/res_b/actions/x",
                      {{"status", "running"}}, "tok_b")
                .status,
            202);
  Json payload = dep::action_webhook_payload(*ctx_, did(), "res_a", "branch-db");
  EXPECT_EQ(payload["installationId"], "icfg_a");
  EXPECT_EQ(payload["resourceId"], "res_a");
  EXPECT_EQ(payload["action"], "branch-db");
  EXPECT_EQ(payload["deployment"]["id"], did());
}

// ---- connectable-account OAuth codes
// ----------------------------------------------------------------

class OAuthTest : public DeploymentsTest {
 protected:
  Json new_code(const Json& body) {
    auto r = call_json("POST", "/_sandbox/oauth/codes", body, std::nullopt);
    EXPECT_EQ(r.status, 200) << r.body;
    return body_of(r);
  }
  std::string form(const std::string& code, const std::string& redirect = "https://p.example/cb",
                   const std::string& secret = "") const {
    return "client_id=" + config_.client_id +
           "&client_secret=" + (secret.empty() ? config_.client_secret : secret) + "&code=" + code +
           "&redirect_uri=" + redirect;
  }
  net::Response exchange(const std::string& body) {
    return call("POST", "/v2/oauth/access_token", body, std::nullopt,
                "application/x-www-form-urlencoded");
  }
  static std::string oauth_error(const net::Response& r) {
    Json j = body_of(r);
    return j.is_object() && j.contains("error") && j["error"].is_string()
               ? j["error"].get<std::string>()
               : "<" + r.body + ">";
  }
};

TEST_F(OAuthTest, CodesAreExchangedOnceForAWorkingToken) {
  Json c = new_code({{"installationId", "icfg_a"}, {"redirectUri", "https://p.example/cb"}});
  std::string code = c["code"];
  EXPECT_EQ(c["expiresAt"], at(kNow) + config_.sso_code_ttl_ms);

  auto wrong_secret = exchange(form(code, "https://p.example/cb", "nope"));
  EXPECT_EQ(wrong_secret.status, 401);
  EXPECT_EQ(oauth_error(wrong_secret), "invalid_client");
  auto wrong_redirect = exchange(form(code, "https://evil.example/cb"));
  EXPECT_EQ(wrong_redirect.status, 400);
  EXPECT_EQ(oauth_error(wrong_redirect), "invalid_grant");
  EXPECT_NE(body_of(wrong_redirect)["error_description"].get<std::string>().find("redirect_uri"),
            std::string::npos);
  auto missing = exchange("client_id=" + config_.client_id + "&code=" + code);
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(oauth_error(missing), "invalid_request");

  auto r = exchange(form(code));
  ASSERT_EQ(r.status, 200) << r.body;
  Json b = body_of(r);
  EXPECT_EQ(b["token_type"], "Bearer");
  EXPECT_EQ(b["installation_id"], "icfg_a");
  EXPECT_EQ(b["user_id"], "ua");
  EXPECT_EQ(b["team_id"], "team_a1b2c3a");
  std::string token = b["access_token"];
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a", "", token).status, 200);
  EXPECT_EQ(call("GET", "/v1/installations/icfg_b", "", token).status, 403);
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a", "", "tok_a").status, 200);  // old one too
  // The token never reaches the exchange log.
  for (const auto& ex : log_.list(0, 1000))
    EXPECT_EQ(ex.response_body.find(token), std::string::npos);

  auto reused = exchange(form(code));
  EXPECT_EQ(reused.status, 400);
  EXPECT_EQ(oauth_error(reused), "invalid_grant");
  EXPECT_NE(body_of(reused)["error_description"].get<std::string>().find("already used"),
            std::string::npos);
  EXPECT_EQ(oauth_error(exchange(form("never-issued"))), "invalid_grant");
}

TEST_F(OAuthTest, CodesExpireAndNeedALiveInstallation) {
  std::string code = new_code({{"installationId", "icfg_b"}})["code"];
  clock_->advance_ms(config_.sso_code_ttl_ms + 1);
  auto expired = exchange(form(code, "https://any.example/cb"));
  EXPECT_EQ(expired.status, 400);
  EXPECT_NE(body_of(expired)["error_description"].get<std::string>().find("expired"),
            std::string::npos);
  // Without a redirectUri at creation any redirect_uri is accepted.
  std::string fresh = new_code({{"installationId", "icfg_b"}})["code"];
  EXPECT_EQ(exchange(form(fresh, "https://any.example/cb")).status, 200);

  EXPECT_EQ(call_json("POST", "/_sandbox/oauth/codes", {{"installationId", "icfg_zzz"}}).status,
            404);
  EXPECT_EQ(call_json("POST", "/_sandbox/oauth/codes", {{"redirectUri", 3}}).status, 400);
  std::string doomed = new_code({{"installationId", "icfg_b"}})["code"];
  state_->mutate([](Json& d) { d["installations"]["icfg_b"]["status"] = "finalized"; });
  EXPECT_EQ(oauth_error(exchange(form(doomed, "https://any.example/cb"))), "invalid_grant");
  EXPECT_EQ(call_json("POST", "/_sandbox/oauth/codes", {{"installationId", "icfg_b"}}).status, 409);
}

// ---- control routes
// ------------------------------------------------------------------------------------

TEST_F(DeploymentsTest, ControlRoutesDriveTheModel) {
  auto bad = call_json("POST", "/_sandbox/projects", {{"installationId", "icfg_a"}, {"x", 1}},
                       std::nullopt);
  EXPECT_EQ(bad.status, 400);
  Json fields = body_of(bad)["error"]["fields"];
  EXPECT_EQ(fields.size(), 2u) << bad.body;  // name missing, x not allowed
  auto p = call_json("POST", "/_sandbox/projects", {{"installationId", "icfg_a"}, {"name", "web"}},
                     std::nullopt);
  ASSERT_EQ(p.status, 200) << p.body;
  std::string id = body_of(p)["id"];
  EXPECT_EQ(call_json("POST", "/_sandbox/projects", {{"installationId", "icfg_a"}, {"name", "web"}},
                      std::nullopt)
                .status,
            409);
  EXPECT_EQ(call_json("POST", "/_sandbox/projects/" + id + "/connect", {{"resourceId", "res_b"}},
                      std::nullopt)
                .status,
            404);
  auto conn = call_json("POST", "/_sandbox/projects/" + id + "/connect", {{"resourceId", "res_a"}},
                        std::nullopt);
  ASSERT_EQ(conn.status, 200) << conn.body;
  EXPECT_EQ(body_of(conn)["connectedResources"], Json::array({"res_a"}));
  auto d =
      call_json("POST", "/_sandbox/projects/" + id + "/deployments",
                {{"target", "production"}, {"meta", {{"githubCommitRef", "main"}}}}, std::nullopt);
  ASSERT_EQ(d.status, 200) << d.body;
  std::string did = body_of(d)["id"];
  EXPECT_EQ(call_json("POST", "/_sandbox/projects/" + id + "/deployments", {{"target", "dev"}},
                      std::nullopt)
                .status,
            400);
  ASSERT_EQ(call_json("POST", "/_sandbox/deployments/" + did + "/actions",
                      {{"resourceId", "res_a"}, {"action", "branch-db"}}, std::nullopt)
                .status,
            200);
  ASSERT_EQ(call_json("POST", "/v2/projects/" + id + "/checks", {{"name", "e2e"}}).status, 200);
  auto runs = call("POST", "/_sandbox/deployments/" + did + "/check-runs", "", std::nullopt);
  ASSERT_EQ(runs.status, 200) << runs.body;
  ASSERT_EQ(body_of(runs)["checkRuns"].size(), 1u);
  std::string run = body_of(runs)["checkRuns"][0]["id"];

  auto got = call("GET", "/_sandbox/deployments/" + did, "", std::nullopt);
  ASSERT_EQ(got.status, 200);
  Json rec = body_of(got);
  EXPECT_TRUE(rec["actions"].contains("res_a/branch-db"));
  EXPECT_TRUE(rec["checkRuns"].contains(run));
  EXPECT_EQ(call("GET", "/_sandbox/deployments/dpl_nope", "", std::nullopt).status, 404);

  auto judged =
      call("GET", "/_sandbox/deployments/" + did + "/judge?checkRunId=" + run, "", std::nullopt);
  ASSERT_EQ(judged.status, 200) << judged.body;
  EXPECT_EQ(body_of(judged)["findings"][0]["rule"], "checkrun.incomplete");
  auto judged_action =
      call("GET", "/_sandbox/deployments/" + did + "/judge?resourceId=res_a&action=branch-db", "",
           std::nullopt);
  EXPECT_EQ(body_of(judged_action)["findings"][0]["rule"], "action.updates");
  EXPECT_EQ(call("GET", "/_sandbox/deployments/" + did + "/judge", "", std::nullopt).status, 400);
}

// No input, however malformed, crashes one of these handlers or produces a 5xx.
TEST_F(DeploymentsTest, NeverFailsOnGarbage) {
  project_and_deployment();
  ASSERT_EQ(call_json("POST", "/v2/projects/web/checks", {{"name", "e2e"}}).status, 200);
  std::string run = dep::start_check_runs(*ctx_, did())[0]["id"];
  std::string chk = body_of(call_json("POST", "/v1/deployments/" + did() + "/checks",
                                      {{"name", "p"}, {"blocking", true}}))["id"];
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"POST", "/v2/projects/web/checks"},
      {"PATCH", "/v2/deployments/" + did() + "/check-runs/" + run},
      {"POST", "/v1/deployments/" + did() + "/checks"},
      {"PATCH", "/v1/deployments/" + did() + "/checks/" + chk},
      {"POST", "/v2/oauth/access_token"},
  };
  const std::vector<std::string> bodies = {
      "",
      "null",
      "[1]",
      "{}",
      "{\"a\":",
      R"({"name":[],"source":"x","targets":{},"timeout":1e300,"requires":null})",
      R"({"status":"completed","conclusion":7,"completedAt":-1,"output":[]})",
      R"({"source":{"kind":"integration","externalResourceId":""},"name":"n","timeout":-5})",
      R"({"code":[],"client_id":{},"client_secret":1,"redirect_uri":null})",
  };
  for (const auto& [method, path] : endpoints) {
    for (const auto& b : bodies) {
      auto r = call(method, path, b);
      EXPECT_LT(r.status, 500) << method << " " << path << " " << b << " -> " << r.body;
      EXPECT_GE(r.status, 200);
    }
  }
}

}  // namespace
}  // namespace wharf::sandbox
