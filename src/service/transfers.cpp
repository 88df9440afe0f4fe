#include "service/transfers.h"

#include "product/registry.h"
#include "vercel/outbox.h"

#include "model/api_error.h"
#include "model/transfer.h"
#include "util/ids.h"
#include "util/log.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

namespace {

constexpr const char* kGoneUserMessage =
    "Some of these resources were deleted or moved since the claim was made, so they cannot be "
    "transferred.";

bool contains(const Json& arr, const std::string& v) {
  for (const auto& x : arr)
    if (x == v) return true;
  return false;
}

}  // namespace

TransferService::TransferService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                                 InstallationService& installations, const util::Clock& clock)
    : store_(store), catalog_(std::move(catalog)), installations_(installations), clock_(clock) {}

std::vector<std::string> TransferService::check_resources(
    store::ReadTx& tx, const std::string& source, const std::vector<std::string>& ids) const {
  std::vector<std::string> problems;
  for (const auto& id : ids) {
    auto row = tx.resource(id);
    if (!row || row->installation_id != source || row->deleted_ms) problems.push_back(id);
  }
  return problems;
}

void TransferService::insert(const std::string& id, const std::string& source,
                             const std::vector<std::string>& resource_ids, int64_t expires_ms,
                             bool legacy) {
  store_.write([&](store::WriteTx& tx) {
    installations_.require_active(tx, source);
    if (tx.transfer_claim(id))
      throw ApiError::conflict("transfer " + id + " already exists")
          .with_user("This transfer was already requested.");
    auto bad = check_resources(tx, source, resource_ids);
    if (!bad.empty())
      throw ApiError::unprocessable("resources not owned by installation " + source + ": " +
                                    Json(bad).dump())
          .with_user(
              "Some of these resources do not exist or do not belong to this team, so "
              "they cannot be transferred.");
    store::TransferClaimRow row;
    row.id = id;
    row.source_installation_id = source;
    row.resource_ids_json = Json(resource_ids).dump();
    row.expires_ms = expires_ms;
    row.legacy = legacy;
    row.created_ms = clock_.now_ms();
    tx.put_transfer_claim(row);
  });
  util::log_info("transfer claim created")
      .str("claim", id)
      .str("source", source)
      .num("resources", static_cast<int64_t>(resource_ids.size()));
}

Json TransferService::create(const std::string& source, const Json& body) {
  auto req = model::TransferRequest::parse(body, clock_.now_ms());
  std::string id = util::new_id("claim");
  insert(id, source, req.resource_ids, req.expires_ms, false);
  return Json{{"providerClaimId", id}};
}

void TransferService::create_legacy(const std::string& source, const std::string& transfer_id,
                                    const Json& body) {
  auto req = model::TransferRequest::parse_legacy(body, clock_.now_ms());
  insert(transfer_id, source, req.resource_ids, req.expires_ms, true);
}

store::TransferClaimRow TransferService::require_open(store::ReadTx& tx,
                                                      const std::string& claim_id,
                                                      const std::string& target,
                                                      bool allow_winner) const {
  installations_.require_active(tx, target);
  auto claim = tx.transfer_claim(claim_id);
  if (!claim) throw ApiError::not_found("transfer claim " + claim_id + " not found");
  if (claim->status == "completed") {
    if (allow_winner && claim->target_installation_id == target) return *claim;
    throw ApiError::conflict("transfer claim " + claim_id + " is already completed")
        .with_user("These resources were already claimed.");
  }
  if (claim->expires_ms <= clock_.now_ms())
    throw ApiError::conflict("transfer claim " + claim_id + " has expired")
        .with_user("This claim link has expired. Ask for a new one.");
  if (claim->source_installation_id == target)
    throw ApiError::unprocessable("the target installation is the claim's source")
        .with_user(
            "These resources already belong to this team. Choose another team to "
            "claim them into.");
  return *claim;
}

Json TransferService::verify(const std::string& target, const std::string& claim_id) {
  bool legacy = false;
  store_.write([&](store::WriteTx& tx) {
    auto claim = require_open(tx, claim_id, target, /*allow_winner=*/false);
    std::vector<std::string> ids = Json::parse(claim.resource_ids_json);
    auto gone = check_resources(tx, claim.source_installation_id, ids);
    if (!gone.empty())
      throw ApiError::unprocessable("resources no longer available for transfer: " +
                                    Json(gone).dump())
          .with_user(kGoneUserMessage);
    Json verified = Json::parse(claim.verified_by_json);
    if (!contains(verified, target)) {
      verified.push_back(target);
      claim.verified_by_json = verified.dump();
      tx.put_transfer_claim(claim);
    }
    legacy = claim.legacy;
  });
  if (legacy) return Json::object();
  // The resources keep their plans; the target needs no different plan.
  return Json{{"valid", true}};
}

bool TransferService::accept(const std::string& target, const std::string& claim_id) {
  bool legacy = false;
  bool moved = false;
  // One write transaction: the writer lock serialises concurrent accepts, so exactly one
  // sees the claim open and moves the resources; the others see it completed.
  store_.write([&](store::WriteTx& tx) {
    auto claim = require_open(tx, claim_id, target, /*allow_winner=*/true);
    legacy = claim.legacy;
    if (claim.status == "completed") return;  // the winner repeating itself
    if (!contains(Json::parse(claim.verified_by_json), target))
      throw ApiError::conflict("transfer claim " + claim_id + " was not verified for " + target)
          .with_user("This claim has not been checked for this team yet. Start the claim again.");
    std::vector<std::string> ids = Json::parse(claim.resource_ids_json);
    auto gone = check_resources(tx, claim.source_installation_id, ids);
    if (!gone.empty())
      throw ApiError::unprocessable("resources no longer available for transfer: " +
                                    Json(gone).dump())
          .with_user(kGoneUserMessage);
    int64_t now = clock_.now_ms();
    for (const auto& id : ids) {
      auto row = tx.resource(id);
      row->installation_id = target;
      row->idempotency_key.reset();  // keys are scoped to the installation that used them
      row->updated_ms = now;
      tx.put_resource(*row);
      for (const auto& fn : moved_) fn(tx, *row, claim.source_installation_id);
      // A remote product with a transfer hook is told from the outbox (B6).
      const model::Product* p = catalog_->product(row->product_id);
      const product::Descriptor* kind = p ? product::builtin_kinds().descriptor(p->kind) : nullptr;
      if (kind && kind->capabilities.async_provisioning)
        vercel::Outbox::enqueue_product_call(
            tx, target, row->id, "transfer",
            Json{{"from", claim.source_installation_id}, {"to", target}}, now);
    }
    claim.status = "completed";
    claim.target_installation_id = target;
    claim.completed_ms = now;
    tx.put_transfer_claim(claim);
    moved = true;
  });
  if (moved) util::log_info("transfer accepted").str("claim", claim_id).str("target", target);
  return legacy;
}

}  // namespace wharf::service
