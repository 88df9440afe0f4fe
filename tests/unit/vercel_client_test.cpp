// The typed Vercel API calls: every builder spells its endpoint (vercel-api.md §3) with ids
// percent-encoded, and Client sends them with the bearer and JSON body, returning the answer.
#include <gtest/gtest.h>

#include "scripted_server.h"
#include "vercel/api.h"

namespace wharf::vercel {
namespace {

using model::Json;

TEST(VercelCallsTest, BuildersSpellTheEndpoints) {
  struct Case {
    Call call;
    const char* method;
    const char* path;
  };
  const Json b = Json::object();
  const Case cases[] = {
      {api::update_installation("icfg_1", b), "PATCH", "/v1/installations/icfg_1"},
      {api::get_account("icfg_1"), "GET", "/v1/installations/icfg_1/account"},
      {api::get_member("icfg_1", "m 1"), "GET", "/v1/installations/icfg_1/member/m%201"},
      {api::create_event("icfg_1", b), "POST", "/v1/installations/icfg_1/events"},
      {api::update_resource_secrets("icfg_1", "r/1", b), "PUT",
       "/v1/installations/icfg_1/resources/r%2F1/secrets"},
      {api::submit_billing_data("icfg_1", b), "POST", "/v1/installations/icfg_1/billing"},
      {api::submit_invoice("icfg_1", b), "POST", "/v1/installations/icfg_1/billing/invoices"},
      {api::get_invoice("icfg_1", "mi_1"), "GET", "/v1/installations/icfg_1/billing/invoices/mi_1"},
      {api::invoice_action("icfg_1", "mi_1", b), "POST",
       "/v1/installations/icfg_1/billing/invoices/mi_1/actions"},
      {api::submit_balances("icfg_1", b), "POST", "/v1/installations/icfg_1/billing/balance"},
      {api::finalize_installation("icfg_1"), "POST", "/v1/installations/icfg_1/billing/finalize"},
      {api::sso_token(b), "POST", "/v1/integrations/sso/token"},
      {api::put_global_config("icfg_1", "r1", b), "PUT",
       "/v1/installations/icfg_1/resources/r1/experimentation/global-config"},
      {api::get_global_config("icfg_1", "r1", "edge-config"), "GET",
       "/v1/installations/icfg_1/resources/r1/experimentation/edge-config"},
      {api::update_deployment_action("dpl_1", "icfg_1", "r1", "migrate", b), "PATCH",
       "/v1/deployments/dpl_1/integrations/icfg_1/resources/r1/actions/migrate"},
      {api::update_check_run("dpl_1", "cr_1", b), "PATCH", "/v2/deployments/dpl_1/check-runs/cr_1"},
      {api::get_deployment("my-app.vercel.app"), "GET", "/v13/deployments/my-app.vercel.app"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.call.method, c.method) << c.path;
    EXPECT_EQ(c.call.path, c.path);
  }
  EXPECT_EQ(api::create_event("icfg_1", Json{{"type", "resource.updated"}}).body,
            (Json{{"event", {{"type", "resource.updated"}}}}));
  EXPECT_EQ(api::submit_invoice("i", b).kind, "invoice");
  EXPECT_FALSE(api::get_account("i").body);
}

TEST(VercelCallsTest, ClientSendsBearerAndBodyAndReturnsTheAnswer) {
  testutil::ScriptedServer vercel;
  vercel.script([](const net::Request&) {
    net::Response r = net::Response::json(200, R"({"invoiceId":"mi_1","state":"paid"})");
    r.headers.emplace_back("x-vercel-id", "iad1::abc");
    return r;
  });
  net::HttpClient http;
  Client client(http, vercel.url());
  auto r = client.send(api::get_invoice("icfg_1", "mi_1"), std::string("tok"), "icfg_1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(vercel_id_of(r), "iad1::abc");
  EXPECT_EQ(Json::parse(r.body)["state"], "paid");
  auto sent = client.send(api::sso_token({{"code", "c"}}), std::nullopt);
  auto reqs = vercel.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].header("authorization"), "Bearer tok");
  EXPECT_EQ(reqs[0].path, "/v1/installations/icfg_1/billing/invoices/mi_1");
  EXPECT_FALSE(reqs[1].header("authorization"));
  EXPECT_EQ(Json::parse(reqs[1].body)["code"], "c");
  EXPECT_EQ(sent.status, 200);
}

}  // namespace
}  // namespace wharf::vercel
