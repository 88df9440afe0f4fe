#include "product/sqlite_db/connection.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "product/product.h"
#include "product/sqlite_db/memory_budget.h"
#include "product/sqlite_db/safe_functions.h"

namespace wharf::product::sqlite_db {
namespace {

// Largest string, blob or row a client can make. SQLite's default (1e9) lets one statement
// allocate a gigabyte, and a single engine step that builds such a value (randomblob,
// printf('%.*c', …), zeroblob copies) runs for seconds between two checks of the statement
// timeout. 16 MiB is far beyond any sensible value and bounds what one step can cost; the
// per-call memory budget (memory_budget.h) bounds how many such values a call can hold.
constexpr int kMaxValueBytes = 16 << 20;
// The progress handler runs every this many virtual-machine instructions: often enough to
// stop well within a millisecond, rare enough to cost nothing measurable.
constexpr int kProgressInterval = 100;
// Keeps the -wal file from staying large after a big transaction has been checkpointed, so
// storage_bytes() follows the data.
constexpr int64_t kJournalSizeLimit = 1 << 20;

}  // namespace

Connection::Connection(const std::string& path, bool create) {
  // NOFOLLOW: a symlink planted in the databases directory must not redirect a resource.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
              (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("cannot open SQLite database " + path + ": " + msg);
  }
  int ignored = 0;
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &ignored);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, &ignored);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &ignored);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, &ignored);
  sqlite3_limit(db_, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, kMaxValueBytes);
  sqlite3_limit(db_, SQLITE_LIMIT_SQL_LENGTH, kMaxValueBytes);
  if (register_safe_functions(db_, kMaxValueBytes) != SQLITE_OK) {
    sqlite3_close(db_);
    throw std::runtime_error("cannot register SQL functions on " + path);
  }
  sqlite3_busy_handler(db_, &Connection::busy, this);
  sqlite3_progress_handler(db_, kProgressInterval, &Connection::progress, this);
  sqlite3_set_authorizer(db_, &Connection::authorize, this);

  try {
    // WAL lets readers run beside the one writer; it is stored in the file, so setting it
    // once at creation is enough (an existing file is set again only if it is not WAL).
    if (create || query_int("SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 0)
      exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA journal_size_limit=" + std::to_string(kJournalSizeLimit));
    exec("PRAGMA foreign_keys=ON");
    // Sorts and temporary b-trees live in memory, where the call's memory budget bounds
    // them, instead of in temporary files that no limit sees.
    exec("PRAGMA temp_store=MEMORY");
    page_size_ = query_int("PRAGMA page_size");
    default_max_pages_ = query_int("PRAGMA max_page_count");
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

Connection::~Connection() {
  // Every statement is finalized by its StmtPtr before the connection goes away, so plain
  // sqlite3_close succeeds (and checkpoints the WAL when this is the last connection).
  if (sqlite3_close(db_) != SQLITE_OK) sqlite3_close_v2(db_);
}

void Connection::exec(const std::string& sql) {
  Mode saved = mode_;
  mode_ = Mode::kInternal;
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  mode_ = saved;
  if (rc != SQLITE_OK) fail(rc);
}

int64_t Connection::query_int(const std::string& sql) {
  Mode saved = mode_;
  mode_ = Mode::kInternal;
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr);
  StmtPtr stmt(raw);
  int64_t value = 0;
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
      value = sqlite3_column_int64(stmt.get(), 0);
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  mode_ = saved;
  if (rc != SQLITE_OK) fail(rc);
  return value;
}

void Connection::set_mode(Mode mode) {
  mode_ = mode;
  if (mode == Mode::kInternal) return;
  // query_only backs the authorizer up: even a write the guard failed to recognise cannot
  // reach the file during a read-only call.
  bool want = mode == Mode::kReadOnly;
  if (want != query_only_) {
    exec(want ? "PRAGMA query_only=ON" : "PRAGMA query_only=OFF");
    query_only_ = want;
  }
}

void Connection::set_synchronous(bool full) {
  if (full_sync_ == full) return;
  exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  full_sync_ = full;
}

void Connection::set_storage_limit(int64_t bytes) {
  storage_limit_ = bytes;
  if (storage_limit_applied_ == bytes) return;
  // SQLite counts pages; round up so the cap is never below what the plan promises. It
  // never sets the cap below the current size, so a lowered limit stops growth there.
  int64_t pages = bytes > 0 ? (bytes + page_size_ - 1) / page_size_ : default_max_pages_;
  exec("PRAGMA max_page_count=" + std::to_string(std::max<int64_t>(pages, 1)));
  storage_limit_applied_ = bytes;
}

void Connection::start_clock(int64_t timeout_ms) {
  timed_out_ = false;
  timeout_ms_ = timeout_ms;
  deadline_ = timeout_ms > 0
                  ? std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms)
                  : std::chrono::steady_clock::time_point::max();
}

void Connection::stop_clock() {
  deadline_ = std::chrono::steady_clock::time_point::max();
}

bool Connection::past_deadline() const {
  return std::chrono::steady_clock::now() > deadline_;
}

void Connection::check_deadline() {
  if (mode_ == Mode::kInternal || !past_deadline()) return;
  timed_out_ = true;
  fail(SQLITE_INTERRUPT);
}

void Connection::cancel() {
  cancelled_.store(true);
  sqlite3_interrupt(db_);
}

void Connection::fail(int rc) {
  // A refusal by the guard surfaces as SQLITE_AUTH for most actions but as a plain
  // SQLITE_ERROR ("not authorized to use function") for functions: the recorded denial
  // is the real reason either way.
  if (denial_) {
    Denial d = std::move(*denial_);
    denial_.reset();
    throw QueryError(d.code, d.message);
  }
  switch (rc & 0xff) {
    case SQLITE_NOMEM: {
      // The engine may have abandoned the transaction half-way: never reuse this connection.
      discard_ = true;
      const MemoryScope* scope = MemoryScope::current();
      if (scope && scope->exceeded())
        throw QueryError(error_code::kMemoryLimit,
                         "the statement needs more than " + std::to_string(scope->limit()) +
                             " bytes of memory (plan limit maxMemoryBytes); the transaction was "
                             "rolled back. Sort or group fewer rows, or select smaller values");
      throw std::runtime_error("SQLite is out of memory");
    }
    case SQLITE_TOOBIG:
      throw QueryError(error_code::kSqlError, "a string or blob would exceed " +
                                                  std::to_string(kMaxValueBytes) +
                                                  " bytes, the largest value a database holds");
    case SQLITE_AUTH:
      throw QueryError(error_code::kForbiddenSql, "not authorized");
    case SQLITE_INTERRUPT:
      if (cancelled()) throw QueryError(error_code::kNotFound, "the database was deleted");
      if (timed_out_)
        throw QueryError(error_code::kTimeout,
                         "statement timed out after " + std::to_string(timeout_ms_) +
                             " ms (plan limit statementTimeoutMs); the transaction was rolled "
                             "back");
      throw QueryError(error_code::kSqlError, "interrupted");
    case SQLITE_FULL:
      if (storage_limit_ > 0)
        throw QueryError(error_code::kStorageLimit,
                         "storage limit reached: the plan allows " +
                             std::to_string(storage_limit_) +
                             " bytes (plan limit storageBytes); delete data or upgrade the "
                             "plan. The transaction was rolled back");
      throw QueryError(error_code::kStorageLimit, "the disk is full");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      if (cancelled()) throw QueryError(error_code::kNotFound, "the database was deleted");
      throw QueryError(error_code::kBusy,
                       "the database is busy: another writer held it for more than " +
                           std::to_string(kBusyTimeoutMs / 1000) + " s");
    case SQLITE_READONLY:
      throw QueryError(error_code::kReadOnly, "read-only: writing is not allowed");
    default: {
      // TRUSTED_SCHEMA=OFF refuses a non-innocuous function inside a view or trigger with
      // "unsafe use of f()": that is the guard at work, not a mistake in the SQL.
      std::string msg = sqlite3_errmsg(db_);
      if (msg.rfind("unsafe use of ", 0) == 0) throw QueryError(error_code::kForbiddenSql, msg);
      throw QueryError(error_code::kSqlError, msg, rc);
    }
  }
}

int Connection::authorize(void* self, int action, const char* arg1, const char* arg2,
                          const char* db_name, const char* /*trigger*/) {
  auto* conn = static_cast<Connection*>(self);
  auto denial = check_action(conn->mode_, action, arg1, arg2, db_name, conn->client_transactions_);
  if (!denial) return SQLITE_OK;
  conn->denial_ = std::move(denial);
  return SQLITE_DENY;
}

int Connection::progress(void* self) {
  auto* conn = static_cast<Connection*>(self);
  if (conn->cancelled()) return 1;
  // The server's own statements (COMMIT, ROLLBACK) are never cut short by the client's
  // budget: interrupting a ROLLBACK would leave the connection unusable.
  if (conn->mode_ != Mode::kInternal && conn->past_deadline()) {
    conn->timed_out_ = true;
    return 1;
  }
  return 0;
}

// Instead of sqlite3_busy_timeout: the same wait, but destroy() can cut it short.
int Connection::busy(void* self, int count) {
  auto* conn = static_cast<Connection*>(self);
  auto now = std::chrono::steady_clock::now();
  if (count == 0) conn->busy_since_ = now;
  if (conn->cancelled()) return 0;
  if (now - conn->busy_since_ >= std::chrono::milliseconds(kBusyTimeoutMs)) return 0;
  // Short sleeps first (a commit takes about a millisecond), then back off to 20 ms.
  static constexpr int kSleepsMs[] = {1, 1, 2, 2, 5, 5, 10, 10, 20};
  int index = std::min<int>(count, static_cast<int>(std::size(kSleepsMs)) - 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(kSleepsMs[index]));
  return 1;
}

}  // namespace wharf::product::sqlite_db
