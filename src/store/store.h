// The Store interface: every piece of durable state goes through it. Backends (SQLite
// embedded default, PostgreSQL for scale-out) implement the same transactions over the same
// portable schema (store/migrations). Services own transactions: they call write() with a
// function that does all the reads and writes of one operation; it commits when the
// function returns and rolls back if it throws — callers answer only after commit.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wharf::store {

struct InstallationRow {
  std::string id;
  std::string account_id;
  std::string installer_user_id;
  std::string scopes_json = "[]";
  std::string accepted_policies_json = "{}";
  std::optional<std::string> account_json;  // AccountInfo as received
  std::string token_type;
  std::optional<std::string> access_token_sealed;  // AES-GCM sealed; cleared when finalized
  std::optional<std::string> billing_plan_id;      // installation-level plan
  std::optional<std::string> notification_json;
  std::string status = "active";  // active | uninstalled
  std::optional<std::string> delete_reason;
  bool cascade_delete = false;
  bool finalized = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::optional<int64_t> deleted_ms;
  // When the access token was received (Upsert Installation or a credential rotation), and
  // when Vercel said it expires (rotation answers carry expires_in; Upsert's do not).
  int64_t token_issued_ms = 0;
  std::optional<int64_t> token_expires_ms;
};

struct IdempotencyKey {
  std::string installation_id;  // "" for routes without an installation
  std::string method;
  std::string path;
  std::string key;
};

struct IdempotencyRow {
  IdempotencyKey key;
  std::string request_hash;  // hex SHA-256 of the request body
  std::string state;         // pending | done
  int status = 0;
  std::string content_type;
  std::string body;
  int64_t created_ms = 0;
  int64_t lease_until_ms = 0;  // a pending claim older than this is abandoned (crash)
  std::string owner;           // request id holding the pending claim
};

struct ResourceRow {
  std::string id;
  std::string installation_id;
  std::string product_id;
  std::string name;
  std::string metadata_json = "{}";
  std::string status = "ready";  // ResourceStatus; "uninstalled" once deleted
  std::string billing_plan_id;
  std::optional<std::string> notification_json;
  std::optional<std::string> protocol_settings_json;
  std::optional<std::string> external_id;
  std::optional<std::string> idempotency_key;  // of the Provision request that created it
  std::optional<std::string> secrets_sealed;   // current Secret[] as JSON, AES-GCM sealed
  // Why billing restricts the resource: "credits" (prepaid balance exhausted: reads only),
  // "overdue:<invoice>" (suspended for an overdue invoice). Absent = no restriction.
  std::optional<std::string> billing_hold;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::optional<int64_t> deleted_ms;

  // Suspended by billing for an overdue invoice (only paying it resumes the resource).
  bool overdue_hold() const { return billing_hold && billing_hold->rfind("overdue:", 0) == 0; }
};

// A data-plane token, stored only as its SHA-256.
struct CredentialRow {
  std::string token_hash;
  std::string resource_id;
  std::string access;  // rw | ro
  int64_t created_ms = 0;
  std::optional<int64_t> expires_ms;  // set when rotated out; absent = no expiry
};

// A claim to move resources from one installation to another (partner-api.md §5.16–5.18).
struct TransferClaimRow {
  std::string id;  // providerClaimId, or the legacy Vercel-chosen transferId
  std::string source_installation_id;
  std::string resource_ids_json = "[]";
  int64_t expires_ms = 0;
  bool legacy = false;
  std::string status = "created";                     // created | completed
  std::string verified_by_json = "[]";                // target installations that verified
  std::optional<std::string> target_installation_id;  // the winner, once completed
  int64_t created_ms = 0;
  std::optional<int64_t> completed_ms;
};

// A call to Vercel (or to a product's backend) recorded in the same transaction as the change
// it reports, delivered later by vercel::Outbox (at least once, in `seq` order per lane).
struct OutboxRow {
  std::string id;
  int64_t seq = 0;  // assigned by insert_outbox: global delivery order
  std::string installation_id;
  // Calls of one lane are delivered in order, one at a time; "" is the installation's own
  // lane (calls to Vercel). A product's calls on a resource have a lane per resource, so a
  // backend that is down never holds up what Vercel is told.
  std::string lane;
  const std::string& ordering_key() const { return lane.empty() ? installation_id : lane; }
  std::string kind;  // e.g. "event", "secrets"
  std::string method;
  std::string path;               // relative to the Vercel API base URL
  std::string body;               // JSON
  std::string state = "pending";  // pending | delivered | dead
  int64_t attempts = 0;
  int64_t next_attempt_ms = 0;
  int64_t last_status = 0;
  std::string last_error;
  std::string response_body;  // kept for dead letters
  int64_t created_ms = 0;
  std::optional<int64_t> done_ms;
};

// Which replica delivers a lane's calls for now (replicas sharing one store, issue 13): a
// lane's head is sent only by the owner of its live lease (migration 16).
struct OutboxLeaseRow {
  std::string lane;  // OutboxRow::ordering_key()
  std::string owner;
  int64_t until_ms = 0;
};

struct OutboxStats {
  int64_t pending = 0;
  int64_t dead = 0;
  int64_t oldest_pending_created_ms = 0;  // 0 when nothing is pending
};

// A webhook delivery from Vercel, kept (unknown types included) and de-duplicated by id.
struct WebhookEventRow {
  std::string id;
  std::string type;
  std::optional<std::string> installation_id;
  std::string body;
  int64_t received_ms = 0;
  std::optional<int64_t> processed_ms;  // set once acted upon
};

// A span of time during which a resource (or, with resource_id "", the installation) was on
// one billing plan in one installation. The store keeps these itself: put_resource and
// put_installation close the open span and open a new one whenever the plan, the
// installation or the deletion changes, so every code path that changes a plan is covered.
struct PlanPeriodRow {
  std::string installation_id;
  std::string resource_id;  // "" = the installation's own plan
  std::string plan_id;
  int64_t start_ms = 0;
  std::optional<int64_t> end_ms;  // open while the plan is current
};

// A plan change waiting for the new plan's `effectiveDate` (flows.md F13 step 5): the
// resource (or, with resource_id "", the installation) stays on its plan until effective_ms,
// when the billing pass moves it to plan_id. At most one per resource (a new request
// replaces it).
struct PlanScheduleRow {
  std::string installation_id;
  std::string resource_id;  // "" = the installation's own plan
  std::string plan_id;
  int64_t effective_ms = 0;
  int64_t created_ms = 0;
  bool operator==(const PlanScheduleRow&) const = default;
};

// Where billing stands for one installation (service/billing.cpp).
struct BillingStateRow {
  std::string installation_id;
  int64_t last_data_ms = 0;         // timestamp of the last billing data enqueued
  int64_t final_through_ms = 0;     // eod of the last usage day whose final data was enqueued
  int64_t invoiced_through_ms = 0;  // end of the last period invoiced
  int64_t last_balance_ms = 0;      // last balances submission enqueued
  bool final_submitted = false;     // uninstall: final data and invoices enqueued
  bool finalize_enqueued = false;   // uninstall: Finalize Installation enqueued
  std::optional<int64_t> gone_ms;   // Vercel answered 401/403/404/410 for it: stop calling
  // Uninstall cleanup (docs/decisions.md, "Uninstall cleanup never stalls"): when the leftover
  // resources of an unfinalized uninstall were suspended, and when their deletion was decided
  // (from then on nothing more is billed or sent for the installation).
  std::optional<int64_t> leftovers_suspended_ms;
  std::optional<int64_t> leftovers_deleted_ms;
  bool operator==(const BillingStateRow&) const = default;
};

// One invoice: per resource (or installation), per plan, per period. `id` is the externalId
// sent to Vercel, derived from those three so a retried submission can never bill twice.
struct InvoiceRow {
  std::string id;
  std::string installation_id;
  std::string resource_id;  // "" = installation-level
  std::string plan_id;
  int64_t period_start_ms = 0;
  int64_t period_end_ms = 0;
  std::string items_json = "[]";
  std::string total = "0.00";  // decimal string, cents
  // Ours: submitting (in the outbox), carried (under $0.50, moved to the next invoice),
  // waived (under $0.50 on the final invoice); then Vercel's InvoiceState as reported.
  std::string state = "submitting";
  std::optional<std::string> vercel_invoice_id;
  std::optional<std::string> carried_into;  // invoice that took this amount over
  bool final = false;
  bool test = false;
  std::optional<std::string> refund_total;
  std::optional<std::string> refund_reason;
  std::optional<int64_t> paid_ms;
  std::optional<int64_t> overdue_ms;
  bool suspended = false;  // its resources were suspended for it (overdue)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// A prepaid balance in micro-dollars: credited by purchases, debited by usage.
struct BalanceRow {
  std::string installation_id;
  std::string resource_id;  // "" = installation-level credits
  int64_t credited_micros = 0;
  int64_t debited_micros = 0;
  int64_t updated_ms = 0;
  int64_t remaining() const { return credited_micros - debited_micros; }
};

// A credit purchase (Provision Purchase), recorded once per Vercel invoice id.
struct PurchaseRow {
  std::string installation_id;
  std::string invoice_id;
  std::string credits_json = "[]";  // [{resourceId?, micros}]
  int64_t created_ms = 0;
};

struct UsageEntry {
  std::string day;  // YYYY-MM-DD
  std::string metric;
  int64_t value = 0;
};

// ---- SSO dashboard sessions (migration 7) -------------------------------------------------
// A signed-in dashboard user (flows.md §2.1 step 5). The cookie carries a random session id;
// only its SHA-256 is stored, so a copy of the database opens no session. The id_token the
// session came from is never stored.
struct SessionRow {
  std::string id_hash;  // hex SHA-256 of the cookie value
  std::string installation_id;
  std::string account_id;
  std::string user_id;
  std::string role;  // ADMIN | USER (user_role claim)
  std::string user_name;
  std::string user_email;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
};

// ---- the flags product (migration 10) ------------------------------------------------------
// A feature flag of a `flags` resource. Its definition lives here, in the state store, so a
// change and the outbox calls that mirror it to Vercel commit together (docs/decisions.md).
struct FlagRow {
  std::string id;  // flg_…: stable, the experimentation item id Vercel knows it by
  std::string resource_id;
  std::string key;
  std::string definition_json;  // canonical definition (product/flags/engine.h)
  bool archived = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// A `flags` resource's flag set as a whole: its version, and where syncing to the user's
// Global Config stands.
struct FlagSetRow {
  std::string resource_id;
  int64_t version = 0;      // bumped by every change of a flag (evaluation caches check it)
  std::string sync_path;    // "global-config" or the legacy "edge-config"; "" = not learned
  std::string sync_digest;  // the store's digest as Vercel last reported it
  std::string sync_hash;    // SHA-256 of the data we last wrote (same data: no write)
  int64_t updated_ms = 0;
  bool operator==(const FlagSetRow&) const = default;
};

// A database branched from a resource for one deployment (flows.md F17, the built-in
// deployment action of the database products), with the credentials reported to Vercel as
// the action's outcome (migration 15).
struct BranchRow {
  std::string id;  // the branch's database id in the product ("<resource id>-br-<hash>")
  std::string resource_id;
  std::string installation_id;
  std::string deployment_id;
  std::string action;
  // running | succeeded | failed | cancelled (asked to stop: dropped once the work ends) |
  // dropped (cleanup: the database and its tokens are gone)
  std::string status = "running";
  std::string status_text;
  std::optional<std::string> secrets_sealed;  // Secret[] as JSON, AES-GCM sealed
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

class ReadTx {
 public:
  virtual ~ReadTx() = default;
  virtual std::optional<InstallationRow> installation(const std::string& id) = 0;
  virtual std::optional<IdempotencyRow> idempotency(const IdempotencyKey& key) = 0;
  virtual std::optional<ResourceRow> resource(const std::string& id) = 0;
  virtual std::vector<ResourceRow> resources_of(const std::string& installation_id) = 0;
  // The installation's resources not deleted (index resources_live: deleted rows, which
  // stay for billing, are not read).
  virtual std::vector<ResourceRow> live_resources_of(const std::string& installation_id) = 0;
  // Every live resource of a catalog product (usage sampling).
  virtual std::vector<ResourceRow> live_resources_of_product(const std::string& product_id) = 0;
  virtual std::optional<ResourceRow> resource_by_idempotency_key(const std::string& installation_id,
                                                                 const std::string& key) = 0;
  virtual std::optional<CredentialRow> credential(const std::string& token_hash) = 0;
  virtual std::optional<TransferClaimRow> transfer_claim(const std::string& id) = 0;
  // The oldest pending item of each installation (delivery keeps per-installation order),
  // only those due at `due_by_ms` (next_attempt_ms <= due_by_ms), oldest first: heads in
  // backoff must not fill the batch and hide a due one.
  virtual std::vector<OutboxRow> outbox_heads(size_t limit, int64_t due_by_ms) = 0;
  virtual std::vector<OutboxRow> outbox_list(const std::string& state, size_t limit) = 0;
  virtual std::optional<OutboxLeaseRow> outbox_lease(const std::string& lane) = 0;
  virtual OutboxStats outbox_stats() = 0;
  virtual std::optional<WebhookEventRow> webhook_event(const std::string& id) = 0;
  // metric -> value for one resource and day (YYYY-MM-DD)
  virtual std::map<std::string, int64_t> usage(const std::string& resource_id,
                                               const std::string& day) = 0;
  // Ledger entries of one resource for days in [from_day, to_day], ordered by day.
  virtual std::vector<UsageEntry> usage_between(const std::string& resource_id,
                                                const std::string& from_day,
                                                const std::string& to_day) = 0;
  // usage_between of several resources at once (each list ordered as usage_between's; a
  // resource without entries has none). The default asks usage_between for each; a backend
  // whose statements are round trips answers in one.
  virtual std::map<std::string, std::vector<UsageEntry>> usage_between_many(
      const std::vector<std::string>& resource_ids, const std::string& from_day,
      const std::string& to_day);
  // A hint that usage_between_many with these arguments comes next (after other reads and
  // writes): a backend whose statements are round trips may send it now, so the server reads
  // while the caller works. The answer is the same either way. The default does nothing.
  virtual void expect_usage_between_many(const std::vector<std::string>& resource_ids,
                                         const std::string& from_day, const std::string& to_day);
  // The latest value of a metric on a day before `day` (levels such as storage persist).
  virtual std::optional<int64_t> usage_before(const std::string& resource_id,
                                              const std::string& metric,
                                              const std::string& day) = 0;
  // usage_before of several resources for one metric: resource -> value (a resource with no
  // such value has no entry). The default asks usage_before for each; a backend whose
  // statements are round trips answers in one.
  virtual std::map<std::string, int64_t> usage_before_many(
      const std::vector<std::string>& resource_ids, const std::string& metric,
      const std::string& day);

  // Billing.
  // Installations billing still concerns: active, or uninstalled and not yet finalized.
  virtual std::vector<InstallationRow> installations_to_bill() = 0;
  // A hint before reading these installations' billing rows one installation after another
  // (the billing pass): each one's row, billing state, scheduled plan changes, plan spans,
  // resources, invoices, balances and prepaid charges. A backend whose statements are round
  // trips may read them for all the installations at once; reads stay exact (what the
  // transaction writes afterwards is read back). The default does nothing.
  virtual void prefetch_billing(const std::vector<std::string>& installation_ids);
  // Plan spans of an installation overlapping [from_ms, to_ms), ordered by start.
  virtual std::vector<PlanPeriodRow> plan_periods(const std::string& installation_id,
                                                  int64_t from_ms, int64_t to_ms) = 0;
  virtual std::optional<BillingStateRow> billing_state(const std::string& installation_id) = 0;
  // Scheduled plan changes of an installation (migration 14), ordered by effective time.
  virtual std::vector<PlanScheduleRow> plan_schedules_of(const std::string& installation_id) = 0;
  virtual std::optional<InvoiceRow> invoice(const std::string& installation_id,
                                            const std::string& id) = 0;
  virtual std::optional<InvoiceRow> invoice_by_vercel_id(const std::string& installation_id,
                                                         const std::string& vercel_id) = 0;
  virtual std::vector<InvoiceRow> invoices_of(const std::string& installation_id) = 0;
  virtual std::vector<BalanceRow> balances_of(const std::string& installation_id) = 0;
  virtual std::optional<PurchaseRow> purchase(const std::string& installation_id,
                                              const std::string& invoice_id) = 0;
  // Micro-dollars of usage already debited from prepaid balances for a resource and period.
  virtual int64_t prepaid_charged(const std::string& resource_id, int64_t period_start_ms) = 0;
  // SSO dashboard sessions (migration 7).
  virtual std::optional<SessionRow> session(const std::string& id_hash) = 0;
  // The flags product (migration 10). A resource's flags ordered by key.
  virtual std::vector<FlagRow> flags_of(const std::string& resource_id) = 0;
  virtual std::optional<FlagRow> flag(const std::string& resource_id, const std::string& key) = 0;
  virtual std::optional<FlagRow> flag_by_id(const std::string& id) = 0;
  virtual std::optional<FlagSetRow> flag_set(const std::string& resource_id) = 0;
  virtual int64_t flag_count(const std::string& resource_id) = 0;
  // Deployment branches (migration 15): by id, and every branch of a resource.
  virtual std::optional<BranchRow> branch(const std::string& id) = 0;
  virtual std::vector<BranchRow> branches_of(const std::string& resource_id) = 0;
};

// Writes. The domain rules every backend shares live here (store.cpp), not in the backends:
// put_installation and put_resource keep the plan spans (PlanPeriodRow) in step with the rows,
// and insert_outbox numbers calls in commit order. A backend implements the primitives under
// "Backend primitives" and only stores and fetches.
class WriteTx : public ReadTx {
 public:
  void put_installation(const InstallationRow& row);  // insert or replace; tracks the plan span
  // Inserts a new row; returns false (and writes nothing) when the key already exists.
  virtual bool insert_idempotency(const IdempotencyRow& row) = 0;
  virtual void update_idempotency(const IdempotencyRow& row) = 0;
  virtual void delete_idempotency(const IdempotencyKey& key) = 0;
  virtual int64_t purge_idempotency(int64_t created_before_ms) = 0;
  void put_resource(const ResourceRow& row);  // insert or replace; tracks the plan span
  virtual void put_transfer_claim(const TransferClaimRow& row) = 0;  // insert or replace
  void insert_outbox(OutboxRow& row);  // assigns row.seq: one more than any before it
  void update_outbox(const OutboxRow& row);
  // Takes (or renews) the lease of `lane` for `owner` until `until_ms`, atomically: only when
  // no lease exists, it is `owner`'s, or it ended by `now_ms`. Returns whether it was taken.
  virtual bool take_outbox_lease(const std::string& lane, const std::string& owner, int64_t now_ms,
                                 int64_t until_ms) = 0;
  // Ends `owner`'s lease of `lane` (its call's outcome is recorded); another's is left alone.
  virtual void release_outbox_lease(const std::string& lane, const std::string& owner) = 0;
  virtual void put_webhook_event(const WebhookEventRow& row) = 0;  // insert or replace
  virtual void insert_credential(const CredentialRow& row) = 0;
  // Sets expires_ms on every credential of the resource that has none (rotation, deletion).
  virtual void expire_credentials(const std::string& resource_id, int64_t expires_ms) = 0;
  virtual void delete_credentials(const std::string& resource_id) = 0;
  // Adds `delta` to a counter metric; `max_value` metrics keep the largest value seen.
  virtual void add_usage(const std::string& resource_id, const std::string& day,
                         const std::string& metric, int64_t delta) = 0;
  virtual void max_usage(const std::string& resource_id, const std::string& day,
                         const std::string& metric, int64_t value) = 0;
  // A level reported by a product's backend: the day's value becomes `value` (the last one).
  virtual void set_usage(const std::string& resource_id, const std::string& day,
                         const std::string& metric, int64_t value) = 0;
  // Records a usage event's id for a product; false when it was recorded before (a retried
  // batch), in which case the event must not be counted again.
  virtual bool record_usage_event(const std::string& product_id, const std::string& event_id,
                                  int64_t now_ms) = 0;

  virtual void put_billing_state(const BillingStateRow& row) = 0;  // insert or replace
  virtual void put_plan_schedule(const PlanScheduleRow& row) = 0;  // insert or replace
  // Returns whether there was one.
  virtual bool delete_plan_schedule(const std::string& installation_id,
                                    const std::string& resource_id) = 0;
  virtual void put_invoice(const InvoiceRow& row) = 0;  // insert or replace
  virtual void put_balance(const BalanceRow& row) = 0;  // insert or replace
  // Records a purchase; false (and nothing written) when that invoice was already credited.
  virtual bool insert_purchase(const PurchaseRow& row) = 0;
  virtual void set_prepaid_charged(const std::string& resource_id, int64_t period_start_ms,
                                   int64_t micros) = 0;
  // SSO dashboard sessions (migration 7).
  virtual void insert_session(const SessionRow& row) = 0;
  virtual void delete_session(const std::string& id_hash) = 0;
  virtual int64_t purge_sessions(int64_t expired_before_ms) = 0;  // returns rows deleted
  // A member's sessions on an installation (marketplace.member.changed): their role changed,
  // or (delete) their access ended. Return the sessions changed.
  virtual int64_t set_member_sessions_role(const std::string& installation_id,
                                           const std::string& user_id, const std::string& role) = 0;
  virtual int64_t delete_member_sessions(const std::string& installation_id,
                                         const std::string& user_id) = 0;
  // The flags product (migration 10).
  virtual void put_flag(const FlagRow& row) = 0;  // insert or replace (by id)
  virtual void delete_flag(const std::string& id) = 0;
  virtual void put_flag_set(const FlagSetRow& row) = 0;  // insert or replace
  // Every flag of the resource and its flag set (the resource was deleted).
  virtual void delete_flags_of(const std::string& resource_id) = 0;
  virtual void put_branch(const BranchRow& row) = 0;  // insert or replace

  // Retention (service::Retention); each returns the rows deleted. Outbox rows delivered or
  // dropped before the cutoff (pending and dead ones are never purged):
  virtual int64_t purge_outbox(int64_t done_before_ms) = 0;
  // Webhook deliveries processed before the cutoff (their ids stop de-duplicating):
  virtual int64_t purge_webhook_events(int64_t processed_before_ms) = 0;
  // Usage-ledger days before `before_day` (YYYY-MM-DD):
  virtual int64_t purge_usage(const std::string& before_day) = 0;
  // Usage event ids (dedupe) recorded before `created_before_ms`.
  virtual int64_t purge_usage_events(int64_t created_before_ms) = 0;
  // An operator's actions on dead letters (`wharf outbox retry|drop`): back to pending, due
  // now, attempts reset (`id` "" = every dead letter); or dropped (kept until purged).
  // Return how many rows changed.
  virtual int64_t retry_dead_outbox(const std::string& id, int64_t now_ms) = 0;
  virtual int64_t drop_dead_outbox(const std::string& id, int64_t now_ms) = 0;

 protected:
  // ---- Backend primitives (the rules above call these) ----
  virtual void store_installation(const InstallationRow& row) = 0;  // insert or replace
  virtual void store_resource(const ResourceRow& row) = 0;          // insert or replace
  // Ends the open plan span of (installation, resource) at `at_ms`, if there is one.
  virtual void end_plan_span(const std::string& installation_id, const std::string& resource_id,
                             int64_t at_ms) = 0;
  // Opens a span on `plan_id` from `at_ms` (one that starts at the same instant is replaced).
  virtual void start_plan_span(const std::string& installation_id, const std::string& resource_id,
                               const std::string& plan_id, int64_t at_ms) = 0;
  // The largest outbox seq (0 when empty). With store_outbox it must be safe against another
  // transaction inserting concurrently: a single writer (SQLite), or a transaction that fails
  // and runs again (PostgreSQL's SERIALIZABLE, and the unique index on seq).
  virtual int64_t max_outbox_seq() = 0;
  virtual void store_outbox(const OutboxRow& row) = 0;    // a new row
  virtual void restore_outbox(const OutboxRow& row) = 0;  // every column of an existing row

 private:
  void track_plan(const std::string& installation_id, const std::string& resource_id,
                  const std::optional<std::string>& old_plan, bool old_deleted,
                  const std::optional<std::string>& new_plan, bool new_deleted, int64_t at);
  // The outbox seq after this transaction's last insert: known without asking the backend
  // again (a billing pass inserts thousands of calls in one transaction).
  std::optional<int64_t> next_seq_;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual void read(const std::function<void(ReadTx&)>& fn) = 0;
  virtual void write(const std::function<void(WriteTx&)>& fn) = 0;
  // Cheap liveness probe for /readyz.
  virtual bool healthy() = 0;
  virtual std::string describe() const = 0;  // e.g. "sqlite:/data/state.db" (no secrets)
  // Leadership of the periodic passes (billing, reconcile, credential rotation, retention):
  // true while this process holds it. Called every few seconds: it takes the leadership when
  // it is free and keeps it while held. Of the processes sharing one store exactly one leads;
  // a dead leader's is taken over by another within a bounded time (the backend says how).
  virtual bool lead() { return true; }
  // Whether processes on other machines may share this store (PostgreSQL): then the outbox
  // claims lanes with leases (claim_outbox_heads) instead of reading heads.
  virtual bool shared() const { return false; }
  // Gives back memory idle connections hold (page caches: the OS page cache still has the
  // pages); serve calls it every few seconds, before malloc_trim.
  virtual void release_memory() {}
};

// The due lane heads (as ReadTx::outbox_heads) whose lanes `owner` now holds the lease of,
// until `lease_until_ms`: heads of lanes another live owner holds are skipped. Backend-neutral:
// the atomicity is take_outbox_lease's.
std::vector<OutboxRow> claim_outbox_heads(WriteTx& tx, const std::string& owner, size_t limit,
                                          int64_t now_ms, int64_t lease_until_ms);

// Backends register a factory for their URL scheme ("sqlite", "postgres"); app/ does the
// registering so the core never names a concrete backend.
using StoreFactory = std::function<std::unique_ptr<Store>(const std::string& url)>;
void register_backend(const std::string& scheme, StoreFactory factory);
// Opens the store for a URL such as sqlite:///abs/path/state.db or sqlite://relative.db.
// Throws std::runtime_error naming the problem.
std::unique_ptr<Store> open_store(const std::string& url);

}  // namespace wharf::store
