#include "product/sqlite_db/sql_guard.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "product/product.h"

namespace wharf::product::sqlite_db {
namespace {

std::string lower(const char* text) {
  std::string out = text ? text : "";
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

template <size_t N>
bool contains(const std::array<std::string_view, N>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

// PRAGMAs that only report, and take no argument. Deliberately absent: database_list (shows
// the server's file paths), journal_mode / synchronous / max_page_count writes and anything
// else that changes how the file is stored or limited.
constexpr std::array<std::string_view, 18> kReportPragmas = {
    "page_count",     "page_size",      "freelist_count",    "user_version",   "data_version",
    "schema_version", "application_id", "encoding",          "max_page_count", "foreign_keys",
    "collation_list", "function_list",  "module_list",       "pragma_list",    "compile_options",
    "auto_vacuum",    "journal_mode",   "defer_foreign_keys"};

// PRAGMAs whose argument names a table or index (or bounds a check): still read-only.
constexpr std::array<std::string_view, 10> kTableArgPragmas = {
    "table_info",       "table_xinfo",       "index_list",      "index_info",  "index_xinfo",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", "table_list"};

// Functions that reach the file system or native code. readfile/writefile/edit exist only
// in the sqlite3 shell today, but a future build or a linked extension must not add them.
constexpr std::array<std::string_view, 5> kForbiddenFunctions = {
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"};

bool is_schema_table(const std::string& table) {
  return table == "sqlite_master" || table == "sqlite_schema" || table == "sqlite_temp_master" ||
         table == "sqlite_temp_schema";
}

Denial forbidden(std::string message) {
  return Denial{error_code::kForbiddenSql, std::move(message)};
}

Denial read_only(const std::string& what) {
  return Denial{error_code::kReadOnly, "read-only: " + what + " is not allowed"};
}

std::string named(const char* verb, const char* name) {
  return name ? std::string(verb) + " " + name : std::string(verb);
}

// Actions that change the database: refused outright in read-only mode.
std::optional<std::string> write_action(int action, const char* arg1, const char* arg2) {
  switch (action) {
    case SQLITE_INSERT:
      if (is_schema_table(lower(arg1))) return "changing the schema";
      return named("INSERT into", arg1);
    case SQLITE_UPDATE:
      if (is_schema_table(lower(arg1))) return "changing the schema";
      return named("UPDATE of", arg1);
    case SQLITE_DELETE:
      if (is_schema_table(lower(arg1))) return "changing the schema";
      return named("DELETE from", arg1);
    case SQLITE_CREATE_INDEX:
      return named("CREATE INDEX", arg1);
    case SQLITE_CREATE_TABLE:
      return named("CREATE TABLE", arg1);
    case SQLITE_CREATE_TRIGGER:
      return named("CREATE TRIGGER", arg1);
    case SQLITE_CREATE_VIEW:
      return named("CREATE VIEW", arg1);
    case SQLITE_CREATE_VTABLE:
      return named("CREATE VIRTUAL TABLE", arg1);
    case SQLITE_DROP_INDEX:
      return named("DROP INDEX", arg1);
    case SQLITE_DROP_TABLE:
      return named("DROP TABLE", arg1);
    case SQLITE_DROP_TRIGGER:
      return named("DROP TRIGGER", arg1);
    case SQLITE_DROP_VIEW:
      return named("DROP VIEW", arg1);
    case SQLITE_DROP_VTABLE:
      return named("DROP VIRTUAL TABLE", arg1);
    case SQLITE_ALTER_TABLE:
      return named("ALTER TABLE", arg2);
    case SQLITE_REINDEX:
      return named("REINDEX", arg1);
    case SQLITE_ANALYZE:
      return named("ANALYZE", arg1);
    case SQLITE_TRANSACTION:
      return "transaction control (" + std::string(arg1 ? arg1 : "") + ")";
    case SQLITE_SAVEPOINT:
      return "transaction control (SAVEPOINT)";
    default:
      return std::nullopt;
  }
}

std::optional<Denial> check_pragma(Mode mode, const char* name_arg, const char* value) {
  std::string name = lower(name_arg);
  if (contains(kTableArgPragmas, name)) return std::nullopt;
  if (contains(kReportPragmas, name)) {
    if (!value) return std::nullopt;
    // user_version is the application's own schema counter (migration tools set it) and
    // defer_foreign_keys lasts until the end of the transaction (migrations that rebuild a
    // table need it, as foreign_keys itself is on and fixed): neither changes how the file
    // is stored or outlives the call, so a writer may set them.
    if (name == "user_version" || name == "defer_foreign_keys") {
      if (mode == Mode::kReadOnly) return read_only("PRAGMA " + name + " = …");
      return std::nullopt;
    }
    return forbidden("PRAGMA " + name + " cannot be changed: the server manages it");
  }
  return forbidden("PRAGMA " + name + " is not allowed");
}

}  // namespace

std::optional<Denial> check_action(Mode mode, int action, const char* arg1, const char* arg2,
                                   const char* db_name, bool client_transactions) {
  if (mode == Mode::kInternal) return std::nullopt;
  if (client_transactions && (action == SQLITE_TRANSACTION || action == SQLITE_SAVEPOINT))
    return std::nullopt;
  // The temp schema lives on the pooled connection, not in the database file: objects made
  // there (`CREATE TABLE temp.t`, `CREATE TRIGGER temp.tr`) would outlive the call, escape
  // the storage limit and storage billing, and show up at random in later calls. Every
  // action on it is refused, reads included, whatever spelling names it.
  if (db_name && lower(db_name) == "temp")
    return forbidden("the temp schema is not supported: create objects in the database itself");
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
      return std::nullopt;
    case SQLITE_FUNCTION:  // arg2 is the function name
      if (contains(kForbiddenFunctions, lower(arg2)))
        return forbidden("function " + lower(arg2) + "() is not allowed");
      return std::nullopt;
    case SQLITE_PRAGMA:
      return check_pragma(mode, arg1, arg2);
    case SQLITE_ATTACH:
      return forbidden("ATTACH is not allowed: a database cannot open other files");
    case SQLITE_DETACH:
      return forbidden("DETACH is not allowed");
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
      // Connections are pooled across calls, so a TEMP object would outlive its call and
      // appear (or not) at random in later ones.
      return forbidden("TEMP tables, views, indexes and triggers are not supported");
    default:
      break;
  }
  if (auto what = write_action(action, arg1, arg2)) {
    if (mode == Mode::kReadOnly) return read_only(*what);
    if (action == SQLITE_TRANSACTION || action == SQLITE_SAVEPOINT)
      return forbidden(*what +
                       " is not allowed: every call runs in one transaction of its own; send "
                       "statements that belong together as one batch");
    return std::nullopt;
  }
  // Anything this list does not know (SQLITE_COPY, actions of a newer SQLite) is refused.
  return forbidden("this statement is not allowed (authorizer action " + std::to_string(action) +
                   ")");
}

size_t skip_trivia(std::string_view sql) {
  size_t i = 0;
  while (i < sql.size()) {
    unsigned char c = static_cast<unsigned char>(sql[i]);
    if (std::isspace(c) || c == ';') {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? sql.size() : end + 1;
    } else if (sql.substr(i, 2) == "/*") {
      size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  return i;
}

bool is_blank_sql(std::string_view sql) {
  return skip_trivia(sql) == sql.size();
}

std::string first_keyword(std::string_view sql) {
  size_t i = skip_trivia(sql);
  std::string word;
  while (i < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '_')) {
    word += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i])));
    ++i;
  }
  return word;
}

std::optional<Denial> check_statement_text(std::string_view sql) {
  if (first_keyword(sql) == "VACUUM")
    return forbidden(
        "VACUUM is not allowed: VACUUM INTO writes outside the database, and the server "
        "maintains the file");
  return std::nullopt;
}

}  // namespace wharf::product::sqlite_db
