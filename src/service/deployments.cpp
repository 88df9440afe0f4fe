#include "service/deployments.h"

#include "util/crypto.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::Json;

namespace {

// A string member of an object (nested with a second key), or "".
std::string str(const Json& j, const char* key, const char* inner = nullptr) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (inner) return str(*it, inner);
  return it->is_string() ? it->get<std::string>() : "";
}

net::HttpResult done(int status = 204) {
  net::HttpResult r;
  r.status = status;
  return r;
}

// A handler's item: a call whose path is the report's and whose body is the handler's input.
vercel::Call handler_call(vercel::Call call, const std::string& kind, Json input) {
  call.kind = kind;
  call.body = std::move(input);
  return call;
}

// Drops a branch from the outbox's handler, after what is queued before it in the lane.
void enqueue_cleanup(store::WriteTx& tx, const std::string& installation_id,
                     const std::string& branch_id, int64_t now_ms) {
  vercel::Outbox::enqueue(
      tx, installation_id,
      vercel::Call{"deployment.cleanup", "POST", "/", Json{{"branchId", branch_id}}}, now_ms);
}

}  // namespace

DeploymentService::DeploymentService(store::Store& store, ResourceService& resources,
                                     const util::Clock& clock, Options options)
    : store_(store), resources_(resources), clock_(clock), options_(std::move(options)) {
  // A deleted resource's branches go with it (after the reports already queued).
  ResourceService::Hooks hooks;
  hooks.deleted = [](store::WriteTx& tx, const store::ResourceRow& row) {
    for (const auto& b : tx.branches_of(row.id)) {
      if (b.status == "dropped") continue;
      tx.delete_credentials(b.id);
      enqueue_cleanup(tx, b.installation_id, b.id, row.updated_ms);
    }
  };
  resources_.add_hooks(std::move(hooks));
}

std::string DeploymentService::branch_id(const std::string& resource_id,
                                         const std::string& deployment_id,
                                         const std::string& action) {
  return resource_id + "-br-" +
         util::to_hex(util::sha256(deployment_id + "\n" + action)).substr(0, 16);
}

std::string DeploymentService::status_url(const std::string& resource_id) const {
  return "sso:" + options_.public_url + "/dashboard/resources/" + resource_id;
}

std::optional<store::ResourceRow> DeploymentService::branchable(
    store::ReadTx& tx, const std::string& installation_id, const std::string& resource_id) const {
  auto row = tx.resource(resource_id);
  if (!row || row->deleted_ms || row->installation_id != installation_id) return std::nullopt;
  const product::Descriptor* kind = resources_.descriptor_of(row->product_id);
  if (!kind || !kind->capabilities.branches) return std::nullopt;
  return row;
}

void DeploymentService::on_event(const std::string& type, const std::string& installation_id,
                                 const Json& payload) {
  if (type == "deployment.integration.action.start")
    action_start(installation_id, payload);
  else if (type == "deployment.integration.action.cancel" ||
           type == "deployment.integration.action.cleanup")
    action_stop(type, installation_id, payload);
  else if (type == "integration-resource.project-connected")
    project_connected(installation_id, payload);
  else if (type == "deployment.checkrun.start" || type == "deployment.check-rerequested")
    check_run(installation_id, payload);
}

void DeploymentService::action_start(const std::string& installation_id, const Json& payload) {
  std::string rid = str(payload, "resourceId");
  std::string action = str(payload, "action");
  std::string deployment = str(payload, "deployment", "id");
  if (rid.empty() || action.empty() || deployment.empty()) {
    util::log_warn("deployment action without resourceId, action or deployment.id")
        .str("installation", installation_id);
    return;
  }
  auto patch = [&](const Json& body) {
    return vercel::api::update_deployment_action(deployment, installation_id, rid, action, body);
  };
  bool enqueued = false;
  store_.write([&](store::WriteTx& tx) {
    int64_t now = clock_.now_ms();
    auto row = tx.resource(rid);
    if (!row || row->installation_id != installation_id) return;  // not ours: nothing to report
    if (action != kBranchAction || !branchable(tx, installation_id, rid)) {
      std::string why =
          action != kBranchAction
              ? "Unknown action '" + action + "': this integration offers '" + kBranchAction + "'."
              : "This database cannot be branched (deleted, or its product has "
                "no branches).";
      vercel::Outbox::enqueue(tx, installation_id,
                              patch({{"status", "failed"}, {"statusText", why}}), now);
      enqueued = true;
      return;
    }
    std::string id = branch_id(rid, deployment, action);
    auto existing = tx.branch(id);
    if (existing && existing->status == "running") return;  // a repeat: under way
    store::BranchRow b = existing.value_or(store::BranchRow{});
    if (!existing) {
      b.id = id;
      b.resource_id = rid;
      b.installation_id = installation_id;
      b.deployment_id = deployment;
      b.action = action;
      b.created_ms = now;
    }
    // Vercel restarted the action: a made branch is reported again, anything else redone.
    if (b.status != "succeeded") {
      b.status = "running";
      b.status_text = "Branching the database";
      b.secrets_sealed.reset();
    }
    b.updated_ms = now;
    tx.put_branch(b);
    vercel::Outbox::enqueue(tx, installation_id,
                            patch({{"status", "running"},
                                   {"statusText", "Branching the database"},
                                   {"statusUrl", status_url(rid)}}),
                            now);
    vercel::Outbox::enqueue(tx, installation_id,
                            handler_call(patch(Json()), "deployment.action", {{"branchId", id}}),
                            now);
    enqueued = true;
  });
  if (enqueued) wake();
}

void DeploymentService::action_stop(const std::string& type, const std::string& installation_id,
                                    const Json& payload) {
  std::string rid = str(payload, "resourceId");
  std::string action = str(payload, "action");
  std::string deployment = str(payload, "deployment", "id");
  if (rid.empty() || action.empty() || deployment.empty()) return;
  std::string id = branch_id(rid, deployment, action);
  bool cleanup = type == "deployment.integration.action.cleanup";
  bool enqueued = false;
  store_.write([&](store::WriteTx& tx) {
    auto b = tx.branch(id);
    if (!b || b->installation_id != installation_id || b->status == "dropped") return;
    int64_t now = clock_.now_ms();
    if (!cleanup) {
      // Cancel stops a branch being made; a finished one stays until its cleanup.
      if (b->status != "running") return;
      b->status = "cancelled";
      b->status_text = "Cancelled";
      b->updated_ms = now;
      tx.put_branch(*b);
      return;  // the action's handler drops it and reports the failure
    }
    // After what is queued for the action, so a branch being made is dropped once made.
    enqueue_cleanup(tx, installation_id, id, now);
    enqueued = true;
  });
  if (enqueued) wake();
}

void DeploymentService::project_connected(const std::string& installation_id, const Json& payload) {
  std::string rid = str(payload, "resourceId");
  std::string project = str(payload, "projectId");
  if (project.empty()) project = str(payload, "project", "id");
  if (rid.empty() || project.empty()) return;
  bool enqueued = false;
  store_.write([&](store::WriteTx& tx) {
    auto row = branchable(tx, installation_id, rid);
    if (!row) return;
    // Vercel shows the name; it takes at most 100 characters.
    Json check = {{"name", ("Database " + row->name).substr(0, 100)},
                  {"isRerequestable", true},
                  {"requires", "none"},
                  {"blocks", "deployment-promotion"},
                  {"timeout", options_.check_timeout_ms},
                  {"source", {{"kind", "integration"}, {"externalResourceId", rid}}}};
    vercel::Outbox::enqueue(tx, installation_id,
                            handler_call(vercel::api::create_check(project, Json()),
                                         "deployment.register-check", check),
                            clock_.now_ms());
    enqueued = true;
  });
  if (enqueued) wake();
}

void DeploymentService::check_run(const std::string& installation_id, const Json& payload) {
  const Json* run =
      payload.is_object() && payload.contains("checkRun") ? &payload["checkRun"] : nullptr;
  if (!run || !run->is_object()) {
    // Checks v1's rerequest (check.id only): this integration registers v2 checks only.
    util::log_info("check event without a check run ignored").str("installation", installation_id);
    return;
  }
  std::string run_id = str(*run, "id");
  std::string rid = str(*run, "source", "externalResourceId");
  std::string deployment = str(*run, "deploymentId");
  if (deployment.empty()) deployment = str(payload, "deployment", "id");
  if (run_id.empty() || rid.empty() || deployment.empty()) return;
  bool enqueued = false;
  store_.write([&](store::WriteTx& tx) {
    if (!branchable(tx, installation_id, rid)) return;  // not a check of ours
    int64_t now = clock_.now_ms();
    vercel::Outbox::enqueue(
        tx, installation_id,
        vercel::api::update_check_run(deployment, run_id, {{"status", "running"}}), now);
    vercel::Outbox::enqueue(
        tx, installation_id,
        handler_call(vercel::api::update_check_run(deployment, run_id, Json()), "deployment.check",
                     {{"resourceId", rid}, {"deploymentId", deployment}}),
        now);
    enqueued = true;
  });
  if (enqueued) wake();
}

net::HttpResult DeploymentService::deliver(const store::OutboxRow& item,
                                           const vercel::Client& client, const std::string& token) {
  if (item.kind == "deployment.action") return deliver_action(item, client, token);
  if (item.kind == "deployment.check") return deliver_check(item, client, token);
  if (item.kind == "deployment.register-check") return deliver_register_check(item, client, token);
  if (item.kind == "deployment.cleanup") {
    Json in = Json::parse(item.body, nullptr, false);
    std::optional<store::BranchRow> b;
    std::string id = str(in, "branchId");
    store_.read([&](store::ReadTx& tx) { b = tx.branch(id); });
    if (!b || b->status == "dropped") return done();
    try {
      resources_.drop_branch(*b, "dropped", "Cleaned up");
    } catch (const std::exception& e) {
      net::HttpResult r = done(503);  // retried
      r.body = e.what();
      return r;
    }
    return done();
  }
  return done(400);
}

net::HttpResult DeploymentService::report(const store::OutboxRow& item,
                                          const vercel::Client& client, const std::string& token,
                                          const Json& body) {
  return client.request(item.method, item.path, body.dump(), token);
}

void DeploymentService::set_status(const std::string& branch_id, const std::string& status,
                                   const std::string& text) {
  store_.write([&](store::WriteTx& tx) {
    auto b = tx.branch(branch_id);
    if (!b) return;
    b->status = status;
    b->status_text = text;
    b->updated_ms = clock_.now_ms();
    tx.put_branch(*b);
  });
}

net::HttpResult DeploymentService::deliver_action(const store::OutboxRow& item,
                                                  const vercel::Client& client,
                                                  const std::string& token) {
  std::string id = str(Json::parse(item.body, nullptr, false), "branchId");
  std::optional<store::BranchRow> b;
  store_.read([&](store::ReadTx& tx) { b = tx.branch(id); });
  if (!b) return done();
  auto failed = [&](const std::string& text) {
    return report(
        item, client, token,
        {{"status", "failed"}, {"statusText", text}, {"statusUrl", status_url(b->resource_id)}});
  };
  auto succeeded = [&](const Json& secrets) {
    Json plain = Json::array();
    for (const auto& s : secrets) plain.push_back({{"name", s["name"]}, {"value", s["value"]}});
    return report(
        item, client, token,
        {{"status", "succeeded"},
         {"statusText", "Branch database ready"},
         {"statusUrl", status_url(b->resource_id)},
         {"outcomes", Json::array({Json{{"kind", "resource-secrets"}, {"secrets", plain}}})}});
  };
  auto cancelled = [&] {
    resources_.drop_branch(*b, "cancelled", "Cancelled");
    return failed("Cancelled");
  };
  if (b->status == "succeeded") return succeeded(resources_.branch_secrets(*b));
  if (b->status == "cancelled") return cancelled();
  if (b->status != "running") return failed(b->status_text.empty() ? "Failed" : b->status_text);
  try {
    std::optional<Json> secrets = resources_.make_branch(*b);
    if (!secrets) return cancelled();
    util::log_info("deployment branch made")
        .str("branch", b->id)
        .str("resource", b->resource_id)
        .str("deployment", b->deployment_id);
    return succeeded(*secrets);
  } catch (const product::ProductRefused& e) {
    std::string text = e.user_message.value_or(e.what());
    resources_.drop_branch(*b, "failed", text);
    return failed(text);
  } catch (const product::ProductUnavailable& e) {
    util::log_warn("deployment branch not made yet")
        .str("branch", b->id)
        .str("error", e.what())
        .num("attempt", item.attempts + 1);
    if (item.attempts + 1 < options_.max_branch_attempts) {
      net::HttpResult r = done(503);  // the outbox retries with backoff
      r.body = e.what();
      return r;
    }
    std::string text = "The database could not be branched: its server is unavailable.";
    resources_.drop_branch(*b, "failed", text);
    return failed(text);
  }
}

net::HttpResult DeploymentService::deliver_check(const store::OutboxRow& item,
                                                 const vercel::Client& client,
                                                 const std::string& token) {
  Json in = Json::parse(item.body, nullptr, false);
  std::string rid = str(in, "resourceId");
  std::string deployment = str(in, "deploymentId");
  // The deployment's own database when the action branched one, else the resource's.
  std::string database = rid;
  std::optional<store::BranchRow> b;
  store_.read([&](store::ReadTx& tx) { b = tx.branch(branch_id(rid, deployment, kBranchAction)); });
  if (b && b->status == "succeeded") database = b->id;
  std::string verdict;
  try {
    verdict = resources_.check_database(rid, database);
  } catch (const product::ProductUnavailable& e) {
    if (item.attempts + 1 < options_.max_branch_attempts) {
      net::HttpResult r = done(503);
      r.body = e.what();
      return r;
    }
    verdict = "the database's server is unavailable";
  }
  bool ok = verdict.empty();
  std::string what = database == rid ? "Database" : "Branch database";
  Json body = {{"status", "completed"},
               {"conclusion", ok ? "succeeded" : "failed"},
               {"conclusionText", ok ? what + " reachable, schema intact" : what + ": " + verdict},
               {"externalId", database},
               {"output", {{"database", database}, {"resourceId", rid}}},
               {"completedAt", clock_.now_ms()}};
  return report(item, client, token, body);
}

net::HttpResult DeploymentService::deliver_register_check(const store::OutboxRow& item,
                                                          const vercel::Client& client,
                                                          const std::string& token) {
  Json check = Json::parse(item.body, nullptr, false);
  std::string rid = str(check, "source", "externalResourceId");
  // Registered once per project and resource: a reconnected project keeps its check.
  net::HttpResult list = client.request("GET", item.path, "", token);
  if (!list.ok()) return list;
  Json existing = Json::parse(list.body, nullptr, false);
  const Json* checks = existing.is_object() && existing.contains("checks")
                           ? &existing["checks"]
                           : (existing.is_array() ? &existing : nullptr);
  if (checks && checks->is_array())
    for (const auto& c : *checks)
      if (str(c, "source", "externalResourceId") == rid) return done(200);
  return client.request("POST", item.path, check.dump(), token);
}

}  // namespace wharf::service
