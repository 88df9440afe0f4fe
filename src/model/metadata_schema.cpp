#include "model/metadata_schema.h"

#include "util/utf8.h"

namespace wharf::model {
namespace {

bool type_matches(const std::string& type, const Json& v) {
  if (type.empty()) return true;
  if (type == "string") return v.is_string();
  if (type == "number") return v.is_number();
  if (type == "integer") return is_kind(v, Kind::kInteger);
  if (type == "boolean") return v.is_boolean();
  if (type == "array") return v.is_array();
  if (type == "object") return v.is_object();
  return false;
}

// std::regex matches recursively, about one stack frame per character: a value of 40 000
// characters overflows an 8 MiB thread stack and kills the server (the input is in
// tests/fuzz/regressions/partner_json). Longer values are refused before matching; form
// values are names and short codes.
constexpr size_t kMaxPatternInputBytes = 4096;

std::string number_text(double d) {
  Json j = d;
  if (is_kind(j, Kind::kInteger)) j = static_cast<int64_t>(d);  // 5, not 5.0
  return j.dump();
}

// minLength / maxLength: a non-negative integer (a negative one would wrap to a huge size_t).
std::optional<size_t> length_at(const Json& def, std::string_view key, const std::string& path,
                                Checker& check) {
  const Json* v = check.get(def, key, path, Kind::kInteger, false);
  if (!v) return std::nullopt;
  const int64_t n = v->get<int64_t>();
  if (n < 0) {
    check.add(Checker::join(path, key), "must not be negative");
    return std::nullopt;
  }
  return static_cast<size_t>(n);
}

}  // namespace

std::shared_ptr<const MetadataSchema> MetadataSchema::compile(const Json& schema,
                                                              const std::string& path,
                                                              Checker& check) {
  auto out = std::make_shared<MetadataSchema>();
  if (!schema.is_object()) {
    check.add(path, "must be an object");
    return nullptr;
  }
  if (auto it = schema.find("type"); it != schema.end() && *it != "object")
    check.add(Checker::join(path, "type"), "must be \"object\"");
  if (const Json* props = check.get(schema, "properties", path, Kind::kObject, false)) {
    std::string ppath = Checker::join(path, "properties");
    for (auto it = props->begin(); it != props->end(); ++it) {
      std::string p = Checker::join(ppath, it.key());
      const Json& def = it.value();
      if (!def.is_object()) {
        check.add(p, "must be an object");
        continue;
      }
      Property prop;
      prop.name = it.key();
      if (auto t = check.one_of(def, "type", p, false,
                                {"string", "number", "integer", "boolean", "array", "object"}))
        prop.type = *t;
      if (const Json* e = check.get(def, "enum", p, Kind::kArray, false))
        prop.enum_values.assign(e->begin(), e->end());
      if (const Json* v = check.get(def, "minimum", p, Kind::kNumber, false))
        prop.minimum = v->get<double>();
      if (const Json* v = check.get(def, "maximum", p, Kind::kNumber, false))
        prop.maximum = v->get<double>();
      prop.min_length = length_at(def, "minLength", p, check);
      prop.max_length = length_at(def, "maxLength", p, check);
      if (auto pat = check.string(def, "pattern", p, false)) {
        try {
          prop.pattern.emplace(*pat, std::regex::ECMAScript);
          prop.pattern_text = *pat;
        } catch (const std::regex_error&) {
          check.add(Checker::join(p, "pattern"), "is not a valid regular expression");
        }
      }
      out->properties_.push_back(std::move(prop));
    }
  }
  if (const Json* req = check.get(schema, "required", path, Kind::kArray, false)) {
    for (size_t i = 0; i < req->size(); ++i) {
      if (!(*req)[i].is_string()) {
        check.add(Checker::index(Checker::join(path, "required"), i), "must be a string");
        continue;
      }
      out->required_.push_back((*req)[i].get<std::string>());
    }
  }
  return out;
}

std::vector<FieldError> MetadataSchema::validate(const Json& metadata, bool partial) const {
  std::vector<FieldError> errors;
  if (!metadata.is_object()) {
    errors.push_back({"metadata", "must be an object"});
    return errors;
  }
  if (!partial) {
    for (const auto& name : required_) {
      auto it = metadata.find(name);
      if (it == metadata.end() || it->is_null()) errors.push_back({name, "is required"});
    }
  }
  for (const auto& prop : properties_) {
    auto it = metadata.find(prop.name);
    if (it == metadata.end() || it->is_null()) continue;
    const Json& v = *it;
    if (!type_matches(prop.type, v)) {
      errors.push_back({prop.name, "must be of type " + prop.type});
      continue;
    }
    if (!prop.enum_values.empty()) {
      bool found = false;
      for (const auto& e : prop.enum_values) found = found || e == v;
      if (!found) {
        std::string allowed;
        for (const auto& e : prop.enum_values) allowed += (allowed.empty() ? "" : ", ") + e.dump();
        errors.push_back({prop.name, "must be one of " + allowed});
        continue;
      }
    }
    if (v.is_number()) {
      double d = v.get<double>();
      if (prop.minimum && d < *prop.minimum)
        errors.push_back({prop.name, "must be >= " + number_text(*prop.minimum)});
      if (prop.maximum && d > *prop.maximum)
        errors.push_back({prop.name, "must be <= " + number_text(*prop.maximum)});
    }
    if (v.is_string()) {
      const auto& s = v.get_ref<const std::string&>();
      size_t len = util::utf8_length(s);
      if (prop.min_length && len < *prop.min_length)
        errors.push_back(
            {prop.name, "must be at least " + std::to_string(*prop.min_length) + " characters"});
      if (prop.max_length && len > *prop.max_length)
        errors.push_back(
            {prop.name, "must be at most " + std::to_string(*prop.max_length) + " characters"});
      if (prop.pattern) {
        if (s.size() > kMaxPatternInputBytes)
          errors.push_back({prop.name, "must be at most " + std::to_string(kMaxPatternInputBytes) +
                                           " bytes to be matched against " + prop.pattern_text});
        else if (!std::regex_search(s, *prop.pattern))
          errors.push_back({prop.name, "must match " + prop.pattern_text});
      }
    }
  }
  return errors;
}

}  // namespace wharf::model
