#include "product/postgres_db/console.h"

#include <poll.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "product/console_output.h"

namespace wharf::product::postgres_db {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kErrorColor[] = "#ff0000";
constexpr char kGrey[] = "#888";
constexpr size_t kMaxNotices = 100;
// After a cancel, how long the server gets to answer before the connection is given up.
constexpr auto kCancelGrace = std::chrono::seconds(5);

using console::paragraph;
using console::text;

json message(const std::string& value, const char* color = nullptr) {
  return paragraph(json::array({text(value, color)}));
}

json error_block(const std::string& value) {
  return message("Error: " + value, kErrorColor);
}

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string field(const PGresult* r, int code) {
  const char* v = PQresultErrorField(r, code);
  return v ? v : "";
}

// One line: libpq's own messages end in newlines.
std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

using console::Budget;
using console::Output;

// Server notices (RAISE NOTICE, "table does not exist, skipping"), shown after the result
// they came with.
struct Notices {
  std::vector<std::string> messages;
  int64_t dropped = 0;
};

void on_notice(void* arg, const PGresult* r) {
  auto* notices = static_cast<Notices*>(arg);
  if (notices->messages.size() >= kMaxNotices) {
    ++notices->dropped;
    return;
  }
  std::string severity = field(r, PG_DIAG_SEVERITY);
  notices->messages.push_back((severity.empty() ? "NOTICE" : severity) + ": " +
                              field(r, PG_DIAG_MESSAGE_PRIMARY));
}

// The rows of the statement being received.
struct Table {
  bool started = false;
  json header = json::array();
  json rows = json::array();
  int64_t hidden = 0;
};

class Runner {
 public:
  Runner(Conn& conn, const Limits& limits, Output& out, Notices& notices)
      : conn_(conn),
        out_(out),
        notices_(notices),
        budget_{limits.max_rows > 0 ? limits.max_rows : -1,
                limits.max_result_bytes > 0 ? limits.max_result_bytes : -1},
        timeout_ms_(limits.statement_timeout_ms) {
    if (timeout_ms_ > 0) deadline_ = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  }

  // Runs one query string; false when an error stopped it (already shown).
  bool run_sql(const std::string& sql) {
    PGconn* c = conn_.get();
    if (!PQsendQuery(c, sql.c_str())) return lost();
    PQsetSingleRowMode(c);
    bool ok = true;
    Table table;
    while (true) {
      if (!wait()) return lost();
      ResultPtr r(PQgetResult(c));
      show_notices();  // they came before the result
      if (!r) break;
      switch (PQresultStatus(r.get())) {
        case PGRES_SINGLE_TUPLE:
          add_rows(table, r.get());
          break;
        case PGRES_TUPLES_OK:
          add_rows(table, r.get());
          finish(table);
          table = Table{};
          break;
        case PGRES_COMMAND_OK: {
          std::string tuples = PQcmdTuples(r.get());
          if (!tuples.empty())
            out_.add(message(plural(std::stoll(tuples), "row affected", "rows affected")));
          else
            out_.add(message(PQcmdStatus(r.get())));
          break;
        }
        case PGRES_EMPTY_QUERY:
          break;
        case PGRES_COPY_IN:
          // The server answers with an error result, shown below.
          if (PQputCopyEnd(c, "COPY FROM STDIN is not supported in the console") != 1)
            return lost();
          break;
        case PGRES_COPY_OUT: {
          char* buffer = nullptr;
          int n = 0;
          while ((n = PQgetCopyData(c, &buffer, 0)) > 0) PQfreemem(buffer);
          if (n == -2) return lost();
          out_.add(message("COPY TO STDOUT: the console does not show COPY output", kGrey));
          break;
        }
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE:
          out_.add(error_block(error_message(r.get())));
          ok = false;
          break;
        default:  // COPY BOTH, pipeline states: nothing this console starts
          out_.add(error_block("unsupported result " +
                               std::string(PQresStatus(PQresultStatus(r.get())))));
          conn_.mark_broken();
          return false;
      }
    }
    return ok;
  }

  // A meta-command line; false when it failed (already shown).
  bool run_meta(std::string_view line) {
    std::vector<std::string> words = console::words(line);
    const std::string command = words.front();
    std::string arg = words.size() > 1 ? words[1] : "";
    try {
      if (command == "\\dt" || (command == "\\d" && arg.empty())) {
        list_tables(arg);
      } else if (command == "\\d") {
        describe(arg);
      } else if (command == "\\?" || command == "\\help" || command == "\\h") {
        help();
      } else {
        out_.add(error_block("unknown command " + command + " (try \\?)"));
        return false;
      }
    } catch (const PgError& e) {
      out_.add(error_block(e.what()));
      return false;
    }
    return true;
  }

  bool broken() const { return !conn_.ok(); }

 private:
  bool lost() {
    out_.add(error_block("the connection to the database was lost: " +
                         one_line(PQerrorMessage(conn_.get()))));
    conn_.mark_broken();
    return false;
  }

  // Waits until PQgetResult will not block; past the deadline the query is cancelled once.
  bool wait() {
    PGconn* c = conn_.get();
    while (PQisBusy(c)) {
      int wait_ms = -1;
      if (deadline_) {
        auto now = Clock::now();
        if (now >= *deadline_) {
          if (cancelled_) return false;  // the server did not answer the cancel in time
          cancel();
          deadline_ = now + kCancelGrace;
        }
        wait_ms = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now())
                .count() +
            1);
      }
      pollfd p{PQsocket(c), POLLIN, 0};
      if (poll(&p, 1, wait_ms) < 0 && errno != EINTR) return false;
      if (!PQconsumeInput(c)) return false;
    }
    return true;
  }

  void cancel() {
    cancelled_ = true;
    if (PGcancel* handle = PQgetCancel(conn_.get())) {
      char error[256];
      PQcancel(handle, error, sizeof error);
      PQfreeCancel(handle);
    }
  }

  std::string error_message(const PGresult* r) const {
    std::string state = field(r, PG_DIAG_SQLSTATE);
    if (cancelled_ && state == "57014")
      return "the input ran longer than the plan's statementTimeoutMs (" +
             std::to_string(timeout_ms_) + " ms) and was cancelled";
    std::string primary = field(r, PG_DIAG_MESSAGE_PRIMARY);
    if (primary.empty()) primary = one_line(PQresultErrorMessage(r));
    if (primary.empty()) primary = one_line(PQerrorMessage(conn_.get()));
    std::string out = primary;
    std::string detail = field(r, PG_DIAG_MESSAGE_DETAIL);
    std::string hint = field(r, PG_DIAG_MESSAGE_HINT);
    if (!detail.empty()) out += " — " + detail;
    if (!hint.empty()) out += " (hint: " + hint + ")";
    return out;
  }

  void show_notices() {
    for (const auto& n : notices_.messages) out_.add(message(n, kGrey));
    notices_.messages.clear();
    if (notices_.dropped > 0) {
      out_.add(message(
          "… " + plural(notices_.dropped, "more notice", "more notices") + " not shown", kGrey));
      notices_.dropped = 0;
    }
  }

  void add_rows(Table& table, const PGresult* r) {
    int columns = PQnfields(r);
    if (!table.started) {
      table.started = true;
      for (int c = 0; c < columns; ++c) table.header.push_back(text(PQfname(r, c), nullptr, true));
    }
    for (int row = 0; row < PQntuples(r); ++row) {
      if (table.hidden == 0) {
        int64_t row_bytes = 0;
        for (int c = 0; c < columns; ++c) row_bytes += PQgetlength(r, row, c) + 1;
        if (budget_.fits(row_bytes)) {
          json cells = json::array();
          for (int c = 0; c < columns; ++c) {
            if (PQgetisnull(r, row, c))
              cells.push_back(text("NULL", kGrey));
            else
              cells.push_back(text(
                  std::string(PQgetvalue(r, row, c), static_cast<size_t>(PQgetlength(r, row, c)))));
          }
          table.rows.push_back(std::move(cells));
          budget_.spend(row_bytes);
          continue;
        }
      }
      ++table.hidden;
    }
  }

  void finish(Table& table) {
    out_.add(
        {{"type", "table"}, {"header", std::move(table.header)}, {"rows", std::move(table.rows)}});
    if (table.hidden > 0)
      out_.add(message("… " + plural(table.hidden, "more row not shown", "more rows not shown") +
                       " (the plan shows at most its maxRows / maxResultBytes)"));
  }

  // A catalog query's four text columns as a table block under `names`.
  static json catalog_table(const std::array<const char*, 4>& names, const Result& r) {
    json header = json::array();
    for (const char* h : names) header.push_back(text(h, nullptr, true));
    json rows = json::array();
    for (int i = 0; i < r.rows(); ++i)
      rows.push_back(json::array(
          {text(r.text(i, 0)), text(r.text(i, 1)), text(r.text(i, 2)), text(r.text(i, 3))}));
    return {{"type", "table"}, {"header", std::move(header)}, {"rows", std::move(rows)}};
  }

  void list_tables(const std::string& pattern) {
    // psql's wildcards: * and ?.
    std::string like = "%";
    if (!pattern.empty()) {
      like.clear();
      for (char ch : pattern) {
        if (ch == '*')
          like += '%';
        else if (ch == '?')
          like += '_';
        else if (ch == '%' || ch == '_' || ch == '\\')
          like += std::string("\\") + ch;
        else
          like += ch;
      }
    }
    Result r = conn_.query(
        "SELECT n.nspname, c.relname, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' "
        "WHEN 'm' THEN 'materialized view' WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN "
        "'foreign table' END, pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', "
        "'m', 'p', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname "
        "NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND c.relname LIKE $1 "
        "ORDER BY 1, 2",
        {like});
    if (r.rows() == 0) {
      out_.add(message(pattern.empty() ? "No tables." : "No tables match " + pattern + "."));
      return;
    }
    out_.add(catalog_table({"schema", "name", "type", "owner"}, r));
  }

  void describe(const std::string& name) {
    Result r = conn_.query(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), CASE WHEN "
        "a.attnotnull THEN 'not null' ELSE '' END, COALESCE(pg_catalog.pg_get_expr(d.adbin, "
        "d.adrelid), '') FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON "
        "d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = "
        "pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        {name});
    if (r.rows() == 0) {
      out_.add(error_block("did not find any relation named " + name));
      return;
    }
    out_.add(catalog_table({"column", "type", "nullable", "default"}, r));
  }

  void help() {
    static const std::pair<const char*, const char*> kCommands[] = {
        {"\\dt [pattern]", "list tables and views (pattern with * and ?)"},
        {"\\d [table]", "describe a table's columns (without a name: \\dt)"},
        {"\\?", "show this help"},
    };
    for (const auto& command : kCommands)
      out_.add(paragraph(json::array(
          {text(command.first, nullptr, true), text(" — " + std::string(command.second))})));
    out_.add(
        message("Anything else runs as SQL, the whole input in one transaction unless it has "
                "its own BEGIN / COMMIT."));
  }

  Conn& conn_;
  Output& out_;
  Notices& notices_;
  Budget budget_;
  int64_t timeout_ms_;
  std::optional<Clock::time_point> deadline_;
  bool cancelled_ = false;
};

bool blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

json run_console(Conn& conn, std::string_view input, bool read_only, const Limits& limits,
                 const std::function<void(const json& block)>& emit) {
  Output out(emit);
  Notices notices;
  PQnoticeReceiver previous = PQsetNoticeReceiver(conn.get(), &on_notice, &notices);
  try {
    std::string timeout = std::to_string(limits.statement_timeout_ms);
    conn.exec("SET statement_timeout = " + timeout +
              "; SET default_transaction_read_only = " + (read_only ? "on" : "off"));
  } catch (const PgError& e) {
    out.add(error_block(e.what()));
    PQsetNoticeReceiver(conn.get(), previous, nullptr);
    return out.take();
  }
  notices.messages.clear();

  Runner runner(conn, limits, out, notices);
  std::string sql;
  bool ok = true;
  std::string_view rest = input;
  while (ok && !rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
    size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && line[first] == '\\') {
      if (!blank(sql)) ok = runner.run_sql(sql);
      sql.clear();
      if (ok) ok = runner.run_meta(line.substr(first));
      continue;
    }
    sql.append(line);
    sql += '\n';
  }
  if (ok && !blank(sql)) ok = runner.run_sql(sql);
  if (!runner.broken() && PQtransactionStatus(conn.get()) != PQTRANS_IDLE)
    out.add(message("The transaction left open by the input was rolled back.", kGrey));
  PQsetNoticeReceiver(conn.get(), previous, nullptr);
  if (out.empty()) out.add(message("Nothing to run: type SQL, or \\? for the commands."));
  return out.take();
}

json console_error(const std::string& value, const std::function<void(const json& block)>& emit) {
  json block = error_block(value);
  if (emit) emit(block);
  return json::array({std::move(block)});
}

}  // namespace wharf::product::postgres_db
