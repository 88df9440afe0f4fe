// Vercel's identity as the sandbox plays it: an RSA-2048 signing key kept in the data dir,
// the JWKS and OpenID configuration documents, and OIDC tokens in Vercel's exact claim
// shapes (partner-api.md §2.3–2.4, vercel-api.md §2.12).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/json_check.h"
#include "util/clock.h"

namespace wharf::sandbox {

struct UserIdentity {
  std::string account_hex;  // sub = account:<account_hex>:user:<user_hex>
  std::string account_id;   // team_<account_hex>
  std::string user_hex;     // also the user_id claim
  std::string role;         // ADMIN | USER
  std::string email;
  std::string name;
};

class Identity {
 public:
  // Loads <data_dir>/signing-key.pem or generates it (mode 0600).
  Identity(const std::string& data_dir, std::string issuer, std::string audience,
           const util::Clock& clock);
  ~Identity();
  Identity(const Identity&) = delete;
  Identity& operator=(const Identity&) = delete;

  const std::string& issuer() const { return issuer_; }
  const std::string& audience() const { return audience_; }
  const std::string& kid() const { return kid_; }
  model::Json jwks() const;
  model::Json openid_configuration(const std::string& base_url) const;

  // Signs any claim set (RS256, header {alg, typ, kid}).
  std::string sign(const model::Json& claims) const;
  // User-auth token for a Partner API call (or an SSO id_token with type "id_token").
  std::string user_token(const std::string& installation_id, const UserIdentity& user,
                         const std::string& type = "access_token", int64_t ttl_s = 300) const;
  // System-auth token; installation_id/account_id absent for the pre-install plans call.
  std::string system_token(const std::optional<std::string>& installation_id,
                           const std::optional<std::string>& account_hex,
                           int64_t ttl_s = 300) const;
  model::Json user_claims(const std::string& installation_id, const UserIdentity& user,
                          const std::string& type, int64_t ttl_s) const;

 private:
  struct Key;
  std::unique_ptr<Key> key_;
  std::string issuer_, audience_, kid_;
  const util::Clock& clock_;
};

}  // namespace wharf::sandbox
