// SQL functions whose built-in versions can run for seconds inside one engine step, where
// neither the progress handler nor sqlite3_interrupt reaches them, replaced on client
// connections by versions that refuse the dangerous arguments first.
//
// printf()/format(): SQLite 3.40's `%c` with a precision appends the character once per
// unit of precision, each append failing after the value-size cap, so
// printf('%.*c', 1000000000, 'x') spins for seconds before reporting "too big". The
// replacement checks every width and precision (literal or `*`) against the value-size cap
// and then formats with the real built-in printf, run on a private in-memory connection of
// the calling thread, so the result is exactly SQLite's.
#pragma once
#include <sqlite3.h>

namespace wharf::product::sqlite_db {

// Registers the replacements on `db`; `max_value_bytes` is the connection's
// SQLITE_LIMIT_LENGTH. Returns an SQLite result code.
int register_safe_functions(sqlite3* db, int max_value_bytes);

}  // namespace wharf::product::sqlite_db
