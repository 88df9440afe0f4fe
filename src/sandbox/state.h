// The sandbox's picture of the world, kept as Vercel would keep it: one JSON document,
// locked for every access and written to <data dir>/sandbox-state.json (atomic rename)
// after every change, so a restarted sandbox carries on where it stopped.
//
// Top-level keys (each owned by the module named):
//   integration     config echo: clientId, partnerUrl, … (app)
//   installations   icfg -> {id, accountHex, accountId, status (active | pending_deletion |
//                   finalized), accessTokens [..], tokenRotations, users {userHex -> {role,
//                   email, name}}, account {name, url, contact}, billingPlan, notification,
//                   externalId, createdAt, deletedAt, finalizedAt}                 (driver,
//                   vercel_api)
//   resources       icfg -> partnerId -> {id, internalId, productId, name, status, metadata,
//                   billingPlan, notification, protocolSettings, ownership, secrets [Secret],
//                   createdAt, updatedAt, deleted}                                 (driver,
//                   vercel_api)
//   billing         icfg -> [{receivedAt, day, body}]   (vercel_api)
//   invoices        icfg -> invoiceId -> Invoice         (vercel_api, driver)
//   balances        icfg -> {timestamp, balances}        (vercel_api)
//   events          [{receivedAt, installationId, event, refresh}]               (vercel_api)
//   ssoCodes        code -> {installationId, userHex, state, expiresAt, used}     (driver,
//   vercel_api) experimentation icfg -> resourceId -> {items {id -> item}, globalConfig}
//   (vercel_api) deploymentActions [..]                               (vercel_api) transfers
//   claimId -> {...}                     (driver) webhooks        [{id, type, status, attempts,
//   ...}]  (driver)
#pragma once
#include <functional>
#include <mutex>
#include <string>

#include "model/json_check.h"

namespace wharf::sandbox {

class State {
 public:
  explicit State(std::string path);  // loads the file if it exists

  // Runs `fn` on the locked document and saves it afterwards (also when fn throws, nothing
  // is saved and the in-memory document is restored).
  template <typename Fn>
  auto mutate(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    model::Json before = doc_;
    try {
      if constexpr (std::is_void_v<decltype(fn(doc_))>) {
        fn(doc_);
        save_locked();
      } else {
        auto result = fn(doc_);
        save_locked();
        return result;
      }
    } catch (...) {
      doc_ = std::move(before);
      throw;
    }
  }

  template <typename Fn>
  auto read(Fn&& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    return fn(static_cast<const model::Json&>(doc_));
  }

  model::Json snapshot() const;

 private:
  void save_locked();

  std::string path_;
  mutable std::mutex mu_;
  model::Json doc_;
};

}  // namespace wharf::sandbox
