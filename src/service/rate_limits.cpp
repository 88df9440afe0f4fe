#include "service/rate_limits.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/api_error.h"

namespace wharf::service {

namespace {

// Buckets untouched this long are full again and can be forgotten.
constexpr int64_t kPruneEveryMs = 60000;
constexpr size_t kPruneAbove = 10000;

}  // namespace

RateRule RateRule::parse(std::string_view text) {
  if (text == "0" || text == "off") return {};
  auto slash = text.find('/');
  std::string count(text.substr(0, slash));
  std::string_view unit = slash == std::string_view::npos ? "" : text.substr(slash + 1);
  size_t used = 0;
  double n = 0;
  try {
    n = std::stod(count, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  double window = unit == "s" ? 1 : unit == "min" ? 60 : unit == "h" ? 3600 : 0;
  if (count.empty() || used != count.size() || !(n > 0) || !std::isfinite(n) || window == 0)
    throw std::invalid_argument("must be N/s, N/min or N/h with N > 0 (e.g. 100/s), or off");
  return {n / window, std::max(1.0, n)};
}

RateLimits::RateLimits(RateLimitOptions options, const util::Clock& clock)
    : options_(options), clock_(clock) {}

int64_t RateLimits::peek(const std::string& key, const RateRule& rule, int64_t now) {
  auto [it, fresh] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = rule.burst;
  } else {
    double elapsed_s = static_cast<double>(std::max<int64_t>(0, now - b.updated_ms)) / 1000.0;
    b.tokens = std::min(rule.burst, b.tokens + elapsed_s * rule.per_second);
  }
  b.updated_ms = now;
  if (b.tokens >= 1.0) return 0;
  return static_cast<int64_t>(std::ceil((1.0 - b.tokens) / rule.per_second * 1000.0));
}

void RateLimits::take(const std::string& key) {
  buckets_[key].tokens -= 1.0;
}

void RateLimits::check(std::initializer_list<std::pair<std::string, const RateRule*>> buckets,
                       const std::string& what) {
  int64_t now = clock_.now_ms();
  int64_t wait_ms = 0;
  {
    std::lock_guard lock(mu_);
    prune(now);
    for (const auto& [key, rule] : buckets)
      if (rule->enabled()) wait_ms = std::max(wait_ms, peek(key, *rule, now));
    if (wait_ms == 0) {
      for (const auto& [key, rule] : buckets)
        if (rule->enabled()) take(key);
      return;
    }
    ++refused_;
  }
  int64_t retry_s = std::max<int64_t>(1, (wait_ms + 999) / 1000);
  model::ApiError e(
      429, "rate_limited",
      "too many requests: " + what + "; retry after " + std::to_string(retry_s) + " s");
  e.user_message =
      "Too many requests. Please wait " + std::to_string(retry_s) + " s and try again.";
  e.retry_after_s = retry_s;
  throw e;
}

void RateLimits::prune(int64_t now) {
  if (buckets_.size() < kPruneAbove || now - pruned_ms_ < kPruneEveryMs) return;
  pruned_ms_ = now;
  for (auto it = buckets_.begin(); it != buckets_.end();)
    it = now - it->second.updated_ms > kPruneEveryMs ? buckets_.erase(it) : std::next(it);
}

void RateLimits::data_plane(const std::string& token_key, const std::string& installation_id) {
  check({{"dt:" + token_key, &options_.data_plane_token},
         {"di:" + installation_id, &options_.data_plane_installation}},
        "the database's request rate limit was reached");
}

void RateLimits::repl(const std::string& caller_key, const std::string& installation_id) {
  check({{"rc:" + installation_id + ":" + caller_key, &options_.repl},
         {"ri:" + installation_id, &options_.repl}},
        "the console's command rate limit was reached");
}

void RateLimits::sso_address(const std::string& client_address) {
  check({{"sa:" + client_address, &options_.sso}}, "too many sign-in attempts from this address");
}

void RateLimits::sso_installation(const std::string& installation_id) {
  check({{"si:" + installation_id, &options_.sso}}, "too many sign-ins to this installation");
}

uint64_t RateLimits::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

}  // namespace wharf::service
