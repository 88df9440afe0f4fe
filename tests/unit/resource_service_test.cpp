// ResourceService and TransferService over a real SQLite store and the real SQLite product,
// with an injected clock: rotation delays, transfers and usage are checked without sleeping.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
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
    catalog_ = model::Catalog::parse_text(catalog_json());
    db_ = std::make_unique<product::SqliteDb>((dir_ / "databases").string());
    installations_ = std::make_unique<InstallationService>(*store_, catalog_, box_, clock_);
    std::map<std::string, product::Product*> products;
    for (const auto& p : catalog_->products()) products[p.id] = db_.get();
    resources_ = std::make_unique<ResourceService>(
        *store_, catalog_, *installations_, products, box_, clock_,
        ResourceService::Options{"http://wharf.test", 0.9, nullptr, {}});
    transfers_ = std::make_unique<TransferService>(*store_, catalog_, *installations_, clock_);
    for (auto id : {"icfg_a", "icfg_b", "icfg_c"}) install(id);
  }
  virtual std::string catalog_json() const { return model::builtin_catalog_json(); }

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

// A catalog with a capped plan (maxResources), an uncapped one and an installation-scope one.
class PlanRulesTest : public ResourceServiceTest {
 protected:
  std::string catalog_json() const override {
    return R"({
      "products": [{"id": "db", "kind": "sqlite", "name": "Tiny DB",
                    "plans": ["small", "big", "team-free", "team", "retired"]}],
      "plans": [
        {"id": "small", "type": "subscription", "name": "Small", "description": "d",
         "paymentMethodRequired": false, "maxResources": 2},
        {"id": "big", "type": "subscription", "name": "Big", "description": "d",
         "paymentMethodRequired": false},
        {"id": "team-free", "type": "subscription", "name": "Team free", "description": "d",
         "scope": "installation", "paymentMethodRequired": false, "default": true},
        {"id": "team", "type": "subscription", "name": "Team", "description": "d",
         "scope": "installation"},
        {"id": "retired", "type": "subscription", "name": "Retired", "description": "d",
         "paymentMethodRequired": false, "disabled": true}
      ]})";
  }

  Json provision_on(const std::string& inst, const std::string& plan,
                    const std::optional<std::string>& key = std::nullopt) {
    return resources_->provision(
        inst,
        model::ProvisionResourceRequest::parse(Json{{"productId", "db"},
                                                    {"name", "db"},
                                                    {"metadata", Json::object()},
                                                    {"billingPlanId", plan}}),
        key);
  }

  Json update(const std::string& inst, const std::string& rid, const Json& body) {
    return resources_->update(inst, rid, model::UpdateResourceRequest::parse(body));
  }

  // Runs `fn`, which must throw ApiError; returns it.
  static ApiError error_of(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const ApiError& e) {
      return e;
    }
    ADD_FAILURE() << "expected an ApiError";
    return ApiError(0, "none", "none");
  }

  size_t live(const std::string& inst) { return resources_->list(inst, {})["resources"].size(); }

  std::vector<std::string> outbox_events() {
    std::vector<std::string> out;
    store_->read([&](store::ReadTx& tx) {
      for (const auto& row : tx.outbox_list("pending", 100))
        if (row.kind == "event") out.push_back(row.body);
    });
    return out;
  }
};

TEST_F(PlanRulesTest, MaxResourcesCapsLiveResourcesOnThePlanPerInstallation) {
  std::string first = provision_on("icfg_a", "small")["id"];
  provision_on("icfg_a", "small", std::string("k2"));
  ApiError e = error_of([&] { provision_on("icfg_a", "small"); });
  EXPECT_EQ(e.status, 409);
  EXPECT_EQ(e.code, "max_resources");
  EXPECT_EQ(e.user_message,
            "The Small plan allows 2 resources. Delete a resource or choose "
            "another plan.");
  EXPECT_EQ(e.user_url, "http://wharf.test/dashboard");
  EXPECT_EQ(live("icfg_a"), 2u);  // nothing was made
  // A retry of a provision that succeeded still answers with its resource.
  EXPECT_NO_THROW(provision_on("icfg_a", "small", std::string("k2")));
  // Other plans and other installations have their own count.
  EXPECT_NO_THROW(provision_on("icfg_a", "big"));
  EXPECT_NO_THROW(provision_on("icfg_b", "small"));
  // A deleted resource no longer counts.
  resources_->remove("icfg_a", first);
  EXPECT_NO_THROW(provision_on("icfg_a", "small"));
  EXPECT_EQ(live("icfg_a"), 3u);
}

TEST_F(PlanRulesTest, MaxResourcesAppliesToPlanChanges) {
  provision_on("icfg_a", "small");
  std::string s2 = provision_on("icfg_a", "small")["id"];
  std::string rid = provision_on("icfg_a", "big")["id"];
  ApiError e = error_of([&] {
    update("icfg_a", rid, {{"billingPlanId", "small"}, {"name", "x"}});
  });
  EXPECT_EQ(e.status, 409);
  EXPECT_EQ(e.code, "max_resources");
  Json now = resources_->get("icfg_a", rid);
  EXPECT_EQ(now["billingPlan"]["id"], "big");  // the whole update was refused
  EXPECT_EQ(now["name"], "db");
  // A resource already on the plan is not counted twice against itself.
  EXPECT_EQ(update("icfg_a", s2, {{"billingPlanId", "small"}, {"name", "y"}})["name"], "y");
}

TEST_F(PlanRulesTest, PlanErrorsCarryAUserMessage) {
  ApiError e = error_of([&] { provision_on("icfg_a", "retired"); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.user_message, "The Retired plan is not available. Choose another plan.");
  e = error_of([&] { provision_on("icfg_a", "nope"); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.user_message,
            "This plan is not offered for Tiny DB. Choose one of the plans listed.");
  e = error_of([&] {
    installations_->update("icfg_a",
                           model::UpdateInstallationRequest::parse({{"billingPlanId", "big"}}));
  });
  EXPECT_EQ(e.status, 400);
  EXPECT_TRUE(e.user_message);
}

TEST_F(PlanRulesTest, InstallationScopePlanOnUpdateResourceBecomesTheInstallationsPlan) {
  std::string rid = provision_on("icfg_a", "big")["id"];
  EXPECT_EQ((*installations_->get("icfg_a").billing_plan)["id"], "team-free");
  const size_t events_before = outbox_events().size();
  // Sent under the field's old name (§9 item 27).
  update("icfg_a", rid, {{"billingPlan", "team"}});
  auto state = installations_->get("icfg_a");
  ASSERT_TRUE(state.billing_plan);
  EXPECT_EQ((*state.billing_plan)["id"], "team");
  auto events = outbox_events();
  ASSERT_EQ(events.size(), events_before + 1);
  EXPECT_NE(events.back().find("installation.updated"), std::string::npos) << events.back();
  EXPECT_NE(events.back().find("team"), std::string::npos) << events.back();
  // Again: nothing more to tell Vercel.
  update("icfg_a", rid, {{"billingPlanId", "team"}});
  EXPECT_EQ(outbox_events().size(), events_before + 1);
  EXPECT_EQ((*installations_->get("icfg_b").billing_plan)["id"], "team-free");  // only icfg_a
}

TEST_F(PlanRulesTest, UpdateResourceStatuses) {
  std::string rid = provision_on("icfg_a", "big")["id"];
  EXPECT_EQ(update("icfg_a", rid, {{"status", "suspended"}})["status"], "suspended");
  EXPECT_EQ(update("icfg_a", rid, {{"status", "resumed"}})["status"], "ready");
  EXPECT_EQ(update("icfg_a", rid, {{"status", "suspended"}})["status"], "suspended");
  EXPECT_EQ(update("icfg_a", rid, {{"status", "ready"}})["status"], "ready");
  // The resource's own status echoed back changes nothing but is fine.
  EXPECT_EQ(update("icfg_a", rid, {{"status", "ready"}, {"name", "n2"}})["name"], "n2");
  // Statuses only the provider reports cannot be set; the request changes nothing.
  for (auto st : {"pending", "onboarding", "error"}) {
    ApiError e = error_of([&] { update("icfg_a", rid, {{"status", st}, {"name", "changed"}}); });
    EXPECT_EQ(e.status, 400) << st;
    ASSERT_EQ(e.fields.size(), 1u);
    EXPECT_EQ(e.fields[0].key, "status");
    Json now = resources_->get("icfg_a", rid);
    EXPECT_EQ(now["status"], "ready");
    EXPECT_EQ(now["name"], "n2");
  }
  // uninstalled: the resource is deleted, as Delete Resource would.
  Json made = provision_on("icfg_a", "big");
  std::string other = made["id"], token = secret(made["secrets"], "DATABASE_TOKEN");
  Json gone = update("icfg_a", other, {{"status", "uninstalled"}});
  EXPECT_EQ(gone["status"], "uninstalled");
  EXPECT_EQ(error_of([&] { resources_->get("icfg_a", other); }).status, 404);
  EXPECT_EQ(error_of([&] { sql(other, token, "select 1"); }).status, 401);
  // A bad request with it deletes nothing.
  EXPECT_EQ(error_of([&] {
              update("icfg_a", rid, {{"status", "uninstalled"}, {"billingPlanId", "nope"}});
            }).status,
            400);
  EXPECT_EQ(resources_->get("icfg_a", rid)["status"], "ready");
}

}  // namespace
}  // namespace wharf::service
