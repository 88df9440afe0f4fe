// The store contract: the same tests of every Store operation, run against each backend
// (SQLite, and PostgreSQL on a throwaway cluster that scripts/pg-temp.sh starts for the
// suite). A backend only stores and fetches; what one backend answers, every backend must.
//
// The PostgreSQL tests FAIL (never skip) when the server binaries are missing: install them
// with scripts/install-deps.sh.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace wharf::store {
namespace {

namespace fs = std::filesystem;

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

// ---- backends ------------------------------------------------------------------------------

struct SqliteBackend {
  static constexpr bool kPostgres = false;
  static void start() {}
  static void stop() {}
  static std::string failure() { return ""; }
  // A fresh, empty store for one test; open_again() opens the same state again.
  void create() {
    static std::atomic<int> n{0};
    dir = fs::temp_directory_path() /
          ("wharf-contract-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  std::unique_ptr<Store> open_again() {
    return sqlite::open(sqlite::Options((dir / "state.db").string()));
  }
  void destroy() { fs::remove_all(dir); }
  fs::path dir;
};

struct PostgresBackend {
  static constexpr bool kPostgres = true;
  static fs::path* dir_;
  static std::string* admin_url_;
  static std::string* failure_;

  static void start() {
    if (admin_url_ || failure_) return;
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("wharf-contract-pg-" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::path script = source_dir() / "scripts" / "pg-temp.sh";
    int status = 0;
    std::string out =
        shell("'" + script.string() + "' start '" + dir_->string() + "' 2>&1", &status);
    if (status == 3) {
      failure_ = new std::string(
          "PostgreSQL server binaries are not installed: run scripts/install-deps.sh (" + out +
          ")");
      return;
    }
    if (status != 0) {
      failure_ = new std::string("scripts/pg-temp.sh start failed (" + std::to_string(status) +
                                 "): " + out);
      return;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    auto nl = out.rfind('\n');
    admin_url_ = new std::string(nl == std::string::npos ? out : out.substr(nl + 1));
  }
  static void stop() {
    if (admin_url_) {
      int status = 0;
      shell("'" + (source_dir() / "scripts" / "pg-temp.sh").string() + "' stop '" + dir_->string() +
                "' >/dev/null 2>&1",
            &status);
    }
    if (dir_) fs::remove_all(*dir_);
    delete dir_;
    delete admin_url_;
    delete failure_;
    dir_ = nullptr;
    admin_url_ = failure_ = nullptr;
  }
  static std::string failure() { return failure_ ? *failure_ : ""; }

  // The admin URL with another database name.
  static std::string url_of(const std::string& db) {
    auto slash = admin_url_->rfind('/');
    return admin_url_->substr(0, slash + 1) + db;
  }
  static void admin_exec(const std::string& sql) {
    PGconn* c = PQconnectdb(admin_url_->c_str());
    std::string error;
    if (PQstatus(c) != CONNECTION_OK) {
      error = PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, sql.c_str());
      if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        error = PQerrorMessage(c);
      PQclear(r);
    }
    PQfinish(c);
    if (!error.empty()) throw std::runtime_error(sql + ": " + error);
  }

  // One database per test.
  void create() {
    static std::atomic<int> n{0};
    db = "contract_" + std::to_string(++n);
    admin_exec("CREATE DATABASE " + db);
  }
  std::unique_ptr<Store> open_again() {
    postgres::Options o;
    o.url = url_of(db);
    o.pool_size = 8;
    return postgres::open(o);
  }
  void destroy() {
    try {
      admin_exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    } catch (const std::exception&) {
    }
  }
  std::string db;
};
fs::path* PostgresBackend::dir_ = nullptr;
std::string* PostgresBackend::admin_url_ = nullptr;
std::string* PostgresBackend::failure_ = nullptr;

template <typename Backend>
class StoreContract : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Backend::start(); }
  static void TearDownTestSuite() { Backend::stop(); }

  void SetUp() override {
    std::string failure = Backend::failure();
    ASSERT_TRUE(failure.empty()) << failure;
    backend_.create();
    store_ = backend_.open_again();
  }
  void TearDown() override {
    store_.reset();
    if (Backend::failure().empty()) backend_.destroy();
  }

  Store& s() { return *store_; }

  template <typename F>
  void w(F f) {
    store_->write([&](WriteTx& tx) { f(tx); });
  }
  template <typename F>
  void r(F f) {
    store_->read([&](ReadTx& tx) { f(tx); });
  }

  Backend backend_;
  std::unique_ptr<Store> store_;
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kPostgres ? "Postgres" : "Sqlite";
  }
};
TYPED_TEST_SUITE(StoreContract, Backends, BackendNames);

// Bytes a TEXT column could not hold: NUL, invalid UTF-8.
const std::string kSealed = std::string("\x00\x01\xff\xfe sealed \x80", 13);

InstallationRow installation(const std::string& id, std::optional<std::string> plan = "free") {
  InstallationRow r;
  r.id = id;
  r.account_id = "acct_" + id;
  r.installer_user_id = "user_1";
  r.scopes_json = R"(["read"])";
  r.accepted_policies_json = R"({"toc":"2025-01-01"})";
  r.account_json = R"({"name":"Team"})";
  r.token_type = "Bearer";
  r.access_token_sealed = kSealed;
  r.billing_plan_id = std::move(plan);
  r.notification_json = std::nullopt;
  r.created_ms = 1000;
  r.updated_ms = 1000;
  r.token_issued_ms = 1000;
  r.token_expires_ms = 99000;
  return r;
}

ResourceRow resource(const std::string& id, const std::string& inst, int64_t created_ms,
                     const std::string& plan = "free") {
  ResourceRow r;
  r.id = id;
  r.installation_id = inst;
  r.product_id = "db";
  r.name = "name-" + id;
  r.metadata_json = R"({"region":"iad1"})";
  r.billing_plan_id = plan;
  r.external_id = "ext-" + id;
  r.idempotency_key = "idem-" + id;
  r.secrets_sealed = kSealed;
  r.created_ms = created_ms;
  r.updated_ms = created_ms;
  return r;
}

OutboxRow outbox(const std::string& id, const std::string& inst, const std::string& lane = "",
                 int64_t next_attempt_ms = 0) {
  OutboxRow r;
  r.id = id;
  r.installation_id = inst;
  r.lane = lane;
  r.kind = "event";
  r.method = "POST";
  r.path = "/v1/installations/" + inst + "/events";
  r.body = R"({"event":"x"})";
  r.next_attempt_ms = next_attempt_ms;
  r.created_ms = 500;
  return r;
}

// ---- schema --------------------------------------------------------------------------------

TYPED_TEST(StoreContract, MigrationsApplyOnceAndReopeningFindsTheState) {
  this->w([](WriteTx& tx) { tx.put_installation(installation("icfg_1")); });
  this->store_.reset();
  this->store_ = this->backend_.open_again();  // migrations recorded: none runs again
  this->r([](ReadTx& tx) { EXPECT_TRUE(tx.installation("icfg_1")); });
  EXPECT_TRUE(this->s().healthy());
}

TYPED_TEST(StoreContract, SeveralProcessesOpeningAFreshDatabaseTogetherApplyMigrationsOnce) {
  if constexpr (!TypeParam::kPostgres) {
    GTEST_SKIP() << "one SQLite file has one process";
  } else {
    this->store_.reset();
    this->backend_.destroy();
    this->backend_.create();  // empty again
    std::vector<std::thread> ts;
    std::atomic<int> opened{0};
    std::vector<std::string> errors(6);
    for (int i = 0; i < 6; ++i)
      ts.emplace_back([&, i] {
        try {
          auto st = this->backend_.open_again();
          if (st->healthy()) ++opened;
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(i)] = e.what();
        }
      });
    for (auto& t : ts) t.join();
    for (const auto& e : errors) EXPECT_EQ(e, "");
    EXPECT_EQ(opened, 6);
    this->store_ = this->backend_.open_again();
    this->w([](WriteTx& tx) { tx.put_installation(installation("icfg_1")); });
  }
}

// ---- installations -------------------------------------------------------------------------

TYPED_TEST(StoreContract, InstallationsRoundTripReplaceAndListForBilling) {
  this->r([](ReadTx& tx) { EXPECT_FALSE(tx.installation("icfg_1")); });
  auto a = installation("icfg_1");
  auto b = installation("icfg_2", std::nullopt);
  b.access_token_sealed = std::nullopt;
  b.token_expires_ms = std::nullopt;
  this->w([&](WriteTx& tx) {
    tx.put_installation(a);
    tx.put_installation(b);
  });
  this->r([&](ReadTx& tx) {
    auto got = tx.installation("icfg_1");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->account_id, a.account_id);
    EXPECT_EQ(got->installer_user_id, "user_1");
    EXPECT_EQ(got->scopes_json, a.scopes_json);
    EXPECT_EQ(got->accepted_policies_json, a.accepted_policies_json);
    EXPECT_EQ(got->account_json, a.account_json);
    EXPECT_EQ(got->token_type, "Bearer");
    EXPECT_EQ(got->access_token_sealed, kSealed);
    EXPECT_EQ(got->billing_plan_id, "free");
    EXPECT_EQ(got->notification_json, std::nullopt);
    EXPECT_EQ(got->status, "active");
    EXPECT_FALSE(got->cascade_delete);
    EXPECT_FALSE(got->finalized);
    EXPECT_EQ(got->created_ms, 1000);
    EXPECT_EQ(got->deleted_ms, std::nullopt);
    EXPECT_EQ(got->token_issued_ms, 1000);
    EXPECT_EQ(got->token_expires_ms, 99000);
    auto two = tx.installation("icfg_2");
    ASSERT_TRUE(two);
    EXPECT_EQ(two->access_token_sealed, std::nullopt);
    EXPECT_EQ(two->billing_plan_id, std::nullopt);
    EXPECT_EQ(two->token_expires_ms, std::nullopt);
  });
  // Uninstalled: still billed until finalized.
  a.status = "uninstalled";
  a.delete_reason = "user";
  a.cascade_delete = true;
  a.deleted_ms = 5000;
  a.updated_ms = 5000;
  auto c = installation("icfg_3");
  c.status = "uninstalled";
  c.finalized = true;
  c.deleted_ms = 4000;
  this->w([&](WriteTx& tx) {
    tx.put_installation(a);
    tx.put_installation(c);
  });
  this->r([&](ReadTx& tx) {
    auto got = tx.installation("icfg_1");
    EXPECT_EQ(got->status, "uninstalled");
    EXPECT_EQ(got->delete_reason, "user");
    EXPECT_TRUE(got->cascade_delete);
    EXPECT_EQ(got->deleted_ms, 5000);
    auto bill = tx.installations_to_bill();
    ASSERT_EQ(bill.size(), 2u);
    EXPECT_EQ(bill[0].id, "icfg_1");
    EXPECT_EQ(bill[1].id, "icfg_2");
  });
}

TYPED_TEST(StoreContract, InstallationPlanChangesKeepPlanSpans) {
  auto a = installation("icfg_1", "free");
  this->w([&](WriteTx& tx) { tx.put_installation(a); });
  a.billing_plan_id = "pro";
  a.updated_ms = 2000;
  this->w([&](WriteTx& tx) { tx.put_installation(a); });
  a.updated_ms = 2500;  // same plan: no new span
  this->w([&](WriteTx& tx) { tx.put_installation(a); });
  a.deleted_ms = 3000;
  this->w([&](WriteTx& tx) { tx.put_installation(a); });
  this->r([](ReadTx& tx) {
    auto spans = tx.plan_periods("icfg_1", 0, 10000);
    ASSERT_EQ(spans.size(), 2u);
    EXPECT_EQ(spans[0].resource_id, "");
    EXPECT_EQ(spans[0].plan_id, "free");
    EXPECT_EQ(spans[0].start_ms, 1000);
    EXPECT_EQ(spans[0].end_ms, 2000);
    EXPECT_EQ(spans[1].plan_id, "pro");
    EXPECT_EQ(spans[1].start_ms, 2000);
    EXPECT_EQ(spans[1].end_ms, 3000);
    EXPECT_EQ(tx.plan_periods("icfg_1", 2000, 2001).size(), 1u);  // overlapping only
    EXPECT_EQ(tx.plan_periods("icfg_1", 3000, 9000).size(), 0u);
  });
}

// ---- idempotency ---------------------------------------------------------------------------

TYPED_TEST(StoreContract, IdempotencyInsertOnceUpdateDeleteAndPurge) {
  IdempotencyRow row;
  row.key = {"icfg_1", "PUT", "/v1/installations/icfg_1", "k1"};
  row.request_hash = "abc";
  row.state = "pending";
  row.created_ms = 100;
  row.lease_until_ms = 200;
  row.owner = "req_1";
  bool first = false, second = true;
  this->w([&](WriteTx& tx) { first = tx.insert_idempotency(row); });
  auto other = row;
  other.request_hash = "zzz";
  this->w([&](WriteTx& tx) { second = tx.insert_idempotency(other); });
  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  this->r([&](ReadTx& tx) {
    auto got = tx.idempotency(row.key);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->request_hash, "abc");
    EXPECT_EQ(got->state, "pending");
    EXPECT_EQ(got->owner, "req_1");
    EXPECT_EQ(got->lease_until_ms, 200);
    auto k = row.key;
    k.key = "k2";
    EXPECT_FALSE(tx.idempotency(k));
  });
  row.state = "done";
  row.status = 201;
  row.content_type = "application/json";
  row.body = R"({"ok":true})";
  this->w([&](WriteTx& tx) { tx.update_idempotency(row); });
  this->r([&](ReadTx& tx) {
    auto got = tx.idempotency(row.key);
    EXPECT_EQ(got->state, "done");
    EXPECT_EQ(got->status, 201);
    EXPECT_EQ(got->content_type, "application/json");
    EXPECT_EQ(got->body, row.body);
  });
  // Purge: done rows created before the cutoff only.
  auto young = row;
  young.key.key = "young";
  young.created_ms = 1000;
  auto pending = row;
  pending.key.key = "pending";
  pending.state = "pending";
  int64_t purged = 0;
  this->w([&](WriteTx& tx) {
    tx.insert_idempotency(young);
    tx.insert_idempotency(pending);
    purged = tx.purge_idempotency(500);
  });
  EXPECT_EQ(purged, 1);
  this->r([&](ReadTx& tx) {
    EXPECT_FALSE(tx.idempotency(row.key));
    EXPECT_TRUE(tx.idempotency(young.key));
    EXPECT_TRUE(tx.idempotency(pending.key));
  });
  this->w([&](WriteTx& tx) { tx.delete_idempotency(young.key); });
  this->r([&](ReadTx& tx) { EXPECT_FALSE(tx.idempotency(young.key)); });
}

// ---- resources -----------------------------------------------------------------------------

TYPED_TEST(StoreContract, ResourcesRoundTripListsAndLiveOnes) {
  auto a = resource("res_a", "icfg_1", 300);
  auto b = resource("res_b", "icfg_1", 100);
  auto c = resource("res_c", "icfg_1", 200);
  auto d = resource("res_d", "icfg_2", 50);
  d.product_id = "other";
  c.deleted_ms = 400;
  c.status = "uninstalled";
  a.notification_json = R"({"level":"info"})";
  a.protocol_settings_json = R"({"x":1})";
  a.billing_hold = "overdue:inv_1";
  b.secrets_sealed = std::nullopt;
  b.idempotency_key = std::nullopt;
  b.external_id = std::nullopt;
  this->w([&](WriteTx& tx) {
    for (const auto& row : {a, b, c, d}) tx.put_resource(row);
  });
  this->r([&](ReadTx& tx) {
    auto got = tx.resource("res_a");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->installation_id, "icfg_1");
    EXPECT_EQ(got->product_id, "db");
    EXPECT_EQ(got->name, "name-res_a");
    EXPECT_EQ(got->metadata_json, a.metadata_json);
    EXPECT_EQ(got->status, "ready");
    EXPECT_EQ(got->billing_plan_id, "free");
    EXPECT_EQ(got->notification_json, a.notification_json);
    EXPECT_EQ(got->protocol_settings_json, a.protocol_settings_json);
    EXPECT_EQ(got->external_id, "ext-res_a");
    EXPECT_EQ(got->idempotency_key, "idem-res_a");
    EXPECT_EQ(got->secrets_sealed, kSealed);
    EXPECT_EQ(got->billing_hold, "overdue:inv_1");
    EXPECT_TRUE(got->overdue_hold());
    auto gb = tx.resource("res_b");
    EXPECT_EQ(gb->secrets_sealed, std::nullopt);
    EXPECT_EQ(gb->idempotency_key, std::nullopt);
    EXPECT_EQ(gb->billing_hold, std::nullopt);
    EXPECT_FALSE(tx.resource("res_zzz"));

    auto all = tx.resources_of("icfg_1");
    ASSERT_EQ(all.size(), 3u);  // by creation
    EXPECT_EQ(all[0].id, "res_b");
    EXPECT_EQ(all[1].id, "res_c");
    EXPECT_EQ(all[2].id, "res_a");
    auto live = tx.live_resources_of("icfg_1");
    ASSERT_EQ(live.size(), 2u);
    EXPECT_EQ(live[0].id, "res_b");
    EXPECT_EQ(live[1].id, "res_a");
    auto of_db = tx.live_resources_of_product("db");
    ASSERT_EQ(of_db.size(), 2u);
    EXPECT_EQ(tx.live_resources_of_product("other").size(), 1u);
    auto by_key = tx.resource_by_idempotency_key("icfg_1", "idem-res_a");
    ASSERT_TRUE(by_key);
    EXPECT_EQ(by_key->id, "res_a");
    EXPECT_FALSE(tx.resource_by_idempotency_key("icfg_2", "idem-res_a"));
  });
  a.name = "renamed";
  a.updated_ms = 700;
  this->w([&](WriteTx& tx) { tx.put_resource(a); });
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.resource("res_a")->name, "renamed"); });
}

TYPED_TEST(StoreContract, ResourcePlanSpansFollowPlanChangesTransfersAndDeletion) {
  auto a = resource("res_a", "icfg_1", 1000, "free");
  this->w([&](WriteTx& tx) { tx.put_resource(a); });
  a.billing_plan_id = "pro";
  a.updated_ms = 2000;
  this->w([&](WriteTx& tx) { tx.put_resource(a); });
  a.installation_id = "icfg_2";  // transferred
  a.updated_ms = 3000;
  this->w([&](WriteTx& tx) { tx.put_resource(a); });
  a.deleted_ms = 4000;
  a.updated_ms = 4000;
  this->w([&](WriteTx& tx) { tx.put_resource(a); });
  this->r([](ReadTx& tx) {
    auto one = tx.plan_periods("icfg_1", 0, 10000);
    ASSERT_EQ(one.size(), 2u);
    EXPECT_EQ(one[0].plan_id, "free");
    EXPECT_EQ(one[0].end_ms, 2000);
    EXPECT_EQ(one[1].plan_id, "pro");
    EXPECT_EQ(one[1].start_ms, 2000);
    EXPECT_EQ(one[1].end_ms, 3000);
    auto two = tx.plan_periods("icfg_2", 0, 10000);
    ASSERT_EQ(two.size(), 1u);
    EXPECT_EQ(two[0].resource_id, "res_a");
    EXPECT_EQ(two[0].start_ms, 3000);
    EXPECT_EQ(two[0].end_ms, 4000);
  });
}

// ---- credentials, transfer claims ----------------------------------------------------------

TYPED_TEST(StoreContract, CredentialsInsertExpireAndDelete) {
  this->w([](WriteTx& tx) {
    tx.insert_credential({"h1", "res_a", "rw", 10, std::nullopt});
    tx.insert_credential({"h2", "res_a", "ro", 11, 50});
    tx.insert_credential({"h3", "res_a", "ro", 12, 5000});
    tx.insert_credential({"h4", "res_b", "rw", 13, std::nullopt});
  });
  this->r([](ReadTx& tx) {
    auto c = tx.credential("h1");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->resource_id, "res_a");
    EXPECT_EQ(c->access, "rw");
    EXPECT_EQ(c->created_ms, 10);
    EXPECT_EQ(c->expires_ms, std::nullopt);
    EXPECT_FALSE(tx.credential("nope"));
  });
  this->w([](WriteTx& tx) { tx.expire_credentials("res_a", 100); });
  this->r([](ReadTx& tx) {
    EXPECT_EQ(tx.credential("h1")->expires_ms, 100);
    EXPECT_EQ(tx.credential("h2")->expires_ms, 50);  // already earlier
    EXPECT_EQ(tx.credential("h3")->expires_ms, 100);
    EXPECT_EQ(tx.credential("h4")->expires_ms, std::nullopt);
  });
  // Inserting a token hash twice is an error (and rolls its transaction back).
  EXPECT_ANY_THROW(this->w([](WriteTx& tx) {
    tx.insert_credential({"h5", "res_c", "rw", 1, std::nullopt});
    tx.insert_credential({"h1", "res_c", "rw", 1, std::nullopt});
  }));
  this->r([](ReadTx& tx) { EXPECT_FALSE(tx.credential("h5")); });
  this->w([](WriteTx& tx) { tx.delete_credentials("res_a"); });
  this->r([](ReadTx& tx) {
    EXPECT_FALSE(tx.credential("h1"));
    EXPECT_FALSE(tx.credential("h3"));
    EXPECT_TRUE(tx.credential("h4"));
  });
}

TYPED_TEST(StoreContract, TransferClaimsRoundTripAndReplace) {
  TransferClaimRow c;
  c.id = "claim_1";
  c.source_installation_id = "icfg_1";
  c.resource_ids_json = R"(["res_a"])";
  c.expires_ms = 9000;
  c.created_ms = 100;
  this->w([&](WriteTx& tx) { tx.put_transfer_claim(c); });
  this->r([&](ReadTx& tx) {
    auto got = tx.transfer_claim("claim_1");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->source_installation_id, "icfg_1");
    EXPECT_EQ(got->resource_ids_json, c.resource_ids_json);
    EXPECT_EQ(got->expires_ms, 9000);
    EXPECT_FALSE(got->legacy);
    EXPECT_EQ(got->status, "created");
    EXPECT_EQ(got->verified_by_json, "[]");
    EXPECT_EQ(got->target_installation_id, std::nullopt);
    EXPECT_EQ(got->completed_ms, std::nullopt);
    EXPECT_FALSE(tx.transfer_claim("claim_2"));
  });
  c.legacy = true;
  c.status = "completed";
  c.verified_by_json = R"(["icfg_2"])";
  c.target_installation_id = "icfg_2";
  c.completed_ms = 500;
  this->w([&](WriteTx& tx) { tx.put_transfer_claim(c); });
  this->r([&](ReadTx& tx) {
    auto got = tx.transfer_claim("claim_1");
    EXPECT_TRUE(got->legacy);
    EXPECT_EQ(got->status, "completed");
    EXPECT_EQ(got->verified_by_json, c.verified_by_json);
    EXPECT_EQ(got->target_installation_id, "icfg_2");
    EXPECT_EQ(got->completed_ms, 500);
  });
}

// ---- outbox --------------------------------------------------------------------------------

TYPED_TEST(StoreContract, OutboxSeqOrdersHeadsPerLaneAndOnlyDueOnes) {
  std::vector<OutboxRow> rows = {outbox("o1", "icfg_1"),          outbox("o2", "icfg_1"),
                                 outbox("o3", "icfg_2", "", 500),  // not due at 100
                                 outbox("o4", "icfg_1", "res_a"),  // its own lane
                                 outbox("o5", "icfg_1", "res_a"), outbox("o6", "icfg_3")};
  this->w([&](WriteTx& tx) {
    for (auto& row : rows) tx.insert_outbox(row);
  });
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_GT(rows[i].seq, rows[i - 1].seq);
  auto ids = [](const std::vector<OutboxRow>& v) {
    std::vector<std::string> out;
    for (const auto& r : v) out.push_back(r.id);
    return out;
  };
  this->r([&](ReadTx& tx) {
    EXPECT_EQ(ids(tx.outbox_heads(10, 100)), (std::vector<std::string>{"o1", "o4", "o6"}));
    EXPECT_EQ(ids(tx.outbox_heads(10, 1000)), (std::vector<std::string>{"o1", "o3", "o4", "o6"}));
    EXPECT_EQ(ids(tx.outbox_heads(2, 1000)), (std::vector<std::string>{"o1", "o3"}));
    auto stats = tx.outbox_stats();
    EXPECT_EQ(stats.pending, 6);
    EXPECT_EQ(stats.dead, 0);
    EXPECT_EQ(stats.oldest_pending_created_ms, 500);
    auto listed = tx.outbox_list("pending", 2);  // newest first
    EXPECT_EQ(ids(listed), (std::vector<std::string>{"o6", "o5"}));
    EXPECT_EQ(listed[0].body, rows[5].body);
    EXPECT_EQ(listed[0].lane, "");
    EXPECT_EQ(listed[1].lane, "res_a");
    EXPECT_EQ(tx.outbox_list("", 100).size(), 6u);
  });
  // Delivered: the lane's next call is its head. Dead: blocks nothing, counted.
  rows[0].state = "delivered";
  rows[0].attempts = 1;
  rows[0].last_status = 200;
  rows[0].done_ms = 1000;
  rows[3].state = "dead";
  rows[3].attempts = 9;
  rows[3].last_status = 400;
  rows[3].last_error = "bad request";
  rows[3].response_body = R"({"error":{}})";
  rows[3].done_ms = 1000;
  this->w([&](WriteTx& tx) {
    tx.update_outbox(rows[0]);
    tx.update_outbox(rows[3]);
  });
  this->r([&](ReadTx& tx) {
    EXPECT_EQ(ids(tx.outbox_heads(10, 100)), (std::vector<std::string>{"o2", "o5", "o6"}));
    auto stats = tx.outbox_stats();
    EXPECT_EQ(stats.pending, 4);
    EXPECT_EQ(stats.dead, 1);
    auto dead = tx.outbox_list("dead", 10);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].attempts, 9);
    EXPECT_EQ(dead[0].last_status, 400);
    EXPECT_EQ(dead[0].last_error, "bad request");
    EXPECT_EQ(dead[0].response_body, rows[3].response_body);
    EXPECT_EQ(dead[0].done_ms, 1000);
  });
  // A later transaction's insert numbers after every earlier one.
  auto late = outbox("o7", "icfg_1");
  this->w([&](WriteTx& tx) { tx.insert_outbox(late); });
  EXPECT_GT(late.seq, rows.back().seq);
}

TYPED_TEST(StoreContract, OutboxDeadLettersRetryDropAndPurge) {
  std::vector<OutboxRow> rows = {outbox("o1", "i"), outbox("o2", "i"), outbox("o3", "j"),
                                 outbox("o4", "k")};
  this->w([&](WriteTx& tx) {
    for (auto& row : rows) tx.insert_outbox(row);
  });
  for (int i : {0, 1, 2}) {
    rows[static_cast<size_t>(i)].state = "dead";
    rows[static_cast<size_t>(i)].attempts = 5;
    rows[static_cast<size_t>(i)].last_error = "x";
    rows[static_cast<size_t>(i)].done_ms = 100;
  }
  rows[3].state = "delivered";
  rows[3].done_ms = 100;
  int64_t retried = 0, dropped = 0, dropped_again = 0, retried_all = 0;
  this->w([&](WriteTx& tx) {
    for (int i : {0, 1, 2, 3}) tx.update_outbox(rows[static_cast<size_t>(i)]);
    retried = tx.retry_dead_outbox("o1", 777);
    dropped = tx.drop_dead_outbox("o2", 800);
    dropped_again = tx.drop_dead_outbox("o1", 800);  // pending now: not dead
  });
  EXPECT_EQ(retried, 1);
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(dropped_again, 0);
  this->r([](ReadTx& tx) {
    auto pending = tx.outbox_list("pending", 10);
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0].id, "o1");
    EXPECT_EQ(pending[0].attempts, 0);
    EXPECT_EQ(pending[0].next_attempt_ms, 777);
    EXPECT_EQ(pending[0].last_error, "");
    EXPECT_EQ(pending[0].done_ms, std::nullopt);
    auto dropped_rows = tx.outbox_list("dropped", 10);
    ASSERT_EQ(dropped_rows.size(), 1u);
    EXPECT_EQ(dropped_rows[0].done_ms, 800);
  });
  int64_t purged = 0;
  this->w([&](WriteTx& tx) {
    retried_all = tx.retry_dead_outbox("", 900);  // o3
    purged = tx.purge_outbox(801);                // o2 (dropped at 800) and o4 (delivered)
  });
  EXPECT_EQ(retried_all, 1);
  EXPECT_EQ(purged, 2);
  this->r([](ReadTx& tx) {
    EXPECT_EQ(tx.outbox_list("", 10).size(), 2u);
    EXPECT_EQ(tx.outbox_stats().pending, 2);
  });
}

// ---- webhook events, usage -----------------------------------------------------------------

TYPED_TEST(StoreContract, WebhookEventsRoundTripReplaceAndPurge) {
  WebhookEventRow e{"evt_1", "marketplace.invoice.paid", "icfg_1", R"({"a":1})", 100, std::nullopt};
  WebhookEventRow f{"evt_2", "unknown.type", std::nullopt, "{}", 200, std::nullopt};
  this->w([&](WriteTx& tx) {
    tx.put_webhook_event(e);
    tx.put_webhook_event(f);
  });
  this->r([&](ReadTx& tx) {
    auto got = tx.webhook_event("evt_1");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->type, e.type);
    EXPECT_EQ(got->installation_id, "icfg_1");
    EXPECT_EQ(got->body, e.body);
    EXPECT_EQ(got->received_ms, 100);
    EXPECT_EQ(got->processed_ms, std::nullopt);
    EXPECT_EQ(tx.webhook_event("evt_2")->installation_id, std::nullopt);
    EXPECT_FALSE(tx.webhook_event("evt_3"));
  });
  e.processed_ms = 150;
  f.processed_ms = 500;
  int64_t purged = 0;
  this->w([&](WriteTx& tx) {
    tx.put_webhook_event(e);
    tx.put_webhook_event(f);
    purged = tx.purge_webhook_events(300);
  });
  EXPECT_EQ(purged, 1);
  this->r([](ReadTx& tx) {
    EXPECT_FALSE(tx.webhook_event("evt_1"));
    EXPECT_EQ(tx.webhook_event("evt_2")->processed_ms, 500);
  });
}

TYPED_TEST(StoreContract, UsageAddMaxSetBetweenBeforeAndPurge) {
  this->w([](WriteTx& tx) {
    tx.add_usage("res_a", "2025-03-01", "writes", 5);
    tx.add_usage("res_a", "2025-03-01", "writes", 7);
    tx.max_usage("res_a", "2025-03-01", "peak", 10);
    tx.max_usage("res_a", "2025-03-01", "peak", 4);
    tx.set_usage("res_a", "2025-03-01", "storage", 100);
    tx.set_usage("res_a", "2025-03-01", "storage", 90);
    tx.set_usage("res_a", "2025-03-03", "storage", 300);
    tx.add_usage("res_a", "2025-03-02", "writes", 1);
    tx.add_usage("res_a", "2025-03-05", "writes", 1);
    tx.add_usage("res_b", "2025-03-01", "writes", 99);
  });
  this->r([](ReadTx& tx) {
    auto day = tx.usage("res_a", "2025-03-01");
    EXPECT_EQ(day, (std::map<std::string, int64_t>{{"peak", 10}, {"storage", 90}, {"writes", 12}}));
    EXPECT_TRUE(tx.usage("res_a", "2025-02-01").empty());
    auto between = tx.usage_between("res_a", "2025-03-01", "2025-03-03");
    ASSERT_EQ(between.size(), 5u);
    for (size_t i = 1; i < between.size(); ++i) EXPECT_LE(between[i - 1].day, between[i].day);
    EXPECT_EQ(between.back().day, "2025-03-03");
    EXPECT_EQ(between.back().metric, "storage");
    EXPECT_EQ(between.back().value, 300);
    EXPECT_EQ(tx.usage_before("res_a", "storage", "2025-03-05"), 300);
    EXPECT_EQ(tx.usage_before("res_a", "storage", "2025-03-03"), 90);
    EXPECT_EQ(tx.usage_before("res_a", "storage", "2025-03-01"), std::nullopt);
  });
  bool first = false, again = true, other_product = false;
  int64_t purged = 0, purged_events = 0;
  this->w([&](WriteTx& tx) {
    first = tx.record_usage_event("db", "ev1", 100);
    again = tx.record_usage_event("db", "ev1", 200);
    other_product = tx.record_usage_event("kv", "ev1", 300);
  });
  EXPECT_TRUE(first);
  EXPECT_FALSE(again);
  EXPECT_TRUE(other_product);
  this->w([&](WriteTx& tx) {
    purged = tx.purge_usage("2025-03-02");  // res_a and res_b on 03-01
    purged_events = tx.purge_usage_events(200);
  });
  EXPECT_EQ(purged, 4);
  EXPECT_EQ(purged_events, 1);
  bool recorded_again = false;
  this->w([&](WriteTx& tx) { recorded_again = tx.record_usage_event("db", "ev1", 400); });
  EXPECT_TRUE(recorded_again);
  this->r([](ReadTx& tx) {
    EXPECT_TRUE(tx.usage("res_a", "2025-03-01").empty());
    EXPECT_EQ(tx.usage("res_a", "2025-03-02").at("writes"), 1);
  });
}

// Several resources' ledgers in one read: the same entries, in the same order, as one
// usage_between each (ids with a quote and a backslash reach PostgreSQL's array intact).
TYPED_TEST(StoreContract, UsageOfManyResourcesReadsAsEachDoes) {
  const std::vector<std::string> ids = {"res_a", "res_\"q", "res_\\b", "res_none"};
  this->w([&](WriteTx& tx) {
    for (const auto& id : ids) {
      if (id == "res_none") continue;
      tx.add_usage(id, "2025-03-02", "writes", 3);
      tx.add_usage(id, "2025-03-01", "writes", 1);
      tx.set_usage(id, "2025-03-01", "storage", 7);
      tx.add_usage(id, "2025-04-01", "writes", 9);  // after the range
    }
    tx.add_usage("res_other", "2025-03-01", "writes", 5);  // not asked for
  });
  this->r([&](ReadTx& tx) {
    auto many = tx.usage_between_many(ids, "2025-03-01", "2025-03-31");
    EXPECT_EQ(many.size(), 3u);  // none for res_none or res_other
    EXPECT_FALSE(many.count("res_none"));
    for (const auto& id : ids) {
      auto one = tx.usage_between(id, "2025-03-01", "2025-03-31");
      auto& got = many[id];
      ASSERT_EQ(got.size(), one.size()) << id;
      for (size_t i = 0; i < one.size(); ++i) {
        EXPECT_EQ(got[i].day, one[i].day) << id;
        EXPECT_EQ(got[i].metric, one[i].metric) << id;
        EXPECT_EQ(got[i].value, one[i].value) << id;
      }
    }
    ASSERT_EQ(many["res_a"].size(), 3u);
    EXPECT_EQ(many["res_a"][0].metric, "storage");  // 03-01 storage, 03-01 writes, 03-02
    EXPECT_EQ(many["res_a"][2].day, "2025-03-02");
    EXPECT_TRUE(tx.usage_between_many({}, "2025-03-01", "2025-03-31").empty());
  });
}

// ---- billing -------------------------------------------------------------------------------

TYPED_TEST(StoreContract, BillingStateInvoicesBalancesPurchasesAndPrepaid) {
  BillingStateRow st;
  st.installation_id = "icfg_1";
  st.last_data_ms = 1;
  st.final_through_ms = 2;
  st.invoiced_through_ms = 3;
  st.last_balance_ms = 4;
  st.final_submitted = true;
  st.gone_ms = 6;
  st.leftovers_suspended_ms = 7;
  this->w([&](WriteTx& tx) { tx.put_billing_state(st); });
  this->r([&](ReadTx& tx) {
    EXPECT_EQ(tx.billing_state("icfg_1"), st);
    EXPECT_FALSE(tx.billing_state("icfg_2"));
  });
  st.finalize_enqueued = true;
  st.gone_ms = std::nullopt;
  st.leftovers_deleted_ms = 8;
  this->w([&](WriteTx& tx) { tx.put_billing_state(st); });
  this->r([&](ReadTx& tx) { EXPECT_EQ(tx.billing_state("icfg_1"), st); });

  InvoiceRow a;
  a.installation_id = "icfg_1";
  a.id = "inv_b";
  a.resource_id = "res_a";
  a.plan_id = "pro";
  a.period_start_ms = 100;
  a.period_end_ms = 200;
  a.items_json = R"([{"name":"x"}])";
  a.total = "12.34";
  a.created_ms = 1;
  a.updated_ms = 1;
  InvoiceRow b = a;
  b.id = "inv_a";
  b.period_start_ms = 50;
  b.vercel_invoice_id = "vinv_1";
  b.carried_into = "inv_b";
  b.final = true;
  b.test = true;
  b.refund_total = "1.00";
  b.refund_reason = "sorry";
  b.paid_ms = 5;
  b.overdue_ms = 6;
  b.suspended = true;
  InvoiceRow c = a;
  c.installation_id = "icfg_2";
  this->w([&](WriteTx& tx) {
    tx.put_invoice(a);
    tx.put_invoice(b);
    tx.put_invoice(c);
  });
  this->r([&](ReadTx& tx) {
    auto got = tx.invoice("icfg_1", "inv_a");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->resource_id, "res_a");
    EXPECT_EQ(got->plan_id, "pro");
    EXPECT_EQ(got->period_start_ms, 50);
    EXPECT_EQ(got->period_end_ms, 200);
    EXPECT_EQ(got->items_json, a.items_json);
    EXPECT_EQ(got->total, "12.34");
    EXPECT_EQ(got->state, "submitting");
    EXPECT_EQ(got->vercel_invoice_id, "vinv_1");
    EXPECT_EQ(got->carried_into, "inv_b");
    EXPECT_TRUE(got->final);
    EXPECT_TRUE(got->test);
    EXPECT_EQ(got->refund_total, "1.00");
    EXPECT_EQ(got->refund_reason, "sorry");
    EXPECT_EQ(got->paid_ms, 5);
    EXPECT_EQ(got->overdue_ms, 6);
    EXPECT_TRUE(got->suspended);
    auto plain = tx.invoice("icfg_1", "inv_b");
    EXPECT_EQ(plain->vercel_invoice_id, std::nullopt);
    EXPECT_FALSE(plain->final);
    EXPECT_EQ(plain->paid_ms, std::nullopt);
    EXPECT_EQ(tx.invoice_by_vercel_id("icfg_1", "vinv_1")->id, "inv_a");
    EXPECT_FALSE(tx.invoice_by_vercel_id("icfg_2", "vinv_1"));
    auto all = tx.invoices_of("icfg_1");
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].id, "inv_a");  // by period start
    EXPECT_EQ(all[1].id, "inv_b");
  });
  a.state = "paid";
  a.updated_ms = 9;
  this->w([&](WriteTx& tx) { tx.put_invoice(a); });
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.invoice("icfg_1", "inv_b")->state, "paid"); });

  // Balances and purchases.
  bool first = false, again = true;
  this->w([&](WriteTx& tx) {
    tx.put_balance({"icfg_1", "res_b", 500, 100, 1});
    tx.put_balance({"icfg_1", "", 1000, 0, 1});
    tx.put_balance({"icfg_1", "res_b", 700, 100, 2});
    first = tx.insert_purchase({"icfg_1", "vinv_9", R"([{"micros":5}])", 3});
    again = tx.insert_purchase({"icfg_1", "vinv_9", "[]", 4});
    tx.set_prepaid_charged("res_b", 100, 42);
    tx.set_prepaid_charged("res_b", 100, 43);
    tx.set_prepaid_charged("res_b", 200, 7);
  });
  EXPECT_TRUE(first);
  EXPECT_FALSE(again);
  this->r([](ReadTx& tx) {
    auto balances = tx.balances_of("icfg_1");
    ASSERT_EQ(balances.size(), 2u);
    EXPECT_EQ(balances[0].resource_id, "");
    EXPECT_EQ(balances[0].remaining(), 1000);
    EXPECT_EQ(balances[1].resource_id, "res_b");
    EXPECT_EQ(balances[1].credited_micros, 700);
    EXPECT_EQ(balances[1].debited_micros, 100);
    EXPECT_EQ(balances[1].updated_ms, 2);
    EXPECT_TRUE(tx.balances_of("icfg_2").empty());
    auto p = tx.purchase("icfg_1", "vinv_9");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->credits_json, R"([{"micros":5}])");
    EXPECT_EQ(p->created_ms, 3);
    EXPECT_FALSE(tx.purchase("icfg_1", "vinv_8"));
    EXPECT_EQ(tx.prepaid_charged("res_b", 100), 43);
    EXPECT_EQ(tx.prepaid_charged("res_b", 200), 7);
    EXPECT_EQ(tx.prepaid_charged("res_b", 300), 0);
  });
}

// Everything prefetch_billing stands in for, read with and without it in one transaction.
struct BillingReads {
  std::optional<InstallationRow> installation;
  std::optional<BillingStateRow> state;
  std::vector<PlanScheduleRow> schedules;
  std::vector<PlanPeriodRow> spans, march;
  std::vector<ResourceRow> resources, live;
  std::vector<InvoiceRow> invoices;
  std::optional<InvoiceRow> invoice;
  std::vector<BalanceRow> balances;
  std::optional<ResourceRow> res;
  int64_t prepaid = 0;
};

std::string describe(const ResourceRow& r) {
  return r.id + "@" + r.installation_id + ":" + r.billing_plan_id + ":" +
         r.billing_hold.value_or("-") + ":" + std::to_string(r.deleted_ms.value_or(0));
}

std::string describe(const BillingReads& b) {
  std::string out = b.installation ? b.installation->id + ":" + b.installation->status : "none";
  if (b.state)
    out += " state " + std::to_string(b.state->last_data_ms) + "/" +
           std::to_string(b.state->invoiced_through_ms);
  for (const auto& x : b.schedules) out += " sched " + x.resource_id + ">" + x.plan_id;
  for (const auto& x : b.spans)
    out += " span " + x.resource_id + ":" + x.plan_id + ":" + std::to_string(x.start_ms) + "-" +
           std::to_string(x.end_ms.value_or(-1));
  out += " |";
  for (const auto& x : b.march) out += " march " + x.resource_id + ":" + x.plan_id;
  for (const auto& x : b.resources) out += " res " + describe(x);
  for (const auto& x : b.live) out += " live " + x.id;
  for (const auto& x : b.invoices) out += " inv " + x.id + ":" + x.state + ":" + x.total;
  out += " one " + (b.invoice ? b.invoice->id + ":" + b.invoice->state : std::string("none"));
  for (const auto& x : b.balances)
    out += " bal " + x.resource_id + ":" + std::to_string(x.remaining());
  out += " res_b " + (b.res ? describe(*b.res) : std::string("none"));
  out += " prepaid " + std::to_string(b.prepaid);
  return out;
}

BillingReads billing_reads(ReadTx& tx, const std::string& inst) {
  BillingReads b;
  b.installation = tx.installation(inst);
  b.state = tx.billing_state(inst);
  b.schedules = tx.plan_schedules_of(inst);
  b.spans = tx.plan_periods(inst, 0, 1LL << 60);
  b.march = tx.plan_periods(inst, 1000, 2000);
  b.resources = tx.resources_of(inst);
  b.live = tx.live_resources_of(inst);
  b.invoices = tx.invoices_of(inst);
  b.invoice = tx.invoice(inst, "inv_1");
  b.balances = tx.balances_of(inst);
  b.res = tx.resource("res_b");
  b.prepaid = tx.prepaid_charged("res_b", 1000);
  return b;
}

TYPED_TEST(StoreContract, PrefetchedBillingRowsReadAsTheStoreAndFollowTheWrites) {
  this->w([](WriteTx& tx) {
    for (const char* id : {"icfg_1", "icfg_2"}) {
      tx.put_installation(installation(id));
      BillingStateRow st;
      st.installation_id = id;
      st.last_data_ms = 5;
      tx.put_billing_state(st);
    }
    auto a = resource("res_a", "icfg_1", 900, "pro");
    a.updated_ms = 900;
    tx.put_resource(a);
    tx.put_resource(resource("res_b", "icfg_1", 800, "credits"));
    tx.put_resource(resource("res_c", "icfg_2", 700));
    auto gone = resource("res_d", "icfg_1", 800, "free");
    tx.put_resource(gone);
    gone.deleted_ms = 1500;
    gone.updated_ms = 1500;
    tx.put_resource(gone);
    tx.put_plan_schedule({"icfg_1", "res_a", "free", 3000, 900});
    InvoiceRow inv;
    inv.installation_id = "icfg_1";
    inv.id = "inv_2";
    inv.period_start_ms = 1000;
    inv.total = "1.00";
    tx.put_invoice(inv);
    inv.id = "inv_1";
    tx.put_invoice(inv);
    tx.put_balance({"icfg_1", "res_b", 500, 100, 1});
    tx.set_prepaid_charged("res_b", 1000, 42);
  });
  const std::vector<std::string> insts = {"icfg_1", "icfg_2", "icfg_none"};
  // Reads after prefetch_billing equal the store's own, through writes it mirrors and ones
  // it does not.
  auto same = [&](WriteTx& tx, const std::string& when) {
    std::map<std::string, std::string> prefetched;
    for (const auto& id : insts) prefetched[id] = describe(billing_reads(tx, id));
    tx.prefetch_billing({});  // drops what was prefetched: the store's own reads
    for (const auto& id : insts)
      EXPECT_EQ(prefetched[id], describe(billing_reads(tx, id))) << when << ": " << id;
    tx.prefetch_billing(insts);
  };
  this->w([&](WriteTx& tx) {
    tx.prefetch_billing(insts);
    same(tx, "as read");
    EXPECT_EQ(tx.prepaid_charged("res_b", 1000), 42);
    EXPECT_EQ(tx.live_resources_of("icfg_1").size(), 2u);
    // Mirrored writes.
    auto st = *tx.billing_state("icfg_1");
    st.invoiced_through_ms = 77;
    tx.put_billing_state(st);
    InvoiceRow inv = *tx.invoice("icfg_1", "inv_1");
    inv.state = "paid";
    tx.put_invoice(inv);
    inv.id = "inv_0";
    inv.period_start_ms = 500;
    tx.put_invoice(inv);
    tx.put_balance({"icfg_1", "", 900, 0, 2});
    tx.put_balance({"icfg_1", "res_b", 500, 300, 2});
    tx.set_prepaid_charged("res_b", 1000, 50);
    auto ob = outbox("ob_1", "icfg_1");
    tx.insert_outbox(ob);
    auto b = *tx.resource("res_b");
    b.billing_hold = "credits";
    b.updated_ms = 1600;
    tx.put_resource(b);
    auto i2 = *tx.installation("icfg_2");
    i2.status = "suspended";
    tx.put_installation(i2);
    EXPECT_EQ(tx.billing_state("icfg_1")->invoiced_through_ms, 77);
    EXPECT_EQ(tx.invoices_of("icfg_1").front().id, "inv_0");
    EXPECT_EQ(tx.invoice("icfg_1", "inv_1")->state, "paid");
    EXPECT_EQ(tx.balances_of("icfg_1").size(), 2u);
    EXPECT_EQ(tx.prepaid_charged("res_b", 1000), 50);
    EXPECT_EQ(tx.resource("res_b")->billing_hold, "credits");
    EXPECT_EQ(tx.installation("icfg_2")->status, "suspended");
    same(tx, "after mirrored writes");
    // Writes it does not mirror: a plan change (spans), a transfer, usage.
    b.billing_plan_id = "pro";
    b.updated_ms = 1700;
    tx.put_resource(b);
    same(tx, "after a plan change");
    auto c = *tx.resource("res_c");
    c.installation_id = "icfg_1";
    tx.put_resource(c);
    b = *tx.resource("res_b");
    b.installation_id = "icfg_2";
    tx.put_resource(b);
    tx.add_usage("res_a", "2025-03-01", "writes", 1);
    same(tx, "after transfers");
    EXPECT_EQ(tx.resources_of("icfg_2").size(), 1u);
    EXPECT_EQ(tx.resources_of("icfg_2").front().id, "res_b");
    EXPECT_EQ(tx.prepaid_charged("res_b", 1000), 50);
  });
  // Committed as written.
  this->r([](ReadTx& tx) {
    EXPECT_EQ(tx.billing_state("icfg_1")->invoiced_through_ms, 77);
    EXPECT_EQ(tx.invoices_of("icfg_1").size(), 3u);
    EXPECT_EQ(tx.prepaid_charged("res_b", 1000), 50);
    EXPECT_EQ(tx.resource("res_b")->installation_id, "icfg_2");
    EXPECT_EQ(tx.resource("res_c")->installation_id, "icfg_1");
  });
}

// The ledger read announced ahead (PostgreSQL sends it at once) answers as the read made then:
// after writes elsewhere, after a ledger write (read again), for other arguments, or never
// asked for.
TYPED_TEST(StoreContract, AnnouncedLedgerReadsAnswerAsTheStoreDoes) {
  const std::vector<std::string> ids = {"res_a", "res_b"};
  this->w([&](WriteTx& tx) {
    tx.add_usage("res_a", "2025-03-01", "writes", 1);
    tx.add_usage("res_b", "2025-03-02", "writes", 2);
  });
  auto text = [](const std::map<std::string, std::vector<UsageEntry>>& m) {
    std::string out;
    for (const auto& [id, entries] : m)
      for (const auto& e : entries)
        out += id + "/" + e.day + "/" + e.metric + "=" + std::to_string(e.value) + " ";
    return out;
  };
  this->w([&](WriteTx& tx) {
    tx.expect_usage_between_many(ids, "2025-03-01", "2025-03-31");
    auto ob = outbox("ob_1", "icfg_1");
    tx.insert_outbox(ob);  // a write elsewhere, queued behind the read
    BillingStateRow st;
    st.installation_id = "icfg_1";
    tx.put_billing_state(st);
    EXPECT_EQ(text(tx.usage_between_many(ids, "2025-03-01", "2025-03-31")),
              "res_a/2025-03-01/writes=1 res_b/2025-03-02/writes=2 ");
    // The ledger written after the read was sent: read again.
    tx.expect_usage_between_many(ids, "2025-03-01", "2025-03-31");
    tx.add_usage("res_a", "2025-03-01", "writes", 10);
    EXPECT_EQ(text(tx.usage_between_many(ids, "2025-03-01", "2025-03-31")),
              "res_a/2025-03-01/writes=11 res_b/2025-03-02/writes=2 ");
    // Other arguments than announced; then one announced and never asked for.
    tx.expect_usage_between_many(ids, "2025-03-01", "2025-03-31");
    EXPECT_EQ(text(tx.usage_between_many({"res_b"}, "2025-03-01", "2025-03-31")),
              "res_b/2025-03-02/writes=2 ");
    EXPECT_EQ(text(tx.usage_between_many(ids, "2025-03-02", "2025-03-31")),
              "res_b/2025-03-02/writes=2 ");
    tx.expect_usage_between_many(ids, "2025-03-01", "2025-03-31");
  });
  this->r([&](ReadTx& tx) {
    EXPECT_EQ(text(tx.usage_between_many(ids, "2025-03-01", "2025-03-31")),
              "res_a/2025-03-01/writes=11 res_b/2025-03-02/writes=2 ");
    EXPECT_EQ(tx.outbox_stats().pending, 1);
    EXPECT_TRUE(tx.billing_state("icfg_1"));
  });
}

// A large read sent ahead, then more writes than the sockets hold before it is taken: the
// server's answer must be read while the writes go out, or each side would wait forever for
// the other (libpq reads what arrives while it waits to send, in blocking mode too).
TYPED_TEST(StoreContract, ALargeReadSentAheadAndLargeWritesDoNotWaitOnEachOther) {
  const std::string metric(1000, 'm');  // ≈ 1 KB a row
  std::vector<std::string> ids;
  this->w([&](WriteTx& tx) {
    for (int r = 0; r < 200; ++r) {
      ids.push_back("res_" + std::to_string(1000 + r));
      for (int d = 1; d <= 25; ++d) {
        char day[16];
        std::snprintf(day, sizeof day, "2025-03-%02d", d);
        tx.add_usage(ids.back(), day, metric, d);
      }
    }
  });
  size_t entries = 0;
  this->w([&](WriteTx& tx) {
    tx.expect_usage_between_many(ids, "2025-03-01", "2025-03-31");  // ≈ 5 MB
    for (int i = 0; i < 8; ++i) {
      auto ob = outbox("ob_" + std::to_string(i), "icfg_1");
      ob.body = std::string(1 << 20, 'b');  // 1 MiB each
      tx.insert_outbox(ob);
    }
    for (const auto& [id, list] : tx.usage_between_many(ids, "2025-03-01", "2025-03-31"))
      entries += list.size();
  });
  EXPECT_EQ(entries, 200u * 25u);
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.outbox_stats().pending, 8); });
}

TYPED_TEST(StoreContract, UsageBeforeOfManyResourcesReadsAsEachDoes) {
  this->w([](WriteTx& tx) {
    tx.set_usage("res_a", "2025-02-27", "storage", 5);
    tx.set_usage("res_a", "2025-02-28", "storage", 6);
    tx.set_usage("res_a", "2025-03-01", "storage", 7);  // not before
    tx.add_usage("res_a", "2025-02-28", "writes", 9);   // another metric
    tx.set_usage("res_b", "2025-01-01", "storage", 1);
    tx.add_usage("res_c", "2025-02-01", "writes", 1);  // no storage
  });
  this->r([](ReadTx& tx) {
    auto many =
        tx.usage_before_many({"res_a", "res_b", "res_c", "res_none"}, "storage", "2025-03-01");
    EXPECT_EQ(many, (std::map<std::string, int64_t>{{"res_a", 6}, {"res_b", 1}}));
    for (const char* id : {"res_a", "res_b", "res_c"}) {
      auto one = tx.usage_before(id, "storage", "2025-03-01");
      EXPECT_EQ(one.has_value(), many.count(id) == 1) << id;
      if (one) {
        EXPECT_EQ(*one, many[id]) << id;
      }
    }
    EXPECT_TRUE(tx.usage_before_many({}, "storage", "2025-03-01").empty());
  });
}

// A write whose result is not waited for (PostgreSQL sends them pipelined) still fails its
// transaction: nothing of it is written, the error reaches the caller, the store goes on.
TYPED_TEST(StoreContract, AFailingWriteAmongOthersFailsTheWholeTransaction) {
  auto ob = outbox("ob_1", "icfg_1");
  this->w([&](WriteTx& tx) { tx.insert_outbox(ob); });
  EXPECT_ANY_THROW(this->w([&](WriteTx& tx) {
    BillingStateRow st;
    st.installation_id = "icfg_1";
    tx.put_billing_state(st);
    tx.insert_outbox(ob);  // the same id again
    tx.put_balance({"icfg_1", "", 1, 0, 1});
    (void)tx.resources_of("icfg_1");
  }));
  EXPECT_ANY_THROW(this->w([&](WriteTx& tx) {
    tx.put_balance({"icfg_1", "", 1, 0, 1});
    tx.insert_outbox(ob);  // failing last: seen at the commit
  }));
  this->r([](ReadTx& tx) {
    EXPECT_FALSE(tx.billing_state("icfg_1"));
    EXPECT_TRUE(tx.balances_of("icfg_1").empty());
    EXPECT_EQ(tx.outbox_stats().pending, 1);
  });
  this->w([](WriteTx& tx) { tx.put_balance({"icfg_1", "", 1, 0, 1}); });  // still usable
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.balances_of("icfg_1").size(), 1u); });
}

// ---- sessions, flags, branches -------------------------------------------------------------

TYPED_TEST(StoreContract, SessionsInsertDeletePurgeAndMemberChanges) {
  this->w([](WriteTx& tx) {
    tx.insert_session({"h1", "icfg_1", "acct", "u1", "ADMIN", "Ann", "a@x", 1, 100});
    tx.insert_session({"h2", "icfg_1", "acct", "u1", "ADMIN", "Ann", "a@x", 2, 300});
    tx.insert_session({"h3", "icfg_1", "acct", "u2", "USER", "", "", 3, 300});
    tx.insert_session({"h4", "icfg_2", "acct", "u1", "ADMIN", "", "", 4, 300});
  });
  this->r([](ReadTx& tx) {
    auto s = tx.session("h1");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->installation_id, "icfg_1");
    EXPECT_EQ(s->account_id, "acct");
    EXPECT_EQ(s->user_id, "u1");
    EXPECT_EQ(s->role, "ADMIN");
    EXPECT_EQ(s->user_name, "Ann");
    EXPECT_EQ(s->user_email, "a@x");
    EXPECT_EQ(s->created_ms, 1);
    EXPECT_EQ(s->expires_ms, 100);
    EXPECT_FALSE(tx.session("h9"));
  });
  int64_t purged = 0, roles = 0, same_role = 0, removed = 0;
  this->w([&](WriteTx& tx) {
    purged = tx.purge_sessions(200);                              // h1
    roles = tx.set_member_sessions_role("icfg_1", "u1", "USER");  // h2
    same_role = tx.set_member_sessions_role("icfg_1", "u2", "USER");
    removed = tx.delete_member_sessions("icfg_1", "u2");  // h3
    tx.delete_session("h4");
  });
  EXPECT_EQ(purged, 1);
  EXPECT_EQ(roles, 1);
  EXPECT_EQ(same_role, 0);
  EXPECT_EQ(removed, 1);
  this->r([](ReadTx& tx) {
    EXPECT_FALSE(tx.session("h1"));
    EXPECT_EQ(tx.session("h2")->role, "USER");
    EXPECT_FALSE(tx.session("h3"));
    EXPECT_FALSE(tx.session("h4"));
  });
}

TYPED_TEST(StoreContract, FlagsAndFlagSets) {
  FlagRow a{"flg_1", "res_f", "beta", R"({"v":1})", false, 1, 1};
  FlagRow b{"flg_2", "res_f", "Alpha", R"({"v":2})", true, 2, 2};
  FlagRow c{"flg_3", "res_g", "beta", "{}", false, 3, 3};
  FlagSetRow set{"res_f", 3, "global-config", "digest", "hash", 9};
  this->w([&](WriteTx& tx) {
    tx.put_flag(a);
    tx.put_flag(b);
    tx.put_flag(c);
    tx.put_flag_set(set);
  });
  this->r([&](ReadTx& tx) {
    auto flags = tx.flags_of("res_f");
    ASSERT_EQ(flags.size(), 2u);
    EXPECT_EQ(flags[0].key, "Alpha");  // byte order: upper case first
    EXPECT_EQ(flags[1].key, "beta");
    EXPECT_TRUE(flags[0].archived);
    auto got = tx.flag("res_f", "beta");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, "flg_1");
    EXPECT_EQ(got->definition_json, a.definition_json);
    EXPECT_FALSE(got->archived);
    EXPECT_EQ(got->created_ms, 1);
    EXPECT_EQ(tx.flag_by_id("flg_3")->resource_id, "res_g");
    EXPECT_FALSE(tx.flag("res_f", "gamma"));
    EXPECT_EQ(tx.flag_count("res_f"), 2);
    EXPECT_EQ(tx.flag_set("res_f"), set);
    EXPECT_FALSE(tx.flag_set("res_g"));
  });
  // The same key under a new id replaces the old flag.
  FlagRow a2{"flg_9", "res_f", "beta", R"({"v":9})", false, 5, 5};
  this->w([&](WriteTx& tx) {
    tx.put_flag(a2);
    tx.delete_flag("flg_2");
  });
  this->r([](ReadTx& tx) {
    EXPECT_EQ(tx.flag_count("res_f"), 1);
    EXPECT_EQ(tx.flag("res_f", "beta")->id, "flg_9");
    EXPECT_FALSE(tx.flag_by_id("flg_1"));
  });
  this->w([](WriteTx& tx) { tx.delete_flags_of("res_f"); });
  this->r([](ReadTx& tx) {
    EXPECT_EQ(tx.flag_count("res_f"), 0);
    EXPECT_FALSE(tx.flag_set("res_f"));
    EXPECT_EQ(tx.flag_count("res_g"), 1);
  });
}

TYPED_TEST(StoreContract, BranchesRoundTripAndListByResource) {
  BranchRow a;
  a.id = "res_a-br-2";
  a.resource_id = "res_a";
  a.installation_id = "icfg_1";
  a.deployment_id = "dpl_1";
  a.action = "branch";
  a.secrets_sealed = kSealed;
  a.created_ms = 20;
  a.updated_ms = 20;
  BranchRow b = a;
  b.id = "res_a-br-1";
  b.created_ms = 10;
  b.secrets_sealed = std::nullopt;
  b.status = "failed";
  b.status_text = "no room";
  this->w([&](WriteTx& tx) {
    tx.put_branch(a);
    tx.put_branch(b);
  });
  this->r([&](ReadTx& tx) {
    auto got = tx.branch("res_a-br-2");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->deployment_id, "dpl_1");
    EXPECT_EQ(got->action, "branch");
    EXPECT_EQ(got->status, "running");
    EXPECT_EQ(got->secrets_sealed, kSealed);
    auto all = tx.branches_of("res_a");
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].id, "res_a-br-1");
    EXPECT_EQ(all[0].status_text, "no room");
    EXPECT_EQ(all[0].secrets_sealed, std::nullopt);
    EXPECT_TRUE(tx.branches_of("res_b").empty());
  });
  a.status = "dropped";
  a.updated_ms = 30;
  this->w([&](WriteTx& tx) { tx.put_branch(a); });
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.branch("res_a-br-2")->status, "dropped"); });
}

// ---- transactions --------------------------------------------------------------------------

TYPED_TEST(StoreContract, AThrowingWriteWritesNothingAndItsErrorReachesTheCaller) {
  EXPECT_THROW(this->w([](WriteTx& tx) {
    tx.put_installation(installation("icfg_1"));
    tx.add_usage("res_a", "2025-03-01", "writes", 1);
    throw std::logic_error("no");
  }),
               std::logic_error);
  this->r([](ReadTx& tx) {
    EXPECT_FALSE(tx.installation("icfg_1"));
    EXPECT_TRUE(tx.usage("res_a", "2025-03-01").empty());
  });
  this->w([](WriteTx& tx) { tx.put_installation(installation("icfg_1")); });  // still usable
  this->r([](ReadTx& tx) { EXPECT_TRUE(tx.installation("icfg_1")); });
}

TYPED_TEST(StoreContract, AWriteReadsItsOwnWrites) {
  this->w([](WriteTx& tx) {
    tx.put_resource(resource("res_a", "icfg_1", 1));
    tx.add_usage("res_a", "2025-03-01", "writes", 3);
    EXPECT_TRUE(tx.resource("res_a"));
    EXPECT_EQ(tx.usage("res_a", "2025-03-01").at("writes"), 3);
    EXPECT_EQ(tx.live_resources_of("icfg_1").size(), 1u);
  });
}

// Read-modify-write from many threads at once: every increment lands (writes behave as if
// one ran at a time: SQLite serializes them, PostgreSQL retries the loser of a conflict).
TYPED_TEST(StoreContract, ConcurrentReadModifyWritesAllLand) {
  constexpr int kThreads = 6, kEach = 15;
  this->w([](WriteTx& tx) {
    BillingStateRow st;
    st.installation_id = "icfg_1";
    tx.put_billing_state(st);
  });
  std::atomic<int> runs{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        this->s().write([&](WriteTx& tx) {
          ++runs;
          auto st = tx.billing_state("icfg_1");
          st->last_data_ms += 1;
          tx.put_billing_state(*st);
        });
    });
  for (auto& t : ts) t.join();
  this->r(
      [&](ReadTx& tx) { EXPECT_EQ(tx.billing_state("icfg_1")->last_data_ms, kThreads * kEach); });
  EXPECT_GE(runs, kThreads * kEach);
}

// Two writes that read the same row and then both change it: on PostgreSQL one of them fails
// to serialize and its closure runs again, on a fresh snapshot (so both increments land).
TYPED_TEST(StoreContract, AConflictingWriteRunsItsWholeClosureAgain) {
  if constexpr (!TypeParam::kPostgres) {
    GTEST_SKIP() << "SQLite runs writes one at a time: they never conflict";
  } else {
    this->w([](WriteTx& tx) {
      BillingStateRow st;
      st.installation_id = "icfg_1";
      tx.put_billing_state(st);
    });
    std::atomic<int> runs{0}, have_read{0};
    auto body = [&](WriteTx& tx) {
      int run = ++runs;
      auto st = tx.billing_state("icfg_1");
      if (run <= 2) {  // both first runs read before either writes
        ++have_read;
        while (have_read < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      st->last_data_ms += 1;
      tx.put_billing_state(*st);
    };
    std::thread a([&] { this->s().write(body); });
    std::thread b([&] { this->s().write(body); });
    a.join();
    b.join();
    EXPECT_EQ(runs, 3);
    this->r([](ReadTx& tx) { EXPECT_EQ(tx.billing_state("icfg_1")->last_data_ms, 2); });
  }
}

// Outbox calls inserted by concurrent transactions: distinct seqs, and each lane's calls in
// the order their transactions committed (the order each thread inserted them).
TYPED_TEST(StoreContract, ConcurrentOutboxInsertsKeepEachLaneInCommitOrder) {
  constexpr int kThreads = 4, kEach = 10;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        this->s().write([&](WriteTx& tx) {
          auto row = outbox("o" + std::to_string(t) + "_" + std::to_string(100 + i),
                            "icfg_" + std::to_string(t));
          tx.insert_outbox(row);
          auto row2 = outbox("o" + std::to_string(t) + "_" + std::to_string(100 + i) + "b",
                             "icfg_shared", "lane_" + std::to_string(t));
          tx.insert_outbox(row2);
        });
      }
    });
  for (auto& t : ts) t.join();
  this->r([&](ReadTx& tx) {
    auto all = tx.outbox_list("", 1000);  // newest first
    ASSERT_EQ(all.size(), static_cast<size_t>(2 * kThreads * kEach));
    std::set<int64_t> seqs;
    std::map<std::string, std::string> last_id_by_lane;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      seqs.insert(it->seq);
      auto& last = last_id_by_lane[it->ordering_key()];
      EXPECT_LT(last, it->id) << "lane " << it->ordering_key();
      last = it->id;
    }
    EXPECT_EQ(seqs.size(), all.size());
  });
}

// A read is one snapshot: a write that commits during it is not seen by it.
TYPED_TEST(StoreContract, AReadIsOneSnapshot) {
  this->w([](WriteTx& tx) { tx.add_usage("res_a", "2025-03-01", "writes", 1); });
  this->r([&](ReadTx& tx) {
    EXPECT_EQ(tx.usage("res_a", "2025-03-01").at("writes"), 1);
    std::thread other(
        [&] { this->w([](WriteTx& wtx) { wtx.add_usage("res_a", "2025-03-01", "writes", 1); }); });
    other.join();
    EXPECT_EQ(tx.usage("res_a", "2025-03-01").at("writes"), 1);
  });
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.usage("res_a", "2025-03-01").at("writes"), 2); });
}

// ---- replicas: plan schedules, outbox lane leases, leadership -------------------------------

TYPED_TEST(StoreContract, PlanSchedulesReplaceListAndDelete) {
  this->w([](WriteTx& tx) {
    tx.put_plan_schedule({"icfg_1", "res_b", "pro", 300, 10});
    tx.put_plan_schedule({"icfg_1", "", "team", 200, 10});
    tx.put_plan_schedule({"icfg_2", "res_c", "pro", 100, 10});
    tx.put_plan_schedule({"icfg_1", "res_b", "max", 250, 20});  // replaces res_b's
  });
  this->r([](ReadTx& tx) {
    auto mine = tx.plan_schedules_of("icfg_1");
    ASSERT_EQ(mine.size(), 2u);
    EXPECT_EQ(mine[0], (PlanScheduleRow{"icfg_1", "", "team", 200, 10}));  // by effective time
    EXPECT_EQ(mine[1], (PlanScheduleRow{"icfg_1", "res_b", "max", 250, 20}));
  });
  bool deleted = false, again = true;
  this->w([&](WriteTx& tx) {
    deleted = tx.delete_plan_schedule("icfg_1", "res_b");
    again = tx.delete_plan_schedule("icfg_1", "res_b");
  });
  EXPECT_TRUE(deleted);
  EXPECT_FALSE(again);
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.plan_schedules_of("icfg_1").size(), 1u); });
}

TYPED_TEST(StoreContract, OutboxLeasesAreTakenOnlyWhenFreeOwnOrEnded) {
  bool a = false, b = false, a_again = false, b_late = false;
  this->w([&](WriteTx& tx) {
    a = tx.take_outbox_lease("icfg_1", "replica-a", 1000, 5000);
    b = tx.take_outbox_lease("icfg_1", "replica-b", 2000, 6000);        // a's, still on
    a_again = tx.take_outbox_lease("icfg_1", "replica-a", 3000, 7000);  // renewed
  });
  EXPECT_TRUE(a);
  EXPECT_FALSE(b);
  EXPECT_TRUE(a_again);
  this->r([](ReadTx& tx) {
    EXPECT_EQ(tx.outbox_lease("icfg_1")->until_ms, 7000);
    EXPECT_FALSE(tx.outbox_lease("icfg_2"));
  });
  this->w([&](WriteTx& tx) { b_late = tx.take_outbox_lease("icfg_1", "replica-b", 7000, 9000); });
  EXPECT_TRUE(b_late);  // a's ended
  this->w([](WriteTx& tx) {
    tx.release_outbox_lease("icfg_1", "replica-a");  // not a's any more: kept
  });
  this->r([](ReadTx& tx) { EXPECT_EQ(tx.outbox_lease("icfg_1")->owner, "replica-b"); });
  this->w([](WriteTx& tx) { tx.release_outbox_lease("icfg_1", "replica-b"); });
  this->r([](ReadTx& tx) { EXPECT_FALSE(tx.outbox_lease("icfg_1")); });
}

TYPED_TEST(StoreContract, ClaimedHeadsAreEachReplicasOwnInLaneOrder) {
  this->w([](WriteTx& tx) {
    for (const char* inst : {"icfg_1", "icfg_2", "icfg_3"}) {
      auto first = outbox(std::string("obx_") + inst + "_1", inst);
      auto second = outbox(std::string("obx_") + inst + "_2", inst);
      tx.insert_outbox(first);
      tx.insert_outbox(second);
    }
  });
  std::vector<OutboxRow> a, b;
  this->w([&](WriteTx& tx) { a = claim_outbox_heads(tx, "replica-a", 2, 1000, 60000); });
  this->w([&](WriteTx& tx) { b = claim_outbox_heads(tx, "replica-b", 10, 1000, 60000); });
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 1u);  // the one lane a did not claim
  std::set<std::string> lanes;
  for (const auto& h : a) lanes.insert(h.ordering_key());
  for (const auto& h : b) lanes.insert(h.ordering_key());
  EXPECT_EQ(lanes.size(), 3u);
  for (const auto& h : a) EXPECT_EQ(h.id.back(), '1');  // heads only
  // a's call is recorded (delivered, lease released): b may take that lane's next call.
  OutboxRow done = a[0];
  done.state = "delivered";
  done.done_ms = 1100;
  this->w([&](WriteTx& tx) {
    tx.update_outbox(done);
    tx.release_outbox_lease(done.ordering_key(), "replica-a");
  });
  std::vector<OutboxRow> next;
  this->w([&](WriteTx& tx) { next = claim_outbox_heads(tx, "replica-b", 10, 1200, 60000); });
  bool found = false;
  for (const auto& h : next)
    if (h.ordering_key() == done.ordering_key()) {
      found = true;
      EXPECT_EQ(h.id.back(), '2');
    }
  EXPECT_TRUE(found);
}

TYPED_TEST(StoreContract, OneOfTheProcessesOnAStoreLeadsAndASuccessorTakesOver) {
  auto other = this->backend_.open_again();
  EXPECT_TRUE(this->s().lead());
  EXPECT_TRUE(this->s().lead());  // kept
  EXPECT_FALSE(other->lead());
  this->store_.reset();  // the leader goes away (its lock or session with it)
  EXPECT_TRUE(other->lead());
  this->store_ = this->backend_.open_again();
  EXPECT_FALSE(this->s().lead());
}

// The server closes every connection (a restart, an idle timeout): the next read and write
// open new ones instead of failing on the dead idle ones.
TYPED_TEST(StoreContract, ConnectionsTheServerClosedAreReplaced) {
  if constexpr (!TypeParam::kPostgres) {
    GTEST_SKIP() << "SQLite has no server";
  } else {
    // Several idle connections in the pool.
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i)
      ts.emplace_back([&] {
        this->r([](ReadTx&) { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
      });
    for (auto& t : ts) t.join();
    TypeParam::admin_exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
        this->backend_.db + "' AND pid <> pg_backend_pid()");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    this->w([](WriteTx& tx) { tx.put_installation(installation("icfg_1")); });
    this->r([](ReadTx& tx) { EXPECT_TRUE(tx.installation("icfg_1")); });
    EXPECT_TRUE(this->s().healthy());
  }
}

TYPED_TEST(StoreContract, DescribeNamesTheBackendWithoutAPassword) {
  std::string d = this->s().describe();
  if constexpr (TypeParam::kPostgres) {
    EXPECT_EQ(d.rfind("postgresql://wharf_admin@127.0.0.1:", 0), 0u) << d;
    EXPECT_EQ(d.find(':', std::string("postgresql://").size()), d.find("127.0.0.1:") + 9) << d;
  } else {
    EXPECT_EQ(d.rfind("sqlite:", 0), 0u) << d;
  }
}

TEST(PostgresStoreUrl, RedactsThePassword) {
  EXPECT_EQ(postgres::redact_url("postgres://u:secret@h:5432/db"), "postgres://u@h:5432/db");
  EXPECT_EQ(postgres::redact_url("postgresql://u@h/db?sslmode=require&password=x"),
            "postgresql://u@h/db?sslmode=require");
  EXPECT_EQ(postgres::redact_url("postgres://h/db?password=x"), "postgres://h/db");
  EXPECT_EQ(postgres::redact_url("postgres://u:p%40ss@h/db"), "postgres://u@h/db");
}

}  // namespace
}  // namespace wharf::store
