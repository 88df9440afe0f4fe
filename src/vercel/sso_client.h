// SSO Token Exchange (vercel-api.md §8.1): trades the one-time `code` from the Redirect Login
// URL for an id_token. No Authorization header; the integration's client id and secret
// authenticate the call. The code is single-use, so a failed exchange is never retried
// here (flows.md §2.1 step 8) — the user starts SSO again.
#pragma once
#include <functional>
#include <string>

#include "net/http_client.h"

namespace wharf::vercel {

struct SsoExchangeResult {
  bool ok = false;
  std::string id_token;  // when ok; never stored or logged
  int status = 0;        // Vercel's HTTP status, 0 when no response arrived
  std::string error;     // a short human reason when !ok (no secrets)
};

class SsoClient {
 public:
  using Post = std::function<net::HttpResult(const std::string& url, const std::string& body)>;

  SsoClient(std::string api_base_url, std::string client_id, std::string client_secret, Post post);

  SsoExchangeResult exchange(const std::string& code, const std::string& state) const;

 private:
  std::string url_;
  std::string client_id_;
  std::string client_secret_;
  Post post_;
};

}  // namespace wharf::vercel
