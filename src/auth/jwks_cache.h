// The verification keys Vercel publishes (partner-api.md §2.2), fetched and kept fresh.
//
// Readers (every authenticated request) take a short lock to copy one key pointer; the key
// set itself is immutable and replaced wholesale by a refresh, so a refresh never blocks
// verification and a failed refresh keeps the previous keys.
//
// Refreshes happen (a) on refresh_now(), (b) from an optional background thread every
// refresh_interval_ms (fetch_retry_ms after a failure), and (c) when a token names a kid we
// do not know — the documented way to pick up a key rotation. (c) is throttled across all
// kids to one fetch per unknown_kid_min_interval_ms, so a flood of tokens with made-up kids
// costs the JWKS endpoint at most one request per interval. All fetches are single-flight:
// a caller arriving while a fetch runs waits for that fetch instead of starting another.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "auth/jwk.h"
#include "net/http_client.h"
#include "util/clock.h"

namespace wharf::auth {

class JwksCache {
 public:
  struct Options {
    std::string url;
    int64_t refresh_interval_ms = 600000;  // PostHog caches for 600 s
    int64_t unknown_kid_min_interval_ms = 30000;
    int64_t fetch_retry_ms = 5000;  // background retry delay after a failed refresh
  };
  using FetchFn = std::function<net::HttpResult(const std::string& url)>;

  // `fetch` performs the HTTP GET (e.g. HttpClient::get; tests pass a fake). `clock` times
  // the unknown-kid throttle; the background thread sleeps in real (steady) time.
  JwksCache(Options options, FetchFn fetch, const util::Clock& clock);
  ~JwksCache();  // stops the background thread
  JwksCache(const JwksCache&) = delete;
  JwksCache& operator=(const JwksCache&) = delete;

  // Fetches now and waits for the result; true when a new key set was installed. On failure
  // the previous keys stay. If a fetch is already running, waits for it and returns its result.
  bool refresh_now();

  // Installs keys from a JWKS document directly (static configuration, tests). Same rules as
  // a fetched document: false, keys unchanged, if it is invalid or has no usable key.
  bool load_json(std::string_view jwks_json);

  // The key for `kid`. If unknown, triggers at most one (throttled, single-flight) refresh
  // and looks again; nullptr if still unknown.
  std::shared_ptr<const Jwk> find(const std::string& kid);
  // The key for `kid` from the current set only, never fetching.
  std::shared_ptr<const Jwk> find_cached(const std::string& kid) const;

  bool loaded() const;       // a key set has been installed (readiness)
  size_t key_count() const;  // usable keys in the current set

  void start_background();  // idempotent; fetches at once if nothing is loaded yet
  // Returns promptly (the thread sleeps on a condition variable); a fetch already in flight
  // is waited for, bounded by the HTTP client's timeout. Idempotent.
  void stop();

  int64_t refresh_count() const { return refresh_count_.load(); }  // fetch attempts
  int64_t refresh_failures() const { return refresh_failures_.load(); }
  int64_t last_success_ms() const { return last_success_ms_.load(); }  // clock ms; 0 = never

 private:
  using KeyMap = std::unordered_map<std::string, std::shared_ptr<const Jwk>>;

  // Performs one fetch with fetching_ already claimed by the caller; releases it.
  bool run_fetch();
  bool install(std::string_view jwks_json, std::string* error);
  void background_loop();

  const Options options_;
  const FetchFn fetch_;
  const util::Clock& clock_;

  mutable std::mutex keys_mu_;
  std::shared_ptr<const KeyMap> keys_;  // null until the first successful load

  // Single-flight state for all fetches.
  std::mutex fetch_mu_;
  std::condition_variable fetch_done_cv_;
  bool fetching_ = false;
  uint64_t fetch_generation_ = 0;  // bumped when a fetch finishes
  bool last_fetch_ok_ = false;
  std::atomic<bool> fetching_flag_{false};  // lock-free view of fetching_ for the fast path
  // Clock ms of the last unknown-kid fetch; INT64_MIN = never.
  std::atomic<int64_t> last_unknown_kid_fetch_ms_;

  std::atomic<int64_t> refresh_count_{0};
  std::atomic<int64_t> refresh_failures_{0};
  std::atomic<int64_t> last_success_ms_{0};

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  std::thread bg_thread_;
};

}  // namespace wharf::auth
