#include "api/dataplane/hrana.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "util/base64.h"
#include "util/crypto.h"

namespace wharf::api::dataplane::hrana {

namespace {

constexpr size_t kMaxStoredSql = 256;           // SQL texts one stream may store
constexpr int64_t kMaxSqlId = 2147483647;       // ids are int32
constexpr int64_t kMinSqlId = -2147483647 - 1;  // …signed

const Json* member(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string string_member(const Json& object, const char* key, const char* what) {
  const Json* v = member(object, key);
  if (!v || !v->is_string())
    throw ProtoError("PROTO_ERROR", std::string(what) + " needs a string `" + key + "`");
  return v->get<std::string>();
}

std::optional<int64_t> sql_id_member(const Json& object) {
  const Json* v = member(object, "sql_id");
  if (!v) return std::nullopt;
  if (!v->is_number_integer() || v->get<int64_t>() < kMinSqlId || v->get<int64_t>() > kMaxSqlId)
    throw ProtoError("PROTO_ERROR", "`sql_id` must be a 32-bit integer");
  return v->get<int64_t>();
}

// `sql` or `sql_id` (exactly one), as sequence, describe and Stmt carry them.
std::string sql_text(const Json& object, const std::map<int64_t, std::string>& stored) {
  const Json* sql = member(object, "sql");
  std::optional<int64_t> id = sql_id_member(object);
  if (sql && id) throw ProtoError("PROTO_ERROR", "give either `sql` or `sql_id`, not both");
  if (id) {
    auto it = stored.find(*id);
    if (it == stored.end())
      throw ProtoError("SQL_NOT_FOUND", "no SQL text stored with sql_id " + std::to_string(*id));
    return it->second;
  }
  if (!sql || !sql->is_string()) throw ProtoError("PROTO_ERROR", "`sql` or `sql_id` is required");
  return sql->get<std::string>();
}

// SQLite's primary result codes by number, as libSQL's server names them.
const char* sqlite_code_name(int rc) {
  static const char* const kNames[] = {
      "SQLITE_OK",       "SQLITE_ERROR",     "SQLITE_INTERNAL", "SQLITE_PERM",
      "SQLITE_ABORT",    "SQLITE_BUSY",      "SQLITE_LOCKED",   "SQLITE_NOMEM",
      "SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",    "SQLITE_CORRUPT",
      "SQLITE_NOTFOUND", "SQLITE_FULL",      "SQLITE_CANTOPEN", "SQLITE_PROTOCOL",
      "SQLITE_EMPTY",    "SQLITE_SCHEMA",    "SQLITE_TOOBIG",   "SQLITE_CONSTRAINT",
      "SQLITE_MISMATCH", "SQLITE_MISUSE",    "SQLITE_NOLFS",    "SQLITE_AUTH",
      "SQLITE_FORMAT",   "SQLITE_RANGE",     "SQLITE_NOTADB"};
  int primary = rc & 0xff;
  if (primary <= 0 || primary >= static_cast<int>(std::size(kNames))) return "SQLITE_ERROR";
  return kNames[primary];
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Codec

Json decode_value(const Json& value) {
  const Json* type = member(value, "type");
  if (!type || !type->is_string()) throw ProtoError("ARGS_INVALID", "a Value needs a `type`");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "null") return nullptr;
  const Json* v = member(value, t == "blob" ? "base64" : "value");
  if (t == "integer") {
    // A string in JSON (64-bit integers do not survive a double); a plain number is taken too.
    if (v && v->is_number_integer()) return *v;
    if (!v || !v->is_string()) throw ProtoError("ARGS_INVALID", "an integer Value needs a `value`");
    const std::string& text = v->get_ref<const std::string&>();
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || errno == ERANGE || end != text.c_str() + text.size())
      throw ProtoError("ARGS_INVALID", "integer Value \"" + text + "\" is not a 64-bit integer");
    return static_cast<int64_t>(n);
  }
  if (t == "float") {
    if (!v || !v->is_number()) throw ProtoError("ARGS_INVALID", "a float Value needs a number");
    return Json(v->get<double>());
  }
  if (t == "text") {
    if (!v || !v->is_string()) throw ProtoError("ARGS_INVALID", "a text Value needs a string");
    return *v;
  }
  if (t == "blob") {
    if (!v || !v->is_string()) throw ProtoError("ARGS_INVALID", "a blob Value needs `base64`");
    return Json{{"base64", *v}};
  }
  throw ProtoError("ARGS_INVALID", "unknown Value type \"" + t + "\"");
}

Json encode_value(const Json& value) {
  if (value.is_null()) return {{"type", "null"}};
  if (value.is_number_integer()) return {{"type", "integer"}, {"value", value.dump()}};
  if (value.is_number_float()) return {{"type", "float"}, {"value", value}};
  if (value.is_string()) return {{"type", "text"}, {"value", value}};
  if (value.is_object() && value.contains("base64"))
    return {{"type", "blob"}, {"base64", value["base64"]}};
  if (value.is_boolean()) return {{"type", "integer"}, {"value", value.get<bool>() ? "1" : "0"}};
  return {{"type", "null"}};
}

DecodedStmt decode_stmt(const Json& stmt, const std::map<int64_t, std::string>& stored) {
  if (!stmt.is_object()) throw ProtoError("PROTO_ERROR", "a Stmt must be an object");
  DecodedStmt out;
  out.statement.sql = sql_text(stmt, stored);
  const Json* args = member(stmt, "args");
  const Json* named = member(stmt, "named_args");
  if (args && !args->is_array()) throw ProtoError("ARGS_INVALID", "`args` must be an array");
  if (named && !named->is_array())
    throw ProtoError("ARGS_INVALID", "`named_args` must be an array");
  bool has_args = args && !args->empty();
  bool has_named = named && !named->empty();
  if (has_args && has_named)
    throw ProtoError("ARGS_BOTH_POSITIONAL_AND_NAMED",
                     "give the arguments either by position or by name, not both");
  if (has_named) {
    Json params = Json::object();
    for (const auto& arg : *named) {
      if (!arg.is_object()) throw ProtoError("ARGS_INVALID", "a NamedArg must be an object");
      std::string name = string_member(arg, "name", "a NamedArg");
      const Json* value = member(arg, "value");
      params[name] = value ? decode_value(*value) : Json();
    }
    out.statement.params = std::move(params);
  } else {
    Json params = Json::array();
    if (has_args)
      for (const auto& arg : *args) params.push_back(decode_value(arg));
    out.statement.params = std::move(params);
  }
  if (const Json* want = member(stmt, "want_rows")) {
    if (!want->is_boolean()) throw ProtoError("PROTO_ERROR", "`want_rows` must be a boolean");
    out.want_rows = want->get<bool>();
  }
  return out;
}

Json encode_result(const product::StatementResult& result) {
  Json cols = Json::array();
  for (size_t i = 0; i < result.columns.size(); ++i) {
    Json col = {{"name", result.columns[i]}, {"decltype", nullptr}};
    if (i < result.decltypes.size() && result.decltypes[i]) col["decltype"] = *result.decltypes[i];
    cols.push_back(std::move(col));
  }
  Json rows = Json::array();
  for (const auto& row : result.rows) {
    Json out = Json::array();
    for (const auto& value : row) out.push_back(encode_value(value));
    rows.push_back(std::move(out));
  }
  Json last_insert = nullptr;
  if (result.last_insert_id != 0) last_insert = std::to_string(result.last_insert_id);
  return {{"cols", std::move(cols)},
          {"rows", std::move(rows)},
          {"affected_row_count", result.rows_affected},
          {"last_insert_rowid", last_insert},
          {"rows_read", result.rows.size()},
          {"rows_written", result.rows_affected}};
}

Json encode_description(const product::StatementDescription& d) {
  Json params = Json::array();
  for (const auto& name : d.params)
    params.push_back({{"name", name ? Json(*name) : Json(nullptr)}});
  Json cols = Json::array();
  for (size_t i = 0; i < d.columns.size(); ++i)
    cols.push_back({{"name", d.columns[i]},
                    {"decltype", i < d.decltypes.size() && d.decltypes[i] ? Json(*d.decltypes[i])
                                                                          : Json(nullptr)}});
  return {{"params", std::move(params)},
          {"cols", std::move(cols)},
          {"is_explain", d.is_explain},
          {"is_readonly", d.is_readonly}};
}

Json encode_error(const std::string& code, const std::string& message) {
  return {{"message", message}, {"code", code}};
}

Json encode_error(const product::QueryError& e, bool out_of_credits) {
  namespace ec = product::error_code;
  // The product's codes as libSQL's server names the same conditions (docs/decisions.md).
  static const std::map<std::string, const char*, std::less<>> kCodes = {
      {ec::kReadOnly, "SQLITE_READONLY"}, {ec::kForbiddenSql, "SQLITE_AUTH"},
      {ec::kTimeout, "QUERY_TIMEOUT"},    {ec::kResultTooLarge, "RESPONSE_TOO_LARGE"},
      {ec::kStorageLimit, "SQLITE_FULL"}, {ec::kMemoryLimit, "SQLITE_NOMEM"},
      {ec::kBusy, "SQLITE_BUSY"},         {ec::kBadParams, "ARGS_INVALID"},
      {ec::kNotFound, "NOT_FOUND"},       {ec::kTooManyTransactions, "TOO_MANY_TRANSACTIONS"}};
  if (e.code == ec::kSqlError && e.engine_code)
    return encode_error(sqlite_code_name(e.engine_code), e.what());
  if (e.code == ec::kReadOnly && out_of_credits)
    return encode_error("CREDITS_EXHAUSTED",
                        "the database is out of prepaid credits: reads only until more credits "
                        "are bought (" +
                            std::string(e.what()) + ")");
  auto it = kCodes.find(e.code);
  return encode_error(it == kCodes.end() ? "SQL_INPUT_ERROR" : it->second, e.what());
}

// ---------------------------------------------------------------------------------------
// Running requests

namespace {

// A Stmt run on the stream; its StmtResult.
Json run_stmt(Stream& stream, const Json& stmt, RequestBudget& budget) {
  DecodedStmt decoded = decode_stmt(stmt, stream.stored_sql);
  return encode_result(
      stream.session->run(decoded.statement, decoded.want_rows, budget.results, &budget.usage));
}

bool eval_cond(const Json& cond, const Json& results, const Json& errors, size_t current,
               const Stream& stream, int depth = 0) {
  if (depth > 64) throw ProtoError("PROTO_ERROR", "batch condition nested too deeply");
  const Json* type = member(cond, "type");
  if (!type || !type->is_string()) throw ProtoError("PROTO_ERROR", "a BatchCond needs a `type`");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "ok" || t == "error") {
    const Json* step = member(cond, "step");
    if (!step || !step->is_number_unsigned() || step->get<uint64_t>() >= current)
      throw ProtoError("PROTO_ERROR", "a BatchCond `step` must name an earlier step");
    size_t i = static_cast<size_t>(step->get<uint64_t>());
    return t == "ok" ? !results[i].is_null() : !errors[i].is_null();
  }
  if (t == "not") {
    const Json* inner = member(cond, "cond");
    if (!inner) throw ProtoError("PROTO_ERROR", "a `not` BatchCond needs `cond`");
    return !eval_cond(*inner, results, errors, current, stream, depth + 1);
  }
  if (t == "and" || t == "or") {
    const Json* conds = member(cond, "conds");
    if (!conds || !conds->is_array())
      throw ProtoError("PROTO_ERROR", "an `" + t + "` BatchCond needs `conds`");
    bool is_and = t == "and";
    for (const auto& c : *conds) {
      bool v = eval_cond(c, results, errors, current, stream, depth + 1);
      if (is_and && !v) return false;
      if (!is_and && v) return true;
    }
    return is_and;
  }
  if (t == "is_autocommit") return stream.session->autocommit();
  throw ProtoError("PROTO_ERROR", "unknown BatchCond type \"" + t + "\"");
}

}  // namespace

Json execute_batch(Stream& stream, const Json& batch, RequestBudget& budget) {
  const Json* steps = member(batch, "steps");
  if (!steps || !steps->is_array()) throw ProtoError("PROTO_ERROR", "a Batch needs `steps`");
  Json results = Json::array();
  Json errors = Json::array();
  for (size_t i = 0; i < steps->size(); ++i) {
    const Json& step = (*steps)[i];
    results.push_back(nullptr);
    errors.push_back(nullptr);
    if (!step.is_object()) throw ProtoError("PROTO_ERROR", "a BatchStep must be an object");
    if (const Json* cond = member(step, "condition"))
      if (!eval_cond(*cond, results, errors, i, stream)) continue;
    const Json* stmt = member(step, "stmt");
    if (!stmt) throw ProtoError("PROTO_ERROR", "a BatchStep needs `stmt`");
    try {
      results[i] = run_stmt(stream, *stmt, budget);
    } catch (const product::QueryError& e) {
      errors[i] = encode_error(e, budget.out_of_credits);
    } catch (const ProtoError& e) {
      errors[i] = encode_error(e.code, e.what());
    }
  }
  return {{"step_results", std::move(results)}, {"step_errors", std::move(errors)}};
}

Json execute_request(Stream& stream, const Json& request, RequestBudget& budget) {
  auto ok = [](Json response) { return Json{{"type", "ok"}, {"response", std::move(response)}}; };
  try {
    const Json* type = member(request, "type");
    if (!type || !type->is_string())
      throw ProtoError("PROTO_ERROR", "a StreamRequest needs a `type`");
    const std::string& t = type->get_ref<const std::string&>();
    if (stream.closed)
      throw ProtoError("STREAM_CLOSED", "the stream was closed by an earlier `close` request");
    if (t == "close") {
      stream.closed = true;
      return ok({{"type", "close"}});
    }
    if (t == "execute") {
      const Json* stmt = member(request, "stmt");
      if (!stmt) throw ProtoError("PROTO_ERROR", "an execute request needs `stmt`");
      return ok({{"type", "execute"}, {"result", run_stmt(stream, *stmt, budget)}});
    }
    if (t == "batch") {
      const Json* batch = member(request, "batch");
      if (!batch) throw ProtoError("PROTO_ERROR", "a batch request needs `batch`");
      return ok({{"type", "batch"}, {"result", execute_batch(stream, *batch, budget)}});
    }
    if (t == "sequence") {
      stream.session->run_script(sql_text(request, stream.stored_sql), &budget.usage);
      return ok({{"type", "sequence"}});
    }
    if (t == "describe") {
      return ok({{"type", "describe"},
                 {"result", encode_description(
                                stream.session->describe(sql_text(request, stream.stored_sql)))}});
    }
    if (t == "store_sql") {
      std::optional<int64_t> id = sql_id_member(request);
      if (!id) throw ProtoError("PROTO_ERROR", "store_sql needs `sql_id`");
      std::string sql = string_member(request, "sql", "store_sql");
      if (stream.stored_sql.count(*id))
        throw ProtoError("SQL_STORE_DUPLICATE", "sql_id " + std::to_string(*id) + " is in use");
      if (stream.stored_sql.size() >= kMaxStoredSql)
        throw ProtoError("SQL_STORE_TOO_MANY", "a stream stores at most " +
                                                   std::to_string(kMaxStoredSql) +
                                                   " SQL texts; close some with close_sql");
      stream.stored_sql.emplace(*id, std::move(sql));
      return ok({{"type", "store_sql"}});
    }
    if (t == "close_sql") {
      std::optional<int64_t> id = sql_id_member(request);
      if (!id) throw ProtoError("PROTO_ERROR", "close_sql needs `sql_id`");
      stream.stored_sql.erase(*id);
      return ok({{"type", "close_sql"}});
    }
    if (t == "get_autocommit")
      return ok({{"type", "get_autocommit"}, {"is_autocommit", stream.session->autocommit()}});
    throw ProtoError("PROTO_ERROR", "unknown StreamRequest type \"" + t + "\"");
  } catch (const product::QueryError& e) {
    return {{"type", "error"}, {"error", encode_error(e, budget.out_of_credits)}};
  } catch (const ProtoError& e) {
    return {{"type", "error"}, {"error", encode_error(e.code, e.what())}};
  }
}

// ---------------------------------------------------------------------------------------
// Streams

Streams::~Streams() = default;

std::unique_ptr<Streams::Entry> Streams::take(const std::string& baton,
                                              const std::string& token_hash) {
  std::unique_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    auto it = slots_.find(baton);
    if (it == slots_.end()) return nullptr;
    // Another token's baton is refused but left in place: it cannot end someone else's stream.
    if (it->second.entry->token_hash != token_hash) return nullptr;
    entry = std::move(it->second.entry);
    slots_.erase(it);
    count_out_locked(entry->resource_id);
  }
  return entry;
}

void Streams::count_out_locked(const std::string& resource_id) {
  auto it = per_resource_.find(resource_id);
  if (it != per_resource_.end() && --it->second == 0) per_resource_.erase(it);
}

std::unique_ptr<Streams::Entry> Streams::evict_locked(const std::string& resource_id) {
  auto victim = slots_.end();
  for (auto it = slots_.begin(); it != slots_.end(); ++it) {
    if (!resource_id.empty() && it->second.entry->resource_id != resource_id) continue;
    if (victim == slots_.end() || it->second.last_used < victim->second.last_used) victim = it;
  }
  if (victim == slots_.end()) return nullptr;
  std::unique_ptr<Entry> entry = std::move(victim->second.entry);
  slots_.erase(victim);
  count_out_locked(entry->resource_id);
  return entry;
}

std::string Streams::put(std::unique_ptr<Entry> entry) {
  std::string baton = util::random_token(32);
  std::vector<std::unique_ptr<Entry>> dropped;  // destroyed outside the lock (rollbacks)
  {
    std::lock_guard lock(mu_);
    auto count = per_resource_.find(entry->resource_id);
    if (count != per_resource_.end() && count->second >= options_.max_per_resource)
      dropped.push_back(evict_locked(entry->resource_id));
    if (slots_.size() >= options_.max_total) dropped.push_back(evict_locked(""));
    ++per_resource_[entry->resource_id];
    slots_[baton] = Slot{std::move(entry), std::chrono::steady_clock::now()};
  }
  return baton;
}

size_t Streams::expire_idle() {
  std::vector<std::unique_ptr<Entry>> dropped;
  auto cutoff = std::chrono::steady_clock::now() - options_.idle;
  {
    std::lock_guard lock(mu_);
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (it->second.last_used > cutoff) {
        ++it;
        continue;
      }
      count_out_locked(it->second.entry->resource_id);
      dropped.push_back(std::move(it->second.entry));
      it = slots_.erase(it);
    }
  }
  return dropped.size();
}

size_t Streams::size() const {
  std::lock_guard lock(mu_);
  return slots_.size();
}

}  // namespace wharf::api::dataplane::hrana
