// Structured logging: one JSON object per line on stderr.
//
//   util::Log(util::LogLevel::kInfo, "request").str("rid", id).num("status", 200);
//
// The line is written when the Log object is destroyed. Callers must never pass tokens,
// secrets or Authorization headers: there is deliberately no "dump the request" helper.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace wharf::util {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
// Appends `s` to `out` as the inside of a JSON string (quotes not included).
void json_escape_to(std::string& out, std::string_view s);

class Log {
 public:
  Log(LogLevel level, std::string_view msg);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  Log& str(std::string_view key, std::string_view value);
  Log& num(std::string_view key, int64_t value);
  Log& real(std::string_view key, double value);
  Log& flag(std::string_view key, bool value);

 private:
  bool enabled_;
  bool urgent_;  // warn/error: written at once, not batched
  std::string line_;
};

inline Log log_info(std::string_view msg) {
  return Log(LogLevel::kInfo, msg);
}
inline Log log_warn(std::string_view msg) {
  return Log(LogLevel::kWarn, msg);
}
inline Log log_error(std::string_view msg) {
  return Log(LogLevel::kError, msg);
}
inline Log log_debug(std::string_view msg) {
  return Log(LogLevel::kDebug, msg);
}

}  // namespace wharf::util
