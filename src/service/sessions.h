// Dashboard sessions started by Vercel SSO (flows.md §2.1 step 5). The browser holds an opaque
// random id (32 bytes from the CSPRNG, base64url); the store keeps only its SHA-256 with the
// installation, the user and an expiry. The CSRF token of a session is derived from its id
// (HMAC-SHA256), so it needs no storage and differs per session (synchronizer token).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/http_client.h"
#include "store/store.h"
#include "util/clock.h"
#include "vercel/api.h"

namespace wharf::service {

// Who signs in, from the verified id_token's claims.
struct SessionUser {
  std::string installation_id;
  std::string account_id;
  std::string user_id;
  std::string role;  // ADMIN | USER
  std::string name;
  std::string email;
};

struct Session {
  SessionUser user;
  int64_t expires_ms = 0;
  std::string csrf_token;
  bool admin() const { return user.role == "ADMIN"; }
};

class SessionService {
 public:
  SessionService(store::Store& store, const util::Clock& clock, int64_t ttl_ms);

  struct Started {
    std::string cookie_value;  // give to the browser; never stored or logged
    Session session;
  };
  Started start(const SessionUser& user);
  // The session a cookie value names; nullopt when the value is malformed (tampered), unknown,
  // expired, or its installation is no longer active.
  std::optional<Session> find(std::string_view cookie_value) const;
  // Signs out (a repeat or an unknown value does nothing).
  void end(std::string_view cookie_value);
  // Deletes expired sessions; returns how many.
  int64_t purge();

  // marketplace.member.changed (flows.md F20): `role` ADMIN or USER takes effect on the
  // member's next request; NONE ends their sessions on this installation at once. Any other
  // role (missing, unknown) is a doubt: Get Member Information is queued through the outbox
  // and its answer (member_read) decides. Returns the sessions changed.
  int64_t member_changed(const std::string& installation_id, const std::string& member_id,
                         const std::string& role);
  // Delivers a queued Get Member Information (the outbox's handler for kind "member") and
  // applies its answer to the member's sessions; 404 (not a member any more) ends them.
  net::HttpResult deliver_member_read(const store::OutboxRow& item, const vercel::Client& client,
                                      const std::string& token);

  // Constant-time check of a submitted CSRF token against the session's.
  static bool csrf_matches(const Session& session, std::string_view submitted);
  // Cookie values are exactly what start() makes: 43 base64url characters.
  static bool well_formed(std::string_view cookie_value);

  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  static std::string id_hash(std::string_view cookie_value);
  static std::string csrf_of(std::string_view cookie_value);

  store::Store& store_;
  const util::Clock& clock_;
  int64_t ttl_ms_;
};

}  // namespace wharf::service
