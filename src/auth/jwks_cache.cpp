#include "auth/jwks_cache.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <limits>

#include "util/log.h"

namespace wharf::auth {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::min();

// True while `now` is inside the throttle window that began at `last`. A clock that went
// backwards ends the window rather than extending it indefinitely.
bool throttled(int64_t last, int64_t now, int64_t interval) {
  if (last == kNever) return false;
  const int64_t elapsed = now - last;
  return elapsed >= 0 && elapsed < interval;
}

}  // namespace

JwksCache::JwksCache(Options options, FetchFn fetch, const util::Clock& clock)
    : options_(std::move(options)),
      fetch_(std::move(fetch)),
      clock_(clock),
      last_unknown_kid_fetch_ms_(kNever) {}

JwksCache::~JwksCache() {
  stop();
}

std::shared_ptr<const Jwk> JwksCache::find_cached(const std::string& kid) const {
  std::lock_guard<std::mutex> lock(keys_mu_);
  if (!keys_) return nullptr;
  auto it = keys_->find(kid);
  return it == keys_->end() ? nullptr : it->second;
}

bool JwksCache::loaded() const {
  std::lock_guard<std::mutex> lock(keys_mu_);
  return keys_ != nullptr;
}

size_t JwksCache::key_count() const {
  std::lock_guard<std::mutex> lock(keys_mu_);
  return keys_ ? keys_->size() : 0;
}

std::shared_ptr<const Jwk> JwksCache::find(const std::string& kid) {
  if (auto key = find_cached(kid)) return key;
  if (kid.empty()) return nullptr;

  // Fast path for floods of made-up kids: inside the throttle window with no fetch running
  // there is nothing to wait for, so answer without touching the fetch lock. Look once more
  // in case a fetch completed since the first look.
  if (!fetching_flag_.load() && throttled(last_unknown_kid_fetch_ms_.load(), clock_.now_ms(),
                                          options_.unknown_kid_min_interval_ms))
    return find_cached(kid);

  std::unique_lock<std::mutex> lock(fetch_mu_);
  if (fetching_) {
    // A fetch (maybe for this very rotation) is in flight: its result is what we want.
    const uint64_t generation = fetch_generation_;
    fetch_done_cv_.wait(lock, [&] { return fetch_generation_ != generation; });
    lock.unlock();
    return find_cached(kid);
  }
  if (auto key = find_cached(kid)) return key;
  const int64_t now = clock_.now_ms();
  if (throttled(last_unknown_kid_fetch_ms_.load(), now, options_.unknown_kid_min_interval_ms))
    return nullptr;
  last_unknown_kid_fetch_ms_.store(now);
  fetching_ = true;
  fetching_flag_.store(true);
  lock.unlock();

  util::log_info("jwks refresh for unknown kid").str("kid", kid.substr(0, 64));
  run_fetch();
  return find_cached(kid);
}

bool JwksCache::refresh_now() {
  std::unique_lock<std::mutex> lock(fetch_mu_);
  if (fetching_) {
    const uint64_t generation = fetch_generation_;
    fetch_done_cv_.wait(lock, [&] { return fetch_generation_ != generation; });
    return last_fetch_ok_;
  }
  fetching_ = true;
  fetching_flag_.store(true);
  lock.unlock();
  return run_fetch();
}

bool JwksCache::run_fetch() {
  // Releases the single-flight claim however this function exits, so an exception from the
  // fetch function can never leave later callers waiting forever.
  bool ok = false;
  struct Release {
    JwksCache* self;
    const bool* ok;
    ~Release() {
      std::lock_guard<std::mutex> lock(self->fetch_mu_);
      self->fetching_ = false;
      self->fetching_flag_.store(false);
      self->last_fetch_ok_ = *ok;
      ++self->fetch_generation_;
      self->fetch_done_cv_.notify_all();
    }
  } release{this, &ok};

  refresh_count_.fetch_add(1);
  std::string error;
  try {
    net::HttpResult result = fetch_(options_.url);
    if (!result.error.empty()) {
      error = result.error;
    } else if (result.status != 200) {
      error = "HTTP status " + std::to_string(result.status);
    } else {
      ok = install(result.body, &error);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!ok) {
    refresh_failures_.fetch_add(1);
    util::log_warn("jwks refresh failed").str("url", options_.url).str("error", error);
  }
  return ok;
}

bool JwksCache::load_json(std::string_view jwks_json) {
  std::string error;
  if (install(jwks_json, &error)) return true;
  util::log_warn("jwks load failed").str("error", error);
  return false;
}

bool JwksCache::install(std::string_view jwks_json, std::string* error) {
  auto parsed = parse_jwks(jwks_json, error);
  if (!parsed) return false;
  for (const auto& skipped : parsed->skipped)
    util::log_warn("jwks key skipped").str("key", skipped);
  // An empty set would lock every caller out; far more likely a broken response than a
  // deliberate revocation of all keys, so keep what we have.
  if (parsed->keys.empty()) {
    *error = "JWKS has no usable RSA signing key";
    return false;
  }
  auto map = std::make_shared<KeyMap>();
  for (auto& key : parsed->keys) map->emplace(key->kid(), std::move(key));
  const size_t count = map->size();
  {
    std::lock_guard<std::mutex> lock(keys_mu_);
    keys_ = std::move(map);
  }
  last_success_ms_.store(clock_.now_ms());
  util::log_info("jwks loaded")
      .num("keys", static_cast<int64_t>(count))
      .num("skipped", static_cast<int64_t>(parsed->skipped.size()));
  return true;
}

void JwksCache::start_background() {
  std::lock_guard<std::mutex> lock(bg_mu_);
  if (bg_thread_.joinable()) return;
  bg_stop_ = false;
  bg_thread_ = std::thread([this] { background_loop(); });
}

void JwksCache::stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
    thread = std::move(bg_thread_);
  }
  bg_cv_.notify_all();
  if (thread.joinable()) thread.join();
}

void JwksCache::background_loop() {
  int64_t wait_ms = loaded() ? options_.refresh_interval_ms : 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(bg_mu_);
      if (bg_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(wait_ms, 0)),
                          [this] { return bg_stop_; }))
        return;
    }
    wait_ms = refresh_now() ? options_.refresh_interval_ms : options_.fetch_retry_ms;
    wait_ms = std::max<int64_t>(wait_ms, 1);  // a zero interval must not spin
  }
}

}  // namespace wharf::auth
