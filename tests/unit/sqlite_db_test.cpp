#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "product/sqlite_db/sqlite_db.h"

namespace wharf::product {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// A query that runs for minutes unless something stops it.
constexpr char kSlowQuery[] =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT count(*) FROM c";

class SqliteDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wharf_sqlite_db_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    db_ = std::make_unique<SqliteDb>(dir_.string());
    db_->create("res_a", Limits{}, json::object());
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  std::vector<StatementResult> run(std::vector<Statement> statements, bool read_only = false,
                                   const Limits& limits = Limits{}, UsageDelta* usage = nullptr,
                                   const std::string& id = "res_a") {
    return db_->execute(id, statements, read_only, limits, usage);
  }
  StatementResult run1(const std::string& sql, json params = json::array(), bool read_only = false,
                       const Limits& limits = Limits{}) {
    return run({{sql, std::move(params)}}, read_only, limits).at(0);
  }
  // The error code execute() fails with ("" if it succeeds).
  std::string error_of(std::vector<Statement> statements, bool read_only = false,
                       const Limits& limits = Limits{}, std::string* message = nullptr) {
    try {
      run(std::move(statements), read_only, limits);
    } catch (const QueryError& e) {
      if (message) *message = e.what();
      return e.code;
    }
    return "";
  }
  std::string error_of(const std::string& sql, bool read_only = false) {
    return error_of(std::vector<Statement>{{sql}}, read_only);
  }
  int64_t count(const std::string& table) {
    return run1("SELECT count(*) FROM " + table).rows[0][0].get<int64_t>();
  }
  std::vector<std::string> files_of(const std::string& id) {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(dir_))
      if (entry.path().filename().string().rfind(id, 0) == 0)
        found.push_back(entry.path().filename().string());
    return found;
  }

  fs::path dir_;
  std::unique_ptr<SqliteDb> db_;
};

// ---------------------------------------------------------------------------------------
// Limits

TEST(Limits, ReadsCatalogKeysAndRejectsNonsense) {
  Limits l =
      Limits::from_json({{"storageBytes", 1048576}, {"statementTimeoutMs", 250.0}, {"maxRows", 7}});
  EXPECT_EQ(l.storage_bytes, 1048576);
  EXPECT_EQ(l.statement_timeout_ms, 250);
  EXPECT_EQ(l.max_rows, 7);
  EXPECT_EQ(l.max_result_bytes, Limits{}.max_result_bytes);  // default kept
  EXPECT_EQ(Limits::from_json(l.to_json()), l);
  EXPECT_EQ(Limits::from_json(nullptr), Limits{});
  EXPECT_THROW(Limits::from_json({{"maxRows", -1}}), std::invalid_argument);
  EXPECT_THROW(Limits::from_json({{"maxRows", "10"}}), std::invalid_argument);
  EXPECT_THROW(Limits::from_json({{"maxRows", 1.5}}), std::invalid_argument);
  EXPECT_THROW(Limits::from_json(json::array()), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Lifecycle

TEST_F(SqliteDbTest, CreatesARealWalDatabaseAndKeepsItOnRepeatedCreate) {
  EXPECT_TRUE(db_->exists("res_a"));
  EXPECT_TRUE(fs::exists(dir_ / "res_a.db"));
  EXPECT_EQ(db_->kind(), "sqlite");
  EXPECT_EQ(run1("PRAGMA journal_mode").rows[0][0], "wal");
  run1("CREATE TABLE t(x)");
  run1("INSERT INTO t VALUES (1)");
  db_->create("res_a", Limits{}, json::object());  // a retried provision
  EXPECT_EQ(count("t"), 1);
  EXPECT_FALSE(db_->exists("res_never"));
}

TEST_F(SqliteDbTest, ValidatesResourceIds) {
  for (std::string bad :
       std::vector<std::string>{"", "../etc", "a/b", "a.b", "a b", "x\n", std::string(129, 'a')}) {
    EXPECT_THROW(db_->create(bad, Limits{}, json::object()), std::invalid_argument) << bad;
    EXPECT_FALSE(db_->exists(bad)) << bad;
    EXPECT_THROW(db_->execute(bad, {{"SELECT 1"}}, false, Limits{}, nullptr),
                 std::invalid_argument);
  }
  db_->create("Res_0-z", Limits{}, json::object());
  EXPECT_TRUE(db_->exists("Res_0-z"));
  EXPECT_FALSE(fs::exists(dir_.parent_path() / "etc.db"));
}

TEST_F(SqliteDbTest, DestroyRemovesEveryFileAndLaterCallsAreNotFound) {
  run1("CREATE TABLE t(x)");
  run1("INSERT INTO t VALUES (1)");
  db_->set_limits("res_a", Limits{});  // writes the settings file too
  EXPECT_FALSE(files_of("res_a").empty());
  db_->destroy("res_a");
  EXPECT_TRUE(files_of("res_a").empty()) << files_of("res_a").front();
  EXPECT_FALSE(db_->exists("res_a"));
  EXPECT_EQ(error_of("SELECT 1"), "not_found");
  EXPECT_THROW(db_->repl("res_a", ".tables", false, Limits{}, nullptr, nullptr), QueryError);
  EXPECT_THROW(db_->storage_bytes("res_a"), QueryError);
  EXPECT_THROW(db_->set_limits("res_a", Limits{}), QueryError);
  db_->destroy("res_a");  // idempotent
  db_->destroy("res_never_created");
  EXPECT_TRUE(files_of("res_a").empty());
}

// ---------------------------------------------------------------------------------------
// Deployment branches (flows.md F17)
TEST_F(SqliteDbTest, ABranchIsAConsistentCopyThatThenGoesItsOwnWay) {
  EXPECT_TRUE(db_->descriptor().capabilities.branches);
  run1("CREATE TABLE t(x)");
  run1("INSERT INTO t VALUES (1), (2)");
  ResourceInfo info;
  info.id = "res_a";
  info.plan_limits = json{{"maxRows", 50}};
  // A transaction open on the resource does not show in the copy (one read snapshot).
  auto session = db_->open_session("res_a", false, Limits{});
  ResultBudget budget{1000, 1 << 20};
  session->run({"BEGIN"}, false, budget, nullptr);
  session->run({"INSERT INTO t VALUES (3)"}, false, budget, nullptr);
  EXPECT_TRUE(db_->branch(info, "res_a-br-1", CallContext{}).secrets.empty());
  session->run({"COMMIT"}, false, budget, nullptr);
  EXPECT_TRUE(db_->exists("res_a-br-1"));
  auto rows = db_->execute("res_a-br-1", {{"SELECT count(*) FROM t"}}, true, Limits{}, nullptr);
  EXPECT_EQ(rows[0].rows[0][0], 2);
  // From then on they are separate databases.
  db_->execute("res_a-br-1", {{"INSERT INTO t VALUES (10)"}}, false, Limits{}, nullptr);
  EXPECT_EQ(count("t"), 3);
  rows = db_->execute("res_a-br-1", {{"SELECT count(*) FROM t"}}, true, Limits{}, nullptr);
  EXPECT_EQ(rows[0].rows[0][0], 3);
  // Branching again keeps the branch as it is (a retried action).
  db_->branch(info, "res_a-br-1", CallContext{});
  rows = db_->execute("res_a-br-1", {{"SELECT max(x) FROM t"}}, true, Limits{}, nullptr);
  EXPECT_EQ(rows[0].rows[0][0], 10);
  EXPECT_EQ(db_->check("res_a-br-1"), "");
  EXPECT_EQ(db_->check("res_a"), "");
  // Dropping it removes every file and leaves the resource alone.
  db_->drop_branch(info, "res_a-br-1", CallContext{});
  EXPECT_FALSE(db_->exists("res_a-br-1"));
  EXPECT_TRUE(files_of("res_a-br-").empty());
  EXPECT_EQ(count("t"), 3);
  db_->drop_branch(info, "res_a-br-1", CallContext{});  // idempotent
}

TEST_F(SqliteDbTest, CheckFindsADamagedDatabaseAndBranchingAMissingOneFails) {
  ResourceInfo gone;
  gone.id = "res_gone";
  EXPECT_THROW(db_->branch(gone, "res_gone-br-2", CallContext{}), QueryError);
  EXPECT_FALSE(db_->exists("res_gone-br-2"));
  EXPECT_THROW(db_->check("res_gone"), QueryError);  // not found: no verdict
  // A file that is not a database at all.
  { std::ofstream(dir_ / "res_c.db") << std::string(8192, 'x'); }
  EXPECT_NE(db_->check("res_c"), "");
}

TEST_F(SqliteDbTest, DestroyStopsAQueryInFlightAtOnce) {
  Limits unlimited;
  unlimited.statement_timeout_ms = 0;
  std::atomic<bool> started{false};
  std::string code;
  std::thread client([&] {
    started = true;
    try {
      db_->execute("res_a", {{kSlowQuery}}, true, unlimited, nullptr);
    } catch (const QueryError& e) {
      code = e.code;
    }
  });
  while (!started) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  db_->destroy("res_a");
  auto took = std::chrono::steady_clock::now() - t0;
  client.join();
  EXPECT_EQ(code, "not_found");
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_TRUE(files_of("res_a").empty());
}

TEST_F(SqliteDbTest, SettingsSurviveARestart) {
  Limits small;
  small.storage_bytes = 64 << 10;
  db_->create("res_b", small, {{"durability", "normal"}});
  std::ifstream settings(dir_ / "res_b.settings.json");
  json saved = json::parse(settings);
  EXPECT_EQ(saved["durability"], "normal");
  EXPECT_EQ(saved["limits"]["storageBytes"], 64 << 10);

  db_ = std::make_unique<SqliteDb>(dir_.string());  // a new process, same directory
  db_->execute("res_b", {{"CREATE TABLE t(b)"}}, false, Limits{}, nullptr);
  // The per-call limits say "unlimited"; the resource's own cap still holds.
  std::string code;
  for (int i = 0; i < 100 && code.empty(); ++i) {
    try {
      db_->execute("res_b", {{"INSERT INTO t VALUES (randomblob(8000))"}}, false, Limits{},
                   nullptr);
    } catch (const QueryError& e) {
      code = e.code;
    }
  }
  EXPECT_EQ(code, "storage_limit");
}

// ---------------------------------------------------------------------------------------
// Data plane

TEST_F(SqliteDbTest, ExecutesWithPositionalAndNamedParamsAndReadsBackEveryType) {
  run1("CREATE TABLE t(id INTEGER PRIMARY KEY, i, r, s, b, n)");
  auto ins = run1("INSERT INTO t(i, r, s, b, n) VALUES (?, ?, ?, ?, ?)",
                  {42, 2.5, "héllo", {{"base64", "AAEC/w=="}}, nullptr});
  EXPECT_EQ(ins.rows_affected, 1);
  EXPECT_EQ(ins.last_insert_id, 1);
  EXPECT_TRUE(ins.columns.empty());
  auto named = run1("INSERT INTO t(i, s) VALUES (:i, @s)", {{":i", 7}, {"s", "bare key"}});
  EXPECT_EQ(named.last_insert_id, 2);
  run1("INSERT INTO t(i, s) VALUES ($i, ?2)", {true, "mixed"});  // array binds names too

  auto sel = run1("SELECT i, r, s, b, n FROM t WHERE id = ?1", {1});
  EXPECT_EQ(sel.columns, (std::vector<std::string>{"i", "r", "s", "b", "n"}));
  ASSERT_EQ(sel.rows.size(), 1u);
  EXPECT_EQ(sel.rows[0], json::parse(R"([42, 2.5, "héllo", {"base64": "AAEC/w=="}, null])"));
  EXPECT_TRUE(sel.rows[0][0].is_number_integer());
  EXPECT_EQ(sel.rows[0][1].get<double>(), 2.5);
  EXPECT_EQ(run1("SELECT i, s FROM t WHERE id = :id", {{"id", 2}}).rows[0],
            json::parse(R"([7, "bare key"])"));
  EXPECT_EQ(run1("SELECT i FROM t WHERE id = 3").rows[0][0], 1);  // true binds as 1
  EXPECT_EQ(run1("SELECT count(*) FROM t").rows_affected, 0);

  auto upd = run1("UPDATE t SET n = 0");
  EXPECT_EQ(upd.rows_affected, 3);
  EXPECT_EQ(upd.last_insert_id, 0);
  // Invalid UTF-8 stored as TEXT still comes back as valid JSON.
  EXPECT_EQ(run1("SELECT CAST(x'ff41' AS TEXT)").rows[0][0],
            "\xEF\xBF\xBD"
            "A");
}

TEST_F(SqliteDbTest, RefusesParamsThatDoNotFit) {
  run1("CREATE TABLE t(a, b)");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (?, ?)", {1}}}), "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (?, ?)", {1, 2, 3}}}),
            "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (:a, :b)", {{"a", 1}}}}),
            "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{
                {"INSERT INTO t VALUES (:a, :b)", {{"a", 1}, {"b", 2}, {"c", 3}}}}),
            "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (?, :b)", {{"b", 2}}}}),
            "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (?, ?)", {1, {1, 2}}}}),
            "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (?, ?)", {1, {{"x", 1}}}}}),
            "bad_params");
  EXPECT_EQ(error_of(std::vector<Statement>{{"INSERT INTO t VALUES (?, ?)", "nope"}}),
            "bad_params");
  EXPECT_EQ(count("t"), 0);
}

TEST_F(SqliteDbTest, BatchIsAllOrNothing) {
  run1("CREATE TABLE t(x UNIQUE)");
  std::string message;
  EXPECT_EQ(error_of({{"INSERT INTO t VALUES (1)"}, {"INSERT INTO missing VALUES (2)"}}, false,
                     Limits{}, &message),
            "sql_error");
  EXPECT_NE(message.find("statement 2"), std::string::npos) << message;
  EXPECT_NE(message.find("no such table"), std::string::npos) << message;
  EXPECT_EQ(count("t"), 0);
  EXPECT_EQ(error_of({{"INSERT INTO t VALUES (1)"}, {"INSERT INTO t VALUES (1)"}}), "sql_error");
  EXPECT_EQ(count("t"), 0);

  // A batch sees its own earlier statements (schema included) and commits them together.
  auto results = run(
      {{"CREATE TABLE u(y)"}, {"INSERT INTO u VALUES (?), (?)", {1, 2}}, {"SELECT sum(y) FROM u"}});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[1].rows_affected, 2);
  EXPECT_EQ(results[2].rows[0][0], 3);
  EXPECT_TRUE(run({}).empty());
}

TEST_F(SqliteDbTest, OneStatementPerEntry) {
  run1("CREATE TABLE t(x)");
  std::string message;
  EXPECT_EQ(error_of({{"INSERT INTO t VALUES (1); DELETE FROM t"}}, false, Limits{}, &message),
            "sql_error");
  EXPECT_NE(message.find("more than one"), std::string::npos) << message;
  EXPECT_EQ(count("t"), 0);
  EXPECT_EQ(error_of("  -- nothing here\n"), "sql_error");
  run1("INSERT INTO t VALUES (1); -- trailing comment and semicolons ;;");
  EXPECT_EQ(count("t"), 1);
}

TEST_F(SqliteDbTest, ReadOnlyCallsCannotWrite) {
  run1("CREATE TABLE t(x)");
  run1("INSERT INTO t VALUES (1)");
  run1("CREATE INDEX ix ON t(x)");
  for (const char* sql :
       {"INSERT INTO t VALUES (2)", "UPDATE t SET x = 3", "DELETE FROM t", "CREATE TABLE u(y)",
        "DROP TABLE t", "ALTER TABLE t ADD COLUMN y", "CREATE INDEX i ON t(x)", "REINDEX ix",
        "ANALYZE", "BEGIN", "COMMIT", "SAVEPOINT s", "PRAGMA user_version = 5",
        "INSERT INTO t SELECT 1 RETURNING x", "REPLACE INTO t VALUES (9)"}) {
    std::string message;
    EXPECT_EQ(error_of({{sql}}, true, Limits{}, &message), "read_only") << sql;
    EXPECT_NE(message.find("read-only"), std::string::npos) << message;
  }
  EXPECT_EQ(run1("SELECT x FROM t", json::array(), true).rows, json::parse("[[1]]"));
  EXPECT_EQ(run1("PRAGMA table_info(t)", json::array(), true).rows.size(), 1u);
  EXPECT_EQ(count("t"), 1);
  // A writer may still write on the same (pooled) connections afterwards.
  run1("INSERT INTO t VALUES (2)");
  EXPECT_EQ(count("t"), 2);
}

TEST_F(SqliteDbTest, RefusesSqlThatCouldEscapeTheDatabase) {
  std::string outside = (dir_ / "outside.db").string();
  std::vector<std::string> forbidden = {
      "ATTACH '" + outside + "' AS o",
      "ATTACH ':memory:' AS m",
      "DETACH main",
      "SELECT load_extension('/tmp/evil.so')",
      "SELECT fts3_tokenizer('simple')",
      "PRAGMA journal_mode = DELETE",
      "PRAGMA journal_mode = OFF",
      "PRAGMA max_page_count = 100000000",
      "PRAGMA writable_schema = 1",
      "PRAGMA synchronous = OFF",
      "PRAGMA foreign_keys = OFF",
      "PRAGMA query_only = 0",
      "PRAGMA database_list",
      "PRAGMA temp_store_directory = '/tmp'",
      "PRAGMA main.page_size = 512",
      "VACUUM INTO '" + outside + "'",
      "/* sneaky */ vacuum",
      "CREATE TEMP TABLE tt(x)",
      "BEGIN",
      "COMMIT",
      "SAVEPOINT s",
  };
  for (const auto& sql : forbidden) {
    std::string message;
    EXPECT_EQ(error_of({{sql}}, false, Limits{}, &message), "forbidden_sql") << sql;
    EXPECT_FALSE(message.empty());
  }
  EXPECT_FALSE(fs::exists(outside));
  // writefile/readfile are sqlite3-shell functions: if this SQLite ever has them, the guard
  // refuses them; today they do not exist at all.
  for (const char* sql :
       {"SELECT writefile('/tmp/wharf_x', 'x')", "SELECT readfile('/etc/passwd')"}) {
    std::string message;
    std::string code = error_of({{sql}}, false, Limits{}, &message);
    EXPECT_TRUE(code == "forbidden_sql" ||
                (code == "sql_error" && message.find("no such function") != std::string::npos))
        << sql << ": " << code << " " << message;
  }
  // Neither can a view or a trigger smuggle a forbidden function in.
  EXPECT_EQ(error_of("CREATE VIEW v AS SELECT load_extension('/tmp/evil.so') AS x"), "");
  EXPECT_EQ(error_of("SELECT * FROM v"), "forbidden_sql");
  EXPECT_EQ(error_of("CREATE TABLE trig(x)"), "");
  EXPECT_EQ(error_of("CREATE TRIGGER tr AFTER INSERT ON trig BEGIN SELECT "
                     "load_extension('/tmp/evil.so'); END"),
            "");
  EXPECT_EQ(error_of("INSERT INTO trig VALUES (1)"), "forbidden_sql");

  // Read-only introspection stays available, and so does the app's own user_version.
  EXPECT_EQ(run1("PRAGMA page_size").rows[0][0], 4096);
  run1("PRAGMA user_version = 3");
  EXPECT_EQ(run1("PRAGMA user_version").rows[0][0], 3);
  run1("CREATE TABLE t(x)");
  EXPECT_EQ(run1("SELECT name FROM pragma_table_info('t')").rows, json::parse(R"([["x"]])"));
  EXPECT_EQ(run1("PRAGMA journal_mode").rows[0][0], "wal");  // nothing above changed it
}

TEST_F(SqliteDbTest, SlowQueryTimesOutQuicklyAndRollsBack) {
  run1("CREATE TABLE t(x)");
  Limits fast;
  fast.statement_timeout_ms = 200;
  auto t0 = std::chrono::steady_clock::now();
  std::string message;
  EXPECT_EQ(error_of({{"INSERT INTO t VALUES (1)"}, {kSlowQuery}}, false, fast, &message),
            "timeout");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(180));
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_NE(message.find("timed out"), std::string::npos) << message;
  EXPECT_EQ(count("t"), 0);
  run1("INSERT INTO t VALUES (1)", json::array(), false, fast);  // the connection still works
  EXPECT_EQ(count("t"), 1);
}

TEST_F(SqliteDbTest, OversizedResultsAreRefusedWhole) {
  run1("CREATE TABLE t(s)");
  run1(
      "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100) INSERT INTO t "
      "SELECT printf('%.100c', 'x') FROM c");
  Limits small;
  small.max_result_bytes = 5000;
  EXPECT_EQ(error_of({{"DELETE FROM t WHERE rowid = 1"}, {"SELECT s FROM t"}}, false, small),
            "result_too_large");
  EXPECT_EQ(count("t"), 100);  // the delete was rolled back
  EXPECT_EQ(run({{"SELECT s FROM t LIMIT 10"}}, false, small)[0].rows.size(), 10u);

  Limits few;
  few.max_rows = 5;
  std::string message;
  EXPECT_EQ(error_of({{"SELECT rowid FROM t"}}, false, few, &message), "result_too_large");
  EXPECT_NE(message.find("maxRows"), std::string::npos) << message;
  // The row limit is for the whole call, across the batch.
  EXPECT_EQ(error_of({{"SELECT 1 FROM t LIMIT 3"}, {"SELECT 1 FROM t LIMIT 3"}}, false, few),
            "result_too_large");
  EXPECT_EQ(run({{"SELECT 1 FROM t LIMIT 5"}}, false, few)[0].rows.size(), 5u);
}

TEST_F(SqliteDbTest, StorageLimitStopsGrowthUntilTheLimitIsRaised) {
  Limits small;
  small.storage_bytes = 128 << 10;
  db_->set_limits("res_a", small);
  run1("CREATE TABLE t(b)");
  std::string code, message;
  int inserted = 0;
  for (; inserted < 200; ++inserted) {
    code = error_of({{"INSERT INTO t VALUES (randomblob(8000))"}}, false, small, &message);
    if (!code.empty()) break;
  }
  EXPECT_EQ(code, "storage_limit");
  EXPECT_NE(message.find("storage limit"), std::string::npos) << message;
  EXPECT_GT(inserted, 5);
  EXPECT_LT(inserted, 20);
  EXPECT_EQ(count("t"), inserted);  // the failing insert left nothing behind
  int64_t data = run1("PRAGMA page_count").rows[0][0].get<int64_t>() * 4096;
  EXPECT_LE(data, small.storage_bytes);
  EXPECT_GE(db_->storage_bytes("res_a"), data);

  Limits large;
  large.storage_bytes = 1 << 20;
  db_->set_limits("res_a", large);
  for (int i = 0; i < 10; ++i) run({{"INSERT INTO t VALUES (randomblob(8000))"}}, false, large);
  EXPECT_EQ(count("t"), inserted + 10);
  // The call's own limits can only tighten the resource's cap.
  EXPECT_EQ(error_of({{"INSERT INTO t VALUES (randomblob(8000))"}}, false, small), "storage_limit");
}

TEST_F(SqliteDbTest, ConcurrentWritersAllSucceed) {
  run1("CREATE TABLE t(thread, n)");
  constexpr int kThreads = 8;
  constexpr int kEach = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        try {
          db_->execute("res_a",
                       {{"INSERT INTO t VALUES (?, ?)", {t, i}},
                        {"UPDATE t SET n = n WHERE thread = ?", {t}},
                        {"SELECT count(*) FROM t"}},
                       false, Limits{}, nullptr);
        } catch (const std::exception& e) {
          ++failures;
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(count("t"), kThreads * kEach);
}

TEST_F(SqliteDbTest, ManyDatabasesShareABoundedPool) {
  db_ = std::make_unique<SqliteDb>(
      dir_.string(), SqliteDb::Options{.max_idle_per_database = 1, .max_idle_total = 2});
  for (int i = 0; i < 6; ++i) {
    std::string id = "res_" + std::to_string(i);
    db_->create(id, Limits{}, json::object());
    db_->execute(id, {{"CREATE TABLE t(x)"}, {"INSERT INTO t VALUES (?)", {i}}}, false, Limits{},
                 nullptr);
  }
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(
        db_->execute("res_" + std::to_string(i), {{"SELECT x FROM t"}}, true, Limits{}, nullptr)[0]
            .rows[0][0],
        i);
}

int open_fds() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Regression: create() pooled every new database's connection with no eviction, so each
// provision kept 3 file descriptors open for good.
TEST_F(SqliteDbTest, CreatingThousandsOfDatabasesKeepsTheIdleCap) {
  db_ = std::make_unique<SqliteDb>(
      dir_.string(), SqliteDb::Options{.max_idle_per_database = 2, .max_idle_total = 8});
  int before = open_fds();
  for (int i = 0; i < 1000; ++i) {
    db_->create("res_" + std::to_string(i), Limits{}, json::object());
    ASSERT_LE(db_->idle_connections(), 8u) << "after create #" << i;
  }
  for (int i = 0; i < 1000; i += 7)
    db_->execute("res_" + std::to_string(i), {{"SELECT 1"}}, true, Limits{}, nullptr);
  EXPECT_LE(db_->idle_connections(), 8u);
  // 8 idle connections hold at most 3 descriptors each (database, -wal, -shm).
  EXPECT_LE(open_fds() - before, 8 * 3);
  db_->destroy("res_7");
  EXPECT_LE(db_->idle_connections(), 8u);
}

// A database's idle connections that no call took for a whole period are closed by
// release_memory, all but one; those a call needed stay.
TEST_F(SqliteDbTest, IdleConnectionsNoCallNeededForAPeriodAreClosed) {
  db_ = std::make_unique<SqliteDb>(
      dir_.string(), SqliteDb::Options{.max_idle_per_database = 4,
                                       .idle_close_after = std::chrono::milliseconds(0)});
  db_->create("res_p", Limits{}, json::object());
  // Slow reads at once: as many connections as overlapped, all idle afterwards. Started
  // together, rounds repeated until at least two overlapped (a loaded machine may serialise
  // one round).
  size_t idle = 0;
  for (int round = 0; round < 20 && idle < 2; ++round) {
    std::atomic<int> ready{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([this, &ready] {
        ++ready;
        while (ready < 4) std::this_thread::yield();
        db_->execute("res_p",
                     {{"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                       "300000) SELECT count(*) FROM c"}},
                     true, Limits{}, nullptr);
      });
    for (auto& t : ts) t.join();
    idle = db_->idle_connections();
  }
  ASSERT_GE(idle, 2u) << "the reads did not overlap";
  db_->release_memory();  // a period starts (and the page caches are dropped)
  EXPECT_EQ(db_->idle_connections(), idle);
  db_->execute("res_p", {{"SELECT 1"}}, true, Limits{}, nullptr);  // one is needed
  int64_t before = sqlite3_memory_used();
  db_->release_memory();
  EXPECT_EQ(db_->idle_connections(), 1u);
  // Each connection closed gives back its own memory (schema, statements, lookaside); its
  // descriptors wait in SQLite for the next connection to that file (POSIX locks are per
  // process), so they are not what falls.
  EXPECT_LT(sqlite3_memory_used(), before - static_cast<int64_t>(idle - 1) * 8 * 1024);
  // The one kept still serves.
  db_->execute("res_p", {{"SELECT 1"}}, true, Limits{}, nullptr);
  EXPECT_EQ(db_->idle_connections(), 1u);
}

// Regression: `temp.` spelled as a schema name passed the guard (only CREATE TEMP was
// refused) and the objects lived on the pooled connection, outside the storage limit.
TEST_F(SqliteDbTest, EveryActionOnTheTempSchemaIsRefused) {
  run1("CREATE TABLE t(a)");
  for (const char* sql :
       {"CREATE TABLE temp.big(a)", "CREATE TABLE Temp.big AS SELECT 1", "CREATE TEMP TABLE big(a)",
        "CREATE TRIGGER temp.tr AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE VIEW temp.v AS SELECT 1", "SELECT * FROM temp.sqlite_master",
        "SELECT * FROM sqlite_temp_master", "PRAGMA temp.page_count"}) {
    std::string message;
    EXPECT_EQ(error_of({{sql}}, false, Limits{}, &message), error_code::kForbiddenSql) << sql;
  }
  // Naming main objects through temp finds nothing there: refused before the guard is asked.
  EXPECT_NE(error_of("CREATE INDEX temp.i ON t(a)"), "");
  EXPECT_NE(error_of("DROP TABLE temp.t"), "");
  EXPECT_EQ(run1("SELECT count(*) FROM sqlite_master").rows[0][0], 1);
}

// Regression: a single engine step (building a 60 MB value, sorting huge blobs) ran for
// seconds past the statement timeout and used gigabytes.
TEST_F(SqliteDbTest, OneStepCannotBuildAHugeValue) {
  std::string message;
  EXPECT_EQ(error_of({{"SELECT length(randomblob(60000000))"}}, true, Limits{}, &message),
            error_code::kSqlError);
  EXPECT_NE(message.find("exceed"), std::string::npos) << message;
  EXPECT_EQ(error_of({{"SELECT length(printf('%.*c', 1000000000, 'x'))"}}, true, Limits{}),
            error_code::kSqlError);
  EXPECT_EQ(error_of({{"SELECT length(zeroblob(100000000))"}}, true, Limits{}),
            error_code::kSqlError);
  EXPECT_EQ(error_of({{"SELECT format('%*d', 100000000, 1)"}}, true, Limits{}),
            error_code::kSqlError);
  // printf keeps the built-in's behaviour for everything else.
  auto row =
      run1(
          "SELECT printf('%5.2f|%-4s|%d|%c|%.3c|%q|%%', 3.14159, 'ab', 42, 'xyz', 'z', 'it''s'), "
          "format('%s-%s', 1, NULL), printf(NULL), printf('%.*c', 3, 'k')")
          .rows[0];
  EXPECT_EQ(row[0], " 3.14|ab  |42|x|zzz|it''s|%");
  EXPECT_EQ(row[1], "1-");
  EXPECT_TRUE(row[2].is_null());
  EXPECT_EQ(row[3], "kkk");
}

TEST_F(SqliteDbTest, MemoryBudgetBoundsSortsAndTemporaryData) {
  Limits limits;
  limits.max_memory_bytes = 32 << 20;
  std::string message;
  EXPECT_EQ(error_of({{"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                       "40) SELECT x FROM c ORDER BY randomblob(8000000)"}},
                     true, limits, &message),
            error_code::kMemoryLimit);
  EXPECT_NE(message.find("maxMemoryBytes"), std::string::npos) << message;
  // The connection is usable again (or replaced) and small sorts are fine.
  EXPECT_EQ(run1("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) "
                 "SELECT count(*) FROM (SELECT x FROM c ORDER BY random())",
                 json::array(), true, limits)
                .rows[0][0],
            1000);
  // The budget is per call: with it lifted the same sort fits.
  limits.max_memory_bytes = 0;
  EXPECT_EQ(error_of({{"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                       "4) SELECT x FROM c ORDER BY randomblob(8000000)"}},
                     true, limits),
            "");
}

TEST_F(SqliteDbTest, ALateResultIsATimeoutNotAnAnswer) {
  Limits limits;
  limits.statement_timeout_ms = 1;
  // Many cheap steps that together outlast 1 ms: stopped by the progress handler or, for the
  // last step, by the check after it; never answered.
  EXPECT_EQ(error_of({{"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                       "2000000) SELECT count(*) FROM c"}},
                     true, limits),
            error_code::kTimeout);
}

TEST_F(SqliteDbTest, UsageCountsQueriesRowsReadAndCommittedWrites) {
  UsageDelta usage;
  run({{"CREATE TABLE t(x)"}, {"INSERT INTO t VALUES (1), (2), (3)"}}, false, Limits{}, &usage);
  EXPECT_EQ(usage.queries, 2);
  EXPECT_EQ(usage.rows_written, 3);
  EXPECT_EQ(usage.rows_read, 0);
  run({{"SELECT x FROM t"}, {"UPDATE t SET x = x + 1 WHERE x > 1"}}, false, Limits{}, &usage);
  EXPECT_EQ(usage.queries, 4);
  EXPECT_EQ(usage.rows_read, 3);
  EXPECT_EQ(usage.rows_written, 5);

  UsageDelta failed;
  EXPECT_THROW(
      run({{"INSERT INTO t VALUES (4)"}, {"SELECT * FROM nope"}}, false, Limits{}, &failed),
      QueryError);
  EXPECT_EQ(failed.rows_written, 0);  // rolled back, not billed
  EXPECT_EQ(failed.rows_read, 0);
  EXPECT_EQ(failed.queries, 1);
}

// ---------------------------------------------------------------------------------------
// REPL

json text_of(const json& block) {
  json out = json::array();
  for (const auto& child : block.at("children")) out.push_back(child.at("text"));
  return out;
}

class SqliteReplTest : public SqliteDbTest {
 protected:
  json repl(const std::string& input, bool read_only = false, const Limits& limits = Limits{},
            UsageDelta* usage = nullptr) {
    json streamed = json::array();
    json blocks = db_->repl(
        "res_a", input, read_only, limits,
        [&streamed](const json& block) { streamed.push_back(block); }, usage);
    EXPECT_EQ(streamed, blocks);  // every block is emitted, in order
    for (const auto& block : blocks) {
      EXPECT_TRUE(block["type"] == "paragraph" || block["type"] == "table") << block;
    }
    return blocks;
  }
  static bool is_error(const json& block) {
    return block["type"] == "paragraph" && block["children"][0].value("color", "") == "#ff0000";
  }
};

TEST_F(SqliteReplTest, TablesSchemaSelectAndInsert) {
  EXPECT_EQ(text_of(repl(".tables").at(0)), json::array({"No tables."}));
  auto blocks = repl(
      "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);\n"
      "INSERT INTO people(name) VALUES ('ada'), (NULL);\n"
      "SELECT id, name FROM people ORDER BY id;");
  ASSERT_EQ(blocks.size(), 3u) << blocks.dump();
  EXPECT_EQ(text_of(blocks[0]), json::array({"0 rows affected"}));
  EXPECT_EQ(text_of(blocks[1]), json::array({"2 rows affected"}));
  const json& table = blocks[2];
  EXPECT_EQ(table["type"], "table");
  EXPECT_EQ(table["header"][0]["text"], "id");
  EXPECT_EQ(table["header"][1]["text"], "name");
  ASSERT_EQ(table["rows"].size(), 2u);
  EXPECT_EQ(table["rows"][0][0], json({{"type", "text"}, {"text", "1"}}));
  EXPECT_EQ(table["rows"][0][1]["text"], "ada");
  EXPECT_EQ(table["rows"][1][1], json({{"type", "text"}, {"text", "NULL"}, {"color", "#888"}}));

  auto tables = repl(".tables");
  ASSERT_EQ(tables.size(), 1u);
  EXPECT_EQ(tables[0]["type"], "table");
  EXPECT_EQ(tables[0]["rows"][0][0]["text"], "people");

  auto schema = repl(".schema people");
  ASSERT_EQ(schema.size(), 1u);
  EXPECT_EQ(text_of(schema[0])[0], "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);");
  EXPECT_TRUE(is_error(repl(".schema nope").at(0)));
  EXPECT_EQ(repl(".schema").size(), 1u);
  EXPECT_EQ(repl(".schema people extra words").size(), 1u);

  auto mixed = repl(".tables peo%\nSELECT 1 AS one;\n.help");
  EXPECT_EQ(mixed[0]["rows"][0][0]["text"], "people");
  EXPECT_EQ(mixed[1]["header"][0]["text"], "one");
  EXPECT_GE(mixed.size(), 4u);
}

TEST_F(SqliteReplTest, ErrorsAreRedParagraphsAndStopTheInput) {
  auto blocks = repl("CREATE TABLE t(x); SELEC 1; INSERT INTO t VALUES (1);");
  ASSERT_EQ(blocks.size(), 2u) << blocks.dump();
  EXPECT_TRUE(is_error(blocks[1]));
  EXPECT_NE(text_of(blocks[1])[0].get<std::string>().find("Error: "), std::string::npos);
  EXPECT_EQ(count("t"), 0);  // the statement after the error did not run

  auto unknown = repl(".frobnicate");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_TRUE(is_error(unknown[0]));
  EXPECT_TRUE(is_error(repl("ATTACH '/tmp/x.db' AS x").at(0)));
  EXPECT_TRUE(is_error(repl("SELECT * FROM missing").at(0)));
  EXPECT_FALSE(repl("").empty());  // a hint, not an empty reply
  EXPECT_THROW(db_->repl("res_missing", "SELECT 1", false, Limits{}, nullptr, nullptr), QueryError);
}

TEST_F(SqliteReplTest, ReadOnlyRefusesWrites) {
  repl("CREATE TABLE t(x); INSERT INTO t VALUES (1);");
  for (const char* sql :
       {"INSERT INTO t VALUES (2)", "DROP TABLE t", "CREATE TABLE u(y)", "UPDATE t SET x = 5"}) {
    auto blocks = repl(sql, true);
    ASSERT_EQ(blocks.size(), 1u);
    EXPECT_TRUE(is_error(blocks[0])) << sql;
    std::string message = text_of(blocks[0])[0];
    EXPECT_NE(message.find("read-only: "), std::string::npos) << message;
    EXPECT_NE(message.find("is not allowed"), std::string::npos) << message;
  }
  EXPECT_EQ(repl("SELECT x FROM t", true).at(0)["rows"][0][0]["text"], "1");
  EXPECT_EQ(repl(".tables", true).at(0)["type"], "table");
  EXPECT_EQ(count("t"), 1);
}

TEST_F(SqliteReplTest, LargeResultsAreCutAndSlowOnesStopped) {
  repl(
      "CREATE TABLE t(x); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < "
      "12) INSERT INTO t SELECT n FROM c;");
  Limits few;
  few.max_rows = 5;
  UsageDelta usage;
  auto blocks = repl("SELECT x FROM t", false, few, &usage);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0]["rows"].size(), 5u);
  EXPECT_NE(text_of(blocks[1])[0].get<std::string>().find("7 more rows not shown"),
            std::string::npos)
      << blocks[1];
  EXPECT_EQ(usage.rows_read, 5);
  EXPECT_EQ(usage.queries, 1);

  Limits fast;
  fast.statement_timeout_ms = 200;
  auto t0 = std::chrono::steady_clock::now();
  auto slow = repl(kSlowQuery, false, fast);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_TRUE(is_error(slow[0]));
  EXPECT_NE(text_of(slow[0])[0].get<std::string>().find("timed out"), std::string::npos);
}

}  // namespace
}  // namespace wharf::product
