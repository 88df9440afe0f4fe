// Abuse limits: token buckets per caller on the paths where one caller can make Wharf work
// hard for it — the data plane (per database token and per installation), the REPL (per
// caller and per installation) and the SSO callback (per client address and per
// installation). Past a limit the caller gets 429 rate_limited with Retry-After; nothing else
// happens. Buckets live in this process's memory (each replica limits what it serves).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/clock.h"

namespace wharf::service {

// A rate: `per_second` sustained, bursts up to `burst`. Disabled when per_second is 0.
struct RateRule {
  double per_second = 0;
  double burst = 0;
  bool enabled() const { return per_second > 0; }

  // "200/s", "30/min", "1000/h" (burst = the count, i.e. one window's worth), or "0"/"off"
  // (no limit). Throws std::invalid_argument with a message naming the expected form.
  static RateRule parse(std::string_view text);
};

struct RateLimitOptions {
  RateRule data_plane_token{1000, 1000};         // WHARF_RATE_LIMIT_TOKEN
  RateRule data_plane_installation{5000, 5000};  // WHARF_RATE_LIMIT_INSTALLATION
  RateRule repl{20, 20};                         // WHARF_RATE_LIMIT_REPL (caller and installation)
  RateRule sso{0.5, 30};                         // WHARF_RATE_LIMIT_SSO: 30/min
};

class RateLimits {
 public:
  RateLimits(RateLimitOptions options, const util::Clock& clock);

  // Each throws model::ApiError 429 (code rate_limited, Retry-After, a user message) when the
  // caller is over a limit; a refused call takes nothing from the other buckets.
  void data_plane(const std::string& token_key, const std::string& installation_id);
  void repl(const std::string& caller_key, const std::string& installation_id);
  void sso_address(const std::string& client_address);
  void sso_installation(const std::string& installation_id);

  const RateLimitOptions& options() const { return options_; }
  uint64_t refused() const;  // calls refused so far (for /metrics)

 private:
  struct Bucket {
    double tokens = 0;
    int64_t updated_ms = 0;
  };
  // Milliseconds until one unit is available in `key`'s bucket, 0 when one was taken.
  int64_t peek(const std::string& key, const RateRule& rule, int64_t now);
  void take(const std::string& key);  // after peek() found a unit in every bucket
  void check(std::initializer_list<std::pair<std::string, const RateRule*>> buckets,
             const std::string& what);
  void prune(int64_t now);

  RateLimitOptions options_;
  const util::Clock& clock_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  int64_t pruned_ms_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace wharf::service
