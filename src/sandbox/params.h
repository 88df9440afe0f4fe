// A flow's parameters, checked the way the spec's 400 validation errors are: every problem is
// collected and reported at once, each naming the parameter, and a parameter the flow does not
// take is refused.
//
// Parameters from the CLI arrive as text (`--amount 25.00`, `--metadata '{…}'`); JSON callers
// (the control API) pass typed values. The flow's own type for a parameter — which accessor it
// reads the parameter with — decides what CLI text becomes: a string parameter keeps the text
// exactly as typed (`25.00`, `123`, even `"25.00"` with its quotes), a boolean takes `true` /
// `false`, a number, integer, object or array parameter takes the text parsed as JSON when that
// is of the right kind. Text that does not fit is left as it is for the type check to refuse
// by name. Typed JSON values are never converted.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/json_check.h"

namespace wharf::sandbox {

class Params {
 public:
  // Throws ApiError 400 if `params` is neither null nor an object; records every key not in
  // `allowed` as "is not a parameter of <flow>".
  Params(const model::Json& params, std::string flow,
         std::initializer_list<std::string_view> allowed);

  // The parameters as coerced so far.
  const model::Json& json() const { return p_; }
  // Present and not null.
  bool has(std::string_view key) const;

  // A non-empty string, as given (never parsed).
  std::optional<std::string> str(std::string_view key, bool required);
  // true / false, or the text "true" / "false".
  std::optional<bool> boolean(std::string_view key);
  // A string restricted to `allowed`.
  std::optional<std::string> one_of(std::string_view key, bool required,
                                    std::initializer_list<std::string_view> allowed);
  const model::Json* object(std::string_view key, bool required);
  const model::Json* array(std::string_view key, bool required);
  // A JSON object or array parameter, either kind; not type-checked (the caller checks).
  const model::Json* structure(std::string_view key);
  std::optional<double> number(std::string_view key, bool required);
  // A whole number; "5" is 5, "5.5" is refused.
  std::optional<int64_t> integer(std::string_view key, bool required);
  // An array of non-empty strings (each wrong element named by index).
  std::vector<std::string> strings(std::string_view key, bool required, bool non_empty);

  void add(std::string key, std::string message);
  // Throws ApiError 400 validation_error naming every problem recorded, if any.
  void done() const;

 private:
  void coerce(std::string_view key, model::Kind kind);

  model::Json p_;
  std::string flow_;
  model::Checker c_;
};

}  // namespace wharf::sandbox
