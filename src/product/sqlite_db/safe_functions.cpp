#include "product/sqlite_db/safe_functions.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace wharf::product::sqlite_db {
namespace {

// The thread's private connection that runs the built-in printf, with one prepared
// `SELECT printf(?1, …, ?n)` per argument count.
class BuiltinPrintf {
 public:
  ~BuiltinPrintf() {
    for (auto* stmt : statements_) sqlite3_finalize(stmt);
    if (db_) sqlite3_close(db_);
  }

  sqlite3_stmt* statement(int argc, int max_value_bytes) {
    if (!db_) {
      if (sqlite3_open_v2(":memory:", &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
          SQLITE_OK)
        return nullptr;
      sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, max_value_bytes);
    }
    if (static_cast<size_t>(argc) >= statements_.size()) statements_.resize(argc + 1, nullptr);
    sqlite3_stmt*& stmt = statements_[static_cast<size_t>(argc)];
    if (!stmt) {
      std::string sql = "SELECT printf(";
      for (int i = 1; i <= argc; ++i) sql += (i > 1 ? ",?" : "?") + std::to_string(i);
      sql += ")";
      if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
        stmt = nullptr;
        return nullptr;
      }
    }
    return stmt;
  }
  const char* error() const { return db_ ? sqlite3_errmsg(db_) : "out of memory"; }

 private:
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;
};

thread_local BuiltinPrintf t_builtin;

// The largest width or precision the format asks for, reading `*` from the arguments as
// SQLite's printf does (each conversion but %% takes the next argument).
int64_t largest_field(const unsigned char* fmt, int argc, sqlite3_value** argv) {
  int64_t largest = 0;
  int next = 1;  // argv[0] is the format
  auto star = [&]() -> int64_t {
    if (next >= argc) return 0;
    int64_t v = sqlite3_value_int64(argv[next++]);
    return v < 0 ? (v == INT64_MIN ? INT64_MAX : -v) : v;
  };
  auto digits = [](const unsigned char*& p) {
    int64_t v = 0;
    while (*p >= '0' && *p <= '9') {
      v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (*p - '0');
      ++p;
    }
    return v;
  };
  for (const unsigned char* p = fmt; *p; ++p) {
    if (*p != '%') continue;
    ++p;
    if (*p == '%') continue;
    while (*p == '-' || *p == '+' || *p == ' ' || *p == '#' || *p == '!' || *p == '0' || *p == ',')
      ++p;
    int64_t width = *p == '*' ? (++p, star()) : digits(p);
    int64_t precision = 0;
    if (*p == '.') {
      ++p;
      precision = *p == '*' ? (++p, star()) : digits(p);
    }
    largest = std::max({largest, width, precision});
    while (*p == 'l') ++p;
    if (!*p) break;
    ++next;  // the conversion's own argument
  }
  return largest;
}

void safe_printf(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (argc < 1) return;
  const unsigned char* fmt = sqlite3_value_text(argv[0]);
  if (!fmt) return;  // printf(NULL, …) is NULL
  int max_value_bytes = static_cast<int>(reinterpret_cast<intptr_t>(sqlite3_user_data(ctx)));
  if (largest_field(fmt, argc, argv) > max_value_bytes) {
    sqlite3_result_error_toobig(ctx);
    return;
  }
  sqlite3_stmt* stmt = t_builtin.statement(argc, max_value_bytes);
  if (!stmt) {
    sqlite3_result_error(ctx, t_builtin.error(), -1);
    return;
  }
  for (int i = 0; i < argc; ++i) sqlite3_bind_value(stmt, i + 1, argv[i]);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    sqlite3_result_value(ctx, sqlite3_column_value(stmt, 0));
  } else if ((rc & 0xff) == SQLITE_TOOBIG) {
    sqlite3_result_error_toobig(ctx);
  } else if ((rc & 0xff) == SQLITE_NOMEM) {
    sqlite3_result_error_nomem(ctx);
  } else {
    sqlite3_result_error(ctx, t_builtin.error(), -1);
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

}  // namespace

int register_safe_functions(sqlite3* db, int max_value_bytes) {
  void* limit = reinterpret_cast<void*>(static_cast<intptr_t>(max_value_bytes));
  int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  for (const char* name : {"printf", "format"}) {
    int rc = sqlite3_create_function_v2(db, name, -1, flags, limit, &safe_printf, nullptr, nullptr,
                                        nullptr);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

}  // namespace wharf::product::sqlite_db
