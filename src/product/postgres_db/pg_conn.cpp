#include "product/postgres_db/pg_conn.h"

#include <charconv>

namespace wharf::product::postgres_db {
namespace {

// libpq's messages end in a newline (sometimes several lines); keep them on one line.
std::string tidy(const char* message) {
  std::string out = message ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out.empty() ? "unknown libpq error" : out;
}

// Notices of the admin's own commands ("already a member", "skipping") are not news.
void ignore_notice(void* /*arg*/, const char* /*message*/) {}

}  // namespace

int64_t Result::integer(int row, int col) const {
  if (null(row, col)) return 0;
  const char* v = PQgetvalue(r_.get(), row, col);
  int64_t out = 0;
  std::string_view s(v);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr != s.data() + s.size())
    throw PgError("", "not an integer: " + std::string(s));
  return out;
}

Conn::Conn(const ConnParams& params) {
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (!conn_) throw PgError("", "out of memory opening a PostgreSQL connection");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = tidy(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw PgError("", message);
  }
  PQsetNoticeProcessor(conn_, &ignore_notice, nullptr);
}

Conn::~Conn() {
  if (conn_) PQfinish(conn_);
}

Result Conn::check(PGresult* raw) {
  ResultPtr r(raw);
  ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY)
    return Result(std::move(r));
  const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  std::string message = r ? tidy(PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY)) : "";
  if (!r || !state || PQstatus(conn_) != CONNECTION_OK) {
    // The connection is gone (or the answer could not be read): nothing more runs on it.
    broken_ = true;
    throw PgError("", tidy(PQerrorMessage(conn_)));
  }
  if (status != PGRES_FATAL_ERROR) {
    // COPY or another mode this code never starts: the connection's state is unknown.
    broken_ = true;
    throw PgError("", "unexpected PostgreSQL result " + std::string(PQresStatus(status)));
  }
  throw PgError(state, message);
}

void Conn::exec(const std::string& sql) {
  check(PQexec(conn_, sql.c_str()));
}

Result Conn::query(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return check(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
}

std::string Conn::ident(std::string_view name) const {
  char* quoted = PQescapeIdentifier(conn_, name.data(), name.size());
  if (!quoted) throw PgError("", tidy(PQerrorMessage(conn_)));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

std::string Conn::literal(std::string_view value) const {
  char* quoted = PQescapeLiteral(conn_, value.data(), value.size());
  if (!quoted) throw PgError("", tidy(PQerrorMessage(conn_)));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

std::string Conn::scram_verifier(const std::string& password, const std::string& role) const {
  char* verifier = PQencryptPasswordConn(conn_, password.c_str(), role.c_str(), "scram-sha-256");
  if (!verifier) throw PgError("", tidy(PQerrorMessage(conn_)));
  std::string out(verifier);
  PQfreemem(verifier);
  return out;
}

ConnPool::Lease::~Lease() {
  if (conn_) pool_->release(std::move(conn_));
}

ConnPool::Lease ConnPool::acquire() {
  while (true) {
    std::unique_ptr<Conn> conn;
    {
      std::lock_guard lock(mu_);
      if (idle_.empty()) break;
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
    // An idle connection may have been closed by the server (restart, idle timeout): an
    // empty query is the cheapest round trip that says so.
    try {
      conn->exec("");
      if (conn->ok()) return Lease(*this, std::move(conn));
    } catch (const PgError&) {
    }
  }
  return Lease(*this, std::make_unique<Conn>(params_));
}

void ConnPool::release(std::unique_ptr<Conn> conn) {
  if (!conn->ok() || !conn->idle()) return;  // closed here
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
}

Transaction::~Transaction() {
  if (done_ || !conn_.ok()) return;
  try {
    conn_.exec("ROLLBACK");
  } catch (const PgError&) {
    conn_.mark_broken();
  }
}

}  // namespace wharf::product::postgres_db
