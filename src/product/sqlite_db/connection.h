// One SQLite connection to a client database, locked down (see sql_guard.h) and carrying the
// per-call state the SQLite callbacks need: who is calling (Mode), the call's deadline, the
// reason the authorizer refused something, and a cancel flag for destroy(). A Connection is
// used by one thread at a time (it is opened SQLITE_OPEN_NOMUTEX); only cancel() may be
// called from another thread.
#pragma once
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "product/sqlite_db/sql_guard.h"

namespace wharf::product::sqlite_db {

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

class Connection {
 public:
  // How long a writer waits for another writer's transaction before giving up with `busy`.
  static constexpr int kBusyTimeoutMs = 5000;

  // Opens (or with `create`, creates) the database at `path`; throws std::runtime_error.
  Connection(const std::string& path, bool create);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  // The server's own statements: they bypass the guard. Errors throw QueryError.
  void exec(const std::string& sql);
  int64_t query_int(const std::string& sql);

  // Per-call settings; each is a no-op when nothing changes.
  void set_mode(Mode mode);               // also PRAGMA query_only for read-only callers
  void set_synchronous(bool full);        // durability: FULL or NORMAL
  void set_storage_limit(int64_t bytes);  // 0 = unlimited; PRAGMA max_page_count
  int64_t storage_limit() const { return storage_limit_; }
  int64_t page_size() const { return page_size_; }  // fixed once the file exists
  Mode mode() const { return mode_; }
  // A session's connection: the client runs its own BEGIN/COMMIT (sql_guard.h).
  void set_client_transactions(bool on) { client_transactions_ = on; }

  // The call's time budget, checked by the progress handler. 0 = unlimited.
  void start_clock(int64_t timeout_ms);
  void stop_clock();
  bool past_deadline() const;
  // Throws the timeout QueryError when a client call is past its deadline. The progress
  // handler only runs between engine steps, and one step (a sort, building a large value)
  // can outlast the budget: checked again after every step so a late result is refused.
  void check_deadline();

  // From any thread: makes the running statement (and any wait for a lock) stop at once.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  // False once the connection hit a condition after which it must not go back to the pool.
  bool reusable() const { return !cancelled() && !discard_; }

  // Forgets a refusal the guard recorded (before a new client statement).
  void clear_denial() { denial_.reset(); }

  // Throws the QueryError that result code `rc` means on this connection.
  [[noreturn]] void fail(int rc);

 private:
  static int authorize(void* self, int action, const char* arg1, const char* arg2,
                       const char* db_name, const char* trigger);
  static int progress(void* self);
  static int busy(void* self, int count);

  sqlite3* db_ = nullptr;
  Mode mode_ = Mode::kInternal;
  bool query_only_ = false;
  std::optional<bool> full_sync_;
  std::optional<int64_t> storage_limit_applied_;
  int64_t storage_limit_ = 0;
  int64_t page_size_ = 4096;
  int64_t default_max_pages_ = 0;
  std::optional<Denial> denial_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  int64_t timeout_ms_ = 0;
  bool timed_out_ = false;
  std::chrono::steady_clock::time_point busy_since_;
  std::atomic<bool> cancelled_{false};
  bool discard_ = false;
  bool client_transactions_ = false;
};

// Runs the server's own statements on a connection: switches to Mode::kInternal and back.
class InternalScope {
 public:
  explicit InternalScope(Connection& conn) : conn_(conn), saved_(conn.mode()) {
    conn_.set_mode(Mode::kInternal);
  }
  ~InternalScope() { conn_.set_mode(saved_); }
  InternalScope(const InternalScope&) = delete;
  InternalScope& operator=(const InternalScope&) = delete;

 private:
  Connection& conn_;
  Mode saved_;
};

}  // namespace wharf::product::sqlite_db
