// SSO into the dashboard: the session store, the Redirect Login URL's parameters, deep-link
// landing, provider-initiated links, and sign-in end to end with real RSA-signed id_tokens
// (only Vercel's token endpoint is scripted).
#include <gtest/gtest.h>

#include <filesystem>

#include "auth/authenticator.h"
#include "auth/jwks_cache.h"
#include "model/api_error.h"
#include "service/sessions.h"
#include "service/sso.h"
#include "store/sqlite/sqlite_store.h"
#include "test_keys.h"
#include "util/crypto.h"

namespace wharf::service {
namespace {

using model::ApiError;
using nlohmann::json;
using testutil::TestKey;

constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
constexpr const char* kInstA = "icfg_ssoA000000000000000000";
constexpr const char* kInstB = "icfg_ssoB000000000000000000";
constexpr const char* kPublic = "https://db.example.com";

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf_sso_test_" + util::to_hex(util::random_bytes(6)));
    std::filesystem::create_directories(dir_);
    store_ = store::sqlite::open({(dir_ / "state.db").string(), 5000});
    install(kInstA);
    install(kInstB);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void install(const std::string& id, const std::string& status = "active") {
    store::InstallationRow row;
    row.id = id;
    row.account_id = "team_1";
    row.installer_user_id = "u1";
    row.token_type = "Bearer";
    row.status = status;
    store_->write([&](store::WriteTx& tx) { tx.put_installation(row); });
  }
  static SessionUser user(const std::string& inst, const std::string& role = "ADMIN") {
    return {inst, "team_1", "user_1", role, "Ada", "ada@example.com"};
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  util::ManualClock clock_{kNow * 1000};
};

// ---- the session store ----------------------------------------------------------------

using SessionTest = StoreTest;

TEST_F(SessionTest, StartedSessionIsFoundWithItsUserAndExpiry) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto started = sessions.start(user(kInstA));
  EXPECT_TRUE(SessionService::well_formed(started.cookie_value));
  auto found = sessions.find(started.cookie_value);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->user.installation_id, kInstA);
  EXPECT_EQ(found->user.user_id, "user_1");
  EXPECT_EQ(found->user.role, "ADMIN");
  EXPECT_EQ(found->user.name, "Ada");
  EXPECT_EQ(found->user.email, "ada@example.com");
  EXPECT_TRUE(found->admin());
  EXPECT_EQ(found->expires_ms, (kNow + 3600) * 1000);
  EXPECT_EQ(found->csrf_token, started.session.csrf_token);
}

TEST_F(SessionTest, IdsAreRandomAndOnlyTheirHashIsStored) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto a = sessions.start(user(kInstA));
  auto b = sessions.start(user(kInstA));
  EXPECT_NE(a.cookie_value, b.cookie_value);
  EXPECT_NE(a.session.csrf_token, b.session.csrf_token);
  store_->read([&](store::ReadTx& tx) {
    EXPECT_FALSE(tx.session(a.cookie_value));
    EXPECT_TRUE(tx.session(util::to_hex(util::sha256(a.cookie_value))));
  });
}

TEST_F(SessionTest, TamperedMalformedAndUnknownCookiesAreNoSession) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto started = sessions.start(user(kInstA));
  std::string tampered = started.cookie_value;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(sessions.find(tampered));
  EXPECT_FALSE(sessions.find(""));
  EXPECT_FALSE(sessions.find(started.cookie_value + "x"));
  EXPECT_FALSE(sessions.find(started.cookie_value.substr(1)));
  std::string bad_chars = started.cookie_value;
  bad_chars[0] = '%';
  EXPECT_FALSE(sessions.find(bad_chars));
  EXPECT_FALSE(sessions.find(util::random_token(32)));
}

TEST_F(SessionTest, SessionsExpireAndArePurged) {
  SessionService sessions(*store_, clock_, 60 * 1000);
  auto started = sessions.start(user(kInstA));
  clock_.advance_ms(59 * 1000);
  EXPECT_TRUE(sessions.find(started.cookie_value));
  clock_.advance_ms(1000);
  EXPECT_FALSE(sessions.find(started.cookie_value));
  auto fresh = sessions.start(user(kInstA));
  clock_.advance_ms(1);
  EXPECT_EQ(sessions.purge(), 1);
  EXPECT_TRUE(sessions.find(fresh.cookie_value));
}

TEST_F(SessionTest, SignOutEndsOnlyThatSession) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto a = sessions.start(user(kInstA));
  auto b = sessions.start(user(kInstB, "USER"));
  sessions.end(a.cookie_value);
  sessions.end(a.cookie_value);  // a repeat does nothing
  sessions.end("not a session");
  EXPECT_FALSE(sessions.find(a.cookie_value));
  auto still = sessions.find(b.cookie_value);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->user.installation_id, kInstB);
  EXPECT_FALSE(still->admin());
}

// marketplace.member.changed (flows.md F20): a role applies to every session of that member on
// that installation, at their next request; NONE ends them; anything else queues Get Member.
TEST_F(SessionTest, MemberChangesApplyToThatMembersSessionsOnThatInstallation) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto a1 = sessions.start(user(kInstA));
  auto a2 = sessions.start(user(kInstA));  // the same member in a second browser
  SessionUser other = user(kInstA);
  other.user_id = "user_2";
  auto o = sessions.start(other);
  auto b = sessions.start(user(kInstB));  // the same member on another installation
  EXPECT_EQ(sessions.member_changed(kInstA, "user_1", "USER"), 2);
  EXPECT_FALSE(sessions.find(a1.cookie_value)->admin());
  EXPECT_FALSE(sessions.find(a2.cookie_value)->admin());
  EXPECT_TRUE(sessions.find(o.cookie_value)->admin());
  EXPECT_TRUE(sessions.find(b.cookie_value)->admin());
  EXPECT_EQ(sessions.member_changed(kInstA, "user_1", "USER"), 0);  // a repeat changes nothing
  EXPECT_EQ(sessions.member_changed(kInstA, "user_1", "ADMIN"), 2);
  EXPECT_TRUE(sessions.find(a1.cookie_value)->admin());

  auto queued = [&] {
    size_t n = 0;
    store_->read([&](store::ReadTx& tx) {
      for (const auto& row : tx.outbox_list("pending", 100)) n += row.kind == "member";
    });
    return n;
  };
  EXPECT_EQ(sessions.member_changed(kInstA, "user_1", ""), 0);
  EXPECT_EQ(sessions.member_changed(kInstA, "user_1", "OWNER"), 0);
  EXPECT_EQ(queued(), 2u);  // in doubt: Get Member Information, through the outbox
  EXPECT_TRUE(sessions.find(a1.cookie_value)->admin());

  EXPECT_EQ(sessions.member_changed(kInstA, "user_1", "NONE"), 2);
  EXPECT_FALSE(sessions.find(a1.cookie_value));
  EXPECT_FALSE(sessions.find(a2.cookie_value));
  EXPECT_TRUE(sessions.find(o.cookie_value));
  EXPECT_TRUE(sessions.find(b.cookie_value));
}

TEST_F(SessionTest, UninstallingEndsTheInstallationsSessions) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto a = sessions.start(user(kInstA));
  install(kInstA, "uninstalled");
  EXPECT_FALSE(sessions.find(a.cookie_value));
}

TEST_F(SessionTest, CsrfTokenMustMatchExactly) {
  SessionService sessions(*store_, clock_, 3600 * 1000);
  auto a = sessions.start(user(kInstA));
  auto b = sessions.start(user(kInstA));
  EXPECT_TRUE(SessionService::csrf_matches(a.session, a.session.csrf_token));
  EXPECT_FALSE(SessionService::csrf_matches(a.session, b.session.csrf_token));
  EXPECT_FALSE(SessionService::csrf_matches(a.session, ""));
  EXPECT_FALSE(SessionService::csrf_matches(a.session, a.session.csrf_token + "x"));
}

// ---- the Redirect Login URL's parameters ----------------------------------------------

QueryLookup query(std::map<std::string, std::string> q) {
  return [q = std::move(q)](std::string_view name) -> std::optional<std::string> {
    auto it = q.find(std::string(name));
    if (it == q.end()) return std::nullopt;
    return it->second;
  };
}

std::string refused(std::map<std::string, std::string> q) {
  try {
    parse_sso_callback(query(std::move(q)), kPublic);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    return e.message;
  }
  ADD_FAILURE() << "expected a refusal";
  return {};
}

TEST(SsoParams, RequiresModeSsoCodeAndState) {
  auto cb =
      parse_sso_callback(query({{"mode", "sso"}, {"code", "c0de"}, {"state", "st"}}), kPublic);
  EXPECT_EQ(cb.code, "c0de");
  EXPECT_EQ(cb.state, "st");
  EXPECT_EQ(landing_path(cb.link), "/dashboard");
  EXPECT_NE(refused({{"code", "c"}, {"state", "s"}}).find("mode"), std::string::npos);
  EXPECT_NE(refused({{"mode", "login"}, {"code", "c"}, {"state", "s"}}).find("mode"),
            std::string::npos);
  EXPECT_NE(refused({{"mode", "sso"}, {"state", "s"}}).find("code"), std::string::npos);
  EXPECT_NE(refused({{"mode", "sso"}, {"code", ""}, {"state", "s"}}).find("code"),
            std::string::npos);
  EXPECT_NE(refused({{"mode", "sso"}, {"code", "c"}}).find("state"), std::string::npos);
  EXPECT_NE(refused({{"mode", "sso"}, {"code", "c"}, {"state", "a b"}}).find("state"),
            std::string::npos);
  EXPECT_NE(refused({{"mode", "sso"}, {"code", "c\n"}, {"state", "s"}}).find("code"),
            std::string::npos);
  EXPECT_NE(
      refused({{"mode", "sso"}, {"code", "c"}, {"state", std::string(3000, 's')}}).find("state"),
      std::string::npos);
}

TEST(SsoParams, DeepLinksLandByPriority) {
  std::map<std::string, std::string> base = {{"mode", "sso"}, {"code", "c"}, {"state", "s"}};
  auto land = [&](std::map<std::string, std::string> extra) {
    auto q = base;
    q.insert(extra.begin(), extra.end());
    return landing_path(parse_sso_callback(query(q), kPublic).link);
  };
  EXPECT_EQ(land({{"resource_id", "res_1"}}), "/dashboard/resources/res_1");
  EXPECT_EQ(land({{"resource_id", "res_1"}, {"project_id", "prj_9"}}),
            "/dashboard/resources/res_1?project=prj_9");
  EXPECT_EQ(land({{"resource_id", "res_1"}, {"project_id", "prj_9"}, {"check_id", "chk_2"}}),
            "/dashboard/resources/res_1?project=prj_9&check=chk_2");
  EXPECT_EQ(land({{"invoice_id", "inv_7"}, {"resource_id", "res_1"}}),
            "/dashboard/billing?invoice=inv_7");
  EXPECT_EQ(land({{"experimentation_item_id", "flag_1"}, {"resource_id", "res_1"}}),
            "/dashboard/experimentation?item=flag_1");
  EXPECT_EQ(land({{"resource_id", "res\"<x>/.."}}), "/dashboard/resources/res%22%3Cx%3E%2F..");
}

TEST(SsoParams, PathsAndTheLegacySupportParameter) {
  std::map<std::string, std::string> base = {{"mode", "sso"}, {"code", "c"}, {"state", "s"}};
  for (const char* p : {"billing", "usage", "onboarding", "secrets", "support"}) {
    auto q = base;
    q["path"] = p;
    EXPECT_EQ(landing_path(parse_sso_callback(query(q), kPublic).link),
              std::string("/dashboard/") + p);
  }
  auto q = base;
  q["path"] = "../admin";  // not on the list: ignored
  EXPECT_EQ(landing_path(parse_sso_callback(query(q), kPublic).link), "/dashboard");
  q = base;
  q["support"] = "1";
  EXPECT_EQ(landing_path(parse_sso_callback(query(q), kPublic).link), "/dashboard/support");
  q = base;
  q["path"] = "usage";
  q["resource_id"] = "res_1";  // resource outranks path
  EXPECT_EQ(landing_path(parse_sso_callback(query(q), kPublic).link), "/dashboard/resources/res_1");
}

TEST(SsoParams, MalformedIdsAreRefused) {
  for (const char* id : {"flag 1", "res\t1", "r\x01"})
    EXPECT_NE(
        refused({{"mode", "sso"}, {"code", "c"}, {"state", "s"}, {"experimentation_item_id", id}})
            .find("experimentation_item_id"),
        std::string::npos);
  EXPECT_FALSE(
      refused(
          {{"mode", "sso"}, {"code", "c"}, {"state", "s"}, {"resource_id", std::string(300, 'r')}})
          .empty());
}

TEST(SsoParams, UrlOnlyOnThisSite) {
  std::map<std::string, std::string> base = {{"mode", "sso"}, {"code", "c"}, {"state", "s"}};
  auto land = [&](const std::string& url) {
    auto q = base;
    q["url"] = url;
    q["resource_id"] = "res_1";  // url outranks everything
    return landing_path(parse_sso_callback(query(q), kPublic).link);
  };
  EXPECT_EQ(land("/dashboard/usage"), "/dashboard/usage");
  EXPECT_EQ(land("https://db.example.com/dashboard/billing?x=1"), "/dashboard/billing?x=1");
  EXPECT_EQ(land("HTTPS://DB.EXAMPLE.COM/dashboard"), "/dashboard");
  EXPECT_EQ(land("https://db.example.com"), "/");
  for (const char* evil :
       {"https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example",
        "https://db.example.com.evil.example/", "https://db.example.com@evil.example/",
        "http://db.example.com/dashboard", "javascript:alert(1)", "dashboard/usage",
        "https://db.example.com:8443/", "/dash\nboard", "https:/\\evil.example"}) {
    auto q = base;
    q["url"] = evil;
    EXPECT_NE(refused(q).find("outside this site"), std::string::npos) << evil;
  }
}

TEST(SsoParams, SameOriginPath) {
  EXPECT_EQ(same_origin_path("/a", "http://127.0.0.1:3000"), "/a");
  EXPECT_EQ(same_origin_path("http://127.0.0.1:3000/a", "http://127.0.0.1:3000"), "/a");
  EXPECT_EQ(same_origin_path("http://127.0.0.1:3000?x", "http://127.0.0.1:3000"), "/?x");
  EXPECT_FALSE(same_origin_path("http://127.0.0.1:30000/a", "http://127.0.0.1:3000"));
  EXPECT_FALSE(same_origin_path("http://127.0.0.1:3000//evil", "http://127.0.0.1:3000"));
  EXPECT_FALSE(same_origin_path("", "http://127.0.0.1:3000"));
}

TEST(SsoLinks, ProviderInitiatedUrl) {
  EXPECT_EQ(provider_sso_url("https://vercel.com/sso/integrations", "my-db", "icfg_1", {}),
            "https://vercel.com/sso/integrations/my-db/icfg_1");
  EXPECT_EQ(provider_sso_url("https://vercel.com/sso/integrations/", "my-db", "icfg_1",
                             {{"resource_id", "res_1"}, {"url", "/dashboard/usage?a=b&c"}}),
            "https://vercel.com/sso/integrations/my-db/icfg_1?resource_id=res_1&url=%2Fdashboard%"
            "2Fusage%3Fa%3Db%26c");
  EXPECT_TRUE(is_deep_link_param("resource_id"));
  EXPECT_TRUE(is_deep_link_param("path"));
  EXPECT_FALSE(is_deep_link_param("code"));
  EXPECT_FALSE(is_deep_link_param("state"));
}

// ---- sign-in end to end -----------------------------------------------------------------

class SignInTest : public StoreTest {
 protected:
  SignInTest()
      : jwks_(
            jwks_options(),
            [](const std::string&) {
              net::HttpResult r;
              r.status = 200;
              r.body = testutil::jwks_json({TestKey::a().jwk()});
              return r;
            },
            clock_),
        auth_(auth_options(), jwks_, clock_),
        client_("oac_client", "s3cret", [this](const vercel::Call& call) {
          requests_.push_back(*call.body);
          EXPECT_EQ(call.method, "POST");
          EXPECT_EQ(call.path, "/v1/integrations/sso/token");
          return answer_;
        }) {}

  void SetUp() override {
    StoreTest::SetUp();
    ASSERT_TRUE(jwks_.refresh_now());
  }
  static auth::JwksCache::Options jwks_options() {
    auth::JwksCache::Options o;
    o.url = "https://marketplace.vercel.test/.well-known/jwks";
    return o;
  }
  static auth::Authenticator::Options auth_options() {
    auth::Authenticator::Options o;
    o.issuer = testutil::kTestIssuer;
    o.audience = testutil::kTestAudience;
    return o;
  }
  void answer_with_token(const json& claims) {
    answer_.status = 200;
    answer_.body = json{
        {"id_token", TestKey::a().token(claims)},
        {"access_token", nullptr},
        {"token_type",
         nullptr}}.dump();
  }
  int session_count() {
    int n = 0;
    // Sessions are only reachable by their hash; count rows by purging as if in the far future.
    store_->write([&](store::WriteTx& tx) { n = static_cast<int>(tx.purge_sessions(INT64_MAX)); });
    return n;
  }
  int expect_refused(int status) {
    SessionService sessions(*store_, clock_, 3600 * 1000);
    SsoService sso(client_, auth_, *store_, sessions);
    try {
      sso.sign_in({"the-code", "the-state", {}});
      ADD_FAILURE() << "expected a refusal";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, status) << e.message;
    }
    return session_count();
  }

  auth::JwksCache jwks_;
  auth::Authenticator auth_;
  vercel::SsoClient client_;
  net::HttpResult answer_;
  std::vector<json> requests_;
};

TEST_F(SignInTest, ValidIdTokenStartsASessionFromItsClaims) {
  auto claims = testutil::user_claims(kNow, kInstA, "USER");
  claims["type"] = "id_token";
  claims["user_name"] = "Grace";
  claims["user_email"] = "grace@example.com";
  answer_with_token(claims);
  SessionService sessions(*store_, clock_, 3600 * 1000);
  SsoService sso(client_, auth_, *store_, sessions);
  auto started = sso.sign_in({"the-code", "the-state", {}});
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0]["code"], "the-code");
  EXPECT_EQ(requests_[0]["state"], "the-state");
  EXPECT_EQ(requests_[0]["client_id"], "oac_client");
  EXPECT_EQ(requests_[0]["client_secret"], "s3cret");
  EXPECT_EQ(requests_[0]["grant_type"], "authorization_code");
  auto found = sessions.find(started.cookie_value);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->user.installation_id, kInstA);
  EXPECT_EQ(found->user.role, "USER");
  EXPECT_EQ(found->user.name, "Grace");
  EXPECT_EQ(found->user.email, "grace@example.com");
  EXPECT_EQ(found->user.user_id, claims["user_id"]);
}

TEST_F(SignInTest, RefusedOrFailedExchangeCreatesNoSession) {
  answer_.status = 400;
  answer_.body = R"({"error":{"code":"bad_request","message":"code: was already used"}})";
  EXPECT_EQ(expect_refused(400), 0);
  answer_.status = 403;
  answer_.body = R"({"error":"invalid_client","error_description":"bad secret"})";
  EXPECT_EQ(expect_refused(400), 0);
  answer_ = {};
  answer_.error = "connection refused";
  EXPECT_EQ(expect_refused(502), 0);
  EXPECT_EQ(requests_.size(), 3u);  // one attempt each: codes are never retried
  answer_ = {};
  answer_.status = 200;
  answer_.body = R"({"access_token":null})";
  EXPECT_EQ(expect_refused(400), 0);
}

TEST_F(SignInTest, TokensThatAreNotValidUserTokensCreateNoSession) {
  auto other_aud = testutil::user_claims(kNow, kInstA);
  other_aud["aud"] = "oac_someOtherIntegration";
  answer_with_token(other_aud);
  EXPECT_EQ(expect_refused(401), 0);

  auto wrong_iss = testutil::user_claims(kNow, kInstA);
  wrong_iss["iss"] = "https://evil.example";
  answer_with_token(wrong_iss);
  EXPECT_EQ(expect_refused(401), 0);

  answer_with_token(testutil::user_claims(kNow - 3600, kInstA));  // expired
  EXPECT_EQ(expect_refused(401), 0);

  answer_with_token(testutil::system_claims(kNow, kInstA));  // not a user
  EXPECT_EQ(expect_refused(401), 0);

  auto bad_role = testutil::user_claims(kNow, kInstA);
  bad_role["user_role"] = "OWNER";
  answer_with_token(bad_role);
  EXPECT_EQ(expect_refused(401), 0);

  answer_.status = 200;  // signed by a key Vercel does not publish
  answer_.body = json{{"id_token", TestKey::b().token(testutil::user_claims(kNow, kInstA))}}.dump();
  EXPECT_EQ(expect_refused(401), 0);
}

TEST_F(SignInTest, UnknownOrUninstalledInstallationCreatesNoSession) {
  answer_with_token(testutil::user_claims(kNow, "icfg_neverInstalledHere00000"));
  EXPECT_EQ(expect_refused(403), 0);
  install(kInstB, "uninstalled");
  answer_with_token(testutil::user_claims(kNow, kInstB));
  EXPECT_EQ(expect_refused(403), 0);
}

}  // namespace
}  // namespace wharf::service
