// The `http` product kind against a real HTTP peer on loopback: signing, configuration, and
// how each answer of a backend is classified (spec/product-protocol.md §2–§4).
#include "product/http_backend/http_backend.h"

#include <gtest/gtest.h>

#include <chrono>

#include "scripted_server.h"

namespace wharf::product {
namespace {

using nlohmann::json;
using testutil::ScriptedServer;

const std::string kSecret = "0123456789abcdef0123456789abcdef-secret";

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(ProductSignature, VerifiesWhatWasSignedWithinTheWindowOnly) {
  std::string body = R"({"status":"ready"})";
  int64_t t = 1700000000;
  std::string h = signature::header(kSecret, t, body);
  EXPECT_EQ(h.rfind("t=1700000000,v1=", 0), 0u) << h;
  EXPECT_TRUE(signature::verify(kSecret, h, body, t));
  EXPECT_TRUE(signature::verify(kSecret, h, body, t + 300));
  EXPECT_FALSE(signature::verify(kSecret, h, body, t + 301));  // replayed too late
  EXPECT_FALSE(signature::verify(kSecret, h, body, t - 301));  // from the future
  EXPECT_FALSE(signature::verify(kSecret, h, body + " ", t));  // another body
  EXPECT_FALSE(signature::verify(kSecret + "x", h, body, t));  // another secret
  // Empty body: "<t>." is signed.
  EXPECT_TRUE(signature::verify(kSecret, signature::header(kSecret, t, ""), "", t));
  // A rollover: any of several v1 values.
  std::string two =
      "t=1700000000,v1=" + std::string(64, '0') + ",v1=" + signature::sign(kSecret, t, body);
  EXPECT_TRUE(signature::verify(kSecret, two, body, t));
  for (const std::string& bad :
       std::vector<std::string>{"", "t=1700000000", "v1=" + signature::sign(kSecret, t, body),
                                "t=abc,v1=" + signature::sign(kSecret, t, body),
                                "t=-5,v1=" + signature::sign(kSecret, t, body)})
    EXPECT_FALSE(signature::verify(kSecret, bad, body, t)) << bad;
}

json entry(const std::string& url, json caps = json::array({"repl", "rotate"})) {
  return {{"id", "acme"},
          {"kind", "http"},
          {"backend",
           {{"url", url},
            {"secretEnv", "ACME_SECRET"},
            {"timeoutMs", 2000},
            {"provisionWaitMs", 500},
            {"capabilities", caps}}}};
}

const char* env_with_secret(const char* name) {
  return std::string(name) == "ACME_SECRET" ? kSecret.c_str() : nullptr;
}

TEST(HttpBackendConfig, NamesWhatIsWrong) {
  auto parse = [](const json& e, const char* (*env)(const char*)) {
    return HttpBackend::parse_config(e, env);
  };
  auto c = parse(entry("http://127.0.0.1:1/wharf/v1/"), env_with_secret);
  EXPECT_EQ(c.url, "http://127.0.0.1:1/wharf/v1");
  EXPECT_EQ(c.timeout_ms, 2000);
  EXPECT_EQ(c.provision_wait_ms, 500);
  EXPECT_TRUE(c.repl && c.rotate && !c.transfer);
  auto message = [&](const json& e, const char* (*env)(const char*)) {
    try {
      parse(e, env);
    } catch (const std::invalid_argument& ex) {
      return std::string(ex.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(json{{"id", "acme"}}, env_with_secret).find("backend"), std::string::npos);
  EXPECT_NE(message(entry("ftp://x"), env_with_secret).find("backend.url"), std::string::npos);
  EXPECT_NE(message(entry("http://x"), [](const char*) -> const char* { return nullptr; })
                .find("ACME_SECRET"),
            std::string::npos);
  EXPECT_NE(message(entry("http://x"), [](const char*) -> const char* { return "short"; })
                .find("at least 32 bytes"),
            std::string::npos);
  EXPECT_NE(message(entry("http://x", {"teleport"}), env_with_secret).find("teleport"),
            std::string::npos);
}

class HttpBackendTest : public ::testing::Test {
 protected:
  HttpBackendTest()
      : backend_("acme",
                 HttpBackend::parse_config(entry(server_.url() + "/wharf/v1"), env_with_secret),
                 {{"apiCalls", false, "calls"}}) {}
  ResourceInfo info() {
    ResourceInfo r;
    r.id = "res_1";
    r.installation_id = "icfg_1";
    r.product_id = "acme";
    r.name = "kv";
    r.plan_id = "kv-free";
    r.plan_limits = {{"storageBytes", 1024}};
    return r;
  }
  ScriptedServer server_;
  HttpBackend backend_;
};

TEST_F(HttpBackendTest, DeclaresWhatItsEntryConfigures) {
  const Descriptor& d = backend_.descriptor();
  EXPECT_TRUE(d.capabilities.async_provisioning);
  EXPECT_TRUE(d.capabilities.repl);
  EXPECT_TRUE(d.capabilities.rotation);
  EXPECT_FALSE(d.capabilities.transfer_hook);
  EXPECT_FALSE(d.capabilities.sql_data_plane);
  EXPECT_EQ(d.provision_wait_ms, 500);
  ASSERT_NE(d.metric("apiCalls"), nullptr);  // priced by its plans
  ASSERT_NE(d.metric("storageBytes"), nullptr);
  EXPECT_TRUE(d.metric("storageBytes")->level);
  EXPECT_TRUE(d.secrets.empty());  // every secret is the backend's
}

TEST_F(HttpBackendTest, ProvisionSendsASignedCallAndReadsEachAnswer) {
  server_.script([](const net::Request&) {
    return net::Response::json(
        200, R"({"status":"ready","secrets":[{"name":"KV_URL","value":"http://kv"}]})");
  });
  CallContext ctx;
  ctx.idempotency_key = "provision:res_1";
  ctx.request_id = "req-1";
  ProductReply reply = backend_.provision(info(), ctx);
  EXPECT_FALSE(reply.pending);
  ASSERT_EQ(reply.secrets.size(), 1u);
  EXPECT_EQ(reply.secrets[0]["name"], "KV_URL");
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].path, "/wharf/v1/resources/res_1");
  EXPECT_EQ(reqs[0].header("idempotency-key").value_or(""), "provision:res_1");
  EXPECT_EQ(reqs[0].header("wharf-request-id").value_or(""), "req-1");
  EXPECT_TRUE(signature::verify(
      kSecret, std::string(reqs[0].header("wharf-signature").value_or("")), reqs[0].body, now_s()));
  json body = json::parse(reqs[0].body);
  EXPECT_EQ(body["installationId"], "icfg_1");
  EXPECT_EQ(body["plan"]["id"], "kv-free");
  EXPECT_EQ(body["plan"]["limits"]["storageBytes"], 1024);

  server_.script(
      [](const net::Request&) { return net::Response::json(202, R"({"status":"pending"})"); });
  EXPECT_TRUE(backend_.provision(info(), ctx).pending);

  // 422 with a user message: passed on as is.
  server_.script([](const net::Request&) {
    return net::Response::json(
        422,
        R"({"error":{"code":"bad_region","message":"no mars","user":{"message":"Not in mars"}}})");
  });
  try {
    backend_.provision(info(), ctx);
    FAIL() << "no refusal";
  } catch (const ProductRefused& e) {
    EXPECT_EQ(e.status, 422);
    EXPECT_EQ(e.code, "bad_region");
    EXPECT_EQ(e.user_message.value_or(""), "Not in mars");
  }
  // 5xx, 401, malformed secrets: faults to retry, and a 5xx's text is not carried.
  server_.script([](const net::Request&) {
    return net::Response::json(500, R"({"error":{"message":"db password is hunter2"}})");
  });
  try {
    backend_.provision(info(), ctx);
    FAIL() << "no fault";
  } catch (const ProductUnavailable& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
  server_.script([](const net::Request&) { return net::Response::json(401, "{}"); });
  EXPECT_THROW(backend_.provision(info(), ctx), ProductUnavailable);
  // Members of the wrong type are a malformed answer, never an exception of the JSON library.
  server_.script([](const net::Request&) { return net::Response::json(200, R"({"status":5})"); });
  EXPECT_THROW(backend_.provision(info(), ctx), ProductUnavailable);
  server_.script([](const net::Request&) {
    return net::Response::json(409, R"({"error":{"code":7,"message":[],"user":{"message":1}}})");
  });
  try {
    backend_.provision(info(), ctx);
    FAIL() << "no refusal";
  } catch (const ProductRefused& e) {
    EXPECT_EQ(e.code, "bad_request");
    EXPECT_FALSE(e.user_message);
  }
  server_.script([](const net::Request&) {
    return net::Response::json(200, R"({"status":"ready","secrets":[{"name":"X"}]})");
  });
  EXPECT_THROW(backend_.provision(info(), ctx), ProductUnavailable);
}

TEST_F(HttpBackendTest, DeleteTreats404AsDoneAndAnUnreachableBackendAsAFault) {
  server_.script([](const net::Request&) { return net::Response::json(404, "{}"); });
  EXPECT_NO_THROW(backend_.remove(info(), CallContext{}));
  server_.script([](const net::Request&) { return net::Response::json(503, "{}"); });
  EXPECT_THROW(backend_.remove(info(), CallContext{}), ProductUnavailable);
  HttpBackend gone("acme",
                   HttpBackend::parse_config(entry("http://127.0.0.1:1/x"), env_with_secret), {});
  EXPECT_THROW(gone.remove(info(), CallContext{}), ProductUnavailable);
  EXPECT_THROW(gone.provision(info(), CallContext{}), ProductUnavailable);
}

TEST_F(HttpBackendTest, ASlowBackendTimesOutAtTheProvisionWait) {
  server_.script([](const net::Request&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return net::Response::json(200, R"({"status":"ready"})");
  });
  CallContext ctx;
  ctx.wait_ms = 300;
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(backend_.provision(info(), ctx), ProductUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST_F(HttpBackendTest, ChangeRotateAndReplSpeakTheProtocol) {
  server_.script([](const net::Request& req) {
    if (req.path.find("/secrets/rotate") != std::string::npos)
      return net::Response::json(200, R"({"secrets":[{"name":"KV_TOKEN","value":"new"}]})");
    if (req.path.find("/repl") != std::string::npos)
      return net::Response::json(200, R"({"blocks":[{"type":"paragraph","text":"ok"}]})");
    return net::Response::json(200, R"({"status":"ready"})");
  });
  ResourceChange change;
  change.status = "suspended";
  change.plan_changed = true;
  backend_.change(info(), change, CallContext{});
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "PATCH");
  json patch = json::parse(reqs[0].body);
  EXPECT_EQ(patch["status"], "suspended");
  EXPECT_EQ(patch["plan"]["id"], "kv-free");
  EXPECT_FALSE(patch.contains("name"));

  ProductReply rotated = backend_.rotate_secrets(info(), "leak", 3600, CallContext{});
  EXPECT_EQ(rotated.secrets[0]["value"], "new");
  EXPECT_EQ(json::parse(server_.requests().back().body)["expireOldAfterSeconds"], 3600);

  std::vector<json> emitted;
  json blocks = backend_.repl(
      "res_1", "keys", true, Limits{}, [&](const json& b) { emitted.push_back(b); }, nullptr);
  EXPECT_EQ(blocks.size(), 1u);
  EXPECT_EQ(emitted.size(), 1u);
  EXPECT_EQ(json::parse(server_.requests().back().body)["readOnly"], true);
}

}  // namespace
}  // namespace wharf::product
