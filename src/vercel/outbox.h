// The durable outbox: every call that reports a state change to Vercel is written to the
// store in the same transaction as the change (enqueue), and a worker delivers it later —
// so a change is never committed without its report, and a crash or a Vercel outage only
// delays delivery. Delivery is at least once, in order per installation.
//
// Outcomes: 2xx → delivered; 429, 5xx, timeouts and connection errors → retried with
// exponential backoff and jitter, honouring Retry-After and error.limit.reset; 401/403/404/
// 410 → dead ("installation gone"); any other 4xx → dead with the response body kept.
//
// Concurrency: calls of different lanes go out in parallel, at most Options::max_in_flight at
// once, one per lane at a time (so each lane's order holds); the worker keeps dispatching as
// calls finish, so one slow installation only occupies its own slot. An installation's calls
// to Vercel share its lane.
//
// Recording: the outcomes of calls answered at about the same time are recorded together, in
// one transaction (one commit, one fsync), by a recorder thread; a lane stays busy until its
// call's outcome has committed, so its next call never goes out before that (a crash in
// between only sends the answered call again: at least once, and still in order). The
// senders go on with other lanes' calls meanwhile. The due heads are read again when the
// last read's are handed out and lanes have come free, not after every call: a read costs
// the same however many heads it finds.
//
// Product calls: an item whose kind starts with "product." is a call on a product (a
// provider's backend: provision, change, delete) that must be retried until the product
// confirms it. It goes to the ProductCallFn, not to Vercel, in a lane of its own per
// resource, and its answer is judged like Vercel's: 2xx done, a transport error, 429 or 5xx
// retried with backoff, any other 4xx dead.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "model/json_check.h"
#include "net/http_client.h"
#include "store/store.h"
#include "util/clock.h"
#include "vercel/api.h"

namespace wharf::vercel {

class Outbox {
 public:
  struct Options {
    int64_t base_backoff_ms = 1000;
    int64_t max_backoff_ms = 15 * 60 * 1000;
    int64_t give_up_after_ms = 48LL * 3600 * 1000;  // retryable failures for this long → dead
    size_t batch = 64;
    int64_t poll_ms = 250;
    size_t max_in_flight = 8;  // calls out at once, each of a different installation
    // Replicas on one store (Store::shared): each claims the lanes it sends with a lease
    // (store::claim_outbox_heads) held until the call's outcome is recorded, or lease_ms at
    // most, so one lane's calls go out from one replica at a time, in order; a dead replica's
    // lanes are taken over when its leases end. `owner` names this replica ("" = generated).
    bool shared = false;
    std::string owner;
    int64_t lease_ms = 120000;
  };
  using TokenFn = std::function<std::optional<std::string>(const std::string& installation_id)>;

  Outbox(store::Store& store, net::HttpClient& http, std::string base_url, TokenFn token,
         const util::Clock& clock, Options options);
  ~Outbox();

  // Adds a call to the outbox inside the caller's transaction; `lane` "" is the installation's
  // own lane (see OutboxRow::lane).
  static void enqueue(store::WriteTx& tx, const std::string& installation_id, const Call& call,
                      int64_t now_ms, const std::string& lane = "");
  // The same with the body already rendered as JSON text (`call.body` unused): the billing
  // pass writes its large bodies straight to text instead of building a DOM to dump.
  static void enqueue(store::WriteTx& tx, const std::string& installation_id, const Call& call,
                      std::string body_json, int64_t now_ms);
  // POST /v1/installations/{id}/events {event} (vercel-api.md §4.5).
  static void enqueue_event(store::WriteTx& tx, const std::string& installation_id,
                            const model::Json& event, int64_t now_ms);
  // resource.updated for a resource changed on our side: Vercel re-reads it (Get Resource).
  static void enqueue_resource_updated(store::WriteTx& tx, const store::ResourceRow& row,
                                       int64_t now_ms);
  // A product call on a resource (kind "product.<what>"), in the resource's own lane.
  static void enqueue_product_call(store::WriteTx& tx, const std::string& installation_id,
                                   const std::string& resource_id, const std::string& what,
                                   const model::Json& body, int64_t now_ms);

  using ProductCallFn = std::function<net::HttpResult(const store::OutboxRow& item)>;
  void set_product_calls(ProductCallFn fn) { product_calls_ = std::move(fn); }

  // A call to Vercel whose requests are made when it goes out (the flags' Global Config sync:
  // read the store's digest, write conditionally, re-read on 412): an item of `kind` is
  // delivered by `fn` with the installation's token, and its answer is judged like a plain
  // call's. Set before start().
  using HandlerFn = std::function<net::HttpResult(const store::OutboxRow& item,
                                                  const Client& client, const std::string& token)>;
  void set_handler(const std::string& kind, HandlerFn fn) { handlers_[kind] = std::move(fn); }

  // Hooks run inside the transaction that records a delivery's outcome, so what follows from
  // it (an invoice's Vercel id, an installation finalized, billing stopped) commits with it.
  struct Hooks {
    std::function<void(store::WriteTx&, const store::OutboxRow&, const std::string& response)>
        delivered;
    std::function<void(store::WriteTx&, const store::OutboxRow&, int64_t now_ms)> gone;
    // After the outcome committed (work that needs its own transactions or the products).
    std::function<void(const store::OutboxRow&)> after_commit;
  };
  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

  // One delivery pass over the due items (the head of each installation, delivered in
  // parallel up to max_in_flight, their outcomes recorded together), waiting for all; returns
  // how many were delivered.
  int deliver_due();
  void start();  // background worker
  void stop();
  void wake();  // deliver soon (after an enqueue)
  // Waits until no pending item is due (tests and the test clock); false on timeout.
  bool wait_idle(int64_t timeout_ms);
  int64_t delivered_total() const { return delivered_.load(); }

 private:
  // One call made and its answer judged, not yet recorded: `item` carries the new state,
  // attempts, next attempt and last status/error.
  struct Attempt {
    store::OutboxRow item;
    std::string response;  // the answer's body (the delivered hook reads it)
    std::string vercel_id;
    bool gone = false;  // "installation gone": the gone hook runs with the outcome
    int64_t now_ms = 0;
  };
  Attempt attempt(store::OutboxRow item) const;
  // The due lane heads: read, or claimed with leases when the store is shared.
  std::vector<store::OutboxRow> due_heads(int64_t now_ms);
  // attempt(); a failure (e.g. the token could not be read) is logged, nothing is returned and
  // the call stays pending.
  std::optional<Attempt> attempt_logged(store::OutboxRow item) const;
  // Records the outcomes in one transaction, each with its hooks; if that fails, each in a
  // transaction of its own, so one that cannot be recorded (it stays pending, and is sent
  // again) holds up no other. Returns, per attempt, whether its outcome committed.
  std::vector<bool> record(const std::vector<Attempt>& batch);
  void record_in(store::WriteTx& tx, const Attempt& a);
  // After the commit: the delivered count, the after-commit hook and the log line.
  void finish(const Attempt& a);
  int64_t backoff_ms(const store::OutboxRow& item, const net::HttpResult& result) const;

  store::Store& store_;
  Client client_;
  TokenFn token_;
  const util::Clock& clock_;
  Options options_;
  Hooks hooks_;
  ProductCallFn product_calls_;
  std::map<std::string, HandlerFn> handlers_;
  std::atomic<int64_t> delivered_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::thread worker_;
  // The background worker's pipeline (guarded by mu_): the dispatcher hands the due heads
  // of its last read (ready_) to the senders (queue_); a sender makes the call and passes the
  // answer to the recorder (answered_), which records what has accumulated in one
  // transaction and frees those lanes. busy_: lanes with a call out or its outcome not yet
  // committed; finished_: the ids recorded since the dispatcher last began reading the due
  // heads (a head read before its outcome committed must not go out again; their number is
  // also how many lanes a new read may find work in).
  void run_dispatcher();
  void run_sender();
  void run_recorder();
  std::vector<std::thread> senders_;
  std::thread recorder_;
  std::deque<store::OutboxRow> ready_;
  std::deque<store::OutboxRow> queue_;
  size_t sending_ = 0;  // calls handed to the senders and not yet answered
  std::vector<Attempt> answered_;
  bool senders_done_ = false;
  std::set<std::string> busy_;
  std::set<std::string> finished_;
  std::condition_variable work_cv_;
  std::condition_variable record_cv_;
};

}  // namespace wharf::vercel
