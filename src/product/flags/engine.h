// The feature-flags product's rule engine: validates a flag definition (JSON) into a compiled
// Flag and evaluates it against an evaluation context with OpenFeature OFREP semantics.
//
// Pure: no I/O, no clock, no global state. A compiled Flag is immutable; evaluate() takes it
// by const reference and may run on many threads at once. Everything costly (regular
// expressions, SemVer values, rollout ranges, variant look-ups) is done once by compile().
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/json_check.h"

namespace re2 {
class RE2;
}

namespace wharf::product::flags {

enum class FlagType { kBoolean, kString, kNumber, kObject };
const char* type_name(FlagType t);  // "boolean", "string", "number", "object"

enum class Op {
  kEquals,
  kNotEquals,
  kIn,
  kNotIn,
  kGt,
  kGte,
  kLt,
  kLte,
  kSemverEq,
  kSemverGt,
  kSemverGte,
  kSemverLt,
  kSemverLte,
  kMatches,
  kStartsWith,
  kEndsWith,
  kContains,
};

// A SemVer 2.0.0 version as views into a string that outlives it. Numeric parts have no
// leading zeros (so longer means greater); `prerelease` is the dotted text after '-' ("" if
// none); build metadata is dropped (it has no part in precedence).
struct SemverView {
  std::string_view major, minor, patch, prerelease;
};
// Parses "1.2.3", "v1.2.3-rc.1+build.5"; nullopt if `s` is not SemVer 2.0.0.
std::optional<SemverView> parse_semver(std::string_view s);
// SemVer 2.0.0 §11 precedence: <0, 0 or >0.
int compare_semver(const SemverView& a, const SemverView& b);

struct Condition {
  std::string attribute;  // a top-level key of the evaluation context
  Op op = Op::kEquals;
  // equals/not_equals/in/not_in: the scalar values, split by kind. `strings` is sorted.
  std::vector<std::string> strings;
  std::vector<nlohmann::json> numbers;
  bool has_true = false, has_false = false;
  nlohmann::json number;                    // gt/gte/lt/lte
  std::shared_ptr<const std::string> text;  // semver_* (the value), starts_with/ends_with/contains
  SemverView semver;                        // semver_*: views into *text
  std::shared_ptr<const re2::RE2> regex;    // matches
};

struct Rollout {
  std::string bucket_by = "targetingKey";
  struct Slot {
    uint32_t end;    // the variant covers buckets [previous slot's end, end)
    size_t variant;  // index into Flag::variants
  };
  std::vector<Slot> slots;  // in definition order; zero-weight variants have empty ranges
};

struct Rule {
  std::optional<std::string> name;
  std::vector<Condition> conditions;  // all must match
  std::optional<size_t> variant;      // exactly one of variant and rollout
  std::optional<Rollout> rollout;
};

struct Variant {
  std::string name;
  nlohmann::json value;
};

struct Flag {
  std::string key;
  FlagType type = FlagType::kBoolean;
  std::string name;
  std::string description;
  bool enabled = true;
  bool archived = false;
  std::vector<Variant> variants;  // in the definition's (sorted) member order
  size_t default_variant = 0;
  std::vector<Rule> rules;
  std::optional<Rollout> rollout;
  // The definition as stored and returned: defaults filled in (name, description, enabled,
  // archived, rules; a rollout's bucketBy), rollout only if present.
  nlohmann::json definition;
};

// Validates `def`; on success returns the compiled flag; on failure records every problem as
// a field error (paths relative to `parent`, "" for top level) and returns nullopt.
std::optional<Flag> compile(const nlohmann::json& def, model::Checker& check,
                            std::string_view parent = "");

struct Result {
  nlohmann::json value;       // null on error
  std::string variant;        // "" on error
  std::string reason;         // STATIC, DEFAULT, TARGETING_MATCH, SPLIT, DISABLED, ERROR
  std::string error_code;     // "", TARGETING_KEY_MISSING, INVALID_CONTEXT
  std::string error_details;  // for humans
  bool ok() const { return error_code.empty(); }
};

// Evaluates `flag` for `context` (a JSON object; attributes are its top-level members).
Result evaluate(const Flag& flag, const nlohmann::json& context);

// The rollout bucket of an entity: the first 8 bytes (big-endian) of
// SHA-256(flag_key + "\x1f" + entity_key), mod 100000. Stable across processes and releases.
uint32_t bucket_of(std::string_view flag_key, std::string_view entity_key);
constexpr uint32_t kBuckets = 100000;

}  // namespace wharf::product::flags
