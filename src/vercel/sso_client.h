// SSO Token Exchange (vercel-api.md §8.1): trades the one-time `code` from the Redirect Login
// URL for an id_token. No Authorization header; the integration's client id and secret
// authenticate the call. The code is single-use, so a failed exchange is never retried
// here (flows.md §2.1 step 8) — the user starts SSO again.
#pragma once
#include <functional>
#include <string>

#include "net/http_client.h"
#include "vercel/api.h"

namespace wharf::vercel {

struct SsoExchangeResult {
  bool ok = false;
  std::string id_token;  // when ok; never stored or logged
  int status = 0;        // Vercel's HTTP status, 0 when no response arrived
  std::string error;     // a short human reason when !ok (no secrets)
};

class SsoClient {
 public:
  // Sends a call without an installation token (Client::send with no bearer).
  using Send = std::function<net::HttpResult(const Call& call)>;

  SsoClient(std::string client_id, std::string client_secret, Send send);

  SsoExchangeResult exchange(const std::string& code, const std::string& state) const;

 private:
  std::string client_id_;
  std::string client_secret_;
  Send send_;
};

}  // namespace wharf::vercel
