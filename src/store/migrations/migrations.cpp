#include "store/migrations/migrations.h"

namespace wharf::store {

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "installations and idempotency", R"sql(
CREATE TABLE installations (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL,
  installer_user_id TEXT NOT NULL,
  scopes TEXT NOT NULL,
  accepted_policies TEXT NOT NULL,
  account TEXT,
  token_type TEXT NOT NULL,
  access_token {BLOB},
  billing_plan_id TEXT,
  notification TEXT,
  status TEXT NOT NULL,
  delete_reason TEXT,
  cascade_delete {INT64} NOT NULL DEFAULT 0,
  finalized {INT64} NOT NULL DEFAULT 0,
  created_ms {INT64} NOT NULL,
  updated_ms {INT64} NOT NULL,
  deleted_ms {INT64}
);
CREATE TABLE idempotency (
  installation_id TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  state TEXT NOT NULL,
  status {INT64} NOT NULL DEFAULT 0,
  content_type TEXT NOT NULL DEFAULT '',
  body TEXT NOT NULL DEFAULT '',
  owner TEXT NOT NULL DEFAULT '',
  created_ms {INT64} NOT NULL,
  lease_until_ms {INT64} NOT NULL,
  PRIMARY KEY (installation_id, method, path, idem_key)
);
CREATE INDEX idempotency_by_created ON idempotency (created_ms)
)sql"},
      {2, "resources, data-plane credentials, usage ledger", R"sql(
CREATE TABLE resources (
  id TEXT PRIMARY KEY,
  installation_id TEXT NOT NULL,
  product_id TEXT NOT NULL,
  name TEXT NOT NULL,
  metadata TEXT NOT NULL,
  status TEXT NOT NULL,
  billing_plan_id TEXT NOT NULL,
  notification TEXT,
  protocol_settings TEXT,
  external_id TEXT,
  idempotency_key TEXT,
  secrets {BLOB},
  created_ms {INT64} NOT NULL,
  updated_ms {INT64} NOT NULL,
  deleted_ms {INT64}
);
CREATE INDEX resources_by_installation ON resources (installation_id);
CREATE UNIQUE INDEX resources_by_idempotency_key ON resources (installation_id, idempotency_key);
CREATE TABLE resource_credentials (
  token_hash TEXT PRIMARY KEY,
  resource_id TEXT NOT NULL,
  access TEXT NOT NULL,
  created_ms {INT64} NOT NULL,
  expires_ms {INT64}
);
CREATE INDEX resource_credentials_by_resource ON resource_credentials (resource_id);
CREATE TABLE usage_ledger (
  resource_id TEXT NOT NULL,
  day TEXT NOT NULL,
  metric TEXT NOT NULL,
  value {INT64} NOT NULL,
  PRIMARY KEY (resource_id, day, metric)
)
)sql"},
      {3, "resource transfer claims", R"sql(
CREATE TABLE transfer_claims (
  id TEXT PRIMARY KEY,
  source_installation_id TEXT NOT NULL,
  resource_ids TEXT NOT NULL,
  expires_ms {INT64} NOT NULL,
  legacy {INT64} NOT NULL DEFAULT 0,
  status TEXT NOT NULL,
  verified_by TEXT NOT NULL DEFAULT '[]',
  target_installation_id TEXT,
  created_ms {INT64} NOT NULL,
  completed_ms {INT64}
)
)sql"},
      {4, "outbox of calls to Vercel", R"sql(
CREATE TABLE outbox (
  id TEXT PRIMARY KEY,
  seq {INT64} NOT NULL,
  installation_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  body TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts {INT64} NOT NULL DEFAULT 0,
  next_attempt_ms {INT64} NOT NULL,
  last_status {INT64} NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  response_body TEXT NOT NULL DEFAULT '',
  created_ms {INT64} NOT NULL,
  done_ms {INT64}
);
CREATE UNIQUE INDEX outbox_by_seq ON outbox (seq);
CREATE INDEX outbox_pending ON outbox (state, installation_id, seq)
)sql"},
      {5, "webhook deliveries received", R"sql(
CREATE TABLE webhook_events (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  installation_id TEXT,
  body TEXT NOT NULL,
  received_ms {INT64} NOT NULL,
  processed_ms {INT64}
)
)sql"},
      {6, "billing: plan spans, invoices, prepaid balances", R"sql(
ALTER TABLE resources ADD COLUMN billing_hold TEXT;
CREATE TABLE plan_periods (
  installation_id TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  start_ms {INT64} NOT NULL,
  end_ms {INT64},
  PRIMARY KEY (installation_id, resource_id, start_ms)
);
CREATE INDEX plan_periods_open ON plan_periods (resource_id, end_ms);
CREATE TABLE billing_state (
  installation_id TEXT PRIMARY KEY,
  last_data_ms {INT64} NOT NULL,
  final_through_ms {INT64} NOT NULL,
  invoiced_through_ms {INT64} NOT NULL,
  last_balance_ms {INT64} NOT NULL,
  final_submitted {INT64} NOT NULL,
  finalize_enqueued {INT64} NOT NULL,
  gone_ms {INT64}
);
CREATE TABLE invoices (
  installation_id TEXT NOT NULL,
  id TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  period_start_ms {INT64} NOT NULL,
  period_end_ms {INT64} NOT NULL,
  items TEXT NOT NULL,
  total TEXT NOT NULL,
  state TEXT NOT NULL,
  vercel_invoice_id TEXT,
  carried_into TEXT,
  final {INT64} NOT NULL,
  test {INT64} NOT NULL,
  refund_total TEXT,
  refund_reason TEXT,
  paid_ms {INT64},
  overdue_ms {INT64},
  suspended {INT64} NOT NULL,
  created_ms {INT64} NOT NULL,
  updated_ms {INT64} NOT NULL,
  PRIMARY KEY (installation_id, id)
);
CREATE INDEX invoices_by_vercel_id ON invoices (installation_id, vercel_invoice_id);
CREATE TABLE balances (
  installation_id TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  credited_micros {INT64} NOT NULL,
  debited_micros {INT64} NOT NULL,
  updated_ms {INT64} NOT NULL,
  PRIMARY KEY (installation_id, resource_id)
);
CREATE TABLE purchases (
  installation_id TEXT NOT NULL,
  invoice_id TEXT NOT NULL,
  credits TEXT NOT NULL,
  created_ms {INT64} NOT NULL,
  PRIMARY KEY (installation_id, invoice_id)
);
CREATE TABLE prepaid_charges (
  resource_id TEXT NOT NULL,
  period_start_ms {INT64} NOT NULL,
  micros {INT64} NOT NULL,
  PRIMARY KEY (resource_id, period_start_ms)
);
INSERT INTO plan_periods (installation_id, resource_id, plan_id, start_ms, end_ms)
  SELECT installation_id, id, billing_plan_id, created_ms, deleted_ms FROM resources;
INSERT INTO plan_periods (installation_id, resource_id, plan_id, start_ms, end_ms)
  SELECT id, '', billing_plan_id, created_ms, deleted_ms FROM installations
  WHERE billing_plan_id IS NOT NULL
)sql"},
      {7, "SSO dashboard sessions", R"sql(
CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  installation_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  role TEXT NOT NULL,
  user_name TEXT NOT NULL DEFAULT '',
  user_email TEXT NOT NULL DEFAULT '',
  created_ms {INT64} NOT NULL,
  expires_ms {INT64} NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms)
)sql"},
      {8, "live resources by installation; usage by day (retention)", R"sql(
CREATE INDEX resources_live ON resources (installation_id, created_ms) WHERE deleted_ms IS NULL;
CREATE INDEX usage_by_day ON usage_ledger (day)
)sql"},
      {9, "outbox lanes (product calls ordered per resource); usage events seen (dedupe)", R"sql(
ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT '';
CREATE TABLE usage_events (
  product_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  created_ms {INT64} NOT NULL,
  PRIMARY KEY (product_id, event_id)
);
CREATE INDEX usage_events_by_age ON usage_events (created_ms)
)sql"},
      {10, "feature flags (the flags product) and their sync state", R"sql(
CREATE TABLE flags (
  id TEXT PRIMARY KEY,
  resource_id TEXT NOT NULL,
  key TEXT NOT NULL,
  definition TEXT NOT NULL,
  archived {INT64} NOT NULL DEFAULT 0,
  created_ms {INT64} NOT NULL,
  updated_ms {INT64} NOT NULL,
  UNIQUE (resource_id, key)
);
CREATE TABLE flag_sets (
  resource_id TEXT PRIMARY KEY,
  version {INT64} NOT NULL,
  sync_path TEXT NOT NULL DEFAULT '',
  sync_digest TEXT NOT NULL DEFAULT '',
  sync_hash TEXT NOT NULL DEFAULT '',
  updated_ms {INT64} NOT NULL
)
)sql"},
      // The outbox's due-heads read (outbox_heads) from indexes alone: the oldest pending call
      // of each lane straight from an index on the lane expression it groups by (the same
      // expression, or the index is not used), then those calls by (state, seq). Without them
      // it read every pending row, and `lane`, added last, lies past the body: every pending
      // call's whole body was read for each read of the heads (docs/decisions.md, "Concurrent
      // outbox delivery").
      {11, "outbox: due heads read from indexes", R"sql(
CREATE INDEX outbox_lane_heads ON outbox
  (state, (CASE lane WHEN '' THEN installation_id ELSE lane END), seq);
CREATE INDEX outbox_state_seq ON outbox (state, seq)
)sql"},
      // Installation credential rotation (flows.md F18): when the access token was received
      // and when it expires, for scheduled rotation. Tokens received before this migration
      // count from the installation's creation.
      {12, "installations: access token issue and expiry times", R"sql(
ALTER TABLE installations ADD COLUMN token_issued_ms {INT64} NOT NULL DEFAULT 0;
ALTER TABLE installations ADD COLUMN token_expires_ms {INT64};
UPDATE installations SET token_issued_ms = created_ms
)sql"},
      // Uninstall cleanup (flows.md F11): an uninstall whose finalization stalls, or whose
      // installation Vercel reports gone, has its leftover resources suspended and, after
      // WHARF_UNINSTALL_GRACE_DAYS, deleted; these record each step once it was decided.
      {13, "billing_state: uninstall cleanup of leftover resources", R"sql(
ALTER TABLE billing_state ADD COLUMN leftovers_suspended_ms {INT64};
ALTER TABLE billing_state ADD COLUMN leftovers_deleted_ms {INT64}
)sql"},
      // Plan changes scheduled for a plan's effectiveDate (flows.md F13 step 5).
      {14, "plan changes scheduled for a plan's effective date", R"sql(
CREATE TABLE plan_schedules (
  installation_id TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  effective_ms {INT64} NOT NULL,
  created_ms {INT64} NOT NULL,
  PRIMARY KEY (installation_id, resource_id)
)
)sql"},
      // Deployment integration actions (flows.md F17): a database branched per deployment.
      {15, "deployment branches", R"sql(
CREATE TABLE branches (
  id TEXT PRIMARY KEY,
  resource_id TEXT NOT NULL,
  installation_id TEXT NOT NULL,
  deployment_id TEXT NOT NULL,
  action TEXT NOT NULL,
  status TEXT NOT NULL,
  status_text TEXT NOT NULL DEFAULT '',
  secrets {BLOB},
  created_ms {INT64} NOT NULL,
  updated_ms {INT64} NOT NULL
);
CREATE INDEX branches_by_resource ON branches (resource_id)
)sql"},
      // Replicas on one store (issue 13): a lane's calls are sent by the replica leasing it.
      {16, "outbox lane leases", R"sql(
CREATE TABLE outbox_leases (
  lane TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  until_ms {INT64} NOT NULL
)
)sql"},
  };
  return kMigrations;
}

std::string render_migration(const std::string& sql, const std::string& blob_type,
                             const std::string& int64_type) {
  std::string out = sql;
  auto replace_all = [&out](const std::string& from, const std::string& to) {
    for (size_t pos = out.find(from); pos != std::string::npos;
         pos = out.find(from, pos + to.size()))
      out.replace(pos, from.size(), to);
  };
  replace_all("{BLOB}", blob_type);
  replace_all("{INT64}", int64_type);
  return out;
}

}  // namespace wharf::store
