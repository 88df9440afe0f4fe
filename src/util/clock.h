// Injectable time source. Services and auth take a Clock& so tests control time
// (token expiry, idempotency windows, billing periods).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace wharf::util {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t now_ms() const = 0;
  int64_t now_s() const { return now_ms() / 1000; }
};

class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock for tests: starts at a fixed instant, moves only when told.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_(start_ms) {}
  int64_t now_ms() const override { return now_.load(); }
  void set_ms(int64_t ms) { now_.store(ms); }
  void advance_ms(int64_t ms) { now_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_;
};

// The system clock moved by an adjustable offset. Production runs with offset 0; test
// deployments (WHARF_TEST_CLOCK, the sandbox's /_sandbox/clock) move it forward to replay
// days or months of billing in seconds. Never moves backwards through set_ms.
class OffsetClock final : public Clock {
 public:
  int64_t now_ms() const override { return system_.now_ms() + offset_.load(); }
  int64_t offset_ms() const { return offset_.load(); }
  // Moves the clock forward by `ms` (negative values are ignored); returns the new time.
  int64_t advance_ms(int64_t ms) {
    if (ms > 0) offset_.fetch_add(ms);
    return now_ms();
  }
  // Sets the time, if later than now; returns the new time.
  int64_t set_ms(int64_t ms) {
    int64_t delta = ms - now_ms();
    return advance_ms(delta);
  }

 private:
  SystemClock system_;
  std::atomic<int64_t> offset_{0};
};

// UTC calendar (billing periods are calendar months, usage days are UTC dates).
int64_t day_start_ms(int64_t ms);
int64_t month_start_ms(int64_t ms);
int64_t next_month_start_ms(int64_t ms);  // start of the month after the one containing ms
std::string day_key(int64_t ms);          // YYYY-MM-DD

// ISO-8601 UTC with milliseconds, e.g. 2024-02-28T10:00:00.000Z.
std::string format_iso8601_ms(int64_t epoch_ms);
// Parses ISO-8601 date-times (Z or ±hh:mm offset, optional fraction); false if malformed.
bool parse_iso8601(const std::string& text, int64_t* epoch_ms);

}  // namespace wharf::util
