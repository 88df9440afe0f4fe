// Services over a real SQLite store in a temporary directory.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "model/api_error.h"
#include "service/credentials.h"
#include "service/idempotency.h"
#include "service/imports.h"
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

// Get Account Info (vercel-api.md §4.2): queued after a first install only; an answer
// replaces the stored account with what the spec defines; a malformed one, another call's
// answer, or an uninstalled installation change nothing.
TEST_F(ServiceTest, AccountInformationIsReadAfterInstallAndReplacedByTheAnswer) {
  InstallationService svc(*store_, catalog(false), box_, clock_);
  svc.upsert("icfg_acc", Actor{"team_1", "u1"}, upsert_request("t"));
  auto reads = [&] {
    size_t n = 0;
    store_->read([&](store::ReadTx& tx) {
      for (const auto& row : tx.outbox_list("pending", 100))
        n += row.path == "/v1/installations/icfg_acc/account" && row.method == "GET";
    });
    return n;
  };
  EXPECT_EQ(reads(), 1u);
  svc.upsert("icfg_acc", Actor{"team_1", "u1"}, upsert_request("t2"));  // an update: no read
  EXPECT_EQ(reads(), 1u);
  EXPECT_EQ((*svc.account("icfg_acc"))["url"], "https://vercel.com/acme");

  store::OutboxRow item;
  item.installation_id = "icfg_acc";
  item.method = "GET";
  item.path = "/v1/installations/icfg_acc/account";
  auto answer = [&](const store::OutboxRow& it, const std::string& response) {
    store_->write([&](store::WriteTx& tx) { svc.account_read(tx, it, response); });
  };
  answer(item, R"({"name":"Acme Rockets","url":"https://vercel.com/acme-rockets",
                   "contact":{"email":"ops@acme.test","name":"Ops"},"extra":1})");
  EXPECT_EQ(*svc.account("icfg_acc"),
            (Json{{"name", "Acme Rockets"},
                  {"url", "https://vercel.com/acme-rockets"},
                  {"contact", {{"email", "ops@acme.test"}, {"name", "Ops"}}}}));
  answer(item, "not json");
  answer(item, "[1]");
  store::OutboxRow other = item;
  other.path = "/v1/installations/icfg_acc";
  answer(other, R"({"name":"Wrong","url":"https://x"})");
  EXPECT_EQ((*svc.account("icfg_acc"))["name"], "Acme Rockets");
  answer(item, R"({"url":"https://vercel.com/acme-rockets","contact":null})");
  EXPECT_EQ(*svc.account("icfg_acc"),
            (Json{{"url", "https://vercel.com/acme-rockets"}, {"contact", nullptr}}));
  svc.request_account_info("icfg_acc");
  EXPECT_EQ(reads(), 2u);
  svc.remove("icfg_acc", model::DeleteInstallationRequest{});
  svc.request_account_info("icfg_acc");  // uninstalled: nothing queued
  EXPECT_EQ(reads(), 2u);
  answer(item, R"({"name":"Late","url":"https://x","contact":null})");
  EXPECT_EQ(*svc.account("icfg_acc"),
            (Json{{"url", "https://vercel.com/acme-rockets"}, {"contact", nullptr}}));
}

// Credential rotation (flows.md F18): the token Vercel answers replaces the stored one in one
// transaction; refusals change nothing; the schedule's rules (age, known expiry).
TEST_F(ServiceTest, CredentialRotationReplacesTheTokenAndFollowsTheSchedule) {
  constexpr int64_t kDay = 24LL * 3600 * 1000;
  util::ManualClock clock(1'700'000'000'000);
  InstallationService svc(*store_, catalog(false), box_, clock);
  svc.upsert("icfg_r", Actor{"team_1", "u1"}, upsert_request("tok_original"));
  std::vector<std::string> bearers;
  std::vector<Json> bodies;
  int status = 200;
  int64_t expires_in_s = 90 * 24 * 3600;
  int n = 0;
  CredentialRotation::Options options;
  options.client_id = "oac_x";
  options.client_secret = "secret";
  options.max_age_ms = 30 * kDay;
  CredentialRotation rotation(
      *store_, svc, clock, options,
      [&](const vercel::Call& call, const std::string& bearer, const std::string& icfg) {
        EXPECT_EQ(call.path, "/v1/installations/icfg_r/credentials/rotate");
        EXPECT_EQ(icfg, "icfg_r");
        bearers.push_back(bearer);
        bodies.push_back(*call.body);
        net::HttpResult r;
        r.status = status;
        r.body = status == 200 ? Json{{"access_token", "tok_rotated_" + std::to_string(++n)},
                                      {"token_type", "oauth2-token"},
                                      {"expires_in", expires_in_s}}
                                     .dump()
                               : R"({"error":{"code":"forbidden","message":"no"}})";
        return r;
      });
  auto row = [&] {
    std::optional<store::InstallationRow> r;
    store_->read([&](store::ReadTx& tx) { r = tx.installation("icfg_r"); });
    return *r;
  };

  // A refusal: nothing changes.
  status = 403;
  auto refused = rotation.rotate("icfg_r");
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.error.find("HTTP 403"), std::string::npos);
  EXPECT_EQ(svc.access_token("icfg_r"), "tok_original");
  EXPECT_FALSE(row().token_expires_ms);

  status = 200;
  auto ok = rotation.rotate("icfg_r");
  ASSERT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(bearers.back(), "tok_original");  // the current token authorises the rotation
  EXPECT_EQ(bodies.back(), (Json{{"client_secret", "secret"}, {"client_id", "oac_x"}}));
  EXPECT_EQ(svc.access_token("icfg_r"), "tok_rotated_1");
  EXPECT_EQ(row().token_issued_ms, clock.now_ms());
  EXPECT_EQ(row().token_expires_ms, clock.now_ms() + 90 * kDay);

  // Age: due at 30 days, not before.
  clock.advance_ms(30 * kDay - 1);
  EXPECT_FALSE(rotation.due(row(), clock.now_ms()));
  EXPECT_TRUE(rotation.rotate_due().empty());
  clock.advance_ms(1);
  auto due = rotation.rotate_due();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_TRUE(due[0].second.ok);
  EXPECT_EQ(bearers.back(), "tok_rotated_1");
  EXPECT_EQ(svc.access_token("icfg_r"), "tok_rotated_2");

  // Expiry: with no age rule, a 20-day token is renewed in its last tenth (2 days), a
  // 90-day one a week before it expires.
  options.max_age_ms = 0;
  CredentialRotation by_expiry(*store_, svc, clock, options,
                               [](const vercel::Call&, const std::string&, const std::string&) {
                                 net::HttpResult down;
                                 down.error = "Connection refused";
                                 return down;
                               });
  store::InstallationRow r = row();
  r.token_issued_ms = clock.now_ms();
  r.token_expires_ms = clock.now_ms() + 20 * kDay;
  EXPECT_FALSE(by_expiry.due(r, clock.now_ms() + 18 * kDay - 1));
  EXPECT_TRUE(by_expiry.due(r, clock.now_ms() + 18 * kDay));
  r.token_expires_ms = clock.now_ms() + 90 * kDay;
  EXPECT_FALSE(by_expiry.due(r, clock.now_ms() + 83 * kDay - 1));
  EXPECT_TRUE(by_expiry.due(r, clock.now_ms() + 83 * kDay));
  r.token_expires_ms.reset();  // no known expiry, no age rule: never due
  EXPECT_FALSE(by_expiry.due(r, clock.now_ms() + 3650 * kDay));
  // Unreachable Vercel: an error, nothing stored.
  auto down = by_expiry.rotate("icfg_r");
  EXPECT_FALSE(down.ok);
  EXPECT_NE(down.error.find("could not be reached"), std::string::npos);
  EXPECT_EQ(svc.access_token("icfg_r"), "tok_rotated_2");

  // Uninstalled: not rotated, never due.
  svc.remove("icfg_r", model::DeleteInstallationRequest{});
  EXPECT_FALSE(rotation.rotate("icfg_r").ok);
  EXPECT_FALSE(rotation.due(row(), clock.now_ms() + 365 * kDay));
}

TEST_F(ServiceTest, ImportBodyAndReconcileRepairOnlyWhatVercelLacks) {
  auto cat = catalog(false);
  InstallationService svc(*store_, cat, box_, clock_);
  svc.upsert("icfg_i", Actor{"team_1", "u1"}, upsert_request("tok_imp"));
  auto put = [&](const std::string& id, const std::string& status, bool deleted) {
    store::ResourceRow r;
    r.id = id;
    r.installation_id = "icfg_i";
    r.product_id = "sqlite-db";
    r.name = id + "-name";
    r.metadata_json = R"({"durability":"full"})";
    r.status = status;
    r.billing_plan_id = "sqlite-free";
    r.created_ms = r.updated_ms = 1;
    if (deleted) r.deleted_ms = 2;
    store_->write([&](store::WriteTx& tx) { tx.put_resource(r); });
  };
  put("res_seen", "ready", false);       // Vercel has it
  put("res_lost", "ready", false);       // Vercel lost it: imported again
  put("res_new", "pending", false);      // still provisioning: Vercel learns of it then
  put("res_gone", "uninstalled", true);  // deleted here, still listed at Vercel: unknown

  std::vector<vercel::Call> calls;
  bool vercel_down = false;
  ImportService imports(
      *store_, cat, svc, box_,
      [&](const vercel::Call& call, const std::string& bearer, const std::string&) {
        EXPECT_EQ(bearer, "tok_imp");
        calls.push_back(call);
        net::HttpResult r;
        if (vercel_down) {
          r.status = 503;
          return r;
        }
        r.status = 200;
        r.body = call.method == "GET"
                     ? Json{{"resources",
                             {{{"partnerId", "res_seen"}, {"internalId", "ir_1"}},
                              {{"partnerId", "res_gone"}, {"internalId", "ir_2"}},
                              {{"partnerId", "res_ghost"}, {"internalId", "ir_3"}}}}}
                           .dump()
                     : R"({"name":"x"})";
        return r;
      });

  store::ResourceRow lost;
  store_->read([&](store::ReadTx& tx) { lost = *tx.resource("res_lost"); });
  Json body = imports.body(lost);
  EXPECT_EQ(body["productId"], "sqlite-db");
  EXPECT_EQ(body["ownership"], "owned");
  EXPECT_EQ(body["status"], "ready");
  EXPECT_EQ(body["billingPlan"]["id"], "sqlite-free");
  EXPECT_EQ(body["metadata"]["durability"], "full");
  EXPECT_FALSE(body.contains("secrets"));  // none stored

  // A comparison only (wharf doctor): nothing is sent but the read.
  auto dry = imports.reconcile("icfg_i", /*repair=*/false);
  EXPECT_EQ(dry.missing, std::vector<std::string>{"res_lost"});
  EXPECT_EQ(dry.unknown, (std::vector<std::string>{"res_ghost", "res_gone"}));
  EXPECT_TRUE(dry.reimported.empty());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].path, "/v1/installations/icfg_i/resources");

  calls.clear();
  auto all = imports.reconcile_all(/*repair=*/true);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].reimported, std::vector<std::string>{"res_lost"});
  EXPECT_TRUE(all[0].missing.empty());
  EXPECT_EQ(imports.unknown_resources(), 2);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].method, "PUT");
  EXPECT_EQ(calls[1].path, "/v1/installations/icfg_i/resources/res_lost");

  // Vercel unavailable: the comparison says so and changes nothing.
  vercel_down = true;
  auto failed = imports.reconcile("icfg_i", true);
  EXPECT_FALSE(failed.error.empty());
  EXPECT_TRUE(failed.reimported.empty() && failed.unknown.empty());
  EXPECT_THROW(imports.import("icfg_i", "res_lost"), ApiError);
  EXPECT_THROW(imports.import("icfg_i", "res_gone"), ApiError);  // deleted: 404, nothing sent
}

}  // namespace
}  // namespace wharf::service
