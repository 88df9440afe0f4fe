#include "product/sqlite_db/statement_runner.h"

#include <climits>
#include <set>

#include "product/product.h"
#include "util/base64.h"

namespace wharf::product::sqlite_db {
namespace {

[[noreturn]] void bad_params(const std::string& message) {
  throw QueryError(error_code::kBadParams, message);
}

void bind_value(Connection& conn, sqlite3_stmt* stmt, int index, const nlohmann::json& value,
                const std::string& label) {
  int rc = SQLITE_OK;
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      rc = sqlite3_bind_null(stmt, index);
      break;
    case nlohmann::json::value_t::boolean:
      rc = sqlite3_bind_int64(stmt, index, value.get<bool>() ? 1 : 0);
      break;
    case nlohmann::json::value_t::number_unsigned:
      if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        bad_params("parameter " + label + " does not fit a 64-bit signed integer");
      rc = sqlite3_bind_int64(stmt, index, value.get<int64_t>());
      break;
    case nlohmann::json::value_t::number_integer:
      rc = sqlite3_bind_int64(stmt, index, value.get<int64_t>());
      break;
    case nlohmann::json::value_t::number_float:
      rc = sqlite3_bind_double(stmt, index, value.get<double>());
      break;
    case nlohmann::json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      rc =
          sqlite3_bind_text64(stmt, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    }
    case nlohmann::json::value_t::object: {
      auto it = value.find("base64");
      if (value.size() != 1 || it == value.end() || !it->is_string())
        bad_params("parameter " + label + ": an object value must be {\"base64\": \"...\"}");
      auto blob = util::base64_decode(it->get_ref<const std::string&>());
      if (!blob) bad_params("parameter " + label + ": invalid base64");
      rc = sqlite3_bind_blob64(stmt, index, blob->data(), blob->size(), SQLITE_TRANSIENT);
      break;
    }
    default:
      bad_params("parameter " + label + ": arrays are not SQL values");
  }
  if (rc != SQLITE_OK) conn.fail(rc);
}

}  // namespace

StmtPtr prepare_next(Connection& conn, std::string_view& sql) {
  conn.clear_denial();
  while (!sql.empty()) {
    if (sql.size() > static_cast<size_t>(INT_MAX))
      throw QueryError(error_code::kSqlError, "SQL text too long");
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc =
        sqlite3_prepare_v3(conn.db(), sql.data(), static_cast<int>(sql.size()), 0, &raw, &tail);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) conn.fail(rc);
    size_t used = tail ? static_cast<size_t>(tail - sql.data()) : sql.size();
    std::string_view text = sql.substr(0, used);
    sql.remove_prefix(used);
    if (!stmt) {
      if (used == 0) break;  // nothing consumed: only whitespace or comments remain
      continue;              // an empty statement (";"): look further
    }
    if (auto denial = check_statement_text(text)) throw QueryError(denial->code, denial->message);
    if (conn.mode() == Mode::kReadOnly && !sqlite3_stmt_readonly(stmt.get())) {
      std::string keyword = first_keyword(text);
      throw QueryError(
          error_code::kReadOnly,
          "read-only: " + (keyword.empty() ? std::string("writing") : keyword) + " is not allowed");
    }
    return stmt;
  }
  sql = {};
  return nullptr;
}

void bind_params(Connection& conn, sqlite3_stmt* stmt, const nlohmann::json& params) {
  int count = sqlite3_bind_parameter_count(stmt);
  if (params.is_null() || params.is_array()) {
    size_t given = params.is_null() ? 0 : params.size();
    if (given != static_cast<size_t>(count))
      bad_params("the statement has " + std::to_string(count) + " parameter(s) but " +
                 std::to_string(given) + " value(s) were given");
    for (int i = 1; i <= count; ++i)
      bind_value(conn, stmt, i, params[static_cast<size_t>(i - 1)], "?" + std::to_string(i));
    return;
  }
  if (!params.is_object()) bad_params("params must be an array or an object");
  std::set<std::string> used;
  for (int i = 1; i <= count; ++i) {
    const char* name = sqlite3_bind_parameter_name(stmt, i);
    if (!name || name[0] == '?')
      bad_params("parameter ?" + std::to_string(i) +
                 " is positional: pass params as an array, or name it (:name)");
    std::string full = name;
    std::string bare = full.substr(1);
    auto it = params.find(full);
    std::string key = full;
    if (it == params.end()) {
      it = params.find(bare);
      key = bare;
    }
    if (it == params.end()) bad_params("no value for parameter " + full);
    used.insert(key);
    bind_value(conn, stmt, i, *it, full);
  }
  for (const auto& [key, value] : params.items())
    if (!used.count(key)) bad_params("the statement has no parameter named " + key);
}

bool step(Connection& conn, sqlite3_stmt* stmt) {
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    conn.check_deadline();  // a step that outlasted the budget does not count as answered
    return rc == SQLITE_ROW;
  }
  conn.fail(rc);
}

nlohmann::json column_json(sqlite3_stmt* stmt, int col) {
  switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_INTEGER:
      return sqlite3_column_int64(stmt, col);
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, col);
    case SQLITE_TEXT: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
      auto size = static_cast<size_t>(sqlite3_column_bytes(stmt, col));
      return valid_utf8(std::string_view(text ? text : "", text ? size : 0));
    }
    case SQLITE_BLOB: {
      const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, col));
      auto size = static_cast<size_t>(sqlite3_column_bytes(stmt, col));
      return {{"base64", util::base64_encode(std::string_view(data ? data : "", data ? size : 0))}};
    }
    default:
      return nullptr;
  }
}

int64_t column_cost(sqlite3_stmt* stmt, int col) {
  switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_INTEGER:
    case SQLITE_FLOAT:
      return 8;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
      return sqlite3_column_bytes(stmt, col);
    default:
      return 1;
  }
}

}  // namespace wharf::product::sqlite_db
