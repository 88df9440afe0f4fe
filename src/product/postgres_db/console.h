// The REPL of the postgres product (partner-api.md §4.14, §5.11), in the blocks the sqlite
// product's REPL renders (product/sqlite_db/repl.h): a statement with columns becomes a table
// (NULL shown as a grey "NULL"), one without becomes "N rows affected" or its command tag
// ("CREATE TABLE"), an error a red "Error: …" paragraph, a server notice a grey paragraph.
//
// The input is SQL sent as one query string, as `psql -c` sends it: its statements run in one
// implicit transaction unless the input has its own BEGIN/COMMIT, and the first error stops
// the rest (and rolls back what the implicit transaction did). Lines starting with '\' are
// psql-like meta-commands: \dt [pattern], \d [table], \?. A transaction left open at the end
// is rolled back. Rows are cut at maxRows / maxResultBytes with a "… N more rows not shown"
// paragraph; statementTimeoutMs bounds each statement (the server's statement_timeout) and
// the whole input (cancelled from here). COPY … STDIN/STDOUT is refused.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "product/postgres_db/pg_conn.h"
#include "product/product.h"
#include "util/utf8.h"

namespace wharf::product::postgres_db {

// Runs `input` on `conn`, a connection of the resource's own role made for this call (its
// session settings are changed). Never throws: every failure is a red paragraph; a lost
// connection is marked broken.
nlohmann::json run_console(Conn& conn, std::string_view input, bool read_only, const Limits& limits,
                           const std::function<void(const nlohmann::json& block)>& emit);

// The output of a console call that could not start: one red "Error: <message>" paragraph.
nlohmann::json console_error(const std::string& message,
                             const std::function<void(const nlohmann::json& block)>& emit);

using util::valid_utf8;  // util/utf8.h

}  // namespace wharf::product::postgres_db
