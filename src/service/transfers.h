// Resource transfers ("claim deployments", partner-api.md §5.16–5.18), in both shapes:
// current  POST …/resource-transfer-requests → {providerClaimId}; GET …/{id}/verify; POST
// …/{id}/accept → 204 legacy   PUT …/resource-transfer-requests/{transferId} → 204; POST
// …/{id}/verify → {}; POST …/{id}/accept → {} Several targets may verify a claim; the first accept
// wins and moves the resources (their databases, data and credentials) to the target in one
// transaction, so concurrent accepts can never move a resource twice. A completed claim answers
// only its winner's repeat.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/catalog.h"
#include "model/json_check.h"
#include "service/installations.h"
#include "store/store.h"
#include "util/clock.h"

namespace wharf::service {

class TransferService {
 public:
  TransferService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                  InstallationService& installations, const util::Clock& clock);

  // Current shape: body {resourceIds, expiresAt (epoch ms)} → {providerClaimId}.
  model::Json create(const std::string& source_installation_id, const model::Json& body);
  // Legacy shape: body {claimId?, resourceIds, expiration (epoch ms)}; 409 if the id exists.
  void create_legacy(const std::string& source_installation_id, const std::string& transfer_id,
                     const model::Json& body);
  // `target_installation_id` is the path installation. Returns the verify body.
  model::Json verify(const std::string& target_installation_id, const std::string& claim_id);
  // Returns true for a legacy claim (answered 200 {}), false for the current shape (204).
  bool accept(const std::string& target_installation_id, const std::string& claim_id);

  // Called in the accept's transaction for every resource moved (its row already in the
  // target installation): what Vercel knows of it under the old one (the flags product's
  // experimentation items) is told again under the new one. Set before serving.
  using MovedFn = std::function<void(store::WriteTx&, const store::ResourceRow& row,
                                     const std::string& from_installation_id)>;
  void on_moved(MovedFn fn) { moved_.push_back(std::move(fn)); }

 private:
  std::vector<std::string> check_resources(store::ReadTx& tx, const std::string& source,
                                           const std::vector<std::string>& ids) const;
  store::TransferClaimRow require_open(store::ReadTx& tx, const std::string& claim_id,
                                       const std::string& target, bool allow_winner) const;
  void insert(const std::string& id, const std::string& source,
              const std::vector<std::string>& resource_ids, int64_t expires_ms, bool legacy);

  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  InstallationService& installations_;
  const util::Clock& clock_;
  std::vector<MovedFn> moved_;
};

}  // namespace wharf::service
