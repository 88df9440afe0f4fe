// libSQL's remote protocol, Hrana over HTTP (versions 2 and 3, JSON), on the SQL data plane,
// so the clients people already use (@libsql/client, and Drizzle, Prisma and Kysely on top
// of it) work with DATABASE_URL and DATABASE_TOKEN as they are. See docs/decisions.md
// ("libSQL's remote protocol") for the endpoints, the error codes and the limits.
//
// - The codec (decode_*/encode_*) turns protocol structures into product::Statement and
//   product::StatementResult and back; it is pure and unit-tested against the spec.
// - A Stream is a product::SqlSession plus the SQL texts the client stored on it.
//   execute_request() runs one StreamRequest on it.
// - Streams keeps the streams that outlive a request, by baton: a fresh unguessable value
//   on every answer (taken out while a request uses it, so one baton serves one request),
//   bound to the token that opened it, dropped (its transaction rolled back) after an idle
//   period, and capped per resource and in total (least recently used out first).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "product/product.h"

namespace wharf::api::dataplane::hrana {

using Json = nlohmann::json;

// A request the protocol does not allow (malformed structure, unknown SQL id …): becomes an
// Error {message, code} in the request's result.
struct ProtoError : std::runtime_error {
  ProtoError(std::string error_code, const std::string& message)
      : std::runtime_error(message), code(std::move(error_code)) {}
  std::string code;
};

// ---- codec ----
// A Hrana Value as the product binds it (product::Statement params): integers (sent as
// strings) as JSON integers, floats as doubles, text as strings, blobs as {"base64": …}.
Json decode_value(const Json& value);
// A column value as the product returns it (product::StatementResult) as a Hrana Value.
Json encode_value(const Json& value);
// A Stmt: its SQL (inline or a stored sql_id), arguments (positional or named), want_rows.
struct DecodedStmt {
  product::Statement statement;
  bool want_rows = true;
};
DecodedStmt decode_stmt(const Json& stmt, const std::map<int64_t, std::string>& stored);
Json encode_result(const product::StatementResult& result);
Json encode_description(const product::StatementDescription& description);
// An Error structure for a product error. `out_of_credits`: the caller's writes are refused
// because the prepaid database ran out of credits (not because its token is read-only).
Json encode_error(const product::QueryError& error, bool out_of_credits = false);
Json encode_error(const std::string& code, const std::string& message);

// ---- streams ----
struct Stream {
  std::unique_ptr<product::SqlSession> session;
  std::map<int64_t, std::string> stored_sql;  // store_sql / close_sql
  bool closed = false;
};

// What one HTTP request spends, over all the stream requests it carries.
struct RequestBudget {
  product::ResultBudget results;
  product::UsageDelta usage;
  bool out_of_credits = false;
};

// Runs one StreamRequest; returns its StreamResult ({type: ok, response} or {type: error}).
// Never throws for the client's mistakes or SQL errors.
Json execute_request(Stream& stream, const Json& request, RequestBudget& budget);

// Runs a Batch (conditions, steps) on the stream; returns the BatchResult.
Json execute_batch(Stream& stream, const Json& batch, RequestBudget& budget);

class Streams {
 public:
  struct Options {
    std::chrono::milliseconds idle{10000};  // a stream unused this long is dropped
    size_t max_per_resource = 64;
    size_t max_total = 4096;
  };
  struct Entry {
    std::string resource_id;
    std::string token_hash;  // only the token that opened a stream may use it
    Stream stream;
  };

  Streams() : Streams(Options{}) {}
  explicit Streams(Options options) : options_(options) {}
  ~Streams();

  // Takes the stream out for one request; null when the baton is unknown, expired or
  // belongs to another token.
  std::unique_ptr<Entry> take(const std::string& baton, const std::string& token_hash);
  // Keeps a stream for its next request; returns its new baton. Over a cap, the least
  // recently used stream (of the resource, else of all) is dropped.
  std::string put(std::unique_ptr<Entry> entry);
  // Drops every stream idle past Options::idle (their open transactions roll back).
  // Returns how many were dropped.
  size_t expire_idle();
  size_t size() const;

 private:
  struct Slot {
    std::unique_ptr<Entry> entry;
    std::chrono::steady_clock::time_point last_used;
  };
  // Removes the least recently used slot of `resource_id` ("" = of any resource).
  std::unique_ptr<Entry> evict_locked(const std::string& resource_id);
  // One stream of `resource_id` fewer kept.
  void count_out_locked(const std::string& resource_id);

  Options options_;
  mutable std::mutex mu_;
  std::map<std::string, Slot> slots_;           // by baton
  std::map<std::string, size_t> per_resource_;  // resource id -> streams kept
};

}  // namespace wharf::api::dataplane::hrana
