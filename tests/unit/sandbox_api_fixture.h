// A wharf-sandbox with its Vercel API (and optionally its control API) on a route table, a
// manual clock at kNow and a temp data dir, called with hand-built requests: the fixture the
// sandbox's API unit tests share (sandbox_vercel_api_test, sandbox_deployments_test).
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "net/http_client.h"
#include "sandbox/context.h"
#include "sandbox/control_api.h"
#include "sandbox/driver.h"
#include "sandbox/vercel_api.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::sandbox::testing_support {

using model::Json;

inline int64_t at(const std::string& iso) {
  int64_t ms = 0;
  EXPECT_TRUE(util::parse_iso8601(iso, &ms)) << iso;
  return ms;
}

inline const std::string kNow = "2025-03-15T12:00:00Z";

class SandboxApiFixture : public ::testing::Test {
 protected:
  // Builds the sandbox in a fresh temp dir named after `name`; `control`: also the
  // /_sandbox control routes.
  void start(const std::string& name, bool control) {
    dir_ =
        std::filesystem::temp_directory_path() / (name + "_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    config_.data_dir = dir_.string();
    config_.base_url = "http://sandbox.test";
    config_.issuer = "http://sandbox.test";
    config_.client_secret = "client-secret-0123456789";
    config_.partner_url = "http://127.0.0.1:1";  // nothing listens: refreshes fail fast
    clock_ = std::make_unique<util::ManualClock>(at(kNow));
    state_ = std::make_unique<State>((dir_ / "sandbox-state.json").string());
    identity_ =
        std::make_unique<Identity>(dir_.string(), config_.issuer, config_.client_id, *clock_);
    ctx_ = std::make_unique<Context>(Context{config_, *state_, log_, *identity_, http_, *clock_});
    driver_ = std::make_unique<Driver>(*ctx_);
    routes_ = std::make_unique<Routes>();
    add_vercel_api_routes(*routes_, *ctx_, *driver_);
    if (control) add_control_routes(*routes_, *ctx_, *driver_);
  }

  void TearDown() override {
    routes_.reset();  // joins the API's background worker before what it uses goes away
    driver_.reset();
    ctx_.reset();
    identity_.reset();
    state_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  net::Response call(const std::string& method, const std::string& target,
                     const std::string& body = "", std::optional<std::string> token = "tok_a",
                     const std::string& content_type = "application/json",
                     const net::Headers& extra = {}) {
    net::Request req;
    req.method = method;
    req.target = target;
    auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    if (token) req.headers.emplace_back("authorization", "Bearer " + *token);
    if (!body.empty() && !content_type.empty())
      req.headers.emplace_back("content-type", content_type);
    for (const auto& h : extra) req.headers.push_back(h);
    req.body = body;
    auto m = routes_->match(method, req.path);
    if (!m.route) {
      ADD_FAILURE() << "no route for " << method << " " << target;
      return net::Response::empty(0);
    }
    return (*m.route)(req, m.params);
  }
  net::Response call_json(const std::string& method, const std::string& target, const Json& body,
                          std::optional<std::string> token = "tok_a") {
    return call(method, target, body.dump(), std::move(token));
  }

  static Json body_of(const net::Response& r) { return Json::parse(r.body, nullptr, false); }
  // Vercel's error envelope: {"error": {"code", "message"}}.
  static std::string message_of(const net::Response& r) {
    Json j = body_of(r);
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object())
      return "<no error envelope: " + r.body + ">";
    return j["error"].value("message", "");
  }
  static std::string code_of(const net::Response& r) {
    Json j = body_of(r);
    return j.is_object() && j.contains("error") && j["error"].is_object()
               ? j["error"].value("code", "")
               : "";
  }
  Json doc() const { return state_->snapshot(); }

  // Active installation `id` ("icfg_<s>") as the sandbox keeps it: team "team_a1b2c3<s>",
  // access token "tok_<s>", one ADMIN member "u<s>" who installed it.
  static Json installation_record(const std::string& id) {
    std::string suffix = id.substr(5);
    return {
        {"id", id},
        {"accountHex", "a1b2c3" + suffix},
        {"accountId", "team_a1b2c3" + suffix},
        {"status", "active"},
        {"accessTokens", {"tok_" + suffix}},
        {"tokenRotations", Json::array()},
        {"scopes", {"read-write:integration-resource"}},
        {"installedBy", "u" + suffix},
        {"users", {{"u" + suffix, {{"role", "ADMIN"}, {"email", "ann@example.com"}}}}},
        {"account", {{"name", "Team"}, {"url", "https://vercel.com/team"}, {"contact", nullptr}}}};
  }

  std::filesystem::path dir_;
  SandboxConfig config_;
  std::unique_ptr<util::ManualClock> clock_;
  std::unique_ptr<State> state_;
  ExchangeLog log_;
  std::unique_ptr<Identity> identity_;
  net::HttpClient http_;
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<Driver> driver_;
  std::unique_ptr<Routes> routes_;
};

}  // namespace wharf::sandbox::testing_support
