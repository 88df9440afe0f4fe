// Idempotency-Key handling (partner-api.md §1, §10 q21): a repeat of the same
// (installation, method, path, key) within the retention window replays the stored
// response instead of executing again; a concurrent duplicate waits for the first to finish
// and then replays it, so the operation never runs twice.
//
// The claim is a row in the store (so it holds across replicas sharing PostgreSQL): the
// first request inserts it as `pending` with a lease, executes, and stores the response as
// `done`. Only 2xx responses are kept: a failed request writes nothing, and its claim is
// released so a corrected retry can run. A pending claim whose lease expired belongs to a
// process that died mid-request and may be taken over.
#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "store/store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::service {

struct StoredResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  bool replayed = false;
};

class IdempotencyService {
 public:
  struct Options {
    int64_t retention_ms = 24LL * 3600 * 1000;
    int64_t lease_ms = 60000;  // how long a pending claim is honoured
    int64_t wait_ms = 15000;   // how long a duplicate waits for the first to finish
    // A duplicate is woken when a request of this process finishes or abandons its claim;
    // it looks at the store again at least this often (the first may run in another process).
    int64_t poll_interval_ms = 250;
  };
  // Stored response bodies are sealed with `box`: they can carry secrets (a provision
  // answers with the resource's credentials).
  IdempotencyService(store::Store& store, const util::Clock& clock, const util::SecretBox& box,
                     Options options);

  // Runs `execute` at most once per key; returns its response or the stored one.
  // Throws ApiError 409 if the key was used with a different body, or if the first request
  // is still running after `wait_ms`.
  StoredResponse run(const store::IdempotencyKey& key, const std::string& body,
                     const std::string& owner, const std::function<StoredResponse()>& execute);

  // The same in steps, for responses produced over time (a streamed REPL): begin() returns
  // the stored response to replay, or nothing when this request now holds the claim; the
  // holder then calls finish() with the complete response, or abandon() on failure.
  std::optional<StoredResponse> begin(const store::IdempotencyKey& key, const std::string& body,
                                      const std::string& owner);
  void finish(const store::IdempotencyKey& key, const std::string& owner,
              const StoredResponse& result);
  void abandon(const store::IdempotencyKey& key, const std::string& owner);

  // Deletes completed records older than the retention window; returns how many.
  int64_t purge();

 private:
  enum class Claim { kAcquired, kReplay, kBusy };
  Claim try_claim(const store::IdempotencyKey& key, const std::string& hash,
                  const std::string& owner, StoredResponse* replay);

  static std::string aad(const store::IdempotencyKey& key);
  void settled();  // a claim was finished or abandoned: wake the waiting duplicates

  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  uint64_t settled_count_ = 0;  // guarded by wait_mu_

  store::Store& store_;
  const util::Clock& clock_;
  const util::SecretBox& box_;
  Options options_;
};

}  // namespace wharf::service
