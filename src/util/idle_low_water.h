// A connection pool's low-water mark of idle connections: how many sat idle through a whole
// period, so the pool can close that many without having needed them (its size then follows
// recent concurrency instead of the highest concurrency ever seen). Not thread-safe: used
// under the pool's own lock.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>

namespace wharf::util {

class IdleLowWater {
 public:
  using Clock = std::chrono::steady_clock;

  // A connection was taken from the idle ones; `idle_after` are left.
  void taken(size_t idle_after) { low_ = std::min(low_, idle_after); }

  // Once per `period` (0 otherwise): how many of the `idle_now` idle connections to close,
  // never leaving fewer than `keep`. Starts the next period.
  size_t surplus(size_t idle_now, size_t keep, Clock::time_point now, Clock::duration period) {
    if (!started_) {
      started_ = true;
      since_ = now;
      low_ = idle_now;
      return 0;
    }
    if (now - since_ < period) return 0;
    size_t spare = idle_now > keep ? idle_now - keep : 0;
    size_t close = std::min(std::min(low_, idle_now), spare);
    since_ = now;
    low_ = idle_now - close;
    return close;
  }

 private:
  bool started_ = false;
  Clock::time_point since_{};
  size_t low_ = std::numeric_limits<size_t>::max();
};

}  // namespace wharf::util
