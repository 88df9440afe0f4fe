// Deployment integration actions and checks (flows.md F17) for the database products.
//
// The action "branch" (the one this integration declares in the Vercel console): on
// deployment.integration.action.start for a resource, a copy of its database is made for the
// deployment (ResourceService::make_branch: SQLite's online backup, PostgreSQL's CREATE
// DATABASE … TEMPLATE) and reported with PATCH …/actions/branch — `running`, then
// `succeeded` with the branch's credentials as the `resource-secrets` outcome (Vercel gives
// them to that deployment only) and an sso: statusUrl, or `failed` with why. `cancel` stops
// a branch still being made (it is dropped and reported failed "Cancelled"); `cleanup` (after
// the deployment is deleted for good) drops it. One branch per (resource, deployment, action):
// a repeated start is idempotent.
//
// Checks v2: on integration-resource.project-connected a check "<product> database" is
// registered on the project (once: the project's checks are listed first); on
// deployment.checkrun.start (and deployment.check-rerequested carrying a new run) the
// deployment's database — its branch when it has one, else the resource — is checked
// (reachable, schema intact: ResourceService::check_database) and the run is completed.
//
// Everything reaches Vercel through the outbox, in the installation's lane, so the reports of
// one deployment keep their order (running before the result, the action before a cleanup)
// and survive a crash; the product work runs in the outbox's handlers ("deployment.action",
// "deployment.cleanup", "deployment.check", "deployment.register-check"), never in the
// webhook's request, which is answered at once.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "model/api_error.h"
#include "net/http_client.h"
#include "service/resources.h"
#include "store/store.h"
#include "util/clock.h"
#include "vercel/api.h"

namespace wharf::service {

class DeploymentService {
 public:
  static constexpr const char* kBranchAction = "branch";

  struct Options {
    std::string public_url;  // statusUrl: sso:<public_url>/dashboard/resources/<id>
    int64_t check_timeout_ms = 5 * 60 * 1000;
    // A product that stays unavailable this many attempts fails the action.
    int64_t max_branch_attempts = 6;
    std::function<void()> wake_outbox;
  };
  DeploymentService(store::Store& store, ResourceService& resources, const util::Clock& clock,
                    Options options);

  // A webhook delivery (flows.md §3.3) of one of the types above; others are ignored. Only
  // records and enqueues: the work is the handlers'.
  void on_event(const std::string& type, const std::string& installation_id,
                const model::Json& payload);

  // The outbox handlers (set with Outbox::set_handler for each kind).
  net::HttpResult deliver(const store::OutboxRow& item, const vercel::Client& client,
                          const std::string& token);
  static bool handles(const std::string& kind) { return kind.rfind("deployment.", 0) == 0; }

  // The branch's id for a resource's action on a deployment (the product database's id).
  static std::string branch_id(const std::string& resource_id, const std::string& deployment_id,
                               const std::string& action);

 private:
  void action_start(const std::string& installation_id, const model::Json& payload);
  void action_stop(const std::string& type, const std::string& installation_id,
                   const model::Json& payload);
  void project_connected(const std::string& installation_id, const model::Json& payload);
  void check_run(const std::string& installation_id, const model::Json& payload);
  // A live resource of the installation whose product branches databases, else null.
  std::optional<store::ResourceRow> branchable(store::ReadTx& tx,
                                               const std::string& installation_id,
                                               const std::string& resource_id) const;

  net::HttpResult deliver_action(const store::OutboxRow& item, const vercel::Client& client,
                                 const std::string& token);
  net::HttpResult deliver_check(const store::OutboxRow& item, const vercel::Client& client,
                                const std::string& token);
  net::HttpResult deliver_register_check(const store::OutboxRow& item, const vercel::Client& client,
                                         const std::string& token);
  // The action's PATCH with `body`, on the path the item was enqueued with.
  static net::HttpResult report(const store::OutboxRow& item, const vercel::Client& client,
                                const std::string& token, const model::Json& body);
  void set_status(const std::string& branch_id, const std::string& status, const std::string& text);
  std::string status_url(const std::string& resource_id) const;
  void wake() const {
    if (options_.wake_outbox) options_.wake_outbox();
  }

  store::Store& store_;
  ResourceService& resources_;
  const util::Clock& clock_;
  Options options_;
};

}  // namespace wharf::service
