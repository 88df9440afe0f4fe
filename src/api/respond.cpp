#include "api/respond.h"

namespace wharf::api {

net::Response json_response(int status, const model::Json& body) {
  return net::Response::json(status, body.dump());
}

net::Response error_response(const model::ApiError& e) {
  model::Json err = {{"code", e.code}, {"message", e.message}};
  if (!e.fields.empty()) {
    model::Json fields = model::Json::array();
    for (const auto& f : e.fields) {
      model::Json jf = {{"key", f.key}};
      if (!f.message.empty()) jf["message"] = f.message;
      fields.push_back(std::move(jf));
    }
    err["fields"] = std::move(fields);
  }
  if (e.user_message || e.user_url) {
    model::Json user = model::Json::object();
    if (e.user_message) user["message"] = *e.user_message;
    if (e.user_url) user["url"] = *e.user_url;
    err["user"] = std::move(user);
  }
  // dump() with error_handler replace: a message quoting invalid UTF-8 input must not throw.
  auto res =
      net::Response::json(e.status, model::Json{{"error", std::move(err)}}.dump(
                                        -1, ' ', false, model::Json::error_handler_t::replace));
  if (e.retry_after_s) res.headers.emplace_back("Retry-After", std::to_string(*e.retry_after_s));
  return res;
}

net::Response error_response(int status, std::string_view code, std::string_view message) {
  return error_response(model::ApiError(status, std::string(code), std::string(message)));
}

}  // namespace wharf::api
