// The REPL of the sqlite product (partner-api.md §4.14, §5.11). The input is SQL (several
// statements separated by ';' run one after another, each committed on its own as in the
// sqlite3 shell; the first error stops the rest) mixed with dot-commands, each on a line of
// its own: .tables [pattern], .schema [table], .help.
//
// Output blocks: a statement with columns becomes a table (NULL shown as a grey "NULL",
// blobs as x'…' hex), one without becomes "N rows affected", an error a red "Error: …"
// paragraph. Rows are cut at maxRows / maxResultBytes with a "… N more rows not shown"
// paragraph; statementTimeoutMs bounds the whole input.
#pragma once
#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "product/product.h"
#include "product/sqlite_db/connection.h"

namespace wharf::product::sqlite_db {

// Runs `input` on `conn` (already in the caller's mode, with its storage cap set). Throws
// only QueryError not_found (the database was destroyed meanwhile).
nlohmann::json run_repl(Connection& conn, std::string_view input, const Limits& limits,
                        const std::function<void(const nlohmann::json& block)>& emit,
                        UsageDelta& usage);

}  // namespace wharf::product::sqlite_db
