#include "vercel/sso_client.h"

#include "model/json_check.h"

namespace wharf::vercel {

SsoClient::SsoClient(std::string client_id, std::string client_secret, Send send)
    : client_id_(std::move(client_id)),
      client_secret_(std::move(client_secret)),
      send_(std::move(send)) {}

SsoExchangeResult SsoClient::exchange(const std::string& code, const std::string& state) const {
  // grant_type is optional for JSON clients but marked required in the schema: always send it.
  model::Json body = {{"code", code},
                      {"client_id", client_id_},
                      {"client_secret", client_secret_},
                      {"grant_type", "authorization_code"}};
  if (!state.empty()) body["state"] = state;
  net::HttpResult r = send_(api::sso_token(body));
  SsoExchangeResult out;
  out.status = r.status;
  if (!r.error.empty()) {
    out.error = "Vercel could not be reached (" + r.error + ")";
    return out;
  }
  model::Json j = model::Json::parse(r.body, nullptr, false);
  if (!r.ok()) {
    // Vercel's envelope {error: {message}} or an OAuth-style {error, error_description}.
    std::string why;
    if (j.is_object() && j.contains("error")) {
      const auto& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string())
        why = e["message"].get<std::string>();
      else if (j.contains("error_description") && j["error_description"].is_string())
        why = j["error_description"].get<std::string>();
      else if (e.is_string())
        why = e.get<std::string>();
    }
    out.error = "the code was refused (HTTP " + std::to_string(r.status) + ")" +
                (why.empty() ? "" : ": " + why.substr(0, 300));
    return out;
  }
  if (!j.is_object() || !j.contains("id_token") || !j["id_token"].is_string()) {
    out.error = "the token exchange answered without an id_token";
    return out;
  }
  out.ok = true;
  out.id_token = j["id_token"].get<std::string>();
  return out;
}

}  // namespace wharf::vercel
