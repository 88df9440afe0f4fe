// Installations (partner-api.md §5.1–5.4) and installation-level billing (§8.1).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "model/catalog.h"
#include "model/installation.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::service {

// Who is acting, as established by the verified token.
struct Actor {
  std::string account_id;
  std::string user_id;  // empty for system tokens
};

class InstallationService {
 public:
  InstallationService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                      const util::SecretBox& box, const util::Clock& clock);

  // Creates the installation, or updates it in place (new credentials replace old).
  model::InstallationState upsert(const std::string& id, const Actor& actor,
                                  const model::UpsertInstallationRequest& req);
  // 404 for unknown or uninstalled installations.
  model::InstallationState get(const std::string& id);
  model::InstallationState update(const std::string& id,
                                  const model::UpdateInstallationRequest& req);
  // Billing's say in an uninstall: whether anything is still owed (Delete Installation then
  // answers finalized: false), and a call once an installation was uninstalled.
  struct BillingHooks {
    std::function<bool(store::ReadTx&, const store::InstallationRow&, int64_t now_ms)> owes;
    std::function<void()> uninstalled;
    // The installation took an installation-scope plan (Update Installation), in its
    // transaction: a sign-up charge.
    std::function<void(store::WriteTx&, const std::string& installation_id,
                       const std::string& plan_id, int64_t now_ms)>
        plan_taken;
  };
  void set_billing_hooks(BillingHooks hooks) { billing_ = std::move(hooks); }

  // Uninstalls; returns `finalized` (true when nothing is owed). Repeats answer the same.
  bool remove(const std::string& id, const model::DeleteInstallationRequest& req);

  // Throws 404 unless the installation exists and is active.
  store::InstallationRow require_active(store::ReadTx& tx, const std::string& id) const;
  // The decrypted Vercel access token of an installation (for the Vercel API client).
  std::optional<std::string> access_token(const std::string& id);
  // Account information (vercel-api.md §4.2): the team's name, its Vercel URL and the best
  // contact, as Upsert Installation gave it and Get Account Info last confirmed it; read
  // again after every first install and on integration-configuration.transferred
  // (request_account_info queues the read through the outbox).
  std::optional<model::Json> account(const std::string& id);
  void request_account_info(const std::string& id);
  // The outbox's delivered hook: a Get Account Info answer replaces the stored account.
  void account_read(store::WriteTx& tx, const store::OutboxRow& item, const std::string& response);
  // Stores a rotated access token in place of the current one, in one transaction: calls
  // sent before keep the old token (still valid at Vercel), calls sent after read the new
  // one. False (nothing written) when the installation is no longer active.
  bool replace_access_token(const std::string& id, const std::string& token,
                            std::optional<int64_t> expires_ms);

 private:
  model::InstallationState state_of(const store::InstallationRow& row) const;
  const model::Plan& require_installation_plan(const std::string& plan_id) const;
  static std::string token_aad(const std::string& id) {
    return "installation:" + id + ":access_token";
  }

  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  const util::SecretBox& box_;
  const util::Clock& clock_;
  BillingHooks billing_;
};

}  // namespace wharf::service
