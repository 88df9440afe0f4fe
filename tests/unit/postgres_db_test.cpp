// The `postgres` product kind against a real PostgreSQL server: scripts/pg-temp.sh starts a
// throwaway cluster once for the suite (skipped when the server binaries are not installed).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "product/postgres_db/postgres_db.h"
#include "product/registry.h"

namespace wharf::product {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const char* const kSecretNames[] = {"DATABASE_URL",
                                    "DATABASE_URL_UNPOOLED",
                                    "DATABASE_READONLY_URL",
                                    "PGHOST",
                                    "PGPORT",
                                    "PGUSER",
                                    "PGPASSWORD",
                                    "PGDATABASE"};

fs::path source_dir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

// Runs a shell command; its stdout, and its exit status in *status.
std::string shell(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    *status = -1;
    return out;
  }
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  int rc = pclose(pipe);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;

// A client connection; null (and the message in *error) when the login fails.
PgConn connect(const std::string& url, std::string* error = nullptr) {
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"5", url.c_str(), nullptr};
  PgConn c(PQconnectdbParams(keys, values, 1));
  if (PQstatus(c.get()) != CONNECTION_OK) {
    if (error) *error = PQerrorMessage(c.get());
    return nullptr;
  }
  return c;
}

// "" when `sql` succeeds, else the error message.
std::string exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType status = PQresultStatus(r);
  std::string error = (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
                          ? ""
                          : std::string("failed: ") + PQerrorMessage(c);
  PQclear(r);
  return error;
}

// The first value `sql` returns ("<error: …>" when it fails).
std::string value(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  std::string out;
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    out = std::string("<error: ") + PQerrorMessage(c) + ">";
  else if (PQntuples(r) > 0)
    out = PQgetvalue(r, 0, 0);
  PQclear(r);
  return out;
}

std::string secret(const json& secrets, const std::string& name) {
  for (const auto& s : secrets)
    if (s.at("name") == name) return s.at("value").get<std::string>();
  ADD_FAILURE() << "no secret " << name << " in " << secrets.dump();
  return "";
}

// The text of a block (a paragraph's texts joined).
std::string block_text(const json& block) {
  std::string out;
  if (block.contains("children"))
    for (const auto& c : block["children"]) out += c.value("text", "");
  return out;
}

bool is_error(const json& block) {
  return block.value("type", "") == "paragraph" && block_text(block).rfind("Error: ", 0) == 0 &&
         block["children"][0].value("color", "") == "#ff0000";
}

class PostgresDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("wharf_pg_test_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::path script = source_dir() / "scripts" / "pg-temp.sh";
    if (!fs::exists(script)) {
      skip_ = new std::string("scripts/pg-temp.sh not found at " + script.string());
      return;
    }
    int status = 0;
    std::string out =
        shell("'" + script.string() + "' start '" + dir_->string() + "' 2>/dev/null", &status);
    if (status == 3) {
      skip_ = new std::string("PostgreSQL server binaries are not installed");
      return;
    }
    if (status != 0) {
      std::string log;
      int ignored = 0;
      log = shell("cat '" + dir_->string() + "'/*.log 2>&1", &ignored);
      failure_ =
          new std::string("pg-temp.sh start failed (" + std::to_string(status) + "): " + out + log);
      return;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    url_ =
        new std::string(out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1));
  }

  static void TearDownTestSuite() {
    if (url_) {
      int status = 0;
      shell("'" + (source_dir() / "scripts" / "pg-temp.sh").string() + "' stop '" + dir_->string() +
                "' >/dev/null 2>&1",
            &status);
    }
    if (dir_) fs::remove_all(*dir_);
    delete dir_;
    delete url_;
    delete skip_;
    delete failure_;
    dir_ = nullptr;
    url_ = skip_ = failure_ = nullptr;
  }

  void SetUp() override {
    if (skip_) GTEST_SKIP() << *skip_;
    ASSERT_EQ(failure_, nullptr) << *failure_;
    db_ = make();
  }

  static std::unique_ptr<PostgresDb> make() {
    PostgresDb::Config config;
    config.admin_url = *url_;
    return std::make_unique<PostgresDb>(config);
  }

  static ResourceInfo info(const std::string& id, json limits = json::object()) {
    ResourceInfo r;
    r.id = id;
    r.installation_id = "icfg_test";
    r.product_id = "pg";
    r.name = id;
    r.plan_id = "free";
    r.plan_limits = std::move(limits);
    return r;
  }

  json provision(const std::string& id, json limits = json::object()) {
    ProductReply reply = db_->provision(info(id, std::move(limits)), CallContext{});
    EXPECT_FALSE(reply.pending);
    return reply.secrets;
  }

  // A query as the admin.
  static std::string admin_value(const std::string& sql) {
    PgConn c = connect(*url_);
    if (!c) return "<no admin connection>";
    return value(c.get(), sql);
  }

  static fs::path* dir_;
  static std::string* url_;
  static std::string* skip_;
  static std::string* failure_;
  std::unique_ptr<PostgresDb> db_;
};

fs::path* PostgresDbTest::dir_ = nullptr;
std::string* PostgresDbTest::url_ = nullptr;
std::string* PostgresDbTest::skip_ = nullptr;
std::string* PostgresDbTest::failure_ = nullptr;

TEST_F(PostgresDbTest, ProvisionReturnsEightSecretsThatWork) {
  json secrets = provision("res_prov");
  ASSERT_EQ(secrets.size(), 8u) << secrets.dump();
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(secrets[i]["name"], kSecretNames[i]);
    EXPECT_EQ(secrets[i].size(), 2u);  // {name, value}
    EXPECT_FALSE(secrets[i]["value"].get<std::string>().empty());
  }
  EXPECT_EQ(secret(secrets, "PGDATABASE"), "wharf_res_prov");
  EXPECT_EQ(secret(secrets, "PGHOST"), "127.0.0.1");
  EXPECT_EQ(secret(secrets, "DATABASE_URL"), secret(secrets, "DATABASE_URL_UNPOOLED"));
  EXPECT_EQ(secret(secrets, "DATABASE_URL").rfind("postgresql://wharf_res_prov-a:", 0), 0u);

  std::string error;
  PgConn c = connect(secret(secrets, "DATABASE_URL"), &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(exec(c.get(), "CREATE TABLE notes (id serial PRIMARY KEY, body text)"), "");
  EXPECT_EQ(exec(c.get(), "INSERT INTO notes (body) VALUES ('hello'), ('world')"), "");
  EXPECT_EQ(value(c.get(), "SELECT string_agg(body, ' ' ORDER BY id) FROM notes"), "hello world");
  // Objects belong to the resource's owner role, whichever login made them.
  EXPECT_EQ(
      value(c.get(), "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'notes'"),
      "wharf_res_prov-owner");
  EXPECT_EQ(value(c.get(), "SELECT session_user"), "wharf_res_prov-a");

  // The PG* variables make the same login.
  std::string keywords =
      "host=" + secret(secrets, "PGHOST") + " port=" + secret(secrets, "PGPORT") +
      " user=" + secret(secrets, "PGUSER") + " password=" + secret(secrets, "PGPASSWORD") +
      " dbname=" + secret(secrets, "PGDATABASE");
  PgConn k = connect(keywords, &error);
  ASSERT_TRUE(k) << error;
  EXPECT_EQ(value(k.get(), "SELECT count(*) FROM notes"), "2");

  // Nobody else may connect to the database: not PUBLIC, not another resource's roles.
  json other = provision("res_prov_other");
  std::string cross = secret(other, "DATABASE_URL");
  cross.replace(cross.rfind("/wharf_res_prov_other"), std::string::npos, "/wharf_res_prov");
  EXPECT_FALSE(connect(cross, &error));
  EXPECT_NE(error.find("permission denied"), std::string::npos) << error;
  EXPECT_TRUE(db_->exists("res_prov"));
  EXPECT_FALSE(db_->exists("res_never"));
  EXPECT_FALSE(db_->exists("bad id!"));
}

TEST_F(PostgresDbTest, ReadOnlyUrlReadsButCannotWrite) {
  json secrets = provision("res_ro");
  std::string error;
  PgConn rw = connect(secret(secrets, "DATABASE_URL"), &error);
  ASSERT_TRUE(rw) << error;
  ASSERT_EQ(exec(rw.get(), "CREATE TABLE items (id bigserial PRIMARY KEY, name text)"), "");
  ASSERT_EQ(exec(rw.get(), "INSERT INTO items (name) VALUES ('a'), ('b')"), "");
  ASSERT_EQ(exec(rw.get(),
                 "CREATE SCHEMA app; CREATE TABLE app.t (x int); INSERT INTO app.t "
                 "VALUES (7)"),
            "");
  // Made by the login itself (not as the owner): still readable by the read-only role.
  ASSERT_EQ(exec(rw.get(), "RESET ROLE; CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)"),
            "");

  PgConn ro = connect(secret(secrets, "DATABASE_READONLY_URL"), &error);
  ASSERT_TRUE(ro) << error;
  EXPECT_EQ(value(ro.get(), "SELECT count(*) FROM items"), "2");
  EXPECT_EQ(value(ro.get(), "SELECT x FROM app.t"), "7");
  EXPECT_EQ(value(ro.get(), "SELECT x FROM mine"), "1");
  EXPECT_NE(exec(ro.get(), "INSERT INTO items (name) VALUES ('c')"), "");
  // Lifting the session's read-only default does not help: no privilege to write.
  EXPECT_NE(exec(ro.get(),
                 "SET default_transaction_read_only = off; INSERT INTO items (name) VALUES ('c')"),
            "");
  EXPECT_NE(exec(ro.get(), "SET default_transaction_read_only = off; CREATE TABLE x (a int)"), "");
  EXPECT_NE(exec(ro.get(), "SET default_transaction_read_only = off; DELETE FROM items"), "");
  EXPECT_EQ(value(rw.get(), "SELECT count(*) FROM items"), "2");
}

TEST_F(PostgresDbTest, ProvisionTwiceIsIdempotent) {
  json first = provision("res_twice", {{"statementTimeoutMs", 3000}});
  std::string error;
  {
    PgConn c = connect(secret(first, "DATABASE_URL"), &error);
    ASSERT_TRUE(c) << error;
    ASSERT_EQ(exec(c.get(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"), "");
  }
  json second = provision("res_twice", {{"statementTimeoutMs", 3000}});
  ASSERT_EQ(second.size(), 8u);
  // Same login, new password: the data is kept, the previous password no longer works.
  EXPECT_EQ(secret(second, "PGUSER"), secret(first, "PGUSER"));
  EXPECT_NE(secret(second, "PGPASSWORD"), secret(first, "PGPASSWORD"));
  PgConn c = connect(secret(second, "DATABASE_URL"), &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(value(c.get(), "SELECT x FROM kept"), "42");
  EXPECT_FALSE(connect(secret(first, "DATABASE_URL")));
  PgConn ro = connect(secret(second, "DATABASE_READONLY_URL"), &error);
  ASSERT_TRUE(ro) << error;
  EXPECT_EQ(value(ro.get(), "SELECT x FROM kept"), "42");

  auto stored = db_->stored_resources();
  EXPECT_NE(std::find(stored.begin(), stored.end(), "res_twice"), stored.end());
}

TEST_F(PostgresDbTest, ConcurrentProvisionsOfOneResourceConverge) {
  std::vector<std::thread> threads;
  std::vector<json> replies(4);
  std::atomic<int> failures{0};
  for (size_t i = 0; i < replies.size(); ++i)
    threads.emplace_back([this, i, &replies, &failures] {
      try {
        replies[i] =
            db_->provision(info(i % 2 ? "res_race_a" : "res_race_b"), CallContext{}).secrets;
      } catch (const std::exception& e) {
        ++failures;
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  // The last provision of each resource wins; the one that finished last has working secrets.
  json again = provision("res_race_a");
  std::string error;
  EXPECT_TRUE(connect(secret(again, "DATABASE_URL"), &error)) << error;
}

TEST_F(PostgresDbTest, PlanLimitsApply) {
  json secrets = provision("res_limits", {{"statementTimeoutMs", 1234}, {"maxConnections", 2}});
  std::string error;
  std::vector<PgConn> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(connect(secret(secrets, "DATABASE_URL"), &error));
    ASSERT_TRUE(open.back()) << error;
  }
  EXPECT_EQ(value(open[0].get(), "SHOW statement_timeout"), "1234ms");
  // The third connection is over the plan's limit.
  EXPECT_FALSE(connect(secret(secrets, "DATABASE_URL"), &error));
  EXPECT_NE(error.find("too many connections"), std::string::npos) << error;
  EXPECT_NE(exec(open[1].get(), "SELECT pg_sleep(2)"), "");  // cancelled at 1.234 s
  open.clear();

  ResourceChange change;
  change.plan_changed = true;
  db_->change(info("res_limits", {{"statementTimeoutMs", 2000}}), change, CallContext{});
  PgConn c = connect(secret(secrets, "DATABASE_URL"), &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(value(c.get(), "SHOW statement_timeout"), "2s");
  EXPECT_EQ(admin_value("SELECT datconnlimit FROM pg_database WHERE datname = 'wharf_res_limits'"),
            "20");  // the kind's default without maxConnections

  try {
    db_->provision(info("res_limits_bad", {{"maxConnections", "many"}}), CallContext{});
    ADD_FAILURE() << "a bad plan was accepted";
  } catch (const ProductRefused& e) {
    EXPECT_EQ(e.status, 422);
    EXPECT_EQ(e.code, "invalid_plan");
  }
  EXPECT_FALSE(db_->exists("res_limits_bad"));
}

TEST_F(PostgresDbTest, SuspendBlocksLoginsAndEndsSessionsResumeRestores) {
  json secrets = provision("res_suspend");
  std::string error;
  PgConn open = connect(secret(secrets, "DATABASE_URL"), &error);
  ASSERT_TRUE(open) << error;
  ASSERT_EQ(exec(open.get(), "CREATE TABLE t (x int)"), "");

  ResourceChange suspend;
  suspend.status = "suspended";
  db_->change(info("res_suspend"), suspend, CallContext{});
  EXPECT_NE(exec(open.get(), "SELECT 1"), "");  // the session was terminated
  EXPECT_FALSE(connect(secret(secrets, "DATABASE_URL"), &error));
  EXPECT_FALSE(connect(secret(secrets, "DATABASE_READONLY_URL")));
  json blocks = db_->repl("res_suspend", "SELECT 1", false, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_TRUE(is_error(blocks[0])) << blocks.dump();
  // Still measurable while suspended, and a repeated provision keeps it suspended.
  EXPECT_GT(db_->storage_bytes("res_suspend"), 0);
  json again = provision("res_suspend");
  EXPECT_FALSE(connect(secret(again, "DATABASE_URL")));

  ResourceChange resume;
  resume.status = "resumed";
  db_->change(info("res_suspend"), resume, CallContext{});
  PgConn c = connect(secret(again, "DATABASE_URL"), &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(value(c.get(), "SELECT count(*) FROM t"), "0");

  ResourceChange rename;
  rename.name = "new name";
  EXPECT_NO_THROW(db_->change(info("res_suspend"), rename, CallContext{}));
}

TEST_F(PostgresDbTest, RotationKeepsOldSecretsUntilTheyExpire) {
  json first = provision("res_rotate");
  std::string error;
  PgConn c1 = connect(secret(first, "DATABASE_URL"), &error);
  ASSERT_TRUE(c1) << error;
  ASSERT_EQ(exec(c1.get(), "CREATE TABLE shared (x int); INSERT INTO shared VALUES (1)"), "");

  ProductReply reply = db_->rotate_secrets(info("res_rotate"), "test", 2, CallContext{});
  json second = reply.secrets;
  ASSERT_EQ(second.size(), 8u);
  EXPECT_NE(secret(second, "PGUSER"), secret(first, "PGUSER"));
  EXPECT_EQ(secret(second, "PGUSER"), "wharf_res_rotate-b");

  // Both work for now; the new login has full rights on what the old one made.
  EXPECT_TRUE(connect(secret(first, "DATABASE_URL"), &error)) << error;
  EXPECT_TRUE(connect(secret(first, "DATABASE_READONLY_URL"), &error)) << error;
  PgConn c2 = connect(secret(second, "DATABASE_URL"), &error);
  ASSERT_TRUE(c2) << error;
  EXPECT_EQ(exec(c2.get(), "INSERT INTO shared VALUES (2); ALTER TABLE shared ADD COLUMN y int"),
            "");
  PgConn r2 = connect(secret(second, "DATABASE_READONLY_URL"), &error);
  ASSERT_TRUE(r2) << error;
  EXPECT_EQ(value(r2.get(), "SELECT count(*) FROM shared"), "2");

  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_FALSE(connect(secret(first, "DATABASE_URL"), &error));
  EXPECT_FALSE(connect(secret(first, "DATABASE_READONLY_URL")));
  EXPECT_TRUE(connect(secret(second, "DATABASE_URL"), &error)) << error;
  // A session opened before the expiry lasts until the next usage sample ends it.
  EXPECT_EQ(value(c1.get(), "SELECT 1"), "1");
  db_->sample_usage("res_rotate", [](const std::string&, int64_t) {});
  EXPECT_NE(exec(c1.get(), "SELECT 1"), "");
  EXPECT_EQ(value(c2.get(), "SELECT count(*) FROM shared"), "2");
}

TEST_F(PostgresDbTest, RotationWithoutDelayEndsTheOldLoginNow) {
  json first = provision("res_rotate0");
  std::string error;
  PgConn c1 = connect(secret(first, "DATABASE_URL"), &error);
  ASSERT_TRUE(c1) << error;
  json second = db_->rotate_secrets(info("res_rotate0"), "leak", 0, CallContext{}).secrets;
  EXPECT_NE(exec(c1.get(), "SELECT 1"), "");  // terminated
  EXPECT_FALSE(connect(secret(first, "DATABASE_URL"), &error));
  EXPECT_TRUE(connect(secret(second, "DATABASE_URL"), &error)) << error;
  // And back to the first pair, with a new password.
  json third = db_->rotate_secrets(info("res_rotate0"), "again", 0, CallContext{}).secrets;
  EXPECT_EQ(secret(third, "PGUSER"), secret(first, "PGUSER"));
  EXPECT_FALSE(connect(secret(second, "DATABASE_URL")));
  EXPECT_FALSE(connect(secret(first, "DATABASE_URL")));
  EXPECT_TRUE(connect(secret(third, "DATABASE_URL"), &error)) << error;

  // A new instance (a restart) knows which pair is active.
  auto restarted = make();
  json fourth = restarted->rotate_secrets(info("res_rotate0"), "restart", 0, CallContext{}).secrets;
  EXPECT_EQ(secret(fourth, "PGUSER"), secret(second, "PGUSER"));
  EXPECT_TRUE(connect(secret(fourth, "DATABASE_URL"), &error)) << error;
}

TEST_F(PostgresDbTest, RemoveDropsDatabaseAndRolesAndRepeats) {
  json secrets = provision("res_remove");
  std::string error;
  PgConn open = connect(secret(secrets, "DATABASE_URL"), &error);
  ASSERT_TRUE(open) << error;
  db_->remove(info("res_remove"), CallContext{});
  EXPECT_NE(exec(open.get(), "SELECT 1"), "");
  EXPECT_FALSE(db_->exists("res_remove"));
  EXPECT_EQ(
      admin_value("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'wharf\\_res\\_remove-%'"),
      "0");
  EXPECT_EQ(admin_value("SELECT count(*) FROM pg_database WHERE datname = 'wharf_res_remove'"),
            "0");
  auto stored = db_->stored_resources();
  EXPECT_EQ(std::find(stored.begin(), stored.end(), "res_remove"), stored.end());
  EXPECT_NO_THROW(db_->remove(info("res_remove"), CallContext{}));
  EXPECT_NO_THROW(db_->destroy("res_remove"));
  EXPECT_EQ(db_->storage_bytes("res_remove"), 0);

  try {
    db_->rotate_secrets(info("res_remove"), "x", 0, CallContext{});
    ADD_FAILURE() << "rotated a removed resource";
  } catch (const ProductRefused& e) {
    EXPECT_EQ(e.status, 404);
  }
  ResourceChange suspend;
  suspend.status = "suspended";
  EXPECT_THROW(db_->change(info("res_remove"), suspend, CallContext{}), ProductRefused);
  EXPECT_THROW(db_->repl("res_remove", "SELECT 1", false, Limits{}, nullptr, nullptr), QueryError);
  int calls = 0;
  db_->sample_usage("res_remove", [&calls](const std::string&, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);

  // Provisioned again from nothing.
  json again = provision("res_remove");
  EXPECT_TRUE(connect(secret(again, "DATABASE_URL"), &error)) << error;
  db_->destroy("res_remove");
  EXPECT_FALSE(db_->exists("res_remove"));
}

TEST_F(PostgresDbTest, ReplRendersTablesAndErrors) {
  json secrets = provision("res_repl");
  std::vector<json> emitted;
  json blocks = db_->repl(
      "res_repl",
      "CREATE TABLE t (a int, b text);\nINSERT INTO t VALUES (1, 'x'), (2, NULL);\n"
      "SELECT a, b FROM t ORDER BY a;",
      false, Limits{}, [&emitted](const json& b) { emitted.push_back(b); }, nullptr);
  ASSERT_EQ(blocks.size(), 3u) << blocks.dump(2);
  EXPECT_EQ(json(emitted), blocks);
  EXPECT_EQ(block_text(blocks[0]), "CREATE TABLE");
  EXPECT_EQ(block_text(blocks[1]), "2 rows affected");
  const json& table = blocks[2];
  ASSERT_EQ(table["type"], "table");
  ASSERT_EQ(table["header"].size(), 2u);
  EXPECT_EQ(table["header"][0]["text"], "a");
  EXPECT_EQ(table["header"][0]["bold"], true);
  ASSERT_EQ(table["rows"].size(), 2u);
  EXPECT_EQ(table["rows"][0][1]["text"], "x");
  EXPECT_EQ(table["rows"][1][1]["text"], "NULL");
  EXPECT_EQ(table["rows"][1][1]["color"], "#888");

  // What the console made is the resource's: the read-write and read-only logins use it.
  std::string error;
  PgConn rw = connect(secret(secrets, "DATABASE_URL"), &error);
  ASSERT_TRUE(rw) << error;
  EXPECT_EQ(exec(rw.get(), "INSERT INTO t VALUES (3, 'z')"), "");
  PgConn ro = connect(secret(secrets, "DATABASE_READONLY_URL"), &error);
  ASSERT_TRUE(ro) << error;
  EXPECT_EQ(value(ro.get(), "SELECT count(*) FROM t"), "3");

  blocks = db_->repl("res_repl", "SELECT * FROM nope", false, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_TRUE(is_error(blocks[0]));
  EXPECT_NE(block_text(blocks[0]).find("does not exist"), std::string::npos);

  // The first error stops the input and rolls back its implicit transaction.
  blocks = db_->repl("res_repl", "INSERT INTO t VALUES (4, 'w'); SELECT 1/0; SELECT 2", false,
                     Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 2u) << blocks.dump();
  EXPECT_TRUE(is_error(blocks[1]));
  EXPECT_EQ(value(rw.get(), "SELECT count(*) FROM t"), "3");

  // Read-only: reads, never writes, and cannot become anyone else.
  blocks = db_->repl("res_repl", "SELECT count(*) AS n FROM t", true, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0]["rows"][0][0]["text"], "3");
  for (const char* write :
       {"INSERT INTO t VALUES (5, 'v')",
        "SET default_transaction_read_only = off; INSERT INTO t VALUES (5, 'v')",
        "RESET ROLE; SET default_transaction_read_only = off; DELETE FROM t",
        "SET ROLE wharf_admin", "SET ROLE \"wharf_res_repl-owner\"",
        "COMMIT; SET SESSION AUTHORIZATION wharf_admin", "DROP TABLE t"}) {
    blocks = db_->repl("res_repl", write, true, Limits{}, nullptr, nullptr);
    ASSERT_FALSE(blocks.empty());
    EXPECT_TRUE(is_error(blocks.back())) << write << " → " << blocks.dump();
  }
  // Read-write cannot escape its role either.
  blocks =
      db_->repl("res_repl", "RESET ROLE; SET ROLE wharf_admin", false, Limits{}, nullptr, nullptr);
  EXPECT_TRUE(is_error(blocks.back())) << blocks.dump();
  blocks = db_->repl("res_repl", "CREATE ROLE sneaky", false, Limits{}, nullptr, nullptr);
  EXPECT_TRUE(is_error(blocks.back())) << blocks.dump();
  EXPECT_EQ(value(rw.get(), "SELECT count(*) FROM t"), "3");

  // Rows are cut at the plan's maxRows.
  Limits few;
  few.max_rows = 3;
  blocks = db_->repl("res_repl", "SELECT generate_series(1, 10) AS n", true, few, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 2u) << blocks.dump();
  EXPECT_EQ(blocks[0]["rows"].size(), 3u);
  EXPECT_NE(block_text(blocks[1]).find("7 more rows not shown"), std::string::npos);

  // statementTimeoutMs bounds the input.
  Limits quick;
  quick.statement_timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  blocks = db_->repl("res_repl", "SET statement_timeout = 0; SELECT pg_sleep(10)", false, quick,
                     nullptr, nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_FALSE(blocks.empty());
  EXPECT_TRUE(is_error(blocks.back())) << blocks.dump();

  // Meta-commands and notices.
  blocks = db_->repl("res_repl", "\\dt", true, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u) << blocks.dump();
  EXPECT_EQ(blocks[0]["rows"][0][1]["text"], "t");
  blocks = db_->repl("res_repl", "\\d t", true, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u) << blocks.dump();
  EXPECT_EQ(blocks[0]["rows"].size(), 2u);
  blocks =
      db_->repl("res_repl", "DROP TABLE IF EXISTS nothing_here", false, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 2u) << blocks.dump();
  EXPECT_NE(block_text(blocks[0]).find("does not exist, skipping"), std::string::npos);
  EXPECT_EQ(block_text(blocks[1]), "DROP TABLE");
  blocks = db_->repl("res_repl", "  ", false, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_FALSE(is_error(blocks[0]));
  blocks = db_->repl("res_repl", "BEGIN; INSERT INTO t VALUES (9, 'open')", false, Limits{},
                     nullptr, nullptr);
  EXPECT_NE(block_text(blocks.back()).find("rolled back"), std::string::npos) << blocks.dump();
  EXPECT_EQ(value(rw.get(), "SELECT count(*) FROM t"), "3");
  blocks = db_->repl("res_repl", "COPY t FROM STDIN", false, Limits{}, nullptr, nullptr);
  EXPECT_TRUE(is_error(blocks.back())) << blocks.dump();

  EXPECT_THROW(db_->repl("res_none", "SELECT 1", false, Limits{}, nullptr, nullptr), QueryError);
}

TEST_F(PostgresDbTest, StorageBytes) {
  provision("res_size");
  EXPECT_GT(db_->storage_bytes("res_size"), 1000);
  EXPECT_EQ(db_->storage_bytes("res_nothing"), 0);
}

TEST_F(PostgresDbTest, SampleUsageCountsTransactionsOnce) {
  json secrets = provision("res_usage");
  auto sample = [](PostgresDb& db) {
    std::map<std::string, int64_t> got;
    db.sample_usage("res_usage",
                    [&got](const std::string& metric, int64_t v) { got[metric] += v; });
    return got;
  };
  sample(*db_);  // whatever the set-up left behind
  {
    std::string error;
    PgConn c = connect(secret(secrets, "DATABASE_URL"), &error);
    ASSERT_TRUE(c) << error;
    ASSERT_EQ(exec(c.get(), "CREATE TABLE t (x int)"), "");
    for (int i = 0; i < 20; ++i) ASSERT_EQ(exec(c.get(), "INSERT INTO t VALUES (1)"), "");
  }  // closing the session flushes its statistics
  int64_t total = 0;
  int64_t storage = 0;
  for (int i = 0; i < 50 && total < 21; ++i) {
    auto got = sample(*db_);
    total += got["transactions"];
    storage = got["storageBytes"];
    if (total < 21) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(total, 21);
  EXPECT_LT(total, 40);
  EXPECT_GT(storage, 0);

  // A new instance (a restart) starts from the counter kept in the database's comment.
  auto restarted = make();
  auto got = sample(*restarted);
  EXPECT_LT(got["transactions"], 5);

  // A sample whose consumer fails is not lost: the next one reports it again.
  {
    std::string error;
    PgConn c = connect(secret(secrets, "DATABASE_URL"), &error);
    ASSERT_TRUE(c) << error;
    for (int i = 0; i < 10; ++i) ASSERT_EQ(exec(c.get(), "INSERT INTO t VALUES (2)"), "");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_THROW(
      restarted->sample_usage(
          "res_usage", [](const std::string&, int64_t) { throw std::runtime_error("store down"); }),
      std::runtime_error);
  total = 0;
  for (int i = 0; i < 50 && total < 11; ++i) {
    total += sample(*db_)["transactions"];
    if (total < 11) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(total, 11);
  EXPECT_LT(total, 20);
}

TEST_F(PostgresDbTest, PublicHostAndPortGoInTheSecrets) {
  PostgresDb::Config config;
  config.admin_url = *url_;
  config.public_host = "db.example.com";
  config.public_port = 6543;
  PostgresDb db(config);
  json secrets = db.provision(info("res_public"), CallContext{}).secrets;
  EXPECT_EQ(secret(secrets, "PGHOST"), "db.example.com");
  EXPECT_EQ(secret(secrets, "PGPORT"), "6543");
  std::string url = secret(secrets, "DATABASE_URL");
  EXPECT_NE(url.find("@db.example.com:6543/wharf_res_public"), std::string::npos) << url;
  db.remove(info("res_public"), CallContext{});
}

TEST_F(PostgresDbTest, UnreachableServerIsUnavailable) {
  PostgresDb::Config config;
  config.admin_url = "postgresql://wharf_admin:nope@127.0.0.1:1/postgres";
  config.connect_timeout_s = 2;
  PostgresDb down(config);
  EXPECT_THROW(down.provision(info("res_down"), CallContext{}), ProductUnavailable);
  EXPECT_THROW(down.rotate_secrets(info("res_down"), "x", 0, CallContext{}), ProductUnavailable);
  EXPECT_THROW(down.remove(info("res_down"), CallContext{}), ProductUnavailable);
  EXPECT_THROW(down.exists("res_down"), ProductUnavailable);
  EXPECT_THROW(down.sample_usage("res_down", [](const std::string&, int64_t) {}),
               ProductUnavailable);
  json blocks = down.repl("res_down", "SELECT 1", false, Limits{}, nullptr, nullptr);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_TRUE(is_error(blocks[0]));

  // A wrong password is the same for the caller: nothing was done, retry later.
  config.admin_url = *url_;
  config.admin_url.replace(config.admin_url.find(':', 14),
                           config.admin_url.find('@') - config.admin_url.find(':', 14), ":wrong");
  PostgresDb wrong(config);
  EXPECT_THROW(wrong.provision(info("res_down"), CallContext{}), ProductUnavailable);
}

// ---- without a server ----

TEST(PostgresDbKind, NamesAreSafeIdentifiers) {
  auto n = PostgresDb::names_for("res_abc123");
  EXPECT_EQ(n.database, "wharf_res_abc123");
  EXPECT_EQ(n.owner, "wharf_res_abc123-owner");
  EXPECT_EQ(n.rw[0], "wharf_res_abc123-a");
  EXPECT_EQ(n.rw[1], "wharf_res_abc123-b");
  EXPECT_EQ(n.ro, "wharf_res_abc123-ro");
  EXPECT_EQ(n.ro_login[1], "wharf_res_abc123-ro-b");
  // Ids that differ only in case or '-' vs '_' get different names.
  auto upper = PostgresDb::names_for("Res_ABC123");
  auto dash = PostgresDb::names_for("res-abc123");
  EXPECT_NE(upper.database, n.database);
  EXPECT_NE(dash.database, n.database);
  EXPECT_NE(dash.database, upper.database);
  EXPECT_EQ(upper.database.rfind("wharf_res_abc123_", 0), 0u);
  auto longest = PostgresDb::names_for(std::string(128, 'Z'));
  auto longer = PostgresDb::names_for(std::string(127, 'Z') + "Y");
  EXPECT_NE(longest.database, longer.database);
  for (const auto& name : {longest.database, longest.owner, longest.ro_login[0], longest.rw[1]})
    EXPECT_LE(name.size(), 63u) << name;
  for (const std::string& bad :
       std::vector<std::string>{"", "a b", "a;drop", std::string(129, 'a'), "caf\xC3\xA9"})
    EXPECT_THROW(PostgresDb::names_for(bad), std::invalid_argument) << bad;
}

TEST(PostgresDbKind, RegisteredWithItsDescriptor) {
  const Registry& kinds = builtin_kinds();
  ASSERT_TRUE(kinds.has("postgres"));
  const Descriptor* d = kinds.descriptor("postgres");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->secrets.empty());
  EXPECT_EQ(d->storage_metric, "storageBytes");
  ASSERT_NE(d->metric("storageBytes"), nullptr);
  EXPECT_TRUE(d->metric("storageBytes")->level);
  EXPECT_EQ(d->metric("storageBytes")->units, "bytes");
  ASSERT_NE(d->metric("transactions"), nullptr);
  EXPECT_FALSE(d->metric("transactions")->level);
  EXPECT_EQ(d->metric("transactions")->units, "transactions");
  EXPECT_TRUE(d->capabilities.repl);
  EXPECT_TRUE(d->capabilities.rotation);
  EXPECT_TRUE(d->capabilities.async_provisioning);
  EXPECT_FALSE(d->capabilities.sql_data_plane);

  KindSettings settings;
  EXPECT_THROW(kinds.make("postgres", settings), std::invalid_argument);
  settings.settings["postgres_url"] = "postgresql://u:p@db.internal:5433/postgres?sslmode=require";
  settings.settings["postgres_public_port"] = "6432";
  auto product = kinds.make("postgres", settings);
  ASSERT_NE(product, nullptr);
  EXPECT_EQ(product->kind(), "postgres");
  settings.settings["postgres_public_port"] = "lots";
  EXPECT_THROW(kinds.make("postgres", settings), std::invalid_argument);
  settings.settings.erase("postgres_public_port");
  settings.settings["postgres_url"] = "postgresql://u:p@host/db?nonsense=1";
  EXPECT_THROW(kinds.make("postgres", settings), std::invalid_argument);
}

}  // namespace
}  // namespace wharf::product
