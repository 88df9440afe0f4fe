// Fault injection for the sandbox's Vercel API (the /v1/… and /v2/… routes a partner calls):
// tests add rules (POST /_sandbox/faults) that make matching calls answer 429/5xx (or a
// 404/409/410 such as a store that moved or a feature Vercel lacks), answer
// late, or commit and then answer an error — what a client of Vercel must survive without
// losing or double-submitting anything. The control API under /_sandbox/ is never faulted.
//
// A rule (JSON, every field optional unless said otherwise):
//   method        exact HTTP method ("GET", "POST", "PUT", "PATCH", "DELETE")
//   pathContains  substring of the request path (no query string)
//   mode          "respond" (default): answer the fault; the call is not handled at all
//                 "after":   handle the call (its state change is kept), then replace its
//                            answer with the fault
//                 "delay":   sleep delayMs, then handle the call normally
//   status        404, 409, 410, 429, 500, 502, 503 or 504; required unless mode is "delay"
//                 (then absent)
//   count         how many matching calls the rule affects (>= 1; default: unlimited)
//   durationMs    the rule expires this long after being added, on the sandbox clock
//   retryAfterS   adds `Retry-After: <n>` to the fault answer
//   limitResetMs  status 429 only: adds error.limit = {remaining: 0, reset: <epoch s>,
//                 resetMs: <epoch ms>, total: 100}, the reset being now + limitResetMs
//   delayMs       sleep this long before answering (required for "delay"; 1..120000).
//                 For "respond" the sleep comes before the fault answer; for "after" it
//                 comes after the call was handled, before the fault answer.
// Rules are tried in the order they were added; the first live one (not exhausted, not
// expired) whose method and pathContains match takes the call and consumes one count.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/json_check.h"
#include "net/http.h"
#include "util/clock.h"

namespace wharf::sandbox {

struct FaultRule {
  int64_t id = 0;
  std::string method;         // "" = any
  std::string path_contains;  // "" = any
  std::string mode = "respond";
  int status = 0;                    // 0 only in mode "delay"
  std::optional<int64_t> count;      // as given; nullopt = unlimited
  std::optional<int64_t> remaining;  // nullopt = unlimited
  int64_t hits = 0;                  // calls taken so far
  std::optional<int64_t> duration_ms;
  std::optional<int64_t> expires_at_ms;
  std::optional<int64_t> retry_after_s;
  std::optional<int64_t> limit_reset_ms;
  int64_t delay_ms = 0;
  int64_t added_at_ms = 0;

  bool live(int64_t now_ms) const {
    return (!remaining || *remaining > 0) && (!expires_at_ms || now_ms < *expires_at_ms);
  }
  bool matches(const std::string& req_method, const std::string& path) const {
    return (method.empty() || method == req_method) &&
           (path_contains.empty() || path.find(path_contains) != std::string::npos);
  }
};

class Faults {
 public:
  static constexpr int64_t kMaxDelayMs = 120000;

  explicit Faults(const util::Clock& clock) : clock_(clock) {}

  // Validates a POST /_sandbox/faults body {"rules": [rule, …]} strictly; throws
  // model::ApiError 400 (validation_error) naming every offending field ("rules[1].status")
  // and adds nothing if any rule is wrong. Ids and times are not assigned.
  static std::vector<FaultRule> parse(const model::Json& body);
  // Parses, then appends the rules (ids and addedAt/expiresAt assigned); returns them.
  std::vector<FaultRule> add(const model::Json& body);
  std::vector<FaultRule> list() const;
  // Removes every rule; returns how many there were.
  size_t clear();

  // Whether calls to `path` can be faulted at all: the Vercel API (/v1/…, /v2/…).
  static bool applies_to(const std::string& path);
  // The first live rule matching the call, with one count consumed and the hit recorded
  // (the returned copy shows the state after this hit); nullopt if none.
  std::optional<FaultRule> take(const std::string& method, const std::string& path);

  // The answer a rule gives (not for mode "delay"): Vercel's error envelope with the code for
  // the status, Retry-After and error.limit when the rule asks for them.
  static net::Response response(const FaultRule& rule, int64_t now_ms);
  // How a rule is listed (GET /_sandbox/faults).
  static model::Json to_json(const FaultRule& rule, int64_t now_ms);
  // The `fault` field of the exchange log entry of a call the rule took.
  static model::Json log_record(const FaultRule& rule);

 private:
  const util::Clock& clock_;
  mutable std::mutex mu_;
  std::vector<FaultRule> rules_;
  int64_t next_id_ = 1;
};

}  // namespace wharf::sandbox
