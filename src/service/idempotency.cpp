#include "service/idempotency.h"

#include <algorithm>
#include <chrono>

#include "model/api_error.h"
#include "util/base64.h"
#include "util/crypto.h"
#include "util/log.h"

namespace wharf::service {

std::string IdempotencyService::aad(const store::IdempotencyKey& key) {
  return "idempotency:" + key.installation_id + "\n" + key.method + "\n" + key.path + "\n" +
         key.key;
}

IdempotencyService::IdempotencyService(store::Store& store, const util::Clock& clock,
                                       const util::SecretBox& box, Options options)
    : store_(store), clock_(clock), box_(box), options_(options) {}

IdempotencyService::Claim IdempotencyService::try_claim(const store::IdempotencyKey& key,
                                                        const std::string& hash,
                                                        const std::string& owner,
                                                        StoredResponse* replay) {
  Claim claim = Claim::kBusy;
  store_.write([&](store::WriteTx& tx) {
    int64_t now = clock_.now_ms();
    store::IdempotencyRow fresh;
    fresh.key = key;
    fresh.request_hash = hash;
    fresh.state = "pending";
    fresh.created_ms = now;
    fresh.lease_until_ms = now + options_.lease_ms;
    fresh.owner = owner;
    auto existing = tx.idempotency(key);
    if (!existing) {
      claim = tx.insert_idempotency(fresh) ? Claim::kAcquired : Claim::kBusy;
      return;
    }
    bool expired = existing->created_ms + options_.retention_ms <= now;
    bool abandoned = existing->state == "pending" && existing->lease_until_ms <= now;
    if (expired || abandoned) {
      tx.update_idempotency(fresh);
      claim = Claim::kAcquired;
      return;
    }
    if (existing->request_hash != hash)
      throw model::ApiError::conflict(
          "Idempotency-Key was already used for a different request body")
          .with_user("This request could not be completed. Please try again.");
    if (existing->state == "done") {
      replay->status = existing->status;
      replay->content_type = existing->content_type;
      auto sealed = util::base64_decode(existing->body);
      auto body_plain = sealed ? box_.open(*sealed, aad(key)) : std::nullopt;
      if (!body_plain) throw std::runtime_error("stored idempotent response does not decrypt");
      replay->body = std::move(*body_plain);
      replay->replayed = true;
      claim = Claim::kReplay;
      return;
    }
    claim = Claim::kBusy;
  });
  return claim;
}

std::optional<StoredResponse> IdempotencyService::begin(const store::IdempotencyKey& key,
                                                        const std::string& body,
                                                        const std::string& owner) {
  const std::string hash = util::to_hex(util::sha256(body));
  // The wait is measured on the steady clock: the injected clock may stand still in tests.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.wait_ms);
  StoredResponse replay;
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(wait_mu_);
      seen = settled_count_;
    }
    Claim claim = try_claim(key, hash, owner, &replay);
    if (claim == Claim::kReplay) return replay;
    if (claim == Claim::kAcquired) return std::nullopt;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      throw model::ApiError::conflict(
          "a request with this Idempotency-Key is still being processed; retry later")
          .with_user("This request is still being processed. Wait a moment and try again.");
    // Sleep until a claim settles here (or, for a first request in another process, until
    // the next look at the store), not on a fixed short poll of the store.
    std::unique_lock lock(wait_mu_);
    wait_cv_.wait_until(
        lock, std::min(deadline, now + std::chrono::milliseconds(options_.poll_interval_ms)),
        [&] { return settled_count_ != seen; });
  }
}

void IdempotencyService::settled() {
  {
    std::lock_guard lock(wait_mu_);
    ++settled_count_;
  }
  wait_cv_.notify_all();
}

void IdempotencyService::abandon(const store::IdempotencyKey& key, const std::string& owner) {
  // Release the claim so a later retry (with corrected input) can run.
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.idempotency(key);
    if (row && row->state == "pending" && row->owner == owner) tx.delete_idempotency(key);
  });
  settled();
}

void IdempotencyService::finish(const store::IdempotencyKey& key, const std::string& owner,
                                const StoredResponse& result) {
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.idempotency(key);
    if (!row || row->owner != owner) return;  // lease lost to a takeover; keep theirs
    if (result.status < 200 || result.status >= 300) return tx.delete_idempotency(key);
    row->state = "done";
    row->status = result.status;
    row->content_type = result.content_type;
    row->body = util::base64_encode(box_.seal(result.body, aad(key)));
    tx.update_idempotency(*row);
  });
  settled();
}

StoredResponse IdempotencyService::run(const store::IdempotencyKey& key, const std::string& body,
                                       const std::string& owner,
                                       const std::function<StoredResponse()>& execute) {
  if (auto replay = begin(key, body, owner)) return *replay;
  StoredResponse result;
  try {
    result = execute();
  } catch (...) {
    abandon(key, owner);
    throw;
  }
  finish(key, owner, result);
  return result;
}

int64_t IdempotencyService::purge() {
  int64_t n = 0;
  store_.write([&](store::WriteTx& tx) {
    n = tx.purge_idempotency(clock_.now_ms() - options_.retention_ms);
  });
  if (n > 0) util::log_info("idempotency records purged").num("count", n);
  return n;
}

}  // namespace wharf::service
