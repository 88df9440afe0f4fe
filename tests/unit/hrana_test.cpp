// libSQL's Hrana protocol: the codec against the spec's structures, and streams on a real
// SQLite product (sessions, client transactions, batches with conditions, limits).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "api/dataplane/hrana.h"
#include "product/sqlite_db/sqlite_db.h"

namespace wharf::api::dataplane::hrana {
namespace {

namespace fs = std::filesystem;

Json val(const char* text) {
  return Json::parse(text);
}

TEST(HranaCodec, ValuesRoundTripAsTheSpecTypesThem) {
  EXPECT_EQ(decode_value(val(R"({"type":"null"})")), Json());
  EXPECT_EQ(decode_value(val(R"({"type":"integer","value":"9007199254740993"})")),
            Json(int64_t{9007199254740993}));
  EXPECT_EQ(decode_value(val(R"({"type":"integer","value":"-5"})")), Json(-5));
  Json f = decode_value(val(R"({"type":"float","value":1})"));
  EXPECT_TRUE(f.is_number_float());
  EXPECT_EQ(decode_value(val(R"({"type":"text","value":"héllo"})")), Json("héllo"));
  EXPECT_EQ(decode_value(val(R"({"type":"blob","base64":"AAEC"})")), val(R"({"base64":"AAEC"})"));

  EXPECT_EQ(encode_value(Json()), val(R"({"type":"null"})"));
  EXPECT_EQ(encode_value(Json(int64_t{-9223372036854775807 - 1})),
            val(R"({"type":"integer","value":"-9223372036854775808"})"));
  EXPECT_EQ(encode_value(Json(2.5)), val(R"({"type":"float","value":2.5})"));
  EXPECT_EQ(encode_value(Json("x")), val(R"({"type":"text","value":"x"})"));
  EXPECT_EQ(encode_value(val(R"({"base64":"AAEC"})")), val(R"({"type":"blob","base64":"AAEC"})"));
}

TEST(HranaCodec, RefusesMalformedValues) {
  for (const char* bad :
       {R"({"type":"integer","value":"12x"})",
        R"({"type":"integer","value":"99999999999999999999"})", R"({"type":"integer"})",
        R"({"type":"float","value":"1"})", R"({"type":"text","value":1})", R"({"type":"blob"})",
        R"({"type":"bool","value":true})", R"({"value":1})", "3"}) {
    try {
      decode_value(val(bad));
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ProtoError& e) {
      EXPECT_EQ(e.code, "ARGS_INVALID") << bad;
    }
  }
}

TEST(HranaCodec, DecodesStatements) {
  std::map<int64_t, std::string> stored = {{7, "SELECT ?"}};
  DecodedStmt a = decode_stmt(
      val(R"({"sql":"SELECT ?, ?","args":[{"type":"integer","value":"1"},{"type":"text","value":"a"}],"named_args":[],"want_rows":false})"),
      stored);
  EXPECT_EQ(a.statement.sql, "SELECT ?, ?");
  EXPECT_EQ(a.statement.params, val(R"([1,"a"])"));
  EXPECT_FALSE(a.want_rows);

  DecodedStmt b = decode_stmt(
      val(R"({"sql_id":7,"args":[],"named_args":[{"name":":x","value":{"type":"null"}}]})"),
      stored);
  EXPECT_EQ(b.statement.sql, "SELECT ?");
  EXPECT_EQ(b.statement.params, val(R"({":x":null})"));
  EXPECT_TRUE(b.want_rows);

  auto code_of = [&](const char* text) {
    try {
      decode_stmt(val(text), stored);
    } catch (const ProtoError& e) {
      return e.code;
    }
    return std::string("accepted");
  };
  EXPECT_EQ(code_of(R"({"sql_id":8})"), "SQL_NOT_FOUND");
  EXPECT_EQ(code_of(R"({"sql":"x","sql_id":7})"), "PROTO_ERROR");
  EXPECT_EQ(code_of(R"({"args":[]})"), "PROTO_ERROR");
  EXPECT_EQ(
      code_of(
          R"({"sql":"x","args":[{"type":"null"}],"named_args":[{"name":"a","value":{"type":"null"}}]})"),
      "ARGS_BOTH_POSITIONAL_AND_NAMED");
}

TEST(HranaCodec, EncodesResultsAndErrors) {
  product::StatementResult r;
  r.columns = {"id", "n"};
  r.decltypes = {std::string("INTEGER"), std::nullopt};
  r.rows = val(R"([[1, 1.5], [2, null]])");
  r.rows_affected = 0;
  r.last_insert_id = 0;
  Json out = encode_result(r);
  EXPECT_EQ(out["cols"],
            val(R"([{"name":"id","decltype":"INTEGER"},{"name":"n","decltype":null}])"));
  EXPECT_EQ(out["rows"][0][0], val(R"({"type":"integer","value":"1"})"));
  EXPECT_EQ(out["rows"][1][1], val(R"({"type":"null"})"));
  EXPECT_EQ(out["affected_row_count"], 0);
  EXPECT_TRUE(out["last_insert_rowid"].is_null());

  EXPECT_EQ(
      encode_error(product::QueryError("sql_error", "UNIQUE constraint failed", 2067))["code"],
      "SQLITE_CONSTRAINT");
  EXPECT_EQ(encode_error(product::QueryError("read_only", "read-only"))["code"], "SQLITE_READONLY");
  EXPECT_EQ(encode_error(product::QueryError("read_only", "read-only"), true)["code"],
            "CREDITS_EXHAUSTED");
  EXPECT_EQ(encode_error(product::QueryError("timeout", "slow"))["code"], "QUERY_TIMEOUT");
}

class HranaStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wharf_hrana_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    product::SqliteDb::Options options;
    options.max_open_transactions_per_database = 2;
    db_ = std::make_unique<product::SqliteDb>(dir_.string(), options);
    db_->create("res_a", product::Limits{}, Json::object());
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  Stream open(bool read_only = false, product::Limits limits = product::Limits{}) {
    Stream s;
    s.session = db_->open_session("res_a", read_only, limits);
    return s;
  }

  // Runs one request; returns the StreamResult.
  Json run(Stream& s, const std::string& request) {
    return execute_request(s, Json::parse(request), budget_);
  }
  Json exec(Stream& s, const std::string& sql) {
    return run(s, Json{{"type", "execute"}, {"stmt", {{"sql", sql}}}}.dump());
  }
  int64_t count(const std::string& table = "t") {
    auto r = db_->execute("res_a", {{"SELECT count(*) FROM " + table, Json::array()}}, true,
                          product::Limits{}, nullptr);
    return r[0].rows[0][0].get<int64_t>();
  }

  fs::path dir_;
  std::unique_ptr<product::SqliteDb> db_;
  RequestBudget budget_;
};

TEST_F(HranaStreamTest, ExecuteReturnsTypedValuesAndDecltypes) {
  Stream s = open();
  ASSERT_EQ(exec(s, "CREATE TABLE t(id INTEGER PRIMARY KEY, r REAL, x TEXT, b BLOB, n)")["type"],
            "ok");
  Json ins = run(s, R"j({"type":"execute","stmt":{)j"
                    R"j("sql":"INSERT INTO t(r, x, b, n) VALUES (?, ?, ?, ?)",)j"
                    R"j("args":[{"type":"float","value":2.5},{"type":"text","value":"hi"},)j"
                    R"j({"type":"blob","base64":"AAH/"},{"type":"null"}]}})j");
  ASSERT_EQ(ins["type"], "ok") << ins.dump();
  EXPECT_EQ(ins["response"]["result"]["affected_row_count"], 1);
  EXPECT_EQ(ins["response"]["result"]["last_insert_rowid"], "1");
  Json sel = exec(s, "SELECT id, r, x, b, n, 1 + 1 AS two FROM t");
  ASSERT_EQ(sel["type"], "ok") << sel.dump();
  const Json& result = sel["response"]["result"];
  EXPECT_EQ(result["cols"][0], val(R"({"name":"id","decltype":"INTEGER"})"));
  EXPECT_EQ(result["cols"][5], val(R"({"name":"two","decltype":null})"));
  EXPECT_EQ(result["rows"][0], val(R"([{"type":"integer","value":"1"},{"type":"float","value":2.5},
      {"type":"text","value":"hi"},{"type":"blob","base64":"AAH/"},{"type":"null"},
      {"type":"integer","value":"2"}])"));
  EXPECT_TRUE(s.session->autocommit());
  EXPECT_EQ(budget_.usage.rows_written, 1);
}

TEST_F(HranaStreamTest, BatchWithConditionsRollsBackOnError) {
  Stream s = open();
  exec(s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  // What @libsql/client sends for client.batch([...], "write").
  Json batch = run(s, R"j({"type":"batch","batch":{"steps":[)j"
                      R"j({"stmt":{"sql":"BEGIN IMMEDIATE"}},)j"
                      R"j({"condition":{"type":"ok","step":0},)j"
                      R"j("stmt":{"sql":"INSERT INTO t(v) VALUES ('a')"}},)j"
                      R"j({"condition":{"type":"ok","step":1},)j"
                      R"j("stmt":{"sql":"INSERT INTO t(v) VALUES (NULL)"}},)j"
                      R"j({"condition":{"type":"ok","step":2},"stmt":{"sql":"COMMIT"}},)j"
                      R"j({"condition":{"type":"not","cond":{"type":"ok","step":3}},)j"
                      R"j("stmt":{"sql":"ROLLBACK"}}]}})j");
  ASSERT_EQ(batch["type"], "ok") << batch.dump();
  const Json& r = batch["response"]["result"];
  EXPECT_FALSE(r["step_results"][1].is_null());
  EXPECT_EQ(r["step_errors"][2]["code"], "SQLITE_CONSTRAINT");
  EXPECT_TRUE(r["step_results"][3].is_null());
  EXPECT_TRUE(r["step_errors"][3].is_null());
  EXPECT_FALSE(r["step_results"][4].is_null());
  EXPECT_EQ(count(), 0);
  EXPECT_TRUE(s.session->autocommit());
  EXPECT_EQ(budget_.usage.rows_written, 0);  // rolled back: nothing written counts
}

TEST_F(HranaStreamTest, InteractiveTransactionSpansRequestsAndHoldsAConnection) {
  Stream s = open();
  exec(s, "CREATE TABLE t(v)");
  ASSERT_EQ(exec(s, "BEGIN IMMEDIATE")["type"], "ok");
  exec(s, "INSERT INTO t VALUES (1)");
  EXPECT_FALSE(s.session->autocommit());
  EXPECT_EQ(run(s, R"({"type":"get_autocommit"})")["response"]["is_autocommit"], false);
  EXPECT_EQ(count(), 0);  // not visible to others until committed
  EXPECT_EQ(budget_.usage.rows_written, 0);
  ASSERT_EQ(exec(s, "COMMIT")["type"], "ok");
  EXPECT_EQ(count(), 1);
  EXPECT_EQ(budget_.usage.rows_written, 1);
  EXPECT_TRUE(s.session->autocommit());

  ASSERT_EQ(exec(s, "BEGIN")["type"], "ok");
  exec(s, "INSERT INTO t VALUES (2)");
  ASSERT_EQ(exec(s, "ROLLBACK")["type"], "ok");
  EXPECT_EQ(count(), 1);
  EXPECT_EQ(budget_.usage.rows_written, 1);
}

TEST_F(HranaStreamTest, AbandonedTransactionRollsBackWhenTheStreamGoes) {
  {
    Stream s = open();
    exec(s, "CREATE TABLE t(v)");
    exec(s, "BEGIN IMMEDIATE");
    exec(s, "INSERT INTO t VALUES (1)");
  }  // the stream expired: the session is destroyed
  EXPECT_EQ(count(), 0);
  // The write lock is free again.
  auto r = db_->execute("res_a", {{"INSERT INTO t VALUES (3)", Json::array()}}, false,
                        product::Limits{}, nullptr);
  EXPECT_EQ(count(), 1);
}

TEST_F(HranaStreamTest, ReadOnlySessionsCannotWriteButCanUseReadTransactions) {
  Stream w = open();
  exec(w, "CREATE TABLE t(v)");
  Stream r = open(/*read_only=*/true);
  EXPECT_EQ(exec(r, "INSERT INTO t VALUES (1)")["error"]["code"], "SQLITE_READONLY");
  EXPECT_EQ(exec(r, "BEGIN IMMEDIATE")["error"]["code"], "SQLITE_READONLY");
  ASSERT_EQ(exec(r, "BEGIN")["type"], "ok");
  EXPECT_EQ(exec(r, "SELECT count(*) FROM t")["type"], "ok");
  ASSERT_EQ(exec(r, "COMMIT")["type"], "ok");
  // libSQL's read transaction (what client.transaction("read") sends) on a writer's stream.
  ASSERT_EQ(exec(w, "BEGIN TRANSACTION READONLY")["type"], "ok");
  EXPECT_EQ(exec(w, "INSERT INTO t VALUES (1)")["error"]["code"], "SQLITE_READONLY");
  ASSERT_EQ(exec(w, "ROLLBACK")["type"], "ok");
  EXPECT_EQ(exec(w, "INSERT INTO t VALUES (1)")["type"], "ok");  // writable again
}

TEST_F(HranaStreamTest, GuardStillHolds) {
  Stream s = open();
  EXPECT_EQ(exec(s, "ATTACH 'x.db' AS x")["error"]["code"], "SQLITE_AUTH");
  EXPECT_EQ(exec(s, "CREATE TABLE temp.t(a)")["error"]["code"], "SQLITE_AUTH");
  EXPECT_EQ(exec(s, "PRAGMA journal_mode=DELETE")["error"]["code"], "SQLITE_AUTH");
  EXPECT_EQ(exec(s, "SELECT 1; SELECT 2")["error"]["code"], "SQL_INPUT_ERROR");
}

TEST_F(HranaStreamTest, StatementTimeoutAndResultLimitsApply) {
  product::Limits limits;
  limits.statement_timeout_ms = 200;
  limits.max_rows = 5;
  Stream s = open(false, limits);
  Json slow = exec(s,
                   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                   "1000000000) SELECT count(*) FROM c");
  EXPECT_EQ(slow["error"]["code"], "QUERY_TIMEOUT");
  Json many = exec(s,
                   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                   "10) SELECT x FROM c");
  EXPECT_EQ(many["error"]["code"], "RESPONSE_TOO_LARGE");
}

TEST_F(HranaStreamTest, StorageLimitHoldsInsideAClientTransaction) {
  product::Limits limits;
  limits.storage_bytes = 256 * 1024;
  Stream s = open(false, limits);
  ASSERT_EQ(exec(s, "CREATE TABLE t(b BLOB)")["type"], "ok");
  ASSERT_EQ(exec(s, "BEGIN IMMEDIATE")["type"], "ok");
  Json full = exec(s,
                   "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                   "WHERE x < 200) SELECT randomblob(4096) FROM c");
  EXPECT_EQ(full["error"]["code"], "SQLITE_FULL") << full.dump();
  exec(s, "ROLLBACK");
  EXPECT_EQ(count(), 0);
  EXPECT_EQ(budget_.usage.rows_written, 0);
}

TEST_F(HranaStreamTest, TransactionsPerDatabaseAreCapped) {
  Stream a = open(), b = open(), c = open();
  exec(a, "CREATE TABLE t(v)");
  ASSERT_EQ(exec(a, "BEGIN")["type"], "ok");
  ASSERT_EQ(exec(b, "BEGIN")["type"], "ok");
  Json third = exec(c, "BEGIN");
  EXPECT_EQ(third["error"]["code"], "TOO_MANY_TRANSACTIONS");
  EXPECT_TRUE(c.session->autocommit());
  exec(a, "COMMIT");
  EXPECT_EQ(exec(c, "BEGIN")["type"], "ok");
}

TEST_F(HranaStreamTest, DestroyDoesNotWaitForAParkedTransaction) {
  Stream s = open();
  exec(s, "CREATE TABLE t(v)");
  exec(s, "BEGIN IMMEDIATE");
  exec(s, "INSERT INTO t VALUES (1)");
  auto start = std::chrono::steady_clock::now();
  db_->destroy("res_a");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(exec(s, "SELECT 1")["error"]["code"], "NOT_FOUND");
  EXPECT_FALSE(fs::exists(db_->database_path("res_a")));
}

TEST_F(HranaStreamTest, SequenceDescribeAndStoredSql) {
  Stream s = open();
  ASSERT_EQ(
      run(s,
          R"({"type":"sequence","sql":"CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'); INSERT INTO t VALUES (2, 'y');"})")
          ["type"],
      "ok");
  EXPECT_EQ(count(), 2);
  ASSERT_EQ(
      run(s, R"({"type":"store_sql","sql_id":1,"sql":"SELECT a, b FROM t WHERE a = :a"})")["type"],
      "ok");
  EXPECT_EQ(run(s, R"({"type":"store_sql","sql_id":1,"sql":"SELECT 1"})")["error"]["code"],
            "SQL_STORE_DUPLICATE");
  Json d = run(s, R"({"type":"describe","sql_id":1})");
  ASSERT_EQ(d["type"], "ok") << d.dump();
  EXPECT_EQ(d["response"]["result"],
            val(R"({"params":[{"name":":a"}],"cols":[{"name":"a","decltype":"INTEGER"},
                {"name":"b","decltype":"TEXT"}],"is_explain":false,"is_readonly":true})"));
  Json q = run(
      s,
      R"({"type":"execute","stmt":{"sql_id":1,"named_args":[{"name":"a","value":{"type":"integer","value":"2"}}]}})");
  EXPECT_EQ(q["response"]["result"]["rows"][0][1], val(R"({"type":"text","value":"y"})"));
  run(s, R"({"type":"close_sql","sql_id":1})");
  EXPECT_EQ(run(s, R"({"type":"execute","stmt":{"sql_id":1}})")["error"]["code"], "SQL_NOT_FOUND");
  EXPECT_EQ(run(s, R"({"type":"close"})")["type"], "ok");
  EXPECT_EQ(exec(s, "SELECT 1")["error"]["code"], "STREAM_CLOSED");
}

TEST(HranaStreams, BatonsAreSingleUseBoundToTheTokenAndExpire) {
  Streams::Options options;
  options.idle = std::chrono::milliseconds(50);
  options.max_per_resource = 2;
  Streams streams(options);
  auto entry = [](const std::string& resource) {
    auto e = std::make_unique<Streams::Entry>();
    e->resource_id = resource;
    e->token_hash = "tok";
    return e;
  };
  std::string b1 = streams.put(entry("r1"));
  EXPECT_EQ(streams.take(b1, "other"), nullptr);
  auto taken = streams.take(b1, "tok");
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(streams.take(b1, "tok"), nullptr);  // one request per baton
  std::string b2 = streams.put(std::move(taken));
  EXPECT_NE(b1, b2);
  // A third stream of r1 pushes the oldest out.
  std::string b3 = streams.put(entry("r1"));
  std::string b4 = streams.put(entry("r1"));
  EXPECT_EQ(streams.take(b2, "tok"), nullptr);
  EXPECT_EQ(streams.size(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_EQ(streams.expire_idle(), 2u);
  EXPECT_EQ(streams.take(b3, "tok"), nullptr);
  EXPECT_EQ(streams.take(b4, "tok"), nullptr);
}

}  // namespace
}  // namespace wharf::api::dataplane::hrana
