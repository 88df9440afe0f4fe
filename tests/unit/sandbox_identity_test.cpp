// The sandbox's tokens must pass Wharf's own verifier exactly as Vercel's do: same issuer,
// audience, key lookup by kid, and claim schemas.
#include <gtest/gtest.h>

#include <filesystem>

#include "auth/authenticator.h"
#include "auth/jwks_cache.h"
#include "sandbox/exchange_log.h"
#include "sandbox/identity.h"
#include "sandbox/state.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

class SandboxIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_sandbox_identity_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  util::ManualClock clock_{1'800'000'000'000};
};

TEST_F(SandboxIdentityTest, TokensVerifyWithWharfsAuthenticator) {
  Identity id(dir_.string(), "http://127.0.0.1:4000", "oac_abc", clock_);
  auth::JwksCache jwks(
      {}, [](const std::string&) { return net::HttpResult{}; }, clock_);
  ASSERT_TRUE(jwks.load_json(id.jwks().dump()));
  auth::Authenticator authn({"http://127.0.0.1:4000", "oac_abc", 10}, jwks, clock_);

  UserIdentity admin{"a1b2c3", "team_a1b2c3", "d4e5f6", "ADMIN", "a@example.com", "Ada"};
  auto user = authn.authenticate("Bearer " + id.user_token("icfg_1", admin), "user",
                                 {true, false, true, true}, "icfg_1");
  EXPECT_EQ(user.mode, auth::AuthMode::kUser);
  EXPECT_EQ(user.role, auth::Role::kAdmin);
  EXPECT_EQ(user.user_email, "a@example.com");

  auto system = authn.authenticate("Bearer " + id.system_token("icfg_1", "a1b2c3"), "system",
                                   {false, true, false, true}, "icfg_1");
  EXPECT_EQ(system.mode, auth::AuthMode::kSystem);
  EXPECT_EQ(system.account_id, "team_a1b2c3");

  // The pre-install product-plans token: no installation, no account.
  auto bare = authn.authenticate("Bearer " + id.system_token(std::nullopt, std::nullopt), "",
                                 {false, true, false, false}, "");
  EXPECT_FALSE(bare.installation_id);

  // Tokens expire like Vercel's.
  std::string token = id.user_token("icfg_1", admin, "access_token", 60);
  clock_.advance_ms(120'000);
  EXPECT_THROW(authn.authenticate("Bearer " + token, "user", {true, false, true, true}, "icfg_1"),
               auth::AuthFailure);
}

TEST_F(SandboxIdentityTest, SigningKeyIsKeptAcrossRestarts) {
  std::string kid;
  {
    Identity first(dir_.string(), "iss", "aud", clock_);
    kid = first.kid();
  }
  Identity second(dir_.string(), "iss", "aud", clock_);
  EXPECT_EQ(second.kid(), kid);
  auto perms = std::filesystem::status(dir_ / "signing-key.pem").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::group_all, std::filesystem::perms::none);
  EXPECT_EQ(perms & std::filesystem::perms::others_all, std::filesystem::perms::none);
}

TEST_F(SandboxIdentityTest, StatePersistsAndRollsBackOnError) {
  {
    State state((dir_ / "s.json").string());
    state.mutate([](model::Json& doc) { doc["installations"]["icfg_1"] = {{"status", "active"}}; });
    EXPECT_THROW(state.mutate([](model::Json& doc) {
      doc["installations"]["icfg_1"]["status"] = "broken";
      throw std::runtime_error("halfway");
    }),
                 std::runtime_error);
    EXPECT_EQ(state.snapshot()["installations"]["icfg_1"]["status"], "active");
  }
  State reloaded((dir_ / "s.json").string());
  EXPECT_EQ(reloaded.snapshot()["installations"]["icfg_1"]["status"], "active");
}

TEST(ExchangeLog, RedactsBearerTokensAndKeepsOrder) {
  EXPECT_EQ(ExchangeLog::redact_header("Authorization", "Bearer abcdefghijkl"), "Bearer …ghijkl");
  EXPECT_EQ(ExchangeLog::redact_header("X-Vercel-Auth", "user"), "user");
  ExchangeLog log(3);
  for (int i = 0; i < 5; ++i) log.add(Exchange{});
  auto all = log.list(0, 10);
  ASSERT_EQ(all.size(), 3u);  // bounded: the oldest were dropped
  EXPECT_EQ(all.front().id, 3);
  EXPECT_EQ(log.list(4, 10).size(), 1u);
}

}  // namespace
}  // namespace wharf::sandbox
