// The sandbox's picture of the world, kept as Vercel would keep it: one JSON document, locked
// for every access, and persisted incrementally so that a restarted sandbox carries on where it
// stopped (docs/decisions.md, "Sandbox state: snapshot + journal"):
//
//   <path>            a snapshot: the whole document, compact JSON, replaced by atomic rename
//   <path>.journal    an append-only journal, one JSON line per change since that snapshot:
//                       {"journal":1,"snapshot":{"bytes":N,"fnv1a":"<hex>"}}   (first line)
//                       {"ops":[op, …]}                                     (one per mutate)
//                     each op naming one collection (top-level key) and, for an object
//                     collection, one entry:
//                       {"op":"set","c":C,"k":K,"v":V}   entry K of C is now V
//                       {"op":"del","c":C,"k":K}         entry K of C removed
//                       {"op":"splice","c":C,"at":I,"del":N,"ins":[…]}   array C: N elements
//                                                        at I replaced by ins (appends are
//                                                        splices at the end)
//                       {"op":"put","c":C,"v":V}         collection C replaced whole (new, or
//                                                        not an object / array)
//                       {"op":"drop","c":C}              collection C removed
//
// A change costs what it changed on disk. When the journal grows past the snapshot (and
// Options::compact_min_bytes), the document is written as a new snapshot and the journal
// restarted. Loading reads the snapshot and replays the journal; a torn last line (a crash
// mid-write) is ignored, and a journal whose header names another snapshot (one written by
// a compaction that crashed before restarting the journal, or a state file replaced by hand)
// is stale and ignored.
//
// Collections (top-level keys), their entries, and the module owning each. Every collection
// and entry may also be null (absent); the loaded document is checked against this table and
// a file that does not fit is refused with an error naming it.
//   integration        object: config echo {clientId, partnerUrl, …}                   (app)
//   installations      object: icfg -> {id, accountHex, accountId, status (active |
//                      install_failed | pending_deletion | finalized), accessTokens [..],
//                      tokenRotations, users {userHex -> {role, email, name}}, installedBy,
//                      account {name, url, contact}, scopes, acceptedPolicies, billingPlan,
//                      notification, externalId, createdAt, deletedAt, finalizedAt}
//                                                                      (driver, vercel_api)
//   resources          object: icfg -> {partnerId -> {id, internalId, productId, name,
//                      status, metadata, billingPlan, notification, protocolSettings,
//                      ownership, secrets [Secret], createdAt, updatedAt, deleted, …}}
//                                                                      (driver, vercel_api)
//   billing            object: icfg -> [{receivedAt, day, body}]                 (vercel_api)
//   invoices           object: icfg -> {invoiceId -> Invoice}            (vercel_api, driver)
//   balances           object: icfg -> {timestamp, balances, timestamps}  (vercel_api, driver)
//   events             array:  [{id, receivedAt, installationId, event, refresh}] (vercel_api)
//   ssoCodes           object: code -> {installationId, userHex, state, expiresAt, createdAt,
//                      used, context}                                    (driver, vercel_api)
//   experimentation    object: icfg -> {resourceId -> {items {id -> item}, globalConfig}}
//                                                                               (vercel_api)
//   deploymentActions  array:  [{receivedAt, deploymentId, installationId, resourceId,
//                      action, update}]                                         (vercel_api)
//   transfers          object: claimId -> {claimId, legacy, sourceInstallationId,
//                      resourceIds, expiresAt, status, verifiedBy, …}                (driver)
//   webhooks           array:  [{id, type, status, attempts, lastStatus, createdAt,
//                      badSignature, flow, body (while pending), exchanges, …}]      (driver)
//   projects, deployments, checks, oauthCodes
//                      object: id -> entry; entries documented in sandbox/deployments.h
//                                                    (deployments, vercel_api, driver)
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "model/json_check.h"

namespace wharf::sandbox {

class State {
 public:
  struct Options {
    // The journal is compacted into a new snapshot once it is larger than the snapshot and
    // than this.
    uint64_t compact_min_bytes = 64 * 1024;
  };

  // Loads <path> and replays <path>.journal if they exist; throws std::runtime_error naming
  // the file when one is not a sandbox state document.
  explicit State(std::string path);
  State(std::string path, Options options);
  ~State();
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // Runs `fn` on the locked document and journals what it changed. When fn throws (or the
  // journal cannot be written), nothing is saved and the in-memory document is restored.
  // Costs a copy of the whole document (for the restore and the comparison); mutate_in is
  // cheaper when the collections touched are known.
  template <typename Fn>
  auto mutate(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    model::Json before = doc_;
    try {
      if constexpr (std::is_void_v<decltype(fn(doc_))>) {
        fn(doc_);
        commit_locked(before, doc_, nullptr);
      } else {
        auto result = fn(doc_);
        commit_locked(before, doc_, nullptr);
        return result;
      }
    } catch (...) {
      doc_ = std::move(before);
      throw;
    }
  }

  // As mutate, for a change confined to the named collections: `fn` gets a document holding
  // only those (the others are absent, so it must not read them either), and only they are
  // copied and compared. Touching another collection throws std::logic_error (no change).
  template <typename Fn>
  auto mutate_in(std::initializer_list<std::string_view> collections, Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names(collections.begin(), collections.end());
    model::Json part = take_locked(names);
    model::Json before = part;
    try {
      if constexpr (std::is_void_v<decltype(fn(part))>) {
        fn(part);
        commit_part_locked(before, part, names);
      } else {
        auto result = fn(part);
        commit_part_locked(before, part, names);
        return result;
      }
    } catch (...) {
      put_back_locked(std::move(before));
      throw;
    }
  }

  template <typename Fn>
  auto read(Fn&& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    return fn(static_cast<const model::Json&>(doc_));
  }

  model::Json snapshot() const;

  // Where the state lives and how big its files are now (tests, benchmarks).
  const std::string& path() const { return path_; }
  std::string journal_path() const { return path_ + ".journal"; }
  struct Sizes {
    uint64_t snapshot_bytes = 0;
    uint64_t journal_bytes = 0;
  };
  Sizes sizes() const;

  // The journal ops turning `before` into `after` (both whole documents, or parts holding
  // only `only`'s collections when `only` is not null); applying them to a copy of `before`
  // with apply_ops gives `after`. Exposed for tests.
  static model::Json diff(const model::Json& before, const model::Json& after,
                          const std::vector<std::string>* only = nullptr);
  static void apply_ops(model::Json& doc, const model::Json& ops);
  // Throws std::runtime_error (mentioning `where`) unless `doc` has the collections' shapes.
  static void validate(const model::Json& doc, const std::string& where);

 private:
  void load();
  void commit_locked(const model::Json& before, const model::Json& after,
                     const std::vector<std::string>* only);
  model::Json take_locked(const std::vector<std::string>& names);
  void commit_part_locked(const model::Json& before, model::Json& part,
                          const std::vector<std::string>& names);
  void put_back_locked(model::Json part);
  void append_locked(const std::string& line);
  void compact_locked();

  std::string path_;
  Options options_;
  mutable std::mutex mu_;
  model::Json doc_;
  int journal_fd_ = -1;  // open for appending when the journal matches the snapshot
  uint64_t snapshot_bytes_ = 0;
  uint64_t journal_bytes_ = 0;
};

}  // namespace wharf::sandbox
