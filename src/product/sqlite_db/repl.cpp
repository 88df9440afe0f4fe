#include "product/sqlite_db/repl.h"

#include <sqlite3.h>

#include <string>
#include <vector>

#include "product/console_output.h"
#include "product/sqlite_db/sql_guard.h"
#include "product/sqlite_db/statement_runner.h"

namespace wharf::product::sqlite_db {
namespace {

using nlohmann::json;

constexpr char kErrorColor[] = "#ff0000";
constexpr char kNullColor[] = "#888";
constexpr size_t kBlobPreviewBytes = 32;
// After the display limit, a read-only query keeps stepping only to say how many rows were
// left out; past this many it stops and says "more than".
constexpr int64_t kMaxCountedRows = 100000;

// Every text goes through valid_utf8: SQLite quotes client values in its error messages
// (e.g. a JSON path), so a message can carry invalid UTF-8 that JSON cannot (fuzz regression
// sql_guard/repl-error-invalid-utf8).
using console::paragraph;
using console::text;

json message(std::string value) {
  return paragraph(json::array({text(std::move(value))}));
}

json error_block(const std::string& value) {
  return paragraph(json::array({text("Error: " + value, kErrorColor)}));
}

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

using console::Budget;
using console::Output;

std::string hex_preview(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "x'";
  for (size_t i = 0; i < size && i < kBlobPreviewBytes; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0xF];
  }
  if (size > kBlobPreviewBytes) out += "…";
  out += "'";
  if (size > kBlobPreviewBytes) out += " (" + std::to_string(size) + " bytes)";
  return out;
}

json cell(sqlite3_stmt* stmt, int col) {
  switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_NULL:
      return text("NULL", kNullColor);
    case SQLITE_BLOB:
      return text(hex_preview(static_cast<const unsigned char*>(sqlite3_column_blob(stmt, col)),
                              static_cast<size_t>(sqlite3_column_bytes(stmt, col))));
    default: {
      // SQLite's own rendering of numbers (what the sqlite3 shell shows).
      const auto* value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
      auto size = static_cast<size_t>(sqlite3_column_bytes(stmt, col));
      return text(valid_utf8(std::string_view(value ? value : "", value ? size : 0)));
    }
  }
}

void run_statement(Connection& conn, sqlite3_stmt* stmt, Budget& budget, Output& out,
                   UsageDelta& usage) {
  sqlite3* db = conn.db();
  int64_t changes_before = sqlite3_total_changes64(db);
  int columns = sqlite3_column_count(stmt);
  bool read_only = sqlite3_stmt_readonly(stmt) != 0;
  ++usage.queries;
  if (columns == 0) {
    while (step(conn, stmt)) {
    }
    int64_t written = sqlite3_total_changes64(db) - changes_before;
    usage.rows_written += written;
    out.add(
        message(plural(written > 0 ? sqlite3_changes64(db) : 0, "row affected", "rows affected")));
    return;
  }

  json header = json::array();
  for (int c = 0; c < columns; ++c) {
    const char* name = sqlite3_column_name(stmt, c);
    header.push_back(text(valid_utf8(name ? name : ""), nullptr, true));
  }
  json rows = json::array();
  int64_t hidden = 0;
  bool counted_all = true;
  try {
    while (step(conn, stmt)) {
      if (hidden == 0) {
        int64_t row_bytes = 0;
        for (int c = 0; c < columns; ++c) row_bytes += column_cost(stmt, c);
        if (budget.fits(row_bytes)) {
          json row = json::array();
          for (int c = 0; c < columns; ++c) row.push_back(cell(stmt, c));
          rows.push_back(std::move(row));
          budget.spend(row_bytes);
          continue;
        }
      }
      ++hidden;
      if (read_only && hidden >= kMaxCountedRows) {
        counted_all = false;
        break;
      }
    }
  } catch (const QueryError& e) {
    // A read-only query that ran out of time while only counting hidden rows has shown
    // everything it may; say so instead of failing. Otherwise show what a read-only query
    // produced before the error (a write was rolled back, so its rows are not shown).
    bool counting = hidden > 0 && e.code == error_code::kTimeout;
    if (!read_only || !counting) {
      usage.rows_read += static_cast<int64_t>(rows.size());
      if (read_only && !rows.empty())
        out.add({{"type", "table"}, {"header", std::move(header)}, {"rows", std::move(rows)}});
      throw;
    }
    counted_all = false;
  }
  usage.rows_read += static_cast<int64_t>(rows.size());
  usage.rows_written += sqlite3_total_changes64(db) - changes_before;
  out.add({{"type", "table"}, {"header", std::move(header)}, {"rows", std::move(rows)}});
  if (hidden > 0)
    out.add(message("… " + std::string(counted_all ? "" : "at least ") +
                    plural(hidden, "more row not shown", "more rows not shown") +
                    " (the plan shows at most its maxRows / maxResultBytes)"));
}

// Runs one of the server's own queries (dot-commands) and calls `row` per result row.
void query(Connection& conn, const char* sql, const std::vector<std::string>& args,
           const std::function<void(sqlite3_stmt*)>& row) {
  InternalScope internal(conn);
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(conn.db(), sql, -1, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) conn.fail(rc);
  for (size_t i = 0; i < args.size(); ++i) {
    rc = sqlite3_bind_text(stmt.get(), static_cast<int>(i + 1), args[i].c_str(), -1,
                           SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) conn.fail(rc);
  }
  while (step(conn, stmt.get())) row(stmt.get());
}

std::string column_text(sqlite3_stmt* stmt, int col) {
  const auto* value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
  return valid_utf8(value ? value : "");
}

void dot_tables(Connection& conn, const std::vector<std::string>& args, Output& out) {
  std::string pattern = args.empty() ? "%" : args[0];
  json rows = json::array();
  query(conn,
        "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT "
        "LIKE 'sqlite\\_%' ESCAPE '\\' AND name LIKE ?1 ORDER BY name",
        {pattern}, [&rows](sqlite3_stmt* stmt) {
          rows.push_back(json::array({text(column_text(stmt, 0)), text(column_text(stmt, 1))}));
        });
  if (rows.empty()) {
    out.add(message(args.empty() ? "No tables." : "No tables match " + pattern + "."));
    return;
  }
  out.add({{"type", "table"},
           {"header", json::array({text("name", nullptr, true), text("type", nullptr, true)})},
           {"rows", std::move(rows)}});
}

void dot_schema(Connection& conn, const std::vector<std::string>& args, Output& out) {
  std::vector<std::string> sql;
  // Creation order (rowid), as the sqlite3 shell prints it; for a table, its indexes and
  // triggers too.
  const char* all =
      "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' "
      "ESCAPE '\\' ORDER BY rowid";
  const char* one =
      "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' "
      "ESCAPE '\\' AND (tbl_name = ?1 COLLATE NOCASE OR name = ?1 COLLATE NOCASE) ORDER BY "
      "rowid";
  query(conn, args.empty() ? all : one, args,
        [&sql](sqlite3_stmt* stmt) { sql.push_back(column_text(stmt, 0) + ";"); });
  if (sql.empty()) {
    if (args.empty())
      out.add(message("No tables."));
    else
      out.add(error_block("no such table: " + args[0]));
    return;
  }
  for (auto& s : sql) out.add(message(std::move(s)));
}

void dot_help(Output& out) {
  static const std::pair<const char*, const char*> kCommands[] = {
      {".tables [pattern]", "list tables and views (pattern as in LIKE)"},
      {".schema [table]", "show the CREATE statements, of one table or of all"},
      {".help", "show this help"},
  };
  for (const auto& [command, description] : kCommands)
    out.add(paragraph(
        json::array({text(command, nullptr, true), text(" — " + std::string(description))})));
  out.add(
      message("Anything else runs as SQL; separate statements with ';'. Each statement commits on "
              "its own."));
}

void run_dot(Connection& conn, std::string_view line, Output& out, UsageDelta& usage) {
  std::vector<std::string> words = console::words(line);
  std::string command = words.front();
  // Each command takes at most one argument; extra words are ignored, as the shell does.
  std::vector<std::string> args;
  if (words.size() > 1) args.push_back(words[1]);
  if (command == ".tables") {
    ++usage.queries;
    dot_tables(conn, args, out);
  } else if (command == ".schema") {
    ++usage.queries;
    dot_schema(conn, args, out);
  } else if (command == ".help") {
    dot_help(out);
  } else {
    throw QueryError(error_code::kSqlError,
                     "unknown command " + valid_utf8(command) + " (try .help)");
  }
}

}  // namespace

json run_repl(Connection& conn, std::string_view input, const Limits& limits,
              const std::function<void(const json& block)>& emit, UsageDelta& usage) {
  Output out(emit);
  Budget budget{limits.max_rows > 0 ? limits.max_rows : -1,
                limits.max_result_bytes > 0 ? limits.max_result_bytes : -1};
  conn.start_clock(limits.statement_timeout_ms);
  std::string_view rest = input;
  try {
    while (true) {
      rest.remove_prefix(skip_trivia(rest));
      if (rest.empty()) break;
      if (rest.front() == '.') {
        // A dot-command is the rest of its line (no SQL statement starts with '.').
        size_t eol = rest.find('\n');
        std::string_view line = rest.substr(0, eol);
        rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
        run_dot(conn, line, out, usage);
        continue;
      }
      StmtPtr stmt = prepare_next(conn, rest);
      if (!stmt) break;
      run_statement(conn, stmt.get(), budget, out, usage);
    }
  } catch (const QueryError& e) {
    if (e.code == error_code::kNotFound) throw;
    out.add(error_block(e.what()));
  }
  conn.stop_clock();
  if (out.empty()) out.add(message("Nothing to run: type SQL, or .help for the commands."));
  return out.take();
}

}  // namespace wharf::product::sqlite_db
