#include "store/postgres/pg_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "store/migrations/migrations.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/pg_array.h"

namespace wharf::store::postgres {
namespace {

// The advisory lock key of the leader of the periodic passes (Store::lead): "wharfldr".
constexpr const char* kLeaderLockKey = "8604234232063878258";

// A failed command: its SQLSTATE ("" when the connection failed or was lost), the constraint
// it violated (if any) and the server's message.
class PgError : public std::runtime_error {
 public:
  PgError(std::string sqlstate, std::string constraint_name, const std::string& message)
      : std::runtime_error("PostgreSQL: " + message),
        state(std::move(sqlstate)),
        constraint(std::move(constraint_name)) {}
  std::string state;
  std::string constraint;
};

// libpq's messages end in a newline (sometimes several lines); keep them on one line.
std::string tidy(const char* message) {
  std::string out = message ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out.empty() ? "unknown libpq error" : out;
}

// Failures that running the transaction again can cure: serialization_failure,
// deadlock_detected, and two outbox inserts that read the same MAX(seq) in concurrent
// transactions (the loser must read it again).
bool retryable(const PgError& e) {
  return e.state == "40001" || e.state == "40P01" ||
         (e.state == "23505" && e.constraint == "outbox_by_seq");
}

void ignore_notice(void* /*arg*/, const char* /*message*/) {}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// Text is ordered byte-wise (COLLATE "C"), as SQLite orders it, whatever the database's
// collation.

// One connection with its prepared statements (named s1, s2…, keyed by the SQL text's
// address: every statement is a string literal).
class Connection {
 public:
  explicit Connection(const std::string& url) {
    // connect_timeout first: the URL's own parameters (expanded from dbname) win.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {"10", "wharf", url.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (!conn_) throw PgError("", "", "out of memory opening a connection");
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = tidy(PQerrorMessage(conn_));
      PQfinish(conn_);
      conn_ = nullptr;
      throw PgError("", "", "cannot connect to " + redact_url(url) + ": " + message);
    }
    PQsetNoticeProcessor(conn_, &ignore_notice, nullptr);
  }
  ~Connection() {
    if (conn_) PQfinish(conn_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ok() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }
  // Whether a statement failed with a serialization failure or deadlock since clear_conflict().
  bool conflicted() const { return conflicted_; }
  void clear_conflict() { conflicted_ = false; }
  bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }
  void mark_broken() { broken_ = true; }

  // Runs one or more statements without parameters.
  // (BEGIN, COMMIT, ROLLBACK: reads sent ahead and not taken do not outlive a transaction.)
  ResultPtr exec(const std::string& sql) {
    drain();
    kept_.clear();
    return check(PQexec(conn_, sql.c_str()));
  }

  // Statements run that were not a SELECT (anything that may have written), so far.
  uint64_t writes() const { return writes_; }

  // Runs a prepared statement (prepared on this connection on first use).
  ResultPtr run(const char* sql, int n, const char* const* values, const int* lengths,
                const int* formats) {
    if (std::strncmp(sql, "SELECT ", 7) != 0) ++writes_;
    if (auto it = prepared_.find(sql);
        queued_ > 0 && queued_ < kMaxQueued && it != prepared_.end()) {
      // Behind the writes queued: the same round trip reads their results and this one's.
      queue(it->second, n, values, lengths, formats);
      return drain(/*last=*/true);
    }
    drain();
    const std::string& name = prepare(sql);
    return check(PQexecPrepared(conn_, name.c_str(), n, values, lengths, formats, 0));
  }

  // Sends a prepared statement whose result only says it worked (a write), without waiting
  // for it: in libpq's pipeline mode, it and the ones sent after it go to the server
  // together, and their results are read by the next statement run (or exec, or drain).
  // An error of one of them is thrown there; the transaction has failed either way.
  void send(const char* sql, int n, const char* const* values, const int* lengths,
            const int* formats) {
    ++writes_;
    if (prepared_.find(sql) == prepared_.end() || queued_ >= kMaxQueued) drain();
    queue(prepare(sql), n, values, lengths, formats);
  }

  // Sends a read now whose result is taken later (take()): the server runs it while the
  // caller does something else. Returns its ticket.
  uint64_t send_read(const char* sql, int n, const char* const* values, const int* lengths,
                     const int* formats) {
    if (prepared_.find(sql) == prepared_.end() || queued_ >= kMaxQueued) drain();
    queue(prepare(sql), n, values, lengths, formats, next_ticket_);
    // Out to the server now, and its answer asked for without a sync point.
    if (PQsendFlushRequest(conn_) != 1 || PQflush(conn_) != 0) lost();
    return next_ticket_++;
  }

  // The result of a read send_read() sent (nullptr for a ticket already taken).
  ResultPtr take(uint64_t ticket) {
    if (std::find(tickets_.begin(), tickets_.end(), ticket) != tickets_.end()) drain();
    auto it = kept_.find(ticket);
    if (it == kept_.end()) return nullptr;
    ResultPtr r = std::move(it->second);
    kept_.erase(it);
    return r;
  }
  void forget(uint64_t ticket) { take(ticket); }

  // Reads the results of what was queued; throws the first error among them. With `last`,
  // returns the last statement's result (run()'s, queued behind the writes).
  ResultPtr drain(bool last = false) {
    if (queued_ == 0) return nullptr;
    const size_t queued = queued_;
    const std::vector<uint64_t> tickets = std::move(tickets_);
    queued_ = 0;
    tickets_.clear();
    if (PQpipelineSync(conn_) != 1) lost();
    ResultPtr failed, wanted;
    // Each statement's results end with a null; the sync point ends them all.
    for (size_t ends = 0;;) {
      ResultPtr r(PQgetResult(conn_));
      if (!r) {
        if (PQstatus(conn_) != CONNECTION_OK || ++ends > queued) lost();
        continue;
      }
      ExecStatusType status = PQresultStatus(r.get());
      if (status == PGRES_PIPELINE_SYNC) break;
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        if (last && ends + 1 == queued)
          wanted = std::move(r);
        else if (ends < tickets.size() && tickets[ends])
          kept_[tickets[ends]] = std::move(r);
        continue;
      }
      if (status == PGRES_PIPELINE_ABORTED) continue;
      if (!failed) failed = std::move(r);
    }
    if (PQexitPipelineMode(conn_) != 1) lost();
    if (failed) check(failed.release());
    if (last && !wanted) lost();
    return wanted;
  }

 private:
  // The statement named for `sql` on this connection, prepared on first use.
  const std::string& prepare(const char* sql) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = "s" + std::to_string(prepared_.size() + 1);
      check(PQprepare(conn_, name.c_str(), sql, 0, nullptr));
      it = prepared_.emplace(sql, std::move(name)).first;
    }
    return it->second;
  }

  // Queues a statement in the pipeline; `ticket` (not 0) keeps its result for take().
  void queue(const std::string& name, int n, const char* const* values, const int* lengths,
             const int* formats, uint64_t ticket = 0) {
    if (PQpipelineStatus(conn_) == PQ_PIPELINE_OFF && PQenterPipelineMode(conn_) != 1) lost();
    if (PQsendQueryPrepared(conn_, name.c_str(), n, values, lengths, formats, 0) != 1) lost();
    ++queued_;
    tickets_.resize(queued_, 0);
    tickets_.back() = ticket;
  }

  [[noreturn]] void lost() {
    broken_ = true;
    throw PgError("", "", tidy(PQerrorMessage(conn_)));
  }

  ResultPtr check(PGresult* raw) {
    ResultPtr r(raw);
    ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY)
      return r;
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    if (!r || !state || PQstatus(conn_) != CONNECTION_OK || status != PGRES_FATAL_ERROR) {
      // Lost, or in a mode this code never starts: nothing more runs on this connection.
      broken_ = true;
      throw PgError("", "", tidy(PQerrorMessage(conn_)));
    }
    const char* constraint = PQresultErrorField(r.get(), PG_DIAG_CONSTRAINT_NAME);
    PgError e(state, constraint ? constraint : "",
              tidy(PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY)));
    if (retryable(e)) conflicted_ = true;
    throw e;
  }

  PGconn* conn_ = nullptr;
  bool broken_ = false;
  bool conflicted_ = false;
  uint64_t writes_ = 0;
  // Statements queued in the pipeline (send, send_read, run behind them) whose results are not
  // read yet; at most kMaxQueued (a bound on what waits unread on both sides).
  static constexpr size_t kMaxQueued = 64;
  size_t queued_ = 0;
  std::vector<uint64_t> tickets_;       // by statement queued: the ticket keeping its result, or 0
  std::map<uint64_t, ResultPtr> kept_;  // results of reads sent ahead, not taken yet
  uint64_t next_ticket_ = 1;
  std::map<const char*, std::string> prepared_;
};

// A statement with its parameters ($1…, bound as text; blobs as binary BYTEA), run on the
// first step() (or changes()); then step() walks its rows, like SQLite's sqlite3_step.
class Stmt {
 public:
  Stmt(Connection& c, const char* sql) : conn_(c), sql_(sql) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Calls `f(n, values, lengths)` with the bound parameters as libpq takes them.
  template <class F>
  auto with_arguments(F&& f) const {
    std::vector<const char*> values(values_.size());
    std::vector<int> lengths(values_.size());
    for (size_t k = 0; k < values_.size(); ++k) {
      values[k] = null_[k] ? nullptr : values_[k].c_str();
      lengths[k] = static_cast<int>(values_[k].size());
    }
    return f(static_cast<int>(values.size()), values.data(), lengths.data());
  }

  Stmt& bind(int i, const std::string& v) { return set(i, v, 0); }
  Stmt& bind(int i, const std::optional<std::string>& v) { return v ? bind(i, *v) : bind_null(i); }
  Stmt& bind_blob(int i, const std::optional<std::string>& v) {
    return v ? set(i, *v, 1) : bind_null(i);
  }
  Stmt& bind(int i, int64_t v) { return set(i, std::to_string(v), 0); }
  Stmt& bind(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }
  Stmt& bind_null(int i) {
    slot(i);
    null_[static_cast<size_t>(i - 1)] = true;
    return *this;
  }

  // Returns true while a row is available.
  bool step() {
    if (!result_) execute();
    return ++row_ < PQntuples(result_.get());
  }
  // Sends this read ahead (Connection::send_read); adopt() takes its result later.
  uint64_t send_read() {
    return with_arguments([&](int n, const char* const* values, const int* lengths) {
      return conn_.send_read(sql_, n, values, lengths, formats_.data());
    });
  }
  // Steps through a result taken from the connection instead of running the statement.
  void adopt(ResultPtr result) {
    result_ = std::move(result);
    row_ = -1;
  }
  // Runs a write whose result is not looked at without waiting for it (Connection::send).
  void send() {
    with_arguments([&](int n, const char* const* values, const int* lengths) {
      conn_.send(sql_, n, values, lengths, formats_.data());
    });
  }
  // Rows an INSERT/UPDATE/DELETE changed.
  int64_t changes() {
    if (!result_) execute();
    const char* n = PQcmdTuples(result_.get());
    return n && *n ? std::stoll(n) : 0;
  }

  std::string text(int col) const {
    return std::string(PQgetvalue(result_.get(), row_, col),
                       static_cast<size_t>(PQgetlength(result_.get(), row_, col)));
  }
  // Whether a column holds exactly `v` (no copy made).
  bool is(int col, const std::string& v) const {
    auto n = static_cast<size_t>(PQgetlength(result_.get(), row_, col));
    return n == v.size() && std::memcmp(PQgetvalue(result_.get(), row_, col), v.data(), n) == 0;
  }
  std::optional<std::string> opt_text(int col) const {
    if (null(col)) return std::nullopt;
    return text(col);
  }
  // BYTEA arrives in text format (hex): unescaped here.
  std::optional<std::string> opt_blob(int col) const {
    if (null(col)) return std::nullopt;
    size_t n = 0;
    unsigned char* raw = PQunescapeBytea(
        reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row_, col)), &n);
    if (!raw) throw PgError("", "", "cannot decode a BYTEA value");
    std::string out(reinterpret_cast<const char*>(raw), n);
    PQfreemem(raw);
    return out;
  }
  int64_t int64(int col) const {
    if (null(col)) return 0;
    const char* v = PQgetvalue(result_.get(), row_, col);
    int64_t out = 0;
    auto len = static_cast<size_t>(PQgetlength(result_.get(), row_, col));
    auto [ptr, ec] = std::from_chars(v, v + len, out);
    if (ec != std::errc() || ptr != v + len)
      throw PgError("", "", "not an integer: " + std::string(v, len));
    return out;
  }
  std::optional<int64_t> opt_int64(int col) const {
    if (null(col)) return std::nullopt;
    return int64(col);
  }

 private:
  bool null(int col) const { return PQgetisnull(result_.get(), row_, col) != 0; }
  void slot(int i) {
    auto n = static_cast<size_t>(i);
    if (values_.size() < n) {
      values_.resize(n);
      null_.resize(n, false);
      formats_.resize(n, 0);
    }
  }
  Stmt& set(int i, std::string v, int format) {
    slot(i);
    auto k = static_cast<size_t>(i - 1);
    values_[k] = std::move(v);
    null_[k] = false;
    formats_[k] = format;
    return *this;
  }
  void execute() {
    result_ = with_arguments([&](int n, const char* const* values, const int* lengths) {
      return conn_.run(sql_, n, values, lengths, formats_.data());
    });
  }

  Connection& conn_;
  const char* sql_;
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<int> formats_;
  ResultPtr result_;
  int row_ = -1;
};

// The rows of `table` (its columns `cols`) whose `key` column is one of the text array $1, an
// index look-up per key. Not `key = ANY($1)`: its generic plan on a table last analyzed when
// it was small (a fresh one: the billing tables before the first pass) is a scan of the whole
// table comparing each row with every key, which grows with the table.
#define WHARF_EACH_KEY(cols, table, key)                                                       \
  "SELECT x.* FROM unnest($1::text[]) AS k(v) CROSS JOIN LATERAL (SELECT " cols " FROM " table \
  " WHERE " key " = k.v OFFSET 0) AS x"

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
    if (Billing* b = prefetched(id)) return b->installation;
    Stmt s(c_, "SELECT " WHARF_INSTALLATION_COLUMNS " FROM installations WHERE id = $1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return installation_row(s);
  }

  static InstallationRow installation_row(Stmt& s) {
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
    Stmt s(
        c_,
        "INSERT INTO installations (" WHARF_INSTALLATION_COLUMNS
        ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) ON CONFLICT "
        "(id) DO UPDATE SET account_id = excluded.account_id, installer_user_id = "
        "excluded.installer_user_id, scopes = excluded.scopes, accepted_policies = "
        "excluded.accepted_policies, account = excluded.account, token_type = excluded.token_type, "
        "access_token = excluded.access_token, billing_plan_id = excluded.billing_plan_id, "
        "notification = excluded.notification, status = excluded.status, delete_reason = "
        "excluded.delete_reason, cascade_delete = excluded.cascade_delete, finalized = "
        "excluded.finalized, created_ms = excluded.created_ms, updated_ms = excluded.updated_ms, "
        "deleted_ms = excluded.deleted_ms, token_issued_ms = excluded.token_issued_ms, "
        "token_expires_ms = excluded.token_expires_ms");
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
    known_write([&] {
      if (auto it = prefetched_.find(r.id); it != prefetched_.end()) it->second.installation = r;
    });
  }

  std::optional<IdempotencyRow> idempotency(const IdempotencyKey& k) override {
    Stmt s(c_,
           "SELECT request_hash, state, status, content_type, body, created_ms, lease_until_ms, "
           "owner FROM idempotency WHERE installation_id=$1 AND method=$2 AND path=$3 AND "
           "idem_key=$4");
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
           "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT DO NOTHING");
    bind_idempotency(s, r);
    return s.changes() == 1;
  }

  void update_idempotency(const IdempotencyRow& r) override {
    Stmt s(c_,
           "UPDATE idempotency SET request_hash=$5, state=$6, status=$7, content_type=$8, body=$9, "
           "created_ms=$10, lease_until_ms=$11, owner=$12 WHERE installation_id=$1 AND method=$2 "
           "AND path=$3 AND idem_key=$4");
    bind_idempotency(s, r);
    s.step();
  }

  void delete_idempotency(const IdempotencyKey& k) override {
    Stmt s(c_,
           "DELETE FROM idempotency WHERE installation_id=$1 AND method=$2 AND path=$3 AND "
           "idem_key=$4");
    s.bind(1, k.installation_id).bind(2, k.method).bind(3, k.path).bind(4, k.key);
    s.step();
  }

  std::optional<ResourceRow> resource(const std::string& id) override {
    if (Billing* b = prefetched_for_resource(id))
      for (const auto& r : b->resources)
        if (r.id == id) return r;
    Stmt s(c_, "SELECT " WHARF_RESOURCE_COLUMNS " FROM resources WHERE id = $1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_resource(s);
  }

  std::vector<ResourceRow> resources_of(const std::string& installation_id) override {
    if (Billing* b = prefetched(installation_id)) return b->resources;
    return resources_by_installation(
        "SELECT " WHARF_RESOURCE_COLUMNS
        " FROM resources WHERE installation_id = $1 ORDER BY created_ms, id COLLATE \"C\"",
        installation_id);
  }

  std::vector<ResourceRow> live_resources_of(const std::string& installation_id) override {
    if (Billing* b = prefetched(installation_id)) {
      std::vector<ResourceRow> out;
      for (const auto& r : b->resources)
        if (!r.deleted_ms) out.push_back(r);
      return out;
    }
    return resources_by_installation(
        "SELECT " WHARF_RESOURCE_COLUMNS
        " FROM resources WHERE installation_id = $1 AND deleted_ms IS NULL"
        " ORDER BY created_ms, id COLLATE \"C\"",
        installation_id);
  }

  std::vector<ResourceRow> live_resources_of_product(const std::string& product_id) override {
    return resources_by_installation("SELECT " WHARF_RESOURCE_COLUMNS
                                     " FROM resources WHERE product_id = $1 AND deleted_ms IS NULL "
                                     "ORDER BY created_ms, id COLLATE \"C\"",
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
               " FROM resources WHERE installation_id = $1 AND idempotency_key = $2");
    s.bind(1, installation_id).bind(2, key);
    if (!s.step()) return std::nullopt;
    return read_resource(s);
  }

  std::optional<CredentialRow> credential(const std::string& token_hash) override {
    Stmt s(c_,
           "SELECT token_hash, resource_id, access, created_ms, expires_ms FROM "
           "resource_credentials WHERE token_hash = $1");
    s.bind(1, token_hash);
    if (!s.step()) return std::nullopt;
    return CredentialRow{s.text(0), s.text(1), s.text(2), s.int64(3), s.opt_int64(4)};
  }

  std::optional<TransferClaimRow> transfer_claim(const std::string& id) override {
    Stmt s(c_,
           "SELECT id, source_installation_id, resource_ids, expires_ms, legacy, status, "
           "verified_by, target_installation_id, created_ms, completed_ms FROM transfer_claims "
           "WHERE id = $1");
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
               " FROM outbox WHERE state = 'pending' AND next_attempt_ms <= $2 AND seq IN "
               "(SELECT MIN(seq) FROM outbox WHERE state = 'pending' "
               "GROUP BY CASE lane WHEN '' THEN installation_id ELSE lane END) "
               "ORDER BY seq LIMIT $1");
    s.bind(1, static_cast<int64_t>(limit)).bind(2, due_by_ms);
    std::vector<OutboxRow> out;
    while (s.step()) out.push_back(read_outbox(s));
    return out;
  }

  std::vector<OutboxRow> outbox_list(const std::string& state, size_t limit) override {
    Stmt s(c_, "SELECT " WHARF_OUTBOX_COLUMNS
               " FROM outbox WHERE ($1 = '' OR state = $1) ORDER BY seq DESC LIMIT $2");
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

  // Concurrent inserts read the same maximum in SERIALIZABLE transactions: one of them fails
  // (40001, or a unique violation of outbox_by_seq) and runs again, so seq order is commit
  // order, as on SQLite.
  int64_t max_outbox_seq() override {
    Stmt s(c_, "SELECT COALESCE(MAX(seq), 0) FROM outbox");
    return s.step() ? s.int64(0) : 0;
  }

  void store_outbox(const OutboxRow& r) override {
    Stmt s(c_, "INSERT INTO outbox (" WHARF_OUTBOX_COLUMNS
               ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)");
    bind_outbox(s, r);
    s.send();
    known_write([] {});  // the outbox is none of the prefetched rows
  }

  void restore_outbox(const OutboxRow& r) override {
    Stmt s(c_,
           "UPDATE outbox SET seq=$2, installation_id=$3, kind=$4, method=$5, path=$6, body=$7, "
           "state=$8, attempts=$9, next_attempt_ms=$10, last_status=$11, last_error=$12, "
           "response_body=$13, created_ms=$14, done_ms=$15, lane=$16 WHERE id=$1");
    bind_outbox(s, r);
    s.step();
  }

  std::optional<WebhookEventRow> webhook_event(const std::string& id) override {
    Stmt s(c_,
           "SELECT id, type, installation_id, body, received_ms, processed_ms FROM webhook_events "
           "WHERE id = $1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return WebhookEventRow{s.text(0), s.text(1),  s.opt_text(2),
                           s.text(3), s.int64(4), s.opt_int64(5)};
  }

  void put_webhook_event(const WebhookEventRow& r) override {
    Stmt s(c_,
           "INSERT INTO webhook_events (id, type, installation_id, body, received_ms, "
           "processed_ms) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (id) DO UPDATE SET type = "
           "excluded.type, installation_id = excluded.installation_id, body = excluded.body, "
           "received_ms = excluded.received_ms, processed_ms = excluded.processed_ms");
    s.bind(1, r.id).bind(2, r.type).bind(3, r.installation_id).bind(4, r.body);
    s.bind(5, r.received_ms).bind(6, r.processed_ms);
    s.step();
  }

  void put_transfer_claim(const TransferClaimRow& r) override {
    Stmt s(c_,
           "INSERT INTO transfer_claims (id, source_installation_id, resource_ids, "
           "expires_ms, legacy, status, verified_by, target_installation_id, created_ms, "
           "completed_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO UPDATE SET "
           "source_installation_id = excluded.source_installation_id, resource_ids = "
           "excluded.resource_ids, expires_ms = excluded.expires_ms, legacy = excluded.legacy, "
           "status = excluded.status, verified_by = excluded.verified_by, target_installation_id = "
           "excluded.target_installation_id, created_ms = excluded.created_ms, completed_ms = "
           "excluded.completed_ms");
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
    Stmt s(c_, "SELECT metric, value FROM usage_ledger WHERE resource_id = $1 AND day = $2");
    s.bind(1, resource_id).bind(2, day);
    std::map<std::string, int64_t> out;
    while (s.step()) out[s.text(0)] = s.int64(1);
    return out;
  }

  void store_resource(const ResourceRow& r) override {
    Stmt s(c_,
           "INSERT INTO resources (" WHARF_RESOURCE_COLUMNS
           ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT (id) DO "
           "UPDATE SET installation_id = excluded.installation_id, product_id = "
           "excluded.product_id, name = excluded.name, metadata = excluded.metadata, status = "
           "excluded.status, billing_plan_id = excluded.billing_plan_id, notification = "
           "excluded.notification, protocol_settings = excluded.protocol_settings, external_id = "
           "excluded.external_id, idempotency_key = excluded.idempotency_key, secrets = "
           "excluded.secrets, created_ms = excluded.created_ms, updated_ms = excluded.updated_ms, "
           "deleted_ms = excluded.deleted_ms, billing_hold = excluded.billing_hold");
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
    known_write([&] {
      auto was = prefetched_resource_.find(r.id);
      auto in = prefetched_.find(r.installation_id);
      if (was == prefetched_resource_.end()) return in == prefetched_.end();
      // A resource that moved between installations (its prepaid charges with it): the
      // rows are read again.
      if (was->second != r.installation_id) return false;
      put_sorted(in->second.resources, r, resource_order);
      return true;
    });
  }

  std::vector<UsageEntry> usage_between(const std::string& resource_id, const std::string& from_day,
                                        const std::string& to_day) override {
    // Ordered here, byte-wise as SQLite orders: an ORDER BY … COLLATE "C" cannot use the
    // index (built in the database's collation) and sorted on the server on every call.
    Stmt s(c_,
           "SELECT day, metric, value FROM usage_ledger WHERE resource_id = $1 AND day >= $2 "
           "AND day <= $3");
    s.bind(1, resource_id).bind(2, from_day).bind(3, to_day);
    std::vector<UsageEntry> out;
    while (s.step()) out.push_back({s.text(0), s.text(1), s.int64(2)});
    sort_by_day_and_metric(out);
    return out;
  }

  // The ledger of many resources in one statement (a billing pass reads an installation's
  // resources together): `resource_id = ANY($1)` with a text array.
  std::map<std::string, std::vector<UsageEntry>> usage_between_many(
      const std::vector<std::string>& resource_ids, const std::string& from_day,
      const std::string& to_day) override {
    std::map<std::string, std::vector<UsageEntry>> out;
    if (resource_ids.empty()) return out;
    Stmt s(c_, kUsageBetweenMany);
    std::optional<Expected> expected = std::move(expected_);
    expected_.reset();
    ResultPtr ahead;
    if (expected && c_.writes() - expected->writes == known_writes_ - expected->known_writes &&
        expected->resource_ids == resource_ids && expected->from_day == from_day &&
        expected->to_day == to_day)
      ahead = c_.take(expected->ticket);
    else if (expected)
      c_.forget(expected->ticket);
    if (ahead) {
      s.adopt(std::move(ahead));
    } else {
      s.bind(1, util::pg_text_array(resource_ids)).bind(2, from_day).bind(3, to_day);
    }
    // Rows usually come grouped by resource (the key's order): a list is looked up when the
    // resource changes.
    std::vector<UsageEntry>* entries = nullptr;
    const std::string* of = nullptr;
    while (s.step()) {
      if (!of || !s.is(0, *of)) {
        auto it = out.try_emplace(s.text(0)).first;
        of = &it->first;
        entries = &it->second;
      }
      entries->push_back({s.text(1), s.text(2), s.int64(3)});
    }
    for (auto& [id, list] : out) sort_by_day_and_metric(list);
    return out;
  }

  // Sends usage_between_many's statement now: the call with the same arguments takes its
  // result, unless a write that may have touched the ledger came in between (then it reads
  // again).
  void expect_usage_between_many(const std::vector<std::string>& resource_ids,
                                 const std::string& from_day, const std::string& to_day) override {
    if (expected_) c_.forget(expected_->ticket);
    expected_.reset();
    if (resource_ids.empty()) return;
    Stmt s(c_, kUsageBetweenMany);
    s.bind(1, util::pg_text_array(resource_ids)).bind(2, from_day).bind(3, to_day);
    expected_ = Expected{resource_ids, from_day, to_day, c_.writes(), known_writes_, s.send_read()};
  }

  static void sort_by_day_and_metric(std::vector<UsageEntry>& entries) {
    auto before = [](const UsageEntry& a, const UsageEntry& b) {
      return std::tie(a.day, a.metric) < std::tie(b.day, b.metric);
    };
    if (!std::is_sorted(entries.begin(), entries.end(), before))  // they usually are
      std::sort(entries.begin(), entries.end(), before);
  }

  std::optional<int64_t> usage_before(const std::string& resource_id, const std::string& metric,
                                      const std::string& day) override {
    Stmt s(c_,
           "SELECT value FROM usage_ledger WHERE resource_id = $1 AND metric = $2 AND day < $3 "
           "ORDER BY day DESC LIMIT 1");
    s.bind(1, resource_id).bind(2, metric).bind(3, day);
    if (!s.step()) return std::nullopt;
    return s.int64(0);
  }

  // Every installation's rows in one statement per table (WHARF_EACH_KEY), instead of one per
  // installation and table.
  void prefetch_billing(const std::vector<std::string>& installation_ids) override {
    prefetched_.clear();
    prefetched_resource_.clear();
    if (installation_ids.empty()) return;
    const std::string ids = util::pg_text_array(installation_ids);
    std::map<std::string, Billing> read;
    for (const auto& id : installation_ids) read[id];
    // Runs `sql` for the keys (a text[] literal), each row to `take`.
    auto each_row = [&](const char* sql, const std::string& keys, auto&& take) {
      Stmt s(c_, sql);
      s.bind(1, keys);
      while (s.step()) take(s);
    };
    each_row(WHARF_EACH_KEY(WHARF_INSTALLATION_COLUMNS, "installations", "id"), ids, [&](Stmt& s) {
      InstallationRow r = installation_row(s);
      read[r.id].installation = std::move(r);
    });
    each_row(WHARF_EACH_KEY("last_data_ms, final_through_ms, invoiced_through_ms, "
                            "last_balance_ms, final_submitted, finalize_enqueued, gone_ms, "
                            "leftovers_suspended_ms, leftovers_deleted_ms, installation_id",
                            "billing_state", "installation_id"),
             ids, [&](Stmt& s) {
               std::string id = s.text(9);
               read[id].state = billing_state_row(s, id);
             });
    each_row(WHARF_EACH_KEY("installation_id, resource_id, plan_id, effective_ms, created_ms",
                            "plan_schedules", "installation_id"),
             ids, [&](Stmt& s) {
               read[s.text(0)].schedules.push_back(
                   {s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4)});
             });
    each_row(WHARF_EACH_KEY("installation_id, resource_id, plan_id, start_ms, end_ms",
                            "plan_periods", "installation_id"),
             ids, [&](Stmt& s) {
               read[s.text(0)].spans.push_back(
                   {s.text(0), s.text(1), s.text(2), s.int64(3), s.opt_int64(4)});
             });
    each_row(WHARF_EACH_KEY(WHARF_RESOURCE_COLUMNS, "resources", "installation_id"), ids,
             [&](Stmt& s) {
               ResourceRow r = read_resource(s);
               read[r.installation_id].resources.push_back(std::move(r));
             });
    each_row(WHARF_EACH_KEY(WHARF_INVOICE_COLUMNS, "invoices", "installation_id"), ids,
             [&](Stmt& s) {
               InvoiceRow r = read_invoice(s);
               read[r.installation_id].invoices.push_back(std::move(r));
             });
    each_row(WHARF_EACH_KEY("installation_id, resource_id, credited_micros, debited_micros, "
                            "updated_ms",
                            "balances", "installation_id"),
             ids, [&](Stmt& s) {
               read[s.text(0)].balances.push_back(
                   {s.text(0), s.text(1), s.int64(2), s.int64(3), s.int64(4)});
             });
    // By the resources just read (the charges' key leads with the resource).
    std::map<std::string, Billing*> of_resource;
    for (auto& [id, b] : read)
      for (const auto& r : b.resources) of_resource[r.id] = &b;
    if (!of_resource.empty()) {
      std::vector<std::string> resource_ids;
      for (const auto& [rid, b] : of_resource) resource_ids.push_back(rid);
      each_row(
          WHARF_EACH_KEY("resource_id, period_start_ms, micros", "prepaid_charges", "resource_id"),
          util::pg_text_array(resource_ids), [&](Stmt& s) {
            of_resource.at(s.text(0))->prepaid[{s.text(0), s.int64(1)}] = s.int64(2);
          });
    }
    // Ordered as the reads they stand for order (text byte-wise, as COLLATE "C").
    for (auto& [id, b] : read) {
      std::sort(b.schedules.begin(), b.schedules.end(), [](const auto& x, const auto& y) {
        return std::tie(x.effective_ms, x.resource_id) < std::tie(y.effective_ms, y.resource_id);
      });
      std::sort(b.spans.begin(), b.spans.end(), [](const auto& x, const auto& y) {
        return std::tie(x.start_ms, x.resource_id) < std::tie(y.start_ms, y.resource_id);
      });
      std::sort(b.resources.begin(), b.resources.end(),
                [](const auto& x, const auto& y) { return resource_order(x) < resource_order(y); });
      std::sort(b.invoices.begin(), b.invoices.end(),
                [](const auto& x, const auto& y) { return invoice_order(x) < invoice_order(y); });
      std::sort(b.balances.begin(), b.balances.end(),
                [](const auto& x, const auto& y) { return x.resource_id < y.resource_id; });
      for (const auto& r : b.resources) prefetched_resource_[r.id] = id;
    }
    prefetched_ = std::move(read);
    prefetched_at_ = c_.writes();
  }

  std::map<std::string, int64_t> usage_before_many(const std::vector<std::string>& resource_ids,
                                                   const std::string& metric,
                                                   const std::string& day) override {
    std::map<std::string, int64_t> out;
    if (resource_ids.empty()) return out;
    // Per resource, usage_before's statement (the key's newest entries first, down to the
    // first of the metric), not a DISTINCT ON that reads every entry before `day`.
    Stmt s(c_,
           "SELECT r.id, (SELECT value FROM usage_ledger WHERE resource_id = r.id AND metric = "
           "$2 AND day < $3 ORDER BY day DESC LIMIT 1) FROM unnest($1::text[]) AS r(id)");
    s.bind(1, util::pg_text_array(resource_ids)).bind(2, metric).bind(3, day);
    while (s.step())
      if (auto value = s.opt_int64(1)) out[s.text(0)] = *value;
    return out;
  }

  // One statement (not the ids, then a statement per installation): each is a round trip.
  std::vector<InstallationRow> installations_to_bill() override {
    Stmt s(c_, "SELECT " WHARF_INSTALLATION_COLUMNS
               " FROM installations WHERE status = 'active' OR finalized = 0 ORDER BY id "
               "COLLATE \"C\"");
    std::vector<InstallationRow> out;
    while (s.step()) out.push_back(installation_row(s));
    return out;
  }

  std::vector<PlanPeriodRow> plan_periods(const std::string& installation_id, int64_t from_ms,
                                          int64_t to_ms) override {
    if (Billing* b = prefetched(installation_id)) {
      std::vector<PlanPeriodRow> out;
      for (const auto& span : b->spans)
        if (span.start_ms < to_ms && (!span.end_ms || *span.end_ms > from_ms)) out.push_back(span);
      return out;
    }
    Stmt s(c_,
           "SELECT resource_id, plan_id, start_ms, end_ms FROM plan_periods WHERE "
           "installation_id = $1 AND start_ms < $3 AND (end_ms IS NULL OR end_ms > $2) "
           "ORDER BY start_ms, resource_id COLLATE \"C\"");
    s.bind(1, installation_id).bind(2, from_ms).bind(3, to_ms);
    std::vector<PlanPeriodRow> out;
    while (s.step())
      out.push_back({installation_id, s.text(0), s.text(1), s.int64(2), s.opt_int64(3)});
    return out;
  }

  std::optional<BillingStateRow> billing_state(const std::string& installation_id) override {
    if (Billing* b = prefetched(installation_id)) return b->state;
    Stmt s(c_,
           "SELECT last_data_ms, final_through_ms, invoiced_through_ms, last_balance_ms, "
           "final_submitted, finalize_enqueued, gone_ms, leftovers_suspended_ms, "
           "leftovers_deleted_ms FROM billing_state WHERE "
           "installation_id = $1");
    s.bind(1, installation_id);
    if (!s.step()) return std::nullopt;
    return billing_state_row(s, installation_id);
  }

  void put_billing_state(const BillingStateRow& r) override {
    Stmt s(
        c_,
        "INSERT INTO billing_state (installation_id, last_data_ms, "
        "final_through_ms, invoiced_through_ms, last_balance_ms, final_submitted, "
        "finalize_enqueued, gone_ms, leftovers_suspended_ms, leftovers_deleted_ms) VALUES "
        "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (installation_id) DO UPDATE SET last_data_ms "
        "= excluded.last_data_ms, final_through_ms = excluded.final_through_ms, "
        "invoiced_through_ms = excluded.invoiced_through_ms, last_balance_ms = "
        "excluded.last_balance_ms, final_submitted = excluded.final_submitted, finalize_enqueued = "
        "excluded.finalize_enqueued, gone_ms = excluded.gone_ms, leftovers_suspended_ms = "
        "excluded.leftovers_suspended_ms, leftovers_deleted_ms = excluded.leftovers_deleted_ms");
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
    s.send();
    known_write([&] {
      if (auto it = prefetched_.find(r.installation_id); it != prefetched_.end())
        it->second.state = r;
    });
  }

  std::optional<InvoiceRow> invoice(const std::string& installation_id,
                                    const std::string& id) override {
    if (Billing* b = prefetched(installation_id)) {
      for (const auto& r : b->invoices)
        if (r.id == id) return r;
      return std::nullopt;
    }
    Stmt s(c_,
           "SELECT " WHARF_INVOICE_COLUMNS " FROM invoices WHERE installation_id = $1 AND id = $2");
    s.bind(1, installation_id).bind(2, id);
    if (!s.step()) return std::nullopt;
    return read_invoice(s);
  }

  std::optional<InvoiceRow> invoice_by_vercel_id(const std::string& installation_id,
                                                 const std::string& vercel_id) override {
    Stmt s(c_, "SELECT " WHARF_INVOICE_COLUMNS
               " FROM invoices WHERE installation_id = $1 AND vercel_invoice_id = $2");
    s.bind(1, installation_id).bind(2, vercel_id);
    if (!s.step()) return std::nullopt;
    return read_invoice(s);
  }

  std::vector<InvoiceRow> invoices_of(const std::string& installation_id) override {
    if (Billing* b = prefetched(installation_id)) return b->invoices;
    Stmt s(c_,
           "SELECT " WHARF_INVOICE_COLUMNS
           " FROM invoices WHERE installation_id = $1 ORDER BY period_start_ms, id COLLATE \"C\"");
    s.bind(1, installation_id);
    std::vector<InvoiceRow> out;
    while (s.step()) out.push_back(read_invoice(s));
    return out;
  }

  void put_invoice(const InvoiceRow& r) override {
    Stmt s(c_,
           "INSERT INTO invoices (" WHARF_INVOICE_COLUMNS
           ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20) ON "
           "CONFLICT (installation_id, id) DO UPDATE SET resource_id = excluded.resource_id, "
           "plan_id = excluded.plan_id, period_start_ms = excluded.period_start_ms, period_end_ms "
           "= excluded.period_end_ms, items = excluded.items, total = excluded.total, state = "
           "excluded.state, vercel_invoice_id = excluded.vercel_invoice_id, carried_into = "
           "excluded.carried_into, final = excluded.final, test = excluded.test, refund_total = "
           "excluded.refund_total, refund_reason = excluded.refund_reason, paid_ms = "
           "excluded.paid_ms, overdue_ms = excluded.overdue_ms, suspended = excluded.suspended, "
           "created_ms = excluded.created_ms, updated_ms = excluded.updated_ms");
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
    s.send();
    known_write([&] {
      if (auto it = prefetched_.find(r.installation_id); it != prefetched_.end())
        put_sorted(it->second.invoices, r, invoice_order);
    });
  }

  std::vector<BalanceRow> balances_of(const std::string& installation_id) override {
    if (Billing* b = prefetched(installation_id)) return b->balances;
    Stmt s(c_,
           "SELECT resource_id, credited_micros, debited_micros, updated_ms FROM balances "
           "WHERE installation_id = $1 ORDER BY resource_id COLLATE \"C\"");
    s.bind(1, installation_id);
    std::vector<BalanceRow> out;
    while (s.step())
      out.push_back({installation_id, s.text(0), s.int64(1), s.int64(2), s.int64(3)});
    return out;
  }

  void put_balance(const BalanceRow& r) override {
    Stmt s(c_,
           "INSERT INTO balances (installation_id, resource_id, credited_micros, "
           "debited_micros, updated_ms) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (installation_id, "
           "resource_id) DO UPDATE SET credited_micros = excluded.credited_micros, debited_micros "
           "= excluded.debited_micros, updated_ms = excluded.updated_ms");
    s.bind(1, r.installation_id)
        .bind(2, r.resource_id)
        .bind(3, r.credited_micros)
        .bind(4, r.debited_micros)
        .bind(5, r.updated_ms);
    s.send();
    known_write([&] {
      if (auto it = prefetched_.find(r.installation_id); it != prefetched_.end())
        put_sorted(it->second.balances, r,
                   [](const BalanceRow& x) -> const std::string& { return x.resource_id; });
    });
  }

  std::optional<PurchaseRow> purchase(const std::string& installation_id,
                                      const std::string& invoice_id) override {
    Stmt s(c_,
           "SELECT credits, created_ms FROM purchases WHERE installation_id = $1 AND "
           "invoice_id = $2");
    s.bind(1, installation_id).bind(2, invoice_id);
    if (!s.step()) return std::nullopt;
    return PurchaseRow{installation_id, invoice_id, s.text(0), s.int64(1)};
  }

  bool insert_purchase(const PurchaseRow& r) override {
    Stmt s(c_,
           "INSERT INTO purchases (installation_id, invoice_id, credits, created_ms) VALUES "
           "($1,$2,$3,$4) ON CONFLICT (installation_id, invoice_id) DO NOTHING");
    s.bind(1, r.installation_id)
        .bind(2, r.invoice_id)
        .bind(3, r.credits_json)
        .bind(4, r.created_ms);
    return s.changes() > 0;
  }

  int64_t prepaid_charged(const std::string& resource_id, int64_t period_start_ms) override {
    if (Billing* b = prefetched_for_resource(resource_id)) {
      auto it = b->prepaid.find({resource_id, period_start_ms});
      return it == b->prepaid.end() ? 0 : it->second;
    }
    Stmt s(c_,
           "SELECT micros FROM prepaid_charges WHERE resource_id = $1 AND period_start_ms = $2");
    s.bind(1, resource_id).bind(2, period_start_ms);
    return s.step() ? s.int64(0) : 0;
  }

  void set_prepaid_charged(const std::string& resource_id, int64_t period_start_ms,
                           int64_t micros) override {
    Stmt s(c_,
           "INSERT INTO prepaid_charges (resource_id, period_start_ms, micros) "
           "VALUES ($1,$2,$3) ON CONFLICT (resource_id, period_start_ms) DO UPDATE SET micros = "
           "excluded.micros");
    s.bind(1, resource_id).bind(2, period_start_ms).bind(3, micros);
    s.send();
    known_write([&] {
      auto it = prefetched_resource_.find(resource_id);
      if (it != prefetched_resource_.end())
        prefetched_[it->second].prepaid[{resource_id, period_start_ms}] = micros;
    });
  }

  void insert_credential(const CredentialRow& r) override {
    Stmt s(c_,
           "INSERT INTO resource_credentials (token_hash, resource_id, access, created_ms, "
           "expires_ms) VALUES ($1,$2,$3,$4,$5)");
    s.bind(1, r.token_hash).bind(2, r.resource_id).bind(3, r.access).bind(4, r.created_ms);
    s.bind(5, r.expires_ms);
    s.step();
  }

  void expire_credentials(const std::string& resource_id, int64_t expires_ms) override {
    Stmt s(c_,
           "UPDATE resource_credentials SET expires_ms = $2 WHERE resource_id = $1 AND "
           "(expires_ms IS NULL OR expires_ms > $2)");
    s.bind(1, resource_id).bind(2, expires_ms);
    s.step();
  }

  void delete_credentials(const std::string& resource_id) override {
    Stmt s(c_, "DELETE FROM resource_credentials WHERE resource_id = $1");
    s.bind(1, resource_id);
    s.step();
  }

  void add_usage(const std::string& resource_id, const std::string& day, const std::string& metric,
                 int64_t delta) override {
    Stmt s(c_,
           "INSERT INTO usage_ledger (resource_id, day, metric, value) VALUES ($1,$2,$3,$4) "
           "ON CONFLICT (resource_id, day, metric) DO UPDATE SET value = usage_ledger.value + "
           "excluded.value");
    s.bind(1, resource_id).bind(2, day).bind(3, metric).bind(4, delta);
    s.step();
  }

  void set_usage(const std::string& resource_id, const std::string& day, const std::string& metric,
                 int64_t value) override {
    Stmt s(c_,
           "INSERT INTO usage_ledger (resource_id, day, metric, value) VALUES ($1,$2,$3,$4) "
           "ON CONFLICT (resource_id, day, metric) DO UPDATE SET value = excluded.value");
    s.bind(1, resource_id).bind(2, day).bind(3, metric).bind(4, value);
    s.step();
  }

  bool record_usage_event(const std::string& product_id, const std::string& event_id,
                          int64_t now_ms) override {
    return changes(
               "INSERT INTO usage_events (product_id, event_id, created_ms) VALUES ($1,$2,$3) "
               "ON CONFLICT DO NOTHING",
               product_id, event_id, now_ms) == 1;
  }

  void max_usage(const std::string& resource_id, const std::string& day, const std::string& metric,
                 int64_t value) override {
    Stmt s(c_,
           "INSERT INTO usage_ledger (resource_id, day, metric, value) VALUES ($1,$2,$3,$4) "
           "ON CONFLICT (resource_id, day, metric) DO UPDATE SET value = "
           "GREATEST(usage_ledger.value, excluded.value)");
    s.bind(1, resource_id).bind(2, day).bind(3, metric).bind(4, value);
    s.step();
  }

  int64_t purge_idempotency(int64_t created_before_ms) override {
    return changes("DELETE FROM idempotency WHERE created_ms < $1 AND state = 'done'",
                   created_before_ms);
  }

  // Runs a DELETE/UPDATE with its parameters bound in order; returns the rows it changed.
  template <typename... Args>
  int64_t changes(const char* sql, const Args&... args) {
    Stmt s(c_, sql);
    int i = 0;
    (s.bind(++i, args), ...);
    return s.changes();
  }

 private:
  void end_plan_span(const std::string& installation_id, const std::string& resource_id,
                     int64_t at) override {
    Stmt s(c_,
           "UPDATE plan_periods SET end_ms = $3 WHERE installation_id = $1 AND resource_id = "
           "$2 AND end_ms IS NULL");
    s.bind(1, installation_id).bind(2, resource_id).bind(3, at);
    s.step();
  }

  void start_plan_span(const std::string& installation_id, const std::string& resource_id,
                       const std::string& plan_id, int64_t at) override {
    Stmt s(c_,
           "INSERT INTO plan_periods (installation_id, resource_id, plan_id, start_ms) VALUES "
           "($1,$2,$3,$4) ON CONFLICT (installation_id, resource_id, start_ms) DO UPDATE SET "
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
           "created_ms, expires_ms FROM sessions WHERE id_hash = $1");
    s.bind(1, id_hash);
    if (!s.step()) return std::nullopt;
    return SessionRow{s.text(0), s.text(1), s.text(2),  s.text(3), s.text(4),
                      s.text(5), s.text(6), s.int64(7), s.int64(8)};
  }

  void insert_session(const SessionRow& r) override {
    Stmt s(c_,
           "INSERT INTO sessions (id_hash, installation_id, account_id, user_id, role, user_name, "
           "user_email, created_ms, expires_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)");
    s.bind(1, r.id_hash).bind(2, r.installation_id).bind(3, r.account_id).bind(4, r.user_id);
    s.bind(5, r.role).bind(6, r.user_name).bind(7, r.user_email).bind(8, r.created_ms);
    s.bind(9, r.expires_ms);
    s.step();
  }

  void delete_session(const std::string& id_hash) override {
    Stmt s(c_, "DELETE FROM sessions WHERE id_hash = $1");
    s.bind(1, id_hash);
    s.step();
  }

  int64_t purge_sessions(int64_t expired_before_ms) override {
    return changes("DELETE FROM sessions WHERE expires_ms < $1", expired_before_ms);
  }

  int64_t set_member_sessions_role(const std::string& installation_id, const std::string& user_id,
                                   const std::string& role) override {
    return changes(
        "UPDATE sessions SET role = $3 WHERE installation_id = $1 AND user_id = $2 AND role <> $3",
        installation_id, user_id, role);
  }

  int64_t delete_member_sessions(const std::string& installation_id,
                                 const std::string& user_id) override {
    return changes("DELETE FROM sessions WHERE installation_id = $1 AND user_id = $2",
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
           "WHERE resource_id = $1 ORDER BY key COLLATE \"C\"");
    s.bind(1, resource_id);
    std::vector<FlagRow> out;
    while (s.step()) out.push_back(read_flag(s));
    return out;
  }

  std::optional<FlagRow> flag(const std::string& resource_id, const std::string& key) override {
    Stmt s(c_,
           "SELECT id, resource_id, key, definition, archived, created_ms, updated_ms FROM flags "
           "WHERE resource_id = $1 AND key = $2");
    s.bind(1, resource_id).bind(2, key);
    if (!s.step()) return std::nullopt;
    return read_flag(s);
  }

  std::optional<FlagRow> flag_by_id(const std::string& id) override {
    Stmt s(c_,
           "SELECT id, resource_id, key, definition, archived, created_ms, updated_ms FROM flags "
           "WHERE id = $1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_flag(s);
  }

  std::optional<FlagSetRow> flag_set(const std::string& resource_id) override {
    Stmt s(c_,
           "SELECT resource_id, version, sync_path, sync_digest, sync_hash, updated_ms FROM "
           "flag_sets WHERE resource_id = $1");
    s.bind(1, resource_id);
    if (!s.step()) return std::nullopt;
    return FlagSetRow{s.text(0), s.int64(1), s.text(2), s.text(3), s.text(4), s.int64(5)};
  }

  int64_t flag_count(const std::string& resource_id) override {
    Stmt s(c_, "SELECT count(*) FROM flags WHERE resource_id = $1");
    s.bind(1, resource_id);
    return s.step() ? s.int64(0) : 0;
  }

  std::optional<BranchRow> branch(const std::string& id) override {
    Stmt s(c_, "SELECT " WHARF_BRANCH_COLUMNS " FROM branches WHERE id = $1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_branch(s);
  }

  std::vector<BranchRow> branches_of(const std::string& resource_id) override {
    Stmt s(c_, "SELECT " WHARF_BRANCH_COLUMNS
               " FROM branches WHERE resource_id = $1 ORDER BY created_ms, id COLLATE \"C\"");
    s.bind(1, resource_id);
    std::vector<BranchRow> out;
    while (s.step()) out.push_back(read_branch(s));
    return out;
  }

  // ---- scheduled plan changes (migration 14) ----
  std::vector<PlanScheduleRow> plan_schedules_of(const std::string& installation_id) override {
    if (Billing* b = prefetched(installation_id)) return b->schedules;
    Stmt s(c_,
           "SELECT resource_id, plan_id, effective_ms, created_ms FROM plan_schedules WHERE "
           "installation_id = $1 ORDER BY effective_ms, resource_id COLLATE \"C\"");
    s.bind(1, installation_id);
    std::vector<PlanScheduleRow> out;
    while (s.step()) out.push_back({installation_id, s.text(0), s.text(1), s.int64(2), s.int64(3)});
    return out;
  }

  void put_plan_schedule(const PlanScheduleRow& r) override {
    Stmt s(c_,
           "INSERT INTO plan_schedules (installation_id, resource_id, plan_id, effective_ms, "
           "created_ms) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (installation_id, resource_id) DO "
           "UPDATE SET plan_id = excluded.plan_id, effective_ms = excluded.effective_ms, "
           "created_ms = excluded.created_ms");
    s.bind(1, r.installation_id)
        .bind(2, r.resource_id)
        .bind(3, r.plan_id)
        .bind(4, r.effective_ms)
        .bind(5, r.created_ms);
    s.step();
  }

  bool delete_plan_schedule(const std::string& installation_id,
                            const std::string& resource_id) override {
    Stmt s(c_, "DELETE FROM plan_schedules WHERE installation_id = $1 AND resource_id = $2");
    s.bind(1, installation_id).bind(2, resource_id);
    return s.changes() > 0;
  }

  // ---- outbox lane leases (migration 16) ----
  std::optional<OutboxLeaseRow> outbox_lease(const std::string& lane) override {
    Stmt s(c_, "SELECT lane, owner, until_ms FROM outbox_leases WHERE lane = $1");
    s.bind(1, lane);
    if (!s.step()) return std::nullopt;
    return OutboxLeaseRow{s.text(0), s.text(1), s.int64(2)};
  }

  bool take_outbox_lease(const std::string& lane, const std::string& owner, int64_t now_ms,
                         int64_t until_ms) override {
    Stmt s(c_,
           "INSERT INTO outbox_leases (lane, owner, until_ms) VALUES ($1, $2, $4) "
           "ON CONFLICT (lane) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms "
           "WHERE outbox_leases.owner = excluded.owner OR outbox_leases.until_ms <= $3");
    s.bind(1, lane).bind(2, owner).bind(3, now_ms).bind(4, until_ms);
    return s.changes() > 0;
  }

  void release_outbox_lease(const std::string& lane, const std::string& owner) override {
    Stmt s(c_, "DELETE FROM outbox_leases WHERE lane = $1 AND owner = $2");
    s.bind(1, lane).bind(2, owner);
    s.step();
  }

  void put_branch(const BranchRow& r) override {
    Stmt s(c_, "INSERT INTO branches (" WHARF_BRANCH_COLUMNS
               ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO UPDATE SET "
               "resource_id = excluded.resource_id, installation_id = excluded.installation_id, "
               "deployment_id = excluded.deployment_id, action = excluded.action, status = "
               "excluded.status, status_text = excluded.status_text, secrets = excluded.secrets, "
               "created_ms = excluded.created_ms, updated_ms = excluded.updated_ms");
    s.bind(1, r.id).bind(2, r.resource_id).bind(3, r.installation_id).bind(4, r.deployment_id);
    s.bind(5, r.action).bind(6, r.status).bind(7, r.status_text).bind_blob(8, r.secrets_sealed);
    s.bind(9, r.created_ms).bind(10, r.updated_ms);
    s.step();
  }

  void put_flag(const FlagRow& r) override {
    // SQLite's INSERT OR REPLACE also replaces a row that holds the same (resource, key)
    // under another id: do the same.
    {
      Stmt d(c_, "DELETE FROM flags WHERE resource_id = $1 AND key = $2 AND id <> $3");
      d.bind(1, r.resource_id).bind(2, r.key).bind(3, r.id);
      d.step();
    }
    Stmt s(c_,
           "INSERT INTO flags (id, resource_id, key, definition, archived, created_ms, "
           "updated_ms) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (id) DO UPDATE SET resource_id = "
           "excluded.resource_id, key = excluded.key, definition = excluded.definition, archived = "
           "excluded.archived, created_ms = excluded.created_ms, updated_ms = excluded.updated_ms");
    s.bind(1, r.id).bind(2, r.resource_id).bind(3, r.key).bind(4, r.definition_json);
    s.bind(5, int64_t{r.archived ? 1 : 0}).bind(6, r.created_ms).bind(7, r.updated_ms);
    s.step();
  }

  void delete_flag(const std::string& id) override {
    Stmt s(c_, "DELETE FROM flags WHERE id = $1");
    s.bind(1, id);
    s.step();
  }

  void put_flag_set(const FlagSetRow& r) override {
    Stmt s(
        c_,
        "INSERT INTO flag_sets (resource_id, version, sync_path, sync_digest, "
        "sync_hash, updated_ms) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (resource_id) DO UPDATE SET "
        "version = excluded.version, sync_path = excluded.sync_path, sync_digest = "
        "excluded.sync_digest, sync_hash = excluded.sync_hash, updated_ms = excluded.updated_ms");
    s.bind(1, r.resource_id).bind(2, r.version).bind(3, r.sync_path).bind(4, r.sync_digest);
    s.bind(5, r.sync_hash).bind(6, r.updated_ms);
    s.step();
  }

  void delete_flags_of(const std::string& resource_id) override {
    Stmt a(c_, "DELETE FROM flags WHERE resource_id = $1");
    a.bind(1, resource_id);
    a.step();
    Stmt b(c_, "DELETE FROM flag_sets WHERE resource_id = $1");
    b.bind(1, resource_id);
    b.step();
  }

  int64_t purge_outbox(int64_t done_before_ms) override {
    return changes(
        "DELETE FROM outbox WHERE state IN ('delivered', 'dropped') AND done_ms IS NOT NULL "
        "AND done_ms < $1",
        done_before_ms);
  }

  int64_t purge_webhook_events(int64_t processed_before_ms) override {
    return changes(
        "DELETE FROM webhook_events WHERE processed_ms IS NOT NULL AND processed_ms < $1",
        processed_before_ms);
  }

  int64_t purge_usage(const std::string& before_day) override {
    return changes("DELETE FROM usage_ledger WHERE day < $1", before_day);  // index usage_by_day
  }

  int64_t purge_usage_events(int64_t created_before_ms) override {
    return changes("DELETE FROM usage_events WHERE created_ms < $1", created_before_ms);
  }

  int64_t retry_dead_outbox(const std::string& id, int64_t now_ms) override {
    return changes(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = $2, "
        "last_error = '', done_ms = NULL WHERE state = 'dead' AND ($1 = '' OR id = $1)",
        id, now_ms);
  }

  int64_t drop_dead_outbox(const std::string& id, int64_t now_ms) override {
    return changes(
        "UPDATE outbox SET state = 'dropped', done_ms = $2 WHERE state = 'dead' AND id = $1", id,
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

  // usage_between_many's statement, and the one expect_usage_between_many sent ahead.
  static constexpr const char* kUsageBetweenMany =
      "SELECT resource_id, day, metric, value FROM usage_ledger WHERE resource_id = "
      "ANY($1::text[]) AND day >= $2 AND day <= $3";
  struct Expected {
    std::vector<std::string> resource_ids;
    std::string from_day, to_day;
    uint64_t writes, known_writes;  // c_.writes() and known_writes_ when it was sent
    uint64_t ticket;
  };
  std::optional<Expected> expected_;
  // Writes whose effect this transaction knows (known_write): none of them writes the usage
  // ledger, so a read sent ahead stays good through them and through nothing else.
  uint64_t known_writes_ = 0;

  // ---- the billing rows prefetch_billing read, by installation ----
  // What one installation's billing reads return, read for a batch of installations at once
  // and kept exact by the writes that know it (known_write: each applies itself). Any other
  // statement that may write (the connection's write count moves past `prefetched_at_`)
  // drops it all: reads go to the database again, never to rows a write may have changed.
  struct Billing {
    std::optional<InstallationRow> installation;
    std::optional<BillingStateRow> state;
    std::vector<PlanScheduleRow> schedules;  // ordered as plan_schedules_of
    std::vector<PlanPeriodRow> spans;        // every span, ordered as plan_periods
    std::vector<ResourceRow> resources;      // deleted ones too, ordered as resources_of
    std::vector<InvoiceRow> invoices;        // ordered as invoices_of
    std::vector<BalanceRow> balances;        // ordered as balances_of
    std::map<std::pair<std::string, int64_t>, int64_t> prepaid;  // (resource, period) -> micros
  };
  std::map<std::string, Billing> prefetched_;
  std::map<std::string, std::string> prefetched_resource_;  // resource id -> installation id
  uint64_t prefetched_at_ = 0;  // the connection's write count the rows are exact for

  // The prefetched rows of an installation, if they are read and still exact.
  Billing* prefetched(const std::string& installation_id) {
    if (prefetched_.empty()) return nullptr;
    if (prefetched_at_ != c_.writes()) {
      prefetched_.clear();
      prefetched_resource_.clear();
      return nullptr;
    }
    auto it = prefetched_.find(installation_id);
    return it == prefetched_.end() ? nullptr : &it->second;
  }
  // The prefetched rows of the installation a resource is in (the rows are exact: a resource
  // not in them is in none of the prefetched installations).
  Billing* prefetched_for_resource(const std::string& resource_id) {
    auto it = prefetched_resource_.find(resource_id);
    if (it == prefetched_resource_.end()) return nullptr;
    const std::string installation_id = it->second;  // prefetched() may drop the map
    return prefetched(installation_id);
  }
  // After a write whose effect this transaction knows, which `apply` mirrors on the
  // prefetched rows: they stay exact if they were up to the write before it (and `apply`, if
  // it returns a bool, did not answer false).
  template <class Apply>
  void known_write(Apply&& apply) {
    ++known_writes_;
    if (prefetched_.empty()) return;
    if (prefetched_at_ + 1 != c_.writes()) return;  // already stale: dropped on the next read
    if constexpr (std::is_same_v<decltype(apply()), bool>) {
      if (!apply()) return;  // left stale
    } else {
      apply();
    }
    prefetched_at_ = c_.writes();
  }

  template <class Row, class Key>
  static void put_sorted(std::vector<Row>& rows, Row row, Key key) {
    auto same =
        std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return key(r) == key(row); });
    if (same != rows.end()) rows.erase(same);
    auto at = std::upper_bound(rows.begin(), rows.end(), row,
                               [&](const Row& a, const Row& b) { return key(a) < key(b); });
    rows.insert(at, std::move(row));
  }
  using Order = std::tuple<const int64_t&, const std::string&>;
  static Order resource_order(const ResourceRow& r) { return std::tie(r.created_ms, r.id); }
  static Order invoice_order(const InvoiceRow& r) { return std::tie(r.period_start_ms, r.id); }

  static BillingStateRow billing_state_row(const Stmt& s, const std::string& installation_id) {
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

  Connection& c_;
};
class PgStore final : public Store {
 public:
  explicit PgStore(const Options& o) : options_(o) {
    if (options_.pool_size == 0) options_.pool_size = 1;
    migrate();
  }

  void read(const std::function<void(ReadTx&)>& fn) override {
    std::optional<Lease> c;
    begin(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    Begun tx(**c);
    Tx t(**c);
    fn(t);
    tx.commit();
  }

  void write(const std::function<void(WriteTx&)>& fn) override {
    for (int attempt = 1;; ++attempt) {
      bool conflict = false;
      try {
        std::optional<Lease> c;
        begin(c, "BEGIN ISOLATION LEVEL SERIALIZABLE");
        Begun tx(**c);
        Tx t(**c);
        try {
          fn(t);
          tx.commit();
          return;
        } catch (...) {
          // A closure that caught a serialization failure and threw something else (or went
          // on until the aborted transaction refused a statement) still conflicted.
          conflict = (*c)->conflicted();
          if (!conflict || attempt >= options_.max_attempts) throw;
        }
      } catch (const PgError& e) {
        if (!(conflict || retryable(e)) || attempt >= options_.max_attempts) throw;
      }
      retries_.fetch_add(1);
      backoff(attempt);
    }
  }

  bool healthy() override {
    try {
      std::optional<Lease> c;
      begin(c, "SELECT 1");  // a dead idle connection is not a dead server
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  std::string describe() const override { return redact_url(options_.url); }

  // Replicas elect the leader of the periodic passes with a session advisory lock held on a
  // connection of its own: PostgreSQL frees it the moment that session ends (the process
  // died, or the network dropped it), and another replica's next try takes it.
  bool lead() override {
    std::lock_guard<std::mutex> lock(leader_mu_);
    try {
      if (leader_ && leader_->ok()) {
        leader_->exec("SELECT 1");  // still connected: the lock is still this session's
        return true;
      }
      leader_.reset();
      auto c = std::make_unique<Connection>(options_.url);
      auto r =
          c->exec("SELECT pg_catalog.pg_try_advisory_lock(" + std::string(kLeaderLockKey) + ")");
      if (PQntuples(r.get()) == 1 && std::string(PQgetvalue(r.get(), 0, 0)) == "t") {
        leader_ = std::move(c);
        return true;
      }
      return false;
    } catch (const PgError&) {
      leader_.reset();  // the lock went with the session
      return false;
    }
  }
  bool shared() const override { return true; }

 private:
  std::mutex leader_mu_;
  std::unique_ptr<Connection> leader_;  // holds the leader's advisory lock
  // Connections: at most pool_size open; idle ones are reused last-in first-out, broken
  // ones (server restart, lost link) are dropped when given back.
  class Lease {
   public:
    explicit Lease(PgStore& s) : store_(s) {
      std::unique_lock<std::mutex> lock(s.pool_mu_);
      auto deadline = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(s.options_.acquire_timeout_ms);
      while (s.idle_.empty() && s.open_ >= s.options_.pool_size) {
        if (s.pool_cv_.wait_until(lock, deadline) == std::cv_status::timeout && s.idle_.empty() &&
            s.open_ >= s.options_.pool_size)
          throw PgError("", "",
                        "no free connection in the state store pool (WHARF_STATE_POOL_SIZE=" +
                            std::to_string(s.options_.pool_size) + ")");
      }
      if (!s.idle_.empty()) {
        conn_ = std::move(s.idle_.back());
        s.idle_.pop_back();
        return;
      }
      ++s.open_;
      lock.unlock();
      try {
        conn_ = std::make_unique<Connection>(s.options_.url);
      } catch (...) {
        lock.lock();
        --s.open_;
        s.pool_cv_.notify_one();
        throw;
      }
    }
    ~Lease() {
      std::lock_guard<std::mutex> lock(store_.pool_mu_);
      if (conn_->ok() && conn_->idle())
        store_.idle_.push_back(std::move(conn_));
      else
        --store_.open_;  // closed by conn_'s destructor
      store_.pool_cv_.notify_one();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    PgStore& store_;
    std::unique_ptr<Connection> conn_;
  };

  // A transaction begun on a connection: rolled back unless committed.
  class Begun {
   public:
    explicit Begun(Connection& c) : c_(c) {}
    ~Begun() {
      if (done_ || !c_.ok()) return;
      try {
        c_.exec("ROLLBACK");
      } catch (const std::exception&) {
        c_.mark_broken();
      }
    }
    Begun(const Begun&) = delete;
    Begun& operator=(const Begun&) = delete;
    void commit() {
      c_.drain();    // a queued write that failed: rolled back by the destructor
      done_ = true;  // a failed COMMIT has ended the transaction too
      auto r = c_.exec("COMMIT");
      // COMMIT of a transaction a failed statement aborted (a closure that caught the error
      // and went on) answers ROLLBACK, not an error: nothing was written.
      if (std::string(PQcmdStatus(r.get())) != "COMMIT")
        throw PgError(c_.conflicted() ? "40001" : "", "",
                      "the transaction was rolled back: a statement in it failed");
    }

   private:
    Connection& c_;
    bool done_ = false;
  };

  // Takes a connection into `c` and begins a transaction on it (runs `sql`). An idle connection the
  // server closed meanwhile (a restart, an idle timeout) fails at BEGIN, before anything ran: it is
  // dropped and another one taken.
  void begin(std::optional<Lease>& c, const char* sql) {
    for (size_t tries = 0;; ++tries) {
      c.emplace(*this);
      (*c)->clear_conflict();
      try {
        (*c)->exec(sql);
        return;
      } catch (const PgError& e) {
        if (!e.state.empty() || tries > options_.pool_size) throw;
        c.reset();  // broken: closed, not given back
      }
    }
  }

  void backoff(int attempt) {
    // 1, 2, 4 … ms (at most 100), jittered so that the retried transactions spread out.
    int cap = std::min(100, 1 << std::min(attempt, 7));
    thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> pick(cap / 2, cap);
    std::this_thread::sleep_for(std::chrono::milliseconds(pick(rng)));
  }

  // Every migration not yet recorded, each in its own transaction, all under a session-level
  // advisory lock: replicas starting together wait for the first to finish and then find
  // the migrations recorded.
  void migrate() {
    Lease c(*this);
    c->exec("SELECT pg_advisory_lock(" + std::to_string(kMigrationLock) + ")");
    try {
      c->exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT "
          "NOT NULL, applied_ms BIGINT NOT NULL)");
      std::set<int64_t> applied;
      int64_t current = 0;
      {
        Stmt s(*c, "SELECT version FROM schema_migrations");
        while (s.step()) {
          applied.insert(s.int64(0));
          current = std::max(current, s.int64(0));
        }
      }
      int64_t latest = migrations().empty() ? 0 : migrations().back().version;
      if (current > latest)
        throw PgError("", "",
                      "database schema version " + std::to_string(current) +
                          " is newer than this build supports (" + std::to_string(latest) + ")");
      for (const auto& m : migrations()) {
        if (applied.count(m.version)) continue;
        c->exec("BEGIN");
        Begun tx(*c);
        c->exec(render_migration(m.sql, "BYTEA", "BIGINT"));
        Stmt s(*c, "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1,$2,$3)");
        s.bind(1, int64_t{m.version})
            .bind(2, std::string(m.name))
            .bind(3, util::SystemClock().now_ms());
        s.step();
        tx.commit();
        util::log_info("migration applied").num("version", m.version).str("name", m.name);
      }
    } catch (...) {
      try {
        c->exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLock) + ")");
      } catch (const std::exception&) {
        c->mark_broken();  // closing the session releases the lock
      }
      throw;
    }
    c->exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLock) + ")");
  }

  // The advisory lock key of migrations ("wharf" + "mig" in ASCII): any constant other users
  // of the database do not take.
  static constexpr int64_t kMigrationLock = 0x776861726d6967;

  Options options_;
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  size_t open_ = 0;  // connections open (idle or leased)
  std::atomic<int64_t> retries_{0};
};

}  // namespace

std::string redact_url(const std::string& url) {
  std::string out = url;
  auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    auto start = scheme + 3;
    auto end = out.find_first_of("/?", start);
    auto at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at >= start) {
      auto colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.erase(colon, at - colon);
    }
  }
  // A password given as a query parameter.
  auto q = out.find('?');
  if (q != std::string::npos) {
    std::string query = out.substr(q + 1), kept;
    size_t pos = 0;
    while (pos <= query.size()) {
      auto amp = query.find('&', pos);
      std::string part =
          query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      if (!part.empty() && part.rfind("password=", 0) != 0)
        kept += (kept.empty() ? "" : "&") + part;
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    out = out.substr(0, q) + (kept.empty() ? "" : "?" + kept);
  }
  return out;
}

std::unique_ptr<Store> open(const Options& options) {
  return std::make_unique<PgStore>(options);
}

std::unique_ptr<Store> open_url(const std::string& url) {
  Options o;
  o.url = url;
  return open(o);
}

}  // namespace wharf::store::postgres
