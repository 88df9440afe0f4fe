#include "sandbox/faults.h"

#include <algorithm>
#include <limits>

namespace wharf::sandbox {
namespace {

using model::Json;

constexpr int kStatuses[] = {404, 409, 410, 429, 500, 502, 503, 504};
constexpr const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
constexpr const char* kRuleFields[] = {"method",      "pathContains", "mode",
                                       "status",      "count",        "durationMs",
                                       "retryAfterS", "limitResetMs", "delayMs"};

// Vercel's error codes for the statuses a rule may answer (vercel-api.md §1.4).
const char* code_for(int status) {
  switch (status) {
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 410:
      return "gone";
    case 429:
      return "rate_limited";
    case 502:
      return "bad_gateway";
    case 503:
      return "service_unavailable";
    case 504:
      return "gateway_timeout";
    default:
      return "internal_server_error";
  }
}

// An integer member in [min, max]; records an error naming the field otherwise.
std::optional<int64_t> integer(model::Checker& check, const Json& rule, const char* key,
                               const std::string& where, int64_t min, int64_t max) {
  auto it = rule.find(key);
  if (it == rule.end()) return std::nullopt;
  std::string field = model::Checker::join(where, key);
  if (!it->is_number_integer()) {
    check.add(field, "must be an integer");
    return std::nullopt;
  }
  bool too_big = it->is_number_unsigned() &&
                 it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  int64_t v = too_big ? std::numeric_limits<int64_t>::max() : it->get<int64_t>();
  if (v < min || v > max) {
    check.add(field,
              max == std::numeric_limits<int64_t>::max()
                  ? "must be at least " + std::to_string(min)
                  : "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return v;
}

FaultRule parse_rule(model::Checker& check, const Json& rule, const std::string& where) {
  FaultRule r;
  if (!rule.is_object()) {
    check.add(where, "must be an object");
    return r;
  }
  for (auto it = rule.begin(); it != rule.end(); ++it) {
    bool known = std::any_of(std::begin(kRuleFields), std::end(kRuleFields),
                             [&](const char* f) { return it.key() == f; });
    if (!known)
      check.add(model::Checker::join(where, it.key()),
                "is not a rule field (known: method, pathContains, mode, status, count, "
                "durationMs, retryAfterS, limitResetMs, delayMs)");
  }
  if (rule.contains("method")) {
    const Json& m = rule["method"];
    bool ok =
        m.is_string() && std::any_of(std::begin(kMethods), std::end(kMethods),
                                     [&](const char* k) { return m.get<std::string>() == k; });
    if (ok)
      r.method = m.get<std::string>();
    else
      check.add(model::Checker::join(where, "method"),
                "must be one of GET, POST, PUT, PATCH, DELETE (upper case)");
  }
  if (rule.contains("pathContains")) {
    const Json& p = rule["pathContains"];
    if (p.is_string() && !p.get<std::string>().empty())
      r.path_contains = p.get<std::string>();
    else
      check.add(model::Checker::join(where, "pathContains"), "must be a non-empty string");
  }
  bool mode_ok = true;
  if (rule.contains("mode")) {
    const Json& m = rule["mode"];
    if (m.is_string() && (m == "respond" || m == "after" || m == "delay")) {
      r.mode = m.get<std::string>();
    } else {
      check.add(model::Checker::join(where, "mode"), "must be one of respond, after, delay");
      mode_ok = false;
    }
  }
  bool delay_mode = r.mode == "delay";
  std::string status_field = model::Checker::join(where, "status");
  if (rule.contains("status")) {
    const Json& s = rule["status"];
    bool ok = s.is_number_integer() && std::any_of(std::begin(kStatuses), std::end(kStatuses),
                                                   [&](int k) { return s.get<int64_t>() == k; });
    if (delay_mode && mode_ok)
      check.add(status_field,
                "must be absent when mode is \"delay\" (the call is handled normally)");
    else if (ok)
      r.status = s.get<int>();
    else
      check.add(status_field, "must be one of 404, 409, 410, 429, 500, 502, 503, 504");
  } else if (!delay_mode && mode_ok) {
    check.add(status_field,
              "is required (404, 409, 410, 429, 500, 502, 503 or 504) unless mode is \"delay\"");
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  r.count = integer(check, rule, "count", where, 1, kMax);
  r.remaining = r.count;
  r.duration_ms = integer(check, rule, "durationMs", where, 1, kMax);
  r.retry_after_s = integer(check, rule, "retryAfterS", where, 0, 86400LL * 365);
  r.limit_reset_ms = integer(check, rule, "limitResetMs", where, 0, 86400LL * 365 * 1000);
  auto delay = integer(check, rule, "delayMs", where, 1, Faults::kMaxDelayMs);
  r.delay_ms = delay.value_or(0);
  if (delay_mode && mode_ok) {
    if (!rule.contains("delayMs"))
      check.add(model::Checker::join(where, "delayMs"), "is required when mode is \"delay\"");
    if (rule.contains("retryAfterS"))
      check.add(model::Checker::join(where, "retryAfterS"),
                "must be absent when mode is \"delay\" (no fault answer is sent)");
    if (rule.contains("limitResetMs"))
      check.add(model::Checker::join(where, "limitResetMs"),
                "must be absent when mode is \"delay\" (no fault answer is sent)");
  } else if (rule.contains("limitResetMs") && r.status != 0 && r.status != 429) {
    check.add(model::Checker::join(where, "limitResetMs"),
              "is only allowed with status 429 (Vercel sends error.limit with rate_limited)");
  }
  return r;
}

}  // namespace

std::vector<FaultRule> Faults::parse(const Json& body) {
  model::Checker check;
  std::vector<FaultRule> out;
  if (!body.is_object()) {
    check.add("body", "must be a JSON object {\"rules\": [...]}");
    check.throw_if_failed("fault rules");
  }
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "rules") check.add(it.key(), "is not allowed (send {\"rules\": [...]})");
  auto rules = body.find("rules");
  if (rules == body.end() || rules->is_null()) {
    check.add("rules", "is required: an array of fault rules");
  } else if (!rules->is_array()) {
    check.add("rules", "must be an array of fault rules");
  } else if (rules->empty()) {
    check.add("rules", "must contain at least one rule");
  } else {
    for (size_t i = 0; i < rules->size(); ++i)
      out.push_back(parse_rule(check, (*rules)[i], model::Checker::index("rules", i)));
  }
  check.throw_if_failed("fault rules");
  return out;
}

std::vector<FaultRule> Faults::add(const Json& body) {
  std::vector<FaultRule> rules = parse(body);
  int64_t now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : rules) {
    r.id = next_id_++;
    r.added_at_ms = now;
    if (r.duration_ms) r.expires_at_ms = now + *r.duration_ms;
    rules_.push_back(r);
  }
  return rules;
}

std::vector<FaultRule> Faults::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rules_;
}

size_t Faults::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = rules_.size();
  rules_.clear();
  return n;
}

bool Faults::applies_to(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 || path.rfind("/v2/", 0) == 0;
}

std::optional<FaultRule> Faults::take(const std::string& method, const std::string& path) {
  if (!applies_to(path)) return std::nullopt;
  int64_t now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : rules_) {
    if (!r.live(now) || !r.matches(method, path)) continue;
    ++r.hits;
    if (r.remaining) --*r.remaining;
    return r;
  }
  return std::nullopt;
}

net::Response Faults::response(const FaultRule& rule, int64_t now_ms) {
  Json err = {
      {"code", code_for(rule.status)},
      {"message", "injected fault: the sandbox answered " + std::to_string(rule.status) +
                      " (fault rule " + std::to_string(rule.id) + ", mode " + rule.mode + ")"}};
  if (rule.limit_reset_ms) {
    int64_t reset_ms = now_ms + *rule.limit_reset_ms;
    // Rounded up so a client honouring the seconds never retries before resetMs.
    err["limit"] = {{"remaining", 0},
                    {"reset", (reset_ms + 999) / 1000},
                    {"resetMs", reset_ms},
                    {"total", 100}};
  }
  net::Response r = net::Response::json(
      rule.status, Json{{"error", err}}.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (rule.retry_after_s)
    r.headers.emplace_back("Retry-After", std::to_string(*rule.retry_after_s));
  r.headers.emplace_back("X-Sandbox-Fault", std::to_string(rule.id));
  return r;
}

Json Faults::to_json(const FaultRule& rule, int64_t now_ms) {
  Json j = {{"id", rule.id},
            {"mode", rule.mode},
            {"remaining", rule.remaining ? Json(*rule.remaining) : Json()},
            {"hits", rule.hits},
            {"active", rule.live(now_ms)},
            {"addedAtMs", rule.added_at_ms}};
  if (!rule.method.empty()) j["method"] = rule.method;
  if (!rule.path_contains.empty()) j["pathContains"] = rule.path_contains;
  if (rule.status) j["status"] = rule.status;
  if (rule.count) j["count"] = *rule.count;
  if (rule.duration_ms) j["durationMs"] = *rule.duration_ms;
  if (rule.expires_at_ms) j["expiresAtMs"] = *rule.expires_at_ms;
  if (rule.retry_after_s) j["retryAfterS"] = *rule.retry_after_s;
  if (rule.limit_reset_ms) j["limitResetMs"] = *rule.limit_reset_ms;
  if (rule.delay_ms) j["delayMs"] = rule.delay_ms;
  return j;
}

Json Faults::log_record(const FaultRule& rule) {
  Json j = {{"injected", true}, {"rule", rule.id}, {"mode", rule.mode}};
  if (rule.status) j["status"] = rule.status;
  if (rule.delay_ms) j["delayMs"] = rule.delay_ms;
  return j;
}

}  // namespace wharf::sandbox
