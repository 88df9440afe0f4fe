#include "vercel/client.h"

#include "util/log.h"

namespace wharf::vercel {

net::HttpResult Client::send(const std::string& method, const std::string& path,
                             const std::string& access_token, const model::Json& body) const {
  auto result = http_.request(method, base_ + path,
                              {{"Authorization", "Bearer " + access_token},
                               {"Content-Type", "application/json"},
                               {"Accept", "application/json"}},
                              body.dump());
  std::string vercel_id;
  for (const auto& [k, v] : result.headers)
    if (k == "x-vercel-id") vercel_id = v;
  util::log_info("vercel api call")
      .str("method", method)
      .str("path", path)
      .num("status", result.status)
      .str("x_vercel_id", vercel_id)
      .str("error", result.error);
  return result;
}

net::HttpResult Client::update_resource_secrets(const std::string& access_token,
                                                const std::string& installation_id,
                                                const std::string& resource_id,
                                                const model::Json& secrets, bool partial) const {
  return send("PUT",
              "/v1/installations/" + installation_id + "/resources/" + resource_id + "/secrets",
              access_token, model::Json{{"secrets", secrets}, {"partial", partial}});
}

net::HttpResult Client::create_event(const std::string& access_token,
                                     const std::string& installation_id,
                                     const model::Json& event) const {
  return send("POST", "/v1/installations/" + installation_id + "/events", access_token,
              model::Json{{"event", event}});
}

}  // namespace wharf::vercel
