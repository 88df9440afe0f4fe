#include "sandbox/exchange_log.h"

#include <cctype>

namespace wharf::sandbox {

int64_t ExchangeLog::add(Exchange e) {
  std::lock_guard<std::mutex> lock(mu_);
  e.id = next_id_++;
  int64_t id = e.id;
  entries_.push_back(std::move(e));
  while (entries_.size() > capacity_) entries_.pop_front();
  return id;
}

std::vector<Exchange> ExchangeLog::list(int64_t after_id, size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Exchange> out;
  for (const auto& e : entries_) {
    if (e.id <= after_id) continue;
    out.push_back(e);
    if (out.size() >= limit) break;
  }
  return out;
}

model::Json ExchangeLog::to_json(const Exchange& e) {
  model::Json j = {{"id", e.id},
                   {"at", e.at_ms},
                   {"direction", e.direction},
                   {"flow", e.flow},
                   {"method", e.method},
                   {"url", e.url},
                   {"requestHeaders", e.request_headers},
                   {"requestBody", e.request_body},
                   {"status", e.status},
                   {"responseBody", e.response_body},
                   {"durationMs", e.duration_ms},
                   {"conformant", e.findings.empty()},
                   {"findings", e.findings}};
  if (!e.error.empty()) j["error"] = e.error;
  if (!e.fault.is_null()) j["fault"] = e.fault;
  return j;
}

std::string ExchangeLog::redact_header(const std::string& name, const std::string& value) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower != "authorization") return value;
  auto space = value.find(' ');
  std::string token = space == std::string::npos ? value : value.substr(space + 1);
  std::string scheme = space == std::string::npos ? "" : value.substr(0, space + 1);
  // Keep a recognisable tail so a provider can tell tokens apart without leaking them.
  std::string tail = token.size() > 6 ? token.substr(token.size() - 6) : "";
  return scheme + "…" + tail;
}

}  // namespace wharf::sandbox
