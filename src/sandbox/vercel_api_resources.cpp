// Resource endpoints (vercel-api.md §5), secrets (§6), experimentation items and Global
// Config (§9) and deployment-action updates (§10.1).
#include <algorithm>
#include <cctype>

#include "sandbox/deployments.h"
#include "sandbox/vercel_api.h"
#include "sandbox/vercel_api_internal.h"
#include "util/crypto.h"
#include "util/ids.h"

namespace wharf::sandbox {

using model::Json;

Json resource_view(const Json& r, const std::string& partner_id, bool list_item) {
  using vercel_api::get_str;
  Json out = Json::object();
  out[list_item ? "partnerId" : "id"] = partner_id;
  out["internalId"] = get_str(r, "internalId");
  out["name"] = get_str(r, "name");
  out["productId"] = get_str(r, "productId");
  if (std::string s = get_str(r, "status"); !s.empty()) out["status"] = s;
  std::string plan = r.contains("billingPlan") ? get_str(r["billingPlan"], "id") : "";
  if (plan.empty()) plan = get_str(r, "billingPlanId");
  if (!plan.empty()) out["billingPlanId"] = plan;
  for (const char* k : {"notification", "metadata", "protocolSettings"})
    if (r.contains(k) && r[k].is_object()) out[k] = r[k];
  return out;
}

namespace vercel_api {
namespace {

int64_t int_or(const Json& obj, const char* key, int64_t fallback) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

// Update Resource Secrets semantics (§6.1): `partial` overwrites the listed secrets by name
// and keeps the others; otherwise the list replaces the whole set.
void apply_secrets(Json& rec, const Json& secrets, bool partial, const std::string& now) {
  if (!partial) {
    rec["secrets"] = secrets;
  } else {
    if (!rec["secrets"].is_array()) rec["secrets"] = Json::array();
    Json& current = rec["secrets"];
    for (const auto& s : secrets) {
      bool replaced = false;
      for (auto& existing : current) {
        if (get_str(existing, "name") == get_str(s, "name")) {
          existing = s;
          replaced = true;
          break;
        }
      }
      if (!replaced) current.push_back(s);
    }
  }
  rec["secretsVersion"] = int_or(rec, "secretsVersion", 0) + 1;
  rec["secretsUpdatedAt"] = now;
}

net::Response list_resources(Call& c) {
  Json list = c.ctx.state.read([&](const Json& doc) {
    installation_of(doc, c.icfg);
    Json out = Json::array();
    auto rs = doc.find("resources");
    if (rs == doc.end() || !rs->is_object() || !rs->contains(c.icfg)) return out;
    const Json& mine = (*rs)[c.icfg];
    if (!mine.is_object()) return out;
    for (auto it = mine.begin(); it != mine.end(); ++it)
      if (it->is_object() && !it->value("deleted", false))
        out.push_back(resource_view(*it, it.key(), true));
    return out;
  });
  return json_reply(200, {{"resources", list}});
}

net::Response get_resource(Call& c) {
  std::string rid = c.param("resourceId");
  Json view = c.ctx.state.read([&](const Json& doc) {
    const Json* r = find_live_resource(doc, c.icfg, rid);
    if (!r)
      throw model::ApiError::not_found("resource " + rid + " not found in installation " + c.icfg);
    return resource_view(*r, rid, false);
  });
  return json_reply(200, view);
}

// Import Resource (§5.3): an upsert of a resource that exists on the partner's side.
net::Response import_resource(Call& c) {
  std::string rid = c.param("resourceId");
  Json body = c.body();
  require_valid(schema::import_resource(body), "Import Resource body");
  std::string now = c.now_iso();
  std::string name = c.ctx.state.mutate([&](Json& doc) {
    installation_of(doc, c.icfg);
    Json& mine = doc["resources"][c.icfg];
    if (!mine.is_object()) mine = Json::object();
    Json& rec = mine[rid];
    if (!rec.is_object()) rec = Json::object();
    bool revived = rec.value("deleted", false);
    if (!rec.contains("internalId")) rec["internalId"] = util::new_id("ir");
    if (!rec.contains("createdAt") || revived) rec["createdAt"] = now;
    rec["id"] = rid;
    for (const char* k : {"productId", "name", "status", "metadata", "billingPlan", "notification",
                          "extras", "ownership"})
      if (body.contains(k)) rec[k] = body[k];
    // Ownership is optional; a resource Vercel did not provision is most often linked, but
    // the spec gives no default, so an import without it is recorded as owned (billed).
    if (!rec.contains("ownership")) rec["ownership"] = "owned";
    if (body.contains("secrets")) apply_secrets(rec, body["secrets"], false, now);
    rec["deleted"] = false;
    rec.erase("deletedAt");
    rec["importedAt"] = now;
    rec["updatedAt"] = now;
    return rec["name"].get<std::string>();
  });
  return json_reply(200, {{"name", name}});
}

net::Response update_resource(Call& c) {
  std::string rid = c.param("resourceId");
  Json body = c.body();
  require_valid(schema::update_resource(body), "Update Resource body");
  std::string now = c.now_iso();
  std::string name = c.ctx.state.mutate([&](Json& doc) {
    Json& rec = live_resource(doc, c.icfg, rid);
    for (const char* k : {"ownership", "name", "status", "metadata", "billingPlan", "extras"})
      if (body.contains(k)) rec[k] = body[k];
    if (auto it = body.find("notification"); it != body.end()) {
      // `Notification | string`: null (or an empty string) clears.
      if (it->is_null() || (it->is_string() && it->get<std::string>().empty()))
        rec["notification"] = nullptr;
      else
        rec["notification"] = *it;
    }
    if (auto it = body.find("secrets"); it != body.end()) {
      if (it->is_array())
        apply_secrets(rec, *it, false, now);
      else
        apply_secrets(rec, (*it)["secrets"], it->value("partial", false), now);
    }
    rec["updatedAt"] = now;
    return get_str(rec, "name");
  });
  return json_reply(200, {{"name", name}});
}

net::Response delete_resource(Call& c) {
  std::string rid = c.param("resourceId");
  c.ctx.state.mutate_in({"resources"}, [&](Json& doc) {
    Json& rec = live_resource(doc, c.icfg, rid);
    rec["deleted"] = true;
    rec["deletedAt"] = c.now_iso();
  });
  return net::Response::empty(204);
}

net::Response put_secrets(Call& c) {
  std::string rid = c.param("resourceId");
  Json body = c.body();
  require_valid(schema::update_secrets(body), "Update Resource Secrets body");
  c.ctx.state.mutate_in({"resources"}, [&](Json& doc) {
    Json& rec = live_resource(doc, c.icfg, rid);
    apply_secrets(rec, body["secrets"], body.value("partial", false), c.now_iso());
    // The secrets of an asynchronous rotation (202, then this call): the rotation is done.
    if (rec.value("rotationPending", false) == true) {
      rec["rotationPending"] = false;
      rec["secretsRotatedAt"] = c.now_iso();
    }
  });
  return net::Response::empty(201);
}

// ---- experimentation ------------------------------------------------------------------------

Json& experimentation_of(Json& doc, const std::string& icfg, const std::string& rid) {
  Json& e = doc["experimentation"][icfg][rid];
  if (!e.is_object()) e = Json::object();
  if (!e["items"].is_object()) e["items"] = Json::object();
  return e;
}

net::Response create_items(Call& c) {
  std::string rid = c.param("resourceId");
  Json body = c.body();
  require_valid(schema::experimentation_items(body), "experimentation items body");
  c.ctx.state.mutate_in({"resources", "experimentation"}, [&](Json& doc) {
    live_resource(doc, c.icfg, rid);
    Json& items = experimentation_of(doc, c.icfg, rid)["items"];
    // Create is an upsert by id: the spec lists no 409, and PostHog/GrowthBook re-send items.
    for (const auto& item : body["items"]) items[item["id"].get<std::string>()] = item;
  });
  return net::Response::empty(204);
}

net::Response patch_item(Call& c) {
  std::string rid = c.param("resourceId");
  std::string item_id = c.param("itemId");
  Json body = c.body();
  require_valid(schema::experimentation_patch(body), "experimentation item patch");
  c.ctx.state.mutate_in({"resources", "experimentation"}, [&](Json& doc) {
    live_resource(doc, c.icfg, rid);
    Json& items = experimentation_of(doc, c.icfg, rid)["items"];
    if (!items.contains(item_id))
      throw model::ApiError::not_found("experimentation item " + item_id + " not found");
    Json& item = items[item_id];
    for (auto it = body.begin(); it != body.end(); ++it) item[it.key()] = *it;
    item["id"] = item_id;
  });
  return net::Response::empty(204);
}

net::Response delete_item(Call& c) {
  std::string rid = c.param("resourceId");
  std::string item_id = c.param("itemId");
  c.ctx.state.mutate_in({"resources", "experimentation"}, [&](Json& doc) {
    live_resource(doc, c.icfg, rid);
    Json& items = experimentation_of(doc, c.icfg, rid)["items"];
    if (!items.contains(item_id))
      throw model::ApiError::not_found("experimentation item " + item_id + " not found");
    items.erase(item_id);
  });
  return net::Response::empty(204);
}

// Global Config exists only when the user enabled syncing for the resource (§9.4), which
// Vercel records in the resource's protocolSettings.experimentation.
bool syncing_enabled(const Json& resource) {
  if (!resource.contains("protocolSettings") || !resource["protocolSettings"].is_object())
    return false;
  const Json& ps = resource["protocolSettings"];
  if (!ps.contains("experimentation") || !ps["experimentation"].is_object()) return false;
  const Json& e = ps["experimentation"];
  return !get_str(e, "edgeConfigId").empty() || !get_str(e, "globalConfigId").empty() ||
         e.value("edgeConfigSyncingEnabled", false) == true ||
         e.value("globalConfigSyncingEnabled", false) == true;
}

std::string digest_of(const Json& items) {
  return util::to_hex(util::sha256(items.dump()));
}

Json global_config_view(const Json& doc, const std::string& icfg, const std::string& rid) {
  const Json* r = find_live_resource(doc, icfg, rid);
  if (!r)
    throw model::ApiError::not_found("resource " + rid + " not found in installation " + icfg);
  if (!syncing_enabled(*r))
    throw model::ApiError::not_found(
        "resource " + rid +
        " has no Global Config: syncing is not enabled (protocolSettings.experimentation."
        "edgeConfigId/globalConfigId is not set)");
  Json items = Json::object();
  int64_t updated = 0;
  auto e = doc.find("experimentation");
  if (e != doc.end() && e->contains(icfg) && (*e)[icfg].contains(rid)) {
    const Json& gc = (*e)[icfg][rid].value("globalConfig", Json::object());
    if (gc.contains("items") && gc["items"].is_object()) items = gc["items"];
    updated = int_or(gc, "updatedAt", 0);
  }
  std::string digest = digest_of(items);
  return {{"items", items}, {"updatedAt", updated}, {"digest", digest}};
}

// Entity tags of If-Match / If-None-Match: a comma-separated list of (weak or strong) quoted
// tags or "*". The precondition header is undocumented (§13 Q2); the digest is the tag.
bool tag_matches(std::string_view header, const std::string& digest) {
  size_t i = 0;
  while (i <= header.size()) {
    size_t comma = header.find(',', i);
    if (comma == std::string_view::npos) comma = header.size();
    std::string tag(header.substr(i, comma - i));
    while (!tag.empty() && std::isspace(static_cast<unsigned char>(tag.front()))) tag.erase(0, 1);
    while (!tag.empty() && std::isspace(static_cast<unsigned char>(tag.back()))) tag.pop_back();
    if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);
    if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"')
      tag = tag.substr(1, tag.size() - 2);
    if (tag == "*" || tag == digest) return true;
    i = comma + 1;
  }
  return false;
}

net::Response read_global_config(Call& c, bool head) {
  std::string rid = c.param("resourceId");
  Json view =
      c.ctx.state.read([&](const Json& doc) { return global_config_view(doc, c.icfg, rid); });
  std::string digest = view["digest"].get<std::string>();
  net::Response resp;
  if (auto inm = c.req.header("if-none-match"); inm && tag_matches(*inm, digest)) {
    resp = net::Response::empty(304);
  } else if (head) {
    resp = net::Response::empty(200);
    resp.content_type = "application/json";
  } else {
    resp = json_reply(200, view);
  }
  resp.headers.emplace_back("ETag", "\"" + digest + "\"");
  return resp;
}

net::Response put_global_config(Call& c) {
  std::string rid = c.param("resourceId");
  Json body = c.body();
  require_valid(schema::global_config_put(body), "Global Config body");
  int64_t now = c.ctx.clock.now_ms();
  Json view = c.ctx.state.mutate([&](Json& doc) {
    Json current = global_config_view(doc, c.icfg, rid);
    if (auto im = c.req.header("if-match");
        im && !tag_matches(*im, current["digest"].get<std::string>()))
      throw model::ApiError(412, "precondition_failed",
                            "If-Match: " + std::string(*im) +
                                " does not match the current digest \"" +
                                current["digest"].get<std::string>() + "\"",
                            {{"If-Match", "does not match the current digest"}});
    Json& e = experimentation_of(doc, c.icfg, rid);
    e["globalConfig"] = {
        {"items", body["data"]}, {"updatedAt", now}, {"digest", digest_of(body["data"])}};
    return Json{{"items", body["data"]}, {"updatedAt", now}, {"digest", digest_of(body["data"])}};
  });
  net::Response resp = json_reply(200, view);
  resp.headers.emplace_back("ETag", "\"" + view["digest"].get<std::string>() + "\"");
  return resp;
}

// ---- deployment actions -----------------------------------------------------------------------

// When the deployment is one the sandbox modelled (sandbox/deployments.h), the update is also
// recorded on it, under actions["<resourceId>/<action>"], for deployments::judge_action; a
// modelled deployment of another installation is not found. Updates about deployments the
// sandbox does not know are only listed in deploymentActions.
void record_on_deployment(Call& c, Json& doc, const std::string& rid, const Json& body) {
  std::string did = c.param("deploymentId");
  auto all = doc.find("deployments");
  if (all == doc.end() || !all->is_object()) return;
  auto it = all->find(did);
  if (it == all->end() || !it->is_object()) return;
  Json& d = *it;
  if (get_str(d, "installationId") != c.icfg)
    throw model::ApiError::not_found("deployment " + did + " not found");
  std::string action = c.param("action");
  Json& actions = d["actions"];
  if (!actions.is_object()) actions = Json::object();
  Json& rec = actions[deployments::action_key(rid, action)];
  if (!rec.is_object()) {
    // Reported without the sandbox having started it: kept, and judged as such.
    rec = {{"resourceId", rid}, {"action", action}, {"status", "pending"}};
    c.findings.push_back("deployment " + did + " never started action " + action +
                         " for resource " + rid);
  }
  if (!rec["updates"].is_array()) rec["updates"] = Json::array();
  rec["updates"].push_back({{"receivedAt", c.ctx.clock.now_ms()}, {"body", body}});
  if (body.contains("status")) rec["status"] = body["status"];
  auto projects = doc.find("projects");
  std::string pid = get_str(d, "projectId");
  if (projects != doc.end() && projects->is_object() && projects->contains(pid)) {
    const Json& connected = (*projects)[pid].value("connectedResources", Json::array());
    if (std::find(connected.begin(), connected.end(), Json(rid)) == connected.end())
      c.findings.push_back("resource " + rid + " is not connected to project " + pid +
                           " of deployment " + did);
  }
}

net::Response update_deployment_action(Call& c) {
  std::string rid = c.param("resourceId");
  Json body = c.body();
  require_valid(schema::deployment_action(body), "deployment action update");
  c.ctx.state.mutate([&](Json& doc) {
    live_resource(doc, c.icfg, rid);
    record_on_deployment(c, doc, rid, body);
    Json& list = doc["deploymentActions"];
    if (!list.is_array()) list = Json::array();
    list.push_back({{"receivedAt", c.now_iso()},
                    {"deploymentId", c.param("deploymentId")},
                    {"installationId", c.icfg},
                    {"resourceId", rid},
                    {"action", c.param("action")},
                    {"update", body}});
    while (list.size() > 1000) list.erase(list.begin());
  });
  return net::Response::empty(202);
}

}  // namespace

void add_resource_routes(Registrar& r) {
  r.installation("GET", "/resources", list_resources);
  r.installation("GET", "/resources/{resourceId}", get_resource);
  r.installation("PUT", "/resources/{resourceId}", import_resource);
  r.installation("PATCH", "/resources/{resourceId}", update_resource);
  r.installation("DELETE", "/resources/{resourceId}", delete_resource);
  r.installation("PUT", "/resources/{resourceId}/secrets", put_secrets);
  // Deprecated form (§6.2): the product in the path is informational only.
  r.installation("PUT", "/products/{productIdOrSlug}/resources/{resourceId}/secrets", put_secrets);
  r.installation("POST", "/resources/{resourceId}/experimentation/items", create_items);
  r.installation("PATCH", "/resources/{resourceId}/experimentation/items/{itemId}", patch_item);
  r.installation("DELETE", "/resources/{resourceId}/experimentation/items/{itemId}", delete_item);
  // Global Config, and its former name Edge Config (§9.4, §13 Q1): same store, same shapes.
  for (const char* name : {"global-config", "edge-config"}) {
    std::string path = std::string("/resources/{resourceId}/experimentation/") + name;
    r.installation("HEAD", path, [](Call& c) { return read_global_config(c, true); });
    r.installation("GET", path, [](Call& c) { return read_global_config(c, false); });
    r.installation("PUT", path, put_global_config);
  }
  r.scoped("PATCH",
           "/v1/deployments/{deploymentId}/integrations/{icfg}/resources/{resourceId}/actions/"
           "{action}",
           update_deployment_action);
}

}  // namespace vercel_api
}  // namespace wharf::sandbox
