// Installation credential rotation (flows.md F18, vercel-api.md §4.4): a new installation
// access token from Vercel, obtained with the current token and the integration's client
// secret, stored in place of the old one in one transaction. The old token stays valid at
// Vercel, so calls already sent with it finish; every call sent after the commit reads the
// new one. Driven by `wharf credentials rotate` and by an optional schedule in `serve`.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "net/http_client.h"
#include "service/installations.h"
#include "store/store.h"
#include "util/clock.h"
#include "vercel/api.h"

namespace wharf::service {

class CredentialRotation {
 public:
  // Sends one call with a bearer token (vercel::Client::send).
  using Send = std::function<net::HttpResult(const vercel::Call& call, const std::string& bearer,
                                             const std::string& installation_id)>;
  struct Options {
    std::string client_id;
    std::string client_secret;
    // Scheduled rotation: a token older than this is rotated (0: only near expiry).
    int64_t max_age_ms = 0;
    // A token whose known expiry is this close is rotated whatever its age.
    int64_t renew_before_expiry_ms = 7LL * 24 * 3600 * 1000;
  };
  struct Result {
    bool ok = false;
    int status = 0;                     // Vercel's HTTP status (0: no answer, or not sent)
    std::string error;                  // why not, for a person (never a token)
    std::optional<int64_t> expires_ms;  // the new token's expiry, when Vercel gave one
  };

  CredentialRotation(store::Store& store, InstallationService& installations,
                     const util::Clock& clock, Options options, Send send);

  // Rotates one installation's token now.
  Result rotate(const std::string& installation_id);
  // Whether an installation's token is due for scheduled rotation at `now_ms`.
  bool due(const store::InstallationRow& row, int64_t now_ms) const;
  // Rotates every active installation whose token is due, one by one; failures are logged
  // (and retried at the next run). Returns each installation's result.
  std::vector<std::pair<std::string, Result>> rotate_due();

 private:
  store::Store& store_;
  InstallationService& installations_;
  const util::Clock& clock_;
  Options options_;
  Send send_;
};

}  // namespace wharf::service
