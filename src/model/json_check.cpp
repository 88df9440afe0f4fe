#include "model/json_check.h"

#include "net/http.h"

#include <cctype>
#include <cmath>

namespace wharf::model {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kString:
      return "a string";
    case Kind::kBool:
      return "a boolean";
    case Kind::kNumber:
      return "a number";
    case Kind::kInteger:
      return "an integer";
    case Kind::kObject:
      return "an object";
    case Kind::kArray:
      return "an array";
  }
  return "a value";
}

bool is_kind(const Json& v, Kind k) {
  switch (k) {
    case Kind::kString:
      return v.is_string();
    case Kind::kBool:
      return v.is_boolean();
    case Kind::kNumber:
      return v.is_number();
    case Kind::kInteger: {
      if (v.is_number_integer()) return true;
      if (!v.is_number_float()) return false;
      // An integral value within int64_t (5.0, 1e6): callers read it with get<int64_t>().
      // Checked before any cast, since casting a double outside that range is undefined.
      const double d = v.get<double>();
      return d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == std::trunc(d);
    }
    case Kind::kObject:
      return v.is_object();
    case Kind::kArray:
      return v.is_array();
  }
  return false;
}

std::string Checker::join(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

std::string Checker::index(std::string_view parent, size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}

const Json* Checker::get(const Json& obj, std::string_view key, std::string_view parent, Kind kind,
                         bool required, bool nullable) {
  auto it = obj.find(key);
  if (it == obj.end() || (it->is_null() && !nullable)) {
    if (required) add(join(parent, key), "is required");
    return nullptr;
  }
  if (it->is_null()) return &*it;
  if (!is_kind(*it, kind)) {
    add(join(parent, key), std::string("must be ") + kind_name(kind));
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> Checker::string(const Json& obj, std::string_view key,
                                           std::string_view parent, bool required, bool non_empty) {
  const Json* v = get(obj, key, parent, Kind::kString, required);
  if (!v) return std::nullopt;
  const auto& s = v->get_ref<const std::string&>();
  if (non_empty && s.empty()) {
    add(join(parent, key), "must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> request_plan_id(const Json& body, Checker& check, bool required) {
  std::optional<std::string> legacy;
  if (auto it = body.find("billingPlan"); body.is_object() && it != body.end()) {
    if (it->is_string() && !it->get_ref<const std::string&>().empty())
      legacy = it->get<std::string>();
    else if (it->is_object() && it->contains("id") && (*it)["id"].is_string() &&
             !(*it)["id"].get_ref<const std::string&>().empty())
      legacy = (*it)["id"].get<std::string>();
    else if (!it->is_null())
      check.add("billingPlan", "must be a plan id (the older name of billingPlanId)");
  }
  auto id = check.string(body, "billingPlanId", "", required && !legacy, true);
  if (id && legacy && *id != *legacy) {
    check.add("billingPlan", "names plan '" + *legacy + "' but billingPlanId names '" + *id +
                                 "'; send billingPlanId only");
    return std::nullopt;
  }
  return id ? id : legacy;
}

std::optional<bool> Checker::boolean(const Json& obj, std::string_view key, std::string_view parent,
                                     bool required) {
  const Json* v = get(obj, key, parent, Kind::kBool, required);
  if (!v) return std::nullopt;
  return v->get<bool>();
}

std::optional<std::string> Checker::one_of(const Json& obj, std::string_view key,
                                           std::string_view parent, bool required,
                                           std::initializer_list<std::string_view> allowed) {
  auto s = string(obj, key, parent, required);
  if (!s) return std::nullopt;
  for (auto a : allowed)
    if (*s == a) return s;
  std::string msg = "must be one of";
  bool first = true;
  for (auto a : allowed) {
    msg += first ? " " : ", ";
    msg += a;
    first = false;
  }
  add(join(parent, key), msg);
  return std::nullopt;
}

void Checker::throw_if_failed(std::string_view what) const {
  if (errors_.empty()) return;
  std::string msg = "invalid ";
  msg += what;
  msg += ": ";
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (i) msg += "; ";
    msg += errors_[i].key + " " + errors_[i].message;
  }
  throw ApiError::validation(msg, errors_);
}

Json parse_json_object_body(std::string_view content_type, std::string_view body) {
  // Media type comparison is case-insensitive and ignores parameters (charset=utf-8).
  if (net::media_type(content_type) != "application/json") {
    throw ApiError::validation(
        "request body must be JSON with Content-Type: application/json",
        {{"Content-Type", content_type.empty()
                              ? "is missing"
                              : "must be application/json, not " + std::string(content_type)}});
  }
  Json doc = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    throw ApiError::validation("request body is not valid JSON", {{"body", "is not valid JSON"}});
  if (!doc.is_object())
    throw ApiError::validation("request body must be a JSON object",
                               {{"body", "must be a JSON object"}});
  return doc;
}

std::optional<Json> parse_optional_json_object_body(std::string_view content_type,
                                                    std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  return parse_json_object_body(content_type, body);
}

bool is_decimal_string(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0, digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (digits == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t frac = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac;
    if (frac == 0) return false;
  }
  return i == s.size();
}

}  // namespace wharf::model
