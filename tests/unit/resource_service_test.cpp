// ResourceService and TransferService over a real SQLite store and the real SQLite product,
// with an injected clock: rotation delays, transfers and usage are checked without sleeping.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "model/api_error.h"
#include "product/sqlite_db/sqlite_db.h"
#include "service/installations.h"
#include "service/resources.h"
#include "service/transfers.h"
#include "store/sqlite/sqlite_store.h"
#include "util/crypto.h"

namespace wharf::service {
namespace {

using model::ApiError;
using model::Json;

class ResourceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_resource_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
    catalog_ = model::Catalog::parse_text(model::builtin_catalog_json());
    db_ = std::make_unique<product::SqliteDb>((dir_ / "databases").string());
    installations_ = std::make_unique<InstallationService>(*store_, catalog_, box_, clock_);
    resources_ = std::make_unique<ResourceService>(
        *store_, catalog_, *installations_,
        std::map<std::string, product::Product*>{{"sqlite-db", db_.get()}}, box_, clock_,
        ResourceService::Options{"http://wharf.test", 0.9, nullptr, {}});
    transfers_ = std::make_unique<TransferService>(*store_, catalog_, *installations_, clock_);
    for (auto id : {"icfg_a", "icfg_b", "icfg_c"}) install(id);
  }
  void TearDown() override {
    transfers_.reset();
    resources_.reset();
    db_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void install(const std::string& id) {
    installations_->upsert(
        id, Actor{"team_" + id, "u1"},
        model::UpsertInstallationRequest::parse(
            Json{{"scopes", {"x"}},
                 {"acceptedPolicies", Json::object()},
                 {"credentials", {{"access_token", "t"}, {"token_type", "Bearer"}}}}));
  }

  Json provision(const std::string& inst, const std::optional<std::string>& key = std::nullopt) {
    return resources_->provision(
        inst,
        model::ProvisionResourceRequest::parse(Json{{"productId", "sqlite-db"},
                                                    {"name", "db"},
                                                    {"metadata", {{"durability", "normal"}}},
                                                    {"billingPlanId", "sqlite-free"}}),
        key);
  }

  static std::string secret(const Json& secrets, const std::string& name) {
    for (const auto& s : secrets)
      if (s["name"] == name) return s["value"];
    return "";
  }

  Json sql(const std::string& rid, const std::string& token, const std::string& text) {
    return resources_->query(rid, token, Json{{"sql", text}});
  }

  std::filesystem::path dir_;
  util::ManualClock clock_{1'800'000'000'000};
  util::SecretBox box_{util::random_bytes(32)};
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<const model::Catalog> catalog_;
  std::unique_ptr<product::SqliteDb> db_;
  std::unique_ptr<InstallationService> installations_;
  std::unique_ptr<ResourceService> resources_;
  std::unique_ptr<TransferService> transfers_;
};

TEST_F(ResourceServiceTest, RotatedTokenWorksUntilTheDelayPasses) {
  Json res = provision("icfg_a");
  std::string rid = res["id"], old_token = secret(res["secrets"], "DATABASE_TOKEN");
  sql(rid, old_token, "create table t(x)");

  model::RotateSecretsRequest req;
  req.delay_hours = 2;
  auto out = resources_->rotate("icfg_a", rid, req);
  ASSERT_EQ(out.status, 200);
  std::string new_token = secret(out.body["secrets"], "DATABASE_TOKEN");
  ASSERT_NE(new_token, old_token);

  clock_.advance_ms(2 * 3600 * 1000 - 1000);  // one second before the delay ends
  EXPECT_NO_THROW(sql(rid, old_token, "insert into t values (1)"));
  clock_.advance_ms(2000);
  try {
    sql(rid, old_token, "select 1");
    FAIL() << "old token still accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 401);
  }
  EXPECT_EQ(sql(rid, new_token, "select count(*) from t")["results"][0]["rows"][0][0], 1);
}

TEST_F(ResourceServiceTest, UsageLedgerCountsQueriesRowsAndStorage) {
  Json res = provision("icfg_a");
  std::string rid = res["id"], token = secret(res["secrets"], "DATABASE_TOKEN");
  sql(rid, token, "create table t(x)");
  resources_->query(
      rid, token,
      Json{{"statements",
            {{{"sql", "insert into t values (1), (2), (3)"}}, {{"sql", "select x from t"}}}}});
  resources_->flush_usage();
  std::map<std::string, int64_t> usage;
  store_->read([&](store::ReadTx& tx) {
    usage = tx.usage(rid, util::format_iso8601_ms(clock_.now_ms()).substr(0, 10));
  });
  EXPECT_EQ(usage["queries"], 3);
  EXPECT_EQ(usage["rowsWritten"], 3);
  EXPECT_EQ(usage["rowsRead"], 3);
  EXPECT_GT(usage["storageBytes"], 0);
}

TEST_F(ResourceServiceTest, ProvisionIsIdempotentPerKey) {
  Json first = provision("icfg_a", std::string("k1"));
  Json second = provision("icfg_a", std::string("k1"));
  EXPECT_EQ(first, second);
  Json other = provision("icfg_b", std::string("k1"));  // keys are per installation
  EXPECT_NE(other["id"], first["id"]);
  EXPECT_EQ(resources_->list("icfg_a", {})["resources"].size(), 1u);
}

TEST_F(ResourceServiceTest, ConcurrentAcceptsMoveTheResourceOnce) {
  std::string rid = provision("icfg_a")["id"];
  Json claim = transfers_->create(
      "icfg_a", Json{{"resourceIds", {rid}}, {"expiresAt", clock_.now_ms() + 60000}});
  std::string id = claim["providerClaimId"];
  transfers_->verify("icfg_b", id);
  transfers_->verify("icfg_c", id);
  std::atomic<int> wins{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      try {
        transfers_->accept(i % 2 ? "icfg_b" : "icfg_c", id);
        ++wins;
      } catch (const ApiError& e) {
        if (e.status == 409) ++conflicts;
      }
    });
  for (auto& t : threads) t.join();
  // The winner's repeats succeed too, so wins counts the winner's 4 calls.
  EXPECT_EQ(wins.load(), 4);
  EXPECT_EQ(conflicts.load(), 4);
  int owners = 0;
  for (auto inst : {"icfg_b", "icfg_c"}) {
    try {
      resources_->get(inst, rid);
      ++owners;
    } catch (const ApiError&) {
    }
  }
  EXPECT_EQ(owners, 1);
  EXPECT_THROW(resources_->get("icfg_a", rid), ApiError);
}

TEST_F(ResourceServiceTest, ExpiredClaimsAreRefused) {
  std::string rid = provision("icfg_a")["id"];
  Json claim = transfers_->create(
      "icfg_a", Json{{"resourceIds", {rid}}, {"expiresAt", clock_.now_ms() + 1000}});
  clock_.advance_ms(1001);
  try {
    transfers_->verify("icfg_b", claim["providerClaimId"]);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 409);
  }
  // Only resources of the source installation can be claimed.
  std::string theirs = provision("icfg_b")["id"];
  EXPECT_THROW(transfers_->create("icfg_a", Json{{"resourceIds", {theirs}},
                                                 {"expiresAt", clock_.now_ms() + 60000}}),
               ApiError);
}

}  // namespace
}  // namespace wharf::service
