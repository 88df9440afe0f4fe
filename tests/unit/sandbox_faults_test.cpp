// Fault injection and the movable clock of wharf-sandbox: rule validation, matching, counts
// and expiry (sandbox/faults.h), the Vercel API answering injected faults (respond / after /
// delay), the exchange log marking them, and the /_sandbox/clock and /_sandbox/faults control
// endpoints.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include "net/http_client.h"
#include "sandbox/context.h"
#include "sandbox/control_api.h"
#include "sandbox/driver.h"
#include "sandbox/faults.h"
#include "sandbox/vercel_api.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

using model::Json;

constexpr int64_t kStart = 1'750'000'000'000;

// The fields a 400 names, in order.
std::vector<std::string> fields_of(const model::ApiError& e) {
  std::vector<std::string> out;
  for (const auto& f : e.fields) out.push_back(f.key);
  return out;
}

std::vector<std::string> rejected_fields(const Json& body) {
  try {
    Faults::parse(body);
  } catch (const model::ApiError& e) {
    EXPECT_EQ(e.status, 400);
    return fields_of(e);
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

Json rules(const Json& rule) {
  return Json{{"rules", Json::array({rule})}};
}

using Fields = std::vector<std::string>;

TEST(SandboxFaultRules, ValidationNamesEveryOffendingField) {
  EXPECT_EQ(rejected_fields(Json::object()), Fields{"rules"});
  EXPECT_EQ(rejected_fields({{"rules", Json::array()}}), Fields{"rules"});
  EXPECT_EQ(rejected_fields({{"rules", Json::object()}}), Fields{"rules"});
  EXPECT_EQ(rejected_fields({{"rules", Json::array({1})}}), Fields{"rules[0]"});
  EXPECT_EQ(rejected_fields({{"rule", Json::array()}}), (Fields{"rule", "rules"}));
  // status: required, restricted, absent for delay.
  EXPECT_EQ(rejected_fields(rules({{"method", "POST"}})), Fields{"rules[0].status"});
  EXPECT_EQ(rejected_fields(rules({{"status", 418}})), Fields{"rules[0].status"});
  EXPECT_EQ(rejected_fields(rules({{"status", 400}})), Fields{"rules[0].status"});
  // What Vercel answers a client that must give up or move on: a store gone, a conflict.
  for (int status : {404, 409, 410}) EXPECT_NO_THROW(Faults::parse(rules({{"status", status}})));
  EXPECT_EQ(rejected_fields(rules({{"status", "503"}})), Fields{"rules[0].status"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"mode", "delay"}, {"delayMs", 10}})),
            Fields{"rules[0].status"});
  EXPECT_EQ(rejected_fields(rules({{"mode", "delay"}})), Fields{"rules[0].delayMs"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"mode", "later"}})), Fields{"rules[0].mode"});
  // method exact and upper case; pathContains non-empty.
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"method", "post"}})),
            Fields{"rules[0].method"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"pathContains", ""}})),
            Fields{"rules[0].pathContains"});
  // Integers: type and range.
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"count", 0}})), Fields{"rules[0].count"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"count", 1.5}})), Fields{"rules[0].count"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"count", true}})), Fields{"rules[0].count"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"durationMs", -1}})),
            Fields{"rules[0].durationMs"});
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"delayMs", Faults::kMaxDelayMs + 1}})),
            Fields{"rules[0].delayMs"});
  EXPECT_EQ(rejected_fields(rules({{"status", 429}, {"retryAfterS", -2}})),
            Fields{"rules[0].retryAfterS"});
  // error.limit only on rate limiting; no answer fields on delays.
  EXPECT_EQ(rejected_fields(rules({{"status", 503}, {"limitResetMs", 1000}})),
            Fields{"rules[0].limitResetMs"});
  EXPECT_EQ(rejected_fields(rules(
                {{"mode", "delay"}, {"delayMs", 5}, {"retryAfterS", 1}, {"limitResetMs", 1}})),
            (Fields{"rules[0].retryAfterS", "rules[0].limitResetMs"}));
  // Unknown fields; every rule is checked.
  EXPECT_EQ(rejected_fields({{"rules", {{{"status", 503}}, {{"status", 500}, {"paht", "/v1"}}}}}),
            Fields{"rules[1].paht"});

  auto ok = Faults::parse({{"rules",
                            {{{"status", 429},
                              {"method", "POST"},
                              {"pathContains", "/billing"},
                              {"count", 2},
                              {"durationMs", 60000},
                              {"retryAfterS", 3},
                              {"limitResetMs", 5000}},
                             {{"mode", "delay"}, {"delayMs", 250}},
                             {{"mode", "after"}, {"status", 504}, {"delayMs", 10}}}}});
  ASSERT_EQ(ok.size(), 3u);
  EXPECT_EQ(ok[0].status, 429);
  EXPECT_EQ(ok[0].method, "POST");
  EXPECT_EQ(ok[0].remaining, 2);
  EXPECT_EQ(ok[1].mode, "delay");
  EXPECT_EQ(ok[1].delay_ms, 250);
  EXPECT_FALSE(ok[1].remaining.has_value());
  EXPECT_EQ(ok[2].mode, "after");
}

TEST(SandboxFaultRules, AFailingRuleAddsNothing) {
  util::ManualClock clock(kStart);
  Faults faults(clock);
  EXPECT_THROW(faults.add({{"rules", {{{"status", 503}}, {{"status", 999}}}}}), model::ApiError);
  EXPECT_TRUE(faults.list().empty());
}

TEST(SandboxFaultRules, MatchingCountsAndFirstLiveRuleWins) {
  util::ManualClock clock(kStart);
  Faults faults(clock);
  faults.add({{"rules",
               {{{"status", 503}, {"method", "POST"}, {"pathContains", "/billing"}, {"count", 2}},
                {{"status", 500}, {"pathContains", "/billing"}}}}});
  // Not the Vercel API: never faulted, even when a rule would match.
  EXPECT_FALSE(faults.take("POST", "/_sandbox/billing").has_value());
  EXPECT_FALSE(faults.take("GET", "/.well-known/jwks").has_value());
  // Path must contain the substring.
  EXPECT_FALSE(faults.take("POST", "/v1/installations/i/events").has_value());

  auto a = faults.take("POST", "/v1/installations/i/billing");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 503);
  EXPECT_EQ(a->remaining, 1);
  EXPECT_EQ(a->hits, 1);
  // Another method falls through to the second rule.
  auto g = faults.take("GET", "/v1/installations/i/billing/invoices");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 500);
  auto b = faults.take("POST", "/v1/installations/i/billing");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 503);
  EXPECT_EQ(b->remaining, 0);
  // Exhausted: the unlimited rule takes over.
  auto c = faults.take("POST", "/v1/installations/i/billing");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, 500);

  auto listed = faults.list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].hits, 2);
  EXPECT_EQ(listed[0].remaining, 0);
  EXPECT_FALSE(listed[0].live(clock.now_ms()));
  EXPECT_EQ(listed[1].hits, 2);
  EXPECT_FALSE(listed[1].remaining.has_value());
  Json j = Faults::to_json(listed[0], clock.now_ms());
  EXPECT_EQ(j["remaining"], 0);
  EXPECT_EQ(j["hits"], 2);
  EXPECT_EQ(j["count"], 2);
  EXPECT_EQ(j["active"], false);
  EXPECT_TRUE(Faults::to_json(listed[1], clock.now_ms())["remaining"].is_null());

  EXPECT_EQ(faults.clear(), 2u);
  EXPECT_FALSE(faults.take("POST", "/v1/installations/i/billing").has_value());
}

TEST(SandboxFaultRules, RulesExpireOnTheSandboxClock) {
  util::ManualClock clock(kStart);
  Faults faults(clock);
  auto added = faults.add(rules({{"status", 502}, {"durationMs", 1000}}));
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].expires_at_ms, kStart + 1000);
  clock.advance_ms(999);
  EXPECT_TRUE(faults.take("GET", "/v1/x").has_value());
  clock.advance_ms(1);
  EXPECT_FALSE(faults.take("GET", "/v1/x").has_value());
  EXPECT_EQ(Faults::to_json(faults.list()[0], clock.now_ms())["active"], false);
}

TEST(SandboxFaultRules, ResponsesCarryTheEnvelopeRetryAfterAndLimit) {
  auto r = Faults::parse(rules({{"status", 429}, {"retryAfterS", 7}, {"limitResetMs", 2500}}))[0];
  r.id = 4;
  net::Response res = Faults::response(r, kStart + 1);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(res.content_type, "application/json");
  std::string retry_after;
  for (const auto& [k, v] : res.headers)
    if (k == "Retry-After") retry_after = v;
  EXPECT_EQ(retry_after, "7");
  Json body = Json::parse(res.body);
  EXPECT_EQ(body["error"]["code"], "rate_limited");
  EXPECT_EQ(body["error"]["limit"]["resetMs"], kStart + 1 + 2500);
  // Epoch seconds, rounded up: never earlier than resetMs.
  EXPECT_EQ(body["error"]["limit"]["reset"], (kStart + 1 + 2500 + 999) / 1000);
  EXPECT_EQ(body["error"]["limit"]["remaining"], 0);

  auto s = Faults::parse(rules({{"status", 503}}))[0];
  res = Faults::response(s, kStart);
  body = Json::parse(res.body);
  EXPECT_EQ(body["error"]["code"], "service_unavailable");
  EXPECT_FALSE(body["error"].contains("limit"));
  for (const auto& [k, v] : res.headers) EXPECT_NE(k, "Retry-After");
}

// ---- through the sandbox's routes -------------------------------------------------------------

class SandboxFaultsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_sandbox_faults_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    config_.data_dir = dir_.string();
    config_.base_url = "http://sandbox.test";
    config_.issuer = "http://sandbox.test";
    config_.client_secret = "client-secret-0123456789";
    config_.partner_url = "http://127.0.0.1:1";  // nothing listens: refreshes fail fast
    state_ = std::make_unique<State>((dir_ / "sandbox-state.json").string());
    identity_ =
        std::make_unique<Identity>(dir_.string(), config_.issuer, config_.client_id, clock_);
    faults_ = std::make_unique<Faults>(clock_);
    ctx_ = std::make_unique<Context>(
        Context{config_, *state_, log_, *identity_, http_, clock_, &clock_, faults_.get()});
    driver_ = std::make_unique<Driver>(*ctx_);
    routes_ = std::make_unique<Routes>();
    add_vercel_api_routes(*routes_, *ctx_, *driver_);
    add_control_routes(*routes_, *ctx_, *driver_);
    state_->mutate([](Json& doc) {
      doc["installations"]["icfg_a"] = {
          {"id", "icfg_a"},     {"accountHex", "a1b2c3"},    {"accountId", "team_a1b2c3"},
          {"status", "active"}, {"accessTokens", {"tok_a"}}, {"users", Json::object()}};
    });
  }

  void TearDown() override {
    routes_.reset();
    driver_.reset();
    ctx_.reset();
    identity_.reset();
    state_.reset();
    std::filesystem::remove_all(dir_);
  }

  net::Response call(const std::string& method, const std::string& path, const Json& body = {}) {
    net::Request req;
    req.method = method;
    req.target = path;
    req.path = path;
    req.headers.emplace_back("authorization", "Bearer tok_a");
    if (!body.is_null()) {
      req.headers.emplace_back("content-type", "application/json");
      req.body = body.dump();
    }
    auto m = routes_->match(method, req.path);
    if (!m.route) {
      ADD_FAILURE() << "no route for " << method << " " << path;
      return net::Response::empty(0);
    }
    return (*m.route)(req, m.params);
  }

  Json installation() const {
    return state_->read([](const Json& doc) { return doc["installations"]["icfg_a"]; });
  }
  Exchange last_exchange() const {
    auto all = log_.list(0, 100000);
    return all.empty() ? Exchange{} : all.back();
  }
  static Json body_of(const net::Response& r) { return Json::parse(r.body, nullptr, false); }

  std::filesystem::path dir_;
  SandboxConfig config_;
  util::OffsetClock clock_;
  ExchangeLog log_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Identity> identity_;
  net::HttpClient http_;
  std::unique_ptr<Faults> faults_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<Driver> driver_;
  std::unique_ptr<Routes> routes_;
};

const Json kPatch = {{"status", "suspended"}};

TEST_F(SandboxFaultsApiTest, RespondModeAnswersTheFaultAndChangesNothing) {
  auto added =
      call("POST", "/_sandbox/faults", rules({{"status", 503}, {"method", "PATCH"}, {"count", 1}}));
  ASSERT_EQ(added.status, 200) << added.body;
  EXPECT_EQ(body_of(added)["added"], Json::array({1}));

  auto r = call("PATCH", "/v1/installations/icfg_a", kPatch);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(body_of(r)["error"]["code"], "service_unavailable");
  EXPECT_FALSE(installation().contains("partnerStatus"));
  Exchange ex = last_exchange();
  EXPECT_EQ(ex.status, 503);
  EXPECT_EQ(ex.fault["injected"], true);
  EXPECT_EQ(ex.fault["rule"], 1);
  EXPECT_EQ(ex.fault["mode"], "respond");
  EXPECT_TRUE(ex.findings.empty());
  EXPECT_EQ(ExchangeLog::to_json(ex)["fault"]["status"], 503);

  // Count spent: the next call is handled.
  r = call("PATCH", "/v1/installations/icfg_a", kPatch);
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(installation()["partnerStatus"], "suspended");
  EXPECT_TRUE(last_exchange().fault.is_null());
  EXPECT_FALSE(ExchangeLog::to_json(last_exchange()).contains("fault"));

  Json listed = body_of(call("GET", "/_sandbox/faults"));
  ASSERT_EQ(listed["rules"].size(), 1u);
  EXPECT_EQ(listed["rules"][0]["hits"], 1);
  EXPECT_EQ(listed["rules"][0]["remaining"], 0);
}

TEST_F(SandboxFaultsApiTest, AfterModeKeepsTheChangeButAnswersTheFault) {
  ASSERT_EQ(call("POST", "/_sandbox/faults", rules({{"status", 500}, {"mode", "after"}})).status,
            200);
  auto r = call("PATCH", "/v1/installations/icfg_a", kPatch);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(installation()["partnerStatus"], "suspended");
  Exchange ex = last_exchange();
  EXPECT_EQ(ex.fault["mode"], "after");
  EXPECT_EQ(ex.fault["handledStatus"], 204);
}

TEST_F(SandboxFaultsApiTest, DelayModeHandlesTheCallLate) {
  ASSERT_EQ(
      call("POST", "/_sandbox/faults", rules({{"mode", "delay"}, {"delayMs", 120}, {"count", 1}}))
          .status,
      200);
  auto t0 = std::chrono::steady_clock::now();
  auto r = call("PATCH", "/v1/installations/icfg_a", kPatch);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(r.status, 204);
  EXPECT_GE(ms, 120);
  EXPECT_EQ(installation()["partnerStatus"], "suspended");
  EXPECT_EQ(last_exchange().fault["delayMs"], 120);
  EXPECT_GE(last_exchange().duration_ms, 120.0);
}

TEST_F(SandboxFaultsApiTest, ControlApiIsNeverFaultedAndRejectsBadRules) {
  ASSERT_EQ(call("POST", "/_sandbox/faults", rules({{"status", 503}})).status, 200);
  EXPECT_EQ(call("GET", "/_sandbox/state").status, 200);
  EXPECT_EQ(call("GET", "/.well-known/jwks").status, 200);
  auto bad = call("POST", "/_sandbox/faults", rules({{"status", 503}, {"count", -1}}));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(body_of(bad)["error"]["fields"][0]["key"], "rules[0].count");
  EXPECT_EQ(body_of(call("DELETE", "/_sandbox/faults"))["cleared"], 1);
  EXPECT_EQ(call("PATCH", "/v1/installations/icfg_a", kPatch).status, 204);
}

TEST_F(SandboxFaultsApiTest, ClockMovesForwardOnly) {
  Json before = body_of(call("GET", "/_sandbox/clock"));
  EXPECT_EQ(before["offsetMs"], 0);
  auto r = call("POST", "/_sandbox/clock", {{"advanceMs", 86400000}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json after = body_of(r);
  EXPECT_EQ(after["offsetMs"], 86400000);
  EXPECT_GE(after["nowMs"].get<int64_t>(), before["nowMs"].get<int64_t>() + 86400000);
  int64_t parsed = 0;
  ASSERT_TRUE(util::parse_iso8601(after["now"].get<std::string>(), &parsed));
  EXPECT_EQ(parsed, after["nowMs"].get<int64_t>());
  // The Vercel API sees the same time.
  EXPECT_GE(clock_.now_ms(), after["nowMs"].get<int64_t>());

  int64_t target = clock_.now_ms() + 3'600'000;
  r = call("POST", "/_sandbox/clock", {{"setMs", target}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GE(body_of(r)["nowMs"].get<int64_t>(), target);
  r = call("POST", "/_sandbox/clock", {{"set", util::format_iso8601_ms(target + 60000)}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GE(body_of(r)["nowMs"].get<int64_t>(), target + 60000);

  int64_t offset = clock_.offset_ms();
  for (const Json& bad :
       {Json{{"advanceMs", -1}}, Json{{"setMs", target}}, Json{{"set", "2001-01-01T00:00:00Z"}},
        Json{{"set", "yesterday"}}, Json{{"advanceMs", 1.5}},
        Json{{"advanceMs", 1}, {"setMs", target}}, Json::object(), Json{{"advance", 1}}}) {
    r = call("POST", "/_sandbox/clock", bad);
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.body;
    EXPECT_FALSE(body_of(r)["error"]["fields"].empty()) << r.body;
  }
  EXPECT_EQ(body_of(call("POST", "/_sandbox/clock", {{"setMs", 5}}))["error"]["fields"][0]["key"],
            "setMs");
  EXPECT_EQ(clock_.offset_ms(), offset);
}

TEST_F(SandboxFaultsApiTest, FaultRulesExpireWhenTheClockMoves) {
  ASSERT_EQ(
      call("POST", "/_sandbox/faults", rules({{"status", 503}, {"durationMs", 60000}})).status,
      200);
  EXPECT_EQ(call("PATCH", "/v1/installations/icfg_a", kPatch).status, 503);
  ASSERT_EQ(call("POST", "/_sandbox/clock", {{"advanceMs", 60000}}).status, 200);
  EXPECT_EQ(call("PATCH", "/v1/installations/icfg_a", kPatch).status, 204);
}

}  // namespace
}  // namespace wharf::sandbox
