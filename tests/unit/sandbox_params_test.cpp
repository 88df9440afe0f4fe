// A flow's parameters (sandbox/params.h): CLI text typed by the flow's own schema (a string
// parameter keeps the text as typed; booleans, integers, numbers, objects and arrays are
// parsed when the text is one), every problem reported at once and by name, unknown
// parameters refused. The flows' end of it (what the partner receives) is in
// sandbox_driver_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "model/api_error.h"
#include "sandbox/params.h"

namespace wharf::sandbox {
namespace {

using model::ApiError;
using model::Json;

// The keys of the fields a done() names, or {} when it passes.
std::set<std::string> problems(const Params& a) {
  try {
    a.done();
    return {};
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "validation_error");
    std::set<std::string> keys;
    for (const auto& f : e.fields) keys.insert(f.key);
    return keys;
  }
}

TEST(SandboxParams, StringParametersKeepTheCliTextAsTyped) {
  Params a({{"amount", "25.00"}, {"name", "123"}, {"reason", "123"}, {"planId", "007"}}, "purchase",
           {"amount", "name", "reason", "planId"});
  EXPECT_EQ(a.str("amount", true), "25.00");
  EXPECT_EQ(a.str("name", true), "123");
  EXPECT_EQ(a.str("reason", false), "123");
  EXPECT_EQ(a.str("planId", false), "007");
  EXPECT_TRUE(problems(a).empty());
  // Nothing was converted behind the flow's back.
  EXPECT_TRUE(a.json()["amount"].is_string());
  EXPECT_TRUE(a.json()["name"].is_string());
}

TEST(SandboxParams, QuotedTextStaysAsTypedForTheFlowsOwnCheck) {
  // `--amount '"25.00"'`: the quotes are part of the text; a decimal-pattern check refuses it.
  Params a({{"amount", "\"25.00\""}}, "purchase", {"amount"});
  auto amount = a.str("amount", true);
  ASSERT_TRUE(amount);
  EXPECT_EQ(*amount, "\"25.00\"");
  EXPECT_FALSE(model::is_decimal_string(*amount));
}

TEST(SandboxParams, StringParameterGivenAnotherJsonTypeIsRefused) {
  // A JSON caller's types are not converted: a number is no string.
  Params a({{"amount", 25}, {"name", ""}}, "purchase", {"amount", "name"});
  EXPECT_FALSE(a.str("amount", true));
  EXPECT_FALSE(a.str("name", true));  // non-empty required
  EXPECT_EQ(problems(a), (std::set<std::string>{"amount", "name"}));
}

TEST(SandboxParams, ObjectParametersParseJsonText) {
  Params a({{"metadata", "{\"a\":1}"},
            {"protocolSettings", "[1]"},
            {"other", "{not json"},
            {"typed", {{"b", 2}}}},
           "provision", {"metadata", "protocolSettings", "other", "typed"});
  const Json* m = a.object("metadata", false);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Json{{"a", 1}}));
  EXPECT_FALSE(a.object("protocolSettings", false));  // an array is no object
  EXPECT_FALSE(a.object("other", false));
  const Json* t = a.object("typed", false);
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (Json{{"b", 2}}));
  EXPECT_EQ(problems(a), (std::set<std::string>{"protocolSettings", "other"}));
}

TEST(SandboxParams, BooleansTakeTrueAndFalse) {
  Params a({{"readOnly", "true"},
            {"stream", "false"},
            {"legacy", true},
            {"webhook", "yes"},
            {"cascadeResourceDeletion", "1"}},
           "repl", {"readOnly", "stream", "legacy", "webhook", "cascadeResourceDeletion"});
  EXPECT_EQ(a.boolean("readOnly"), true);
  EXPECT_EQ(a.boolean("stream"), false);
  EXPECT_EQ(a.boolean("legacy"), true);
  EXPECT_FALSE(a.boolean("webhook"));
  EXPECT_FALSE(a.boolean("cascadeResourceDeletion"));
  EXPECT_FALSE(a.boolean("absent"));
  EXPECT_EQ(problems(a), (std::set<std::string>{"webhook", "cascadeResourceDeletion"}));
}

TEST(SandboxParams, IntegersAndNumbers) {
  Params a({{"expiresAt", "5"}, {"count", "5.5"}, {"delay", "5.5"}, {"hours", "abc"}, {"typed", 7}},
           "transfer-create", {"expiresAt", "count", "delay", "hours", "typed"});
  EXPECT_EQ(a.integer("expiresAt", false), 5);
  EXPECT_EQ(a.json()["expiresAt"], 5);
  EXPECT_FALSE(a.integer("count", false));  // 5.5 is no integer
  EXPECT_EQ(a.json()["count"], "5.5");      // left as typed for the refusal
  EXPECT_EQ(a.number("delay", false), 5.5);
  EXPECT_FALSE(a.number("hours", false));
  EXPECT_EQ(a.integer("typed", true), 7);
  EXPECT_EQ(problems(a), (std::set<std::string>{"count", "hours"}));
}

TEST(SandboxParams, StringArraysParseJsonTextAndNameBadElements) {
  Params a({{"resourceIds", "[\"db_1\",\"\",3]"}, {"ids", "db_1"}, {"scopes", "[]"}},
           "transfer-create", {"resourceIds", "ids", "scopes"});
  EXPECT_EQ(a.strings("resourceIds", true, true), (std::vector<std::string>{"db_1"}));
  EXPECT_TRUE(a.strings("ids", false, false).empty());  // plain text is no array
  EXPECT_TRUE(a.strings("scopes", false, true).empty());
  std::set<std::string> keys = problems(a);
  EXPECT_EQ(keys, (std::set<std::string>{"resourceIds[1]", "resourceIds[2]", "ids", "scopes"}));
}

TEST(SandboxParams, UnknownParametersAreRefusedByName) {
  Params a({{"installationId", "icfg_1"}, {"nmae", "x"}}, "provision", {"installationId"});
  EXPECT_EQ(a.str("installationId", true), "icfg_1");
  try {
    a.done();
    FAIL() << "expected a 400";
  } catch (const ApiError& e) {
    ASSERT_EQ(e.fields.size(), 1u);
    EXPECT_EQ(e.fields[0].key, "nmae");
    EXPECT_EQ(e.fields[0].message, "is not a parameter of provision");
    EXPECT_NE(std::string(e.what()).find("parameters of provision"), std::string::npos);
  }
}

TEST(SandboxParams, EveryProblemIsReportedAtOnce) {
  Params a({{"installationId", 5},
            {"unknown", 1},
            {"readOnly", "maybe"},
            {"expiresAt", "soon"},
            {"role", "OWNER"},
            {"metadata", "[]"}},
           "flow", {"installationId", "resourceId", "readOnly", "expiresAt", "role", "metadata"});
  a.str("installationId", true);
  a.str("resourceId", true);
  a.boolean("readOnly");
  a.integer("expiresAt", false);
  a.one_of("role", false, {"ADMIN", "USER"});
  a.object("metadata", false);
  a.add("custom", "is checked by the flow");
  EXPECT_EQ(problems(a),
            (std::set<std::string>{"installationId", "unknown", "resourceId", "readOnly",
                                   "expiresAt", "role", "metadata", "custom"}));
}

TEST(SandboxParams, NullIsNoParametersAndOtherNonObjectsAreRefused) {
  Params none(Json(), "plans", {"installationId"});
  EXPECT_FALSE(none.has("installationId"));
  EXPECT_TRUE(problems(none).empty());
  try {
    Params bad(Json::array({1}), "plans", {"installationId"});
    FAIL() << "expected a 400";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    ASSERT_EQ(e.fields.size(), 1u);
    EXPECT_EQ(e.fields[0].key, "params");
  }
}

TEST(SandboxParams, NullCountsAsAbsent) {
  Params a({{"installationId", nullptr}, {"metadata", nullptr}}, "provision",
           {"installationId", "metadata"});
  EXPECT_FALSE(a.has("installationId"));
  EXPECT_FALSE(a.str("installationId", false));
  EXPECT_FALSE(a.object("metadata", false));
  EXPECT_TRUE(problems(a).empty());
  a.str("installationId", true);
  EXPECT_EQ(problems(a), (std::set<std::string>{"installationId"}));
}

}  // namespace
}  // namespace wharf::sandbox
