#include "sandbox/params.h"

#include <algorithm>

namespace wharf::sandbox {

using model::ApiError;
using model::Json;

Params::Params(const Json& params, std::string flow,
               std::initializer_list<std::string_view> allowed)
    : p_(params.is_null() ? Json::object() : params), flow_(std::move(flow)) {
  if (!p_.is_object()) {
    throw ApiError::validation("parameters of " + flow_ + " must be a JSON object",
                               {{"params", "must be an object"}});
  }
  for (auto it = p_.begin(); it != p_.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      c_.add(it.key(), "is not a parameter of " + flow_);
  }
}

bool Params::has(std::string_view key) const {
  return p_.contains(key) && !p_.at(key).is_null();
}

std::optional<std::string> Params::str(std::string_view key, bool required) {
  return c_.string(p_, key, "", required, /*non_empty=*/true);
}

std::optional<bool> Params::boolean(std::string_view key) {
  coerce(key, model::Kind::kBool);
  return c_.boolean(p_, key, "", false);
}

std::optional<std::string> Params::one_of(std::string_view key, bool required,
                                          std::initializer_list<std::string_view> allowed) {
  return c_.one_of(p_, key, "", required, allowed);
}

const Json* Params::object(std::string_view key, bool required) {
  coerce(key, model::Kind::kObject);
  return c_.get(p_, key, "", model::Kind::kObject, required);
}

const Json* Params::array(std::string_view key, bool required) {
  coerce(key, model::Kind::kArray);
  return c_.get(p_, key, "", model::Kind::kArray, required);
}

const Json* Params::structure(std::string_view key) {
  coerce(key, model::Kind::kObject);
  coerce(key, model::Kind::kArray);
  return has(key) ? &p_.at(key) : nullptr;
}

std::optional<double> Params::number(std::string_view key, bool required) {
  coerce(key, model::Kind::kNumber);
  const Json* v = c_.get(p_, key, "", model::Kind::kNumber, required);
  if (!v) return std::nullopt;
  return v->get<double>();
}

std::optional<int64_t> Params::integer(std::string_view key, bool required) {
  coerce(key, model::Kind::kInteger);
  const Json* v = c_.get(p_, key, "", model::Kind::kInteger, required);
  if (!v) return std::nullopt;
  return static_cast<int64_t>(v->get<double>());
}

std::vector<std::string> Params::strings(std::string_view key, bool required, bool non_empty) {
  std::vector<std::string> out;
  const Json* v = array(key, required);
  if (!v) return out;
  if (non_empty && v->empty()) add(std::string(key), "must not be empty");
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    if (!e.is_string() || e.get_ref<const std::string&>().empty())
      add(model::Checker::index(key, i), "must be a non-empty string");
    else
      out.push_back(e.get<std::string>());
  }
  return out;
}

void Params::add(std::string key, std::string message) {
  c_.add(std::move(key), std::move(message));
}

void Params::done() const {
  c_.throw_if_failed("parameters of " + flow_);
}

// CLI text becomes the parameter's own kind when it parses as one; otherwise it is left as
// text for the type check to refuse.
void Params::coerce(std::string_view key, model::Kind kind) {
  auto it = p_.find(key);
  if (it == p_.end() || !it->is_string()) return;
  const std::string& text = it->get_ref<const std::string&>();
  if (kind == model::Kind::kBool) {
    if (text == "true" || text == "false") *it = text == "true";
    return;
  }
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_discarded() && model::is_kind(j, kind)) *it = std::move(j);
}

}  // namespace wharf::sandbox
