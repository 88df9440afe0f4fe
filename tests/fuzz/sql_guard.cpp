// Fuzz target: client SQL against a real sqlite product database (src/product/sqlite_db):
// the SQL guard (authorizer + statement checks), preparing, binding, stepping, the limits,
// and the REPL.
//
// Input: one flags byte, then the text.
//   bit 0      read-only call (a read-only token / a read-only REPL)
//   bits 1–2   0: execute() with the text as one statement
//              1: execute() with each line of the text as one statement of a batch
//              2: execute() with the first line as the params (JSON) of the statement on
//                 the rest
//              3: repl() with the text as the input
// The text must be valid UTF-8 (as it is behind the API); other input is skipped.
// Every input starts from the same database (a table, an index, a view and a few rows),
// re-created under a temporary directory, with tight limits (50 ms, 100 rows, 64 KiB).
// What reaches a client is rendered as the API does (strict JSON dump of results and of
// every REPL block).
//
// product::QueryError is the expected refusal; any other exception is a bug. A statement
// the guard must refuse that gets through is caught by the checks after each call.
#include <sqlite3.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "product/product.h"
#include "product/sqlite_db/sqlite_db.h"
#include "temp_dir.h"
#include "util/log.h"

namespace {

using namespace wharf;
using product::Limits;
using product::QueryError;
using product::Statement;

constexpr const char* kResource = "res_fuzz";

Limits tight_limits() {
  Limits l;
  l.storage_bytes = 1 << 20;
  l.statement_timeout_ms = 50;
  l.max_result_bytes = 64 << 10;
  l.max_rows = 100;
  return l;
}

struct Fixture {
  std::string dir = fuzz::make_temp_dir("sql");
  std::string databases = dir + "/databases";
  product::SqliteDb db{databases};
  Limits limits = tight_limits();

  Fixture() { util::set_log_level(util::LogLevel::kError); }
  ~Fixture() { std::filesystem::remove_all(dir); }

  // The same starting database for every input, so a crash reproduces from its input alone.
  // Set up under the default limits: a loaded machine must not time the set-up out.
  void reset() {
    db.destroy(kResource);
    db.create(kResource, limits, nlohmann::json{{"durability", "normal"}});
    db.execute(kResource,
               {{"CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB, d REAL)"},
                {"CREATE INDEX t_b ON t(b)"},
                {"CREATE VIEW v AS SELECT a, b FROM t WHERE a > 1"},
                {"INSERT INTO t(b, c, d) VALUES ('one', x'00ff', 1.5), ('two', NULL, -2), "
                 "(NULL, x'', 1e300)"}},
               /*read_only=*/false, Limits{}, nullptr);
  }
};

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    out.push_back(text.substr(0, eol));
    if (eol == std::string_view::npos) break;
    text.remove_prefix(eol + 1);
  }
  return out;
}

// SQL (and params) reach the product inside JSON bodies (REPL, data plane), which the JSON
// parser only accepts as valid UTF-8: other input is not reachable and is skipped.
bool valid_utf8(std::string_view s) {
  try {
    (void)nlohmann::json(std::string(s)).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

void render(const std::vector<product::StatementResult>& results) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : results)
    out.push_back({{"columns", r.columns},
                   {"rows", r.rows},
                   {"rowsAffected", r.rows_affected},
                   {"lastInsertId", r.last_insert_id}});
  (void)out.dump();  // strict: results must be valid UTF-8
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture& f = *new Fixture();
  if (size == 0) return 0;
  const bool read_only = (data[0] & 1) != 0;
  const int mode = (data[0] >> 1) & 3;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (!valid_utf8(text)) return -1;  // -1: libFuzzer keeps it out of the corpus

  f.reset();
  product::UsageDelta usage;
  try {
    switch (mode) {
      case 0:
        render(f.db.execute(kResource, {{std::string(text)}}, read_only, f.limits, &usage));
        break;
      case 1: {
        std::vector<Statement> batch;
        for (auto line : lines(text)) batch.push_back({std::string(line)});
        if (batch.empty()) batch.push_back({""});
        render(f.db.execute(kResource, batch, read_only, f.limits, &usage));
        break;
      }
      case 2: {
        size_t eol = text.find('\n');
        std::string_view params_text = text.substr(0, eol);
        Statement s;
        s.sql = eol == std::string_view::npos ? "" : std::string(text.substr(eol + 1));
        s.params = nlohmann::json::parse(params_text.begin(), params_text.end(), nullptr,
                                         /*allow_exceptions=*/false);
        if (s.params.is_discarded()) s.params = nlohmann::json::array();
        render(f.db.execute(kResource, {s}, read_only, f.limits, &usage));
        break;
      }
      case 3: {
        // The HTTP layer streams each block as a JSON line, then answers with all of them.
        auto blocks = f.db.repl(
            kResource, std::string(text), read_only, f.limits,
            [](const nlohmann::json& block) { (void)block.dump(); }, &usage);
        (void)blocks.dump();
        break;
      }
    }
  } catch (const QueryError& e) {
    if (e.code == product::error_code::kNotFound) __builtin_trap();  // the resource exists
  }

  // The guard's promises, whatever the input did: the database is still the one file in
  // its directory (nothing attached, copied or written elsewhere), and a read-only call
  // changed nothing.
  if (read_only && usage.rows_written != 0) __builtin_trap();
  for (const auto& entry : std::filesystem::directory_iterator(f.databases)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kResource, 0) != 0) __builtin_trap();
  }
  return 0;
}
