// Services over a real SQLite store in a temporary directory.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "model/api_error.h"
#include "service/idempotency.h"
#include "service/installations.h"
#include "service/plans.h"
#include "store/sqlite/sqlite_store.h"
#include "util/crypto.h"

namespace wharf::service {
namespace {

using model::ApiError;
using model::Json;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_service_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<const model::Catalog> catalog(bool installation_plans) {
    Json doc = Json::parse(model::builtin_catalog_json());
    if (installation_plans) {
      doc["plans"].push_back({{"id", "team-free"},
                              {"type", "subscription"},
                              {"name", "Team free"},
                              {"description", "d"},
                              {"scope", "installation"},
                              {"paymentMethodRequired", false}});
      doc["plans"].push_back({{"id", "team-pro"},
                              {"type", "subscription"},
                              {"name", "Team pro"},
                              {"description", "d"},
                              {"scope", "installation"}});
      doc["products"][0]["plans"].push_back("team-free");
      doc["products"][0]["plans"].push_back("team-pro");
    }
    return model::Catalog::parse(doc);
  }

  static model::UpsertInstallationRequest upsert_request(const std::string& token) {
    return model::UpsertInstallationRequest::parse(
        Json{{"scopes", {"read-write:integration-resource"}},
             {"acceptedPolicies", {{"toc", "2024-02-28T10:00:00Z"}}},
             {"credentials", {{"access_token", token}, {"token_type", "Bearer"}}},
             {"account", {{"url", "https://vercel.com/acme"}, {"contact", {{"email", "a@b.c"}}}}}});
  }

  std::string file_bytes() {
    std::string all;
    for (auto name : {"state.db", "state.db-wal"}) {
      std::ifstream in(dir_ / name, std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  util::SystemClock clock_;
  util::SecretBox box_{util::random_bytes(32)};
};

TEST_F(ServiceTest, UpsertUpdatesInPlaceAndEncryptsTheToken) {
  InstallationService svc(*store_, catalog(false), box_, clock_);
  Actor actor{"team_1", "u1"};
  svc.upsert("icfg_a", actor, upsert_request("tok_first_6f1c2e"));
  EXPECT_EQ(svc.access_token("icfg_a"), "tok_first_6f1c2e");
  svc.upsert("icfg_a", actor, upsert_request("tok_second_9a8b7c"));
  EXPECT_EQ(svc.access_token("icfg_a"), "tok_second_9a8b7c");
  EXPECT_FALSE(svc.get("icfg_a").billing_plan);  // resource-level billing only

  std::string bytes = file_bytes();
  EXPECT_EQ(bytes.find("tok_first_6f1c2e"), std::string::npos);
  EXPECT_EQ(bytes.find("tok_second_9a8b7c"), std::string::npos);

  // Another account may not take the installation over.
  EXPECT_THROW(svc.upsert("icfg_a", Actor{"team_2", "u9"}, upsert_request("x")), ApiError);
}

TEST_F(ServiceTest, InstallationLevelBillingDefaultAndPlanChange) {
  InstallationService svc(*store_, catalog(true), box_, clock_);
  auto state = svc.upsert("icfg_b", Actor{"team_1", "u1"}, upsert_request("t"));
  ASSERT_TRUE(state.billing_plan);
  EXPECT_EQ((*state.billing_plan)["id"], "team-free");

  model::UpdateInstallationRequest change;
  change.billing_plan_id = "team-pro";
  EXPECT_EQ((*svc.update("icfg_b", change).billing_plan)["id"], "team-pro");
  EXPECT_EQ((*svc.get("icfg_b").billing_plan)["id"], "team-pro");

  change.billing_plan_id = "sqlite-pro";  // resource-scope
  EXPECT_THROW(svc.update("icfg_b", change), ApiError);
  change.billing_plan_id = "nope";
  EXPECT_THROW(svc.update("icfg_b", change), ApiError);
  EXPECT_EQ((*svc.get("icfg_b").billing_plan)["id"], "team-pro");  // failures changed nothing

  // A paid plan is owed: not finalized, token kept for the final invoice.
  EXPECT_FALSE(svc.remove("icfg_b", {}));
  EXPECT_FALSE(svc.remove("icfg_b", {}));  // repeat answers the same
  EXPECT_TRUE(svc.access_token("icfg_b"));
  EXPECT_THROW(svc.get("icfg_b"), ApiError);
}

TEST_F(ServiceTest, DeleteOnFreePlanFinalizesAndDropsToken) {
  InstallationService svc(*store_, catalog(true), box_, clock_);
  svc.upsert("icfg_c", Actor{"team_1", "u1"}, upsert_request("t"));
  model::DeleteInstallationRequest req;
  req.cascade_resource_deletion = true;
  req.reason = "user-requested";
  EXPECT_TRUE(svc.remove("icfg_c", req));
  EXPECT_TRUE(svc.remove("icfg_c", req));
  EXPECT_FALSE(svc.access_token("icfg_c"));
  // The id is spent: a reinstall comes with a new one.
  EXPECT_THROW(svc.upsert("icfg_c", Actor{"team_1", "u1"}, upsert_request("t")), ApiError);
  EXPECT_THROW(svc.remove("icfg_unknown", req), ApiError);
}

TEST_F(ServiceTest, PlanListings) {
  auto cat = catalog(true);
  InstallationService installs(*store_, cat, box_, clock_);
  PlanService plans(*store_, cat, installs);
  EXPECT_EQ(Json::parse(plans.product_plans("sqlite-db", std::nullopt))["plans"].size(), 5u);
  EXPECT_THROW(plans.product_plans("nope", std::nullopt), ApiError);
  EXPECT_THROW(plans.product_plans("sqlite-db", std::string("[1]")), ApiError);
  EXPECT_THROW(plans.product_plans("sqlite-db", std::string(R"({"durability":"fast"})")), ApiError);
  EXPECT_THROW(plans.installation_plans("icfg_none", std::nullopt), ApiError);
  installs.upsert("icfg_d", Actor{"team_1", "u1"}, upsert_request("t"));
  // Every plan of the catalog: sqlite-db's five and the flags product's two.
  EXPECT_EQ(Json::parse(plans.installation_plans("icfg_d", std::nullopt))["plans"].size(), 7u);
}

TEST_F(ServiceTest, IdempotencyReplaysAndRunsConcurrentDuplicatesOnce) {
  IdempotencyService idem(*store_, clock_, box_, {});
  store::IdempotencyKey key{"icfg_a", "PUT", "/v1/installations/icfg_a", "k1"};
  std::atomic<int> executions{0};
  auto execute = [&] {
    ++executions;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return StoredResponse{200, "application/json", "{\"n\":1}", false};
  };
  std::vector<std::thread> threads;
  std::atomic<int> replays{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      auto r = idem.run(key, "{}", "req" + std::to_string(i), execute);
      EXPECT_EQ(r.body, "{\"n\":1}");
      if (r.replayed) ++replays;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(executions.load(), 1);
  EXPECT_EQ(replays.load(), 7);

  EXPECT_THROW(idem.run(key, "{\"other\":1}", "req9", execute), ApiError);  // different body
  EXPECT_EQ(executions.load(), 1);
}

TEST_F(ServiceTest, IdempotencyDoesNotKeepFailures) {
  IdempotencyService idem(*store_, clock_, box_, {});
  store::IdempotencyKey key{"icfg_a", "PATCH", "/v1/installations/icfg_a", "k2"};
  int executions = 0;
  auto fail = [&]() -> StoredResponse {
    ++executions;
    throw ApiError::validation("bad", {});
  };
  EXPECT_THROW(idem.run(key, "{}", "r1", fail), ApiError);
  EXPECT_THROW(idem.run(key, "{}", "r2", fail), ApiError);
  EXPECT_EQ(executions, 2);  // the failed attempt left no record behind
  auto ok = idem.run(key, "{}", "r3", [] { return StoredResponse{200, "", "ok", false}; });
  EXPECT_FALSE(ok.replayed);
}

TEST_F(ServiceTest, IdempotencyRecordsExpire) {
  util::ManualClock clock(1'700'000'000'000);
  IdempotencyService idem(*store_, clock, box_, {});
  store::IdempotencyKey key{"", "POST", "/x", "k3"};
  int executions = 0;
  auto execute = [&] {
    ++executions;
    return StoredResponse{200, "", "ok", false};
  };
  idem.run(key, "", "r1", execute);
  clock.advance_ms(23 * 3600 * 1000);
  EXPECT_TRUE(idem.run(key, "", "r2", execute).replayed);
  clock.advance_ms(2 * 3600 * 1000);
  EXPECT_FALSE(idem.run(key, "", "r3", execute).replayed);
  EXPECT_EQ(executions, 2);
  clock.advance_ms(25 * 3600 * 1000);
  EXPECT_EQ(idem.purge(), 1);
}

}  // namespace
}  // namespace wharf::service
