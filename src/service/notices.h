// Billing notices to the installation's contact (flows.md F19: "notify the contact from Get
// Account Information"). Wharf sends no e-mail itself: each notice is POSTed, signed, to the
// provider's own endpoint (WHARF_NOTICE_URL, e.g. a function that mails it), with the
// contact Vercel gave for the team, so the provider's mailer needs no Vercel integration.
//
// Body: {id, type ("billing.notice"), installationId, level, title, message, status?
// (the installation status sent to Vercel with it: suspended | resumed), contact {email,
// name?} | null, team {name?, url?}, dashboardUrl?, createdAt (ISO-8601)}; header
// `Wharf-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` as in the product
// protocol (docs/product-protocol.md §2), and `Idempotency-Key: <id>` (stable across retries).
// Notices go through the outbox in a lane of their own per installation (a mailer that is
// down never holds up what Vercel is told), retried until the endpoint answers 2xx.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "model/json_check.h"
#include "net/http_client.h"
#include "store/store.h"
#include "util/clock.h"

namespace wharf::service {

class NoticeService {
 public:
  struct Options {
    std::string url;     // WHARF_NOTICE_URL ("" = no notices)
    std::string secret;  // WHARF_NOTICE_SECRET (signs each notice)
    std::string dashboard_url;
  };
  static constexpr const char* kKind = "notice";

  NoticeService(const net::HttpClient& http, const util::Clock& clock, Options options);
  bool enabled() const { return !options_.url.empty(); }

  // Queues a notice for the installation's contact, inside the caller's transaction (the one
  // that changes what the notice is about). `notification`: Vercel's {level, title, message}.
  void enqueue(store::WriteTx& tx, const store::InstallationRow& installation,
               const model::Json& notification, const std::optional<std::string>& status,
               int64_t now_ms) const;
  // The outbox handler of kind "notice".
  net::HttpResult deliver(const store::OutboxRow& item) const;

 private:
  const net::HttpClient& http_;
  const util::Clock& clock_;
  Options options_;
};

}  // namespace wharf::service
