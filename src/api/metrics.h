// Process metrics rendered in the Prometheus text format at GET /metrics.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace wharf::api {

class Metrics {
 public:
  void observe_request(const std::string& route, const std::string& method, int status,
                       double elapsed_ms);
  void auth_failure(const std::string& reason);
  // A request authenticated with a mode its route accepts only leniently (auth::
  // EndpointPolicy). Returns true the first time for this (route, method, mode), so the
  // caller can log a warning once instead of on every request.
  bool auth_undocumented_mode(const std::string& route, const std::string& method,
                              std::string_view mode);
  void idempotent_replay() { replays_.fetch_add(1, std::memory_order_relaxed); }
  // Gauges/counters owned elsewhere (JWKS cache, store …) are read at scrape time.
  void add_external(const std::string& name, const std::string& help, const std::string& type,
                    std::function<double()> read);
  std::string render() const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> requests_;  // label set -> count
  std::map<std::string, uint64_t> auth_failures_;
  std::map<std::string, uint64_t> auth_undocumented_;  // label set -> count
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> bucket_counts_{};
  std::atomic<uint64_t> duration_count_{0};
  std::atomic<uint64_t> duration_sum_us_{0};
  std::atomic<uint64_t> replays_{0};
  struct External {
    std::string name, help, type;
    std::function<double()> read;
  };
  std::vector<External> externals_;
};

}  // namespace wharf::api
