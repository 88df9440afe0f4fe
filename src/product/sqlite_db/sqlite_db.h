// The `sqlite` product kind: every resource is a real SQLite database file,
// <databases_dir>/<resource_id>.db, in WAL mode, reached only through this class.
//
// - Calls on one database share a small pool of connections (one thread uses a connection
//   at a time); idle connections are capped per database and in total, least recently used
//   first out, so thousands of resources do not hold thousands of file descriptors.
// - execute() runs a batch in one transaction: BEGIN IMMEDIATE for writers (the write lock
//   is taken up front, so two writers never deadlock on a lock upgrade; the loser waits up
//   to 5 s in the busy handler), a deferred BEGIN for a single read-only statement or a
//   read-only call. Each entry holds exactly one SQL statement: several statements in one
//   entry are refused (sql_error), since it would be unclear which one the params belong to.
// - statementTimeoutMs bounds the whole call (one batch, one REPL input), like PostgreSQL's
//   statement_timeout bounds one multi-statement query message.
// - The storage cap is the tighter of the resource's own limits (create/set_limits, kept in
//   <resource_id>.settings.json beside the database so they survive a restart) and the
//   limits passed to the call; SQLite enforces it with PRAGMA max_page_count.
// - Sessions (open_session, for libSQL clients): a client transaction spans calls on a
//   connection of the pool parked between them; at most max_open_transactions_per_database
//   at once. destroy() does not wait for a parked transaction: it cancels it, and the
//   session's next call (or its end) closes the connection.
// - Security: see sql_guard.h. TEMP objects are refused (connections are pooled), as are
//   BEGIN/COMMIT/SAVEPOINT (the server owns the transaction) and VACUUM.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "product/product.h"
#include "product/registry.h"

namespace wharf::product {

namespace sqlite_db {
class Connection;
}

class SqliteDb final : public Product {
 public:
  struct Options {
    size_t max_idle_per_database = 4;
    size_t max_idle_total = 64;
    // Client transactions (sessions) open at once on one database; each holds a connection.
    size_t max_open_transactions_per_database = 8;
    // release_memory closes a database's idle connections (all but one) that no call took
    // for this long.
    std::chrono::milliseconds idle_close_after{60000};
  };

  // Creates `databases_dir` if it does not exist.
  explicit SqliteDb(std::string databases_dir);
  SqliteDb(std::string databases_dir, Options options);
  ~SqliteDb() override;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // The kind's factory (kinds.cpp): databases under <data dir>/databases; setting
  // "sql_transactions_per_database" (Options::max_open_transactions_per_database).
  static std::unique_ptr<Product> make(const KindSettings& settings);
  // What the kind offers: DATABASE_URL, DATABASE_TOKEN, DATABASE_READONLY_TOKEN; queries,
  // rowsRead, rowsWritten (interval) and storageBytes (level); SQL data plane, REPL, sessions.
  static const Descriptor& kDescriptor();

  std::string kind() const override { return "sqlite"; }
  const Descriptor& descriptor() const override { return kDescriptor(); }
  void create(const std::string& resource_id, const Limits& limits,
              const nlohmann::json& metadata) override;
  void destroy(const std::string& resource_id) override;
  bool exists(const std::string& resource_id) const override;
  std::vector<std::string> stored_resources() const override;
  void set_limits(const std::string& resource_id, const Limits& limits) override;
  void set_metadata(const std::string& resource_id, const nlohmann::json& metadata) override;
  std::vector<StatementResult> execute(const std::string& resource_id,
                                       const std::vector<Statement>& statements, bool read_only,
                                       const Limits& limits, UsageDelta* usage) override;
  nlohmann::json repl(const std::string& resource_id, const std::string& input, bool read_only,
                      const Limits& limits,
                      const std::function<void(const nlohmann::json& block)>& emit,
                      UsageDelta* usage) override;
  int64_t storage_bytes(const std::string& resource_id) const override;
  std::unique_ptr<SqlSession> open_session(const std::string& resource_id, bool read_only,
                                           const Limits& limits) override;
  // A consistent copy of the resource's database (SQLite's online backup, taken in one read
  // transaction, so writers go on meanwhile), written beside it and renamed into place.
  ProductReply branch(const ResourceInfo& resource, const std::string& branch_id,
                      const CallContext& ctx) override;
  void drop_branch(const ResourceInfo& resource, const std::string& branch_id,
                   const CallContext& ctx) override;
  // PRAGMA quick_check on a read-only connection.
  std::string check(const std::string& database_id) override;

  // The database file of a resource (whether or not it exists). Throws std::invalid_argument
  // for an id that is not [A-Za-z0-9_-]{1,128}.
  std::string database_path(const std::string& resource_id) const;
  // Every file a resource may leave on disk: the database, -wal, -shm, -journal, settings.
  std::vector<std::string> resource_files(const std::string& resource_id) const;
  // Connections open and idle in the pool now, over every database.
  size_t idle_connections() const;
  // The page caches of idle pooled connections (sqlite3_db_release_memory).
  void release_memory() override;

 private:
  struct Database;
  class Lease;
  class Session;

  std::shared_ptr<Database> find_database(const std::string& resource_id, bool must_exist) const;
  Lease acquire(const std::string& resource_id, bool read_only, const Limits& limits) const;
  void release(const std::shared_ptr<Database>& db,
               std::unique_ptr<sqlite_db::Connection> conn) const;
  // Closes idle connections, least recently used database first, until the total cap holds.
  // Needs mu_; the connections to close are handed back to be closed outside the locks.
  void evict_idle_locked(std::vector<std::unique_ptr<sqlite_db::Connection>>& to_close) const;
  void save_settings(const Database& db) const;

  std::string dir_;
  Options options_;
  mutable std::mutex mu_;  // guards databases_; taken before any Database::mu, never after
  mutable std::map<std::string, std::shared_ptr<Database>> databases_;
  // Databases with idle connections, by last use (guarded by mu_): eviction takes the first.
  mutable std::set<std::pair<uint64_t, Database*>> idle_order_;
  mutable size_t idle_total_ = 0;  // guarded by mu_
  mutable uint64_t clock_ = 0;     // LRU ticks, guarded by mu_
};

}  // namespace wharf::product
