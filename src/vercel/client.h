// Typed calls to Vercel's Marketplace API (vercel-api.md) on WHARF_VERCEL_API_URL, with an
// installation's access token. Only what the server needs so far; each call returns the raw
// result so the caller decides what a failure means.
#pragma once
#include <string>

#include "model/json_check.h"
#include "net/http_client.h"

namespace wharf::vercel {

class Client {
 public:
  Client(net::HttpClient& http, std::string base_url) : http_(http), base_(std::move(base_url)) {}

  // PUT /v1/installations/{id}/resources/{rid}/secrets (vercel-api.md §6.1) → 201.
  net::HttpResult update_resource_secrets(const std::string& access_token,
                                          const std::string& installation_id,
                                          const std::string& resource_id,
                                          const model::Json& secrets, bool partial) const;
  // POST /v1/installations/{id}/events (§4.5) → 201.
  net::HttpResult create_event(const std::string& access_token, const std::string& installation_id,
                               const model::Json& event) const;

 private:
  net::HttpResult send(const std::string& method, const std::string& path,
                       const std::string& access_token, const model::Json& body) const;
  net::HttpClient& http_;
  std::string base_;
};

}  // namespace wharf::vercel
