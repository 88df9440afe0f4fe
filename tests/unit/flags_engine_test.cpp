#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "product/flags/engine.h"

namespace wharf::product::flags {
namespace {

using nlohmann::json;

// A boolean flag with variants on/off (default off) and the given extra members.
json boolean_flag(json extra = json::object()) {
  json def = {{"key", "new-checkout"},
              {"type", "boolean"},
              {"variants", {{"on", true}, {"off", false}}},
              {"defaultVariant", "off"}};
  for (auto it = extra.begin(); it != extra.end(); ++it) def[it.key()] = it.value();
  return def;
}

Flag compile_ok(const json& def) {
  model::Checker check;
  auto flag = compile(def, check);
  std::string errors;
  for (const auto& e : check.errors()) errors += e.key + ": " + e.message + "\n";
  EXPECT_TRUE(flag.has_value()) << errors;
  EXPECT_TRUE(check.ok()) << errors;
  if (!flag) throw std::runtime_error("flag did not compile: " + errors);
  return std::move(*flag);
}

// Every field error of a definition that must not compile: path -> message.
std::map<std::string, std::string> errors_of(const json& def, std::string_view parent = "") {
  model::Checker check;
  auto flag = compile(def, check, parent);
  EXPECT_FALSE(flag.has_value());
  std::map<std::string, std::string> out;
  for (const auto& e : check.errors()) out[e.key] = e.message;
  return out;
}

std::vector<std::string> keys_of(const std::map<std::string, std::string>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.first);
  return out;
}

// Compiles a flag whose one rule has `condition` and serves "on"; true if `context` matches.
bool matches(const json& condition, const json& context) {
  Flag flag = compile_ok(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({condition})}, {"variant", "on"}}})}}));
  Result r = evaluate(flag, context);
  EXPECT_TRUE(r.ok()) << r.error_code;
  EXPECT_TRUE(r.reason == "TARGETING_MATCH" || r.reason == "DEFAULT") << r.reason;
  return r.reason == "TARGETING_MATCH";
}

json cond(std::string_view attribute, std::string_view op, json value) {
  return {{"attribute", attribute},
          {"operator", op},
          {(op == "in" || op == "not_in") ? "values" : "value", std::move(value)}};
}

// ---- operators --------------------------------------------------------------------------

TEST(FlagsOperators, EqualsComparesByKind) {
  EXPECT_TRUE(matches(cond("country", "equals", "NL"), {{"country", "NL"}}));
  EXPECT_FALSE(matches(cond("country", "equals", "NL"), {{"country", "nl"}}));
  EXPECT_TRUE(matches(cond("age", "equals", 1), {{"age", 1.0}}));
  EXPECT_TRUE(matches(cond("age", "equals", 1.0), {{"age", 1}}));
  EXPECT_TRUE(matches(cond("age", "equals", -3), {{"age", -3}}));
  EXPECT_FALSE(matches(cond("age", "equals", 1), {{"age", 2}}));
  EXPECT_TRUE(matches(cond("beta", "equals", true), {{"beta", true}}));
  EXPECT_FALSE(matches(cond("beta", "equals", true), {{"beta", false}}));
  // Different JSON kinds never equal.
  EXPECT_FALSE(matches(cond("age", "equals", 1), {{"age", "1"}}));
  EXPECT_FALSE(matches(cond("beta", "equals", true), {{"beta", 1}}));
  EXPECT_FALSE(matches(cond("country", "equals", "NL"), {{"country", json::array({"NL"})}}));
  // Missing or null: no match.
  EXPECT_FALSE(matches(cond("country", "equals", "NL"), json::object()));
  EXPECT_FALSE(matches(cond("country", "equals", "NL"), {{"country", nullptr}}));
}

TEST(FlagsOperators, NotEqualsNeedsTheAttribute) {
  EXPECT_TRUE(matches(cond("country", "not_equals", "NL"), {{"country", "DE"}}));
  EXPECT_FALSE(matches(cond("country", "not_equals", "NL"), {{"country", "NL"}}));
  EXPECT_TRUE(matches(cond("country", "not_equals", "1"), {{"country", 1}}));
  EXPECT_FALSE(matches(cond("n", "not_equals", 2), {{"n", 2.0}}));
  EXPECT_FALSE(matches(cond("country", "not_equals", "NL"), json::object()));
  EXPECT_FALSE(matches(cond("country", "not_equals", "NL"), {{"country", nullptr}}));
}

TEST(FlagsOperators, InAndNotIn) {
  const json values = {"NL", "DE", 7, true};
  EXPECT_TRUE(matches(cond("country", "in", values), {{"country", "DE"}}));
  EXPECT_TRUE(matches(cond("country", "in", values), {{"country", 7.0}}));
  EXPECT_TRUE(matches(cond("country", "in", values), {{"country", true}}));
  EXPECT_FALSE(matches(cond("country", "in", values), {{"country", false}}));
  EXPECT_FALSE(matches(cond("country", "in", values), {{"country", "FR"}}));
  EXPECT_FALSE(matches(cond("country", "in", values), {{"country", "7"}}));
  EXPECT_FALSE(matches(cond("country", "in", values), {{"country", json::object()}}));
  EXPECT_FALSE(matches(cond("country", "in", values), json::object()));

  EXPECT_TRUE(matches(cond("country", "not_in", values), {{"country", "FR"}}));
  EXPECT_FALSE(matches(cond("country", "not_in", values), {{"country", "NL"}}));
  EXPECT_FALSE(matches(cond("country", "not_in", values), json::object()));
  EXPECT_FALSE(matches(cond("country", "not_in", values), {{"country", nullptr}}));
}

TEST(FlagsOperators, NumericComparisons) {
  EXPECT_TRUE(matches(cond("age", "gt", 18), {{"age", 19}}));
  EXPECT_FALSE(matches(cond("age", "gt", 18), {{"age", 18}}));
  EXPECT_TRUE(matches(cond("age", "gte", 18), {{"age", 18.0}}));
  EXPECT_FALSE(matches(cond("age", "gte", 18), {{"age", 17.5}}));
  EXPECT_TRUE(matches(cond("age", "lt", 18.5), {{"age", 18}}));
  EXPECT_FALSE(matches(cond("age", "lt", 18), {{"age", 18}}));
  EXPECT_TRUE(matches(cond("age", "lte", 18), {{"age", 18}}));
  EXPECT_FALSE(matches(cond("age", "lte", -1), {{"age", 0}}));
  EXPECT_TRUE(matches(cond("n", "gt", -1), {{"n", json(uint64_t{18446744073709551615u})}}));
  EXPECT_FALSE(matches(cond("n", "lt", -1), {{"n", json(uint64_t{18446744073709551615u})}}));
  // Strings are not coerced; missing never matches.
  EXPECT_FALSE(matches(cond("age", "gt", 18), {{"age", "19"}}));
  EXPECT_FALSE(matches(cond("age", "gt", 18), {{"age", true}}));
  EXPECT_FALSE(matches(cond("age", "lt", 18), json::object()));
}

TEST(FlagsOperators, SemverComparisons) {
  EXPECT_TRUE(matches(cond("v", "semver_eq", "1.2.3"), {{"v", "v1.2.3"}}));
  EXPECT_TRUE(matches(cond("v", "semver_eq", "v1.2.3+build.1"), {{"v", "1.2.3+other"}}));
  EXPECT_FALSE(matches(cond("v", "semver_eq", "1.2.3"), {{"v", "1.2.3-rc.1"}}));
  EXPECT_TRUE(matches(cond("v", "semver_gt", "1.9.0"), {{"v", "1.10.0"}}));
  EXPECT_FALSE(matches(cond("v", "semver_gt", "1.10.0"), {{"v", "1.9.99"}}));
  EXPECT_TRUE(matches(cond("v", "semver_gte", "2.0.0"), {{"v", "2.0.0"}}));
  EXPECT_FALSE(matches(cond("v", "semver_gte", "2.0.0"), {{"v", "2.0.0-rc.1"}}));
  EXPECT_TRUE(matches(cond("v", "semver_lt", "2.0.0"), {{"v", "2.0.0-rc.1"}}));
  EXPECT_FALSE(matches(cond("v", "semver_lt", "2.0.0"), {{"v", "2.0.0"}}));
  EXPECT_TRUE(matches(cond("v", "semver_lte", "2.0.0"), {{"v", "2.0.0"}}));
  EXPECT_FALSE(matches(cond("v", "semver_lte", "2.0.0"), {{"v", "2.0.1"}}));
  // Not a string, not SemVer, missing: no match, whatever the operator.
  EXPECT_FALSE(matches(cond("v", "semver_lt", "2.0.0"), {{"v", 1}}));
  EXPECT_FALSE(matches(cond("v", "semver_lt", "2.0.0"), {{"v", "1.2"}}));
  EXPECT_FALSE(matches(cond("v", "semver_lt", "2.0.0"), {{"v", "01.2.3"}}));
  EXPECT_FALSE(matches(cond("v", "semver_lt", "2.0.0"), json::object()));
}

TEST(FlagsOperators, MatchesIsAPartialRe2Match) {
  EXPECT_TRUE(matches(cond("email", "matches", "@example\\.com$"), {{"email", "a@example.com"}}));
  EXPECT_FALSE(matches(cond("email", "matches", "@example\\.com$"), {{"email", "a@example.org"}}));
  EXPECT_TRUE(matches(cond("email", "matches", "amp"), {{"email", "example"}}));
  EXPECT_FALSE(matches(cond("email", "matches", "^amp"), {{"email", "example"}}));
  EXPECT_FALSE(matches(cond("n", "matches", "1"), {{"n", 1}}));
  EXPECT_FALSE(matches(cond("email", "matches", ".*"), json::object()));
}

TEST(FlagsOperators, StringOperators) {
  EXPECT_TRUE(matches(cond("email", "starts_with", "adm"), {{"email", "admin@x"}}));
  EXPECT_FALSE(matches(cond("email", "starts_with", "adm"), {{"email", "sysadm"}}));
  EXPECT_TRUE(matches(cond("email", "ends_with", "@x.io"), {{"email", "a@x.io"}}));
  EXPECT_FALSE(matches(cond("email", "ends_with", "@x.io"), {{"email", "a@x.io.evil"}}));
  EXPECT_TRUE(matches(cond("email", "contains", "@x."), {{"email", "a@x.io"}}));
  EXPECT_FALSE(matches(cond("email", "contains", "@y."), {{"email", "a@x.io"}}));
  EXPECT_TRUE(matches(cond("email", "contains", ""), {{"email", ""}}));
  EXPECT_FALSE(matches(cond("n", "starts_with", "1"), {{"n", 12}}));
  EXPECT_FALSE(matches(cond("n", "contains", "1"), {{"n", json::array({"1"})}}));
  EXPECT_FALSE(matches(cond("email", "ends_with", ""), json::object()));
}

TEST(FlagsOperators, TargetingKeyIsAnOrdinaryAttribute) {
  EXPECT_TRUE(matches(cond("targetingKey", "in", {"u1", "u2"}), {{"targetingKey", "u2"}}));
  EXPECT_FALSE(matches(cond("targetingKey", "in", {"u1", "u2"}), {{"targetingKey", "u3"}}));
}

TEST(FlagsOperators, AllConditionsMustMatch) {
  Flag flag = compile_ok(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("country", "equals", "NL"),
                                                           cond("age", "gte", 18)})},
                               {"variant", "on"}}})}}));
  EXPECT_EQ(evaluate(flag, {{"country", "NL"}, {"age", 20}}).variant, "on");
  EXPECT_EQ(evaluate(flag, {{"country", "NL"}, {"age", 17}}).variant, "off");
  EXPECT_EQ(evaluate(flag, {{"country", "NL"}}).variant, "off");
}

// ---- semver -----------------------------------------------------------------------------

TEST(FlagsSemver, Parses) {
  for (const char* ok :
       {"0.0.0", "1.2.3", "v1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
        "1.0.0+21AF26D3----117B344092BD", "1.0.0-alpha+001"})
    EXPECT_TRUE(parse_semver(ok).has_value()) << ok;
  for (const char* bad :
       {"",       "v",      "1",        "1.2",        "1.2.3.4", "01.2.3",     "1.02.3",
        "1.2.03", "1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3+",  "1.2.3+a..b", "1.2.3-a_b",
        "V1.2.3", " 1.2.3", "1.2.3 ",   "-1.2.3",     "1.2.-3",  "a.b.c",      "1.2.3-+"})
    EXPECT_FALSE(parse_semver(bad).has_value()) << bad;
}

TEST(FlagsSemver, PrecedenceFollowsTheSpecExample) {
  const std::vector<std::string> ordered = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                            "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                            "1.0.0-rc.1",  "1.0.0",         "1.0.1",
                                            "1.1.0",       "1.10.0",        "2.0.0",
                                            "10.0.0"};
  for (size_t i = 0; i < ordered.size(); ++i) {
    for (size_t j = 0; j < ordered.size(); ++j) {
      auto a = parse_semver(ordered[i]);
      auto b = parse_semver(ordered[j]);
      ASSERT_TRUE(a && b);
      const int want = i < j ? -1 : (i > j ? 1 : 0);
      EXPECT_EQ(compare_semver(*a, *b), want) << ordered[i] << " vs " << ordered[j];
    }
  }
  // Build metadata is ignored; numeric identifiers compare numerically, also past 64 bits.
  EXPECT_EQ(compare_semver(*parse_semver("1.0.0+a"), *parse_semver("1.0.0+b")), 0);
  EXPECT_EQ(compare_semver(*parse_semver("1.0.0-2"), *parse_semver("1.0.0-10")), -1);
  EXPECT_EQ(compare_semver(*parse_semver("1.0.0-99"), *parse_semver("1.0.0-a")), -1);
  EXPECT_EQ(compare_semver(*parse_semver("99999999999999999999.0.0"),
                           *parse_semver("100000000000000000000.0.0")),
            -1);
}

// ---- evaluation -------------------------------------------------------------------------

TEST(FlagsEvaluate, StaticWhenNoRulesAndNoRollout) {
  Flag flag = compile_ok(boolean_flag());
  Result r = evaluate(flag, json::object());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.value, false);
  EXPECT_EQ(r.variant, "off");
  EXPECT_EQ(r.reason, "STATIC");
}

TEST(FlagsEvaluate, DefaultWhenNoRuleMatched) {
  Flag flag = compile_ok(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("country", "equals", "NL")})},
                               {"variant", "on"}}})}}));
  Result r = evaluate(flag, {{"country", "DE"}});
  EXPECT_EQ(r.reason, "DEFAULT");
  EXPECT_EQ(r.variant, "off");
  EXPECT_EQ(r.value, false);
  r = evaluate(flag, {{"country", "NL"}});
  EXPECT_EQ(r.reason, "TARGETING_MATCH");
  EXPECT_EQ(r.variant, "on");
  EXPECT_EQ(r.value, true);
}

TEST(FlagsEvaluate, FirstMatchingRuleWins) {
  json def = {
      {"key", "banner"},
      {"type", "string"},
      {"variants", {{"a", "first"}, {"b", "second"}, {"c", "fallback"}}},
      {"defaultVariant", "c"},
      {"rules", json::array({
                    {{"name", "dutch"},
                     {"conditions", json::array({cond("country", "equals", "NL")})},
                     {"variant", "a"}},
                    {{"conditions", json::array({cond("age", "gte", 18)})}, {"variant", "b"}},
                })}};
  Flag flag = compile_ok(def);
  EXPECT_EQ(evaluate(flag, {{"country", "NL"}, {"age", 30}}).value, "first");
  EXPECT_EQ(evaluate(flag, {{"country", "DE"}, {"age", 30}}).value, "second");
  EXPECT_EQ(evaluate(flag, {{"country", "DE"}, {"age", 3}}).value, "fallback");
  EXPECT_EQ(evaluate(flag, {{"country", "DE"}, {"age", 3}}).reason, "DEFAULT");
}

TEST(FlagsEvaluate, DisabledAndArchivedServeTheDefault) {
  json rules = json::array(
      {{{"conditions", json::array({cond("country", "equals", "NL")})}, {"variant", "on"}}});
  for (const json& extra :
       {json{{"enabled", false}, {"rules", rules}}, json{{"archived", true}, {"rules", rules}}}) {
    Flag flag = compile_ok(boolean_flag(extra));
    Result r = evaluate(flag, {{"country", "NL"}});
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.reason, "DISABLED");
    EXPECT_EQ(r.variant, "off");
    EXPECT_EQ(r.value, false);
  }
}

TEST(FlagsEvaluate, SplitInRuleAndFallthrough) {
  json rollout = {{"variants", json::array({{{"variant", "on"}, {"weight", 1}}})}};
  Flag flag = compile_ok(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("plan", "equals", "pro")})},
                               {"rollout", rollout}}})},
       {"rollout",
        {{"bucketBy", "userId"},
         {"variants", json::array({{{"variant", "off"}, {"weight", 1}}})}}}}));
  Result r = evaluate(flag, {{"plan", "pro"}, {"targetingKey", "u1"}});
  EXPECT_EQ(r.reason, "SPLIT");
  EXPECT_EQ(r.variant, "on");
  r = evaluate(flag, {{"plan", "free"}, {"userId", 42}});
  EXPECT_EQ(r.reason, "SPLIT");
  EXPECT_EQ(r.variant, "off");
}

TEST(FlagsEvaluate, TargetingKeyMissing) {
  json rollout = {{"variants", json::array({{{"variant", "on"}, {"weight", 1}},
                                            {{"variant", "off"}, {"weight", 1}}})}};
  // Fallthrough rollout.
  Flag flag = compile_ok(boolean_flag({{"rollout", rollout}}));
  for (const json& ctx :
       {json::object(), json{{"targetingKey", nullptr}}, json{{"targetingKey", 1.5}},
        json{{"targetingKey", true}}, json{{"targetingKey", json::object()}}}) {
    Result r = evaluate(flag, ctx);
    EXPECT_EQ(r.error_code, "TARGETING_KEY_MISSING") << ctx;
    EXPECT_EQ(r.reason, "ERROR");
    EXPECT_TRUE(r.value.is_null());
    EXPECT_EQ(r.variant, "");
    EXPECT_NE(r.error_details.find("targetingKey"), std::string::npos) << r.error_details;
    EXPECT_FALSE(r.ok());
  }
  // A matching rule's rollout, by a custom attribute.
  json custom = rollout;
  custom["bucketBy"] = "orgId";
  Flag by_org = compile_ok(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("plan", "equals", "pro")})},
                               {"rollout", custom}}})}}));
  Result r = evaluate(by_org, {{"plan", "pro"}, {"targetingKey", "u1"}});
  EXPECT_EQ(r.error_code, "TARGETING_KEY_MISSING");
  EXPECT_NE(r.error_details.find("orgId"), std::string::npos) << r.error_details;
  EXPECT_EQ(evaluate(by_org, {{"plan", "free"}}).reason, "DEFAULT");
  EXPECT_EQ(evaluate(by_org, {{"plan", "pro"}, {"orgId", "o1"}}).reason, "SPLIT");
}

TEST(FlagsEvaluate, InvalidContext) {
  Flag flag = compile_ok(boolean_flag());
  for (const json& ctx : {json(nullptr), json("x"), json::array(), json(1)}) {
    Result r = evaluate(flag, ctx);
    EXPECT_EQ(r.error_code, "INVALID_CONTEXT");
    EXPECT_EQ(r.reason, "ERROR");
    EXPECT_TRUE(r.value.is_null());
  }
}

TEST(FlagsEvaluate, CopiesEvaluateAlikeAndThreadsShareAFlag) {
  Flag original = compile_ok(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("email", "matches", "@corp\\.io$"),
                                                           cond("v", "semver_gte", "2.0.0-rc.1")})},
                               {"variant", "on"}}})}}));
  Flag copy = original;
  Flag moved = std::move(original);
  const json hit = {{"email", "a@corp.io"}, {"v", "2.0.0"}};
  EXPECT_EQ(evaluate(copy, hit).variant, "on");
  EXPECT_EQ(evaluate(moved, hit).variant, "on");

  std::vector<std::thread> threads;
  std::vector<int> hits(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&copy, &hits, &hit, t] {
      for (int i = 0; i < 2000; ++i)
        if (evaluate(copy, hit).variant == "on" &&
            evaluate(copy, {{"email", "a@corp.io"}, {"v", "1.9.0"}}).variant == "off")
          ++hits[static_cast<size_t>(t)];
    });
  for (auto& th : threads) th.join();
  for (int h : hits) EXPECT_EQ(h, 2000);
}

// ---- rollouts ---------------------------------------------------------------------------

TEST(FlagsRollout, BucketIsPinned) {
  // SHA-256(flagKey "\x1f" entityKey), first 8 bytes big-endian, mod 100000. These values
  // must never change: they decide which variant every user of every flag gets.
  EXPECT_EQ(bucket_of("new-checkout", "user-1"), 54379u);
  EXPECT_EQ(bucket_of("new-checkout", "user-2"), 61557u);
  EXPECT_EQ(bucket_of("new-checkout", "42"), 41116u);
  EXPECT_EQ(bucket_of("pricing.v2", "alice@example.com"), 43126u);
  EXPECT_EQ(bucket_of("new-checkout", ""), 18940u);
}

json split_flag(const std::vector<std::pair<std::string, int>>& weights) {
  json variants = json::object();
  json entries = json::array();
  for (const auto& w : weights) {
    variants[w.first] = w.first;
    entries.push_back({{"variant", w.first}, {"weight", w.second}});
  }
  return {{"key", "exp-1"},
          {"type", "string"},
          {"variants", variants},
          {"defaultVariant", weights.front().first},
          {"rollout", {{"variants", entries}}}};
}

TEST(FlagsRollout, SameKeySameVariant) {
  Flag a = compile_ok(split_flag({{"x", 1}, {"y", 1}, {"z", 1}}));
  Flag b = compile_ok(split_flag({{"x", 1}, {"y", 1}, {"z", 1}}));
  for (int i = 0; i < 200; ++i) {
    const json ctx = {{"targetingKey", "user-" + std::to_string(i)}};
    const std::string first = evaluate(a, ctx).variant;
    EXPECT_EQ(evaluate(a, ctx).variant, first);
    EXPECT_EQ(evaluate(b, ctx).variant, first);
  }
  // An integer key buckets as its decimal text.
  EXPECT_EQ(evaluate(a, {{"targetingKey", 42}}).variant,
            evaluate(a, {{"targetingKey", "42"}}).variant);
  EXPECT_EQ(evaluate(a, {{"targetingKey", -7}}).variant,
            evaluate(a, {{"targetingKey", "-7"}}).variant);
}

TEST(FlagsRollout, RangesFollowTheWeights) {
  // Buckets [0, 25000) -> x, [25000, 100000) -> y: check against bucket_of directly.
  Flag flag = compile_ok(split_flag({{"x", 1}, {"zero", 0}, {"y", 3}}));
  for (int i = 0; i < 500; ++i) {
    const std::string key = "k" + std::to_string(i);
    const std::string want = bucket_of("exp-1", key) < 25000 ? "x" : "y";
    EXPECT_EQ(evaluate(flag, {{"targetingKey", key}}).variant, want) << key;
  }
}

void expect_distribution(const std::vector<std::pair<std::string, int>>& weights) {
  Flag flag = compile_ok(split_flag(weights));
  std::map<std::string, int> counts;
  constexpr int kKeys = 100000;
  for (int i = 0; i < kKeys; ++i)
    ++counts[evaluate(flag, {{"targetingKey", "user-" + std::to_string(i)}}).variant];
  int total = 0;
  for (const auto& w : weights) total += w.second;
  for (const auto& w : weights) {
    const double want = static_cast<double>(w.second) / total;
    const double got = static_cast<double>(counts[w.first]) / kKeys;
    EXPECT_NEAR(got, want, 0.02) << w.first;
  }
}

TEST(FlagsRollout, DistributionFiftyFifty) {
  expect_distribution({{"a", 50}, {"b", 50}});
}

TEST(FlagsRollout, DistributionTenThirtySixty) {
  expect_distribution({{"a", 10}, {"b", 30}, {"c", 60}});
}

TEST(FlagsRollout, RaisingAWeightKeepsEarlierUsers) {
  Flag before = compile_ok(split_flag({{"a", 10}, {"b", 90}}));
  Flag after = compile_ok(split_flag({{"a", 20}, {"b", 90}}));
  Flag shifted = compile_ok(split_flag({{"a", 30}, {"b", 70}}));
  int in_a = 0;
  for (int i = 0; i < 5000; ++i) {
    const json ctx = {{"targetingKey", "user-" + std::to_string(i)}};
    if (evaluate(before, ctx).variant != "a") continue;
    ++in_a;
    EXPECT_EQ(evaluate(after, ctx).variant, "a");
    EXPECT_EQ(evaluate(shifted, ctx).variant, "a");
  }
  EXPECT_GT(in_a, 300);
  // Same total: raising the middle variant keeps the first and second variants' users.
  Flag three = compile_ok(split_flag({{"a", 10}, {"b", 40}, {"c", 50}}));
  Flag three_after = compile_ok(split_flag({{"a", 10}, {"b", 60}, {"c", 30}}));
  for (int i = 0; i < 5000; ++i) {
    const json ctx = {{"targetingKey", "user-" + std::to_string(i)}};
    const std::string v = evaluate(three, ctx).variant;
    if (v == "c") continue;
    EXPECT_EQ(evaluate(three_after, ctx).variant, v);
  }
}

// ---- compile ----------------------------------------------------------------------------

TEST(FlagsCompile, CanonicalDefinitionFillsDefaults) {
  Flag flag = compile_ok(boolean_flag());
  EXPECT_EQ(flag.definition, json::parse(R"({
    "key": "new-checkout", "type": "boolean", "name": "new-checkout", "description": "",
    "enabled": true, "archived": false, "variants": {"on": true, "off": false},
    "defaultVariant": "off", "rules": []})"));
  EXPECT_EQ(flag.type, FlagType::kBoolean);
  EXPECT_EQ(flag.name, "new-checkout");

  json full = boolean_flag(
      {{"name", "New checkout"},
       {"description", "d"},
       {"enabled", false},
       {"rules",
        json::array(
            {{{"conditions", json::array({cond("c", "in", {"NL"})})},
              {"rollout", {{"variants", json::array({{{"variant", "on"}, {"weight", 5.0}}})}}}}})},
       {"rollout",
        {{"bucketBy", "orgId"},
         {"variants", json::array({{{"variant", "off"}, {"weight", 1}}})}}}});
  Flag f2 = compile_ok(full);
  const json& d = f2.definition;
  EXPECT_EQ(d["name"], "New checkout");
  EXPECT_EQ(d["enabled"], false);
  EXPECT_EQ(d["archived"], false);
  EXPECT_EQ(d["rules"][0]["rollout"], json::parse(R"({"bucketBy": "targetingKey",
    "variants": [{"variant": "on", "weight": 5}]})"));
  EXPECT_EQ(d["rules"][0]["conditions"][0], cond("c", "in", {"NL"}));
  EXPECT_FALSE(d["rules"][0].contains("name"));
  EXPECT_EQ(d["rollout"]["bucketBy"], "orgId");
  // The canonical form compiles to itself.
  EXPECT_EQ(compile_ok(d).definition, d);
}

TEST(FlagsCompile, ReportsEveryProblemWithItsPath) {
  json def = {
      {"key", "-bad"},
      {"type", "boolean"},
      {"variants", {{"on", true}, {"off", "no"}}},
      {"defaultVariant", "maybe"},
      {"color", "red"},
      {"rules", json::array({
                    {{"conditions", json::array({{{"attribute", "country"}, {"operator", "like"}},
                                                 cond("age", "gt", "18")})},
                     {"variant", "on"}},
                    {{"conditions", json::array({cond("v", "semver_gt", "1.2")})},
                     {"rollout", {{"variants", json::array({{{"variant", "x"}, {"weight", 1}}})}}}},
                })},
  };
  auto errors = errors_of(def);
  EXPECT_EQ(
      keys_of(errors),
      (std::vector<std::string>{"color", "defaultVariant", "key", "rules[0].conditions[0].operator",
                                "rules[0].conditions[1].value", "rules[1].conditions[0].value",
                                "rules[1].rollout.variants[0].variant", "variants.off"}));
  EXPECT_EQ(errors["color"], "unknown member");
  EXPECT_EQ(errors["defaultVariant"], "variant \"maybe\" is not one of the flag's variants");
  EXPECT_EQ(errors["rules[1].rollout.variants[0].variant"],
            "variant \"x\" is not one of the flag's variants");
  EXPECT_EQ(errors["rules[0].conditions[0].operator"],
            "must be one of equals, not_equals, in, not_in, gt, gte, lt, lte, semver_eq, "
            "semver_gt, semver_gte, semver_lt, semver_lte, matches, starts_with, ends_with, "
            "contains");
  EXPECT_EQ(errors["rules[0].conditions[1].value"], "must be a number");
  EXPECT_NE(errors["rules[1].conditions[0].value"].find("SemVer"), std::string::npos);
  EXPECT_NE(errors["variants.off"].find("boolean"), std::string::npos);
}

TEST(FlagsCompile, PathsAreRelativeToTheParent) {
  auto errors = errors_of(boolean_flag({{"defaultVariant", "x"}}), "flags[3]");
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"flags[3].defaultVariant"});
  errors = errors_of(json::array(), "flag");
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"flag"});
}

TEST(FlagsCompile, RequiredMembers) {
  auto errors = errors_of(json::object());
  EXPECT_EQ(keys_of(errors),
            (std::vector<std::string>{"defaultVariant", "key", "type", "variants"}));
  EXPECT_EQ(errors["key"], "is required");
}

TEST(FlagsCompile, BadRegex) {
  auto errors = errors_of(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("email", "matches", "a(b")})},
                               {"variant", "on"}}})}}));
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"rules[0].conditions[0].value"});
  EXPECT_NE(errors["rules[0].conditions[0].value"].find("missing )"), std::string::npos)
      << errors["rules[0].conditions[0].value"];
  // Lookaround is not RE2; an oversized program is refused at write time too.
  errors_of(boolean_flag(
      {{"rules", json::array({{{"conditions", json::array({cond("e", "matches", "(?=a)")})},
                               {"variant", "on"}}})}}));
  errors = errors_of(boolean_flag(
      {{"rules",
        json::array({{{"conditions", json::array({cond("e", "matches", "((a{100}){100}){100}")})},
                      {"variant", "on"}}})}}));
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"rules[0].conditions[0].value"});
}

TEST(FlagsCompile, VariantValuesMatchTheType) {
  auto errors = errors_of({{"key", "k"},
                           {"type", "number"},
                           {"variants", {{"a", 1}, {"b", "2"}, {"c", 2.5}, {"d", nullptr}}},
                           {"defaultVariant", "a"}});
  EXPECT_EQ(keys_of(errors), (std::vector<std::string>{"variants.b", "variants.d"}));
  errors = errors_of({{"key", "k"},
                      {"type", "object"},
                      {"variants", {{"a", json::object()}, {"b", json::array()}, {"c", "x"}}},
                      {"defaultVariant", "a"}});
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"variants.c"});
  errors = errors_of({{"key", "k"},
                      {"type", "string"},
                      {"variants", {{"a", std::string(4097, 'x')}, {"b", true}}},
                      {"defaultVariant", "a"}});
  EXPECT_EQ(keys_of(errors), (std::vector<std::string>{"variants.a", "variants.b"}));
  errors = errors_of({{"key", "k"},
                      {"type", "object"},
                      {"variants", {{"big", {{"s", std::string(16 * 1024, 'x')}}}}},
                      {"defaultVariant", "big"}});
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"variants.big"});
  errors = errors_of({{"key", "k"},
                      {"type", "color"},
                      {"variants", {{"bad name", 1}}},
                      {"defaultVariant", "bad name"}});
  EXPECT_EQ(keys_of(errors), (std::vector<std::string>{"type", "variants.bad name"}));
  errors = errors_of(
      {{"key", "k"}, {"type", "boolean"}, {"variants", json::object()}, {"defaultVariant", "a"}});
  EXPECT_EQ(keys_of(errors), (std::vector<std::string>{"defaultVariant", "variants"}));
}

TEST(FlagsCompile, UnknownMembersEverywhere) {
  json c = cond("country", "equals", "NL");
  c["negate"] = true;
  auto errors = errors_of(boolean_flag(
      {{"rules",
        json::array({{{"conditions", json::array({c})}, {"variant", "on"}, {"priority", 1}}})},
       {"rollout",
        {{"seed", 1},
         {"variants", json::array({{{"variant", "on"}, {"weight", 1}, {"w", 2}}})}}}}));
  EXPECT_EQ(keys_of(errors),
            (std::vector<std::string>{"rollout.seed", "rollout.variants[0].w",
                                      "rules[0].conditions[0].negate", "rules[0].priority"}));
  for (const auto& [k, v] : errors) EXPECT_EQ(v, "unknown member") << k;
}

TEST(FlagsCompile, ValueAndValuesFollowTheOperator) {
  json a = {{"attribute", "c"}, {"operator", "equals"}, {"values", {"NL"}}};
  json b = {{"attribute", "c"}, {"operator", "in"}, {"value", "NL"}};
  json c = {{"attribute", "c"}, {"operator", "in"}, {"values", json::array()}};
  json d = {{"attribute", "c"}, {"operator", "in"}, {"values", {"NL", nullptr}}};
  json e = {{"attribute", ""}, {"operator", "equals"}, {"value", json::object()}};
  auto errors = errors_of(boolean_flag(
      {{"rules",
        json::array({{{"conditions", json::array({a, b, c, d, e})}, {"variant", "on"}}})}}));
  EXPECT_EQ(keys_of(errors), (std::vector<std::string>{
                                 "rules[0].conditions[0].value",
                                 "rules[0].conditions[0].values",
                                 "rules[0].conditions[1].value",
                                 "rules[0].conditions[1].values",
                                 "rules[0].conditions[2].values",
                                 "rules[0].conditions[3].values[1]",
                                 "rules[0].conditions[4].attribute",
                                 "rules[0].conditions[4].value",
                             }));
  EXPECT_EQ(errors["rules[0].conditions[0].value"], "is required");
  EXPECT_NE(errors["rules[0].conditions[0].values"].find("not allowed"), std::string::npos);
}

TEST(FlagsCompile, RolloutWeights) {
  auto rollout = [](json entries) { return boolean_flag({{"rollout", {{"variants", entries}}}}); };
  auto errors = errors_of(rollout(
      json::array({{{"variant", "on"}, {"weight", 0}}, {{"variant", "off"}, {"weight", 0}}})));
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"rollout.variants"});
  EXPECT_EQ(errors["rollout.variants"], "weights must add up to more than 0");

  errors = errors_of(rollout(json::array({{{"variant", "on"}, {"weight", -1}},
                                          {{"variant", "off"}, {"weight", 1000001}},
                                          {{"variant", "on"}, {"weight", 1.5}},
                                          {{"weight", 1}}})));
  EXPECT_EQ(keys_of(errors),
            (std::vector<std::string>{"rollout.variants[0].weight", "rollout.variants[1].weight",
                                      "rollout.variants[2].variant", "rollout.variants[2].weight",
                                      "rollout.variants[3].variant"}));
  EXPECT_NE(errors["rollout.variants[2].variant"].find("more than once"), std::string::npos);

  errors = errors_of(rollout(json::array()));
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"rollout.variants"});
  compile_ok(rollout(json::array(
      {{{"variant", "on"}, {"weight", 1000000}}, {{"variant", "off"}, {"weight", 0}}})));
}

TEST(FlagsCompile, RuleShape) {
  json c = json::array({cond("country", "equals", "NL")});
  json rollout = {{"variants", json::array({{{"variant", "on"}, {"weight", 1}}})}};
  auto errors = errors_of(boolean_flag(
      {{"rules", json::array({{{"conditions", c}},
                              {{"conditions", c}, {"variant", "on"}, {"rollout", rollout}},
                              {{"conditions", json::array()}, {"variant", "on"}},
                              {{"variant", "on"}},
                              "rule",
                              {{"conditions", c}, {"variant", "nope"}},
                              {{"conditions", c}, {"variant", "on"}, {"name", 5}}})}}));
  EXPECT_EQ(keys_of(errors),
            (std::vector<std::string>{"rules[0]", "rules[1]", "rules[2].conditions",
                                      "rules[3].conditions", "rules[4]", "rules[5].variant",
                                      "rules[6].name"}));
  json many = json::array();
  for (int i = 0; i < 101; ++i) many.push_back({{"conditions", c}, {"variant", "on"}});
  errors = errors_of(boolean_flag({{"rules", many}}));
  EXPECT_EQ(keys_of(errors), std::vector<std::string>{"rules"});
}

TEST(FlagsCompile, KeyAndTextLimits) {
  for (const char* bad : {"", "-x", "a b", "é", "a/b"})
    EXPECT_EQ(keys_of(errors_of(boolean_flag({{"key", bad}}))), std::vector<std::string>{"key"})
        << bad;
  compile_ok(boolean_flag({{"key", std::string(128, 'a')}}));
  EXPECT_EQ(keys_of(errors_of(boolean_flag({{"key", std::string(129, 'a')}}))),
            std::vector<std::string>{"key"});
  compile_ok(boolean_flag({{"key", "A0_.:-z"}}));
  compile_ok(boolean_flag({{"name", std::string(1024, 'n')}}));
  EXPECT_EQ(keys_of(errors_of(boolean_flag(
                {{"name", std::string(1025, 'n')}, {"description", 1}, {"enabled", "yes"}}))),
            (std::vector<std::string>{"description", "enabled", "name"}));
}

}  // namespace
}  // namespace wharf::product::flags
