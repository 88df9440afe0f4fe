#include "api/metrics.h"

#include <cstdio>

#include "util/log.h"

namespace wharf::api {
namespace {

std::string label_value(const std::string& v) {
  std::string out;
  util::json_escape_to(out, v);  // same escapes Prometheus wants for \ " and newlines
  return out;
}

std::string fmt_double(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace

void Metrics::observe_request(const std::string& route, const std::string& method, int status,
                              double elapsed_ms) {
  std::string labels = "route=\"" + label_value(route.empty() ? "unmatched" : route) +
                       "\",method=\"" + label_value(method) + "\",status=\"" +
                       std::to_string(status) + "\"";
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_[labels];
  }
  double seconds = elapsed_ms / 1000.0;
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  bucket_counts_[i].fetch_add(1, std::memory_order_relaxed);
  duration_count_.fetch_add(1, std::memory_order_relaxed);
  duration_sum_us_.fetch_add(static_cast<uint64_t>(elapsed_ms * 1000.0), std::memory_order_relaxed);
}

void Metrics::auth_failure(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++auth_failures_[reason];
}

bool Metrics::auth_undocumented_mode(const std::string& route, const std::string& method,
                                     std::string_view mode) {
  const std::string labels = "route=\"" + label_value(route) + "\",method=\"" +
                             label_value(method) + "\",mode=\"" + label_value(std::string(mode)) +
                             "\"";
  std::lock_guard<std::mutex> lock(mu_);
  return ++auth_undocumented_[labels] == 1;
}

void Metrics::add_external(const std::string& name, const std::string& help,
                           const std::string& type, std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  externals_.push_back({name, help, type, std::move(read)});
}

std::string Metrics::render() const {
  // A snapshot under the lock, rendered without it: the lock is the one every request takes
  // to count itself, and external gauges may read the store.
  std::map<std::string, uint64_t> requests;
  std::map<std::string, uint64_t> auth_failures;
  std::map<std::string, uint64_t> auth_undocumented;
  std::vector<External> externals;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests = requests_;
    auth_failures = auth_failures_;
    auth_undocumented = auth_undocumented_;
    externals = externals_;
  }
  std::string out;
  out += "# HELP wharf_http_requests_total HTTP requests by route pattern, method and status.\n";
  out += "# TYPE wharf_http_requests_total counter\n";
  for (const auto& [labels, n] : requests)
    out += "wharf_http_requests_total{" + labels + "} " + std::to_string(n) + "\n";

  out += "# HELP wharf_http_request_duration_seconds Time from request read to response.\n";
  out += "# TYPE wharf_http_request_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += bucket_counts_[i].load(std::memory_order_relaxed);
    out += "wharf_http_request_duration_seconds_bucket{le=\"" + fmt_double(kBuckets[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  cumulative += bucket_counts_[kBuckets.size()].load(std::memory_order_relaxed);
  out += "wharf_http_request_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(cumulative) +
         "\n";
  out += "wharf_http_request_duration_seconds_sum " +
         fmt_double(static_cast<double>(duration_sum_us_.load()) / 1e6) + "\n";
  out +=
      "wharf_http_request_duration_seconds_count " + std::to_string(duration_count_.load()) + "\n";

  out += "# HELP wharf_auth_failures_total Rejected Partner API authentications by reason.\n";
  out += "# TYPE wharf_auth_failures_total counter\n";
  for (const auto& [reason, n] : auth_failures)
    out += "wharf_auth_failures_total{reason=\"" + label_value(reason) + "\"} " +
           std::to_string(n) + "\n";

  out +=
      "# HELP wharf_auth_undocumented_mode_total Partner API requests accepted with an auth mode "
      "the endpoint's documentation does not list (lenient reads).\n";
  out += "# TYPE wharf_auth_undocumented_mode_total counter\n";
  for (const auto& [labels, n] : auth_undocumented)
    out += "wharf_auth_undocumented_mode_total{" + labels + "} " + std::to_string(n) + "\n";

  out +=
      "# HELP wharf_idempotent_replays_total Responses replayed for a repeated Idempotency-Key.\n";
  out += "# TYPE wharf_idempotent_replays_total counter\n";
  out += "wharf_idempotent_replays_total " + std::to_string(replays_.load()) + "\n";

  for (const auto& e : externals) {
    out += "# HELP " + e.name + " " + e.help + "\n";
    out += "# TYPE " + e.name + " " + e.type + "\n";
    out += e.name + " " + fmt_double(e.read()) + "\n";
  }
  return out;
}

}  // namespace wharf::api
