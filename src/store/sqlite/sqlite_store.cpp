#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <vector>

#include "store/migrations/migrations.h"
#include "util/clock.h"
#include "util/idle_low_water.h"
#include "util/log.h"

namespace wharf::store::sqlite {
namespace {

class SqliteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One connection with a cache of prepared statements (keyed by the SQL text's address:
// every statement is a string literal).
class Connection {
 public:
  Connection(const std::string& path, int busy_timeout_ms, bool create) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw SqliteError("cannot open SQLite database " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    exec("PRAGMA foreign_keys=ON");
    exec("PRAGMA synchronous=FULL");
    // Every handler thread has a reader connection: SQLite's default 2 MiB page cache each
    // would let resident memory grow with the store up to 2 MiB x threads (the soak
    // benchmark); the kernel's page cache serves the rest of a WAL database well.
    exec("PRAGMA cache_size=-512");
  }
  ~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw SqliteError("SQLite: " + msg);
    }
  }

  sqlite3_stmt* prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      sqlite3_reset(it->second);  // ~Stmt did (and cleared the bindings); cheap when done
      return it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK)
      throw SqliteError(std::string("SQLite prepare: ") + sqlite3_errmsg(db_));
    cache_[sql] = stmt;
    return stmt;
  }

  sqlite3* db() { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::map<const char*, sqlite3_stmt*> cache_;
};

// A prepared statement in use; resets on destruction so the cached handle is reusable, and
// drops its bound values: a cached statement otherwise keeps its last parameters' copies
// until its next use (the outbox insert kept the last billing body, which grows with the
// period: the soak benchmark's RSS).
class Stmt {
 public:
  Stmt(Connection& c, const char* sql) : conn_(c), stmt_(c.prepare(sql)) {}
  ~Stmt() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, const std::optional<std::string>& v) { return v ? bind(i, *v) : bind_null(i); }
  Stmt& bind_blob(int i, const std::optional<std::string>& v) {
    if (!v) return bind_null(i);
    check(sqlite3_bind_blob(stmt_, i, v->data(), static_cast<int>(v->size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }
  Stmt& bind_null(int i) {
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }

  // Returns true while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SqliteError(std::string("SQLite step: ") + sqlite3_errmsg(conn_.db()));
  }
  // For statements that may hit a constraint: returns the raw result code.
  int step_rc() { return sqlite3_step(stmt_); }

  std::string text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::optional<std::string> opt_text(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return text(col);
  }
  std::optional<std::string> opt_blob(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    auto p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::optional<int64_t> opt_int64(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return int64(col);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK)
      throw SqliteError(std::string("SQLite bind: ") + sqlite3_errmsg(conn_.db()));
  }
  Connection& conn_;
  sqlite3_stmt* stmt_;
};

// A macro so the statements below are single string literals (the statement cache is keyed
// by their address).
#define WHARF_INSTALLATION_COLUMNS                                                       \
  "id, account_id, installer_user_id, scopes, accepted_policies, account, token_type, "  \
  "access_token, billing_plan_id, notification, status, delete_reason, cascade_delete, " \
  "finalized, created_ms, updated_ms, deleted_ms, token_issued_ms, token_expires_ms"

#define WHARF_RESOURCE_COLUMNS                                                                     \
  "id, installation_id, product_id, name, metadata, status, billing_plan_id, notification, "       \
  "protocol_settings, external_id, idempotency_key, secrets, created_ms, updated_ms, deleted_ms, " \
  "billing_hold"

#define WHARF_OUTBOX_COLUMNS                                                               \
  "id, seq, installation_id, kind, method, path, body, state, attempts, next_attempt_ms, " \
  "last_status, last_error, response_body, created_ms, done_ms, lane"

OutboxRow read_outbox(const Stmt& s) {
  OutboxRow r;
  r.id = s.text(0);
  r.seq = s.int64(1);
  r.installation_id = s.text(2);
  r.kind = s.text(3);
  r.method = s.text(4);
  r.path = s.text(5);
  r.body = s.text(6);
  r.state = s.text(7);
  r.attempts = s.int64(8);
  r.next_attempt_ms = s.int64(9);
  r.last_status = s.int64(10);
  r.last_error = s.text(11);
  r.response_body = s.text(12);
  r.created_ms = s.int64(13);
  r.done_ms = s.opt_int64(14);
  r.lane = s.text(15);
  return r;
}

#define WHARF_BRANCH_COLUMNS                                                                \
  "id, resource_id, installation_id, deployment_id, action, status, status_text, secrets, " \
  "created_ms, updated_ms"

BranchRow read_branch(const Stmt& s) {
  BranchRow r;
  r.id = s.text(0);
  r.resource_id = s.text(1);
  r.installation_id = s.text(2);
  r.deployment_id = s.text(3);
  r.action = s.text(4);
  r.status = s.text(5);
  r.status_text = s.text(6);
  r.secrets_sealed = s.opt_blob(7);
  r.created_ms = s.int64(8);
  r.updated_ms = s.int64(9);
  return r;
}

ResourceRow read_resource(const Stmt& s) {
  ResourceRow r;
  r.id = s.text(0);
  r.installation_id = s.text(1);
  r.product_id = s.text(2);
  r.name = s.text(3);
  r.metadata_json = s.text(4);
  r.status = s.text(5);
  r.billing_plan_id = s.text(6);
  r.notification_json = s.opt_text(7);
  r.protocol_settings_json = s.opt_text(8);
  r.external_id = s.opt_text(9);
  r.idempotency_key = s.opt_text(10);
  r.secrets_sealed = s.opt_blob(11);
  r.created_ms = s.int64(12);
  r.updated_ms = s.int64(13);
  r.deleted_ms = s.opt_int64(14);
  r.billing_hold = s.opt_text(15);
  return r;
}

#define WHARF_INVOICE_COLUMNS                                                                   \
  "installation_id, id, resource_id, plan_id, period_start_ms, period_end_ms, items, total, "   \
  "state, vercel_invoice_id, carried_into, final, test, refund_total, refund_reason, paid_ms, " \
  "overdue_ms, suspended, created_ms, updated_ms"

InvoiceRow read_invoice(const Stmt& s) {
  InvoiceRow r;
  r.installation_id = s.text(0);
  r.id = s.text(1);
  r.resource_id = s.text(2);
  r.plan_id = s.text(3);
  r.period_start_ms = s.int64(4);
  r.period_end_ms = s.int64(5);
  r.items_json = s.text(6);
  r.total = s.text(7);
  r.state = s.text(8);
  r.vercel_invoice_id = s.opt_text(9);
  r.carried_into = s.opt_text(10);
  r.final = s.int64(11) != 0;
  r.test = s.int64(12) != 0;
  r.refund_total = s.opt_text(13);
  r.refund_reason = s.opt_text(14);
  r.paid_ms = s.opt_int64(15);
  r.overdue_ms = s.opt_int64(16);
  r.suspended = s.int64(17) != 0;
  r.created_ms = s.int64(18);
  r.updated_ms = s.int64(19);
  return r;
}

class Tx : public WriteTx {
 public:
  explicit Tx(Connection& c) : c_(c) {}

  std::optional<InstallationRow> installation(const std::string& id) override {
    Stmt s(c_, "SELECT " WHARF_INSTALLATION_COLUMNS " FROM installations WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    InstallationRow r;
    r.id = s.text(0);
    r.account_id = s.text(1);
    r.installer_user_id = s.text(2);
    r.scopes_json = s.text(3);
    r.accepted_policies_json = s.text(4);
    r.account_json = s.opt_text(5);
    r.token_type = s.text(6);
    r.access_token_sealed = s.opt_blob(7);
    r.billing_plan_id = s.opt_text(8);
    r.notification_json = s.opt_text(9);
    r.status = s.text(10);
    r.delete_reason = s.opt_text(11);
    r.cascade_delete = s.int64(12) != 0;
    r.finalized = s.int64(13) != 0;
    r.created_ms = s.int64(14);
    r.updated_ms = s.int64(15);
    r.deleted_ms = s.opt_int64(16);
    r.token_issued_ms = s.int64(17);
    r.token_expires_ms = s.opt_int64(18);
    return r;
  }

  void store_installation(const InstallationRow& r) override {
    Stmt s(c_, "INSERT OR REPLACE INTO installations (" WHARF_INSTALLATION_COLUMNS
               ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)");
    s.bind(1, r.id)
        .bind(2, r.account_id)
        .bind(3, r.installer_user_id)
        .bind(4, r.scopes_json)
        .bind(5, r.accepted_policies_json)
        .bind(6, r.account_json)
        .bind(7, r.token_type)
        .bind_blob(8, r.access_token_sealed)
        .bind(9, r.billing_plan_id)
        .bind(10, r.notification_json)
        .bind(11, r.status)
        .bind(12, r.delete_reason)
        .bind(13, int64_t{r.cascade_delete})
        .bind(14, int64_t{r.finalized})
        .bind(15, r.created_ms)
        .bind(16, r.updated_ms)
        .bind(17, r.deleted_ms)
        .bind(18, r.token_issued_ms)
        .bind(19, r.token_expires_ms);
    s.step();
  }

  std::optional<IdempotencyRow> idempotency(const IdempotencyKey& k) override {
    Stmt s(c_,
           "SELECT request_hash, state, status, content_type, body, created_ms, lease_until_ms, "
           "owner FROM idempotency WHERE installation_id=?1 AND method=?2 AND path=?3 AND "
           "idem_key=?4");
    s.bind(1, k.installation_id).bind(2, k.method).bind(3, k.path).bind(4, k.key);
    if (!s.step()) return std::nullopt;
    IdempotencyRow r;
    r.key = k;
    r.request_hash = s.text(0);
    r.state = s.text(1);
    r.status = static_cast<int>(s.int64(2));
    r.content_type = s.text(3);
    r.body = s.text(4);
    r.created_ms = s.int64(5);
    r.lease_until_ms = s.int64(6);
    r.owner = s.text(7);
    return r;
  }

  bool insert_idempotency(const IdempotencyRow& r) override {
    Stmt s(c_,
           "INSERT INTO idempotency (installation_id, method, path, idem_key, request_hash, state, "
           "status, content_type, body, created_ms, lease_until_ms, owner) VALUES "
           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) ON CONFLICT DO NOTHING");
    bind_idempotency(s, r);
    s.step();
    return sqlite3_changes(c_.db()) == 1;
  }

  void update_idempotency(const IdempotencyRow& r) override {
    Stmt s(c_,
           "UPDATE idempotency SET request_hash=?5, state=?6, status=?7, content_type=?8, body=?9, "
           "created_ms=?10, lease_until_ms=?11, owner=?12 WHERE installation_id=?1 AND method=?2 "
           "AND path=?3 AND idem_key=?4");
    bind_idempotency(s, r);
    s.step();
  }

  void delete_idempotency(const IdempotencyKey& k) override {
    Stmt s(c_,
           "DELETE FROM idempotency WHERE installation_id=?1 AND method=?2 AND path=?3 AND "
           "idem_key=?4");
    s.bind(1, k.installation_id).bind(2, k.method).bind(3, k.path).bind(4, k.key);
    s.step();
  }

  std::optional<ResourceRow> resource(const std::string& id) override {
    Stmt s(c_, "SELECT " WHARF_RESOURCE_COLUMNS " FROM resources WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_resource(s);
  }

  std::vector<ResourceRow> resources_of(const std::string& installation_id) override {
    return resources_by_installation(
        "SELECT " WHARF_RESOURCE_COLUMNS
        " FROM resources WHERE installation_id = ?1 ORDER BY created_ms, id",
        installation_id);
  }

  std::vector<ResourceRow> live_resources_of(const std::string& installation_id) override {
    return resources_by_installation(
        "SELECT " WHARF_RESOURCE_COLUMNS
        " FROM resources WHERE installation_id = ?1 AND deleted_ms IS NULL"
        " ORDER BY created_ms, id",
        installation_id);
  }

  std::vector<ResourceRow> live_resources_of_product(const std::string& product_id) override {
    return resources_by_installation(
        "SELECT " WHARF_RESOURCE_COLUMNS
        " FROM resources WHERE product_id = ?1 AND deleted_ms IS NULL ORDER BY created_ms, id",
        product_id);
  }

  std::vector<ResourceRow> resources_by_installation(const char* sql,
                                                     const std::string& installation_id) {
    Stmt s(c_, sql);
    s.bind(1, installation_id);
    std::vector<ResourceRow> out;
    while (s.step()) out.push_back(read_resource(s));
    return out;
  }

  std::optional<ResourceRow> resource_by_idempotency_key(const std::string& installation_id,
                                                         const std::string& key) override {
    Stmt s(c_, "SELECT " WHARF_RESOURCE_COLUMNS
               " FROM resources WHERE installation_id = ?1 AND idempotency_key = ?2");
    s.bind(1, installation_id).bind(2, key);
    if (!s.step()) return std::nullopt;
    return read_resource(s);
  }

  std::optional<CredentialRow> credential(const std::string& token_hash) override {
    Stmt s(c_,
           "SELECT token_hash, resource_id, access, created_ms, expires_ms FROM "
           "resource_credentials WHERE token_hash = ?1");
    s.bind(1, token_hash);
    if (!s.step()) return std::nullopt;
    return CredentialRow{s.text(0), s.text(1), s.text(2), s.int64(3), s.opt_int64(4)};
  }

  std::optional<TransferClaimRow> transfer_claim(const std::string& id) override {
    Stmt s(c_,
           "SELECT id, source_installation_id, resource_ids, expires_ms, legacy, status, "
           "verified_by, target_installation_id, created_ms, completed_ms FROM transfer_claims "
           "WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    TransferClaimRow r;
    r.id = s.text(0);
    r.source_installation_id = s.text(1);
    r.resource_ids_json = s.text(2);
    r.expires_ms = s.int64(3);
    r.legacy = s.int64(4) != 0;
    r.status = s.text(5);
    r.verified_by_json = s.text(6);
    r.target_installation_id = s.opt_text(7);
    r.created_ms = s.int64(8);
    r.completed_ms = s.opt_int64(9);
    return r;
  }

  std::vector<OutboxRow> outbox_heads(size_t limit, int64_t due_by_ms) override {
    Stmt s(c_, "SELECT " WHARF_OUTBOX_COLUMNS
               " FROM outbox WHERE state = 'pending' AND next_attempt_ms <= ?2 AND seq IN "
               "(SELECT MIN(seq) FROM outbox WHERE state = 'pending' "
               "GROUP BY CASE lane WHEN '' THEN installation_id ELSE lane END) "
               "ORDER BY seq LIMIT ?1");
    s.bind(1, static_cast<int64_t>(limit)).bind(2, due_by_ms);
    std::vector<OutboxRow> out;
    while (s.step()) out.push_back(read_outbox(s));
    return out;
  }

  std::vector<OutboxRow> outbox_list(const std::string& state, size_t limit) override {
    Stmt s(c_, "SELECT " WHARF_OUTBOX_COLUMNS
               " FROM outbox WHERE (?1 = '' OR state = ?1) ORDER BY seq DESC LIMIT ?2");
    s.bind(1, state).bind(2, static_cast<int64_t>(limit));
    std::vector<OutboxRow> out;
    while (s.step()) out.push_back(read_outbox(s));
    return out;
  }

  OutboxStats outbox_stats() override {
    // Each part reads only the pending or dead entries (index outbox_pending leads with
    // state), never the delivered history, which only grows.
    Stmt s(c_,
           "SELECT (SELECT count(*) FROM outbox WHERE state = 'pending'), "
           "(SELECT count(*) FROM outbox WHERE state = 'dead'), "
           "COALESCE((SELECT MIN(created_ms) FROM outbox WHERE state = 'pending'), 0)");
    OutboxStats st;
    if (s.step()) {
      st.pending = s.int64(0);
      st.dead = s.int64(1);
      st.oldest_pending_created_ms = s.int64(2);
    }
    return st;
  }

  int64_t max_outbox_seq() override {
    Stmt s(c_, "SELECT COALESCE(MAX(seq), 0) FROM outbox");
    return s.step() ? s.int64(0) : 0;
  }

  void store_outbox(const OutboxRow& r) override {
    Stmt s(c_, "INSERT INTO outbox (" WHARF_OUTBOX_COLUMNS
               ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)");
    bind_outbox(s, r);
    s.step();
  }

  std::optional<OutboxLeaseRow> outbox_lease(const std::string& lane) override {
    Stmt s(c_, "SELECT lane, owner, until_ms FROM outbox_leases WHERE lane = ?1");
    s.bind(1, lane);
    if (!s.step()) return std::nullopt;
    return OutboxLeaseRow{s.text(0), s.text(1), s.int64(2)};
  }

  bool take_outbox_lease(const std::string& lane, const std::string& owner, int64_t now_ms,
                         int64_t until_ms) override {
    Stmt s(c_,
           "INSERT INTO outbox_leases (lane, owner, until_ms) VALUES (?1, ?2, ?4) "
           "ON CONFLICT (lane) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms "
           "WHERE outbox_leases.owner = excluded.owner OR outbox_leases.until_ms <= ?3");
    s.bind(1, lane).bind(2, owner).bind(3, now_ms).bind(4, until_ms);
    s.step();
    return sqlite3_changes(c_.db()) > 0;
  }

  void release_outbox_lease(const std::string& lane, const std::string& owner) override {
    Stmt s(c_, "DELETE FROM outbox_leases WHERE lane = ?1 AND owner = ?2");
    s.bind(1, lane).bind(2, owner);
    s.step();
  }

  void restore_outbox(const OutboxRow& r) override {
    Stmt s(c_,
           "UPDATE outbox SET seq=?2, installation_id=?3, kind=?4, method=?5, path=?6, body=?7, "
           "state=?8, attempts=?9, next_attempt_ms=?10, last_status=?11, last_error=?12, "
           "response_body=?13, created_ms=?14, done_ms=?15, lane=?16 WHERE id=?1");
    bind_outbox(s, r);
    s.step();
  }

  std::optional<WebhookEventRow> webhook_event(const std::string& id) override {
    Stmt s(c_,
           "SELECT id, type, installation_id, body, received_ms, processed_ms FROM webhook_events "
           "WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return WebhookEventRow{s.text(0), s.text(1),  s.opt_text(2),
                           s.text(3), s.int64(4), s.opt_int64(5)};
  }

  void put_webhook_event(const WebhookEventRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO webhook_events (id, type, installation_id, body, received_ms, "
           "processed_ms) VALUES (?1,?2,?3,?4,?5,?6)");
    s.bind(1, r.id).bind(2, r.type).bind(3, r.installation_id).bind(4, r.body);
    s.bind(5, r.received_ms).bind(6, r.processed_ms);
    s.step();
  }

  void put_transfer_claim(const TransferClaimRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO transfer_claims (id, source_installation_id, resource_ids, "
           "expires_ms, legacy, status, verified_by, target_installation_id, created_ms, "
           "completed_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    s.bind(1, r.id)
        .bind(2, r.source_installation_id)
        .bind(3, r.resource_ids_json)
        .bind(4, r.expires_ms)
        .bind(5, int64_t{r.legacy})
        .bind(6, r.status)
        .bind(7, r.verified_by_json)
        .bind(8, r.target_installation_id)
        .bind(9, r.created_ms)
        .bind(10, r.completed_ms);
    s.step();
  }

  std::map<std::string, int64_t> usage(const std::string& resource_id,
                                       const std::string& day) override {
    Stmt s(c_, "SELECT metric, value FROM usage_ledger WHERE resource_id = ?1 AND day = ?2");
    s.bind(1, resource_id).bind(2, day);
    std::map<std::string, int64_t> out;
    while (s.step()) out[s.text(0)] = s.int64(1);
    return out;
  }

  void store_resource(const ResourceRow& r) override {
    Stmt s(c_, "INSERT OR REPLACE INTO resources (" WHARF_RESOURCE_COLUMNS
               ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)");
    s.bind(1, r.id)
        .bind(2, r.installation_id)
        .bind(3, r.product_id)
        .bind(4, r.name)
        .bind(5, r.metadata_json)
        .bind(6, r.status)
        .bind(7, r.billing_plan_id)
        .bind(8, r.notification_json)
        .bind(9, r.protocol_settings_json)
        .bind(10, r.external_id)
        .bind(11, r.idempotency_key)
        .bind_blob(12, r.secrets_sealed)
        .bind(13, r.created_ms)
        .bind(14, r.updated_ms)
        .bind(15, r.deleted_ms)
        .bind(16, r.billing_hold);
    s.step();
  }

  std::vector<UsageEntry> usage_between(const std::string& resource_id, const std::string& from_day,
                                        const std::string& to_day) override {
    Stmt s(c_,
           "SELECT day, metric, value FROM usage_ledger WHERE resource_id = ?1 AND day >= ?2 "
           "AND day <= ?3 ORDER BY day");
    s.bind(1, resource_id).bind(2, from_day).bind(3, to_day);
    std::vector<UsageEntry> out;
    while (s.step()) out.push_back({s.text(0), s.text(1), s.int64(2)});
    return out;
  }

  std::optional<int64_t> usage_before(const std::string& resource_id, const std::string& metric,
                                      const std::string& day) override {
    Stmt s(c_,
           "SELECT value FROM usage_ledger WHERE resource_id = ?1 AND metric = ?2 AND day < ?3 "
           "ORDER BY day DESC LIMIT 1");
    s.bind(1, resource_id).bind(2, metric).bind(3, day);
    if (!s.step()) return std::nullopt;
    return s.int64(0);
  }

  std::vector<InstallationRow> installations_to_bill() override {
    std::vector<std::string> ids;
    {
      Stmt s(c_,
             "SELECT id FROM installations WHERE status = 'active' OR finalized = 0 ORDER BY id");
      while (s.step()) ids.push_back(s.text(0));
    }
    std::vector<InstallationRow> out;
    out.reserve(ids.size());
    for (const auto& id : ids)
      if (auto row = installation(id)) out.push_back(std::move(*row));
    return out;
  }

  std::vector<PlanPeriodRow> plan_periods(const std::string& installation_id, int64_t from_ms,
                                          int64_t to_ms) override {
    Stmt s(c_,
           "SELECT resource_id, plan_id, start_ms, end_ms FROM plan_periods WHERE "
           "installation_id = ?1 AND start_ms < ?3 AND (end_ms IS NULL OR end_ms > ?2) "
           "ORDER BY start_ms, resource_id");
    s.bind(1, installation_id).bind(2, from_ms).bind(3, to_ms);
    std::vector<PlanPeriodRow> out;
    while (s.step())
      out.push_back({installation_id, s.text(0), s.text(1), s.int64(2), s.opt_int64(3)});
    return out;
  }

  std::optional<BillingStateRow> billing_state(const std::string& installation_id) override {
    Stmt s(c_,
           "SELECT last_data_ms, final_through_ms, invoiced_through_ms, last_balance_ms, "
           "final_submitted, finalize_enqueued, gone_ms, leftovers_suspended_ms, "
           "leftovers_deleted_ms FROM billing_state WHERE "
           "installation_id = ?1");
    s.bind(1, installation_id);
    if (!s.step()) return std::nullopt;
    BillingStateRow r;
    r.installation_id = installation_id;
    r.last_data_ms = s.int64(0);
    r.final_through_ms = s.int64(1);
    r.invoiced_through_ms = s.int64(2);
    r.last_balance_ms = s.int64(3);
    r.final_submitted = s.int64(4) != 0;
    r.finalize_enqueued = s.int64(5) != 0;
    r.gone_ms = s.opt_int64(6);
    r.leftovers_suspended_ms = s.opt_int64(7);
    r.leftovers_deleted_ms = s.opt_int64(8);
    return r;
  }

  std::vector<PlanScheduleRow> plan_schedules_of(const std::string& installation_id) override {
    Stmt s(c_,
           "SELECT resource_id, plan_id, effective_ms, created_ms FROM plan_schedules WHERE "
           "installation_id = ?1 ORDER BY effective_ms, resource_id");
    s.bind(1, installation_id);
    std::vector<PlanScheduleRow> out;
    while (s.step()) out.push_back({installation_id, s.text(0), s.text(1), s.int64(2), s.int64(3)});
    return out;
  }

  void put_plan_schedule(const PlanScheduleRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO plan_schedules (installation_id, resource_id, plan_id, "
           "effective_ms, created_ms) VALUES (?1,?2,?3,?4,?5)");
    s.bind(1, r.installation_id)
        .bind(2, r.resource_id)
        .bind(3, r.plan_id)
        .bind(4, r.effective_ms)
        .bind(5, r.created_ms);
    s.step();
  }

  bool delete_plan_schedule(const std::string& installation_id,
                            const std::string& resource_id) override {
    return changes("DELETE FROM plan_schedules WHERE installation_id = ?1 AND resource_id = ?2",
                   installation_id, resource_id) > 0;
  }

  void put_billing_state(const BillingStateRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO billing_state (installation_id, last_data_ms, "
           "final_through_ms, invoiced_through_ms, last_balance_ms, final_submitted, "
           "finalize_enqueued, gone_ms, leftovers_suspended_ms, leftovers_deleted_ms) VALUES "
           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    s.bind(1, r.installation_id)
        .bind(2, r.last_data_ms)
        .bind(3, r.final_through_ms)
        .bind(4, r.invoiced_through_ms)
        .bind(5, r.last_balance_ms)
        .bind(6, int64_t{r.final_submitted})
        .bind(7, int64_t{r.finalize_enqueued})
        .bind(8, r.gone_ms)
        .bind(9, r.leftovers_suspended_ms)
        .bind(10, r.leftovers_deleted_ms);
    s.step();
  }

  std::optional<InvoiceRow> invoice(const std::string& installation_id,
                                    const std::string& id) override {
    Stmt s(c_,
           "SELECT " WHARF_INVOICE_COLUMNS " FROM invoices WHERE installation_id = ?1 AND id = ?2");
    s.bind(1, installation_id).bind(2, id);
    if (!s.step()) return std::nullopt;
    return read_invoice(s);
  }

  std::optional<InvoiceRow> invoice_by_vercel_id(const std::string& installation_id,
                                                 const std::string& vercel_id) override {
    Stmt s(c_, "SELECT " WHARF_INVOICE_COLUMNS
               " FROM invoices WHERE installation_id = ?1 AND vercel_invoice_id = ?2");
    s.bind(1, installation_id).bind(2, vercel_id);
    if (!s.step()) return std::nullopt;
    return read_invoice(s);
  }

  std::vector<InvoiceRow> invoices_of(const std::string& installation_id) override {
    Stmt s(c_, "SELECT " WHARF_INVOICE_COLUMNS
               " FROM invoices WHERE installation_id = ?1 ORDER BY period_start_ms, id");
    s.bind(1, installation_id);
    std::vector<InvoiceRow> out;
    while (s.step()) out.push_back(read_invoice(s));
    return out;
  }

  void put_invoice(const InvoiceRow& r) override {
    Stmt s(c_, "INSERT OR REPLACE INTO invoices (" WHARF_INVOICE_COLUMNS
               ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)");
    s.bind(1, r.installation_id)
        .bind(2, r.id)
        .bind(3, r.resource_id)
        .bind(4, r.plan_id)
        .bind(5, r.period_start_ms)
        .bind(6, r.period_end_ms)
        .bind(7, r.items_json)
        .bind(8, r.total)
        .bind(9, r.state)
        .bind(10, r.vercel_invoice_id)
        .bind(11, r.carried_into)
        .bind(12, int64_t{r.final})
        .bind(13, int64_t{r.test})
        .bind(14, r.refund_total)
        .bind(15, r.refund_reason)
        .bind(16, r.paid_ms)
        .bind(17, r.overdue_ms)
        .bind(18, int64_t{r.suspended})
        .bind(19, r.created_ms)
        .bind(20, r.updated_ms);
    s.step();
  }

  std::vector<BalanceRow> balances_of(const std::string& installation_id) override {
    Stmt s(c_,
           "SELECT resource_id, credited_micros, debited_micros, updated_ms FROM balances "
           "WHERE installation_id = ?1 ORDER BY resource_id");
    s.bind(1, installation_id);
    std::vector<BalanceRow> out;
    while (s.step())
      out.push_back({installation_id, s.text(0), s.int64(1), s.int64(2), s.int64(3)});
    return out;
  }

  void put_balance(const BalanceRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO balances (installation_id, resource_id, credited_micros, "
           "debited_micros, updated_ms) VALUES (?1,?2,?3,?4,?5)");
    s.bind(1, r.installation_id)
        .bind(2, r.resource_id)
        .bind(3, r.credited_micros)
        .bind(4, r.debited_micros)
        .bind(5, r.updated_ms);
    s.step();
  }

  std::optional<PurchaseRow> purchase(const std::string& installation_id,
                                      const std::string& invoice_id) override {
    Stmt s(c_,
           "SELECT credits, created_ms FROM purchases WHERE installation_id = ?1 AND "
           "invoice_id = ?2");
    s.bind(1, installation_id).bind(2, invoice_id);
    if (!s.step()) return std::nullopt;
    return PurchaseRow{installation_id, invoice_id, s.text(0), s.int64(1)};
  }

  bool insert_purchase(const PurchaseRow& r) override {
    Stmt s(c_,
           "INSERT INTO purchases (installation_id, invoice_id, credits, created_ms) VALUES "
           "(?1,?2,?3,?4) ON CONFLICT (installation_id, invoice_id) DO NOTHING");
    s.bind(1, r.installation_id)
        .bind(2, r.invoice_id)
        .bind(3, r.credits_json)
        .bind(4, r.created_ms);
    s.step();
    return sqlite3_changes(c_.db()) > 0;
  }

  int64_t prepaid_charged(const std::string& resource_id, int64_t period_start_ms) override {
    Stmt s(c_,
           "SELECT micros FROM prepaid_charges WHERE resource_id = ?1 AND period_start_ms = ?2");
    s.bind(1, resource_id).bind(2, period_start_ms);
    return s.step() ? s.int64(0) : 0;
  }

  void set_prepaid_charged(const std::string& resource_id, int64_t period_start_ms,
                           int64_t micros) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO prepaid_charges (resource_id, period_start_ms, micros) "
           "VALUES (?1,?2,?3)");
    s.bind(1, resource_id).bind(2, period_start_ms).bind(3, micros);
    s.step();
  }

  void insert_credential(const CredentialRow& r) override {
    Stmt s(c_,
           "INSERT INTO resource_credentials (token_hash, resource_id, access, created_ms, "
           "expires_ms) VALUES (?1,?2,?3,?4,?5)");
    s.bind(1, r.token_hash).bind(2, r.resource_id).bind(3, r.access).bind(4, r.created_ms);
    s.bind(5, r.expires_ms);
    s.step();
  }

  void expire_credentials(const std::string& resource_id, int64_t expires_ms) override {
    Stmt s(c_,
           "UPDATE resource_credentials SET expires_ms = ?2 WHERE resource_id = ?1 AND "
           "(expires_ms IS NULL OR expires_ms > ?2)");
    s.bind(1, resource_id).bind(2, expires_ms);
    s.step();
  }

  void delete_credentials(const std::string& resource_id) override {
    Stmt s(c_, "DELETE FROM resource_credentials WHERE resource_id = ?1");
    s.bind(1, resource_id);
    s.step();
  }

  void add_usage(const std::string& resource_id, const std::string& day, const std::string& metric,
                 int64_t delta) override {
    Stmt s(c_,
           "INSERT INTO usage_ledger (resource_id, day, metric, value) VALUES (?1,?2,?3,?4) "
           "ON CONFLICT (resource_id, day, metric) DO UPDATE SET value = value + excluded.value");
    s.bind(1, resource_id).bind(2, day).bind(3, metric).bind(4, delta);
    s.step();
  }

  void set_usage(const std::string& resource_id, const std::string& day, const std::string& metric,
                 int64_t value) override {
    Stmt s(c_,
           "INSERT INTO usage_ledger (resource_id, day, metric, value) VALUES (?1,?2,?3,?4) "
           "ON CONFLICT (resource_id, day, metric) DO UPDATE SET value = excluded.value");
    s.bind(1, resource_id).bind(2, day).bind(3, metric).bind(4, value);
    s.step();
  }

  bool record_usage_event(const std::string& product_id, const std::string& event_id,
                          int64_t now_ms) override {
    return changes(
               "INSERT INTO usage_events (product_id, event_id, created_ms) VALUES (?1,?2,?3) "
               "ON CONFLICT DO NOTHING",
               product_id, event_id, now_ms) == 1;
  }

  void max_usage(const std::string& resource_id, const std::string& day, const std::string& metric,
                 int64_t value) override {
    Stmt s(c_,
           "INSERT INTO usage_ledger (resource_id, day, metric, value) VALUES (?1,?2,?3,?4) "
           "ON CONFLICT (resource_id, day, metric) DO UPDATE SET value = "
           "MAX(value, excluded.value)");
    s.bind(1, resource_id).bind(2, day).bind(3, metric).bind(4, value);
    s.step();
  }

  int64_t purge_idempotency(int64_t created_before_ms) override {
    return changes("DELETE FROM idempotency WHERE created_ms < ?1 AND state = 'done'",
                   created_before_ms);
  }

  // Runs a DELETE/UPDATE with its parameters bound in order; returns the rows it changed.
  template <typename... Args>
  int64_t changes(const char* sql, const Args&... args) {
    Stmt s(c_, sql);
    int i = 0;
    (s.bind(++i, args), ...);
    s.step();
    return sqlite3_changes(c_.db());
  }

 private:
  void end_plan_span(const std::string& installation_id, const std::string& resource_id,
                     int64_t at) override {
    Stmt s(c_,
           "UPDATE plan_periods SET end_ms = ?3 WHERE installation_id = ?1 AND resource_id = "
           "?2 AND end_ms IS NULL");
    s.bind(1, installation_id).bind(2, resource_id).bind(3, at);
    s.step();
  }

  void start_plan_span(const std::string& installation_id, const std::string& resource_id,
                       const std::string& plan_id, int64_t at) override {
    Stmt s(c_,
           "INSERT INTO plan_periods (installation_id, resource_id, plan_id, start_ms) VALUES "
           "(?1,?2,?3,?4) ON CONFLICT (installation_id, resource_id, start_ms) DO UPDATE SET "
           "plan_id = excluded.plan_id, end_ms = NULL");
    s.bind(1, installation_id).bind(2, resource_id).bind(3, plan_id).bind(4, at);
    s.step();
  }

  static void bind_outbox(Stmt& s, const OutboxRow& r) {
    s.bind(1, r.id)
        .bind(2, r.seq)
        .bind(3, r.installation_id)
        .bind(4, r.kind)
        .bind(5, r.method)
        .bind(6, r.path)
        .bind(7, r.body)
        .bind(8, r.state)
        .bind(9, r.attempts)
        .bind(10, r.next_attempt_ms)
        .bind(11, r.last_status)
        .bind(12, r.last_error)
        .bind(13, r.response_body)
        .bind(14, r.created_ms)
        .bind(15, r.done_ms)
        .bind(16, r.lane);
  }

  // ---- SSO dashboard sessions (migration 7) ----
  std::optional<SessionRow> session(const std::string& id_hash) override {
    Stmt s(c_,
           "SELECT id_hash, installation_id, account_id, user_id, role, user_name, user_email, "
           "created_ms, expires_ms FROM sessions WHERE id_hash = ?1");
    s.bind(1, id_hash);
    if (!s.step()) return std::nullopt;
    return SessionRow{s.text(0), s.text(1), s.text(2),  s.text(3), s.text(4),
                      s.text(5), s.text(6), s.int64(7), s.int64(8)};
  }

  void insert_session(const SessionRow& r) override {
    Stmt s(c_,
           "INSERT INTO sessions (id_hash, installation_id, account_id, user_id, role, user_name, "
           "user_email, created_ms, expires_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)");
    s.bind(1, r.id_hash).bind(2, r.installation_id).bind(3, r.account_id).bind(4, r.user_id);
    s.bind(5, r.role).bind(6, r.user_name).bind(7, r.user_email).bind(8, r.created_ms);
    s.bind(9, r.expires_ms);
    s.step();
  }

  void delete_session(const std::string& id_hash) override {
    Stmt s(c_, "DELETE FROM sessions WHERE id_hash = ?1");
    s.bind(1, id_hash);
    s.step();
  }

  int64_t purge_sessions(int64_t expired_before_ms) override {
    return changes("DELETE FROM sessions WHERE expires_ms < ?1", expired_before_ms);
  }

  int64_t set_member_sessions_role(const std::string& installation_id, const std::string& user_id,
                                   const std::string& role) override {
    return changes(
        "UPDATE sessions SET role = ?3 WHERE installation_id = ?1 AND user_id = ?2 AND role <> ?3",
        installation_id, user_id, role);
  }

  int64_t delete_member_sessions(const std::string& installation_id,
                                 const std::string& user_id) override {
    return changes("DELETE FROM sessions WHERE installation_id = ?1 AND user_id = ?2",
                   installation_id, user_id);
  }

  // ---- the flags product (migration 10) ----
  static FlagRow read_flag(const Stmt& s) {
    return FlagRow{s.text(0),       s.text(1),  s.text(2), s.text(3),
                   s.int64(4) != 0, s.int64(5), s.int64(6)};
  }

  std::vector<FlagRow> flags_of(const std::string& resource_id) override {
    Stmt s(c_,
           "SELECT id, resource_id, key, definition, archived, created_ms, updated_ms FROM flags "
           "WHERE resource_id = ?1 ORDER BY key");
    s.bind(1, resource_id);
    std::vector<FlagRow> out;
    while (s.step()) out.push_back(read_flag(s));
    return out;
  }

  std::optional<FlagRow> flag(const std::string& resource_id, const std::string& key) override {
    Stmt s(c_,
           "SELECT id, resource_id, key, definition, archived, created_ms, updated_ms FROM flags "
           "WHERE resource_id = ?1 AND key = ?2");
    s.bind(1, resource_id).bind(2, key);
    if (!s.step()) return std::nullopt;
    return read_flag(s);
  }

  std::optional<FlagRow> flag_by_id(const std::string& id) override {
    Stmt s(c_,
           "SELECT id, resource_id, key, definition, archived, created_ms, updated_ms FROM flags "
           "WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_flag(s);
  }

  std::optional<FlagSetRow> flag_set(const std::string& resource_id) override {
    Stmt s(c_,
           "SELECT resource_id, version, sync_path, sync_digest, sync_hash, updated_ms FROM "
           "flag_sets WHERE resource_id = ?1");
    s.bind(1, resource_id);
    if (!s.step()) return std::nullopt;
    return FlagSetRow{s.text(0), s.int64(1), s.text(2), s.text(3), s.text(4), s.int64(5)};
  }

  int64_t flag_count(const std::string& resource_id) override {
    Stmt s(c_, "SELECT count(*) FROM flags WHERE resource_id = ?1");
    s.bind(1, resource_id);
    return s.step() ? s.int64(0) : 0;
  }

  std::optional<BranchRow> branch(const std::string& id) override {
    Stmt s(c_, "SELECT " WHARF_BRANCH_COLUMNS " FROM branches WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_branch(s);
  }

  std::vector<BranchRow> branches_of(const std::string& resource_id) override {
    Stmt s(c_, "SELECT " WHARF_BRANCH_COLUMNS
               " FROM branches WHERE resource_id = ?1 ORDER BY created_ms, id");
    s.bind(1, resource_id);
    std::vector<BranchRow> out;
    while (s.step()) out.push_back(read_branch(s));
    return out;
  }

  void put_branch(const BranchRow& r) override {
    Stmt s(c_, "INSERT OR REPLACE INTO branches (" WHARF_BRANCH_COLUMNS
               ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    s.bind(1, r.id).bind(2, r.resource_id).bind(3, r.installation_id).bind(4, r.deployment_id);
    s.bind(5, r.action).bind(6, r.status).bind(7, r.status_text).bind_blob(8, r.secrets_sealed);
    s.bind(9, r.created_ms).bind(10, r.updated_ms);
    s.step();
  }

  void put_flag(const FlagRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO flags (id, resource_id, key, definition, archived, created_ms, "
           "updated_ms) VALUES (?1,?2,?3,?4,?5,?6,?7)");
    s.bind(1, r.id).bind(2, r.resource_id).bind(3, r.key).bind(4, r.definition_json);
    s.bind(5, int64_t{r.archived ? 1 : 0}).bind(6, r.created_ms).bind(7, r.updated_ms);
    s.step();
  }

  void delete_flag(const std::string& id) override {
    Stmt s(c_, "DELETE FROM flags WHERE id = ?1");
    s.bind(1, id);
    s.step();
  }

  void put_flag_set(const FlagSetRow& r) override {
    Stmt s(c_,
           "INSERT OR REPLACE INTO flag_sets (resource_id, version, sync_path, sync_digest, "
           "sync_hash, updated_ms) VALUES (?1,?2,?3,?4,?5,?6)");
    s.bind(1, r.resource_id).bind(2, r.version).bind(3, r.sync_path).bind(4, r.sync_digest);
    s.bind(5, r.sync_hash).bind(6, r.updated_ms);
    s.step();
  }

  void delete_flags_of(const std::string& resource_id) override {
    Stmt a(c_, "DELETE FROM flags WHERE resource_id = ?1");
    a.bind(1, resource_id);
    a.step();
    Stmt b(c_, "DELETE FROM flag_sets WHERE resource_id = ?1");
    b.bind(1, resource_id);
    b.step();
  }

  int64_t purge_outbox(int64_t done_before_ms) override {
    return changes(
        "DELETE FROM outbox WHERE state IN ('delivered', 'dropped') AND done_ms IS NOT NULL "
        "AND done_ms < ?1",
        done_before_ms);
  }

  int64_t purge_webhook_events(int64_t processed_before_ms) override {
    return changes(
        "DELETE FROM webhook_events WHERE processed_ms IS NOT NULL AND processed_ms < ?1",
        processed_before_ms);
  }

  int64_t purge_usage(const std::string& before_day) override {
    return changes("DELETE FROM usage_ledger WHERE day < ?1", before_day);  // index usage_by_day
  }

  int64_t purge_usage_events(int64_t created_before_ms) override {
    return changes("DELETE FROM usage_events WHERE created_ms < ?1", created_before_ms);
  }

  int64_t retry_dead_outbox(const std::string& id, int64_t now_ms) override {
    return changes(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = ?2, "
        "last_error = '', done_ms = NULL WHERE state = 'dead' AND (?1 = '' OR id = ?1)",
        id, now_ms);
  }

  int64_t drop_dead_outbox(const std::string& id, int64_t now_ms) override {
    return changes(
        "UPDATE outbox SET state = 'dropped', done_ms = ?2 WHERE state = 'dead' AND id = ?1", id,
        now_ms);
  }

  static void bind_idempotency(Stmt& s, const IdempotencyRow& r) {
    s.bind(1, r.key.installation_id)
        .bind(2, r.key.method)
        .bind(3, r.key.path)
        .bind(4, r.key.key)
        .bind(5, r.request_hash)
        .bind(6, r.state)
        .bind(7, int64_t{r.status})
        .bind(8, r.content_type)
        .bind(9, r.body)
        .bind(10, r.created_ms)
        .bind(11, r.lease_until_ms)
        .bind(12, r.owner);
  }
  Connection& c_;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const Options& o) : options_(o) {
    writer_ = std::make_unique<Connection>(o.path, o.busy_timeout_ms, /*create=*/true);
    // WAL lets readers proceed while the writer commits.
    writer_->exec("PRAGMA journal_mode=WAL");
    migrate();
  }

  // One read transaction: every statement of `fn` sees the same snapshot (WAL).
  void read(const std::function<void(ReadTx&)>& fn) override {
    Reader r(*this);
    r.conn->exec("BEGIN");
    try {
      Tx tx(*r.conn);
      fn(tx);
    } catch (...) {
      r.conn->exec("ROLLBACK");
      throw;
    }
    r.conn->exec("COMMIT");
  }

  // Group commit (see sqlite_store.h): queue, then either lead a batch or wait for the
  // leader that took this operation to finish it.
  void write(const std::function<void(WriteTx&)>& fn) override {
    PendingWrite me;
    me.fn = &fn;
    std::unique_lock<std::mutex> lock(queue_mu_);
    queue_.push_back(&me);
    while (!me.done) {
      if (leading_) {
        queue_cv_.wait(lock);
        continue;
      }
      leading_ = true;
      size_t n = std::min(queue_.size(), std::max<size_t>(options_.max_group, 1));
      std::vector<PendingWrite*> batch(queue_.begin(), queue_.begin() + static_cast<long>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
      lock.unlock();
      {
        std::lock_guard<std::mutex> wl(write_mu_);
        run_batch(batch);
      }
      lock.lock();
      for (auto* p : batch) p->done = true;
      leading_ = false;
      queue_cv_.notify_all();
    }
    if (me.error) std::rethrow_exception(me.error);
  }

  bool healthy() override {
    try {
      Reader r(*this);
      Stmt s(*r.conn, "SELECT 1");
      return s.step() && s.int64(0) == 1;
    } catch (const std::exception&) {
      return false;
    }
  }

  std::string describe() const override { return "sqlite:" + options_.path; }

  // Processes on one SQLite file (one machine) elect their leader with an exclusive flock on
  // <path>.leader, held until the process exits: the kernel frees it the moment a leader dies.
  bool lead() override {
    std::lock_guard<std::mutex> lock(leader_mu_);
    if (leader_fd_ >= 0) return true;
    if (options_.path.empty() || options_.path == ":memory:") return true;
    int fd = ::open((options_.path + ".leader").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return false;
    }
    leader_fd_ = fd;
    return true;
  }
  ~SqliteStore() override {
    if (leader_fd_ >= 0) ::close(leader_fd_);
  }

  void release_memory() override {
    std::vector<std::unique_ptr<Connection>> to_close;
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      // Readers idle for a whole period were not needed: close them (the least recently
      // used, at the front), keeping one.
      size_t close =
          readers_low_water_.surplus(idle_readers_.size(), 1, util::IdleLowWater::Clock::now(),
                                     options_.reader_idle_close_after);
      auto first = idle_readers_.begin();
      std::move(first, first + static_cast<long>(close), std::back_inserter(to_close));
      idle_readers_.erase(first, first + static_cast<long>(close));
      for (auto& conn : idle_readers_) sqlite3_db_release_memory(conn->db());
    }
    to_close.clear();
    // The writer only when no batch is being written (never wait for one).
    std::unique_lock<std::mutex> lock(write_mu_, std::try_to_lock);
    if (lock.owns_lock()) sqlite3_db_release_memory(writer_->db());
  }

 private:
  std::mutex leader_mu_;
  int leader_fd_ = -1;  // the flock on <path>.leader, once this process leads

  void migrate() {
    std::lock_guard<std::mutex> lock(write_mu_);
    writer_->exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT "
        "NULL, applied_ms INTEGER NOT NULL)");
    int64_t current = 0;
    std::set<int64_t> applied;
    {
      Stmt s(*writer_, "SELECT version FROM schema_migrations");
      while (s.step()) {
        applied.insert(s.int64(0));
        current = std::max(current, s.int64(0));
      }
    }
    int64_t latest = migrations().empty() ? 0 : migrations().back().version;
    if (current > latest)
      throw SqliteError("database schema version " + std::to_string(current) +
                        " is newer than this build supports (" + std::to_string(latest) + ")");
    // Every migration not yet recorded runs, not only those above the highest: numbers
    // developed on separate branches may land out of order.
    for (const auto& m : migrations()) {
      if (applied.count(m.version)) continue;
      writer_->exec("BEGIN IMMEDIATE");
      try {
        writer_->exec(render_migration(m.sql, "BLOB", "INTEGER"));
        Stmt s(*writer_,
               "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1,?2,?3)");
        s.bind(1, int64_t{m.version})
            .bind(2, std::string(m.name))
            .bind(3, util::SystemClock().now_ms());
        s.step();
        writer_->exec("COMMIT");
      } catch (...) {
        writer_->exec("ROLLBACK");
        throw;
      }
      util::log_info("migration applied").num("version", m.version).str("name", m.name);
    }
  }

  // Reads go through a pool of reader connections (WAL readers never block each other or the
  // writer), taken and given back last-in first-out: the few connections that concurrency
  // needs stay warm and the rest are never opened, so descriptors and page caches follow
  // how many reads run at once, not how many threads ever read (30 threads held 19
  // connections, slowly opened one by one, in the soak benchmark). At most kMaxIdleReaders
  // wait idle; a connection beyond that is closed when given back, and release_memory closes
  // those no read needed for Options::reader_idle_close_after (the soak benchmark's RSS:
  // every connection brings its schema and caches).
  static constexpr size_t kMaxIdleReaders = 8;

  struct Reader {
    explicit Reader(SqliteStore& s) : store(s) {
      {
        std::lock_guard<std::mutex> lock(s.readers_mu_);
        if (!s.idle_readers_.empty()) {
          conn = std::move(s.idle_readers_.back());
          s.idle_readers_.pop_back();
          s.readers_low_water_.taken(s.idle_readers_.size());
          return;
        }
      }
      conn = std::make_unique<Connection>(s.options_.path, s.options_.busy_timeout_ms, false);
    }
    ~Reader() {
      std::lock_guard<std::mutex> lock(store.readers_mu_);
      if (store.idle_readers_.size() < kMaxIdleReaders)
        store.idle_readers_.push_back(std::move(conn));
    }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    SqliteStore& store;
    std::unique_ptr<Connection> conn;
  };

  struct PendingWrite {
    const std::function<void(WriteTx&)>* fn = nullptr;
    std::exception_ptr error;
    bool done = false;
  };

  void rollback_quietly() {
    try {
      writer_->exec("ROLLBACK");
    } catch (const std::exception&) {
      // The transaction may already be rolled back by SQLite (e.g. after SQLITE_FULL).
    }
  }

  // Writes a batch in one transaction and commits it; each operation's outcome lands in its
  // PendingWrite. A lone operation runs without a savepoint, as a plain transaction.
  void run_batch(const std::vector<PendingWrite*>& batch) {
    size_t next = 0;
    while (next < batch.size()) {
      size_t begun = next;
      std::vector<PendingWrite*> ran;  // succeeded in this transaction, not yet committed
      try {
        writer_->exec("BEGIN IMMEDIATE");
      } catch (...) {
        for (size_t i = next; i < batch.size(); ++i) batch[i]->error = std::current_exception();
        return;
      }
      bool aborted = false;
      for (; next < batch.size() && !aborted; ++next) {
        PendingWrite* p = batch[next];
        const bool alone = batch.size() - begun == 1;
        try {
          if (!alone) writer_->exec("SAVEPOINT w");
          Tx tx(*writer_);
          (*p->fn)(tx);
          if (!alone) writer_->exec("RELEASE w");
          ran.push_back(p);
        } catch (...) {
          p->error = std::current_exception();
          if (alone) {
            aborted = true;  // nothing else in this transaction: roll it all back
          } else if (sqlite3_get_autocommit(writer_->db())) {
            // SQLite ended the whole transaction (e.g. SQLITE_FULL): the operations that ran
            // before this one in it are lost; run the rest in a new transaction.
            aborted = true;
          } else {
            try {
              writer_->exec("ROLLBACK TO w");
              writer_->exec("RELEASE w");
            } catch (...) {
              aborted = true;
            }
          }
        }
      }
      if (aborted) {
        rollback_quietly();
        for (auto* p : ran) p->error = lost_error();
        continue;
      }
      try {
        writer_->exec("COMMIT");
      } catch (...) {
        auto e = std::current_exception();
        rollback_quietly();
        for (auto* p : ran) p->error = e;
        continue;
      }
      if (options_.on_commit) options_.on_commit(batch.size() - begun);
    }
  }

  static std::exception_ptr lost_error() {
    return std::make_exception_ptr(
        SqliteError("SQLite: the transaction was rolled back by another operation's failure"));
  }

  Options options_;
  std::mutex write_mu_;  // the writer connection (batches, migrations)
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingWrite*> queue_;
  bool leading_ = false;
  std::unique_ptr<Connection> writer_;
  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;
  util::IdleLowWater readers_low_water_;
};

}  // namespace

std::unique_ptr<Store> open(const Options& options) {
  return std::make_unique<SqliteStore>(options);
}

std::unique_ptr<Store> open_url(const std::string& url) {
  const std::string prefix = "sqlite://";
  if (url.rfind(prefix, 0) != 0) throw std::runtime_error("not a sqlite:// URL: " + url);
  Options o;
  o.path = url.substr(prefix.size());
  auto q = o.path.find('?');
  if (q != std::string::npos) o.path.resize(q);
  if (o.path.empty()) throw std::runtime_error("sqlite:// URL has no file path");
  return open(o);
}

}  // namespace wharf::store::sqlite
