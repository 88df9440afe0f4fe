// Every exchange between the sandbox and the partner, in both directions, with the
// conformance findings for it: what a provider reads (GET /_sandbox/log, the inspector)
// to see exactly what was sent, what came back and what in it is wrong.
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "model/json_check.h"

namespace wharf::sandbox {

struct Exchange {
  int64_t id = 0;
  int64_t at_ms = 0;
  // "to-partner" (the sandbox, as Vercel, called the partner), "from-partner" (the partner
  // called the sandbox's Vercel API), "webhook" (signed webhook delivery to the partner).
  std::string direction;
  std::string flow;  // e.g. "install", "provision", "" for inbound calls
  std::string method;
  std::string url;
  model::Json request_headers = model::Json::object();  // Authorization values redacted
  std::string request_body;
  int status = 0;  // 0: no response (transport error)
  std::string response_body;
  std::string error;  // transport error text
  double duration_ms = 0;
  std::vector<std::string> findings;  // spec violations; empty = conformant
  // Set when a fault rule (sandbox/faults.h) took the call: {"injected": true, "rule": id,
  // "mode", "status"?, "delayMs"?, "handledStatus"? (mode "after": the real answer's status)}.
  model::Json fault;
};

class ExchangeLog {
 public:
  explicit ExchangeLog(size_t capacity = 5000) : capacity_(capacity) {}
  int64_t add(Exchange e);  // assigns id; returns it
  // Entries with id > after_id, oldest first, at most `limit`.
  std::vector<Exchange> list(int64_t after_id, size_t limit) const;
  static model::Json to_json(const Exchange& e);
  // Redacts bearer tokens and secrets from a header value before it is stored.
  static std::string redact_header(const std::string& name, const std::string& value);

 private:
  mutable std::mutex mu_;
  std::deque<Exchange> entries_;
  size_t capacity_;
  int64_t next_id_ = 1;
};

}  // namespace wharf::sandbox
