// Preparing, binding and stepping client statements on a Connection, and turning column
// values into JSON. Shared by SqliteDb::execute and the REPL.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "product/sqlite_db/connection.h"
#include "util/utf8.h"

namespace wharf::product::sqlite_db {

// Prepares the first statement of `sql` and advances `sql` past it. Returns null when only
// whitespace, comments or semicolons remain. Refuses (QueryError) what the guard refuses and,
// for a read-only connection, any statement SQLite says may write.
StmtPtr prepare_next(Connection& conn, std::string_view& sql);

// Binds a positional array or a named object (keys with or without the :, @ or $ prefix).
// Every parameter the statement names must be given and nothing else (bad_params): a
// misspelt name would otherwise silently bind NULL.
void bind_params(Connection& conn, sqlite3_stmt* stmt, const nlohmann::json& params);

// sqlite3_step; true while a row is available, QueryError on failure.
bool step(Connection& conn, sqlite3_stmt* stmt);

// A column value as the data plane returns it (see product::StatementResult).
nlohmann::json column_json(sqlite3_stmt* stmt, int col);
// What a value counts against maxResultBytes: its bytes, 8 for numbers, 1 for NULL (so a
// flood of NULLs is not free).
int64_t column_cost(sqlite3_stmt* stmt, int col);

using util::valid_utf8;  // util/utf8.h

}  // namespace wharf::product::sqlite_db
