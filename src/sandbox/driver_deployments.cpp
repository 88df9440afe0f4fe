// The deployment flow (flows.md F17): Vercel deploying a project the resource is connected
// to. The sandbox connects the resource to a project (integration-resource.project-connected,
// on which a partner may register checks), creates a deployment (deployment.created), starts
// the resource's deployment integration action (deployment.integration.action.start) and opens
// a run of every check the partner registered (deployment.checkrun.start); then it waits for
// the partner's PATCHes (§10.1, §10.2) and judges them with sandbox/deployments.h: status
// order, outcomes shape, conclusions, timeouts. Optionally it cancels and cleans up the action.
#include <chrono>
#include <functional>
#include <thread>

#include "sandbox/deployments.h"
#include "sandbox/driver_internal.h"

namespace wharf::sandbox::detail::flows {

namespace {

constexpr int64_t kDefaultWaitMs = 15000;
// How long a partner has to register its checks after project-connected (it may do so from a
// background job, after acknowledging the webhook).
constexpr int64_t kDefaultChecksWaitMs = 3000;

// Polls `done` every 50 ms of real time until it is true or `wait_ms` has passed.
bool wait_until(int64_t wait_ms, const std::function<bool()>& done) {
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(wait_ms);
  while (!done()) {
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// A judge's findings as the result shows them ("rule: message", warnings marked as advice);
// returns whether any was an error.
bool add_judged(const Json& judged, const std::string& prefix, std::vector<std::string>& out) {
  bool error = false;
  for (const auto& f : judged) {
    bool is_error = f.value("severity", "") == "error";
    error = error || is_error;
    out.push_back(prefix + f.value("rule", "") + ": " + (is_error ? "" : "(advice) ") +
                  f.value("message", ""));
  }
  return error;
}

size_t project_checks(Context& ctx, const std::string& project_id) {
  return ctx.state.read([&](const Json& doc) {
    size_t n = 0;
    if (const Json* all = member(doc, "checks"); all && all->is_object())
      for (const auto& c : *all)
        if (c.value("api", "") == "v2" && c.value("projectId", "") == project_id) ++n;
    return n;
  });
}

}  // namespace

Json deploy(DriverImpl& d, const Json& params) {
  Params a(params, "deploy",
           {"installationId", "resourceId", "projectId", "projectName", "target", "meta", "action",
            "cancel", "cleanup", "rerequest", "waitMs", "checksWaitMs"});
  auto icfg = a.str("installationId", true);
  auto rid = a.str("resourceId", true);
  auto project_id = a.str("projectId", false);
  auto project_name = a.str("projectName", false);
  auto target = a.one_of("target", false, {"preview", "production"});
  const Json* meta = a.object("meta", false);
  auto action = a.str("action", false);
  auto cancel = a.boolean("cancel");
  auto cleanup = a.boolean("cleanup");
  auto rerequest = a.boolean("rerequest");
  auto wait_ms = a.integer("waitMs", false);
  auto checks_wait_ms = a.integer("checksWaitMs", false);
  for (const auto& [key, v] : {std::pair{"waitMs", wait_ms}, {"checksWaitMs", checks_wait_ms}})
    if (v && (*v < 0 || *v > 600000)) a.add(key, "must be between 0 and 600000");
  if (project_id && project_name) a.add("projectName", "is only for a new project (no projectId)");
  if (!action && cancel.value_or(false)) a.add("cancel", "needs the action to cancel (action)");
  if (!action && cleanup.value_or(false)) a.add("cleanup", "needs the action to clean up (action)");
  a.done();
  Context& ctx = d.ctx;
  Json inst = d.require_installation(*icfg, true);
  Json res = d.resource(*icfg, *rid);
  if (!res.is_object() || res.value("deleted", false))
    throw ApiError(404, "not_found", "no resource " + *rid + " in " + *icfg,
                   {{"resourceId", "is not a live resource of the installation"}});

  Outcome o;
  bool ok = true;
  // One webhook, delivered now; a refusal is a finding and the step's answer.
  auto send = [&](const std::string& type, const Json& payload) {
    Json delivery = d.webhooks.deliver_now("deploy", type, payload, false);
    if (delivery.contains("exchange") && delivery["exchange"].is_number_integer())
      o.exchanges.push_back(delivery["exchange"].get<int64_t>());
    for (const auto& f : delivery.value("findings", Json::array()))
      if (f.is_string()) o.findings.push_back(type + ": " + f.get<std::string>());
    if (delivery.value("ok", false)) return true;
    int status =
        delivery.value("status", Json()).is_number_integer() ? delivery["status"].get<int>() : 0;
    o.findings.push_back(type + ": the webhook was not acknowledged (" +
                         (status ? "status " + std::to_string(status) : "no answer") + ")");
    ok = false;
    return false;
  };

  // 1. The project, with the resource connected to it.
  Json project;
  bool connected_before = false;
  if (project_id) {
    project = deployments::stored_project(ctx, *project_id);
    if (!project.is_object() || project.value("installationId", "") != *icfg)
      throw ApiError(404, "not_found", "no project " + *project_id + " in " + *icfg,
                     {{"projectId", "is not a project of the installation"}});
    for (const auto& r : project.value("connectedResources", Json::array()))
      connected_before = connected_before || r == *rid;
  } else {
    project = deployments::create_project(
        ctx, *icfg, project_name.value_or("sandbox-project-" + random_alnum(8)));
  }
  std::string pid = project.value("id", "");
  project = deployments::connect_resource(ctx, pid, *rid);
  if (!connected_before) {
    send("integration-resource.project-connected",
         {{"installationId", *icfg},
          {"configuration", {{"id", *icfg}}},
          {"team", {{"id", inst.value("accountId", Json())}}},
          {"resourceId", *rid},
          {"projectId", pid},
          {"project", {{"id", pid}, {"name", project.value("name", "")}}},
          {"targets", {"production", "preview", "development"}}});
    // Checks are registered after the acknowledgement, often from a background job.
    wait_until(checks_wait_ms.value_or(kDefaultChecksWaitMs),
               [&] { return project_checks(ctx, pid) > 0; });
  }

  // 2. The deployment.
  Json dep =
      deployments::create_deployment(ctx, pid, target.value_or("preview"), meta ? *meta : Json());
  std::string did = dep.value("id", "");
  send("deployment.created", {{"installationId", *icfg},
                              {"configuration", {{"id", *icfg}}},
                              {"team", {{"id", inst.value("accountId", Json())}}},
                              {"deployment",
                               {{"id", did},
                                {"url", dep.value("url", "")},
                                {"name", dep.value("name", "")},
                                {"meta", dep.value("meta", Json::object())}}},
                              {"project", {{"id", pid}}},
                              {"target", dep.value("target", Json())},
                              {"links",
                               {{"deployment", "https://vercel.com/sandbox/" + pid + "/" + did},
                                {"project", "https://vercel.com/sandbox/" + pid}}}});

  // 3. The action and the check runs start together, as on Vercel.
  std::string key = action ? deployments::action_key(*rid, *action) : "";
  bool action_sent = false;
  if (action) {
    deployments::start_action(ctx, did, *rid, *action);
    action_sent = send("deployment.integration.action.start",
                       deployments::action_webhook_payload(ctx, did, *rid, *action));
  }
  Json runs = deployments::start_check_runs(ctx, did);
  Json sent_runs = Json::array();
  for (const auto& run : runs) {
    std::string run_id = run.value("id", "");
    if (send("deployment.checkrun.start", deployments::checkrun_webhook_payload(ctx, did, run_id)))
      sent_runs.push_back(run_id);
  }

  // 4. The partner's reports: until the action is terminal and every run completed.
  auto runs_completed = [&](const Json& ids) {
    Json rec = deployments::stored_deployment(ctx, did);
    const Json* open = member(rec, "checkRuns");
    for (const auto& run_id : ids) {
      const Json* run = open ? member(*open, run_id.get<std::string>()) : nullptr;
      if (!run || str_member(*run, "status") != "completed") return false;
    }
    return true;
  };
  auto settled = [&] {
    Json rec = deployments::stored_deployment(ctx, did);
    if (action_sent) {
      const Json* acts = member(rec, "actions");
      const Json* act = acts ? member(*acts, key) : nullptr;
      std::string status = act ? str_member(*act, "status") : "";
      if (status != "succeeded" && status != "failed") return false;
    }
    return runs_completed(sent_runs);
  };
  wait_until(wait_ms.value_or(kDefaultWaitMs), settled);

  // 4b. The user asks for every check again: a new run each, sent as
  // deployment.check-rerequested (with the check and the new run), waited for like the first.
  if (rerequest.value_or(false)) {
    Json first = runs;
    Json again = Json::array();
    for (const auto& run : first) {
      Json opened = deployments::start_check_runs(ctx, did, run.value("checkId", ""));
      for (const auto& r : opened) {
        std::string run_id = r.value("id", "");
        Json payload = deployments::checkrun_webhook_payload(ctx, did, run_id);
        payload["check"] = {{"id", r.value("checkId", "")}};
        if (send("deployment.check-rerequested", payload)) again.push_back(run_id);
        runs.push_back(r);
      }
    }
    wait_until(wait_ms.value_or(kDefaultWaitMs), [&] { return runs_completed(again); });
  }

  // What the partner reported, as of now (reports arriving later are not judged).
  int64_t now = ctx.clock.now_ms();
  Json rec = deployments::stored_deployment(ctx, did);
  Json actions = Json::array();
  if (action) {
    Json judged = deployments::judge_action(ctx, did, *rid, *action);
    std::vector<std::string> findings;
    if (add_judged(judged, "action " + *action + ": ", findings)) ok = false;
    const Json* acts = member(rec, "actions");
    const Json* act = acts ? member(*acts, key) : nullptr;
    actions.push_back({{"resourceId", *rid},
                       {"action", *action},
                       {"status", act ? act->value("status", Json()) : Json()},
                       {"updates", act ? act->value("updates", Json::array()).size() : 0},
                       {"findings", findings},
                       {"judged", judged}});
  }
  Json check_runs = Json::array();
  for (const auto& run : runs) {
    std::string run_id = run.value("id", "");
    Json judged = deployments::judge_check_run(ctx, did, run_id, now);
    std::vector<std::string> findings;
    if (add_judged(judged, "check run " + run_id + ": ", findings)) ok = false;
    const Json* all = member(rec, "checkRuns");
    const Json* r = all ? member(*all, run_id) : nullptr;
    check_runs.push_back({{"id", run_id},
                          {"checkId", run.value("checkId", Json())},
                          {"status", r ? r->value("status", Json()) : Json()},
                          {"conclusion", r ? r->value("conclusion", Json()) : Json()},
                          {"findings", findings},
                          {"judged", judged}});
  }
  bool runs_passed = true;
  for (const auto& r : check_runs) runs_passed = runs_passed && r["conclusion"] == "succeeded";
  Json deployment = deployments::set_ready_state(ctx, did, runs_passed ? "READY" : "ERROR");

  // 5. What happens to the action afterwards, when asked.
  if (action && cancel.value_or(false))
    send("deployment.integration.action.cancel",
         deployments::action_webhook_payload(ctx, did, *rid, *action));
  if (action && cleanup.value_or(false))
    send("deployment.integration.action.cleanup",
         deployments::action_webhook_payload(ctx, did, *rid, *action));

  o.out["ok"] = ok;
  o.out["projectId"] = pid;
  o.out["deploymentId"] = did;
  o.out["deployment"] = deployments::deployment_view(deployment);
  o.out["actions"] = actions;
  o.out["checkRuns"] = check_runs;
  return o.finish();
}

}  // namespace wharf::sandbox::detail::flows
