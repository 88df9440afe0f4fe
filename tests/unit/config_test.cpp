#include <gtest/gtest.h>

#include "app/config.h"

namespace wharf::app {
namespace {

std::map<std::string, std::string> base_env() {
  return {{"INTEGRATION_CLIENT_ID", "oac_x"}, {"INTEGRATION_CLIENT_SECRET", "s"}};
}

std::string failing_variable(std::map<std::string, std::string> env,
                             std::vector<std::string> args = {}) {
  try {
    load_config(env, args);
  } catch (const ConfigError& e) {
    return e.variable;
  }
  return "(accepted)";
}

}  // namespace

TEST(Config, Defaults) {
  auto c = load_config(base_env(), {});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 3000);
  EXPECT_EQ(c.state_url, "sqlite://./data/state.db");
  EXPECT_EQ(c.oidc_issuer, "https://marketplace.vercel.com");
  EXPECT_EQ(c.jwks_url, "https://marketplace.vercel.com/.well-known/jwks");
  EXPECT_EQ(c.vercel_api_url, "https://api.vercel.com");
  EXPECT_EQ(c.max_body_bytes, 1u << 20);
  EXPECT_FALSE(c.catalog_path);
}

TEST(Config, FlagsOverrideEnvironment) {
  auto env = base_env();
  env["WHARF_LISTEN"] = "127.0.0.1:4000";
  env["WHARF_DATA_DIR"] = "/tmp/d";
  auto c = load_config(env, {"--listen", "127.0.0.1:5000", "--catalog=/c.json"});
  EXPECT_EQ(c.listen_port, 5000);
  EXPECT_EQ(c.state_url, "sqlite:///tmp/d/state.db");
  EXPECT_EQ(c.catalog_path, "/c.json");
}

TEST(Config, EachBadSettingIsNamed) {
  EXPECT_EQ(failing_variable({}), "INTEGRATION_CLIENT_ID");
  EXPECT_EQ(failing_variable({{"INTEGRATION_CLIENT_ID", "oac_x"}}), "INTEGRATION_CLIENT_SECRET");
  auto env = base_env();
  env["WHARF_LISTEN"] = "nonsense";
  EXPECT_EQ(failing_variable(env), "WHARF_LISTEN");
  env = base_env();
  env["WHARF_LISTEN"] = "127.0.0.1:99999";
  EXPECT_EQ(failing_variable(env), "WHARF_LISTEN");
  env = base_env();
  env["WHARF_ENCRYPTION_KEY"] = "not base64!";
  EXPECT_EQ(failing_variable(env), "WHARF_ENCRYPTION_KEY");
  env["WHARF_ENCRYPTION_KEY"] = "c2hvcnQ=";
  EXPECT_EQ(failing_variable(env), "WHARF_ENCRYPTION_KEY");
  env = base_env();
  env["WHARF_JWKS_URL"] = "ftp://x";
  EXPECT_EQ(failing_variable(env), "WHARF_JWKS_URL");
  env = base_env();
  env["WHARF_MAX_BODY_BYTES"] = "12abc";
  EXPECT_EQ(failing_variable(env), "WHARF_MAX_BODY_BYTES");
  EXPECT_EQ(failing_variable(base_env(), {"--bogus", "1"}), "--bogus");
}

}  // namespace wharf::app

namespace wharf::app {

TEST(Config, SsoAndDashboardSettings) {
  auto c = load_config(base_env(), {});
  EXPECT_EQ(c.sso_callback_path, "/sso/callback");
  EXPECT_EQ(c.url_slug, "");
  EXPECT_EQ(c.vercel_sso_url, "https://vercel.com/sso/integrations");
  EXPECT_EQ(c.session_ttl_s, 8 * 3600);
  auto env = base_env();
  env["WHARF_SSO_CALLBACK_PATH"] = "/auth/vercel";
  env["WHARF_URL_SLUG"] = "my-db_1";
  env["WHARF_VERCEL_SSO_URL"] = "http://127.0.0.1:4000/sso/integrations/";
  env["WHARF_SESSION_TTL_S"] = "600";
  env["WHARF_SUPPORT_EMAIL"] = "help@example.com";
  env["WHARF_SUPPORT_URL"] = "https://help.example.com";
  c = load_config(env, {});
  EXPECT_EQ(c.sso_callback_path, "/auth/vercel");
  EXPECT_EQ(c.url_slug, "my-db_1");
  EXPECT_EQ(c.vercel_sso_url, "http://127.0.0.1:4000/sso/integrations");
  EXPECT_EQ(c.session_ttl_s, 600);
  EXPECT_EQ(c.support_email, "help@example.com");
  EXPECT_EQ(c.support_url, "https://help.example.com");

  for (const char* bad : {"sso/callback", "/", "/dashboard/login", "/v1/sso", "/webhooks/vercel"}) {
    env = base_env();
    env["WHARF_SSO_CALLBACK_PATH"] = bad;
    EXPECT_EQ(failing_variable(env), "WHARF_SSO_CALLBACK_PATH") << bad;
  }
  env = base_env();
  env["WHARF_URL_SLUG"] = "my/db";
  EXPECT_EQ(failing_variable(env), "WHARF_URL_SLUG");
  env = base_env();
  env["WHARF_SESSION_TTL_S"] = "10";
  EXPECT_EQ(failing_variable(env), "WHARF_SESSION_TTL_S");
  env = base_env();
  env["WHARF_VERCEL_SSO_URL"] = "vercel.com/sso";
  EXPECT_EQ(failing_variable(env), "WHARF_VERCEL_SSO_URL");
  env = base_env();
  env["WHARF_SUPPORT_URL"] = "javascript:alert(1)";
  EXPECT_EQ(failing_variable(env), "WHARF_SUPPORT_URL");
}

}  // namespace wharf::app
