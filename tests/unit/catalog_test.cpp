#include <gtest/gtest.h>

#include "model/catalog.h"
#include "model/installation.h"
#include "model/purchase.h"
#include "model/resource.h"
#include "model/transfer.h"
#include "util/clock.h"

namespace wharf::model {
namespace {

Json minimal() {
  return Json::parse(R"({
    "products": [{"id": "db", "kind": "sqlite", "name": "DB", "plans": ["free"]}],
    "plans": [{"id": "free", "type": "subscription", "name": "Free", "description": "d",
               "paymentMethodRequired": false, "pricing": {"baseFee": "0"}, "limits": {"storageBytes": 10}}]
  })");
}

std::string error_path(const Json& doc) {
  try {
    Catalog::parse(doc);
  } catch (const CatalogError& e) {
    return e.path;
  }
  return "(no error)";
}

}  // namespace

TEST(Catalog, BuiltinParsesWithThreeSqlitePlans) {
  auto cat = Catalog::parse_text(builtin_catalog_json());
  const Product* p = cat->product("sqlite-db");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, "sqlite");
  auto plans = cat->plans_of(*p);
  ASSERT_EQ(plans.size(), 3u);
  EXPECT_TRUE(plans[0]->free());
  EXPECT_FALSE(plans[1]->free());
  EXPECT_EQ(plans[2]->type, "prepayment");
  EXPECT_FALSE(cat->installation_billing());
  for (const Plan* plan : plans) {
    EXPECT_FALSE(plan->public_json.contains("pricing"));
    EXPECT_FALSE(plan->public_json.contains("limits"));
  }
}

TEST(Catalog, InvalidDocumentsNameTheOffendingPath) {
  Json doc = minimal();
  EXPECT_EQ(error_path(doc), "(no error)");

  doc = minimal();
  doc["plans"][0]["type"] = "invoice";
  EXPECT_EQ(error_path(doc), "plans[0].type");

  doc = minimal();
  doc["plans"][0].erase("description");
  EXPECT_EQ(error_path(doc), "plans[0].description");

  doc = minimal();
  doc["plans"][0]["minimumAmount"] = "ten";
  EXPECT_EQ(error_path(doc), "plans[0].minimumAmount");

  doc = minimal();
  doc["products"][0]["plans"] = {"nope"};
  EXPECT_EQ(error_path(doc), "products[0].plans[0]");

  doc = minimal();
  doc["products"][0]["kind"] = "Bad Kind!";
  EXPECT_EQ(error_path(doc), "products[0].kind");

  doc = minimal();
  doc["products"][0]["metadataSchema"] = {{"type", "object"},
                                          {"properties", {{"r", {{"pattern", "("}}}}}};
  EXPECT_EQ(error_path(doc), "products[0].metadataSchema.properties.r.pattern");

  doc = minimal();
  doc["plans"][0]["limits"] = {{"storageBytes", "big"}};
  EXPECT_EQ(error_path(doc), "plans[0].limits.storageBytes");

  doc = minimal();
  doc["plans"].push_back(doc["plans"][0]);
  EXPECT_EQ(error_path(doc), "plans[1].id");

  EXPECT_EQ(error_path(Json::parse(R"({"products": []})")), "plans");
}

TEST(Catalog, InstallationDefaultPlan) {
  Json doc = minimal();
  doc["plans"].push_back({{"id", "team"},
                          {"type", "subscription"},
                          {"name", "Team"},
                          {"description", "d"},
                          {"scope", "installation"}});
  doc["plans"].push_back({{"id", "team-free"},
                          {"type", "subscription"},
                          {"name", "TF"},
                          {"description", "d"},
                          {"scope", "installation"},
                          {"paymentMethodRequired", false}});
  auto cat = Catalog::parse(doc);
  ASSERT_TRUE(cat->installation_billing());
  EXPECT_EQ(cat->default_installation_plan()->id, "team-free");  // first free one

  doc["plans"][1]["default"] = true;
  EXPECT_EQ(Catalog::parse(doc)->default_installation_plan()->id, "team");

  doc["plans"][0]["default"] = true;  // resource-scope plan cannot be the default
  EXPECT_EQ(error_path(doc), "plans[0].default");
}

TEST(Catalog, PlanMatchFiltersOnMetadata) {
  Json doc = minimal();
  doc["plans"][0]["match"] = {{"region", {"iad1", "sfo1"}}};
  auto cat = Catalog::parse(doc);
  const Plan* p = cat->plan("free");
  EXPECT_TRUE(p->matches(Json::object()));
  EXPECT_TRUE(p->matches({{"region", "sfo1"}}));
  EXPECT_FALSE(p->matches({{"region", "fra1"}}));
  EXPECT_FALSE(p->public_json.contains("match"));
}

TEST(MetadataSchema, ValidatesEveryKeyword) {
  Checker check;
  auto schema = MetadataSchema::compile(Json::parse(R"({
    "type": "object",
    "properties": {
      "region": {"type": "string", "enum": ["iad1", "sfo1"], "ui:control": "select"},
      "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
      "size": {"type": "integer", "minimum": 1, "maximum": 10},
      "ha": {"type": "boolean"}
    },
    "required": ["region"]
  })"),
                                        "schema", check);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(schema->validate({{"region", "iad1"}, {"name", "abc"}, {"size", 3}}, false).empty());
  auto errors = schema->validate(
      {{"region", "fra1"}, {"name", "ABCDEFG"}, {"size", 11.5}, {"ha", "yes"}, {"extra", 1}},
      false);
  std::vector<std::string> keys;
  for (const auto& e : errors) keys.push_back(e.key);
  // Properties are visited in key order (nlohmann::json objects are sorted).
  EXPECT_EQ(keys, (std::vector<std::string>{"ha", "name", "name", "region", "size"}));
  EXPECT_EQ(schema->validate(Json::object(), false).at(0).key, "region");
  EXPECT_TRUE(schema->validate(Json::object(), /*partial=*/true).empty());
  EXPECT_EQ(schema->validate({{"size", 0}}, true).at(0).message, "must be >= 1");
}

// Found by the fuzzers (tests/fuzz/regressions): numbers outside int64_t were cast to it,
// which is undefined behaviour.
TEST(MetadataSchema, HugeNumbersAreNotIntegers) {
  EXPECT_TRUE(is_kind(Json(5.0), Kind::kInteger));
  EXPECT_TRUE(is_kind(Json(-9.0e18), Kind::kInteger));
  EXPECT_FALSE(is_kind(Json(1e300), Kind::kInteger));
  EXPECT_FALSE(is_kind(Json(-1e300), Kind::kInteger));
  EXPECT_FALSE(is_kind(Json(9223372036854775808.0), Kind::kInteger));
  EXPECT_FALSE(is_kind(Json(2.5), Kind::kInteger));

  Checker check;
  auto schema = MetadataSchema::compile(Json::parse(R"({"properties": {
    "size": {"type": "integer"}, "big": {"type": "number", "maximum": 1e300, "minimum": 1e299}}})"),
                                        "schema", check);
  ASSERT_TRUE(check.ok());
  auto errors = schema->validate({{"size", 1e300}, {"big", 1.0}}, false);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].key, "big");
  EXPECT_EQ(errors[0].message, "must be >= 1e+299");
  EXPECT_EQ(errors[1].message, "must be of type integer");

  Checker lengths;
  MetadataSchema::compile(Json::parse(R"({"properties": {
    "s": {"type": "string", "minLength": -1.0, "maxLength": 1e19}}})"),
                          "schema", lengths);
  std::vector<std::string> keys;
  for (const auto& e : lengths.errors()) keys.push_back(e.key + " " + e.message);
  EXPECT_EQ(keys, (std::vector<std::string>{"schema.properties.s.minLength must not be negative",
                                            "schema.properties.s.maxLength must be an integer"}));
}

// A long value used to overflow the stack inside std::regex (tests/fuzz/regressions).
TEST(MetadataSchema, LongValuesAreNotMatchedAgainstAPattern) {
  Checker check;
  auto schema = MetadataSchema::compile(
      Json::parse(R"({"properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}})"),
      "schema", check);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(schema->validate({{"name", std::string(4096, 'a')}}, false).empty());
  auto errors = schema->validate({{"name", std::string(200000, 'a')}}, false);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "must be at most 4096 bytes to be matched against ^[a-z]+$");
}

TEST(TransferModel, BothShapesAndTheirErrors) {
  const int64_t now = 1750000000000;
  auto req = TransferRequest::parse(
      Json::parse(R"({"resourceIds": ["a", "b", "a"], "expiresAt": 1750000600000})"), now);
  EXPECT_EQ(req.resource_ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(req.expires_ms, 1750000600000);
  auto legacy = TransferRequest::parse_legacy(
      Json::parse(R"({"claimId": "c", "resourceIds": ["a"], "expiration": 1750000600000.5})"), now);
  EXPECT_EQ(legacy.claim_id, "c");
  EXPECT_EQ(legacy.expires_ms, 1750000600000);

  auto keys_of = [&](const char* body, bool legacy_shape) {
    try {
      legacy_shape ? TransferRequest::parse_legacy(Json::parse(body), now)
                   : TransferRequest::parse(Json::parse(body), now);
    } catch (const ApiError& e) {
      std::string out;
      for (const auto& f : e.fields) out += (out.empty() ? "" : "; ") + f.key + " " + f.message;
      return out;
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(keys_of(R"({"resourceIds": [], "expiresAt": 1e300})", false),
            "resourceIds must list at least one resource; expiresAt must be a positive epoch "
            "time in milliseconds");
  EXPECT_EQ(keys_of(R"({"resourceIds": ["a", ""], "expiration": 0})", true),
            "resourceIds[1] must be a resource id; expiration must be a positive epoch time in "
            "milliseconds");
  EXPECT_EQ(keys_of(R"({"resourceIds": ["a"], "expiresAt": 1000})", false),
            "expiresAt is in the past");
}

TEST(PurchaseModel, InvoiceIdMustBeAVercelId) {
  EXPECT_EQ(ProvisionPurchaseRequest::parse({{"invoiceId", "inv_1-A"}}).invoice_id, "inv_1-A");
  EXPECT_THROW(ProvisionPurchaseRequest::parse({{"invoiceId", "../x"}}), ApiError);
  EXPECT_THROW(ProvisionPurchaseRequest::parse({{"invoiceId", ""}}), ApiError);
  EXPECT_THROW(ProvisionPurchaseRequest::parse(Json::object()), ApiError);
}

TEST(InstallationModel, UpsertParsingReportsEveryField) {
  try {
    UpsertInstallationRequest::parse(Json::parse(R"({
      "scopes": "read", "acceptedPolicies": {"toc": "not a date"},
      "credentials": {"access_token": ""},
      "account": {"url": 5, "contact": {"name": "x"}}
    })"));
    FAIL() << "expected a validation error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "validation_error");
    std::vector<std::string> keys;
    for (const auto& f : e.fields) keys.push_back(f.key);
    EXPECT_EQ(keys, (std::vector<std::string>{"scopes", "acceptedPolicies.toc",
                                              "credentials.access_token", "credentials.token_type",
                                              "account.url", "account.contact.email"}));
  }
  auto ok = UpsertInstallationRequest::parse(Json::parse(R"({
    "scopes": ["read"], "acceptedPolicies": {}, "credentials": {"access_token": "t", "token_type": "Bearer"},
    "account": {"url": "https://vercel.com/x", "contact": null}, "somethingNew": true
  })"));
  EXPECT_EQ(ok.access_token, "t");
  EXPECT_TRUE(ok.account);
}

TEST(InstallationModel, BodiesMustBeJsonObjects) {
  EXPECT_THROW(parse_json_object_body("text/plain", "{}"), ApiError);
  EXPECT_THROW(parse_json_object_body("application/json", "{"), ApiError);
  EXPECT_THROW(parse_json_object_body("application/json", "[]"), ApiError);
  EXPECT_NO_THROW(parse_json_object_body("Application/JSON; charset=utf-8", "{}"));
  EXPECT_FALSE(DeleteInstallationRequest::parse("", "").cascade_resource_deletion);
  EXPECT_TRUE(
      DeleteInstallationRequest::parse("application/json", R"({"cascadeResourceDeletion":true})")
          .cascade_resource_deletion);
  EXPECT_THROW(DeleteInstallationRequest::parse("application/json", R"({"reason":1})"), ApiError);
  EXPECT_TRUE(is_decimal_string("4.39"));
  EXPECT_FALSE(is_decimal_string("4."));
  EXPECT_FALSE(is_decimal_string("-1"));
}

TEST(Catalog, KindsAndTheirMetricsAreCheckedAgainstTheServersKinds) {
  const std::map<std::string, std::vector<std::string>> kinds = {
      {"sqlite", {"queries", "rowsRead", "rowsWritten", "storageBytes"}}};
  auto check = [&kinds](const Json& doc) -> std::string {
    try {
      Catalog::parse(doc)->check_kinds(kinds);
    } catch (const CatalogError& e) {
      return std::string(e.what());
    }
    return "(no error)";
  };
  Json doc = minimal();
  EXPECT_EQ(check(doc), "(no error)");
  // A kind name the server does not have: refused naming the product and what there is.
  doc["products"][0]["kind"] = "redis";
  EXPECT_EQ(check(doc),
            "products[0].kind: product 'db' has kind 'redis', which this server does not have "
            "(available: sqlite)");
  // A price measured by a metric the product's kind does not record.
  doc = minimal();
  doc["plans"][0]["pricing"]["metrics"] = {
      {"transactions", {{"unit", "tx"}, {"unitPrice", "1.00"}, {"per", 1000}}}};
  std::string error = check(doc);
  EXPECT_EQ(error.rfind("plans[0].pricing.metrics.transactions: measures usage metric "
                        "'transactions', which product 'db' (kind sqlite) does not record",
                        0),
            0u)
      << error;
  doc["plans"][0]["pricing"]["metrics"]["transactions"]["metric"] = "rowsWritten";
  EXPECT_EQ(check(doc), "(no error)");
}

TEST(Catalog, MaxResourcesIsAPositiveIntegerKeptFromVercel) {
  Json doc = minimal();
  doc["plans"][0]["maxResources"] = 2;
  auto cat = Catalog::parse(doc);
  const Plan* plan = cat->plan("free");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->max_resources, 2);
  EXPECT_EQ(plan->name, "Free");
  // Historical field, no longer in Vercel's BillingPlan: enforced here, not sent.
  EXPECT_FALSE(plan->public_json.contains("maxResources"));
  EXPECT_FALSE(Catalog::parse(minimal())->plan("free")->max_resources);

  for (Json bad : {Json(0), Json(-1), Json(1.5), Json("3"), Json(true)}) {
    doc["plans"][0]["maxResources"] = bad;
    EXPECT_EQ(error_path(doc), "plans[0].maxResources") << bad.dump();
  }
  doc = minimal();
  doc["plans"][0]["maxProducts"] = 2;  // the name before §9 item 28's rename
  EXPECT_EQ(error_path(doc), "plans[0].maxProducts");
}

TEST(Catalog, EffectiveDateIsParsedAndSentAsWritten) {
  Json doc = minimal();
  doc["plans"][0]["effectiveDate"] = "2027-03-01T00:00:00Z";
  auto cat = Catalog::parse(doc);
  const Plan* plan = cat->plan("free");
  int64_t at = 0;
  ASSERT_TRUE(util::parse_iso8601("2027-03-01T00:00:00Z", &at));
  EXPECT_EQ(plan->effective_ms, at);
  EXPECT_EQ(plan->public_json["effectiveDate"], "2027-03-01T00:00:00Z");
  EXPECT_FALSE(Catalog::parse(minimal())->plan("free")->effective_ms);
  doc["plans"][0]["effectiveDate"] = "next tuesday";
  EXPECT_EQ(error_path(doc), "plans[0].effectiveDate");
}

Json paid_with_discount(Json discount) {
  Json doc = minimal();
  doc["plans"][0]["paymentMethodRequired"] = true;
  doc["plans"][0]["discount"] = std::move(discount);
  return doc;
}

TEST(Catalog, DiscountIsValidatedAndNeverSentWithThePlan) {
  auto cat = Catalog::parse(paid_with_discount({{"name", "Launch"},
                                                {"details", "20% off"},
                                                {"percent", 12.5},
                                                {"periods", 3},
                                                {"ends", "2027-06-01T00:00:00Z"}}));
  const Plan* plan = cat->plan("free");
  ASSERT_TRUE(plan->discount);
  EXPECT_EQ(plan->discount->name, "Launch");
  EXPECT_EQ(plan->discount->details, "20% off");
  EXPECT_EQ(plan->discount->percent_bp, 1250);
  EXPECT_EQ(plan->discount->periods, 3);
  EXPECT_TRUE(plan->discount->ends_ms);
  EXPECT_FALSE(plan->public_json.contains("discount"));
  auto fixed = Catalog::parse(paid_with_discount({{"name", "Ten off"}, {"amount", "10.00"}}));
  EXPECT_EQ(fixed->plan("free")->discount->amount, *util::Money::parse("10"));
  EXPECT_EQ(fixed->plan("free")->discount->percent_bp, 0);

  struct Bad {
    Json discount;
    std::string path;
  };
  for (const auto& [discount, path] : std::vector<Bad>{
           {Json{{"percent", 10}}, "plans[0].discount.name"},
           {Json{{"name", "x"}}, "plans[0].discount"},  // neither percent nor amount
           {Json{{"name", "x"}, {"percent", 10}, {"amount", "1.00"}}, "plans[0].discount"},
           {Json{{"name", "x"}, {"percent", 0}}, "plans[0].discount.percent"},
           {Json{{"name", "x"}, {"percent", 101}}, "plans[0].discount.percent"},
           {Json{{"name", "x"}, {"percent", 10.125}}, "plans[0].discount.percent"},
           {Json{{"name", "x"}, {"percent", "10"}}, "plans[0].discount.percent"},
           {Json{{"name", "x"}, {"amount", "0"}}, "plans[0].discount.amount"},
           {Json{{"name", "x"}, {"amount", "-1.00"}}, "plans[0].discount.amount"},
           {Json{{"name", "x"}, {"amount", "ten"}}, "plans[0].discount.amount"},
           {Json{{"name", "x"}, {"amount", "1.00"}, {"periods", 0}}, "plans[0].discount.periods"},
           {Json{{"name", "x"}, {"amount", "1.00"}, {"ends", "soon"}}, "plans[0].discount.ends"},
           {Json{{"name", "x"}, {"amount", "1.00"}, {"percentOff", 3}},
            "plans[0].discount.percentOff"},
       })
    EXPECT_EQ(error_path(paid_with_discount(discount)), path) << discount.dump();
  // A free plan is never invoiced: a discount on it is a mistake.
  Json doc = minimal();
  doc["plans"][0]["discount"] = {{"name", "x"}, {"percent", 10}};
  EXPECT_EQ(error_path(doc), "plans[0].discount");
}

TEST(Catalog, DiscountAmountIsRoundedToCentsAndCappedAtTheCharge) {
  using util::Money;
  PlanDiscount pct;
  pct.percent_bp = 1250;  // 12.5%
  EXPECT_EQ(pct.amount_off(*Money::parse("10.00")).str_cents(), "1.25");
  EXPECT_EQ(pct.amount_off(*Money::parse("0.05")).str_cents(), "0.01");  // 0.00625 → 0.01
  EXPECT_EQ(pct.amount_off(*Money::parse("0.03")).str_cents(), "0.00");  // 0.00375 → 0.00
  pct.percent_bp = 10000;
  EXPECT_EQ(pct.amount_off(*Money::parse("7.31")).str_cents(), "7.31");
  PlanDiscount fixed;
  fixed.amount = *Money::parse("10.00");
  EXPECT_EQ(fixed.amount_off(*Money::parse("25.00")).str_cents(), "10.00");
  EXPECT_EQ(fixed.amount_off(*Money::parse("4.20")).str_cents(), "4.20");  // never more
  EXPECT_EQ(fixed.amount_off(Money()), Money());
  EXPECT_EQ(fixed.amount_off(-*Money::parse("1.00")), Money());
}

TEST(Catalog, DiscountPeriodsCountFromTheMonthThePlanWasTaken) {
  auto at = [](const char* iso) {
    int64_t ms = 0;
    EXPECT_TRUE(util::parse_iso8601(iso, &ms));
    return ms;
  };
  PlanDiscount d;
  d.periods = 2;
  const int64_t took = at("2027-01-20T12:00:00Z");
  EXPECT_TRUE(d.applies(took, at("2027-01-01T00:00:00Z")));   // the month it took the plan
  EXPECT_TRUE(d.applies(took, at("2027-02-01T00:00:00Z")));   // the second
  EXPECT_FALSE(d.applies(took, at("2027-03-01T00:00:00Z")));  // over
  EXPECT_FALSE(d.applies(took, at("2028-03-01T00:00:00Z")));
  d.periods.reset();
  EXPECT_TRUE(d.applies(took, at("2030-03-01T00:00:00Z")));  // every period
  d.ends_ms = at("2027-02-15T00:00:00Z");
  EXPECT_TRUE(d.applies(took, at("2027-02-01T00:00:00Z")));  // began before the offer ended
  EXPECT_FALSE(d.applies(took, at("2027-03-01T00:00:00Z")));
}

TEST(ResourceModel, OldBillingPlanFieldNamesThePlan) {
  // billingPlan was the request field's name before billingPlanId (§9 item 27).
  Json body = {{"productId", "db"}, {"name", "n"}, {"metadata", Json::object()}};
  body["billingPlan"] = "free";
  EXPECT_EQ(ProvisionResourceRequest::parse(body).billing_plan_id, "free");
  body["billingPlan"] = {{"id", "free"}, {"name", "Free"}};  // the Resource.billingPlan shape
  EXPECT_EQ(ProvisionResourceRequest::parse(body).billing_plan_id, "free");
  body["billingPlanId"] = "free";  // both, agreeing
  EXPECT_EQ(ProvisionResourceRequest::parse(body).billing_plan_id, "free");

  auto field_of = [](const auto& parse) {
    try {
      parse();
    } catch (const ApiError& e) {
      return e.fields.empty() ? std::string("(no field)") : e.fields[0].key;
    }
    return std::string("(no error)");
  };
  body["billingPlanId"] = "pro";  // both, disagreeing
  EXPECT_EQ(field_of([&] { ProvisionResourceRequest::parse(body); }), "billingPlan");
  body.erase("billingPlanId");
  body["billingPlan"] = 7;
  EXPECT_EQ(field_of([&] { ProvisionResourceRequest::parse(body); }), "billingPlan");
  body.erase("billingPlan");
  EXPECT_EQ(field_of([&] { ProvisionResourceRequest::parse(body); }), "billingPlanId");

  EXPECT_EQ(UpdateResourceRequest::parse({{"billingPlan", "pro"}}).billing_plan_id, "pro");
  EXPECT_FALSE(UpdateResourceRequest::parse({{"billingPlan", nullptr}}).billing_plan_id);
  EXPECT_EQ(field_of([&] { UpdateResourceRequest::parse({{"billingPlan", ""}}); }), "billingPlan");
  EXPECT_EQ(UpdateInstallationRequest::parse({{"billingPlan", "team"}}).billing_plan_id, "team");
  // Every documented status parses; what may be set is the service's decision.
  for (auto st : {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"})
    EXPECT_EQ(UpdateResourceRequest::parse({{"status", st}}).status, st);
  EXPECT_EQ(field_of([&] { UpdateResourceRequest::parse({{"status", "paused"}}); }), "status");
}

TEST(ApiErrorModel, WithUserAddsTheUserFacingPart) {
  ApiError e = ApiError::conflict("dev text").with_user("User text.", "https://help.example/x");
  EXPECT_EQ(e.status, 409);
  EXPECT_EQ(e.message, "dev text");
  EXPECT_EQ(e.user_message, "User text.");
  EXPECT_EQ(e.user_url, "https://help.example/x");
  ApiError f = ApiError::unprocessable("dev");
  f.with_user("Only a message.");
  EXPECT_EQ(f.user_message, "Only a message.");
  EXPECT_FALSE(f.user_url);
}

}  // namespace wharf::model
