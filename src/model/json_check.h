// Field-by-field checking of untrusted JSON against the spec's types. Every problem is
// collected (not just the first) so a 400 names all offending fields at once.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/api_error.h"

namespace wharf::model {

using Json = nlohmann::json;

enum class Kind { kString, kBool, kNumber, kInteger, kObject, kArray };

const char* kind_name(Kind k);
bool is_kind(const Json& v, Kind k);

class Checker {
 public:
  // Joins a parent path and a key: ("", "a") -> "a", ("a", "b") -> "a.b".
  static std::string join(std::string_view parent, std::string_view key);
  static std::string index(std::string_view parent, size_t i);

  // Returns the member if present with the right kind; records an error if it is missing
  // (when required) or has the wrong kind. JSON null counts as missing unless `nullable`,
  // in which case a null value is returned as is.
  const Json* get(const Json& obj, std::string_view key, std::string_view parent, Kind kind,
                  bool required, bool nullable = false);
  std::optional<std::string> string(const Json& obj, std::string_view key, std::string_view parent,
                                    bool required, bool non_empty = false);
  std::optional<bool> boolean(const Json& obj, std::string_view key, std::string_view parent,
                              bool required);
  // A string member restricted to `allowed`.
  std::optional<std::string> one_of(const Json& obj, std::string_view key, std::string_view parent,
                                    bool required, std::initializer_list<std::string_view> allowed);

  void add(std::string key, std::string message) {
    errors_.push_back({std::move(key), std::move(message)});
  }
  bool ok() const { return errors_.empty(); }
  const std::vector<FieldError>& errors() const { return errors_; }
  // Throws a 400 validation_error naming every field, if any problem was recorded.
  void throw_if_failed(std::string_view what) const;

 private:
  std::vector<FieldError> errors_;
};

// The plan a Provision Resource, Update Resource or Update Installation request names:
// `billingPlanId`, or `billingPlan`, the field's name before it was renamed (partner-api.md
// §9 item 27), which older callers still send — as the plan id, or as a BillingPlan object
// (the shape Resource.billingPlan has now) whose `id` is used. When both are present they
// must name the same plan. Errors go to `check` under the field that carries them.
std::optional<std::string> request_plan_id(const Json& body, Checker& check, bool required);

// Parses a request body that must be a JSON object. `content_type` must be
// application/json (parameters such as charset allowed). Throws ApiError 400.
Json parse_json_object_body(std::string_view content_type, std::string_view body);
// For routes whose body is optional: nullopt for an empty (or blank) body, else as above.
std::optional<Json> parse_optional_json_object_body(std::string_view content_type,
                                                    std::string_view body);
// True if s is a decimal amount string like "10", "4.39", "0.5" (no sign, no exponent).
bool is_decimal_string(std::string_view s);

}  // namespace wharf::model
