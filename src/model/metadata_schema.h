// The JSON Schema subset Vercel's create-resource form uses for a product's metadata:
// an object schema with `properties` (each with `type`, `enum`, `minimum`/`maximum`,
// `minLength`/`maxLength`, `pattern`) and `required`. Keys Vercel adds for the form's
// rendering (`ui:control`, `description`, …) are allowed and ignored.
#pragma once
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "model/api_error.h"
#include "model/json_check.h"

namespace wharf::model {

class MetadataSchema {
 public:
  // Compiles a schema; records problems in `check` under `path` (e.g.
  // "products[0].metadataSchema").
  static std::shared_ptr<const MetadataSchema> compile(const Json& schema, const std::string& path,
                                                       Checker& check);

  // Validates a metadata object. `partial` skips `required` (the plans endpoints receive
  // the form while the user is still filling it in). Errors are keyed by metadata key.
  std::vector<FieldError> validate(const Json& metadata, bool partial) const;

 private:
  struct Property {
    std::string name;
    std::string type;  // string, number, integer, boolean, array, object or "" (any)
    std::vector<Json> enum_values;
    std::optional<double> minimum, maximum;
    std::optional<size_t> min_length, max_length;
    std::optional<std::regex> pattern;
    std::string pattern_text;
  };
  std::vector<Property> properties_;
  std::vector<std::string> required_;
};

}  // namespace wharf::model
