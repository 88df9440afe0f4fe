// The sandbox's Vercel API, called through its route table with hand-built requests: token
// checks, strict body validation with precise messages, and the state Vercel keeps
// (billing days, the invoice state machine, secrets as env vars, SSO codes, experimentation).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "net/http_client.h"
#include "sandbox/context.h"
#include "sandbox/driver.h"
#include "sandbox/vercel_api.h"
#include "sandbox/vercel_schema.h"
#include "sandbox_api_fixture.h"
#include "util/base64.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

using model::Json;

using testing_support::at;
using testing_support::kNow;

class VercelApiTest : public testing_support::SandboxApiFixture {
 protected:
  void SetUp() override {
    start("wharf_vercel_api_test", false);
    state_->mutate([](Json& doc) {
      for (const char* id : {"icfg_a", "icfg_b"})
        doc["installations"][id] = installation_record(id);
      doc["resources"]["icfg_a"]["res_1"] = {
          {"id", "res_1"},
          {"internalId", "ir_1"},
          {"productId", "db"},
          {"name", "db one"},
          {"status", "ready"},
          {"billingPlan", {{"id", "pro"}, {"type", "subscription"}, {"name", "Pro"}}},
          {"metadata", {{"region", "iad1"}}},
          {"secrets", {{{"name", "DATABASE_URL"}, {"value", "postgres://one"}}}},
          {"deleted", false}};
    });
  }

  Exchange last_exchange() const {
    auto all = log_.list(0, 100000);
    return all.empty() ? Exchange{} : all.back();
  }

  // A valid Submit Billing Data body for the day ending at kNow's day end.
  static Json billing_body() {
    return {{"timestamp", "2025-03-15T11:00:00Z"},
            {"eod", "2025-03-15T00:00:00Z"},
            {"period", {{"start", "2025-03-01T00:00:00Z"}, {"end", "2025-04-01T00:00:00Z"}}},
            {"billing",
             {{{"billingPlanId", "pro"},
               {"resourceId", "res_1"},
               {"name", "Pro plan"},
               {"price", "20.00"},
               {"quantity", 1},
               {"units", "month"},
               {"total", "20.00"}}}},
            {"usage",
             {{{"resourceId", "res_1"},
               {"name", "Storage"},
               {"type", "total"},
               {"units", "GB"},
               {"dayValue", 1.5},
               {"periodValue", 1.5}}}}};
  }

  static Json invoice_body(const std::string& external, const std::string& total = "20.00") {
    return {{"externalId", external},
            {"invoiceDate", "2025-03-31T12:00:00Z"},
            {"period", {{"start", "2025-03-01T00:00:00Z"}, {"end", "2025-04-01T00:00:00Z"}}},
            {"items",
             {{{"billingPlanId", "pro"},
               {"resourceId", "res_1"},
               {"name", "Pro plan"},
               {"price", total},
               {"quantity", 1},
               {"units", "month"},
               {"total", total}}}}};
  }

  std::string submit_invoice(const Json& body) {
    auto r = call_json("POST", "/v1/installations/icfg_a/billing/invoices", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return body_of(r).value("invoiceId", "");
  }
  Json get_invoice(const std::string& id) {
    auto r = call("GET", "/v1/installations/icfg_a/billing/invoices/" + id);
    EXPECT_EQ(r.status, 200) << r.body;
    return body_of(r);
  }
  std::vector<std::string> webhook_types() const {
    std::vector<std::string> out;
    Json d = doc();
    if (d.contains("webhooks") && d["webhooks"].is_array())
      for (const auto& w : d["webhooks"]) out.push_back(w.value("type", ""));
    return out;
  }
};

// ---- authentication --------------------------------------------------------------------------

TEST_F(VercelApiTest, InstallationTokenIsCheckedAgainstThePathInstallation) {
  auto none = call("GET", "/v1/installations/icfg_a/account", "", std::nullopt);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(code_of(none), "unauthorized");
  auto unknown = call("GET", "/v1/installations/icfg_a/account", "", "tok_wrong");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(code_of(unknown), "unauthorized");
  auto other = call("GET", "/v1/installations/icfg_a/account", "", "tok_b");
  EXPECT_EQ(other.status, 403);
  EXPECT_EQ(code_of(other), "forbidden");
  EXPECT_NE(message_of(other).find("icfg_b"), std::string::npos);
  auto missing = call("GET", "/v1/installations/icfg_zzz/account", "", "tok_a");
  EXPECT_EQ(missing.status, 404);
  auto ok = call("GET", "/v1/installations/icfg_a/account");
  EXPECT_EQ(ok.status, 200) << ok.body;
  Json account = body_of(ok);
  EXPECT_EQ(account["url"], "https://vercel.com/team");
  EXPECT_TRUE(account.contains("contact") && account["contact"].is_null());
  // The legacy long prefix serves the same endpoints.
  EXPECT_EQ(call("GET", "/v1/integrations/marketplace/installations/icfg_a/account").status, 200);
  // Every inbound call is in the log, with the Authorization header redacted.
  Exchange ex = last_exchange();
  EXPECT_EQ(ex.direction, "from-partner");
  EXPECT_EQ(ex.url, "http://sandbox.test/v1/integrations/marketplace/installations/icfg_a/account");
  EXPECT_EQ(ex.request_headers["authorization"].get<std::string>().find("tok_a"),
            std::string::npos);
}

// https://vercel.com/api + path is a base integrations hard-code: every REST route answers
// under /api exactly as without it (the Registrar registers both).
TEST_F(VercelApiTest, EveryRouteIsAlsoServedUnderTheApiPrefix) {
  for (const std::string path : {"/v1/installations/icfg_a/account",
                                 "/v1/integrations/marketplace/installations/icfg_a/account",
                                 "/v1/installations/icfg_a/resources/res_1"}) {
    auto plain = call("GET", path);
    auto proxied = call("GET", "/api" + path);
    EXPECT_EQ(proxied.status, 200) << path << " " << proxied.body;
    EXPECT_EQ(proxied.body, plain.body) << path;
    EXPECT_EQ(call("GET", "/api" + path, "", "tok_b").status, 403) << path;
  }
  auto billed = call_json("POST", "/api/v1/installations/icfg_a/billing", billing_body());
  EXPECT_EQ(billed.status, 201) << billed.body;
  EXPECT_EQ(doc()["billing"]["icfg_a"].size(), 1u);
  Json bad = {{"status", "paused"}};
  auto a = call_json("PATCH", "/v1/installations/icfg_a", bad);
  auto b = call_json("PATCH", "/api/v1/installations/icfg_a", bad);
  EXPECT_EQ(b.status, 400);
  EXPECT_EQ(a.body, b.body);
  // Open routes too; the identity documents stay at the issuer only.
  EXPECT_EQ(call("POST", "/api/v1/integrations/sso/token", "{}", std::nullopt).status, 400);
  EXPECT_TRUE(routes_->match("POST", "/api/v2/oauth/access_token").route);
  EXPECT_FALSE(routes_->match("GET", "/api/.well-known/jwks").route);
}

TEST_F(VercelApiTest, FinalizedInstallationTokenStopsWorking) {
  state_->mutate([](Json& d) { d["installations"]["icfg_a"]["status"] = "finalized"; });
  auto r = call("GET", "/v1/installations/icfg_a");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(message_of(r).find("finalized"), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/installations/icfg_b", "", "tok_b").status, 200);
}

TEST_F(VercelApiTest, MemberInfoAndLivenessProbe) {
  auto m = call("GET", "/v1/installations/icfg_a/member/ua");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(body_of(m), (Json{{"id", "ua"}, {"role", "ADMIN"}}));
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a/member/nobody").status, 404);
  auto probe = call("GET", "/v1/installations/icfg_a");
  EXPECT_EQ(body_of(probe), (Json{{"id", "icfg_a"}, {"status", "active"}}));
}

// ---- strict bodies ---------------------------------------------------------------------------

TEST_F(VercelApiTest, UpdateInstallationRejectsExtraPropertiesAndNullClears) {
  auto extra =
      call_json("PATCH", "/v1/installations/icfg_a", {{"status", "suspended"}, {"foo", 1}});
  EXPECT_EQ(extra.status, 400);
  EXPECT_EQ(code_of(extra), "bad_request");
  EXPECT_NE(message_of(extra).find("foo: is not allowed"), std::string::npos) << extra.body;
  ASSERT_EQ(last_exchange().findings.size(), 1u);
  EXPECT_EQ(last_exchange().findings[0].rfind("foo: is not allowed", 0), 0u);

  auto bad = call_json("PATCH", "/v1/installations/icfg_a",
                       {{"status", "paused"}, {"notification", {{"level", "warning"}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(message_of(bad).find("status: must be one of"), std::string::npos);
  EXPECT_NE(message_of(bad).find("notification.level: must be one of"), std::string::npos);
  EXPECT_NE(message_of(bad).find("notification.title: is required"), std::string::npos);

  auto set = call_json(
      "PATCH", "/v1/installations/icfg_a",
      {{"status", "suspended"},
       {"notification",
        {{"level", "error"}, {"title", "Unpaid"}, {"href", "sso:https://p.example/billing"}}}});
  EXPECT_EQ(set.status, 204) << set.body;
  Json inst = doc()["installations"]["icfg_a"];
  EXPECT_EQ(inst["partnerStatus"], "suspended");
  EXPECT_EQ(inst["status"], "active");  // the lifecycle is Vercel's, not the partner's
  EXPECT_EQ(inst["notification"]["title"], "Unpaid");
  EXPECT_EQ(call_json("PATCH", "/v1/installations/icfg_a", {{"notification", nullptr}}).status,
            204);
  EXPECT_FALSE(doc()["installations"]["icfg_a"].contains("notification"));
}

TEST_F(VercelApiTest, WrongContentTypeAndMalformedJsonAreBadRequests) {
  auto text = call("POST", "/v1/installations/icfg_a/billing", billing_body().dump(), "tok_a",
                   "text/plain");
  EXPECT_EQ(text.status, 400);
  EXPECT_NE(message_of(text).find("Content-Type"), std::string::npos);
  auto broken = call("POST", "/v1/installations/icfg_a/billing", "{\"timestamp\":");
  EXPECT_EQ(broken.status, 400);
  EXPECT_NE(message_of(broken).find("not valid JSON"), std::string::npos);
  auto array = call("POST", "/v1/installations/icfg_a/billing", "[]");
  EXPECT_EQ(array.status, 400);
}

// ---- billing data ----------------------------------------------------------------------------

TEST_F(VercelApiTest, BillingDataIsKeptPerDayLatestTimestampWins) {
  auto r = call_json("POST", "/v1/installations/icfg_a/billing", billing_body());
  ASSERT_EQ(r.status, 201) << r.body;
  Json list = doc()["billing"]["icfg_a"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["day"], "2025-03-14");  // eod at midnight ends the 14th

  Json older = billing_body();
  older["timestamp"] = "2025-03-15T10:00:00Z";
  older["usage"][0]["dayValue"] = 99;
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing", older).status, 201);
  EXPECT_EQ(doc()["billing"]["icfg_a"][0]["body"]["usage"][0]["dayValue"], 1.5);

  Json newer = billing_body();
  newer["timestamp"] = "2025-03-15T11:30:00Z";
  newer["usage"][0]["dayValue"] = 2;
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing", newer).status, 201);
  EXPECT_EQ(doc()["billing"]["icfg_a"].size(), 1u);
  EXPECT_EQ(doc()["billing"]["icfg_a"][0]["body"]["usage"][0]["dayValue"], 2);

  Json next_day = billing_body();
  next_day["eod"] = "2025-03-15T11:00:00Z";  // interim data for today
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing", next_day).status, 201);
  EXPECT_EQ(doc()["billing"]["icfg_a"].size(), 2u);

  // The object form of `billing` with discounts is accepted too.
  Json object_form = billing_body();
  object_form["billing"] = {
      {"items", billing_body()["billing"]},
      {"discounts", {{{"billingPlanId", "pro"}, {"name", "Promo"}, {"amount", "5.00"}}}}};
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing", object_form).status, 201);
}

TEST_F(VercelApiTest, InvalidBillingDataIsReportedPrecisely) {
  auto expect_problem = [&](const Json& body, const std::string& needle) {
    auto r = call_json("POST", "/v1/installations/icfg_a/billing", body);
    EXPECT_EQ(r.status, 400) << needle;
    EXPECT_EQ(code_of(r), "bad_request");
    EXPECT_NE(message_of(r).find(needle), std::string::npos)
        << "expected \"" << needle << "\" in: " << message_of(r);
    bool in_findings = false;
    for (const auto& f : last_exchange().findings)
      in_findings = in_findings || f.find(needle) != std::string::npos;
    EXPECT_TRUE(in_findings) << needle;
  };
  Json missing = billing_body();
  missing.erase("usage");
  expect_problem(missing, "usage: is required");

  Json money = billing_body();
  money["billing"][0]["total"] = "$20";
  expect_problem(money, "billing[0].total: must be a decimal string");
  Json number = billing_body();
  number["billing"][0]["price"] = 20;
  expect_problem(number, "billing[0].price: must be a decimal string");
  Json object_money = billing_body();
  object_money["billing"] = {{"items", billing_body()["billing"]}};
  object_money["billing"]["items"][0]["total"] = "-1.00";
  expect_problem(object_money, "billing.items[0].total: must be a decimal string");

  Json outside = billing_body();
  outside["eod"] = "2025-04-02T00:00:00Z";
  expect_problem(outside, "eod: must lie inside period");

  Json stale = billing_body();
  stale["period"] = {{"start", "2025-02-01T00:00:00Z"}, {"end", "2025-03-01T00:00:00Z"}};
  stale["eod"] = "2025-03-01T00:00:00Z";
  expect_problem(stale, "period.end: must not be more than 24 h in the past");
  expect_problem(stale, "eod: must not be more than 24 h in the past");

  Json bad_date = billing_body();
  bad_date["timestamp"] = "2025-03-15 11:00:00";
  expect_problem(bad_date, "timestamp: must be an RFC 3339 date-time");
  Json feb30 = billing_body();
  feb30["timestamp"] = "2025-02-30T11:00:00Z";
  expect_problem(feb30, "timestamp: must be an RFC 3339 date-time");

  Json usage = billing_body();
  usage["usage"][0]["type"] = "sum";
  usage["usage"][0]["dayValue"] = "1";
  expect_problem(usage, "usage[0].type: must be one of");
  expect_problem(usage, "usage[0].dayValue: must be a number");

  Json period_extra = billing_body();
  period_extra["period"]["tz"] = "UTC";
  expect_problem(period_extra, "period.tz: is not allowed");

  // Several problems at once are all named.
  Json many = billing_body();
  many.erase("timestamp");
  many["billing"][0].erase("units");
  auto r = call_json("POST", "/v1/installations/icfg_a/billing", many);
  EXPECT_NE(message_of(r).find("timestamp: is required"), std::string::npos);
  EXPECT_NE(message_of(r).find("billing[0].units: is required"), std::string::npos);
  EXPECT_EQ(last_exchange().findings.size(), 2u);
  EXPECT_FALSE(doc().contains("billing"));
}

// ---- invoices --------------------------------------------------------------------------------

TEST_F(VercelApiTest, InvoiceTotalsAreExactAndDuplicateExternalIdConflicts) {
  Json body = invoice_body("inv-1", "10.10");
  body["items"].push_back(body["items"][0]);
  body["items"][1]["total"] = "0.20";
  body["items"][1]["resourceId"] = "res_1";
  body["discounts"] = {{{"billingPlanId", "pro"}, {"name", "Promo"}, {"amount", "0.30"}}};
  std::string id = submit_invoice(body);
  ASSERT_EQ(id.rfind("mi_", 0), 0u);
  Json inv = get_invoice(id);
  EXPECT_EQ(inv["total"], "10.00");
  EXPECT_EQ(inv["state"], "scheduled");
  EXPECT_EQ(inv["externalId"], "inv-1");
  for (const char* k : {"invoiceId", "state", "invoiceDate", "period", "items", "total", "created",
                        "updated", "invoiceNumber"})
    EXPECT_TRUE(inv.contains(k)) << k;
  EXPECT_FALSE(inv.contains("charged"));  // sandbox bookkeeping is not part of §7.3
  EXPECT_EQ(webhook_types(), (std::vector<std::string>{"marketplace.invoice.created"}));

  auto dup = call_json("POST", "/v1/installations/icfg_a/billing/invoices", invoice_body("inv-1"));
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(code_of(dup), "conflict");
  EXPECT_NE(message_of(dup).find("externalId"), std::string::npos);
  // Another installation may use the same external id.
  state_->mutate(
      [](Json& d) { d["resources"]["icfg_b"]["res_1"] = d["resources"]["icfg_a"]["res_1"]; });
  EXPECT_EQ(
      call_json("POST", "/v1/installations/icfg_b/billing/invoices", invoice_body("inv-1"), "tok_b")
          .status,
      200);

  EXPECT_EQ(call("GET", "/v1/installations/icfg_a/billing/invoices/mi_nope").status, 404);
}

TEST_F(VercelApiTest, InvoiceRulesAreEnforced) {
  Json outside = invoice_body("inv-2");
  outside["invoiceDate"] = "2025-05-01T00:00:00Z";
  auto r = call_json("POST", "/v1/installations/icfg_a/billing/invoices", outside);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message_of(r).find("invoiceDate: must fall inside period"), std::string::npos);

  Json empty = invoice_body("inv-3");
  empty["items"] = Json::array();
  EXPECT_NE(message_of(call_json("POST", "/v1/installations/icfg_a/billing/invoices", empty))
                .find("items: must contain at least one item"),
            std::string::npos);

  // A line for a resource the installation never had is accepted with a warning finding.
  Json unknown = invoice_body("inv-4");
  unknown["items"][0]["resourceId"] = "res_ghost";
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/invoices", unknown).status, 200);
  ASSERT_EQ(last_exchange().findings.size(), 1u);
  EXPECT_NE(last_exchange().findings[0].find("items[0].resourceId"), std::string::npos);

  Json fin = invoice_body("inv-5");
  fin["final"] = true;
  auto not_pending = call_json("POST", "/v1/installations/icfg_a/billing/invoices", fin);
  EXPECT_EQ(not_pending.status, 400);
  EXPECT_NE(message_of(not_pending).find("pending deletion"), std::string::npos);
  state_->mutate([](Json& d) { d["installations"]["icfg_a"]["status"] = "pending_deletion"; });
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/invoices", fin).status, 200);

  Json extra = invoice_body("inv-6");
  extra["currency"] = "USD";
  EXPECT_NE(message_of(call_json("POST", "/v1/installations/icfg_a/billing/invoices", extra))
                .find("currency: is not allowed"),
            std::string::npos);
}

TEST_F(VercelApiTest, SmallInvoicesAreRecordedButNotCharged) {
  std::string id = submit_invoice(invoice_body("tiny", "0.49"));
  Json inv = doc()["invoices"]["icfg_a"][id];
  EXPECT_EQ(inv["charged"], false);
  EXPECT_EQ(inv["state"], "invoiced");
  EXPECT_TRUE(webhook_types().empty());
  std::string id2 = submit_invoice(invoice_body("half", "0.50"));
  EXPECT_EQ(doc()["invoices"]["icfg_a"][id2]["charged"], true);
}

TEST_F(VercelApiTest, TestInvoicesTakeTheirResultAtOnce) {
  Json body = invoice_body("t-1");
  body["test"] = {{"validate", true}, {"result", "notpaid"}};
  auto r = call_json("POST", "/v1/installations/icfg_a/billing/invoices", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["test"], true);
  Json inv = get_invoice(body_of(r)["invoiceId"]);
  EXPECT_EQ(inv["state"], "notpaid");
  EXPECT_EQ(inv["test"], true);

  body["externalId"] = "t-2";
  body["test"] = {{"result", "overdue"}};
  EXPECT_EQ(get_invoice(submit_invoice(body))["state"], "overdue");
  body["externalId"] = "t-3";
  body["test"] = Json::object();
  Json paid = get_invoice(submit_invoice(body));
  EXPECT_EQ(paid["state"], "paid");
  EXPECT_TRUE(paid.contains("paidAt"));
  auto types = webhook_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "marketplace.invoice.overdue"), types.end());

  // Full validation runs in test mode too: a duplicate is a conflict, a bad date a 400.
  Json invalid = invoice_body("t-1");
  invalid["test"] = {{"validate", true}, {"result", "paid"}};
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/invoices", invalid).status, 409);
  invalid["externalId"] = "t-9";
  invalid["invoiceDate"] = "2026-01-01T00:00:00Z";
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/invoices", invalid).status, 400);
  // validate:false skips it, and says what a live submission would be refused for.
  invalid["externalId"] = "t-1";
  invalid["test"]["validate"] = false;
  auto skipped = call_json("POST", "/v1/installations/icfg_a/billing/invoices", invalid);
  ASSERT_EQ(skipped.status, 200) << skipped.body;
  Json sb = body_of(skipped);
  EXPECT_TRUE(sb.contains("invoiceId"));
  ASSERT_EQ(sb["validationErrors"].size(), 2u) << skipped.body;
  EXPECT_EQ(last_exchange().findings.size(), 2u);
  // Live and test invoices keep separate external ids.
  EXPECT_EQ(
      call_json("POST", "/v1/installations/icfg_a/billing/invoices", invoice_body("t-1")).status,
      200);
  // Shapes are checked even then.
  invalid["test"]["result"] = "lost";
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/invoices", invalid).status, 400);
}

TEST_F(VercelApiTest, RefundStateMachine) {
  std::string id = submit_invoice(invoice_body("r-1", "20.00"));
  Json refund = {{"action", "refund"}, {"reason", "outage"}, {"total", "5.00"}};
  std::string actions = "/v1/installations/icfg_a/billing/invoices/" + id + "/actions";
  EXPECT_EQ(call_json("POST", actions, refund).status, 409);  // scheduled: nothing to refund

  set_invoice_state(*ctx_, "icfg_a", id, "paid");
  EXPECT_TRUE(get_invoice(id).contains("paidAt"));
  auto too_much =
      call_json("POST", actions, {{"action", "refund"}, {"reason", "x"}, {"total", "20.01"}});
  EXPECT_EQ(too_much.status, 400);
  EXPECT_NE(message_of(too_much).find("total: must not exceed the invoice total 20.00"),
            std::string::npos);
  EXPECT_EQ(
      call_json("POST", actions, {{"action", "void"}, {"reason", "x"}, {"total", "1"}}).status,
      400);

  EXPECT_EQ(call_json("POST", actions, refund).status, 204);
  Json inv = get_invoice(id);
  EXPECT_EQ(inv["state"], "refund_requested");
  EXPECT_EQ(inv["refundReason"], "outage");
  EXPECT_EQ(inv["refundTotal"], "5.00");
  auto again = call_json("POST", actions, refund);
  EXPECT_EQ(again.status, 409);
  EXPECT_NE(message_of(again).find("refund_requested"), std::string::npos);

  Json done = set_invoice_state(*ctx_, "icfg_a", id, "refunded");
  EXPECT_EQ(done["state"], "refunded");
  EXPECT_TRUE(get_invoice(id).contains("refundedAt"));
  Json payload = invoice_webhook_payload(done, "icfg_a");
  EXPECT_EQ(payload["installationId"], "icfg_a");
  EXPECT_EQ(payload["configuration"]["id"], "icfg_a");
  EXPECT_EQ(payload["team"]["id"], "team_a1b2c3a");
  EXPECT_EQ(payload["invoiceId"], id);
  EXPECT_EQ(payload["externalInvoiceId"], "r-1");
  EXPECT_EQ(payload["invoiceTotal"], "20.00");
  EXPECT_EQ(payload["amount"], "5.00");
  EXPECT_EQ(payload["reason"], "outage");
  EXPECT_EQ(payload["period"]["start"], "2025-03-01T00:00:00Z");
  EXPECT_EQ(call_json("POST", actions, refund).status, 409);  // refunded is final

  EXPECT_THROW(set_invoice_state(*ctx_, "icfg_a", id, "lost"), model::ApiError);
  EXPECT_THROW(set_invoice_state(*ctx_, "icfg_a", "mi_nope", "paid"), model::ApiError);

  // A test invoice's refund completes at once.
  Json t = invoice_body("r-2");
  t["test"] = {{"result", "overdue"}};
  std::string tid = submit_invoice(t);
  EXPECT_EQ(
      call_json("POST", "/v1/installations/icfg_a/billing/invoices/" + tid + "/actions", refund)
          .status,
      204);
  EXPECT_EQ(get_invoice(tid)["state"], "refunded");
}

TEST_F(VercelApiTest, FinalizeIsBlockedByUnpaidInvoices) {
  auto active = call("POST", "/v1/installations/icfg_a/billing/finalize");
  EXPECT_EQ(active.status, 400);
  state_->mutate([](Json& d) { d["installations"]["icfg_a"]["status"] = "pending_deletion"; });
  std::string id = submit_invoice(invoice_body("f-1"));
  Json t = invoice_body("f-2");
  t["test"] = {{"result", "notpaid"}};
  submit_invoice(t);                            // test invoices never block
  submit_invoice(invoice_body("f-3", "0.10"));  // nor uncharged ones
  auto blocked = call("POST", "/v1/installations/icfg_a/billing/finalize");
  EXPECT_EQ(blocked.status, 409);
  EXPECT_NE(message_of(blocked).find(id), std::string::npos);
  EXPECT_EQ(message_of(blocked).find("f-2"), std::string::npos);
  set_invoice_state(*ctx_, "icfg_a", id, "notpaid");
  EXPECT_EQ(call("POST", "/v1/installations/icfg_a/billing/finalize").status, 409);
  set_invoice_state(*ctx_, "icfg_a", id, "paid");
  EXPECT_EQ(call("POST", "/v1/installations/icfg_a/billing/finalize").status, 204);
  EXPECT_EQ(doc()["installations"]["icfg_a"]["status"], "finalized");
  EXPECT_TRUE(doc()["installations"]["icfg_a"].contains("finalizedAt"));
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a/billing/invoices/" + id).status, 401);
}

TEST_F(VercelApiTest, BalancesKeepTheLatestTimestamp) {
  Json b = {{"timestamp", "2025-03-15T11:00:00Z"},
            {"balances", {{{"currencyValueInCents", 1500}, {"credit", "1,500 Tokens"}}}}};
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/balance", b).status, 201);
  Json older = b;
  older["timestamp"] = "2025-03-15T10:00:00Z";
  older["balances"][0]["currencyValueInCents"] = 1;
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/billing/balance", older).status, 201);
  EXPECT_EQ(doc()["balances"]["icfg_a"]["balances"][0]["currencyValueInCents"], 1500);
  Json bad = b;
  bad["balances"][0]["currencyValueInCents"] = "15.00";
  auto r = call_json("POST", "/v1/installations/icfg_a/billing/balance", bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message_of(r).find("balances[0].currencyValueInCents: must be an integer"),
            std::string::npos);
}

// ---- resources and secrets ---------------------------------------------------------------------

TEST_F(VercelApiTest, ResourcesImportUpdateListDelete) {
  Json import = {{"productId", "db"},
                 {"name", "imported"},
                 {"status", "ready"},
                 {"ownership", "linked"},
                 {"secrets", {{{"name", "URL"}, {"value", "x"}}}}};
  auto r = call_json("PUT", "/v1/installations/icfg_a/resources/res_2", import);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r), (Json{{"name", "imported"}}));
  auto list = body_of(call("GET", "/v1/installations/icfg_a/resources"));
  ASSERT_EQ(list["resources"].size(), 2u);
  EXPECT_EQ(list["resources"][0]["partnerId"], "res_1");
  EXPECT_EQ(list["resources"][0]["billingPlanId"], "pro");
  EXPECT_FALSE(list["resources"][0].contains("id"));
  auto one = body_of(call("GET", "/v1/installations/icfg_a/resources/res_2"));
  EXPECT_EQ(one["id"], "res_2");
  EXPECT_FALSE(one["internalId"].get<std::string>().empty());

  Json missing = import;
  missing.erase("status");
  auto bad = call_json("PUT", "/v1/installations/icfg_a/resources/res_3", missing);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(message_of(bad).find("status: is required"), std::string::npos);

  auto patch = call_json("PATCH", "/v1/installations/icfg_a/resources/res_1",
                         {{"name", "renamed"}, {"status", "suspended"}, {"notification", nullptr}});
  EXPECT_EQ(patch.status, 200) << patch.body;
  EXPECT_EQ(body_of(patch)["name"], "renamed");
  EXPECT_EQ(doc()["resources"]["icfg_a"]["res_1"]["status"], "suspended");

  EXPECT_EQ(call("DELETE", "/v1/installations/icfg_a/resources/res_2").status, 204);
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a/resources/res_2").status, 404);
  EXPECT_EQ(call("DELETE", "/v1/installations/icfg_a/resources/res_2").status, 404);
  EXPECT_EQ(body_of(call("GET", "/v1/installations/icfg_a/resources"))["resources"].size(), 1u);
  // Another installation's resources are not reachable with its path either.
  EXPECT_EQ(call("GET", "/v1/installations/icfg_b/resources/res_1", "", "tok_b").status, 404);
}

TEST_F(VercelApiTest, SecretsPartialMergesAndFullReplaces) {
  std::string path = "/v1/installations/icfg_a/resources/res_1/secrets";
  auto r = call_json(
      "PUT", path,
      {{"secrets", {{{"name", "DATABASE_PASSWORD"}, {"value", "pw"}}}}, {"partial", true}});
  ASSERT_EQ(r.status, 201) << r.body;
  Json env = project_env(doc()["resources"]["icfg_a"]["res_1"]);
  EXPECT_EQ(env["production"]["DATABASE_URL"], "postgres://one");
  EXPECT_EQ(env["production"]["DATABASE_PASSWORD"], "pw");

  EXPECT_EQ(call_json("PUT", path,
                      {{"secrets", {{{"name", "DATABASE_URL"}, {"value", "postgres://two"}}}},
                       {"partial", true}})
                .status,
            201);
  env = project_env(doc()["resources"]["icfg_a"]["res_1"]);
  EXPECT_EQ(env["preview"]["DATABASE_URL"], "postgres://two");
  EXPECT_EQ(env["preview"].size(), 2u);

  // Deprecated path, full replacement.
  EXPECT_EQ(call_json("PUT", "/v1/installations/icfg_a/products/db/resources/res_1/secrets",
                      {{"secrets", {{{"name", "ONLY"}, {"value", "1"}}}}})
                .status,
            201);
  env = project_env(doc()["resources"]["icfg_a"]["res_1"]);
  EXPECT_EQ(env["development"], (Json{{"ONLY", "1"}}));

  auto extra =
      call_json("PUT", path, {{"secrets", {{{"name", "A"}, {"value", "1"}, {"type", "x"}}}}});
  EXPECT_EQ(extra.status, 400);
  EXPECT_NE(message_of(extra).find("secrets[0].type: is not allowed"), std::string::npos);
  auto dup =
      call_json("PUT", path,
                {{"secrets", {{{"name", "A"}, {"value", "1"}}, {{"name", "A"}, {"value", "2"}}}}});
  EXPECT_NE(message_of(dup).find("secrets[1].name: duplicates"), std::string::npos);
  auto env_typo = call_json(
      "PUT", path,
      {{"secrets",
        {{{"name", "A"}, {"value", "1"}, {"environmentOverrides", {{"staging", "x"}}}}}}});
  EXPECT_NE(message_of(env_typo).find("secrets[0].environmentOverrides.staging: is not allowed"),
            std::string::npos);

  // Update Resource carries secrets in both shapes.
  EXPECT_EQ(call_json("PATCH", "/v1/installations/icfg_a/resources/res_1",
                      {{"secrets",
                        {{"secrets", {{{"name", "TWO"}, {"value", "2"}}}}, {"partial", true}}}})
                .status,
            200);
  EXPECT_EQ(project_env(doc()["resources"]["icfg_a"]["res_1"])["production"].size(), 2u);
  EXPECT_EQ(call_json("PATCH", "/v1/installations/icfg_a/resources/res_1",
                      {{"secrets", {{{"name", "THREE"}, {"value", "3"}}}}})
                .status,
            200);
  EXPECT_EQ(project_env(doc()["resources"]["icfg_a"]["res_1"])["production"],
            (Json{{"THREE", "3"}}));
}

TEST(ProjectEnv, PrefixAndOverrideRules) {
  EXPECT_EQ(env_var_name("URL", ""), "URL");
  EXPECT_EQ(env_var_name("URL", "MY-DB"), "MY_DB_URL");
  EXPECT_EQ(env_var_name("URL", "my db_"), "my_db_URL");
  EXPECT_EQ(env_var_name("MY_DB_URL", "MY_DB"), "MY_DB_URL");  // no double prefix
  EXPECT_EQ(env_var_name("NEXT_PUBLIC_KEY", "MY_DB"), "NEXT_PUBLIC_MY_DB_KEY");
  EXPECT_EQ(env_var_name("NEXT_PUBLIC_MY_DB_KEY", "MY_DB"), "NEXT_PUBLIC_MY_DB_KEY");

  Json resource = {
      {"secrets",
       {{{"name", "URL"},
         {"value", "prod-url"},
         {"prefix", "STORE"},
         {"environmentOverrides", {{"development", "dev-url"}, {"preview", "preview-url"}}}},
        {{"name", "NEXT_PUBLIC_ANON"}, {"value", "anon"}, {"prefix", "STORE"}},
        {{"name", "TOKEN"},
         {"value", "t"},
         {"environmentOverrides", {{"production", "prod-t"}}}}}}};
  Json env = project_env(resource);
  EXPECT_EQ(env["development"],
            (Json{{"STORE_URL", "dev-url"}, {"NEXT_PUBLIC_STORE_ANON", "anon"}, {"TOKEN", "t"}}));
  EXPECT_EQ(env["preview"]["STORE_URL"], "preview-url");
  EXPECT_EQ(
      env["production"],
      (Json{{"STORE_URL", "prod-url"}, {"NEXT_PUBLIC_STORE_ANON", "anon"}, {"TOKEN", "prod-t"}}));
  EXPECT_EQ(project_env(Json()), (Json{{"development", Json::object()},
                                       {"preview", Json::object()},
                                       {"production", Json::object()}}));
}

// ---- credentials and SSO ----------------------------------------------------------------------

TEST_F(VercelApiTest, CredentialRotationNeedsTheClientSecretAndKeepsTheOldToken) {
  std::string path = "/v1/installations/icfg_a/credentials/rotate";
  auto wrong = call_json("POST", path, {{"client_secret", "nope"}});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(last_exchange().request_body.find("nope"), std::string::npos);
  auto r = call_json("POST", path, {{"client_secret", config_.client_secret}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json b = body_of(r);
  EXPECT_EQ(b["token_type"], "oauth2-token");
  EXPECT_TRUE(b["expires_in"].is_number());
  EXPECT_EQ(b["scope"], "read-write:integration-resource");
  std::string fresh = b["access_token"];
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a", "", fresh).status, 200);
  EXPECT_EQ(call("GET", "/v1/installations/icfg_a", "", "tok_a").status, 200);
  EXPECT_EQ(doc()["installations"]["icfg_a"]["tokenRotations"].size(), 1u);
  // The issued token and the secret never reach the exchange log.
  for (const auto& ex : log_.list(0, 1000)) {
    EXPECT_EQ(ex.response_body.find(fresh), std::string::npos);
    EXPECT_EQ(ex.request_body.find(config_.client_secret), std::string::npos);
  }
}

class SsoTest : public VercelApiTest {
 protected:
  void add_code(const std::string& code, int64_t expires_ms, const std::string& st = "st-1") {
    state_->mutate([&](Json& d) {
      d["ssoCodes"][code] = {{"installationId", "icfg_a"},
                             {"userHex", "ua"},
                             {"state", st},
                             {"expiresAt", expires_ms},
                             {"used", false}};
    });
  }
  net::Response exchange(const Json& body) {
    return call("POST", "/v1/integrations/sso/token", body.dump(), std::nullopt);
  }
  Json request(const std::string& code) {
    return {{"code", code},
            {"client_id", config_.client_id},
            {"client_secret", config_.client_secret},
            {"state", "st-1"},
            {"grant_type", "authorization_code"}};
  }
};

TEST_F(SsoTest, CodesAreSingleUseAndExpire) {
  add_code("c1", at(kNow) + 60000);
  Json wrong_secret = request("c1");
  wrong_secret["client_secret"] = "nope";
  EXPECT_EQ(exchange(wrong_secret).status, 403);
  Json wrong_state = request("c1");
  wrong_state["state"] = "other";
  EXPECT_EQ(exchange(wrong_state).status, 400);

  auto r = exchange(request("c1"));
  ASSERT_EQ(r.status, 200) << r.body;
  Json b = body_of(r);
  EXPECT_TRUE(b["access_token"].is_null());
  EXPECT_TRUE(b["token_type"].is_null());
  EXPECT_EQ(b["expires_in"], 600);
  std::string jwt = b["id_token"];
  auto dot1 = jwt.find('.');
  auto dot2 = jwt.find('.', dot1 + 1);
  Json claims = Json::parse(*util::base64url_decode(jwt.substr(dot1 + 1, dot2 - dot1 - 1)));
  EXPECT_EQ(claims["installation_id"], "icfg_a");
  EXPECT_EQ(claims["user_id"], "ua");
  EXPECT_EQ(claims["user_role"], "ADMIN");
  EXPECT_EQ(claims["type"], "id_token");
  EXPECT_EQ(claims["sub"], "account:a1b2c3a:user:ua");
  EXPECT_EQ(claims["aud"], config_.client_id);

  auto reused = exchange(request("c1"));
  EXPECT_EQ(reused.status, 400);
  EXPECT_NE(message_of(reused).find("already used"), std::string::npos);

  add_code("c2", at(kNow) + 1000);
  clock_->advance_ms(2000);
  auto expired = exchange(request("c2"));
  EXPECT_EQ(expired.status, 400);
  EXPECT_NE(message_of(expired).find("expired"), std::string::npos);
  EXPECT_EQ(exchange(request("never-issued")).status, 400);
  Json no_code = request("c2");
  no_code.erase("code");
  EXPECT_NE(message_of(exchange(no_code)).find("code: is required"), std::string::npos);
}

TEST_F(SsoTest, FormEncodedExchangeWorks) {
  add_code("c3", at(kNow) + 60000);
  std::string form = "code=c3&client_id=" + config_.client_id +
                     "&client_secret=" + config_.client_secret + "&grant_type=authorization_code";
  auto r = call("POST", "/v1/integrations/sso/token", form, std::nullopt,
                "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(last_exchange().request_body.find(config_.client_secret), std::string::npos);
  EXPECT_EQ(call("POST", "/v1/integrations/sso/token", form, std::nullopt, "text/plain").status,
            400);
  // An SSO code is no connectable-account code: refused OAuth-style.
  auto oauth =
      call("POST", "/v2/oauth/access_token", form + "&redirect_uri=https%3A%2F%2Fp.example%2Fcb",
           std::nullopt, "application/x-www-form-urlencoded");
  EXPECT_EQ(oauth.status, 400);
  EXPECT_EQ(body_of(oauth)["error"], "invalid_grant");
  EXPECT_TRUE(body_of(oauth)["error_description"].is_string());
}

// ---- experimentation ----------------------------------------------------------------------------

TEST_F(VercelApiTest, ExperimentationItemsLimitsAndLifecycle) {
  std::string base = "/v1/installations/icfg_a/resources/res_1/experimentation/items";
  Json item = {{"id", "flag_1"},
               {"slug", "new-checkout"},
               {"origin", "https://p.example/flags/1"},
               {"category", "flag"},
               {"createdAt", 1741000000000}};
  Json many = {{"items", Json::array()}};
  for (int i = 0; i < 51; ++i) {
    Json x = item;
    x["id"] = "flag_" + std::to_string(i);
    many["items"].push_back(x);
  }
  auto too_many = call_json("POST", base, many);
  EXPECT_EQ(too_many.status, 400);
  EXPECT_NE(message_of(too_many).find("items: must contain at most 50 items"), std::string::npos);

  Json no_slug = item;
  no_slug.erase("slug");
  EXPECT_NE(message_of(call_json("POST", base, {{"items", {no_slug}}}))
                .find("items[0].slug: is required"),
            std::string::npos);
  Json long_slug = item;
  long_slug["slug"] = std::string(1025, 's');
  EXPECT_NE(message_of(call_json("POST", base, {{"items", {long_slug}}}))
                .find("items[0].slug: must be at most 1024 characters"),
            std::string::npos);
  Json bad_category = item;
  bad_category["category"] = "toggle";
  EXPECT_EQ(call_json("POST", base, {{"items", {bad_category}}}).status, 400);

  EXPECT_EQ(call_json("POST", base, {{"items", {item}}}).status, 204);
  Json patch = {
      {"slug", "new-checkout"}, {"origin", "https://p.example/flags/1"}, {"isArchived", true}};
  EXPECT_EQ(call_json("PATCH", base + "/flag_1", patch).status, 204);
  EXPECT_EQ(doc()["experimentation"]["icfg_a"]["res_1"]["items"]["flag_1"]["isArchived"], true);
  Json with_id = patch;
  with_id["id"] = "flag_1";
  auto id_refused = call_json("PATCH", base + "/flag_1", with_id);
  EXPECT_EQ(id_refused.status, 400);
  EXPECT_NE(message_of(id_refused).find("id: is not allowed"), std::string::npos);
  Json no_origin = patch;
  no_origin.erase("origin");
  EXPECT_EQ(call_json("PATCH", base + "/flag_1", no_origin).status, 400);
  EXPECT_EQ(call_json("PATCH", base + "/flag_404", patch).status, 404);
  EXPECT_EQ(call("DELETE", base + "/flag_1").status, 204);
  EXPECT_EQ(call("DELETE", base + "/flag_1").status, 404);
  EXPECT_EQ(call_json("POST", "/v1/installations/icfg_a/resources/res_ghost/experimentation/items",
                      {{"items", {item}}})
                .status,
            404);
}

TEST_F(VercelApiTest, GlobalConfigDigestAndPreconditions) {
  std::string gc = "/v1/installations/icfg_a/resources/res_1/experimentation/global-config";
  EXPECT_EQ(call("GET", gc).status, 404);  // syncing not enabled
  state_->mutate([](Json& d) {
    d["resources"]["icfg_a"]["res_1"]["protocolSettings"] = {
        {"experimentation", {{"edgeConfigId", "ecfg_1"}}}};
  });
  auto empty = call("GET", gc);
  ASSERT_EQ(empty.status, 200) << empty.body;
  std::string empty_digest = body_of(empty)["digest"];
  EXPECT_EQ(empty_digest, util::to_hex(util::sha256("{}")));

  Json data = {{"flags", {{"new-checkout", true}}}};
  auto put = call_json("PUT", gc, {{"data", data}});
  ASSERT_EQ(put.status, 200) << put.body;
  Json pb = body_of(put);
  std::string digest = pb["digest"];
  EXPECT_EQ(digest, util::to_hex(util::sha256(data.dump())));
  EXPECT_EQ(pb["items"], data);
  EXPECT_EQ(pb["updatedAt"], at(kNow));

  auto not_modified = call("GET", gc, "", "tok_a", "", {{"if-none-match", "\"" + digest + "\""}});
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_TRUE(not_modified.body.empty());
  EXPECT_EQ(
      call("GET", gc, "", "tok_a", "", {{"if-none-match", "\"" + empty_digest + "\""}}).status,
      200);
  auto head = call("HEAD", gc);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());

  auto stale = call("PUT", gc, Json{{"data", {{"x", 1}}}}.dump(), "tok_a", "application/json",
                    {{"if-match", "\"" + empty_digest + "\""}});
  EXPECT_EQ(stale.status, 412);
  EXPECT_EQ(call("PUT", gc, Json{{"data", {{"x", 1}}}}.dump(), "tok_a", "application/json",
                 {{"if-match", "\"" + digest + "\""}})
                .status,
            200);
  // The legacy edge-config path is the same store.
  auto legacy = call("GET", "/v1/installations/icfg_a/resources/res_1/experimentation/edge-config");
  EXPECT_EQ(body_of(legacy)["items"], (Json{{"x", 1}}));

  auto extra = call_json("PUT", gc, {{"data", data}, {"purpose", "flags"}});
  EXPECT_EQ(extra.status, 400);
  EXPECT_EQ(call_json("PUT", gc, {{"data", "flags"}}).status, 400);
}

// ---- events, deployment actions, identity ------------------------------------------------------

TEST_F(VercelApiTest, CreateEventIsRecordedAndTriggersARefresh) {
  std::string path = "/v1/installations/icfg_a/events";
  auto bad = call_json("POST", path, {{"event", {{"type", "resource.updated"}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(message_of(bad).find("event.resourceId: is required"), std::string::npos);
  EXPECT_EQ(
      call_json("POST", path, {{"event", {{"type", "resource.deleted"}, {"resourceId", "x"}}}})
          .status,
      400);
  EXPECT_EQ(call_json("POST", path,
                      {{"event", {{"type", "resource.updated"}, {"resourceId", "res_ghost"}}}})
                .status,
            404);
  auto r = call_json(
      "POST", path,
      {{"event", {{"type", "resource.updated"}, {"resourceId", "res_1"}, {"productId", "db"}}}});
  EXPECT_EQ(r.status, 201) << r.body;
  Json events = doc()["events"];
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["installationId"], "icfg_a");
  EXPECT_EQ(events[0]["event"]["resourceId"], "res_1");
  // Vercel's re-read runs after the answer; the partner here is unreachable.
  for (int i = 0; i < 200 && doc()["events"][0]["refresh"]["state"] != "done"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_EQ(doc()["events"][0]["refresh"]["state"], "done");
  EXPECT_EQ(doc()["events"][0]["refresh"]["ok"], false);
}

TEST_F(VercelApiTest, DeploymentActionUpdates) {
  std::string path = "/v1/deployments/dpl_1/integrations/icfg_a/resources/res_1/actions/branch-db";
  auto bad = call_json("PATCH", path, {{"status", "done"}, {"statusUrl", "ftp://x"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(message_of(bad).find("statusUrl: must match ^https?:// or ^sso:"), std::string::npos);
  EXPECT_NE(message_of(bad).find("status: must be one of"), std::string::npos);
  auto ok = call_json("PATCH", path,
                      {{"status", "succeeded"},
                       {"statusUrl", "sso:https://p.example/branches/1"},
                       {"outcomes",
                        {{{"kind", "resource-secrets"},
                          {"secrets", {{{"name", "DATABASE_URL"}, {"value", "b"}}}}}}}});
  EXPECT_EQ(ok.status, 202) << ok.body;
  EXPECT_EQ(doc()["deploymentActions"][0]["action"], "branch-db");
  EXPECT_EQ(doc()["deploymentActions"][0]["deploymentId"], "dpl_1");
  EXPECT_EQ(call_json("PATCH", path, Json::object(), "tok_b").status, 403);
}

TEST_F(VercelApiTest, IdentityDocuments) {
  auto jwks = call("GET", "/.well-known/jwks", "", std::nullopt);
  ASSERT_EQ(jwks.status, 200);
  EXPECT_EQ(body_of(jwks)["keys"][0]["kid"], identity_->kid());
  auto oidc = body_of(call("GET", "/.well-known/openid-configuration", "", std::nullopt));
  EXPECT_EQ(oidc["jwks_uri"], "http://sandbox.test/.well-known/jwks");
  EXPECT_EQ(oidc["issuer"], "http://sandbox.test");
}

// No input, however malformed, crashes a handler or produces a 5xx.
TEST_F(VercelApiTest, NeverFailsOnGarbage) {
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"PATCH", "/v1/installations/icfg_a"},
      {"POST", "/v1/installations/icfg_a/credentials/rotate"},
      {"POST", "/v1/installations/icfg_a/events"},
      {"PUT", "/v1/installations/icfg_a/resources/res_1"},
      {"PATCH", "/v1/installations/icfg_a/resources/res_1"},
      {"PUT", "/v1/installations/icfg_a/resources/res_1/secrets"},
      {"POST", "/v1/installations/icfg_a/billing"},
      {"POST", "/v1/installations/icfg_a/billing/invoices"},
      {"POST", "/v1/installations/icfg_a/billing/balance"},
      {"POST", "/v1/installations/icfg_a/resources/res_1/experimentation/items"},
      {"PATCH", "/v1/installations/icfg_a/resources/res_1/experimentation/items/f"},
      {"PUT", "/v1/installations/icfg_a/resources/res_1/experimentation/global-config"},
      {"PATCH", "/v1/deployments/d/integrations/icfg_a/resources/res_1/actions/a"},
      {"POST", "/v1/integrations/sso/token"},
  };
  const std::vector<std::string> bodies = {
      "",
      "null",
      "[1,2]",
      "\"str\"",
      "{}",
      "{\"a\":",
      R"({"event":[],"items":{},"secrets":"x","billing":7,"usage":{},"period":[],"data":null})",
      R"({"timestamp":1,"eod":true,"period":{"start":1,"end":"x"},"billing":{"items":[null,1,"x",{}]},"usage":[null]})",
      R"({"invoiceDate":"2025-03-10T00:00:00Z","period":{"start":"2025-03-01T00:00:00Z","end":"2025-04-01T00:00:00Z"},"items":[{"billingPlanId":"p","name":"n","price":"1","quantity":1,"units":"u","total":"99999999999999999999999999.999999"}],"discounts":[{"billingPlanId":"p","name":"d","amount":"0.0000001"}],"test":{}})",
      R"({"secrets":{"secrets":[{"name":"A","value":"1","environmentOverrides":[]}],"partial":"yes"}})",
      R"({"items":[{"id":"","slug":1,"origin":null}],"code":[],"client_id":{},"client_secret":1})",
      R"({"status":null,"externalId":null,"billingPlan":null,"notification":7})",
      R"({"outcomes":[{"kind":"resource-secrets","secrets":[1]}],"statusUrl":5})",
  };
  for (const auto& [method, path] : endpoints) {
    for (const auto& b : bodies) {
      auto r = call(method, path, b);
      EXPECT_LT(r.status, 500) << method << " " << path << " " << b << " -> " << r.body;
      EXPECT_GE(r.status, 200);
    }
  }
}

// ---- schema building blocks ---------------------------------------------------------------------

TEST(VercelSchema, MoneyIsExact) {
  using schema::Money;
  auto m = [](const char* s) { return *Money::parse(s); };
  EXPECT_EQ((m("0.1") + m("0.2")).str(), "0.30");
  EXPECT_EQ((m("10") - m("10.01")).str(), "-0.01");
  EXPECT_EQ((m("0.000025") + m("1")).str(), "1.000025");
  EXPECT_EQ(m("1.005").round_cents().str(), "1.01");
  EXPECT_EQ(m("1.004").round_cents().str(), "1.00");
  EXPECT_EQ(m("0.995").round_cents().str(), "1.00");
  EXPECT_EQ(m("99999999999999999999.99").compare(m("99999999999999999999.98")), 1);
  EXPECT_EQ(m("007.50").compare(m("7.5")), 0);
  EXPECT_EQ(Money().str(), "0.00");
  EXPECT_FALSE(Money::parse("1."));
  EXPECT_FALSE(Money::parse("-1"));
  EXPECT_FALSE(Money::parse("1e3"));
  EXPECT_FALSE(Money::parse(""));
}

TEST(VercelSchema, DateTimes) {
  EXPECT_TRUE(schema::parse_date_time("2024-02-29T23:59:59.999+01:00"));
  EXPECT_FALSE(schema::parse_date_time("2023-02-29T00:00:00Z"));
  EXPECT_FALSE(schema::parse_date_time("2023-01-01"));
  EXPECT_FALSE(schema::parse_date_time("2023-01-01T00:00:00"));
  EXPECT_FALSE(schema::parse_date_time("2023-01-01 00:00:00Z"));
}

}  // namespace
}  // namespace wharf::sandbox
