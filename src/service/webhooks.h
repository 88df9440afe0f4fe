// Webhooks from Vercel (flows.md §3): the signature is checked over the raw body before
// anything else, every delivery is stored and de-duplicated by id, unknown types are kept
// and acknowledged, and `integration-configuration.removed` runs the uninstall path.
#pragma once
#include <functional>
#include <string>

#include "model/json_check.h"
#include "store/store.h"
#include "util/clock.h"

namespace wharf::service {

class WebhookService {
 public:
  // Runs the uninstall of an installation (cascading into its resources); must be
  // idempotent and tolerate an unknown or already-uninstalled installation.
  using UninstallFn = std::function<void(const std::string& installation_id)>;

  WebhookService(store::Store& store, std::string client_secret, const util::Clock& clock,
                 UninstallFn uninstall);

  // marketplace.invoice.* events go to billing (type, installation id, payload).
  using InvoiceFn = std::function<void(const std::string& type, const std::string& installation_id,
                                       const model::Json& payload)>;
  void on_invoice(InvoiceFn fn) { invoice_ = std::move(fn); }
  // integration-configuration.transferred: the installation moved to another team (its
  // account information is read again).
  void on_transferred(UninstallFn fn) { transferred_ = std::move(fn); }
  // marketplace.member.changed: (installation, memberId, role as sent: ADMIN, USER, NONE, or
  // anything else when Vercel's payload is not what F20 says).
  using MemberFn = std::function<void(const std::string& installation_id,
                                      const std::string& member_id, const std::string& role)>;
  void on_member_changed(MemberFn fn) { member_changed_ = std::move(fn); }
  // Any other event of an installation (deployments, projects, checks: DeploymentService);
  // the receiver ignores the types it does not handle.
  void on_other(InvoiceFn fn) { other_ = std::move(fn); }

  // `signature` is the x-vercel-signature header (hex HMAC-SHA1 of `raw_body` keyed with the
  // client secret). Throws ApiError 401 on a missing or wrong signature, 400 on a body that
  // is not a webhook envelope. Returns {"received": true, "duplicate": bool}.
  model::Json receive(const std::string& raw_body, const std::string& signature);

 private:
  store::Store& store_;
  std::string secret_;
  const util::Clock& clock_;
  UninstallFn uninstall_;
  InvoiceFn invoice_;
  UninstallFn transferred_;
  MemberFn member_changed_;
  InvoiceFn other_;
};

}  // namespace wharf::service
