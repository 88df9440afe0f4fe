// The Recorder: every request the sandbox sends to the partner (Partner API calls and webhook
// deliveries) is recorded in the ExchangeLog with the conformance findings on the answer.
#include <chrono>

#include "sandbox/driver_internal.h"

namespace wharf::sandbox::detail {

namespace {

// nlohmann's parser and destructor are iterative, but copying and dumping recurse: a partner
// answering with JSON nested a million levels deep must not overflow the stack, so such a
// body is kept as text instead of as JSON.
constexpr int kMaxDepth = 128;
bool too_deep(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

CallResult Recorder::call(const CallSpec& s) {
  std::string url = partner_base(ctx_.config) + s.path;
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", "Bearer " + s.token}, {"X-Vercel-Auth", s.auth}, {"Accept", s.accept}};
  if (!s.idempotency_key.empty()) headers.emplace_back("Idempotency-Key", s.idempotency_key);
  std::string body;
  if (s.body) {
    body = dump(*s.body);
    headers.emplace_back("Content-Type", "application/json");
  }

  auto started = SteadyClock::now();
  net::HttpResult res = ctx_.http.request(s.method, url, headers, body);
  double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();

  CallResult r;
  r.status = res.status;
  r.error = res.error;
  for (const auto& [name, value] : res.headers)
    if (name == "content-type") r.content_type = value;
  if (!res.error.empty())
    r.findings.push_back("transport: " + res.error);
  else
    r.findings =
        check_partner_response(s.endpoint, res.status, r.content_type, res.body, s.conformance);
  r.response = parse_body(r.content_type, res.body);
  r.exchange_id = record("to-partner", s.flow, s.method, url, headers, body, res, ms, r.findings);
  return r;
}

int64_t Recorder::record(const std::string& direction, const std::string& flow,
                         const std::string& method, const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         const std::string& request_body, const net::HttpResult& res,
                         double duration_ms, const std::vector<std::string>& findings) {
  Exchange e;
  e.at_ms = ctx_.clock.now_ms();
  e.direction = direction;
  e.flow = flow;
  e.method = method;
  e.url = url;
  for (const auto& [name, value] : headers)
    e.request_headers[name] = ExchangeLog::redact_header(name, value);
  e.request_body = request_body;
  e.status = res.status;
  e.response_body = clip(res.body);
  e.error = res.error;
  e.duration_ms = duration_ms;
  e.findings = findings;
  return ctx_.log.add(std::move(e));
}

Json Recorder::parse_body(const std::string& content_type, const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return nullptr;
  if (too_deep(body)) return safe_string(clip(body));
  if (net::media_type(content_type) == "application/jsonl") {
    Json lines = Json::array();
    size_t start = 0;
    while (start < body.size()) {
      size_t end = body.find('\n', start);
      if (end == std::string::npos) end = body.size();
      std::string line = body.substr(start, end - start);
      start = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      Json v = Json::parse(line, nullptr, false);
      lines.push_back(v.is_discarded() ? safe_string(line) : v);
    }
    return lines;
  }
  Json v = Json::parse(body, nullptr, false);
  return v.is_discarded() ? safe_string(clip(body)) : v;
}

}  // namespace wharf::sandbox::detail
