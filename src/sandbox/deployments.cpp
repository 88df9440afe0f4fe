#include "sandbox/deployments.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "util/crypto.h"
#include "util/ids.h"

namespace wharf::sandbox::deployments {
namespace {

using model::ApiError;

std::string str_of(const Json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t int_of(const Json& obj, const char* key, int64_t fallback = 0) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return fallback;
  return it->is_number_float() ? static_cast<int64_t>(it->get<double>()) : it->get<int64_t>();
}

// A member object of `doc`, made an object if it is missing or of another type.
Json& object_at(Json& doc, const char* key) {
  Json& v = doc[key];
  if (!v.is_object()) v = Json::object();
  return v;
}

const Json* member(const Json& obj, const std::string& key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? &*it : nullptr;
}

const Json& installation(const Json& doc, const std::string& icfg) {
  const Json* insts = member(doc, "installations");
  const Json* inst = insts ? member(*insts, icfg) : nullptr;
  if (!inst) throw ApiError::not_found("installation " + icfg + " not found");
  return *inst;
}

bool live_resource(const Json& doc, const std::string& icfg, const std::string& rid) {
  const Json* rs = member(doc, "resources");
  const Json* mine = rs ? member(*rs, icfg) : nullptr;
  const Json* r = mine ? member(*mine, rid) : nullptr;
  return r && !r->value("deleted", false);
}

Json& project_ref(Json& doc, const std::string& project_id) {
  Json& all = object_at(doc, "projects");
  if (!all.contains(project_id) || !all[project_id].is_object())
    throw ApiError::not_found("project " + project_id + " not found");
  return all[project_id];
}

Json& deployment_ref(Json& doc, const std::string& deployment_id) {
  Json& all = object_at(doc, "deployments");
  if (!all.contains(deployment_id) || !all[deployment_id].is_object())
    throw ApiError::not_found("deployment " + deployment_id + " not found");
  return all[deployment_id];
}

const Json& deployment_ref(const Json& doc, const std::string& deployment_id) {
  const Json* all = member(doc, "deployments");
  const Json* d = all ? member(*all, deployment_id) : nullptr;
  if (!d) throw ApiError::not_found("deployment " + deployment_id + " not found");
  return *d;
}

// A DNS label from a project name: lowercase letters, digits and '-'.
std::string label_of(const std::string& name) {
  std::string out;
  for (char ch : name) {
    unsigned char c = static_cast<unsigned char>(ch);
    out += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '-';
  }
  if (out.size() > 40) out.resize(40);
  return out.empty() ? "project" : out;
}

Json finding(const char* severity, const char* rule, const std::string& message) {
  return Json{{"severity", severity}, {"rule", rule}, {"message", message}};
}

bool is_url_or_sso(const std::string& s) {
  return s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0 || s.rfind("sso:", 0) == 0;
}

int status_rank(const std::string& s) {
  if (s == "queued") return 0;
  if (s == "running") return 1;
  if (s == "completed") return 2;
  return -1;
}

std::string team_of(const Json& doc, const std::string& icfg) {
  const Json* insts = member(doc, "installations");
  const Json* inst = insts ? member(*insts, icfg) : nullptr;
  return inst ? str_of(*inst, "accountId") : "";
}

Json run_summary(const Json& run) {
  Json out = {{"id", run["id"]},
              {"checkId", run["checkId"]},
              {"source", run["source"]},
              {"deploymentId", run["deploymentId"]}};
  if (run.contains("timeout")) out["timeout"] = run["timeout"];
  return out;
}

}  // namespace

// ---- lookups and renderings ------------------------------------------------------------------

const Json* find_project(const Json& doc, const std::string& installation_id,
                         const std::string& id_or_name) {
  const Json* all = member(doc, "projects");
  if (!all) return nullptr;
  if (const Json* p = member(*all, id_or_name);
      p && str_of(*p, "installationId") == installation_id)
    return p;
  for (const auto& p : *all)
    if (p.is_object() && str_of(p, "installationId") == installation_id &&
        str_of(p, "name") == id_or_name)
      return &p;
  return nullptr;
}

const Json* find_deployment(const Json& doc, const std::string& installation_id,
                            const std::string& id_or_url) {
  const Json* all = member(doc, "deployments");
  if (!all) return nullptr;
  if (const Json* d = member(*all, id_or_url); d && str_of(*d, "installationId") == installation_id)
    return d;
  std::string url = id_or_url;
  for (const char* scheme : {"https://", "http://"})
    if (url.rfind(scheme, 0) == 0) url = url.substr(std::string(scheme).size());
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.empty()) return nullptr;
  for (const auto& d : *all)
    if (d.is_object() && str_of(d, "installationId") == installation_id && str_of(d, "url") == url)
      return &d;
  return nullptr;
}

Json stored_project(const Context& ctx, const std::string& project_id) {
  return ctx.state.read([&](const Json& doc) {
    const Json* all = member(doc, "projects");
    const Json* p = all ? member(*all, project_id) : nullptr;
    return p ? *p : Json();
  });
}

Json stored_deployment(const Context& ctx, const std::string& deployment_id) {
  return ctx.state.read([&](const Json& doc) {
    const Json* all = member(doc, "deployments");
    const Json* d = all ? member(*all, deployment_id) : nullptr;
    return d ? *d : Json();
  });
}

std::string action_key(const std::string& resource_id, const std::string& action) {
  return resource_id + "/" + action;
}

Json project_view(const Json& p) {
  return Json{{"id", str_of(p, "id")},
              {"name", str_of(p, "name")},
              {"accountId", str_of(p, "accountId")},
              {"createdAt", int_of(p, "createdAt")}};
}

Json deployment_view(const Json& d) {
  std::string target = str_of(d, "target");
  Json meta = d.contains("meta") && d["meta"].is_object() ? d["meta"] : Json::object();
  return Json{{"id", str_of(d, "id")},
              {"uid", str_of(d, "id")},
              {"url", str_of(d, "url")},
              {"name", str_of(d, "name")},
              {"projectId", str_of(d, "projectId")},
              {"target", target == "production" ? Json(target) : Json(nullptr)},
              {"readyState", str_of(d, "readyState")},
              {"meta", meta},
              {"createdAt", int_of(d, "createdAt")}};
}

Json check_view(const Json& c, const std::string& owner_id) {
  Json source = c.contains("source") && c["source"].is_object() ? c["source"] : Json::object();
  return Json{{"id", str_of(c, "id")},
              {"name", str_of(c, "name")},
              {"projectId", str_of(c, "projectId")},
              {"ownerId", owner_id},
              {"requires", str_of(c, "requires")},
              {"blocks", str_of(c, "blocks")},
              {"targets", c.contains("targets") ? c["targets"] : Json::array()},
              {"timeout", int_of(c, "timeout", kDefaultCheckTimeoutMs)},
              {"isRerequestable", c.value("isRerequestable", false)},
              {"source", source},
              {"sourceKind", str_of(source, "kind")},
              {"createdAt", int_of(c, "createdAt")},
              {"updatedAt", int_of(c, "updatedAt")}};
}

Json check_run_view(const Json& run) {
  Json out = run;
  out.erase("updates");
  out.erase("installationId");
  return out;
}

Json check_v1_view(const Json& c, const std::string& integration_id) {
  Json out = c;
  out.erase("api");
  out.erase("installationId");
  out["integrationId"] = integration_id;
  return out;
}

// ---- what the driver does ----------------------------------------------------------------------

Json create_project(Context& ctx, const std::string& installation_id, const std::string& name) {
  if (name.empty())
    throw ApiError::validation("a project needs a name", {{"name", "must not be empty"}});
  if (name.size() > 100)
    throw ApiError::validation("project name too long",
                               {{"name", "must be at most 100 characters"}});
  int64_t now = ctx.clock.now_ms();
  return ctx.state.mutate([&](Json& doc) {
    const Json& inst = installation(doc, installation_id);
    std::string status = str_of(inst, "status");
    if (status == "finalized" || status == "pending_deletion")
      throw ApiError(409, "conflict",
                     "installation " + installation_id + " is " + status + "; it gets no projects",
                     {{"installationId", "is " + status}});
    if (find_project(doc, installation_id, name))
      throw ApiError(409, "conflict", "the team already has a project named " + name,
                     {{"name", "is taken in this team"}});
    std::string id = util::new_id("prj");
    Json p = {{"id", id},
              {"name", name},
              {"accountId", str_of(inst, "accountId")},
              {"installationId", installation_id},
              {"connectedResources", Json::array()},
              {"createdAt", now}};
    object_at(doc, "projects")[id] = p;
    return p;
  });
}

Json connect_resource(Context& ctx, const std::string& project_id, const std::string& resource_id) {
  return ctx.state.mutate([&](Json& doc) {
    Json& p = project_ref(doc, project_id);
    std::string icfg = str_of(p, "installationId");
    if (!live_resource(doc, icfg, resource_id))
      throw ApiError::not_found("resource " + resource_id + " not found in installation " + icfg);
    Json& list = p["connectedResources"];
    if (!list.is_array()) list = Json::array();
    if (std::find(list.begin(), list.end(), Json(resource_id)) == list.end())
      list.push_back(resource_id);
    return p;
  });
}

Json create_deployment(Context& ctx, const std::string& project_id, const std::string& target,
                       const Json& meta) {
  model::Checker check;
  if (target != "preview" && target != "production")
    check.add("target", "must be one of \"preview\", \"production\" (got \"" + target + "\")");
  if (!meta.is_null() && !meta.is_object()) check.add("meta", "must be an object of strings");
  if (meta.is_object())
    for (auto it = meta.begin(); it != meta.end(); ++it)
      if (!it->is_string()) check.add("meta." + it.key(), "must be a string");
  check.throw_if_failed("deployment");
  int64_t now = ctx.clock.now_ms();
  return ctx.state.mutate([&](Json& doc) {
    const Json& p = project_ref(doc, project_id);
    std::string id = util::new_id("dpl");
    std::string name = str_of(p, "name");
    Json m = meta.is_object() ? meta : Json::object();
    if (!m.contains("githubCommitSha")) m["githubCommitSha"] = util::to_hex(util::random_bytes(20));
    if (!m.contains("githubCommitRef"))
      m["githubCommitRef"] = target == "production" ? "main" : "sandbox-preview";
    Json d = {{"id", id},
              {"url", label_of(name) + "-" + util::new_id("x").substr(2, 9) + ".vercel.app"},
              {"name", name},
              {"projectId", project_id},
              {"installationId", str_of(p, "installationId")},
              {"target", target},
              {"meta", m},
              {"readyState", "BUILDING"},
              {"createdAt", now},
              {"actions", Json::object()},
              {"checkRuns", Json::object()}};
    object_at(doc, "deployments")[id] = d;
    return d;
  });
}

Json set_ready_state(Context& ctx, const std::string& deployment_id, const std::string& state) {
  static const std::set<std::string> kStates = {"QUEUED", "INITIALIZING", "BUILDING",
                                                "READY",  "ERROR",        "CANCELED"};
  if (!kStates.count(state))
    throw ApiError::validation("unknown readyState " + state,
                               {{"readyState",
                                 "must be one of QUEUED, INITIALIZING, BUILDING, "
                                 "READY, ERROR, CANCELED"}});
  return ctx.state.mutate([&](Json& doc) {
    Json& d = deployment_ref(doc, deployment_id);
    d["readyState"] = state;
    return d;
  });
}

Json start_action(Context& ctx, const std::string& deployment_id, const std::string& resource_id,
                  const std::string& action) {
  if (action.empty())
    throw ApiError::validation("an action needs its slug", {{"action", "must not be empty"}});
  int64_t now = ctx.clock.now_ms();
  return ctx.state.mutate([&](Json& doc) {
    Json& d = deployment_ref(doc, deployment_id);
    std::string icfg = str_of(d, "installationId");
    if (!live_resource(doc, icfg, resource_id))
      throw ApiError::not_found("resource " + resource_id + " not found in installation " + icfg);
    Json rec = {{"resourceId", resource_id},
                {"action", action},
                {"startedAt", now},
                {"status", "pending"},
                {"updates", Json::array()}};
    object_at(d, "actions")[action_key(resource_id, action)] = rec;
    return rec;
  });
}

Json start_check_runs(Context& ctx, const std::string& deployment_id,
                      const std::string& only_check) {
  int64_t now = ctx.clock.now_ms();
  return ctx.state.mutate([&](Json& doc) {
    Json& d = deployment_ref(doc, deployment_id);
    std::string project = str_of(d, "projectId");
    std::string target = str_of(d, "target");
    Json out = Json::array();
    Json checks =
        doc.contains("checks") && doc["checks"].is_object() ? doc["checks"] : Json::object();
    for (const auto& c : checks) {
      if (!c.is_object() || str_of(c, "api") != "v2" || str_of(c, "projectId") != project) continue;
      if (!only_check.empty()) {
        if (str_of(c, "id") != only_check) continue;
      } else if (c.contains("targets") && c["targets"].is_array() && !c["targets"].empty() &&
                 std::find(c["targets"].begin(), c["targets"].end(), Json(target)) ==
                     c["targets"].end())
        continue;
      Json source = {{"kind", "integration"},
                     {"integrationConfigurationId", str_of(c, "installationId")}};
      if (c.contains("source") && c["source"].is_object())
        if (std::string ext = str_of(c["source"], "externalResourceId"); !ext.empty())
          source["externalResourceId"] = ext;
      std::string id = util::new_id("crn");
      Json run = {{"id", id},
                  {"checkId", str_of(c, "id")},
                  {"name", str_of(c, "name")},
                  {"deploymentId", deployment_id},
                  {"installationId", str_of(c, "installationId")},
                  {"source", source},
                  {"timeout", int_of(c, "timeout", kDefaultCheckTimeoutMs)},
                  {"status", "queued"},
                  {"createdAt", now},
                  {"updatedAt", now},
                  {"updates", Json::array()}};
      object_at(d, "checkRuns")[id] = run;
      out.push_back(run_summary(run));
    }
    return out;
  });
}

// ---- judges
// --------------------------------------------------------------------------------------

Json judge_action(Context& ctx, const std::string& deployment_id, const std::string& resource_id,
                  const std::string& action) {
  return ctx.state.read([&](const Json& doc) {
    const Json& d = deployment_ref(doc, deployment_id);
    Json out = Json::array();
    std::string what = "action " + action + " of resource " + resource_id + " on " + deployment_id;
    const Json* actions = member(d, "actions");
    const Json* rec = actions ? member(*actions, action_key(resource_id, action)) : nullptr;
    if (!rec) {
      out.push_back(finding("error", "action.recorded",
                            what + " was neither started by the sandbox nor reported"));
      return out;
    }
    if (!rec->contains("startedAt"))
      out.push_back(finding("warning", "action.started",
                            what + " was reported but the sandbox never sent "
                                   "deployment.integration.action.start for it"));
    const Json empty = Json::array();
    const Json& updates =
        rec->contains("updates") && (*rec)["updates"].is_array() ? (*rec)["updates"] : empty;
    if (updates.empty()) {
      out.push_back(finding("error", "action.updates",
                            what + " got no update (PATCH .../actions/" + action +
                                " with status running, then succeeded or failed)"));
      return out;
    }
    std::string terminal;
    for (size_t i = 0; i < updates.size(); ++i) {
      const Json& body = updates[i].contains("body") ? updates[i]["body"] : Json::object();
      std::string at = "update " + std::to_string(i + 1);
      std::string status = str_of(body, "status");
      if (!terminal.empty()) {
        out.push_back(finding("error", "action.status-order",
                              at + " came after the terminal status " + terminal +
                                  ": nothing may follow succeeded/failed"));
      } else if (status == "succeeded" || status == "failed") {
        terminal = status;
      } else if (!status.empty() && status != "running") {
        out.push_back(
            finding("error", "action.status-order",
                    at + " has status \"" + status + "\": only running, then succeeded or failed"));
      }
      if (body.contains("statusUrl")) {
        std::string url = body["statusUrl"].is_string() ? body["statusUrl"].get<std::string>() : "";
        if (!is_url_or_sso(url))
          out.push_back(finding(
              "error", "action.status-url",
              at + ": statusUrl " + body["statusUrl"].dump() + " must match ^https?:// or ^sso:"));
      }
      if (!body.contains("outcomes")) continue;
      const Json& outcomes = body["outcomes"];
      if (!outcomes.is_array()) {
        out.push_back(finding("error", "action.outcomes", at + ": outcomes must be an array"));
        continue;
      }
      for (size_t k = 0; k < outcomes.size(); ++k) {
        const Json& o = outcomes[k];
        std::string p = at + ": outcomes[" + std::to_string(k) + "]";
        if (!o.is_object() || str_of(o, "kind") != "resource-secrets") {
          out.push_back(finding("error", "action.outcomes",
                                p + " must be {kind: \"resource-secrets\", secrets}"));
          continue;
        }
        if (!o.contains("secrets") || !o["secrets"].is_array() || o["secrets"].empty()) {
          out.push_back(finding("error", "action.outcomes",
                                p + ".secrets must be a non-empty array of {name, value}"));
          continue;
        }
        std::set<std::string> names;
        for (size_t j = 0; j < o["secrets"].size(); ++j) {
          const Json& s = o["secrets"][j];
          std::string sp = p + ".secrets[" + std::to_string(j) + "]";
          if (!s.is_object() || str_of(s, "name").empty() || !s.contains("value") ||
              !s["value"].is_string()) {
            out.push_back(finding("error", "action.outcomes",
                                  sp + " must be {name: non-empty string, value: string}"));
            continue;
          }
          if (!names.insert(str_of(s, "name")).second)
            out.push_back(finding("warning", "action.outcomes",
                                  sp + " repeats the name " + str_of(s, "name")));
        }
      }
    }
    if (terminal.empty())
      out.push_back(finding("error", "action.terminal",
                            what + " never reached succeeded or failed (last status: " +
                                str_of(*rec, "status") + ")"));
    return out;
  });
}

Json judge_check_run(Context& ctx, const std::string& deployment_id, const std::string& run_id,
                     int64_t now_ms) {
  return ctx.state.read([&](const Json& doc) {
    const Json& d = deployment_ref(doc, deployment_id);
    Json out = Json::array();
    const Json* runs = member(d, "checkRuns");
    const Json* run = runs ? member(*runs, run_id) : nullptr;
    if (!run) {
      out.push_back(finding("error", "checkrun.exists",
                            "deployment " + deployment_id + " has no check run " + run_id));
      return out;
    }
    std::string what = "check run " + run_id + " (" + str_of(*run, "name") + ")";
    const Json empty = Json::array();
    const Json& updates =
        run->contains("updates") && (*run)["updates"].is_array() ? (*run)["updates"] : empty;
    int rank = 0;  // queued
    int64_t completed_at = -1;
    for (size_t i = 0; i < updates.size(); ++i) {
      const Json& body = updates[i].contains("body") ? updates[i]["body"] : Json::object();
      std::string at = "update " + std::to_string(i + 1);
      if (completed_at >= 0) {
        out.push_back(
            finding("error", "checkrun.status-order", at + " came after the run was completed"));
        continue;
      }
      std::string status = str_of(body, "status");
      int r = status.empty() ? rank : status_rank(status);
      if (r < rank)
        out.push_back(finding("error", "checkrun.status-order",
                              at + " moved the status back to \"" + status +
                                  "\" (order: queued → running → completed)"));
      rank = std::max(rank, r);
      bool has_conclusion = body.contains("conclusion");
      if (r == 2) {
        if (!has_conclusion)
          out.push_back(finding("error", "checkrun.conclusion",
                                at + " completed the run without a conclusion"));
        completed_at = int_of(updates[i], "receivedAt");
      } else if (has_conclusion) {
        out.push_back(finding("error", "checkrun.conclusion",
                              at + " sent a conclusion before the run was completed"));
      }
    }
    int64_t deadline = int_of(*run, "createdAt") + int_of(*run, "timeout", kDefaultCheckTimeoutMs);
    if (completed_at >= 0) {
      if (completed_at > deadline)
        out.push_back(finding("error", "checkrun.timeout",
                              what + " completed " + std::to_string(completed_at - deadline) +
                                  " ms after its timeout of " +
                                  std::to_string(int_of(*run, "timeout")) + " ms"));
    } else if (now_ms > deadline) {
      out.push_back(finding("error", "checkrun.timeout",
                            what + " was not completed within its timeout of " +
                                std::to_string(int_of(*run, "timeout")) + " ms"));
    } else {
      out.push_back(
          finding("warning", "checkrun.incomplete",
                  what + " is not completed yet (status " + str_of(*run, "status") + ")"));
    }
    return out;
  });
}

// ---- webhook payloads
// ------------------------------------------------------------------------------

Json action_webhook_payload(Context& ctx, const std::string& deployment_id,
                            const std::string& resource_id, const std::string& action) {
  return ctx.state.read([&](const Json& doc) {
    const Json& d = deployment_ref(doc, deployment_id);
    std::string icfg = str_of(d, "installationId");
    return Json{{"installationId", icfg},
                {"configuration", {{"id", icfg}}},
                {"team", {{"id", team_of(doc, icfg)}}},
                {"resourceId", resource_id},
                {"action", action},
                {"deployment",
                 {{"id", deployment_id},
                  {"url", str_of(d, "url")},
                  {"name", str_of(d, "name")},
                  {"meta", d.contains("meta") ? d["meta"] : Json::object()}}},
                {"project", {{"id", str_of(d, "projectId")}}}};
  });
}

Json checkrun_webhook_payload(Context& ctx, const std::string& deployment_id,
                              const std::string& run_id) {
  return ctx.state.read([&](const Json& doc) {
    const Json& d = deployment_ref(doc, deployment_id);
    const Json* runs = member(d, "checkRuns");
    const Json* run = runs ? member(*runs, run_id) : nullptr;
    if (!run)
      throw ApiError::not_found("deployment " + deployment_id + " has no check run " + run_id);
    std::string icfg = str_of(*run, "installationId");
    return Json{{"installationId", icfg},
                {"configuration", {{"id", icfg}}},
                {"team", {{"id", team_of(doc, icfg)}}},
                {"checkRun", run_summary(*run)},
                {"deployment",
                 {{"id", deployment_id},
                  {"url", str_of(d, "url")},
                  {"meta", d.contains("meta") ? d["meta"] : Json::object()}}},
                {"project", {{"id", str_of(d, "projectId")}}}};
  });
}

}  // namespace wharf::sandbox::deployments
