// Resources (partner-api.md §5.5–5.11) on real products, and the data plane that serves
// them: provisioning with real credentials, get/list/update/delete, secrets rotation, the
// REPL, token-authenticated queries, and the usage ledger measured from the product.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/api_error.h"
#include "model/catalog.h"
#include "model/resource.h"
#include "net/http_client.h"
#include "product/product.h"
#include "service/installations.h"
#include "service/rate_limits.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "vercel/outbox.h"

namespace wharf::service {

// A resource's current secrets (Secret[], with environmentOverrides), opened from the store.
model::Json open_resource_secrets(const util::SecretBox& box, const store::ResourceRow& row);

class ResourceService {
 public:
  struct Options {
    std::string public_url;  // DATABASE_URL = <public_url>/v1/databases/<resource id>
    // Fraction of the plan's storage limit at which the resource gets a warn notification.
    double storage_warn_ratio = 0.9;
    // Abuse limits on the data plane and the REPL (null: none).
    RateLimits* rate_limits = nullptr;
    // Called after a commit that enqueued outbox work due now (the outbox's wake()).
    std::function<void()> wake_outbox;
  };
  ResourceService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                  InstallationService& installations,
                  std::map<std::string, product::Product*> products, const util::SecretBox& box,
                  const util::Clock& clock, Options options);

  // A service that keeps a product's data in the state store (the flags product) learns of
  // resource changes in the transaction that makes them. Added before serving.
  struct Hooks {
    // A resource was provisioned (before: null) or changed by Update Resource.
    std::function<void(store::WriteTx&, const store::ResourceRow* before,
                       const store::ResourceRow& after)>
        changed;
    std::function<void(store::WriteTx&, const store::ResourceRow&)> deleted;
  };
  void add_hooks(Hooks hooks) { hooks_.push_back(std::move(hooks)); }
  // Changes a live resource on our side: `fn` edits it (with `tx` for what goes with the
  // change) and says whether anything changed; if so it is stored and Vercel is sent
  // resource.updated. False for a missing or deleted resource, or no change.
  bool change_resource(const std::string& resource_id,
                       const std::function<bool(store::WriteTx&, store::ResourceRow&)>& fn);

  // Returns the ProvisionedResource (with secrets). A repeat with the same Idempotency-Key
  // returns the same resource and secrets, never a second database.
  model::Json provision(const std::string& installation_id,
                        const model::ProvisionResourceRequest& req,
                        const std::optional<std::string>& idempotency_key);
  model::Json get(const std::string& installation_id, const std::string& resource_id);
  model::Json list(const std::string& installation_id, const std::vector<std::string>& ids);
  // `ours`: the change is made on our side (dashboard), not by Vercel: it is reported with
  // resource.updated, and cannot lift a billing suspension.
  model::Json update(const std::string& installation_id, const std::string& resource_id,
                     const model::UpdateResourceRequest& req, bool ours = false);
  // Deletes the resource and its database; a repeat (already deleted) succeeds.
  void remove(const std::string& installation_id, const std::string& resource_id,
              bool require_active = true);
  // Deletes every resource of an installation (cascadeResourceDeletion); returns how many.
  int remove_all(const std::string& installation_id);
  // At start-up, before serving: removes what products store for resources that have no
  // row or a deleted one (a crash between a provision's product work and its commit, or
  // between a delete's commit and the product's destroy). Returns how many were removed.
  int reclaim_storage();
  // Once an uninstalled installation is finalized (nothing more to bill), or its uninstall
  // cleanup decided their deletion (BillingService, WHARF_UNINSTALL_GRACE_DAYS), the
  // resources it left behind (uninstalled without cascadeResourceDeletion) are
  // deprovisioned. Idempotent: a repeat removes what an interrupted one left.
  int remove_leftovers(const std::string& installation_id);

  struct RotateOutcome {
    int status;  // 200 (sync) or 202 (async)
    model::Json body;
  };
  // `ours`: started on our side (dashboard), so Vercel learns the new secrets through the
  // outbox even for a sync product (no Vercel request is waiting for them).
  RotateOutcome rotate(const std::string& installation_id, const std::string& resource_id,
                       const model::RotateSecretsRequest& req, bool ours = false);

  // Throws the error a REPL call would get before running anything (404, suspended), so a
  // streamed answer can fail with a proper status before its headers go out.
  // Counts one REPL command against the abuse limits of `caller_key` (a user or token
  // identity) and of the installation; throws ApiError 429 when over. Call before the work.
  void admit_repl(const std::string& installation_id, const std::string& caller_key);
  store::ResourceRow check_repl(const std::string& installation_id, const std::string& resource_id);
  // REPL blocks; `emit` receives each block as produced (streaming).
  model::Json repl(const std::string& installation_id, const std::string& resource_id,
                   const model::ReplRequest& req,
                   const std::function<void(const model::Json&)>& emit);

  std::string plans(const std::string& installation_id, const std::string& resource_id,
                    const model::Json& metadata);

  // Data plane: `token` is the bearer token; `body` is {sql, params} or {statements: […]}.
  model::Json query(const std::string& resource_id, const std::string& token,
                    const model::Json& body);

  // A data-plane caller, checked: its token is valid for the resource (not expired, not
  // another database's), the resource is live and not suspended, and the caller is within
  // its rate limits. What it may do follows from the token and the billing state.
  struct SqlCaller {
    store::ResourceRow row;
    // The product database the token opens: the resource's own (row.id) or a deployment
    // branch of it (service/deployments.h), which runs under the resource's plan and billing.
    std::string database_id;
    std::string token_hash;
    bool read_only = true;        // a read-only token, or out of prepaid credits
    bool out_of_credits = false;  // writes refused for credits, not for the token
    product::Limits limits;       // the plan's
  };
  // `resource_id` empty: the resource the token belongs to (libSQL clients address the
  // database by its token). Throws ApiError 401/403/404/429.
  SqlCaller authorize_sql(const std::string& resource_id, const std::string& token);
  // A session for an interactive client (libSQL streams); ApiError 404 when the resource's
  // product has none or its data is gone.
  std::unique_ptr<product::SqlSession> open_sql_session(const SqlCaller& caller);
  // Adds what a data-plane caller spent to the usage ledger's next flush.
  void record_sql_usage(const SqlCaller& caller, const product::UsageDelta& usage) {
    record_usage(caller.row, usage);
  }
  // Deployment branches (flows.md F17), driven by DeploymentService. make_branch: the
  // product's copy of the branch's resource as database `branch.id`, then Wharf's tokens for
  // it (when the product's data plane is Wharf's); in one transaction the branch becomes
  // `succeeded` with its secrets sealed, unless it was cancelled meanwhile (then nullopt: the
  // caller drops it). Throws ProductRefused (e.g. 404 resource gone, 400 not supported) or
  // ProductUnavailable (try again).
  std::optional<model::Json> make_branch(const store::BranchRow& branch);
  model::Json branch_secrets(const store::BranchRow& branch) const;
  // Drops a branch's database and tokens and marks it `status` ("dropped", "cancelled" or
  // "failed"); idempotent.
  void drop_branch(const store::BranchRow& branch, const std::string& status,
                   const std::string& status_text);
  // The deployment check of a resource's database, or of its branch `database_id`: "" when
  // reachable and intact, else what is wrong. Throws ProductUnavailable.
  std::string check_database(const std::string& resource_id, const std::string& database_id);

  // Adds `value` to an interval metric of the resource at the ledger's next flush (a product
  // served by Wharf's own data plane, such as flag evaluations).
  void record_metric(const store::ResourceRow& row, const std::string& metric, int64_t value);

  // ---- products whose work is remote (capabilities.async_provisioning) ----
  // The outbox's ProductCallFn: makes one product call recorded by this service
  // ("product.provision", "product.change", "product.remove") and answers like HTTP: 200
  // done, an error (retry) or 4xx (dead). Never throws for the product's failures.
  net::HttpResult deliver_product_call(const store::OutboxRow& item);

  // Backend → Wharf callbacks (product-protocol.md §5). `signature` is the Wharf-Signature
  // header; a missing or bad one throws ApiError 401, a resource not of `product_id` 404.
  void verify_callback(const std::string& product_id, const std::string& signature,
                       const std::string& body) const;
  model::Json backend_status(const std::string& product_id, const std::string& resource_id,
                             const model::Json& body);
  model::Json backend_secrets(const std::string& product_id, const std::string& resource_id,
                              const model::Json& body);
  // W2: a batch of usage events; all or nothing (422 naming each bad event), each event id
  // counted once however often it is sent. Returns {accepted, duplicates}.
  model::Json ingest_usage(const std::string& product_id, const model::Json& body);

  // Usage the products measure themselves (capabilities.samples_usage), for every live
  // resource of theirs, into the ledger. Called on a period by the server.
  void sample_usage();

  static std::string token_hash(const std::string& token) {
    return util::to_hex(util::sha256(token));
  }

  // Writes the usage accumulated since the last flush to the ledger in one transaction,
  // with each touched resource's storage size and storage notification. Called every
  // second by the server and at shutdown; a crash loses at most that second of counts.
  void flush_usage();

  // ---- for the SSO dashboard ----
  // What the resource's product offers (its console, rotation, SQL): null for a resource of a
  // product no longer in the catalog.
  const product::Descriptor* descriptor_of(const std::string& product_id) const {
    auto it = products_.find(product_id);
    return it == products_.end() || !it->second ? nullptr : &it->second->descriptor();
  }
  // The resource's current Secret[] (404 like get() for another installation's resource).
  model::Json secrets(const std::string& installation_id, const std::string& resource_id);
  // Ledger values for each of `days` (YYYY-MM-DD, UTC, consecutive): every metric the
  // resource's product declares (in its order, then any other metric recorded), one value per
  // day, 0 where nothing was recorded.
  struct UsageSeries {
    product::MetricSpec metric;
    std::vector<int64_t> values;
  };
  std::vector<UsageSeries> usage_by_day(const std::string& installation_id,
                                        const std::string& resource_id,
                                        const std::vector<std::string>& days);

 private:
  store::ResourceRow require_resource(store::ReadTx& tx, const std::string& installation_id,
                                      const std::string& resource_id) const;
  const model::Product& require_product(const std::string& product_id) const;
  product::Product& product_of(const model::Product& p) const;
  const model::Plan& require_plan(const model::Product& product, const std::string& plan_id) const;
  void check_metadata(const model::Product& product, const model::Json& metadata) const;
  // The plan's `maxResources` (catalog): 409 when the installation already holds that many
  // live resources on it. Called before the product does any work and again in the write
  // transaction that adds the resource, so concurrent provisions cannot overshoot.
  void check_max_resources(store::ReadTx& tx, const std::string& installation_id,
                           const model::Plan& plan) const;
  // An installation-scope plan chosen for a resource (Provision or Update Resource) becomes
  // the installation's plan, and Vercel is told with installation.updated (§8.1). Nothing
  // for a resource-scope plan or the plan the installation already has.
  void adopt_installation_plan(store::WriteTx& tx, store::InstallationRow inst,
                               const model::Plan& plan, int64_t now);
  model::Json render(const store::ResourceRow& row) const;
  product::Product& product_of(const store::ResourceRow& row) const;
  // What a product is told about a resource (the row's current name, plan and metadata).
  product::ResourceInfo info_of(const store::ResourceRow& row) const;
  // New Wharf-made secrets (data-plane URL and tokens) the product declares: writes the
  // tokens' hashes and returns the Secret[].
  model::Json issue_secrets(store::WriteTx& tx, const store::ResourceRow& row, int64_t now);
  // Seals the resource's secrets into `row`: the Wharf-made ones and the product's own, with
  // the catalog's environment overrides applied. Returns them.
  model::Json seal_secrets(store::ResourceRow& row, const model::Json& wharf_made,
                           const model::Json& product_made) const;
  // The resource's current secrets split into Wharf-made and the product's own.
  std::pair<model::Json, model::Json> split_secrets(const store::ResourceRow& row) const;
  model::Json open_secrets(const store::ResourceRow& row) const;
  // Turns a lifecycle call's refusal into the answer Vercel gets (its code and user message).
  static model::ApiError refused(const product::ProductRefused& e);
  // A product that did not answer a call Vercel waits for (rotation, REPL): 503 with a user
  // message, never the product's own text.
  static model::ApiError unavailable(const model::Product& product, const std::string& what,
                                     const std::exception& e);
  // Update Resource Secrets with the resource's whole Secret[], in `tx` (vercel-api.md §6.1).
  static void push_secrets(store::WriteTx& tx, const store::ResourceRow& row,
                           const model::Json& secrets, int64_t now);
  // A pending resource becomes ready with the product's secrets; `push`: Vercel learns them
  // through the outbox (no request of Vercel's is waiting for them). Returns the resource as
  // finished, or nothing when it was not pending (already finished, failed or deleted).
  std::optional<store::ResourceRow> finish_provision(const std::string& resource_id,
                                                     const product::ProductReply& reply, bool push,
                                                     model::Json* secrets_out = nullptr);
  void wake_outbox() const {
    if (options_.wake_outbox) options_.wake_outbox();
  }
  // Adds a call's usage to the in-memory batch (a ledger write per query would put an
  // fsync on every data-plane call).
  void record_usage(const store::ResourceRow& row, const product::UsageDelta& usage);
  // A resource gone for Vercel: deleted, its secrets forgotten, its tokens stop working with
  // this commit; the hooks' `deleted` runs in the same transaction.
  void mark_deleted(store::WriteTx& tx, store::ResourceRow& row, int64_t now);
  // Stored after provision (before: null) or Update Resource: the hooks' `changed` runs.
  void resource_changed(store::WriteTx& tx, const store::ResourceRow* before,
                        const store::ResourceRow& after);
  // A change made on our side: tell Vercel (resource.updated) in the same transaction.
  void resource_updated(store::WriteTx& tx, const store::ResourceRow& row);

  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  InstallationService& installations_;
  std::map<std::string, product::Product*> products_;
  const util::SecretBox& box_;
  const util::Clock& clock_;
  Options options_;
  std::vector<Hooks> hooks_;

  struct PendingUsage {
    std::string product_id;
    std::string billing_plan_id;
    std::map<std::pair<std::string, std::string>, int64_t> counters;  // (day, metric) -> delta
  };
  std::mutex usage_mu_;
  std::map<std::string, PendingUsage> pending_usage_;  // resource id -> batch
};

}  // namespace wharf::service
