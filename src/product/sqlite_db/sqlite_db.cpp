#include "product/sqlite_db/sqlite_db.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "product/sqlite_db/connection.h"
#include "product/sqlite_db/memory_budget.h"
#include "product/sqlite_db/repl.h"
#include "product/sqlite_db/sql_guard.h"
#include "product/sqlite_db/statement_runner.h"
#include "util/idle_low_water.h"
#include "util/log.h"

namespace wharf::product {

using sqlite_db::Connection;
using sqlite_db::Mode;
using sqlite_db::StmtPtr;
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxResourceIdLength = 128;

void validate_id(const std::string& id) {
  bool ok = !id.empty() && id.size() <= kMaxResourceIdLength &&
            std::all_of(id.begin(), id.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '-';
            });
  if (!ok) throw std::invalid_argument("invalid resource id for the sqlite product");
}

bool valid_id(const std::string& id) {
  try {
    validate_id(id);
    return true;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

[[noreturn]] void not_found(const std::string& id) {
  throw QueryError(error_code::kNotFound, "no database for resource " + id);
}

// metadata.durability: "normal" trades the last commits before a power loss for speed
// (PRAGMA synchronous=NORMAL); anything else, or nothing, is "full".
bool full_sync(const nlohmann::json& metadata) {
  if (!metadata.is_object()) return true;
  auto it = metadata.find("durability");
  return !(it != metadata.end() && it->is_string() && *it == "normal");
}

// The tighter of two storage caps, where 0 means none.
int64_t tighter(int64_t a, int64_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

void rollback_quietly(Connection& conn) {
  if (sqlite3_get_autocommit(conn.db())) return;  // SQLite already rolled back (e.g. FULL)
  try {
    conn.exec("ROLLBACK");
  } catch (const QueryError&) {
    // The lease drops a connection still inside a transaction, so nothing leaks.
  }
}

// Adds a call's usage to the caller's counters (null = the caller does not count).
void add_usage(UsageDelta* to, const UsageDelta& spent) {
  if (!to) return;
  to->queries += spent.queries;
  to->rows_read += spent.rows_read;
  to->rows_written += spent.rows_written;
}

}  // namespace

// One resource's database: its settings and its connection pool.
struct SqliteDb::Database {
  std::string id;
  std::string path;
  std::mutex mu;
  std::condition_variable idle_cv;  // signalled when a lease ends (destroy waits on it)
  std::vector<std::unique_ptr<Connection>> idle;
  std::set<Connection*> active;
  // Active connections that no call is using: a session's open transaction between calls.
  std::set<Connection*> parked;
  bool destroyed = false;
  Limits limits;  // the resource's own (create / set_limits)
  bool full_sync = true;
  uint64_t last_used = 0;
  util::IdleLowWater low_water;  // idle connections no call needed (release_memory)
};

// A connection checked out of a Database's pool for one call; returns it on destruction.
class SqliteDb::Lease {
 public:
  Lease(const SqliteDb& owner, std::shared_ptr<Database> db, std::unique_ptr<Connection> conn)
      : owner_(&owner), db_(std::move(db)), conn_(std::move(conn)) {}
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (conn_) owner_->release(db_, std::move(conn_));
  }
  Connection& conn() { return *conn_; }
  const std::shared_ptr<Database>& database() const { return db_; }

 private:
  const SqliteDb* owner_;
  std::shared_ptr<Database> db_;
  std::unique_ptr<Connection> conn_;
};

const Descriptor& SqliteDb::kDescriptor() {
  static const Descriptor descriptor = [] {
    Descriptor d;
    d.secrets = {{"DATABASE_URL", SecretSource::kDataPlaneUrl},
                 {"DATABASE_TOKEN", SecretSource::kReadWriteToken},
                 {"DATABASE_READONLY_TOKEN", SecretSource::kReadOnlyToken}};
    // The SQL data plane's counters (UsageDelta::for_each), then storage.
    UsageDelta{}.for_each([&d](const char* name, int64_t) {
      d.metrics.push_back({name, false, std::string(name) == "queries" ? "queries" : "rows"});
    });
    d.metrics.push_back({"storageBytes", true, "bytes"});
    d.storage_metric = "storageBytes";
    d.capabilities.sql_data_plane = true;
    d.capabilities.repl = true;
    d.capabilities.sql_sessions = true;
    d.capabilities.branches = true;
    return d;
  }();
  return descriptor;
}

std::unique_ptr<Product> SqliteDb::make(const KindSettings& settings) {
  Options options;
  options.max_open_transactions_per_database = static_cast<size_t>(
      settings.number("sql_transactions_per_database",
                      static_cast<int64_t>(options.max_open_transactions_per_database)));
  return std::make_unique<SqliteDb>(settings.data_dir + "/databases", options);
}

SqliteDb::SqliteDb(std::string databases_dir) : SqliteDb(std::move(databases_dir), Options{}) {}

SqliteDb::SqliteDb(std::string databases_dir, Options options)
    : dir_(std::move(databases_dir)), options_(options) {
  fs::create_directories(dir_);
  if (!sqlite_db::install_memory_accounting())
    util::log_warn(
        "SQLite was initialized before the product: client SQL runs without its "
        "per-call memory budget (maxMemoryBytes)");
}

SqliteDb::~SqliteDb() = default;

std::string SqliteDb::database_path(const std::string& resource_id) const {
  validate_id(resource_id);
  return (fs::path(dir_) / (resource_id + ".db")).string();
}

std::vector<std::string> SqliteDb::resource_files(const std::string& resource_id) const {
  std::string db = database_path(resource_id);
  return {db, db + "-wal", db + "-shm", db + "-journal",
          (fs::path(dir_) / (resource_id + ".settings.json")).string()};
}

void SqliteDb::save_settings(const Database& db) const {
  // Write-then-rename so a crash leaves either the old settings or the new, never half.
  std::string path = resource_files(db.id).back();
  std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::trunc);
    file << nlohmann::json{{"limits", db.limits.to_json()},
                           {"durability", db.full_sync ? "full" : "normal"}}
                .dump();
    if (!file) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

std::shared_ptr<SqliteDb::Database> SqliteDb::find_database(const std::string& resource_id,
                                                            bool must_exist) const {
  validate_id(resource_id);
  std::lock_guard lock(mu_);
  auto it = databases_.find(resource_id);
  if (it != databases_.end()) return it->second;
  std::string path = database_path(resource_id);
  if (must_exist && !fs::exists(path)) not_found(resource_id);
  auto db = std::make_shared<Database>();
  db->id = resource_id;
  db->path = path;
  // Settings saved by create()/set_limits() in an earlier run of the process.
  std::ifstream file(resource_files(resource_id).back());
  if (file) {
    auto settings = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
    if (settings.is_object()) {
      try {
        db->limits = Limits::from_json(settings.value("limits", nlohmann::json::object()));
      } catch (const std::invalid_argument&) {
        // A damaged file: the per-call limits still apply.
      }
      db->full_sync = settings.value("durability", "full") != "normal";
    }
  }
  databases_.emplace(resource_id, db);
  return db;
}

SqliteDb::Lease SqliteDb::acquire(const std::string& resource_id, bool read_only,
                                  const Limits& limits) const {
  auto db = find_database(resource_id, /*must_exist=*/true);
  std::unique_ptr<Connection> conn;
  Limits own;
  bool sync = true;
  {
    // An idle connection is taken under both locks: the idle order is global.
    std::lock_guard lock(mu_);
    std::lock_guard db_lock(db->mu);
    if (db->destroyed) not_found(resource_id);
    if (!db->idle.empty()) {
      conn = std::move(db->idle.back());
      db->idle.pop_back();
      db->low_water.taken(db->idle.size());
      --idle_total_;
      if (db->idle.empty()) idle_order_.erase({db->last_used, db.get()});
      db->active.insert(conn.get());
    }
  }
  {
    std::lock_guard lock(db->mu);
    if (db->destroyed && !conn) not_found(resource_id);
    if (!conn) {
      // Opened under the database's lock (not the global one: opening is file I/O) so
      // destroy() never misses a connection in the making.
      if (!fs::exists(db->path)) not_found(resource_id);
      conn = std::make_unique<Connection>(db->path, /*create=*/false);
      db->active.insert(conn.get());
    }
    own = db->limits;
    sync = db->full_sync;
  }
  Lease lease(*this, db, std::move(conn));
  Connection& c = lease.conn();
  c.set_synchronous(sync);
  c.set_storage_limit(tighter(own.storage_bytes, limits.storage_bytes));
  c.set_mode(read_only ? Mode::kReadOnly : Mode::kReadWrite);
  c.set_client_transactions(false);
  return lease;
}

void SqliteDb::release(const std::shared_ptr<Database>& db,
                       std::unique_ptr<Connection> conn) const {
  conn->stop_clock();
  // A connection is reused only in a clean state: no open transaction, not cancelled.
  bool reusable = conn->reusable() && sqlite3_get_autocommit(conn->db()) != 0;
  std::vector<std::unique_ptr<Connection>> to_close;
  {
    std::lock_guard lock(mu_);
    {
      std::lock_guard db_lock(db->mu);
      db->active.erase(conn.get());
      db->parked.erase(conn.get());
      if (!db->idle.empty()) idle_order_.erase({db->last_used, db.get()});
      db->last_used = ++clock_;
      if (reusable && !db->destroyed && db->idle.size() < options_.max_idle_per_database) {
        db->idle.push_back(std::move(conn));
        ++idle_total_;
      } else {
        to_close.push_back(std::move(conn));
      }
      if (!db->idle.empty()) idle_order_.insert({db->last_used, db.get()});
      db->idle_cv.notify_all();
    }
    evict_idle_locked(to_close);
  }
  to_close.clear();  // closed outside the locks: closing may checkpoint the WAL
}

void SqliteDb::evict_idle_locked(std::vector<std::unique_ptr<Connection>>& to_close) const {
  // Least recently used databases give up their oldest idle connection first, until the
  // process-wide cap holds again (each idle connection holds 3 file descriptors).
  while (idle_total_ > options_.max_idle_total && !idle_order_.empty()) {
    auto [tick, victim] = *idle_order_.begin();
    idle_order_.erase(idle_order_.begin());
    std::lock_guard db_lock(victim->mu);
    if (victim->idle.empty()) continue;
    to_close.push_back(std::move(victim->idle.front()));
    victim->idle.erase(victim->idle.begin());
    --idle_total_;
    if (!victim->idle.empty()) idle_order_.insert({tick, victim});
  }
}

void SqliteDb::create(const std::string& resource_id, const Limits& limits,
                      const nlohmann::json& metadata) {
  auto db = find_database(resource_id, /*must_exist=*/false);
  std::unique_ptr<Connection> fresh;
  {
    std::lock_guard lock(db->mu);
    if (db->destroyed) not_found(resource_id);  // a destroy is in progress
    if (!fs::exists(db->path)) {
      fresh = std::make_unique<Connection>(db->path, /*create=*/true);
      db->active.insert(fresh.get());
    }
    db->limits = limits;
    db->full_sync = full_sync(metadata);
    save_settings(*db);
  }
  // The new connection goes back like any other: pooled if there is room, the pool's caps
  // (per database and in total) enforced.
  if (fresh) release(db, std::move(fresh));
}

void SqliteDb::destroy(const std::string& resource_id) {
  auto db = find_database(resource_id, /*must_exist=*/false);
  {
    std::unique_lock lock(db->mu);
    db->destroyed = true;  // from here on every call answers not_found
    for (Connection* conn : db->active) conn->cancel();
    // Calls in progress end at once (cancelled); a session's parked transaction is not
    // waited for: its connection is closed by the session's next call or its end.
    db->idle_cv.wait(lock, [&db] { return db->active.size() == db->parked.size(); });
  }
  std::vector<std::unique_ptr<Connection>> closing;
  {
    std::lock_guard lock(mu_);
    std::lock_guard db_lock(db->mu);
    if (!db->idle.empty()) idle_order_.erase({db->last_used, db.get()});
    closing = std::move(db->idle);
    db->idle.clear();
    idle_total_ -= closing.size();
  }
  closing.clear();  // close every connection before the files go
  for (const auto& file : resource_files(resource_id)) {
    std::error_code ec;
    fs::remove(file, ec);
    if (ec) throw std::runtime_error("cannot delete " + file + ": " + ec.message());
  }
  std::lock_guard lock(mu_);
  auto it = databases_.find(resource_id);
  if (it != databases_.end() && it->second == db) databases_.erase(it);
}

ProductReply SqliteDb::branch(const ResourceInfo& resource, const std::string& branch_id,
                              const CallContext& /*ctx*/) {
  std::string path = database_path(branch_id);
  if (!fs::exists(path)) {
    std::string tmp = path + ".branching";
    std::error_code ec;
    fs::remove(tmp, ec);  // left by a copy a crash interrupted
    {
      Lease source = acquire(resource.id, /*read_only=*/true, Limits{});
      sqlite3* dest = nullptr;
      int rc =
          sqlite3_open_v2(tmp.c_str(), &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
      std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(dest, sqlite3_close_v2);
      if (rc != SQLITE_OK)
        throw std::runtime_error("cannot create " + tmp + ": " + sqlite3_errstr(rc));
      sqlite3_backup* backup = sqlite3_backup_init(dest, "main", source.conn().db(), "main");
      if (!backup) throw std::runtime_error("cannot branch: " + std::string(sqlite3_errmsg(dest)));
      rc = sqlite3_backup_step(backup, -1);  // every page, in one read transaction
      int finish = sqlite3_backup_finish(backup);
      if (rc != SQLITE_DONE || finish != SQLITE_OK)
        throw std::runtime_error("cannot branch " + resource.id + ": " + sqlite3_errstr(rc));
    }
    fs::rename(tmp, path);
  }
  create(branch_id, Limits::from_json(resource.plan_limits), resource.metadata);
  return {};
}

void SqliteDb::drop_branch(const ResourceInfo& /*resource*/, const std::string& branch_id,
                           const CallContext& /*ctx*/) {
  destroy(branch_id);
  std::error_code ec;
  fs::remove(database_path(branch_id) + ".branching", ec);
}

std::string SqliteDb::check(const std::string& database_id) {
  std::optional<Lease> opened;
  try {
    opened.emplace(acquire(database_id, /*read_only=*/true, Limits{}));
  } catch (const QueryError& e) {
    if (e.code == error_code::kNotFound) throw;
    return "the database cannot be opened: " + std::string(e.what());
  } catch (const std::runtime_error& e) {
    return "the database cannot be opened: " + std::string(e.what());
  }
  Lease& lease = *opened;
  lease.conn().set_mode(Mode::kInternal);  // a PRAGMA the client SQL guard would refuse
  std::string verdict;
  char* error = nullptr;
  int rc = sqlite3_exec(
      lease.conn().db(), "PRAGMA quick_check",
      [](void* out, int columns, char** values, char**) {
        auto& v = *static_cast<std::string*>(out);
        if (columns > 0 && values[0] && std::string(values[0]) != "ok")
          v += (v.empty() ? "" : "; ") + std::string(values[0]);
        return 0;
      },
      &verdict, &error);
  if (rc != SQLITE_OK) {
    verdict = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
  }
  return verdict.empty() ? "" : "the database is damaged: " + verdict;
}

void SqliteDb::release_memory() {
  // A database's idle connections that no call needed for a whole period (a minute) are closed (the
  // least recently used first), keeping one: the pools follow recent concurrency, not the
  // highest ever seen (each connection holds its schema, statement cache and 3 fds; the
  // soak benchmark's RSS). The rest drop their page caches.
  auto now = util::IdleLowWater::Clock::now();
  std::vector<std::unique_ptr<Connection>> to_close;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, db] : databases_) {
      std::lock_guard db_lock(db->mu);
      size_t close = db->low_water.surplus(db->idle.size(), 1, now, options_.idle_close_after);
      auto first = db->idle.begin();
      std::move(first, first + static_cast<long>(close), std::back_inserter(to_close));
      db->idle.erase(first, first + static_cast<long>(close));
      idle_total_ -= close;
      for (auto& conn : db->idle) sqlite3_db_release_memory(conn->db());
    }
  }
  to_close.clear();  // closed outside the locks: closing may checkpoint the WAL
}

size_t SqliteDb::idle_connections() const {
  std::lock_guard lock(mu_);
  return idle_total_;
}

std::vector<std::string> SqliteDb::stored_resources() const {
  // A resource leaves a database file or, when interrupted before creating it, a settings
  // file; either names it.
  std::set<std::string> ids;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    std::string name = entry.path().filename().string();
    for (std::string_view suffix : {".db", ".settings.json"}) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        std::string id = name.substr(0, name.size() - suffix.size());
        if (valid_id(id)) ids.insert(id);
      }
    }
  }
  return {ids.begin(), ids.end()};
}

bool SqliteDb::exists(const std::string& resource_id) const {
  if (!valid_id(resource_id)) return false;
  {
    std::lock_guard lock(mu_);
    auto it = databases_.find(resource_id);
    if (it != databases_.end()) {
      std::lock_guard db_lock(it->second->mu);
      if (it->second->destroyed) return false;
    }
  }
  return fs::exists(database_path(resource_id));
}

void SqliteDb::set_limits(const std::string& resource_id, const Limits& limits) {
  auto db = find_database(resource_id, /*must_exist=*/true);
  std::lock_guard lock(db->mu);
  if (db->destroyed) not_found(resource_id);
  db->limits = limits;
  save_settings(*db);
}

void SqliteDb::set_metadata(const std::string& resource_id, const nlohmann::json& metadata) {
  auto db = find_database(resource_id, /*must_exist=*/true);
  std::lock_guard lock(db->mu);
  if (db->destroyed) not_found(resource_id);
  db->full_sync = full_sync(metadata);
  save_settings(*db);
}

namespace {

[[noreturn]] void result_too_large(const std::string& what) {
  throw QueryError(error_code::kResultTooLarge,
                   "the result exceeds " + what +
                       "; nothing was returned and the transaction was rolled back. Select "
                       "fewer rows or columns (LIMIT, WHERE) or page through the data");
}

// The names and declared types (null for expressions) of a statement's result columns.
void describe_columns(sqlite3_stmt* stmt, std::vector<std::string>& names,
                      std::vector<std::optional<std::string>>& decltypes) {
  int columns = sqlite3_column_count(stmt);
  for (int c = 0; c < columns; ++c) {
    const char* name = sqlite3_column_name(stmt, c);
    const char* type = sqlite3_column_decltype(stmt, c);
    names.push_back(sqlite_db::valid_utf8(name ? name : ""));
    decltypes.push_back(type ? std::optional<std::string>(sqlite_db::valid_utf8(type))
                             : std::nullopt);
  }
}

// Steps one prepared client statement to its end. Rows are returned when `want_rows` and
// counted against `budget` (maxRows, maxResultBytes over a whole call); `spent` gets the
// statement's usage with rows_written as written (the caller decides whether they count).
StatementResult run_prepared(Connection& conn, sqlite3_stmt* stmt, bool want_rows,
                             const Limits& limits, ResultBudget& budget, UsageDelta& spent) {
  sqlite3* db = conn.db();
  StatementResult result;
  describe_columns(stmt, result.columns, result.decltypes);
  const int columns = static_cast<int>(result.columns.size());
  sqlite3_set_last_insert_rowid(db, 0);
  int64_t changes_before = sqlite3_total_changes64(db);
  ++spent.queries;
  while (sqlite_db::step(conn, stmt)) {
    if (!want_rows) continue;
    if (limits.max_rows > 0 && ++budget.rows > limits.max_rows)
      result_too_large(std::to_string(limits.max_rows) + " rows (plan limit maxRows)");
    nlohmann::json row = nlohmann::json::array();
    for (int c = 0; c < columns; ++c) {
      budget.bytes += sqlite_db::column_cost(stmt, c);
      row.push_back(sqlite_db::column_json(stmt, c));
    }
    if (limits.max_result_bytes > 0 && budget.bytes > limits.max_result_bytes)
      result_too_large(std::to_string(limits.max_result_bytes) +
                       " bytes (plan limit maxResultBytes)");
    result.rows.push_back(std::move(row));
  }
  int64_t written = sqlite3_total_changes64(db) - changes_before;
  if (written > 0) result.rows_affected = sqlite3_changes64(db);
  result.last_insert_id = sqlite3_last_insert_rowid(db);
  spent.rows_written += written;
  spent.rows_read += static_cast<int64_t>(result.rows.size());
  return result;
}

}  // namespace

std::vector<StatementResult> SqliteDb::execute(const std::string& resource_id,
                                               const std::vector<Statement>& statements,
                                               bool read_only, const Limits& limits,
                                               UsageDelta* usage) {
  Lease lease = acquire(resource_id, read_only, limits);
  sqlite_db::MemoryScope memory(limits.max_memory_bytes);
  Connection& conn = lease.conn();
  UsageDelta spent;
  std::vector<StatementResult> results;
  results.reserve(statements.size());
  ResultBudget budget;
  bool explicit_transaction = false;
  try {
    for (size_t i = 0; i < statements.size(); ++i) {
      const Statement& statement = statements[i];
      std::string label =
          statements.size() > 1 ? "statement " + std::to_string(i + 1) + ": " : std::string();
      std::string_view sql = statement.sql;
      StmtPtr stmt;
      try {
        stmt = sqlite_db::prepare_next(conn, sql);
      } catch (const QueryError& e) {
        throw QueryError(e.code, label + e.what(), e.engine_code);
      }
      if (!stmt) throw QueryError(error_code::kSqlError, label + "empty SQL");
      if (!sqlite_db::is_blank_sql(sql))
        throw QueryError(error_code::kSqlError,
                         label +
                             "more than one SQL statement; send each as its own entry of the "
                             "batch (they run in one transaction)");
      if (i == 0) {
        // A lone read-only statement (the data plane's point query) runs in autocommit: it
        // is atomic by itself and skips two round trips through the parser. Otherwise the
        // write lock is taken up front unless the call can only read: a deferred
        // transaction that later writes can fail with SQLITE_BUSY without waiting.
        explicit_transaction = !(statements.size() == 1 && sqlite3_stmt_readonly(stmt.get()));
        if (explicit_transaction) conn.exec(read_only ? "BEGIN" : "BEGIN IMMEDIATE");
        // The clock starts once the lock is held: waiting for another writer is bounded by
        // the busy timeout, not charged to this call's statement budget.
        conn.start_clock(limits.statement_timeout_ms);
      }
      sqlite_db::bind_params(conn, stmt.get(), statement.params);
      try {
        results.push_back(run_prepared(conn, stmt.get(), true, limits, budget, spent));
      } catch (const QueryError& e) {
        throw QueryError(e.code, label + e.what(), e.engine_code);
      }
    }
    conn.stop_clock();
    if (explicit_transaction) conn.exec("COMMIT");
  } catch (...) {
    rollback_quietly(conn);
    if (usage) usage->queries += spent.queries;
    throw;
  }
  add_usage(usage, spent);
  return results;
}

nlohmann::json SqliteDb::repl(const std::string& resource_id, const std::string& input,
                              bool read_only, const Limits& limits,
                              const std::function<void(const nlohmann::json& block)>& emit,
                              UsageDelta* usage) {
  Lease lease = acquire(resource_id, read_only, limits);
  sqlite_db::MemoryScope memory(limits.max_memory_bytes);
  UsageDelta spent;
  nlohmann::json blocks;
  try {
    blocks = sqlite_db::run_repl(lease.conn(), input, limits, emit, spent);
  } catch (...) {
    rollback_quietly(lease.conn());
    if (usage) usage->queries += spent.queries;
    throw;
  }
  add_usage(usage, spent);
  return blocks;
}

// ---------------------------------------------------------------------------------------
// Sessions

namespace {

// The leading keywords of `sql`, upper-cased, up to `count` ("BEGIN", "TRANSACTION", …).
std::vector<std::string> leading_keywords(std::string_view sql, size_t count) {
  std::vector<std::string> words;
  while (words.size() < count) {
    std::string word = sqlite_db::first_keyword(sql);
    if (word.empty()) break;
    size_t at = sqlite_db::skip_trivia(sql);
    sql.remove_prefix(at + word.size());
    words.push_back(std::move(word));
  }
  return words;
}

// libSQL's `BEGIN TRANSACTION READONLY` (what @libsql/client sends for a "read"
// transaction): SQLite has no such syntax, so it becomes a deferred BEGIN on a connection
// that cannot write until the transaction ends.
bool is_begin_readonly(std::string_view sql) {
  auto words = leading_keywords(sql, 4);
  if (words.size() == 2) return words[0] == "BEGIN" && words[1] == "READONLY";
  if (words.size() == 3)
    return words[0] == "BEGIN" && words[1] == "TRANSACTION" && words[2] == "READONLY";
  return false;
}

}  // namespace

class SqliteDb::Session final : public SqlSession {
 public:
  Session(SqliteDb& owner, std::string resource_id, bool read_only, const Limits& limits)
      : owner_(owner), id_(std::move(resource_id)), read_only_(read_only), limits_(limits) {}
  ~Session() override {
    if (!lease_) return;
    unpark();  // a parked connection goes back like any other (rolled back first)
    if (lease_) rollback_quietly(lease_->conn());
    drop();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // A connection is held exactly while the client's transaction is open.
  bool autocommit() const override { return !lease_; }

  StatementResult run(const Statement& statement, bool want_rows, ResultBudget& budget,
                      UsageDelta* usage) override {
    std::string_view sql = statement.sql;
    bool begin_readonly = is_begin_readonly(sql);
    if (begin_readonly) sql = "BEGIN DEFERRED";
    return call(is_rollback(sql), usage, [&](Connection& conn, UsageDelta& spent) {
      StmtPtr stmt = sqlite_db::prepare_next(conn, sql);
      if (!stmt) throw QueryError(error_code::kSqlError, "empty SQL");
      if (!sqlite_db::is_blank_sql(sql))
        throw QueryError(error_code::kSqlError,
                         "more than one SQL statement; send each as its own statement");
      sqlite_db::bind_params(conn, stmt.get(), statement.params);
      StatementResult result = step_statement(conn, stmt.get(), want_rows, budget, spent);
      if (begin_readonly) {
        conn.set_mode(Mode::kReadOnly);
        in_readonly_transaction_ = true;
      }
      return result;
    });
  }

  void run_script(const std::string& text, UsageDelta* usage) override {
    std::string_view sql = text;
    ResultBudget budget;
    while (!sqlite_db::is_blank_sql(sql)) {
      call(is_rollback(sql), usage, [&](Connection& conn, UsageDelta& spent) {
        StmtPtr stmt = sqlite_db::prepare_next(conn, sql);
        if (stmt) step_statement(conn, stmt.get(), /*want_rows=*/false, budget, spent);
        return true;
      });
    }
  }

  StatementDescription describe(const std::string& text) override {
    std::string_view sql = text;
    return call(false, nullptr, [&](Connection& conn, UsageDelta&) {
      StmtPtr stmt = sqlite_db::prepare_next(conn, sql);
      if (!stmt) throw QueryError(error_code::kSqlError, "empty SQL");
      StatementDescription out;
      int params = sqlite3_bind_parameter_count(stmt.get());
      for (int i = 1; i <= params; ++i) {
        const char* name = sqlite3_bind_parameter_name(stmt.get(), i);
        out.params.push_back(name ? std::optional<std::string>(name) : std::nullopt);
      }
      describe_columns(stmt.get(), out.columns, out.decltypes);
      out.is_explain = sqlite3_stmt_isexplain(stmt.get()) > 0;
      out.is_readonly = sqlite3_stmt_readonly(stmt.get()) != 0;
      return out;
    });
  }

 private:
  static bool is_rollback(std::string_view sql) {
    return sqlite_db::first_keyword(sql) == "ROLLBACK";
  }

  // One call: `body(conn, spent)` on the session's connection (the parked one of an open
  // transaction, else one from the pool), then the rows written are settled and the
  // connection parked while the client's transaction stays open, else given back.
  // `rollback`: the statement is a ROLLBACK (so a transaction it ends wrote nothing).
  template <typename Body>
  std::invoke_result_t<Body&, Connection&, UsageDelta&> call(bool rollback, UsageDelta* usage,
                                                             Body body) {
    const bool was_open = lease_.has_value();
    if (was_open) {
      unpark();
      if (!lease_) not_found(id_);
    } else {
      lease_.emplace(owner_.acquire(id_, read_only_, limits_));
      lease_->conn().set_client_transactions(true);
    }
    Connection& conn = lease_->conn();
    sqlite_db::MemoryScope memory(limits_.max_memory_bytes);
    UsageDelta spent;
    decltype(body(conn, spent)) result;
    try {
      result = body(conn, spent);
    } catch (...) {
      end_call(conn, was_open, /*failed=*/true, rollback, spent, usage);
      throw;
    }
    end_call(conn, was_open, /*failed=*/false, rollback, spent, usage);
    return result;
  }

  // Runs the statement under the plan's timeout; rows written count once they are
  // committed: at once in autocommit, at COMMIT inside the client's transaction.
  StatementResult step_statement(Connection& conn, sqlite3_stmt* stmt, bool want_rows,
                                 ResultBudget& budget, UsageDelta& spent) {
    conn.start_clock(limits_.statement_timeout_ms);
    StatementResult result = run_prepared(conn, stmt, want_rows, limits_, budget, spent);
    conn.stop_clock();
    return result;
  }

  void end_call(Connection& conn, bool was_open, bool failed, bool rollback, UsageDelta& spent,
                UsageDelta* usage) {
    conn.stop_clock();
    const bool open = sqlite3_get_autocommit(conn.db()) == 0;
    int64_t written = spent.rows_written;
    spent.rows_written = 0;
    if (was_open || open) {
      if (!failed) pending_written_ += written;
      if (!open) {
        // The transaction ended: committed unless it was rolled back (by the client, or by
        // SQLite after an error such as a full disk or an interrupt).
        if (!failed && !rollback) spent.rows_written = pending_written_;
        pending_written_ = 0;
      }
    } else if (!failed) {
      spent.rows_written = written;
    }
    add_usage(usage, spent);
    if (!open && in_readonly_transaction_) {
      in_readonly_transaction_ = false;
      conn.set_mode(read_only_ ? Mode::kReadOnly : Mode::kReadWrite);
    }
    if (!open || !conn.reusable()) {
      if (open) rollback_quietly(conn);
      drop();
      return;
    }
    park();
  }

  // Lets the connection go (back to the pool, or closed when it cannot be reused) and, with
  // it, what the open transaction had written.
  void drop() {
    pending_written_ = 0;
    in_readonly_transaction_ = false;
    lease_.reset();
  }

  void park() {
    std::shared_ptr<Database> db = lease_->database();
    size_t cap = owner_.options_.max_open_transactions_per_database;
    bool refused = false;
    {
      std::lock_guard lock(db->mu);
      refused = db->parked.size() >= cap;
      if (!db->destroyed && !refused) {
        db->parked.insert(&lease_->conn());
        db->idle_cv.notify_all();
        return;
      }
    }
    // Over the cap (or destroyed): the transaction cannot stay open.
    rollback_quietly(lease_->conn());
    drop();
    if (refused)
      throw QueryError(error_code::kTooManyTransactions,
                       "too many open transactions on this database (at most " +
                           std::to_string(cap) +
                           "); the transaction was rolled back. Commit or roll back open "
                           "transactions first");
  }

  // Takes the parked connection back for a call; drops it when the resource was destroyed.
  void unpark() {
    bool gone;
    {
      const auto& db = lease_->database();
      std::lock_guard lock(db->mu);
      db->parked.erase(&lease_->conn());
      gone = db->destroyed || lease_->conn().cancelled();
    }
    if (gone) drop();
  }

  SqliteDb& owner_;
  std::string id_;
  bool read_only_;
  Limits limits_;
  std::optional<Lease> lease_;  // held only while the client's transaction is open
  bool in_readonly_transaction_ = false;
  int64_t pending_written_ = 0;  // rows written by the open transaction
};

std::unique_ptr<SqlSession> SqliteDb::open_session(const std::string& resource_id, bool read_only,
                                                   const Limits& limits) {
  auto db = find_database(resource_id, /*must_exist=*/true);
  {
    std::lock_guard lock(db->mu);
    if (db->destroyed) not_found(resource_id);
  }
  return std::make_unique<Session>(*this, resource_id, read_only, limits);
}

int64_t SqliteDb::storage_bytes(const std::string& resource_id) const {
  Lease lease = acquire(resource_id, /*read_only=*/true, Limits{});
  Connection& conn = lease.conn();
  // Called after every data-plane call (usage, near-limit warning), so one PRAGMA only.
  int64_t bytes = conn.query_int("PRAGMA page_count") * conn.page_size();
  std::error_code ec;
  auto wal = fs::file_size(database_path(resource_id) + "-wal", ec);
  if (!ec) bytes += static_cast<int64_t>(wal);
  return bytes;
}

}  // namespace wharf::product
