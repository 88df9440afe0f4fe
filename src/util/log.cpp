#include "util/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "util/clock.h"

namespace wharf::util {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_write_mu;

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
  for (unsigned char c : s) {
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

Log::Log(LogLevel level, std::string_view msg) : enabled_(log_enabled(level)) {
  if (!enabled_) return;
  line_.reserve(256);
  line_ += "{\"ts\":\"";
  line_ += format_iso8601_ms(SystemClock().now_ms());
  line_ += "\",\"level\":\"";
  line_ += level_name(level);
  line_ += "\",\"msg\":\"";
  json_escape_to(line_, msg);
  line_ += '"';
}

Log::~Log() {
  if (!enabled_) return;
  line_ += "}\n";
  std::lock_guard<std::mutex> lock(g_write_mu);
  std::fwrite(line_.data(), 1, line_.size(), stderr);
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
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  line_ += ",\"";
  json_escape_to(line_, key);
  line_ += "\":";
  line_ += buf;
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
