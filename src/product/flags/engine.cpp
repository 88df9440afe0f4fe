#include "product/flags/engine.h"

#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>

#include "util/crypto.h"
#include "util/utf8.h"

namespace wharf::product::flags {
namespace {

using model::Checker;
using model::Json;
using model::Kind;

constexpr size_t kMaxVariants = 100;
constexpr size_t kMaxRules = 100;
constexpr size_t kMaxConditions = 20;
constexpr size_t kMaxInValues = 1000;
constexpr size_t kMaxRolloutVariants = 100;
constexpr size_t kMaxKeyChars = 128;
constexpr size_t kMaxVariantNameChars = 64;
constexpr size_t kMaxTextChars = 1024;  // name, description
constexpr size_t kMaxRuleNameChars = 256;
constexpr size_t kMaxAttributeChars = 256;
constexpr size_t kMaxRegexChars = 1024;
constexpr size_t kMaxStringValueBytes = 4096;
constexpr size_t kMaxObjectValueBytes = 16 * 1024;
constexpr int64_t kMaxWeight = 1000000;
constexpr int64_t kRegexMaxMem = int64_t{1} << 20;

struct OpName {
  std::string_view name;
  Op op;
};
constexpr OpName kOps[] = {
    {"equals", Op::kEquals},
    {"not_equals", Op::kNotEquals},
    {"in", Op::kIn},
    {"not_in", Op::kNotIn},
    {"gt", Op::kGt},
    {"gte", Op::kGte},
    {"lt", Op::kLt},
    {"lte", Op::kLte},
    {"semver_eq", Op::kSemverEq},
    {"semver_gt", Op::kSemverGt},
    {"semver_gte", Op::kSemverGte},
    {"semver_lt", Op::kSemverLt},
    {"semver_lte", Op::kSemverLte},
    {"matches", Op::kMatches},
    {"starts_with", Op::kStartsWith},
    {"ends_with", Op::kEndsWith},
    {"contains", Op::kContains},
};

std::string_view op_name(Op op) {
  for (const auto& o : kOps)
    if (o.op == op) return o.name;
  return "?";
}

bool takes_values(Op op) {
  return op == Op::kIn || op == Op::kNotIn;
}

bool is_alnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_name_char(char c) {
  return is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '-';
}

bool valid_flag_key(std::string_view s) {
  if (s.empty() || s.size() > kMaxKeyChars || !is_alnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(), is_name_char);
}

bool valid_variant_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxVariantNameChars) return false;
  return std::all_of(s.begin(), s.end(), is_name_char);
}

// A string as a JSON string literal, for messages.
std::string json_quoted(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool is_scalar(const Json& v) {
  return v.is_string() || v.is_number() || v.is_boolean();
}

// Adds a "unknown member" error for every member of `obj` not in `allowed`.
void reject_unknown(const Json& obj, const std::string& path,
                    std::initializer_list<std::string_view> allowed, Checker& check) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& k = it.key();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      check.add(Checker::join(path, k), "unknown member");
  }
}

// An object with only the `allowed` members: false (and an error at `path`) when `v` is not an
// object; an "unknown member" error for each member not allowed.
bool object_with(const Json& v, const std::string& path,
                 std::initializer_list<std::string_view> allowed, Checker& check) {
  if (!v.is_object()) {
    check.add(path, "must be an object");
    return false;
  }
  reject_unknown(v, path, allowed, check);
  return true;
}

// A member that counts as present (JSON null counts as missing, as in Checker::get).
bool has(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it != obj.end() && !it->is_null();
}

// ---- numbers ----------------------------------------------------------------------------

// Three-way numeric comparison of two JSON numbers. Integers compare exactly (signed and
// unsigned alike); as soon as one side is a float both compare as doubles (1 == 1.0).
int compare_numbers(const Json& a, const Json& b) {
  if (a.is_number_float() || b.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  const bool a_neg = !a.is_number_unsigned() && a.get<int64_t>() < 0;
  const bool b_neg = !b.is_number_unsigned() && b.get<int64_t>() < 0;
  if (a_neg != b_neg) return a_neg ? -1 : 1;
  if (a_neg) {
    const int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  const uint64_t x = a.get<uint64_t>(), y = b.get<uint64_t>();
  return x < y ? -1 : (x > y ? 1 : 0);
}

// ---- semver -----------------------------------------------------------------------------

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "0" or digits without a leading zero.
bool numeric_identifier(std::string_view s) {
  return all_digits(s) && (s.size() == 1 || s[0] != '0');
}

// Dot-separated non-empty identifiers of [0-9A-Za-z-]; in a prerelease, numeric identifiers
// have no leading zeros.
bool valid_identifiers(std::string_view s, bool prerelease) {
  while (true) {
    const size_t dot = s.find('.');
    const std::string_view id = s.substr(0, dot);
    if (id.empty()) return false;
    for (char c : id)
      if (!is_alnum(c) && c != '-') return false;
    if (prerelease && all_digits(id) && !numeric_identifier(id)) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

// Numeric identifiers without leading zeros: the longer is greater, else lexicographic.
int compare_numeric(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

int compare_identifier(std::string_view a, std::string_view b) {
  const bool an = all_digits(a), bn = all_digits(b);
  if (an && bn) return compare_numeric(a, b);
  if (an != bn) return an ? -1 : 1;  // numeric identifiers have lower precedence
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

// ---- bucketing --------------------------------------------------------------------------

// The entity key a rollout buckets by: a string as is, an integer as its decimal text.
// `buf` holds the text of an integer. False if the attribute is missing or of another kind.
bool entity_key(const Json& context, const std::string& attribute, char (&buf)[24],
                std::string_view& out) {
  auto it = context.find(attribute);
  if (it == context.end()) return false;
  if (it->is_string()) {
    out = it->get_ref<const std::string&>();
    return true;
  }
  if (!it->is_number_integer()) return false;
  std::to_chars_result r = it->is_number_unsigned()
                               ? std::to_chars(buf, buf + sizeof buf, it->get<uint64_t>())
                               : std::to_chars(buf, buf + sizeof buf, it->get<int64_t>());
  out = std::string_view(buf, static_cast<size_t>(r.ptr - buf));
  return true;
}

// ---- compile ----------------------------------------------------------------------------

struct Ctx {
  Checker& check;
  const std::vector<Variant>* variants;  // null when the definition's variants are unusable
};

std::optional<size_t> find_variant(const std::vector<Variant>& variants, std::string_view name) {
  for (size_t i = 0; i < variants.size(); ++i)
    if (variants[i].name == name) return i;
  return std::nullopt;
}

// A variant reference at `path`: a string naming one of the flag's variants.
std::optional<size_t> variant_ref(const Json& obj, std::string_view key, const std::string& path,
                                  Ctx& ctx) {
  auto name = ctx.check.string(obj, key, path, /*required=*/true);
  if (!name || !ctx.variants) return std::nullopt;
  auto i = find_variant(*ctx.variants, *name);
  if (!i)
    ctx.check.add(Checker::join(path, key),
                  "variant " + json_quoted(*name) + " is not one of the flag's variants");
  return i;
}

std::optional<std::string> bounded_string(const Json& obj, std::string_view key,
                                          const std::string& path, size_t max_chars, Checker& check,
                                          bool non_empty = false) {
  auto s = check.string(obj, key, path, /*required=*/false, non_empty);
  if (s && util::utf8_length(*s) > max_chars) {
    check.add(Checker::join(path, key),
              "must be at most " + std::to_string(max_chars) + " characters");
    return std::nullopt;
  }
  return s;
}

void add_scalar(Condition& c, const Json& v) {
  if (v.is_string())
    c.strings.push_back(v.get<std::string>());
  else if (v.is_boolean())
    (v.get<bool>() ? c.has_true : c.has_false) = true;
  else
    c.numbers.push_back(v);
}

std::optional<Condition> compile_condition(const Json& cj, const std::string& path, Ctx& ctx) {
  Checker& check = ctx.check;
  if (!cj.is_object()) {
    check.add(path, "must be an object");
    return std::nullopt;
  }
  const size_t before = check.errors().size();
  Condition c;

  if (auto attr = check.string(cj, "attribute", path, /*required=*/true, /*non_empty=*/true)) {
    if (util::utf8_length(*attr) > kMaxAttributeChars)
      check.add(Checker::join(path, "attribute"),
                "must be at most " + std::to_string(kMaxAttributeChars) + " characters");
    c.attribute = std::move(*attr);
  }

  std::optional<Op> op;
  if (const Json* oj = check.get(cj, "operator", path, Kind::kString, /*required=*/true)) {
    const auto& name = oj->get_ref<const std::string&>();
    for (const auto& o : kOps)
      if (o.name == name) op = o.op;
    if (!op) {
      std::string msg = "must be one of";
      bool first = true;
      for (const auto& o : kOps) {
        msg += first ? " " : ", ";
        msg += o.name;
        first = false;
      }
      check.add(Checker::join(path, "operator"), msg);
    }
  }

  for (auto it = cj.begin(); it != cj.end(); ++it) {
    const std::string& k = it.key();
    if (k == "attribute" || k == "operator") continue;
    if (k == "value" || k == "values") {
      if (!op) continue;  // which one belongs depends on the operator
      const bool wants_values = takes_values(*op);
      if ((k == "values") != wants_values)
        check.add(Checker::join(path, k), "is not allowed with operator " +
                                              std::string(op_name(*op)) + " (use " +
                                              (wants_values ? "values" : "value") + ")");
      continue;
    }
    check.add(Checker::join(path, k), "unknown member");
  }

  if (op) {
    c.op = *op;
    const std::string vpath = Checker::join(path, takes_values(*op) ? "values" : "value");
    auto vit = cj.find(takes_values(*op) ? "values" : "value");
    const Json* v = vit == cj.end() ? nullptr : &*vit;
    if (!v) {
      check.add(vpath, "is required");
    } else {
      switch (*op) {
        case Op::kEquals:
        case Op::kNotEquals:
          if (!is_scalar(*v))
            check.add(vpath, "must be a string, number or boolean");
          else
            add_scalar(c, *v);
          break;
        case Op::kIn:
        case Op::kNotIn:
          if (!v->is_array()) {
            check.add(vpath, "must be an array");
          } else if (v->empty() || v->size() > kMaxInValues) {
            check.add(vpath, "must have 1 to " + std::to_string(kMaxInValues) + " entries");
          } else {
            for (size_t i = 0; i < v->size(); ++i) {
              if (!is_scalar((*v)[i]))
                check.add(Checker::index(vpath, i), "must be a string, number or boolean");
              else
                add_scalar(c, (*v)[i]);
            }
          }
          break;
        case Op::kGt:
        case Op::kGte:
        case Op::kLt:
        case Op::kLte:
          if (!v->is_number())
            check.add(vpath, "must be a number");
          else
            c.number = *v;
          break;
        case Op::kSemverEq:
        case Op::kSemverGt:
        case Op::kSemverGte:
        case Op::kSemverLt:
        case Op::kSemverLte: {
          std::optional<SemverView> sv;
          if (v->is_string()) {
            c.text = std::make_shared<const std::string>(v->get<std::string>());
            sv = parse_semver(*c.text);
          }
          if (!sv)
            check.add(vpath, "must be a SemVer 2.0.0 version string such as 1.2.3 or 1.2.3-beta.1");
          else
            c.semver = *sv;
          break;
        }
        case Op::kMatches: {
          if (!v->is_string()) {
            check.add(vpath, "must be a string");
            break;
          }
          const auto& pattern = v->get_ref<const std::string&>();
          if (util::utf8_length(pattern) > kMaxRegexChars) {
            check.add(vpath, "must be at most " + std::to_string(kMaxRegexChars) + " characters");
            break;
          }
          re2::RE2::Options options;
          options.set_max_mem(kRegexMaxMem);
          options.set_log_errors(false);
          auto re = std::make_shared<const re2::RE2>(pattern, options);
          if (!re->ok())
            check.add(vpath, "is not a valid RE2 regular expression: " + re->error());
          else
            c.regex = std::move(re);
          break;
        }
        case Op::kStartsWith:
        case Op::kEndsWith:
        case Op::kContains:
          if (!v->is_string())
            check.add(vpath, "must be a string");
          else
            c.text = std::make_shared<const std::string>(v->get<std::string>());
          break;
      }
    }
  }

  if (check.errors().size() != before) return std::nullopt;
  std::sort(c.strings.begin(), c.strings.end());
  c.strings.erase(std::unique(c.strings.begin(), c.strings.end()), c.strings.end());
  return c;
}

// Compiles a rollout; on success also returns its canonical JSON in `canonical`.
std::optional<Rollout> compile_rollout(const Json& rj, const std::string& path, Ctx& ctx,
                                       Json& canonical) {
  Checker& check = ctx.check;
  const size_t before = check.errors().size();
  if (!object_with(rj, path, {"bucketBy", "variants"}, check)) return std::nullopt;
  Rollout r;
  if (auto b = bounded_string(rj, "bucketBy", path, kMaxAttributeChars, check, true))
    r.bucket_by = std::move(*b);

  struct Entry {
    size_t variant;
    uint64_t weight;
  };
  std::vector<Entry> entries;
  std::vector<size_t> seen;  // variants named so far
  const std::string vpath = Checker::join(path, "variants");
  if (const Json* vs = check.get(rj, "variants", path, Kind::kArray, /*required=*/true)) {
    if (vs->empty() || vs->size() > kMaxRolloutVariants) {
      check.add(vpath, "must have 1 to " + std::to_string(kMaxRolloutVariants) + " entries");
    } else {
      bool weights_ok = true;
      uint64_t total = 0;
      for (size_t i = 0; i < vs->size(); ++i) {
        const Json& e = (*vs)[i];
        const std::string epath = Checker::index(vpath, i);
        if (!object_with(e, epath, {"variant", "weight"}, check)) {
          weights_ok = false;
          continue;
        }
        auto variant = variant_ref(e, "variant", epath, ctx);
        if (variant) {
          if (std::find(seen.begin(), seen.end(), *variant) != seen.end())
            check.add(Checker::join(epath, "variant"),
                      "variant " + json_quoted((*ctx.variants)[*variant].name) +
                          " appears more than once in the rollout");
          seen.push_back(*variant);
        }
        std::optional<uint64_t> weight;
        if (const Json* w = check.get(e, "weight", epath, Kind::kInteger, /*required=*/true)) {
          const int64_t n = w->get<int64_t>();
          if (n < 0 || n > kMaxWeight)
            check.add(Checker::join(epath, "weight"),
                      "must be an integer from 0 to " + std::to_string(kMaxWeight));
          else
            weight = static_cast<uint64_t>(n);
        }
        if (!weight) {
          weights_ok = false;
          continue;
        }
        total += *weight;
        if (variant) entries.push_back({*variant, *weight});
      }
      if (weights_ok && total == 0) check.add(vpath, "weights must add up to more than 0");
      if (total > 0) {
        uint64_t cumulative = 0;
        for (const auto& e : entries) {
          cumulative += e.weight;
          r.slots.push_back({static_cast<uint32_t>(cumulative * kBuckets / total), e.variant});
        }
      }
    }
  }
  if (check.errors().size() != before) return std::nullopt;

  canonical = Json::object();
  canonical["bucketBy"] = r.bucket_by;
  Json variants = Json::array();
  for (const auto& e : entries)
    variants.push_back({{"variant", (*ctx.variants)[e.variant].name}, {"weight", e.weight}});
  canonical["variants"] = std::move(variants);
  return r;
}

std::optional<Rule> compile_rule(const Json& rj, const std::string& path, Ctx& ctx,
                                 Json& canonical) {
  Checker& check = ctx.check;
  const size_t before = check.errors().size();
  if (!object_with(rj, path, {"name", "conditions", "variant", "rollout"}, check))
    return std::nullopt;
  Rule rule;
  canonical = Json::object();
  rule.name = bounded_string(rj, "name", path, kMaxRuleNameChars, check);
  if (rule.name) canonical["name"] = *rule.name;

  if (const Json* cs = check.get(rj, "conditions", path, Kind::kArray, /*required=*/true)) {
    const std::string cpath = Checker::join(path, "conditions");
    if (cs->empty() || cs->size() > kMaxConditions) {
      check.add(cpath, "must have 1 to " + std::to_string(kMaxConditions) + " conditions");
    } else {
      for (size_t i = 0; i < cs->size(); ++i)
        if (auto c = compile_condition((*cs)[i], Checker::index(cpath, i), ctx))
          rule.conditions.push_back(std::move(*c));
      canonical["conditions"] = *cs;
    }
  }

  const bool has_variant = has(rj, "variant"), has_rollout = has(rj, "rollout");
  if (has_variant == has_rollout) {
    check.add(path, has_variant ? "must have only one of variant and rollout"
                                : "must have either variant or rollout");
  } else if (has_variant) {
    rule.variant = variant_ref(rj, "variant", path, ctx);
    if (rule.variant) canonical["variant"] = (*ctx.variants)[*rule.variant].name;
  } else {
    Json rollout;
    rule.rollout = compile_rollout(rj.at("rollout"), Checker::join(path, "rollout"), ctx, rollout);
    if (rule.rollout) canonical["rollout"] = std::move(rollout);
  }

  if (check.errors().size() != before) return std::nullopt;
  return rule;
}

// The variant value check for the flag's type; "" if `v` fits.
std::string variant_value_problem(FlagType type, const Json& v) {
  switch (type) {
    case FlagType::kBoolean:
      if (!v.is_boolean()) return "must be true or false (the flag's type is boolean)";
      break;
    case FlagType::kString:
      if (!v.is_string()) return "must be a string (the flag's type is string)";
      if (v.get_ref<const std::string&>().size() > kMaxStringValueBytes)
        return "must be at most " + std::to_string(kMaxStringValueBytes) + " bytes";
      break;
    case FlagType::kNumber:
      if (!v.is_number()) return "must be a number (the flag's type is number)";
      break;
    case FlagType::kObject:
      if (!v.is_object() && !v.is_array())
        return "must be a JSON object or array (the flag's type is object)";
      if (v.dump(-1, ' ', false, Json::error_handler_t::replace).size() > kMaxObjectValueBytes)
        return "must be at most " + std::to_string(kMaxObjectValueBytes) + " bytes when serialized";
      break;
  }
  return "";
}

// ---- evaluate ---------------------------------------------------------------------------

bool in_values(const Condition& c, const Json& v) {
  switch (v.type()) {
    case Json::value_t::string:
      return std::binary_search(c.strings.begin(), c.strings.end(),
                                v.get_ref<const std::string&>());
    case Json::value_t::boolean:
      return v.get<bool>() ? c.has_true : c.has_false;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return std::any_of(c.numbers.begin(), c.numbers.end(),
                         [&v](const Json& n) { return compare_numbers(v, n) == 0; });
    default:
      return false;
  }
}

bool matches(const Condition& c, const Json& context) {
  auto it = context.find(c.attribute);
  if (it == context.end() || it->is_null()) return false;
  const Json& v = *it;
  switch (c.op) {
    case Op::kEquals:
    case Op::kIn:
      return in_values(c, v);
    case Op::kNotEquals:
    case Op::kNotIn:
      return !in_values(c, v);
    case Op::kGt:
    case Op::kGte:
    case Op::kLt:
    case Op::kLte: {
      if (!v.is_number()) return false;
      const int cmp = compare_numbers(v, c.number);
      if (c.op == Op::kGt) return cmp > 0;
      if (c.op == Op::kGte) return cmp >= 0;
      if (c.op == Op::kLt) return cmp < 0;
      return cmp <= 0;
    }
    case Op::kSemverEq:
    case Op::kSemverGt:
    case Op::kSemverGte:
    case Op::kSemverLt:
    case Op::kSemverLte: {
      if (!v.is_string()) return false;
      auto sv = parse_semver(v.get_ref<const std::string&>());
      if (!sv) return false;
      const int cmp = compare_semver(*sv, c.semver);
      if (c.op == Op::kSemverEq) return cmp == 0;
      if (c.op == Op::kSemverGt) return cmp > 0;
      if (c.op == Op::kSemverGte) return cmp >= 0;
      if (c.op == Op::kSemverLt) return cmp < 0;
      return cmp <= 0;
    }
    case Op::kMatches:
      return v.is_string() && re2::RE2::PartialMatch(v.get_ref<const std::string&>(), *c.regex);
    case Op::kStartsWith:
    case Op::kEndsWith:
    case Op::kContains: {
      if (!v.is_string()) return false;
      const std::string_view s = v.get_ref<const std::string&>();
      if (c.op == Op::kStartsWith) return s.starts_with(*c.text);
      if (c.op == Op::kEndsWith) return s.ends_with(*c.text);
      return s.find(*c.text) != std::string_view::npos;
    }
  }
  return false;
}

Result variant_result(const Flag& flag, size_t variant, const char* reason) {
  Result r;
  r.value = flag.variants[variant].value;
  r.variant = flag.variants[variant].name;
  r.reason = reason;
  return r;
}

Result error_result(const char* code, std::string details) {
  Result r;
  r.reason = "ERROR";
  r.error_code = code;
  r.error_details = std::move(details);
  return r;
}

Result split(const Flag& flag, const Rollout& rollout, const Json& context) {
  char buf[24];
  std::string_view entity;
  if (!entity_key(context, rollout.bucket_by, buf, entity))
    return error_result("TARGETING_KEY_MISSING",
                        "the rollout buckets by the context attribute " +
                            json_quoted(rollout.bucket_by) +
                            ", which is missing or neither a string nor an integer");
  const uint32_t bucket = bucket_of(flag.key, entity);
  for (const auto& slot : rollout.slots)
    if (bucket < slot.end) return variant_result(flag, slot.variant, "SPLIT");
  return variant_result(flag, flag.default_variant, "DEFAULT");  // unreachable: last end is 100000
}

}  // namespace

const char* type_name(FlagType t) {
  switch (t) {
    case FlagType::kBoolean:
      return "boolean";
    case FlagType::kString:
      return "string";
    case FlagType::kNumber:
      return "number";
    case FlagType::kObject:
      return "object";
  }
  return "?";
}

std::optional<SemverView> parse_semver(std::string_view s) {
  if (!s.empty() && s[0] == 'v') s.remove_prefix(1);
  if (const size_t plus = s.find('+'); plus != std::string_view::npos) {
    if (!valid_identifiers(s.substr(plus + 1), /*prerelease=*/false)) return std::nullopt;
    s = s.substr(0, plus);
  }
  SemverView out;
  if (const size_t dash = s.find('-'); dash != std::string_view::npos) {
    out.prerelease = s.substr(dash + 1);
    if (!valid_identifiers(out.prerelease, /*prerelease=*/true)) return std::nullopt;
    s = s.substr(0, dash);
  }
  std::string_view* parts[] = {&out.major, &out.minor, &out.patch};
  for (size_t i = 0; i < 3; ++i) {
    const size_t dot = s.find('.');
    if ((i < 2) != (dot != std::string_view::npos)) return std::nullopt;
    *parts[i] = s.substr(0, dot);
    if (!numeric_identifier(*parts[i])) return std::nullopt;
    if (dot != std::string_view::npos) s.remove_prefix(dot + 1);
  }
  return out;
}

int compare_semver(const SemverView& a, const SemverView& b) {
  if (int c = compare_numeric(a.major, b.major)) return c;
  if (int c = compare_numeric(a.minor, b.minor)) return c;
  if (int c = compare_numeric(a.patch, b.patch)) return c;
  // A version without a prerelease has higher precedence than one with.
  if (a.prerelease.empty() || b.prerelease.empty())
    return a.prerelease.empty() == b.prerelease.empty() ? 0 : (a.prerelease.empty() ? 1 : -1);
  std::string_view x = a.prerelease, y = b.prerelease;
  while (true) {
    const size_t dx = x.find('.'), dy = y.find('.');
    if (int c = compare_identifier(x.substr(0, dx), y.substr(0, dy))) return c;
    const bool x_more = dx != std::string_view::npos, y_more = dy != std::string_view::npos;
    if (!x_more || !y_more) return x_more == y_more ? 0 : (x_more ? 1 : -1);
    x.remove_prefix(dx + 1);
    y.remove_prefix(dy + 1);
  }
}

uint32_t bucket_of(std::string_view flag_key, std::string_view entity_key) {
  std::string input;
  input.reserve(flag_key.size() + 1 + entity_key.size());
  input.append(flag_key);
  input.push_back('\x1f');
  input.append(entity_key);
  const std::string digest = util::sha256(input);
  uint64_t x = 0;
  for (size_t i = 0; i < 8; ++i) x = (x << 8) | static_cast<unsigned char>(digest[i]);
  return static_cast<uint32_t>(x % kBuckets);
}

std::optional<Flag> compile(const Json& def, Checker& check, std::string_view parent) {
  const std::string root(parent);
  const size_t before = check.errors().size();
  if (!object_with(def, root,
                   {"key", "type", "name", "description", "enabled", "archived", "variants",
                    "defaultVariant", "rules", "rollout"},
                   check))
    return std::nullopt;
  Flag flag;

  if (auto key = check.string(def, "key", root, /*required=*/true)) {
    if (!valid_flag_key(*key))
      check.add(Checker::join(root, "key"),
                "must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-', starting "
                "with a letter or digit");
    flag.key = std::move(*key);
  }

  std::optional<FlagType> type;
  if (const Json* tj = check.get(def, "type", root, Kind::kString, /*required=*/true)) {
    const auto& t = tj->get_ref<const std::string&>();
    for (FlagType candidate :
         {FlagType::kBoolean, FlagType::kString, FlagType::kNumber, FlagType::kObject})
      if (t == type_name(candidate)) type = candidate;
    if (!type)
      check.add(Checker::join(root, "type"), "must be one of boolean, string, number, object");
    else
      flag.type = *type;
  }

  auto name = bounded_string(def, "name", root, kMaxTextChars, check);
  flag.name = name ? *name : flag.key;
  auto description = bounded_string(def, "description", root, kMaxTextChars, check);
  if (description) flag.description = std::move(*description);
  if (auto enabled = check.boolean(def, "enabled", root, false)) flag.enabled = *enabled;
  if (auto archived = check.boolean(def, "archived", root, false)) flag.archived = *archived;

  bool variants_known = false;
  const std::string vpath = Checker::join(root, "variants");
  if (const Json* vs = check.get(def, "variants", root, Kind::kObject, /*required=*/true)) {
    variants_known = true;
    if (vs->empty() || vs->size() > kMaxVariants)
      check.add(vpath, "must have 1 to " + std::to_string(kMaxVariants) + " entries");
    for (auto it = vs->begin(); it != vs->end(); ++it) {
      const std::string& vname = it.key();
      if (!valid_variant_name(vname))
        check.add(Checker::join(vpath, vname),
                  "variant names must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', ':' or "
                  "'-'");
      else if (type) {
        std::string problem = variant_value_problem(*type, it.value());
        if (!problem.empty()) check.add(Checker::join(vpath, vname), std::move(problem));
      }
      flag.variants.push_back({vname, it.value()});
    }
  }
  Ctx ctx{check, variants_known ? &flag.variants : nullptr};

  if (auto dv = variant_ref(def, "defaultVariant", root, ctx)) flag.default_variant = *dv;

  Json rules_json = Json::array();
  if (const Json* rs = check.get(def, "rules", root, Kind::kArray, /*required=*/false)) {
    if (rs->size() > kMaxRules)
      check.add(Checker::join(root, "rules"),
                "must have at most " + std::to_string(kMaxRules) + " rules");
    const std::string rpath = Checker::join(root, "rules");
    for (size_t i = 0; i < rs->size(); ++i) {
      Json canonical;
      if (auto rule = compile_rule((*rs)[i], Checker::index(rpath, i), ctx, canonical)) {
        flag.rules.push_back(std::move(*rule));
        rules_json.push_back(std::move(canonical));
      }
    }
  }

  Json rollout_json;
  if (has(def, "rollout"))
    flag.rollout =
        compile_rollout(def.at("rollout"), Checker::join(root, "rollout"), ctx, rollout_json);

  if (check.errors().size() != before) return std::nullopt;

  Json& d = flag.definition;
  d = Json::object();
  d["key"] = flag.key;
  d["type"] = type_name(flag.type);
  d["name"] = flag.name;
  d["description"] = flag.description;
  d["enabled"] = flag.enabled;
  d["archived"] = flag.archived;
  d["variants"] = def.at("variants");
  d["defaultVariant"] = flag.variants[flag.default_variant].name;
  d["rules"] = std::move(rules_json);
  if (flag.rollout) d["rollout"] = std::move(rollout_json);
  return flag;
}

Result evaluate(const Flag& flag, const Json& context) {
  if (!context.is_object())
    return error_result("INVALID_CONTEXT", "the evaluation context must be a JSON object");
  if (!flag.enabled || flag.archived) return variant_result(flag, flag.default_variant, "DISABLED");
  for (const auto& rule : flag.rules) {
    const bool all = std::all_of(rule.conditions.begin(), rule.conditions.end(),
                                 [&context](const Condition& c) { return matches(c, context); });
    if (!all) continue;
    if (rule.variant) return variant_result(flag, *rule.variant, "TARGETING_MATCH");
    return split(flag, *rule.rollout, context);
  }
  if (flag.rollout) return split(flag, *flag.rollout, context);
  return variant_result(flag, flag.default_variant, flag.rules.empty() ? "STATIC" : "DEFAULT");
}

}  // namespace wharf::product::flags
