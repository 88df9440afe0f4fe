// Fuzz target: libSQL's Hrana pipeline requests (src/api/dataplane/hrana.cpp) run on a stream
// of a real sqlite product database: the request parser (StreamRequest, Stmt, Value, Batch and
// its conditions), sessions with client transactions across requests, and the encoder.
//
// Input: one flags byte, then the body of POST v2/pipeline (its `requests`; the JSON parser in
// front of the handler only passes valid JSON, so other input is skipped).
//   bit 0  read-only session (a DATABASE_READONLY_TOKEN)
//   bit 1  run the requests twice on the same stream (a transaction left open spans both)
// Every input starts from the same database. Limits are tight (50 ms, 100 rows, 64 KiB).
//
// execute_request() must never throw: client mistakes and SQL errors are results. Results must
// dump as strict JSON. The guard's promises are checked after each input (nothing written by a
// read-only stream, no file beside the database).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "api/dataplane/hrana.h"
#include "product/sqlite_db/sqlite_db.h"
#include "temp_dir.h"
#include "util/log.h"

namespace {

using namespace wharf;
namespace hrana = api::dataplane::hrana;

constexpr const char* kResource = "res_fuzz";

struct Fixture {
  std::string dir = fuzz::make_temp_dir("hrana");
  std::string databases = dir + "/databases";
  product::SqliteDb db{databases};
  product::Limits limits;

  Fixture() {
    util::set_log_level(util::LogLevel::kError);
    limits.storage_bytes = 1 << 20;
    limits.statement_timeout_ms = 50;
    limits.max_result_bytes = 64 << 10;
    limits.max_rows = 100;
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  void reset() {
    db.destroy(kResource);
    db.create(kResource, limits, nlohmann::json{{"durability", "normal"}});
    db.execute(kResource,
               {{"CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT UNIQUE, c BLOB, d REAL)"},
                {"INSERT INTO t(b, c, d) VALUES ('one', x'00ff', 1.5), ('two', NULL, -2)"}},
               /*read_only=*/false, product::Limits{}, nullptr);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture& f = *new Fixture();
  if (size == 0) return 0;
  const bool read_only = (data[0] & 1) != 0;
  const bool twice = (data[0] & 2) != 0;
  auto body = nlohmann::json::parse(data + 1, data + size, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return -1;
  const nlohmann::json* requests = &body;
  if (body.is_object() && body.contains("requests")) requests = &body["requests"];
  if (!requests->is_array()) return 0;

  f.reset();
  hrana::RequestBudget budget;
  {
    hrana::Stream stream;
    stream.session = f.db.open_session(kResource, read_only, f.limits);
    for (int round = 0; round < (twice ? 2 : 1); ++round) {
      nlohmann::json results = nlohmann::json::array();
      for (const auto& request : *requests)
        results.push_back(hrana::execute_request(stream, request, budget));
      (void)results.dump();  // strict: what the client receives must be valid UTF-8 JSON
    }
  }  // the stream ends: an open transaction rolls back

  if (read_only && budget.usage.rows_written != 0) __builtin_trap();
  for (const auto& entry : std::filesystem::directory_iterator(f.databases)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kResource, 0) != 0) __builtin_trap();
  }
  // Nothing stays locked: a writer gets the database at once.
  f.db.execute(kResource, {{"INSERT INTO t(b) VALUES (NULL)"}}, false, product::Limits{}, nullptr);
  return 0;
}
