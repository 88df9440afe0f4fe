// libpq, wrapped for the `postgres` product kind: a connection that throws, results that free
// themselves, and a small pool of idle connections to one database.
#pragma once
#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wharf::product::postgres_db {

// A failed connection or command: the SQLSTATE ("" when the connection itself failed or was
// lost) and the server's (or libpq's) message.
struct PgError : std::runtime_error {
  PgError(std::string sqlstate, const std::string& message)
      : std::runtime_error(message), state(std::move(sqlstate)) {}
  std::string state;
};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// The rows of a successful command, in text format.
class Result {
 public:
  explicit Result(ResultPtr r) : r_(std::move(r)) {}
  int rows() const { return PQntuples(r_.get()); }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const { return PQgetvalue(r_.get(), row, col); }
  // The value as an integer (0 when NULL).
  int64_t integer(int row, int col) const;
  bool boolean(int row, int col) const { return text(row, col) == "t"; }

 private:
  ResultPtr r_;
};

// Connection parameters, in libpq's order: later entries win, and the first "dbname" may be a
// whole URL (expanded), later ones plain database names.
using ConnParams = std::vector<std::pair<std::string, std::string>>;

class Conn {
 public:
  // Throws PgError("") when the server cannot be reached or refuses the login.
  explicit Conn(const ConnParams& params);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  PGconn* get() const { return conn_; }
  // False once the connection is lost (or a command left it in an unknown state).
  bool ok() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }
  void mark_broken() { broken_ = true; }
  bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }
  int server_version() const { return PQserverVersion(conn_); }

  // Runs one or more statements without parameters. Throws PgError.
  void exec(const std::string& sql);
  // Runs one statement with text parameters ($1, $2…; nullopt is NULL). Throws PgError.
  Result query(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});

  std::string ident(std::string_view name) const;     // "quoted" identifier
  std::string literal(std::string_view value) const;  // 'quoted' literal
  // The SCRAM-SHA-256 verifier of `password` for `role`, computed here so that the password
  // itself never reaches the server (its logs, pg_stat_statements).
  std::string scram_verifier(const std::string& password, const std::string& role) const;

 private:
  Result check(PGresult* raw);

  PGconn* conn_ = nullptr;
  bool broken_ = false;
};

// Idle connections to one database, at most `max_idle` kept. Thread-safe.
class ConnPool {
 public:
  ConnPool(ConnParams params, size_t max_idle) : params_(std::move(params)), max_idle_(max_idle) {}

  class Lease {
   public:
    Lease(ConnPool& pool, std::unique_ptr<Conn> conn) : pool_(&pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    Conn& operator*() const { return *conn_; }
    Conn* operator->() const { return conn_.get(); }

   private:
    ConnPool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  // An idle connection that still answers, or a new one. Throws PgError("").
  Lease acquire();
  const ConnParams& params() const { return params_; }

 private:
  void release(std::unique_ptr<Conn> conn);

  ConnParams params_;
  size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;
};

// BEGIN now; ROLLBACK unless commit() was called (a failed command leaves the connection in
// an aborted transaction otherwise).
class Transaction {
 public:
  explicit Transaction(Conn& conn) : conn_(conn) { conn_.exec("BEGIN"); }
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    conn_.exec("COMMIT");
    done_ = true;
  }

 private:
  Conn& conn_;
  bool done_ = false;
};

}  // namespace wharf::product::postgres_db
