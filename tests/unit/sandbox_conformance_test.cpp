// The sandbox's conformance checker: for each Partner API endpoint, good answers give no
// findings and each kind of bad answer gives exactly the finding that names the field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sandbox/conformance.h"

namespace wharf::sandbox {
namespace {

using Findings = std::vector<std::string>;

constexpr const char* kJson = "application/json";

const char* kPlan =
    R"({"id":"pro","type":"subscription","name":"Pro","description":"d","scope":"resource",)"
    R"("cost":"$20.00/month","details":[{"label":"Storage","value":"10 GB"}],)"
    R"("pricing":{"anything":1},"limits":[1,2]})";

std::string resource_json(const std::string& extra = "") {
  return std::string(R"({"id":"db_1","productId":"sqlite","name":"main","metadata":{},)") +
         R"("status":"ready","billingPlan":)" + kPlan + extra + "}";
}

struct Case {
  const char* name;
  std::string endpoint;
  int status;
  std::string content_type;
  std::string body;
  Findings expected;
};

class ConformanceTable : public ::testing::TestWithParam<Case> {};

TEST_P(ConformanceTable, FindsExactlyWhatIsWrong) {
  const Case& c = GetParam();
  EXPECT_EQ(check_partner_response(c.endpoint, c.status, c.content_type, c.body), c.expected)
      << c.name;
}

const std::vector<Case> kCases = {
    // --- installations ------------------------------------------------------------------
    {"upsert 204", "upsert-installation", 204, "", "", {}},
    {"upsert 201 flows-page style", "upsert-installation", 201, kJson, "{}", {}},
    {"upsert 200 without body", "upsert-installation", 200, "", "", {}},
    {"upsert 200 with plan and notification",
     "upsert-installation",
     200,
     kJson,
     std::string(R"({"billingPlan":)") + kPlan +
         R"(,"notification":{"level":"info","title":"Hi"}})",
     {}},
    {"upsert 204 with a body",
     "upsert-installation",
     204,
     kJson,
     "{}",
     {"response: 204 must not carry a body"}},
    {"upsert 202 undocumented",
     "upsert-installation",
     202,
     "",
     "",
     {"status: 202 is not a documented response of upsert-installation (documented: 200, 201, "
      "204, 400, 401, 403, 404, 409)"}},
    {"upsert bad notification level",
     "upsert-installation",
     200,
     kJson,
     R"({"notification":{"level":"warning","title":"x","href":"ftp://x"}})",
     {"response.notification.level: \"warning\" is not one of info|warn|error",
      "response.notification.href: \"ftp://x\" must start with http://, https:// or sso:"}},
    {"get installation null notification",
     "get-installation",
     200,
     kJson,
     R"({"notification":null})",
     {}},
    {"get installation empty body",
     "get-installation",
     200,
     kJson,
     "",
     {"response: body is empty; a JSON body is required with status 200"}},
    {"get installation bad plan",
     "get-installation",
     200,
     kJson,
     R"({"billingPlan":{"id":"x","type":"invoice","name":"X"}})",
     {"response.billingPlan.type: \"invoice\" is not one of prepayment|subscription",
      "response.billingPlan.description: required string missing"}},
    {"update installation 204", "update-installation", 204, "", "", {}},
    {"delete installation finalized",
     "delete-installation",
     200,
     kJson,
     R"({"finalized":true})",
     {}},
    {"delete installation finalized as string",
     "delete-installation",
     200,
     kJson,
     R"({"finalized":"yes"})",
     {"response.finalized: must be a boolean, got string"}},
    {"delete installation 200 without finalized",
     "delete-installation",
     200,
     kJson,
     "{}",
     {"response.finalized: required boolean missing"}},

    // --- resources ----------------------------------------------------------------------
    {"provision ok",
     "provision-resource",
     200,
     "application/json; charset=utf-8",
     resource_json(
         R"(,"secrets":[{"name":"URL","value":"x","prefix":"DB","environmentOverrides":{"preview":"p"}}])"),
     {}},
    {"provision secret value missing",
     "provision-resource",
     200,
     kJson,
     resource_json(R"(,"secrets":[{"name":"URL"}])"),
     {"response.secrets[0].value: required string missing"}},
    {"provision secrets missing",
     "provision-resource",
     201,
     kJson,
     resource_json(),
     {"response.secrets: required array missing"}},
    {"provision override not a string",
     "provision-resource",
     200,
     kJson,
     resource_json(
         R"(,"secrets":[{"name":"A","value":"b","environmentOverrides":{"production":1}}])"),
     {"response.secrets[0].environmentOverrides.production: must be a string, got number"}},
    {"provision without billing plan",
     "provision-resource",
     200,
     kJson,
     R"({"id":"r","productId":"p","name":"n","metadata":{},"status":"pending","secrets":[]})",
     {"response.billingPlan: required object missing"}},
    {"provision bad status and metadata",
     "provision-resource",
     200,
     kJson,
     std::string(R"({"id":"r","productId":"p","name":"n","metadata":[],"status":"done",)") +
         R"("billingPlan":)" + kPlan + R"(,"secrets":[]})",
     {"response.metadata: must be an object, got array",
      "response.status: \"done\" is not one of "
      "ready|pending|onboarding|suspended|resumed|uninstalled|error"}},
    {"provision text/plain",
     "provision-resource",
     200,
     "text/plain",
     resource_json(R"(,"secrets":[])"),
     {"content-type: expected application/json, got \"text/plain\""}},
    {"provision not JSON",
     "provision-resource",
     200,
     kJson,
     "<html>oops</html>",
     {"response: body is not valid JSON"}},
    {"provision array body",
     "provision-resource",
     200,
     kJson,
     "[1,2]",
     {"response: must be a JSON object, got array"}},
    {"provision 409 envelope",
     "provision-resource",
     409,
     kJson,
     R"({"error":{"code":"conflict","message":"no","user":{"message":"m","url":"u"}}})",
     {}},
    {"provision 400 with fields",
     "provision-resource",
     400,
     kJson,
     R"({"error":{"code":"validation_error","message":"bad","fields":[{"key":"region","message":"x"},{"message":"y"}]}})",
     {"response.error.fields[1].key: required string missing"}},
    {"provision 500 plain text",
     "provision-resource",
     500,
     "text/plain",
     "Internal error",
     {"status: 500 is not a documented response of provision-resource (documented: 200, 201, 400, "
      "401, 403, 404, 409)",
      "content-type: expected application/json, got \"text/plain\"",
      "response: error body is not valid JSON"}},
    {"error envelope incomplete",
     "get-resource",
     404,
     kJson,
     R"({"error":true,"code":"not_found"})",
     {"response.error: must be an object, got boolean"}},
    {"error code not a string",
     "get-resource",
     403,
     kJson,
     R"({"error":{"code":403,"message":"forbidden"}})",
     {"response.error.code: must be a string, got number"}},
    {"error empty body",
     "update-resource",
     409,
     "",
     "",
     {"response: error body is empty; expected {\"error\":{\"code\",\"message\"}}"}},
    {"get resource ok", "get-resource", 200, kJson, resource_json(), {}},
    {"get resource leaks secrets",
     "get-resource",
     200,
     kJson,
     resource_json(R"(,"secrets":[{"name":"A","value":"b"}])"),
     {"response.secrets: must not be returned here (only Provision Resource and a synchronous "
      "rotation return secrets)"}},
    {"get resource notification bad",
     "get-resource",
     200,
     kJson,
     resource_json(R"(,"notification":{"level":"error"})"),
     {"response.notification.title: required string missing"}},
    {"get resource protocol settings",
     "get-resource",
     200,
     kJson,
     resource_json(R"(,"protocolSettings":{"experimentation":{"edgeConfigSyncingEnabled":"yes"}})"),
     {"response.protocolSettings.experimentation.edgeConfigSyncingEnabled: must be a boolean, got "
      "string"}},
    {"list resources",
     "list-resources",
     200,
     kJson,
     "{\"resources\":[" + resource_json() + R"(,{"id":"x"}]})",
     {"response.resources[1].productId: required string missing",
      "response.resources[1].name: required string missing",
      "response.resources[1].metadata: required object missing",
      "response.resources[1].status: required string missing",
      "response.resources[1].billingPlan: required object missing"}},
    {"update resource 200", "update-resource", 200, kJson, resource_json(), {}},
    {"update resource 204 undocumented",
     "update-resource",
     204,
     "",
     "",
     {"status: 204 is not a documented response of update-resource (documented: 200, 400, 401, "
      "403, 404, 409)"}},
    {"delete resource 204", "delete-resource", 204, "", "", {}},
    {"delete resource 200",
     "delete-resource",
     200,
     kJson,
     "{}",
     {"status: 200 is not a documented response of delete-resource (documented: 204, 401, 403, "
      "404, 409)"}},

    // --- rotation -------------------------------------------------------------------------
    {"rotate sync",
     "rotate-secrets",
     200,
     kJson,
     R"({"sync":true,"secrets":[{"name":"A","value":"b"}],"partial":true})",
     {}},
    {"rotate async", "rotate-secrets", 202, kJson, R"({"sync":false})", {}},
    {"rotate 200 sync false",
     "rotate-secrets",
     200,
     kJson,
     R"({"sync":false,"secrets":[]})",
     {"response.sync: must be true with status 200"}},
    {"rotate 202 sync true",
     "rotate-secrets",
     202,
     kJson,
     R"({"sync":true})",
     {"response.sync: must be false with status 202"}},
    {"rotate 200 no secrets",
     "rotate-secrets",
     200,
     kJson,
     R"({"sync":true})",
     {"response.secrets: required array missing"}},

    // --- REPL -----------------------------------------------------------------------------
    {"repl blocks",
     "repl",
     200,
     kJson,
     R"([{"type":"paragraph","children":[{"type":"text","text":"ok","bold":true}]},)"
     R"({"type":"table","header":[{"type":"text","text":"a"}],"rows":[[{"type":"text","text":"1"}]]}])",
     {}},
    {"repl bad blocks",
     "repl",
     200,
     kJson,
     R"([{"type":"text","text":"top-level text"},{"type":"paragraph","children":[{"type":"text"}]},)"
     R"({"type":"table","rows":[{"type":"text","text":"1"}]},{"type":"paragraph","children":[{"type":"text","text":"x","color":1}]}])",
     {"response[0].type: \"text\" is not one of paragraph|table",
      "response[1].children[0].text: required string missing",
      "response[2].rows[0]: must be an array, got object",
      "response[3].children[0].color: must be a string, got number"}},
    {"repl object not array",
     "repl",
     200,
     kJson,
     R"({"output":"x"})",
     {"response: must be an array of blocks, got object"}},
    {"repl jsonl",
     "repl",
     200,
     "application/jsonl",
     "{\"type\":\"paragraph\",\"children\":[]}\n{\"type\":\"table\",\"rows\":[]}\n",
     {}},
    {"repl jsonl bad line",
     "repl",
     200,
     "application/jsonl",
     "{\"type\":\"paragraph\",\"children\":[]}\nnot json\n{\"type\":\"table\"}\n",
     {"response[line 2]: is not valid JSON", "response[line 3].rows: required array missing"}},
    {"repl 400 with blocks",
     "repl",
     400,
     kJson,
     R"([{"type":"paragraph","children":[{"type":"text","text":"unknown command"}]}])",
     {}},

    // --- plans ----------------------------------------------------------------------------
    {"product plans ok (unknown keys tolerated)",
     "product-plans",
     200,
     kJson,
     std::string(R"({"plans":[)") + kPlan + "]}",
     {}},
    {"plans missing",
     "installation-plans",
     200,
     kJson,
     "{}",
     {"response.plans: required array missing"}},
    {"plan field errors",
     "resource-plans",
     200,
     kJson,
     R"({"plans":[{"id":"p","type":"prepayment","name":"P","description":"d","scope":"team",)"
     R"("minimumAmount":"ten","preauthorizationAmount":"10.53","details":[{"label":""},{"value":"v"}],)"
     R"("effectiveDate":"tomorrow","quote":[{"line":"x"}]}]})",
     {"response.plans[0].scope: \"team\" is not one of installation|resource",
      "response.plans[0].preauthorizationAmount: must be a number, got string",
      "response.plans[0].minimumAmount: \"ten\" is not a decimal USD amount",
      "response.plans[0].details[0].label: must not be empty",
      "response.plans[0].details[1].label: required string missing",
      "response.plans[0].quote[0].amount: required string missing",
      "response.plans[0].effectiveDate: \"tomorrow\" is not an ISO-8601 date-time"}},

    // --- purchase -------------------------------------------------------------------------
    {"purchase ok",
     "provision-purchase",
     200,
     kJson,
     R"({"timestamp":"2024-02-28T10:00:00.000Z","balances":[{"currencyValueInCents":2500,"resourceId":"r","credit":"2,500 Tokens","nameLabel":"Tokens"}]})",
     {}},
    {"purchase bad balance",
     "provision-purchase",
     200,
     kJson,
     R"({"timestamp":"now","balances":[{"currencyValueInCents":"2500"},{"currencyValueInCents":1.5}]})",
     {"response.timestamp: \"now\" is not an ISO-8601 date-time",
      "response.balances[0].currencyValueInCents: must be a number, got string",
      "response.balances[1].currencyValueInCents: must be a whole number of cents"}},
    {"purchase 422",
     "provision-purchase",
     422,
     kJson,
     R"({"error":{"code":"unprocessable","message":"invoice not paid"}})",
     {}},

    // --- transfers ------------------------------------------------------------------------
    {"transfer create", "transfer-create", 200, kJson, R"({"providerClaimId":"c1"})", {}},
    {"transfer create missing claim",
     "transfer-create",
     200,
     kJson,
     "{}",
     {"response.providerClaimId: required string missing"}},
    {"transfer create legacy", "transfer-create-legacy", 204, "", "", {}},
    {"transfer create legacy 200",
     "transfer-create-legacy",
     200,
     kJson,
     "{}",
     {"status: 200 is not a documented response of transfer-create-legacy (documented: 204, 400, "
      "401, 403, 404, 409)"}},
    {"transfer verify", "transfer-verify", 200, kJson, R"({"valid":true})", {}},
    {"transfer verify legacy empty object", "transfer-verify", 200, kJson, "{}", {}},
    {"transfer verify not object",
     "transfer-verify",
     200,
     kJson,
     "true",
     {"response: must be a JSON object, got boolean"}},
    {"transfer accept 204", "transfer-accept", 204, "", "", {}},
    {"transfer accept 200 flows-page", "transfer-accept", 200, kJson, R"({"success":true})", {}},
    {"transfer accept 404",
     "transfer-accept",
     404,
     kJson,
     R"({"error":{"code":"not_found","message":"no claim"}})",
     {}},

    // --- browser and webhook ----------------------------------------------------------------
    {"sso redirect", "sso-callback", 302, "", "", {}},
    {"sso error page", "sso-callback", 400, "text/html", "<p>bad code</p>", {}},
    {"sso crash",
     "sso-callback",
     500,
     "text/html",
     "",
     {"status: 500 is not a documented response of sso-callback (documented: 200, 302, 303, 307, "
      "400, 401, 403, 404)"}},
    {"webhook ack", "webhook", 200, "text/plain", "ok", {}},
    {"webhook rejected signature", "webhook", 403, kJson, R"({"code":"invalid_signature"})", {}},
    {"webhook 500",
     "webhook",
     500,
     "",
     "",
     {"status: 500 is not a documented response of webhook (documented: 200, 201, 202, 204, 401, "
      "403, 404)"}},

    // --- robustness -------------------------------------------------------------------------
    {"no response", "get-resource", 0, "", "", {"status: no HTTP response was received"}},
    {"unknown endpoint",
     "frobnicate",
     200,
     kJson,
     "{}",
     {"endpoint: \"frobnicate\" is not a known Partner API endpoint"}},
    {"invalid UTF-8 in a string",
     "transfer-create",
     200,
     kJson,
     "{\"providerClaimId\":\"\xff\"}",
     {"response: body is not valid JSON"}},
};

INSTANTIATE_TEST_SUITE_P(Endpoints, ConformanceTable, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           return "case" + std::to_string(param.index);
                         });

TEST(Conformance, InstallationBillingMakesResourcePlanOptional) {
  std::string body = R"({"id":"r","productId":"p","name":"n","metadata":{},"status":"ready"})";
  EXPECT_EQ(check_partner_response("get-resource", 200, kJson, body),
            Findings{"response.billingPlan: required object missing"});
  ConformanceOptions options;
  options.installation_billing = true;
  EXPECT_TRUE(check_partner_response("get-resource", 200, kJson, body, options).empty());
  // Present, it must still be a valid plan.
  std::string bad = R"({"id":"r","productId":"p","name":"n","metadata":{},"status":"ready",)"
                    R"("billingPlan":{"id":"x"}})";
  EXPECT_EQ(check_partner_response("get-resource", 200, kJson, bad, options),
            (Findings{"response.billingPlan.type: required string missing",
                      "response.billingPlan.name: required string missing",
                      "response.billingPlan.description: required string missing"}));
}

TEST(Conformance, EveryEndpointIsKnownAndSurvivesGarbage) {
  // Whatever comes back, the checker answers with findings and never throws.
  const std::vector<std::string> garbage = {
      "",
      "null",
      "\xff\xfe\x00garbage",
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
      std::string(20000, '[') + std::string(20000, ']'),
      R"({"secrets":{"name":1},"plans":"x","resources":null,"balances":[null],"error":[]})",
      R"([{"type":"table","rows":[[1,[2],{"type":"text"}]]},17,"x"])",
      "{\"a\":1}\n\n{\"type\":\n",
  };
  ASSERT_EQ(known_endpoints().size(), 21u);
  for (const auto& endpoint : known_endpoints()) {
    for (int status : {200, 201, 202, 204, 302, 400, 404, 422, 500, 999}) {
      for (const auto& body : garbage) {
        for (const char* ct : {"application/json", "application/jsonl", "", "text/html"}) {
          EXPECT_NO_THROW(check_partner_response(endpoint, status, ct, body))
              << endpoint << " " << status;
        }
      }
    }
  }
}

TEST(Conformance, FindingsAreBoundedForHostileValues) {
  std::string huge(100000, 'x');
  auto findings = check_partner_response(
      "get-resource", 200, kJson,
      R"({"id":"r","productId":"p","name":"n","metadata":{},"status":")" + huge +
          R"(","billingPlan":{"id":"p","type":"subscription","name":"n","description":"d"}})");
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_LT(findings[0].size(), 300u);
  EXPECT_NE(findings[0].find("response.status: \"xxxx"), std::string::npos);
}

}  // namespace
}  // namespace wharf::sandbox
