#include "vercel/api.h"

#include "net/http.h"
#include "util/log.h"

namespace wharf::vercel {

namespace {

// One path segment, percent-encoded (RFC 3986 unreserved characters stay as they are).
std::string seg(const std::string& s) {
  return net::percent_encode(s);
}

std::string inst(const std::string& icfg) {
  return "/v1/installations/" + seg(icfg);
}

std::string res(const std::string& icfg, const std::string& rid) {
  return inst(icfg) + "/resources/" + seg(rid);
}

}  // namespace

namespace api {

Call update_installation(S icfg, const Json& patch) {
  return {"installation", "PATCH", inst(icfg), patch};
}
Call get_account(S icfg) {
  return {"read", "GET", inst(icfg) + "/account", std::nullopt};
}
Call get_member(S icfg, S member_id) {
  return {"member", "GET", inst(icfg) + "/member/" + seg(member_id), std::nullopt};
}
Call rotate_installation_credential(S icfg, const Json& body) {
  return {"credential", "POST", inst(icfg) + "/credentials/rotate", body};
}
Call create_event(S icfg, const Json& event) {
  return {"event", "POST", inst(icfg) + "/events", Json{{"event", event}}};
}
Call get_installation(S icfg) {
  return {"read", "GET", inst(icfg), std::nullopt};
}
Call get_resources(S icfg) {
  return {"read", "GET", inst(icfg) + "/resources", std::nullopt};
}
Call get_resource(S icfg, S resource_id) {
  return {"read", "GET", res(icfg, resource_id), std::nullopt};
}
Call import_resource(S icfg, S resource_id, const Json& body) {
  return {"resource", "PUT", res(icfg, resource_id), body};
}
Call update_resource(S icfg, S resource_id, const Json& body) {
  return {"resource", "PATCH", res(icfg, resource_id), body};
}
Call delete_resource(S icfg, S resource_id) {
  return {"resource", "DELETE", res(icfg, resource_id), std::nullopt};
}
Call update_resource_secrets(S icfg, S resource_id, const Json& body) {
  return {"secrets", "PUT", res(icfg, resource_id) + "/secrets", body};
}
Call update_resource_secrets_by_product(S icfg, S product, S resource_id, const Json& body) {
  return {"secrets", "PUT",
          inst(icfg) + "/products/" + seg(product) + "/resources/" + seg(resource_id) + "/secrets",
          body};
}
Call submit_billing_data(S icfg, Json body) {
  // By value: the body (every resource's usage of the period) is moved, not copied.
  return {"billing", "POST", inst(icfg) + "/billing", std::move(body)};
}
Call submit_invoice(S icfg, const Json& body) {
  return {"invoice", "POST", inst(icfg) + "/billing/invoices", body};
}
Call get_invoice(S icfg, S invoice_id) {
  return {"read", "GET", inst(icfg) + "/billing/invoices/" + seg(invoice_id), std::nullopt};
}
Call invoice_action(S icfg, S invoice_id, const Json& body) {
  return {"refund", "POST", inst(icfg) + "/billing/invoices/" + seg(invoice_id) + "/actions", body};
}
Call submit_balances(S icfg, const Json& body) {
  return {"balance", "POST", inst(icfg) + "/billing/balance", body};
}
Call finalize_installation(S icfg) {
  return {"finalize", "POST", inst(icfg) + "/billing/finalize", Json::object()};
}
Call sso_token(const Json& body) {
  return {"auth", "POST", "/v1/integrations/sso/token", body};
}
Call oauth_access_token(const Json& body) {
  return {"auth", "POST", "/v2/oauth/access_token", body};
}
Call create_experimentation_items(S icfg, S resource_id, const Json& body) {
  return {"experimentation", "POST", res(icfg, resource_id) + "/experimentation/items", body};
}
Call update_experimentation_item(S icfg, S resource_id, S item_id, const Json& body) {
  return {"experimentation", "PATCH",
          res(icfg, resource_id) + "/experimentation/items/" + seg(item_id), body};
}
Call delete_experimentation_item(S icfg, S resource_id, S item_id) {
  return {"experimentation", "DELETE",
          res(icfg, resource_id) + "/experimentation/items/" + seg(item_id), std::nullopt};
}
Call head_global_config(S icfg, S resource_id, S path_name) {
  return {"read", "HEAD", res(icfg, resource_id) + "/experimentation/" + seg(path_name),
          std::nullopt};
}
Call get_global_config(S icfg, S resource_id, S path_name) {
  return {"read", "GET", res(icfg, resource_id) + "/experimentation/" + seg(path_name),
          std::nullopt};
}
Call put_global_config(S icfg, S resource_id, const Json& body, S path_name) {
  return {"experimentation", "PUT", res(icfg, resource_id) + "/experimentation/" + seg(path_name),
          body};
}
Call update_deployment_action(S deployment_id, S icfg, S resource_id, S action, const Json& body) {
  return {"deployment", "PATCH",
          "/v1/deployments/" + seg(deployment_id) + "/integrations/" + seg(icfg) + "/resources/" +
              seg(resource_id) + "/actions/" + seg(action),
          body};
}
Call create_check(S project, const Json& body) {
  return {"check", "POST", "/v2/projects/" + seg(project) + "/checks", body};
}
Call list_checks(S project) {
  return {"read", "GET", "/v2/projects/" + seg(project) + "/checks", std::nullopt};
}
Call update_check_run(S deployment_id, S check_run_id, const Json& body) {
  return {"check", "PATCH",
          "/v2/deployments/" + seg(deployment_id) + "/check-runs/" + seg(check_run_id), body};
}
Call create_check_v1(S deployment_id, const Json& body) {
  return {"check", "POST", "/v1/deployments/" + seg(deployment_id) + "/checks", body};
}
Call update_check_v1(S deployment_id, S check_id, const Json& body) {
  return {"check", "PATCH", "/v1/deployments/" + seg(deployment_id) + "/checks/" + seg(check_id),
          body};
}
Call get_deployment(S id_or_url) {
  return {"read", "GET", "/v13/deployments/" + seg(id_or_url), std::nullopt};
}
Call get_project(S id_or_name) {
  return {"read", "GET", "/v9/projects/" + seg(id_or_name), std::nullopt};
}

}  // namespace api

std::string vercel_id_of(const net::HttpResult& result) {
  for (const auto& [k, v] : result.headers)
    if (k == "x-vercel-id") return v;
  return "";
}

DeliveryPolicy delivery_policy(const std::string& kind) {
  DeliveryPolicy p;
  // Vercel refuses a second invoice with the same externalId: the first one went through.
  if (kind == "invoice") p.conflict_is_delivered = true;
  // Finalize Installation answers 409 while invoices are open: that passes.
  if (kind == "finalize") p.conflict_is_retried = true;
  // A 404 on an event or the secrets of a resource Vercel no longer has says nothing about
  // the installation.
  if (kind == "event" || kind == "secrets") p.installation_scoped = false;
  // An event about a resource or installation Vercel no longer has informs no one.
  if (kind == "event") p.not_found_is_done = true;
  // Nor does one on a flag's experimentation item or its resource's Global Config (syncing
  // not enabled on Vercel's side, an item Vercel dropped with its resource).
  if (kind == "experimentation" || kind == "flags.sync") p.installation_scoped = false;
  // Nor one on a member: that member left (the member read's handler ends their sessions).
  if (kind == "member") p.installation_scoped = false;
  // Billing notices go to the provider's endpoint (service/notices.h), not to Vercel.
  if (kind == "notice") p.installation_scoped = p.to_vercel = false;
  // Nor one on a deployment, a project or a check run (deleted meanwhile), or from the
  // handlers that report on them (service/deployments.h).
  if (kind == "deployment" || kind == "check" || kind.rfind("deployment.", 0) == 0)
    p.installation_scoped = false;
  return p;
}

net::HttpResult Client::request(
    const std::string& method, const std::string& path, const std::string& body,
    const std::optional<std::string>& bearer,
    const std::vector<std::pair<std::string, std::string>>& extra) const {
  std::vector<std::pair<std::string, std::string>> headers = {{"Accept", "application/json"}};
  for (const auto& h : extra) headers.push_back(h);
  if (bearer) headers.emplace_back("Authorization", "Bearer " + *bearer);
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  return http_.request(method, base_ + path, headers, body);
}

net::HttpResult Client::send(const Call& call, const std::optional<std::string>& bearer,
                             const std::string& installation_id) const {
  net::HttpResult r = request(call.method, call.path, call.body ? call.body->dump() : "", bearer);
  util::log_info("vercel call")
      .str("installation", installation_id)
      .str("request", call.method + " " + call.path)
      .num("status", r.status)
      .str("x_vercel_id", vercel_id_of(r))
      .str("error", r.error);
  return r;
}

}  // namespace wharf::vercel
