// The sandbox's Driver against a scripted partner on loopback (wharf's own net::Server):
// what the partner receives (headers, token claims, Idempotency-Key, webhook signatures),
// what the sandbox records from its answers, the findings for non-conformant answers,
// webhook retries, and survival of garbage.
#include <gtest/gtest.h>

#include "scripted_server.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "model/api_error.h"
#include "net/http_client.h"
#include "net/server.h"
#include "sandbox/driver.h"
#include "sandbox/driver_internal.h"
#include "util/base64.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

using model::ApiError;
using model::Json;

// A partner whose answers each test scripts; every request it receives is kept.
using ScriptedPartner = testutil::ScriptedServer;

net::Response json(int status, const Json& body) {
  return net::Response::json(status, body.dump());
}
net::Response raw(int status, std::string content_type, std::string body) {
  net::Response r;
  r.status = status;
  r.content_type = std::move(content_type);
  r.body = std::move(body);
  return r;
}

std::string header(const net::Request& req, const std::string& name) {
  return std::string(req.header(name).value_or(""));
}

Json claims_of(const net::Request& req) {
  std::string auth = header(req, "authorization");
  EXPECT_EQ(auth.rfind("Bearer ", 0), 0u) << auth;
  std::string token = auth.substr(7);
  size_t a = token.find('.'), b = token.find('.', a + 1);
  auto payload = util::base64url_decode(token.substr(a + 1, b - a - 1));
  EXPECT_TRUE(payload.has_value());
  return Json::parse(payload.value_or("{}"));
}

Json plan_json() {
  return {{"id", "free"}, {"type", "subscription"}, {"name", "Free"}, {"description", "d"}};
}
Json resource_json(const std::string& id, const std::string& status = "ready") {
  return {{"id", id},         {"productId", "sqlite"},
          {"name", "main"},   {"metadata", {{"region", "sfo1"}}},
          {"status", status}, {"billingPlan", plan_json()}};
}

class DriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_dir_ =
        new std::filesystem::path(std::filesystem::temp_directory_path() /
                                  ("wharf_driver_key_" + util::to_hex(util::random_bytes(6))));
    std::filesystem::create_directories(*key_dir_);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*key_dir_);
    delete key_dir_;
  }

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_driver_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    config_.data_dir = dir_.string();
    config_.base_url = "http://127.0.0.1:1";
    config_.issuer = "http://127.0.0.1:1";
    config_.client_secret = "sandbox-client-secret";
    config_.partner_url = partner_.url() + "/";  // a trailing slash must not double up
    config_.webhook_first_retry_ms = 20;
    config_.webhook_max_attempts = 4;
    config_.finalization_window_ms = 60 * 1000;
    state_ = std::make_unique<State>((dir_ / "sandbox-state.json").string());
    // One RSA key for the whole suite: generating one per test is slow.
    identity_ =
        std::make_unique<Identity>(key_dir_->string(), config_.issuer, config_.client_id, clock_);
    net::HttpClient::Options http_options;
    http_options.timeout_ms = 5000;
    http_ = std::make_unique<net::HttpClient>(http_options);
    ctx_ = std::make_unique<Context>(Context{config_, *state_, log_, *identity_, *http_, clock_});
    driver_ = std::make_unique<Driver>(*ctx_);
  }
  void TearDown() override {
    driver_.reset();
    std::filesystem::remove_all(dir_);
  }

  Json installation(const std::string& icfg) {
    return state_->read([&](const Json& doc) { return doc["installations"].value(icfg, Json()); });
  }
  Json resource(const std::string& icfg, const std::string& rid) {
    return state_->read([&](const Json& doc) {
      if (!doc.contains("resources") || !doc["resources"].contains(icfg)) return Json();
      return doc["resources"][icfg].value(rid, Json());
    });
  }

  // Installs with a partner answering 204, then forgets the request.
  std::string install() {
    partner_.script([](const net::Request&) { return net::Response::empty(204); });
    Json r = driver_->run("install", Json::object());
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
    partner_.clear();
    return r["installationId"].get<std::string>();
  }

  std::string provision(const std::string& icfg, const std::string& rid) {
    partner_.script([rid](const net::Request& req) {
      if (req.method == "POST") {
        Json body = resource_json(rid);
        body["secrets"] = {{{"name", "DATABASE_URL"}, {"value", "sqlite://one"}}};
        return json(200, body);
      }
      return json(200, resource_json(rid));
    });
    Json r = driver_->run("provision", {{"installationId", icfg},
                                        {"productId", "sqlite"},
                                        {"name", "main"},
                                        {"metadata", {{"region", "sfo1"}}},
                                        {"billingPlanId", "free"}});
    EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
    partner_.clear();
    return rid;
  }

  static bool wait_for(const std::function<bool()>& cond, int ms = 5000) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
  }

  static inline std::filesystem::path* key_dir_ = nullptr;
  ScriptedPartner partner_;
  std::filesystem::path dir_;
  SandboxConfig config_;
  util::ManualClock clock_{std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count()};
  ExchangeLog log_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<net::HttpClient> http_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<Driver> driver_;
};

TEST_F(DriverTest, InstallSendsUpsertInVercelsShapeAndRecordsTheInstallation) {
  partner_.script([](const net::Request&) { return net::Response::empty(204); });
  Json r = driver_->run("install", {{"team", "Acme Inc"},
                                    {"user", {{"name", "Ada"}, {"email", "ada@acme.test"}}},
                                    {"member", {{"name", "Vic"}}}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["status"], 204);
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  std::string icfg = r["installationId"];
  EXPECT_TRUE(std::regex_match(icfg, std::regex("icfg_[A-Za-z0-9]{24}"))) << icfg;

  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const auto& req = reqs[0];
  EXPECT_EQ(req.method, "PUT");
  EXPECT_EQ(req.target, "/v1/installations/" + icfg);
  EXPECT_EQ(header(req, "x-vercel-auth"), "user");
  EXPECT_EQ(header(req, "content-type"), "application/json");
  EXPECT_TRUE(std::regex_match(header(req, "idempotency-key"),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                          "[0-9a-f]{12}")))
      << header(req, "idempotency-key");

  Json claims = claims_of(req);
  EXPECT_EQ(claims["iss"], config_.issuer);
  EXPECT_EQ(claims["aud"], config_.client_id);
  EXPECT_EQ(claims["installation_id"], icfg);
  EXPECT_EQ(claims["user_role"], "ADMIN");
  EXPECT_EQ(claims["user_email"], "ada@acme.test");
  EXPECT_TRUE(std::regex_match(claims["sub"].get<std::string>(),
                               std::regex("account:[0-9a-f]+:user:[0-9a-f]+")));

  Json body = Json::parse(req.body);
  Json inst = installation(icfg);
  EXPECT_EQ(inst["status"], "active");
  EXPECT_EQ(body["credentials"]["access_token"], inst["accessTokens"][0]);
  EXPECT_EQ(inst["accessTokens"][0].get<std::string>().rfind("vat_", 0), 0u);
  EXPECT_EQ(body["credentials"]["token_type"], "Bearer");
  EXPECT_TRUE(body["scopes"].is_array() && !body["scopes"].empty());
  int64_t toc = 0;
  EXPECT_TRUE(util::parse_iso8601(body["acceptedPolicies"]["toc"].get<std::string>(), &toc));
  EXPECT_EQ(body["account"]["name"], "Acme Inc");
  EXPECT_EQ(body["account"]["contact"]["email"], "ada@acme.test");
  EXPECT_EQ(body["account"]["contact"]["name"], "Ada");
  EXPECT_TRUE(body["account"]["url"].is_string());
  EXPECT_EQ(inst["accountId"], "team_" + inst["accountHex"].get<std::string>());
  EXPECT_EQ(claims["account_id"], inst["accountId"]);
  // The installer (ADMIN) and the extra member (USER).
  ASSERT_EQ(inst["users"].size(), 2u);
  int admins = 0, users = 0;
  for (const auto& u : inst["users"]) (u["role"] == "ADMIN" ? admins : users)++;
  EXPECT_EQ(admins, 1);
  EXPECT_EQ(users, 1);
  EXPECT_EQ(inst["users"][claims["user_id"].get<std::string>()]["role"], "ADMIN");

  // The exchange is in the log, Authorization redacted.
  auto entries = log_.list(0, 10);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].direction, "to-partner");
  EXPECT_EQ(entries[0].flow, "install");
  EXPECT_EQ(entries[0].status, 204);
  std::string logged_auth = entries[0].request_headers["Authorization"];
  EXPECT_EQ(logged_auth.find(claims_of(req).dump()), std::string::npos);
  EXPECT_LT(logged_auth.size(), 20u);
  EXPECT_EQ(r["exchanges"], Json::array({entries[0].id}));
}

TEST_F(DriverTest, FailedInstallIsKeptAsFailedAndCanBeRetriedWithTheSameId) {
  partner_.script([](const net::Request&) { return raw(500, "text/plain", "boom"); });
  Json r = driver_->run("install", {{"installationId", "icfg_AAAABBBBCCCCDDDDEEEEFFFF"}});
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_EQ(r["status"], 500);
  EXPECT_EQ(r["response"], "boom");
  EXPECT_FALSE(r["findings"].empty());
  EXPECT_EQ(installation("icfg_AAAABBBBCCCCDDDDEEEEFFFF")["status"], "install_failed");

  partner_.script([](const net::Request&) {
    return json(200, {{"billingPlan", plan_json()},
                      {"notification", {{"level", "info"}, {"title", "Welcome"}}}});
  });
  r = driver_->run("install", {{"installationId", "icfg_AAAABBBBCCCCDDDDEEEEFFFF"}});
  EXPECT_TRUE(r["ok"].get<bool>());
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  Json inst = installation("icfg_AAAABBBBCCCCDDDDEEEEFFFF");
  EXPECT_EQ(inst["status"], "active");
  EXPECT_EQ(inst["billingPlan"]["id"], "free");
  EXPECT_EQ(inst["notification"]["title"], "Welcome");
  // The retry reuses the token: one installation, one credential.
  EXPECT_EQ(inst["accessTokens"].size(), 1u);
}

TEST_F(DriverTest, ParametersAreValidatedStrictly) {
  try {
    driver_->run("provision", {{"installationId", 5}, {"nmae", "x"}, {"metadata", "x"}});
    FAIL() << "expected a 400";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    std::vector<std::string> keys;
    for (const auto& f : e.fields) keys.push_back(f.key);
    EXPECT_NE(std::find(keys.begin(), keys.end(), "nmae"), keys.end());
    EXPECT_NE(std::find(keys.begin(), keys.end(), "installationId"), keys.end());
    EXPECT_NE(std::find(keys.begin(), keys.end(), "productId"), keys.end());
    EXPECT_NE(std::find(keys.begin(), keys.end(), "name"), keys.end());
    EXPECT_NE(std::find(keys.begin(), keys.end(), "billingPlanId"), keys.end());
    EXPECT_NE(std::find(keys.begin(), keys.end(), "metadata"), keys.end());
  }
  EXPECT_THROW(driver_->run("install", {{"installationId", "cfg-1"}}), ApiError);
  EXPECT_THROW(driver_->run("install", {{"accountHex", "xyz"}}), ApiError);
  EXPECT_THROW(driver_->run("sso", {{"installationId", "icfg_x"}, {"path", "admin"}}), ApiError);
  EXPECT_THROW(driver_->run("purchase", {{"installationId", "icfg_x"}, {"amount", "-3"}}),
               ApiError);
  try {
    driver_->run("get-resource", {{"installationId", "icfg_nope"}, {"resourceId", "r"}});
    FAIL() << "expected a 404";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 404);
    ASSERT_EQ(e.fields.size(), 1u);
    EXPECT_EQ(e.fields[0].key, "installationId");
  }
  try {
    driver_->run("frobnicate", Json::object());
    FAIL() << "expected a 404";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 404);
  }
  EXPECT_TRUE(partner_.requests().empty());
}

TEST_F(DriverTest, ProvisionStoresResourceAndSecretsThenReadsItBackWithSystemAuth) {
  std::string icfg = install();
  partner_.script([](const net::Request& req) {
    if (req.method == "POST") {
      Json body = resource_json("db_1", "pending");
      body["secrets"] = {{{"name", "DATABASE_URL"}, {"value", "sqlite://x"}},
                         {{"name", "TOKEN"}}};  // value missing
      return json(200, body);
    }
    return json(200, resource_json("db_1", "ready"));
  });
  Json r = driver_->run("provision", {{"installationId", icfg},
                                      {"productId", "sqlite"},
                                      {"name", "main"},
                                      {"metadata", {{"region", "sfo1"}}},
                                      {"billingPlanId", "free"},
                                      {"externalId", "ext-1"},
                                      {"idempotencyKey", "key-123"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["findings"], Json::array({"response.secrets[1].value: required string missing"}));
  EXPECT_EQ(r["resourceId"], "db_1");
  EXPECT_EQ(r["exchanges"].size(), 2u);

  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/installations/" + icfg + "/resources");
  EXPECT_EQ(header(reqs[0], "idempotency-key"), "key-123");
  EXPECT_EQ(header(reqs[0], "x-vercel-auth"), "user");
  Json body = Json::parse(reqs[0].body);
  EXPECT_EQ(body, (Json{{"productId", "sqlite"},
                        {"name", "main"},
                        {"metadata", {{"region", "sfo1"}}},
                        {"billingPlanId", "free"},
                        {"externalId", "ext-1"}}));
  // Then Get Resource, as a system call without an Idempotency-Key.
  EXPECT_EQ(reqs[1].method, "GET");
  EXPECT_EQ(reqs[1].target, "/v1/installations/" + icfg + "/resources/db_1");
  EXPECT_EQ(header(reqs[1], "x-vercel-auth"), "system");
  EXPECT_FALSE(reqs[1].header("idempotency-key").has_value());
  Json sys = claims_of(reqs[1]);
  EXPECT_FALSE(sys.contains("user_id"));
  EXPECT_EQ(sys["installation_id"], icfg);
  EXPECT_TRUE(std::regex_match(sys["sub"].get<std::string>(), std::regex("account:[0-9a-f]+")));

  Json res = resource(icfg, "db_1");
  EXPECT_EQ(res["status"], "ready");  // updated by Get Resource
  EXPECT_EQ(res["internalId"].get<std::string>().rfind("ir_", 0), 0u);
  EXPECT_EQ(res["externalId"], "ext-1");
  // Only well-formed secrets are kept as env vars.
  ASSERT_EQ(res["secrets"].size(), 1u);
  EXPECT_EQ(res["secrets"][0]["name"], "DATABASE_URL");

  // The same key replays the same logical request; the resource keeps its identity.
  std::string internal = res["internalId"];
  partner_.clear();
  r = driver_->run("provision", {{"installationId", icfg},
                                 {"productId", "sqlite"},
                                 {"name", "main"},
                                 {"billingPlanId", "free"},
                                 {"idempotencyKey", "key-123"}});
  EXPECT_EQ(header(partner_.requests()[0], "idempotency-key"), "key-123");
  EXPECT_EQ(resource(icfg, "db_1")["internalId"], internal);
  // Without the parameter every logical request gets a fresh key.
  partner_.clear();
  driver_->run("update-resource",
               {{"installationId", icfg}, {"resourceId", "db_1"}, {"name", "a"}});
  driver_->run("update-resource",
               {{"installationId", icfg}, {"resourceId", "db_1"}, {"name", "b"}});
  reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(header(reqs[0], "idempotency-key"), header(reqs[1], "idempotency-key"));
}

TEST_F(DriverTest, ResponseMissingARequiredFieldIsReportedAndLogged) {
  std::string icfg = install();
  provision(icfg, "db_1");
  partner_.script([](const net::Request&) {
    Json body = resource_json("db_1");
    body.erase("billingPlan");
    return json(200, body);
  });
  Json r = driver_->run("get-resource", {{"installationId", icfg}, {"resourceId", "db_1"}});
  EXPECT_TRUE(r["ok"].get<bool>());
  EXPECT_EQ(r["findings"], Json::array({"response.billingPlan: required object missing"}));
  auto entries = log_.list(0, 100);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().findings,
            std::vector<std::string>{"response.billingPlan: required object missing"});
  EXPECT_EQ(ExchangeLog::to_json(entries.back())["conformant"], false);
}

TEST_F(DriverTest, UserTokensForReadOnlyMembersAndReplStreaming) {
  std::string icfg = install();
  provision(icfg, "db_1");
  partner_.script([](const net::Request& req) {
    if (header(req, "accept") == "application/jsonl")
      return raw(200, "application/jsonl",
                 "{\"type\":\"paragraph\",\"children\":[{\"type\":\"text\",\"text\":\"1\"}]}\n");
    return json(
        200,
        Json::array({{{"type", "paragraph"}, {"children", {{{"type", "text"}, {"text", "ok"}}}}}}));
  });
  Json r = driver_->run("repl", {{"installationId", icfg},
                                 {"resourceId", "db_1"},
                                 {"input", "SELECT 1"},
                                 {"role", "USER"},
                                 {"stream", true}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  EXPECT_EQ(r["response"][0]["children"][0]["text"], "1");
  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(claims_of(reqs[0])["user_role"], "USER");
  EXPECT_EQ(Json::parse(reqs[0].body), (Json{{"input", "SELECT 1"}, {"readOnly", true}}));
  EXPECT_EQ(reqs[0].target, "/v1/installations/" + icfg + "/resources/db_1/repl");
}

TEST_F(DriverTest, RotationSyncReplacesSecretsAsyncMarksPending) {
  std::string icfg = install();
  provision(icfg, "db_1");
  partner_.script([](const net::Request&) {
    return json(200, {{"sync", true},
                      {"secrets", {{{"name", "DATABASE_URL"}, {"value", "sqlite://two"}}}}});
  });
  Json r = driver_->run("rotate-secrets", {{"installationId", icfg},
                                           {"resourceId", "db_1"},
                                           {"reason", "leak"},
                                           {"delayOldSecretsExpirationHours", 1.5},
                                           {"auth", "system"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_TRUE(r["sync"].get<bool>());
  auto reqs = partner_.requests();
  EXPECT_EQ(header(reqs[0], "x-vercel-auth"), "system");
  EXPECT_EQ(Json::parse(reqs[0].body),
            (Json{{"reason", "leak"}, {"delayOldSecretsExpirationHours", 1.5}}));
  EXPECT_EQ(resource(icfg, "db_1")["secrets"][0]["value"], "sqlite://two");

  partner_.script([](const net::Request&) { return json(202, {{"sync", false}}); });
  r = driver_->run("rotate-secrets", {{"installationId", icfg}, {"resourceId", "db_1"}});
  EXPECT_FALSE(r["sync"].get<bool>());
  EXPECT_TRUE(resource(icfg, "db_1")["rotationPending"].get<bool>());
  EXPECT_EQ(resource(icfg, "db_1")["secrets"][0]["value"], "sqlite://two");
}

TEST_F(DriverTest, PlansUseTheRightTokenAndPassMetadata) {
  partner_.script([](const net::Request&) { return json(200, {{"plans", {plan_json()}}}); });
  Json r = driver_->run("plans", {{"productId", "sqlite"}, {"metadata", {{"region", "sfo 1/é"}}}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_TRUE(r["findings"].empty());
  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].path, "/v1/products/sqlite/plans");
  EXPECT_EQ(Json::parse(reqs[0].query_param("metadata").value()), (Json{{"region", "sfo 1/é"}}));
  Json claims = claims_of(reqs[0]);
  // Before any installation: installation_id null, no account.
  EXPECT_TRUE(claims["installation_id"].is_null());
  EXPECT_FALSE(claims.contains("account_id"));
  EXPECT_EQ(header(reqs[0], "x-vercel-auth"), "system");

  std::string icfg = install();
  partner_.script([](const net::Request&) { return json(200, {{"plans", {{{"id", 1}}}}}); });
  r = driver_->run("plans", {{"installationId", icfg}});
  EXPECT_EQ(r["endpoint"], "installation-plans");
  EXPECT_EQ(partner_.requests()[0].target, "/v1/installations/" + icfg + "/plans");
  EXPECT_EQ(claims_of(partner_.requests()[0])["installation_id"], icfg);
  EXPECT_EQ(r["findings"], Json::array({"response.plans[0].id: must be a string, got number",
                                        "response.plans[0].type: required string missing",
                                        "response.plans[0].name: required string missing",
                                        "response.plans[0].description: required string missing"}));
}

TEST_F(DriverTest, UninstallPendingDeletionSendsSignedRemovedWebhookThenFinalizes) {
  std::string icfg = install();
  partner_.script([](const net::Request& req) {
    if (req.path == "/webhooks/vercel") return net::Response::empty(200);
    return json(200, {{"finalized", false}});
  });
  Json r = driver_->run(
      "uninstall",
      {{"installationId", icfg}, {"cascadeResourceDeletion", true}, {"reason", "not needed"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_FALSE(r["finalized"].get<bool>());
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  EXPECT_EQ(installation(icfg)["status"], "pending_deletion");
  EXPECT_TRUE(installation(icfg)["deletedAt"].is_string());

  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "DELETE");
  EXPECT_EQ(Json::parse(reqs[0].body),
            (Json{{"cascadeResourceDeletion", true}, {"reason", "not needed"}}));
  const auto& hook = reqs[1];
  EXPECT_EQ(hook.method, "POST");
  EXPECT_EQ(header(hook, "x-vercel-signature"),
            util::to_hex(util::hmac_sha1(config_.client_secret, hook.body)));
  Json envelope = Json::parse(hook.body);
  EXPECT_EQ(envelope["type"], "integration-configuration.removed");
  EXPECT_EQ(envelope["id"].get<std::string>().rfind("whd_", 0), 0u);
  EXPECT_TRUE(envelope["createdAt"].is_number_integer());
  EXPECT_TRUE(envelope["region"].is_null());
  EXPECT_EQ(envelope["payload"]["configuration"]["id"], icfg);
  EXPECT_EQ(envelope["payload"]["configuration"]["projectSelection"], "all");
  EXPECT_EQ(envelope["payload"]["installationId"], icfg);
  EXPECT_EQ(envelope["payload"]["team"]["id"], installation(icfg)["accountId"]);
  EXPECT_TRUE(envelope["payload"]["user"]["id"].is_string());
  EXPECT_EQ(r["exchanges"].size(), 2u);

  // A second uninstall is refused by the sandbox (Vercel would not offer it).
  EXPECT_THROW(driver_->run("uninstall", {{"installationId", icfg}}), ApiError);

  // The finalization window is measured on the sandbox clock.
  EXPECT_EQ(driver_->finalize_expired(), 0);
  clock_.advance_ms(config_.finalization_window_ms + 1);
  EXPECT_EQ(driver_->finalize_expired(), 1);
  EXPECT_EQ(installation(icfg)["status"], "finalized");
  EXPECT_THROW(driver_->run("get-installation", {{"installationId", icfg}}), ApiError);
}

TEST_F(DriverTest, UninstallFinalizedAtOnceAndWithoutWebhook) {
  std::string icfg = install();
  partner_.script([](const net::Request&) { return json(200, {{"finalized", true}}); });
  Json r =
      driver_->run("uninstall", {{"installationId", icfg}, {"auth", "system"}, {"webhook", false}});
  ASSERT_TRUE(r["ok"].get<bool>());
  EXPECT_EQ(installation(icfg)["status"], "finalized");
  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(header(reqs[0], "x-vercel-auth"), "system");
  EXPECT_TRUE(reqs[0].body.empty());
}

// A partner with several replicas may send Finalize Installation (here: the finalization the
// sandbox's Vercel API would record) before its answer to Delete Installation arrives: the
// uninstall is recorded first, and the late answer does not undo the finalization.
TEST_F(DriverTest, UninstallIsPendingDeletionWhileThePartnerIsCalled) {
  std::string icfg = install();
  std::string seen;
  partner_.script([&](const net::Request& req) {
    if (req.method != "DELETE") return net::Response::empty(200);
    state_->mutate([&](Json& doc) {
      Json& inst = doc["installations"][icfg];
      seen = inst.value("status", "");
      inst["status"] = "finalized";  // what an early Finalize Installation does
    });
    return json(200, {{"finalized", false}});
  });
  Json r = driver_->run("uninstall", {{"installationId", icfg}, {"webhook", false}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(seen, "pending_deletion");
  EXPECT_EQ(installation(icfg)["status"], "finalized");
  EXPECT_EQ(r["installationStatus"], "finalized");
}

TEST_F(DriverTest, BlockedUninstallLeavesTheInstallationActive) {
  std::string icfg = install();
  partner_.script([](const net::Request&) {
    return json(409, {{"error", {{"code", "conflict"}, {"message", "open invoices"}}}});
  });
  Json r = driver_->run("uninstall", {{"installationId", icfg}});
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_TRUE(r["findings"].empty());
  EXPECT_EQ(installation(icfg)["status"], "active");
  EXPECT_EQ(partner_.requests().size(), 1u);  // no webhook
}

TEST_F(DriverTest, WebhooksAreRetriedWithBackoffUntilThePartnerAcknowledges) {
  std::atomic<int> calls{0};
  partner_.script([&](const net::Request&) {
    return ++calls < 3 ? raw(503, "text/plain", "busy") : net::Response::empty(200);
  });
  driver_->start();
  Json r = driver_->run("webhook", {{"type", "marketplace.member.changed"},
                                    {"payload", {{"memberId", "u1"}, {"role", "NONE"}}}});
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_EQ(r["status"], 503);
  EXPECT_TRUE(r["delivery"]["retrying"].get<bool>());
  std::string id = r["webhookId"];
  auto record = [&]() {
    return state_->read([&](const Json& doc) {
      for (const auto& w : doc["webhooks"])
        if (w["id"] == id) return w;
      return Json();
    });
  };
  ASSERT_TRUE(wait_for([&] { return record()["status"] == "delivered"; })) << record().dump();
  EXPECT_EQ(record()["attempts"], 3);
  EXPECT_EQ(record()["lastStatus"], 200);
  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 3u);
  // Every attempt is the same delivery, byte for byte, correctly signed.
  for (const auto& req : reqs) {
    EXPECT_EQ(req.body, reqs[0].body);
    EXPECT_EQ(header(req, "x-vercel-signature"),
              util::to_hex(util::hmac_sha1(config_.client_secret, req.body)));
  }
  Json envelope = Json::parse(reqs[0].body);
  EXPECT_EQ(envelope["payload"], (Json{{"memberId", "u1"}, {"role", "NONE"}}));
  // Every attempt is logged.
  int hooks = 0;
  for (const auto& e : log_.list(0, 100)) hooks += e.direction == "webhook";
  EXPECT_EQ(hooks, 3);
}

TEST_F(DriverTest, WebhooksGiveUpAfterMaxAttempts) {
  partner_.script([](const net::Request&) { return raw(500, "text/plain", "down"); });
  driver_->start();
  std::string id = driver_->send_webhook("marketplace.invoice.paid", {{"invoiceId", "mi_1"}});
  auto status = [&]() {
    return state_->read([&](const Json& doc) {
      for (const auto& w : doc["webhooks"])
        if (w["id"] == id) return w["status"].get<std::string>();
      return std::string();
    });
  };
  ASSERT_TRUE(wait_for([&] { return status() == "failed"; }));
  EXPECT_EQ(partner_.requests().size(), static_cast<size_t>(config_.webhook_max_attempts));
}

TEST_F(DriverTest, WebhookRetriesFollowTheSandboxClock) {
  // An hour until the retry in real time; moving the sandbox clock makes it due at once.
  config_.webhook_first_retry_ms = 3600 * 1000;
  std::atomic<int> calls{0};
  partner_.script([&](const net::Request&) {
    return ++calls < 2 ? raw(503, "text/plain", "busy") : net::Response::empty(200);
  });
  driver_->start();
  std::string id = driver_->send_webhook("marketplace.invoice.paid", {{"invoiceId", "mi_1"}});
  auto status = [&]() {
    return state_->read([&](const Json& doc) {
      for (const auto& w : doc["webhooks"])
        if (w["id"] == id) return w["status"].get<std::string>() + "/" + w["attempts"].dump();
      return std::string();
    });
  };
  ASSERT_TRUE(wait_for([&] { return status() == "pending/1"; })) << status();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(status(), "pending/1");
  clock_.advance_ms(3600 * 1000);
  driver_->clock_moved();
  ASSERT_TRUE(wait_for([&] { return status() == "delivered/2"; }, 400)) << status();
}

TEST_F(DriverTest, BadSignatureProbe) {
  // A partner that verifies signatures.
  partner_.script([this](const net::Request& req) {
    bool good = header(req, "x-vercel-signature") ==
                util::to_hex(util::hmac_sha1(config_.client_secret, req.body));
    return good ? net::Response::empty(200) : json(403, {{"code", "invalid_signature"}});
  });
  Json r = driver_->run(
      "webhook",
      {{"type", "marketplace.invoice.created"}, {"payload", Json::object()}, {"signature", "bad"}});
  EXPECT_EQ(r["status"], 403);
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  EXPECT_FALSE(r["delivery"]["retrying"].get<bool>());

  // A partner that accepts anything is told so.
  partner_.script([](const net::Request&) { return net::Response::empty(200); });
  r = driver_->run(
      "webhook",
      {{"type", "marketplace.invoice.created"}, {"payload", Json::object()}, {"signature", "bad"}});
  ASSERT_EQ(r["findings"].size(), 1u);
  EXPECT_EQ(r["findings"][0].get<std::string>().rfind("x-vercel-signature:", 0), 0u);
}

TEST_F(DriverTest, PurchaseCreatesAPaidInvoiceBeforeCallingThePartner) {
  std::string icfg = install();
  provision(icfg, "db_1");
  Json seen;
  partner_.script([&](const net::Request& req) {
    // The invoice must already be readable (and the State lock not held during the call).
    std::string invoice_id = Json::parse(req.body)["invoiceId"];
    seen = state_->read([&](const Json& doc) { return doc["invoices"][icfg][invoice_id]; });
    return json(200, {{"timestamp", "2030-01-01T00:00:00.000Z"},
                      {"balances", {{{"resourceId", "db_1"}, {"currencyValueInCents", 2500}}}}});
  });
  Json r = driver_->run("purchase",
                        {{"installationId", icfg}, {"resourceId", "db_1"}, {"amount", "25.00"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  ASSERT_TRUE(seen.is_object());
  EXPECT_EQ(seen["state"], "paid");
  EXPECT_EQ(seen["invoiceId"].get<std::string>().rfind("mi_", 0), 0u);
  EXPECT_EQ(seen["total"], "25.00");
  ASSERT_EQ(seen["items"].size(), 1u);
  EXPECT_EQ(seen["items"][0]["billingPlanId"], "free");  // the resource's plan
  EXPECT_EQ(seen["items"][0]["resourceId"], "db_1");
  EXPECT_EQ(seen["items"][0]["units"], "credit");
  EXPECT_EQ(partner_.requests()[0].target, "/v1/installations/" + icfg + "/billing/provision");
  Json balances = state_->read([&](const Json& doc) { return doc["balances"][icfg]; });
  EXPECT_EQ(balances["balances"][0]["currencyValueInCents"], 2500);

  // The invoice webhook is built from the stored invoice.
  partner_.clear();
  partner_.script([](const net::Request&) { return net::Response::empty(204); });
  r = driver_->run("webhook", {{"type", "marketplace.invoice.refunded"},
                               {"installationId", icfg},
                               {"invoiceId", r["invoiceId"]},
                               {"amount", "5.00"},
                               {"reason", "goodwill"}});
  ASSERT_TRUE(r["ok"].get<bool>());
  Json payload = Json::parse(partner_.requests()[0].body)["payload"];
  EXPECT_EQ(payload["installationId"], icfg);
  EXPECT_EQ(payload["configuration"]["id"], icfg);
  EXPECT_EQ(payload["invoiceId"], seen["invoiceId"]);
  EXPECT_TRUE(payload["externalInvoiceId"].is_null());
  EXPECT_EQ(payload["invoiceTotal"], "25.00");
  EXPECT_EQ(payload["period"], seen["period"]);
  EXPECT_EQ(payload["invoiceDate"], seen["invoiceDate"]);
  EXPECT_EQ(payload["amount"], "5.00");
  EXPECT_EQ(payload["reason"], "goodwill");
}

TEST_F(DriverTest, TransferCreateVerifyAcceptMovesResources) {
  std::string source = install();
  provision(source, "db_1");
  std::string target = install();
  partner_.script([](const net::Request& req) {
    if (req.method == "POST" && req.path.find("/accept") != std::string::npos)
      return net::Response::empty(204);
    // After the accept the sandbox checks that the target lists what moved.
    if (req.method == "GET" && req.path.size() > 10 &&
        req.path.compare(req.path.size() - 10, 10, "/resources") == 0)
      return json(200, {{"resources", Json::array({resource_json("db_1")})}});
    if (req.method == "GET") return json(200, {{"valid", true}});
    return json(200, {{"providerClaimId", "claim_1"}});
  });
  Json r = driver_->run("transfer-create", {{"installationId", source}, {"resourceIds", {"db_1"}}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["claimId"], "claim_1");
  auto reqs = partner_.requests();
  EXPECT_EQ(reqs[0].target, "/v1/installations/" + source + "/resource-transfer-requests");
  Json body = Json::parse(reqs[0].body);
  EXPECT_EQ(body["resourceIds"], Json::array({"db_1"}));
  EXPECT_TRUE(body["expiresAt"].is_number_integer());

  r = driver_->run("transfer-verify", {{"installationId", target}, {"claimId", "claim_1"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  r = driver_->run("transfer-accept", {{"installationId", target}, {"claimId", "claim_1"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  EXPECT_EQ(r["moved"], Json::array({"db_1"}));
  reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[3].method, "GET");
  EXPECT_EQ(reqs[3].target, "/v1/installations/" + target + "/resources");
  EXPECT_EQ(reqs[1].method, "GET");
  EXPECT_EQ(reqs[1].target,
            "/v1/installations/" + target + "/resource-transfer-requests/claim_1/verify");
  EXPECT_EQ(reqs[2].method, "POST");
  EXPECT_EQ(claims_of(reqs[2])["installation_id"], target);
  EXPECT_TRUE(resource(source, "db_1").is_null());
  EXPECT_EQ(resource(target, "db_1")["name"], "main");

  // The legacy shape: PUT under a Vercel-chosen id, POST verify.
  provision(source, "db_2");
  partner_.script([](const net::Request& req) {
    if (req.method == "PUT") return net::Response::empty(204);
    return json(200, Json::object());
  });
  r = driver_->run("transfer-create",
                   {{"installationId", source}, {"resourceIds", {"db_2"}}, {"legacy", true}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  std::string claim = r["claimId"];
  r = driver_->run("transfer-verify", {{"installationId", target}, {"claimId", claim}});
  reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].path, "/v1/installations/" + source + "/resource-transfer-requests/" + claim);
  EXPECT_TRUE(Json::parse(reqs[0].body).contains("expiration"));
  EXPECT_EQ(reqs[1].method, "POST");

  // A resource the source does not own is refused by the sandbox itself.
  EXPECT_THROW(
      driver_->run("transfer-create", {{"installationId", source}, {"resourceIds", {"nope"}}}),
      ApiError);
}

TEST_F(DriverTest, SsoCreatesASingleUseCodeAndTheRedirect) {
  std::string icfg = install();
  config_.redirect_login_url = "https://partner.test/sso?x=1";
  Json r = driver_->run("sso", {{"installationId", icfg},
                                {"resourceId", "db 1"},
                                {"path", "billing"},
                                {"url", "https://partner.test/dash"}});
  ASSERT_TRUE(r["ok"].get<bool>());
  std::string url = r["redirectUrl"];
  std::string code = r["code"], st = r["state"];
  EXPECT_EQ(url.rfind("https://partner.test/sso?x=1&mode=sso&code=", 0), 0u) << url;
  EXPECT_NE(url.find("&resource_id=db%201"), std::string::npos) << url;
  EXPECT_NE(url.find("&path=billing"), std::string::npos) << url;
  EXPECT_NE(url.find("&url=https%3A%2F%2Fpartner.test%2Fdash"), std::string::npos) << url;
  Json rec = state_->read([&](const Json& doc) { return doc["ssoCodes"][code]; });
  EXPECT_EQ(rec["installationId"], icfg);
  EXPECT_EQ(rec["state"], st);
  EXPECT_FALSE(rec["used"].get<bool>());
  EXPECT_EQ(rec["expiresAt"], clock_.now_ms() + config_.sso_code_ttl_ms);
  EXPECT_EQ(rec["userHex"], installation(icfg)["installedBy"]);
  EXPECT_TRUE(partner_.requests().empty());  // a browser follows it, not the sandbox
}

TEST_F(DriverTest, ChangePlanPatchesInstallationAndReadsItBackAfter204) {
  std::string icfg = install();
  partner_.script([](const net::Request& req) {
    if (req.method == "PATCH") return net::Response::empty(204);
    Json plan = plan_json();
    plan["id"] = "team-pro";
    plan["scope"] = "installation";
    return json(200, {{"billingPlan", plan}});
  });
  Json r = driver_->run("change-plan", {{"installationId", icfg}, {"billingPlanId", "team-pro"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_TRUE(r["findings"].empty()) << r.dump();
  auto reqs = partner_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(Json::parse(reqs[0].body), (Json{{"billingPlanId", "team-pro"}}));
  EXPECT_EQ(header(reqs[1], "x-vercel-auth"), "system");
  EXPECT_EQ(installation(icfg)["billingPlan"]["id"], "team-pro");
}

TEST_F(DriverTest, SurvivesGarbageAnswers) {
  std::string icfg = install();
  provision(icfg, "db_1");
  // Answers that are wrong for every endpoint (so each must give findings), then answers
  // that only some endpoints accept (an object with unknown keys, 204).
  const std::vector<net::Response> always_wrong = {
      raw(200, "application/json", "{\"id\":"),
      raw(200, "application/json", "\xff\xfe\xfd"),
      raw(200, "application/json", std::string(5000, '[') + std::string(5000, ']')),
      raw(200, "application/json", std::string(1000000, '[')),
      raw(200, "application/jsonl", "garbage\n\xff\n[1]\n"),
      raw(200, "text/html", "<html></html>"),
      raw(418, "", ""),
      raw(500, "application/json", "null"),
  };
  const std::vector<net::Response> sometimes_wrong = {
      raw(200, "application/json", "{\"id\":123,\"secrets\":{\"a\":1},\"sync\":\"yes\"}"),
      raw(200, "application/json", "{\"id\":\"\",\"finalized\":[],\"providerClaimId\":null}"),
      net::Response::empty(204),
  };
  std::vector<std::pair<net::Response, bool>> garbage;
  for (const auto& g : always_wrong) garbage.emplace_back(g, true);
  for (const auto& g : sometimes_wrong) garbage.emplace_back(g, false);
  const std::vector<std::pair<std::string, Json>> flows = {
      {"plans", {{"installationId", icfg}}},
      {"get-resource", {{"installationId", icfg}, {"resourceId", "db_1"}}},
      {"list-resources", {{"installationId", icfg}, {"ids", {"db_1"}}}},
      {"update-resource", {{"installationId", icfg}, {"resourceId", "db_1"}, {"name", "x"}}},
      {"repl",
       {{"installationId", icfg}, {"resourceId", "db_1"}, {"input", "x"}, {"stream", true}}},
      {"rotate-secrets", {{"installationId", icfg}, {"resourceId", "db_1"}}},
      {"change-plan", {{"installationId", icfg}, {"billingPlanId", "p"}}},
      {"get-installation", {{"installationId", icfg}}},
      {"purchase", {{"installationId", icfg}, {"amount", "1.00"}, {"planId", "p"}}},
      {"transfer-create", {{"installationId", icfg}, {"resourceIds", {"db_1"}}}},
      {"transfer-verify", {{"installationId", icfg}, {"claimId", "c"}}},
      {"transfer-accept", {{"installationId", icfg}, {"claimId", "c"}}},
      {"provision",
       {{"installationId", icfg}, {"productId", "p"}, {"name", "n"}, {"billingPlanId", "p"}}},
      {"install", {{"installationId", icfg}}},
  };
  for (const auto& [answer, must_find] : garbage) {
    partner_.script([response = answer](const net::Request&) { return response; });
    for (const auto& [flow, params] : flows) {
      Json r;
      ASSERT_NO_THROW(r = driver_->run(flow, params)) << flow << " " << answer.body.substr(0, 20);
      // The result is always renderable.
      EXPECT_NO_THROW(r.dump(-1, ' ', false, Json::error_handler_t::strict)) << flow;
      if (must_find) {
        EXPECT_FALSE(r["findings"].empty()) << flow << " " << answer.body.substr(0, 20);
      }
    }
  }
  // The state file is still a valid document.
  EXPECT_NO_THROW(State((dir_ / "sandbox-state.json").string()));
}

TEST_F(DriverTest, UnreachablePartnerIsATransportError) {
  config_.partner_url = "http://127.0.0.1:1";
  Json r = driver_->run("plans", {{"productId", "sqlite"}});
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_EQ(r["status"], 0);
  EXPECT_TRUE(r["error"].is_string());
  ASSERT_EQ(r["findings"].size(), 1u);
  EXPECT_EQ(r["findings"][0].get<std::string>().rfind("transport: ", 0), 0u);
}

TEST_F(DriverTest, OneFlowTableDispatchesAndListsEveryFlow) {
  const auto& table = detail::flow_table();
  std::vector<std::string> names = Driver::flow_names();
  ASSERT_EQ(names.size(), table.size());
  EXPECT_EQ(names.size(), 19u);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  for (size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(names[i], table[i].name);
    EXPECT_NE(table[i].handler, nullptr) << table[i].name;
    EXPECT_GT(std::string(table[i].description).size(), 10u) << table[i].name;
    // Each name reaches its own handler, which refuses a parameter it does not take.
    try {
      driver_->run(names[i], {{"notAParameter", 1}});
      ADD_FAILURE() << names[i] << " accepted an unknown parameter";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << names[i];
      bool named = false;
      for (const auto& f : e.fields)
        named =
            named || (f.key == "notAParameter" && f.message == "is not a parameter of " + names[i]);
      EXPECT_TRUE(named) << names[i] << ": " << e.what();
    }
  }
  EXPECT_TRUE(partner_.requests().empty());
}

TEST_F(DriverTest, CliTextIsTypedByTheFlowsOwnParameterTypes) {
  std::string icfg = install();
  partner_.script([](const net::Request& req) {
    if (req.method == "POST" && req.target.find("/repl") != std::string::npos)
      return json(200, {{"output", "1"}});
    return json(200, resource_json("db_7"));
  });
  // As the CLI sends them: every value is text.
  Json r = driver_->run("provision", {{"installationId", icfg},
                                      {"productId", "sqlite"},
                                      {"name", "123"},
                                      {"metadata", "{\"a\":1}"},
                                      {"billingPlanId", "free"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  Json sent = Json::parse(partner_.requests()[0].body);
  EXPECT_EQ(sent["name"], "123");  // a name stays a name
  EXPECT_EQ(sent["metadata"], (Json{{"a", 1}}));
  partner_.clear();
  r = driver_->run(
      "repl",
      {{"installationId", icfg}, {"resourceId", "db_7"}, {"input", "123"}, {"readOnly", "true"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  sent = Json::parse(partner_.requests()[0].body);
  EXPECT_EQ(sent["input"], "123");
  EXPECT_EQ(sent["readOnly"], true);
  partner_.clear();

  // A decimal amount stays the decimal string a purchase takes; quoted text is taken as typed
  // and refused by the amount's own check.
  partner_.script([](const net::Request&) {
    return json(200, {{"timestamp", "2030-01-01T00:00:00.000Z"}, {"balances", Json::array()}});
  });
  r = driver_->run("purchase", {{"installationId", icfg}, {"amount", "25.00"}, {"planId", "p"}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["invoice"]["total"], "25.00");
  partner_.clear();
  try {
    driver_->run("purchase", {{"installationId", icfg}, {"amount", "\"25.00\""}, {"planId", "p"}});
    FAIL() << "expected a 400";
  } catch (const ApiError& e) {
    ASSERT_EQ(e.fields.size(), 1u);
    EXPECT_EQ(e.fields[0].key, "amount");
  }
  try {
    driver_->run("transfer-create",
                 {{"installationId", icfg}, {"resourceIds", "[\"db_7\"]"}, {"expiresAt", "5.5"}});
    FAIL() << "expected a 400";
  } catch (const ApiError& e) {
    ASSERT_EQ(e.fields.size(), 1u);
    EXPECT_EQ(e.fields[0].key, "expiresAt");
  }
  EXPECT_TRUE(partner_.requests().empty());
}

}  // namespace
}  // namespace wharf::sandbox
