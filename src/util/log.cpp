#include "util/log.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "util/clock.h"

namespace wharf::util {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

// Lines are handed to a writer thread that writes whatever has accumulated in one write()
// every few milliseconds, so under load hundreds of lines share a system call and no
// request thread ever wakes another. Warnings and errors, and a buffer grown past 64 KiB,
// are written at once. The destructor (process exit) drains the buffer.
class Writer {
 public:
  Writer() : thread_([this] { loop(); }) {}
  ~Writer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void append(const std::string& line, bool urgent) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ += line;
      wake = urgent || pending_.size() > kFlushBytes;
    }
    if (wake) cv_.notify_one();
  }

 private:
  void loop() {
    std::string batch;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait_for(lock, kFlushInterval, [this] { return stop_ || pending_.size() > kFlushBytes; });
      if (pending_.empty() && !stop_) continue;
      if (pending_.empty() && stop_) return;
      batch.swap(pending_);
      lock.unlock();
      std::fwrite(batch.data(), 1, batch.size(), stderr);
      std::fflush(stderr);
      batch.clear();
      lock.lock();
    }
  }

  static constexpr size_t kFlushBytes = 64 * 1024;
  static constexpr std::chrono::milliseconds kFlushInterval{5};
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool stop_ = false;
  std::thread thread_;
};

// format_iso8601_ms costs a gmtime_r and a snprintf; the date and time up to the second
// change once a second, so each thread keeps them and only writes the milliseconds.
void append_timestamp(std::string& out) {
  thread_local int64_t cached_second = -1;
  thread_local std::string cached_prefix;  // "2024-02-28T10:00:00."
  int64_t now = SystemClock().now_ms();
  int64_t second = now / 1000;
  if (second != cached_second) {
    std::string full = format_iso8601_ms(now);
    cached_prefix = full.substr(0, full.size() - 4);
    cached_second = second;
  }
  out += cached_prefix;
  int ms = static_cast<int>(now % 1000);
  out += static_cast<char>('0' + ms / 100);
  out += static_cast<char>('0' + ms / 10 % 10);
  out += static_cast<char>('0' + ms % 10);
  out += 'Z';
}

Writer& writer() {
  static Writer w;
  return w;
}

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level));
}
bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load();
}

void json_escape_to(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t plain = 0;  // the common case: nothing to escape, one append
  while (plain < s.size() && static_cast<unsigned char>(s[plain]) >= 0x20 && s[plain] != '"' &&
         s[plain] != '\\')
    ++plain;
  out.append(s.data(), plain);
  for (unsigned char c : s.substr(plain)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

Log::Log(LogLevel level, std::string_view msg)
    : enabled_(log_enabled(level)), urgent_(level >= LogLevel::kWarn) {
  if (!enabled_) return;
  line_.reserve(256);
  line_ += "{\"ts\":\"";
  append_timestamp(line_);
  line_ += "\",\"level\":\"";
  line_ += level_name(level);
  line_ += "\",\"msg\":\"";
  json_escape_to(line_, msg);
  line_ += '"';
}

Log::~Log() {
  if (!enabled_) return;
  line_ += "}\n";
  writer().append(line_, urgent_);
}

Log& Log::str(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  line_ += ",\"";
  json_escape_to(line_, key);
  line_ += "\":\"";
  json_escape_to(line_, value);
  line_ += '"';
  return *this;
}

Log& Log::num(std::string_view key, int64_t value) {
  if (!enabled_) return *this;
  line_ += ",\"";
  json_escape_to(line_, key);
  line_ += "\":";
  line_ += std::to_string(value);
  return *this;
}

Log& Log::real(std::string_view key, double value) {
  if (!enabled_) return *this;
  line_ += ",\"";
  json_escape_to(line_, key);
  line_ += "\":";
  // Three decimals without printf: the access log calls this on every request.
  if (!(value > -9e15 && value < 9e15)) {  // NaN, inf, absurd: JSON has no spelling for them
    line_ += "null";
    return *this;
  }
  if (value < 0) {
    line_ += '-';
    value = -value;
  }
  auto thousandths = static_cast<int64_t>(value * 1000.0 + 0.5);
  line_ += std::to_string(thousandths / 1000);
  int frac = static_cast<int>(thousandths % 1000);
  line_ += '.';
  line_ += static_cast<char>('0' + frac / 100);
  line_ += static_cast<char>('0' + frac / 10 % 10);
  line_ += static_cast<char>('0' + frac % 10);
  return *this;
}

Log& Log::flag(std::string_view key, bool value) {
  if (!enabled_) return *this;
  line_ += ",\"";
  json_escape_to(line_, key);
  line_ += "\":";
  line_ += value ? "true" : "false";
  return *this;
}

}  // namespace wharf::util
