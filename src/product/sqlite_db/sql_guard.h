// What SQL a client may run against its database. The database must not escape its file:
// no ATTACH (VACUUM INTO attaches implicitly), no extension loading, no PRAGMA that changes
// how the file is written or limited, no file-system functions; read-only callers cannot
// write at all. Enforced by an SQLite authorizer (consulted while preparing and, for
// table-valued PRAGMA functions, while stepping), on top of the connection settings in
// connection.cpp (DEFENSIVE on, TRUSTED_SCHEMA off, load_extension off, 0 attached dbs).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace wharf::product::sqlite_db {

enum class Mode {
  kInternal,   // the server's own statements (BEGIN, PRAGMA max_page_count, .tables, …)
  kReadWrite,  // a client with a read-write token
  kReadOnly,   // a client with a read-only token, or a read-only REPL
};

struct Denial {
  std::string code;  // product::error_code::kForbiddenSql or kReadOnly
  std::string message;
};

// The authorizer's decision for one action (arguments as sqlite3_set_authorizer passes
// them; `db_name` is the schema the action touches, when it names one); nullopt allows it.
// `client_transactions`: the client owns the transaction (a session, product::SqlSession),
// so BEGIN/COMMIT/ROLLBACK and SAVEPOINT/RELEASE are its to run, read-only callers included
// (BEGIN IMMEDIATE still counts as a write: sqlite3_stmt_readonly says so).
std::optional<Denial> check_action(Mode mode, int action, const char* arg1, const char* arg2,
                                   const char* db_name = nullptr, bool client_transactions = false);

// Checks on the statement text that the authorizer cannot express; nullopt allows it.
// Currently: VACUUM (VACUUM INTO writes a copy anywhere on disk; plain VACUUM needs twice the
// storage and cannot run inside the transaction every call uses).
std::optional<Denial> check_statement_text(std::string_view sql);

// Index of the first character of `sql` that is not whitespace, a comment or a semicolon.
size_t skip_trivia(std::string_view sql);

// True when `sql` holds nothing but whitespace, comments and semicolons.
bool is_blank_sql(std::string_view sql);

// The first keyword of `sql` upper-cased, skipping whitespace and comments ("" if none).
std::string first_keyword(std::string_view sql);

}  // namespace wharf::product::sqlite_db
