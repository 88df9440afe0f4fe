// Vercel's Marketplace API as typed calls (vercel-api.md §3, rows 1–34): each builder spells
// one endpoint's method and path, so no other code writes a Vercel URL. A Call is either sent
// at once by Client (reads, and writes whose answer decides ours, e.g. Get Invoice during
// Provision Purchase) or recorded by the Outbox in the transaction of the change it reports.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/json_check.h"
#include "net/http_client.h"

namespace wharf::vercel {

struct Call {
  std::string kind;  // outbox kind: event, secrets, billing, invoice, balance, finalize, …
  std::string method;
  std::string path;  // relative to WHARF_VERCEL_API_URL, ids percent-encoded
  std::optional<model::Json> body;
};

namespace api {
using model::Json;
using S = const std::string&;

// Installations (§4).
Call update_installation(S icfg, const Json& patch);            // 1  PATCH
Call get_account(S icfg);                                       // 2  GET
Call get_member(S icfg, S member_id);                           // 3  GET
Call rotate_installation_credential(S icfg, const Json& body);  // 4  POST
Call create_event(S icfg, const Json& event);                   // 5  POST {event}
Call get_installation(S icfg);                                  // 34 GET
// Resources (§5, §6).
Call get_resources(S icfg);                                             // 6
Call get_resource(S icfg, S resource_id);                               // 7
Call import_resource(S icfg, S resource_id, const Json& body);          // 8  PUT
Call update_resource(S icfg, S resource_id, const Json& body);          // 9  PATCH
Call delete_resource(S icfg, S resource_id);                            // 10 DELETE
Call update_resource_secrets(S icfg, S resource_id, const Json& body);  // 11 PUT
Call update_resource_secrets_by_product(S icfg, S product, S resource_id,
                                        const Json& body);  // 12 PUT (deprecated)
// Billing (§7, §4.6).
Call submit_billing_data(S icfg, Json body);                  // 13 POST
Call submit_invoice(S icfg, const Json& body);                // 14 POST
Call get_invoice(S icfg, S invoice_id);                       // 15 GET
Call invoice_action(S icfg, S invoice_id, const Json& body);  // 16 POST
Call submit_balances(S icfg, const Json& body);               // 17 POST
Call finalize_installation(S icfg);                           // 18 POST
// Authentication (§8): client credentials in the body, no installation token.
Call sso_token(const Json& body);           // 19 POST
Call oauth_access_token(const Json& body);  // 27 POST
// Experimentation (§9).
Call create_experimentation_items(S icfg, S resource_id, const Json& body);            // 20
Call update_experimentation_item(S icfg, S resource_id, S item_id, const Json& body);  // 21
Call delete_experimentation_item(S icfg, S resource_id, S item_id);                    // 22
// `path_name` is "global-config" (default) or the legacy "edge-config" (open question 1).
Call head_global_config(S icfg, S resource_id, S path_name = "global-config");  // 23
Call get_global_config(S icfg, S resource_id, S path_name = "global-config");   // 24
Call put_global_config(S icfg, S resource_id, const Json& body,
                       S path_name = "global-config");  // 25
// Deployments and checks (§10).
Call update_deployment_action(S deployment_id, S icfg, S resource_id, S action,
                              const Json& body);                           // 26 PATCH
Call create_check(S project, const Json& body);                            // 28 POST
Call list_checks(S project);                                               // 29 GET
Call update_check_run(S deployment_id, S check_run_id, const Json& body);  // 30 PATCH
Call create_check_v1(S deployment_id, const Json& body);                   // 31 POST
Call update_check_v1(S deployment_id, S check_id, const Json& body);       // 31 PATCH
Call get_deployment(S id_or_url);                                          // 32 GET
Call get_project(S id_or_name);                                            // 33 GET
}  // namespace api

// How the outbox reads Vercel's answer to a kind of call (the kinds set above).
struct DeliveryPolicy {
  bool conflict_is_delivered = false;  // 409 = an earlier attempt got through (invoice)
  bool conflict_is_retried = false;    // 409 = not yet, try again (finalize: invoices open)
  bool installation_scoped = true;     // 404 = the installation is gone (not for a resource's)
  // A call to Vercel: 401/403/410 mean the installation is gone. Not so for a call to the
  // provider's own endpoints (billing notices): their refusals only kill that call.
  bool to_vercel = true;
  // 404 = what the call would tell Vercel about is gone there (a resource.updated for a
  // resource deleted meanwhile): nothing is left to tell, so the call is done, not dead.
  bool not_found_is_done = false;
};
DeliveryPolicy delivery_policy(const std::string& kind);

// Sends calls synchronously: base URL, bearer (the installation's access token, absent for
// client-credential calls), JSON, the client's timeouts and User-Agent; logs each answer's
// X-Vercel-Id (never the token or body).
class Client {
 public:
  Client(const net::HttpClient& http, std::string base_url)
      : http_(http), base_(std::move(base_url)) {}
  net::HttpResult send(const Call& call, const std::optional<std::string>& bearer,
                       const std::string& installation_id = "") const;
  // The request alone, with a body already serialized (the outbox's stored calls); no log.
  // `extra`: more request headers (a precondition such as If-Match).
  net::HttpResult request(const std::string& method, const std::string& path,
                          const std::string& body, const std::optional<std::string>& bearer,
                          const std::vector<std::pair<std::string, std::string>>& extra = {}) const;
  const std::string& base_url() const { return base_; }

 private:
  const net::HttpClient& http_;
  std::string base_;
};

// The X-Vercel-Id header of an answer, or "".
std::string vercel_id_of(const net::HttpResult& result);

}  // namespace wharf::vercel
