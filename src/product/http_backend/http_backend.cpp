#include "product/http_backend/http_backend.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "util/crypto.h"

namespace wharf::product {

using nlohmann::json;

namespace signature {

std::string sign(const std::string& secret, int64_t t, const std::string& body) {
  return util::to_hex(util::hmac_sha256(secret, std::to_string(t) + "." + body));
}

std::string header(const std::string& secret, int64_t t, const std::string& body) {
  return "t=" + std::to_string(t) + ",v1=" + sign(secret, t, body);
}

bool verify(const std::string& secret, const std::string& header_value, const std::string& body,
            int64_t now_s, int64_t tolerance_s) {
  // t=<digits>,v1=<hex>[,v1=<hex>…]; unknown keys are ignored, a malformed part fails.
  std::optional<int64_t> t;
  std::vector<std::string> candidates;
  size_t pos = 0;
  while (pos <= header_value.size()) {
    size_t end = header_value.find(',', pos);
    if (end == std::string::npos) end = header_value.size();
    std::string part = header_value.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    size_t eq = part.find('=');
    if (eq != std::string::npos) {
      std::string key = part.substr(0, eq), value = part.substr(eq + 1);
      if (key == "t") {
        if (value.empty() || value.size() > 12 ||
            value.find_first_not_of("0123456789") != std::string::npos)
          return false;
        t = std::stoll(value);
      } else if (key == "v1") {
        candidates.push_back(value);
      }
    }
    pos = end + 1;
  }
  if (!t || candidates.empty()) return false;
  if (*t > now_s + tolerance_s || *t < now_s - tolerance_s) return false;
  std::string expected = sign(secret, *t, body);
  bool ok = false;
  for (const auto& c : candidates) ok = util::constant_time_equal(c, expected) || ok;
  return ok;
}

}  // namespace signature

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t read_ms(const json& backend, const char* key, int64_t fallback, int64_t max) {
  auto it = backend.find(key);
  if (it == backend.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > max)
    throw std::invalid_argument(std::string("backend.") + key + " must be an integer from 0 to " +
                                std::to_string(max));
  return it->get<int64_t>();
}

json parse_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  return j.is_object() ? j : json::object();
}

// A string member of a backend's answer, or "" when it is absent or not a string (json's
// value() would throw for a number there).
std::string string_at(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The backend's Secret[], checked for shape (names and values are strings).
json secrets_of(const json& body, const std::string& what) {
  auto it = body.find("secrets");
  if (it == body.end() || it->is_null()) return json::array();
  if (!it->is_array()) throw ProductUnavailable(what + ": the backend's secrets are not an array");
  for (const auto& s : *it)
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string() ||
        s["name"].get<std::string>().empty() || !s.contains("value") || !s["value"].is_string())
      throw ProductUnavailable(what + ": a secret from the backend lacks a name or a value");
  return *it;
}

std::optional<json> notification_of(const json& body) {
  auto it = body.find("notification");
  if (it == body.end() || !it->is_object()) return std::nullopt;
  return *it;
}

}  // namespace

HttpBackend::Config HttpBackend::parse_config(
    const json& product_entry, const std::function<const char*(const char*)>& getenv) {
  auto b = product_entry.find("backend");
  if (b == product_entry.end() || !b->is_object())
    throw std::invalid_argument("backend: an http product needs a backend object {url, secretEnv}");
  Config c;
  auto url = b->find("url");
  if (url == b->end() || !url->is_string() ||
      !(url->get<std::string>().rfind("http://", 0) == 0 ||
        url->get<std::string>().rfind("https://", 0) == 0))
    throw std::invalid_argument("backend.url must be an http:// or https:// URL");
  c.url = url->get<std::string>();
  while (!c.url.empty() && c.url.back() == '/') c.url.pop_back();
  auto env = b->find("secretEnv");
  if (env == b->end() || !env->is_string() || env->get<std::string>().empty())
    throw std::invalid_argument("backend.secretEnv must name an environment variable");
  c.secret_env = env->get<std::string>();
  const char* value = getenv(c.secret_env.c_str());
  if (!value || !*value)
    throw std::invalid_argument("backend.secretEnv: environment variable " + c.secret_env +
                                " (the backend's shared secret) is not set");
  c.secret = value;
  if (c.secret.size() < 32)
    throw std::invalid_argument("backend.secretEnv: the secret in " + c.secret_env +
                                " must be at least 32 bytes");
  c.timeout_ms = read_ms(*b, "timeoutMs", 10000, 600000);
  if (c.timeout_ms == 0) throw std::invalid_argument("backend.timeoutMs must be positive");
  c.provision_wait_ms = read_ms(*b, "provisionWaitMs", 5000, 600000);
  if (auto caps = b->find("capabilities"); caps != b->end() && !caps->is_null()) {
    if (!caps->is_array()) throw std::invalid_argument("backend.capabilities must be an array");
    for (const auto& cap : *caps) {
      std::string name = cap.is_string() ? cap.get<std::string>() : "";
      if (name == "repl")
        c.repl = true;
      else if (name == "rotate")
        c.rotate = true;
      else if (name == "transfer")
        c.transfer = true;
      else
        throw std::invalid_argument("backend.capabilities: '" + name +
                                    "' is not one of repl, rotate, transfer");
    }
  }
  return c;
}

const Descriptor& HttpBackend::kDescriptor() {
  static const Descriptor d = [] {
    Descriptor out;
    // The levels and counts every backend may report without a plan pricing them (§5).
    out.metrics = {{"storageBytes", true, "bytes"}, {"requests", false, "requests"}};
    out.capabilities.async_provisioning = true;
    return out;
  }();
  return d;
}

std::unique_ptr<Product> HttpBackend::make(const KindSettings& settings) {
  return std::make_unique<HttpBackend>(
      settings.product_id,
      parse_config(settings.product, [](const char* n) { return std::getenv(n); }),
      settings.priced_metrics);
}

HttpBackend::HttpBackend(std::string product_id, Config config,
                         const std::vector<MetricSpec>& priced)
    : product_id_(std::move(product_id)), config_(std::move(config)), descriptor_(kDescriptor()) {
  for (const auto& m : priced)
    if (!descriptor_.metric(m.name)) descriptor_.metrics.push_back(m);
  descriptor_.capabilities.repl = config_.repl;
  descriptor_.capabilities.rotation = config_.rotate;
  descriptor_.capabilities.transfer_hook = config_.transfer;
  descriptor_.provision_wait_ms = config_.provision_wait_ms;
}

std::string HttpBackend::resource_path(const std::string& resource_id) {
  // Resource ids are Wharf's own ([A-Za-z0-9_-]): nothing to escape, but never trust that.
  for (char c : resource_id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      throw std::invalid_argument("malformed resource id");
  return "/resources/" + resource_id;
}

net::HttpResult HttpBackend::call(const std::string& method, const std::string& path,
                                  const std::string& body, const CallContext& ctx,
                                  int64_t timeout_ms) const {
  net::HttpClient::Options options;
  options.timeout_ms = static_cast<long>(timeout_ms > 0 ? timeout_ms : config_.timeout_ms);
  options.connect_timeout_ms = std::min<long>(options.timeout_ms, 3000);
  options.max_response_bytes = size_t{4} << 20;
  options.user_agent = "wharf-product-protocol/1";
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Accept", "application/json"},
      {"Wharf-Signature", signature::header(config_.secret, unix_now(), body)}};
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  if (!ctx.idempotency_key.empty()) headers.emplace_back("Idempotency-Key", ctx.idempotency_key);
  if (!ctx.request_id.empty()) headers.emplace_back("Wharf-Request-Id", ctx.request_id);
  return net::HttpClient(options).request(method, config_.url + path, headers, body);
}

void HttpBackend::fail(const std::string& what, const net::HttpResult& r) const {
  if (!r.error.empty()) throw ProductUnavailable(what + ": backend unreachable (" + r.error + ")");
  int s = r.status;
  if (s == 400 || s == 404 || s == 409 || s == 422) {
    json body = parse_object(r.body);
    json err = body.contains("error") && body["error"].is_object() ? body["error"] : json::object();
    std::string code = string_at(err, "code");
    if (code.empty()) code = s == 404 ? "not_found" : "bad_request";
    std::string message = string_at(err, "message");
    if (message.empty()) message = what + " refused by the backend (" + std::to_string(s) + ")";
    std::optional<std::string> user;
    if (err.contains("user") && err["user"].is_object() &&
        !string_at(err["user"], "message").empty())
      user = string_at(err["user"], "message");
    throw ProductRefused(s, code, message, user);
  }
  // A backend's internal message for a 5xx never leaves Wharf (§3).
  throw ProductUnavailable(what + ": backend answered " + std::to_string(s));
}

ProductReply HttpBackend::provision(const ResourceInfo& r, const CallContext& ctx) {
  json body = {
      {"resourceId", r.id},        {"installationId", r.installation_id},
      {"productId", r.product_id}, {"name", r.name},
      {"metadata", r.metadata},    {"plan", {{"id", r.plan_id}, {"limits", r.plan_limits}}}};
  auto res = call("PUT", resource_path(r.id), body.dump(), ctx, ctx.wait_ms);
  if (res.error.empty() && res.status == 202) return ProductReply{true, json::array(), {}};
  if (!res.error.empty() || res.status != 200) fail("provision", res);
  json answer = parse_object(res.body);
  const std::string status = string_at(answer, "status");
  if (status == "pending") return ProductReply{true, json::array(), {}};
  if (status != "ready")
    throw ProductUnavailable("provision: the backend's status is neither ready nor pending");
  return ProductReply{false, secrets_of(answer, "provision"), notification_of(answer)};
}

ProductReply HttpBackend::change(const ResourceInfo& r, const ResourceChange& c,
                                 const CallContext& ctx) {
  json body = json::object();
  if (c.name) body["name"] = *c.name;
  if (c.metadata) body["metadata"] = *c.metadata;
  if (c.plan_changed) body["plan"] = {{"id", r.plan_id}, {"limits", r.plan_limits}};
  if (c.status) body["status"] = *c.status;
  auto res = call("PATCH", resource_path(r.id), body.dump(), ctx);
  if (!res.error.empty() || res.status < 200 || res.status > 299) fail("update", res);
  return ProductReply{false, json::array(), notification_of(parse_object(res.body))};
}

void HttpBackend::remove(const ResourceInfo& r, const CallContext& ctx) {
  auto res = call("DELETE", resource_path(r.id), "", ctx);
  // 404: already gone, which is what was asked.
  if (res.error.empty() && ((res.status >= 200 && res.status < 300) || res.status == 404)) return;
  fail("delete", res);
}

ProductReply HttpBackend::rotate_secrets(const ResourceInfo& r, const std::string& reason,
                                         int64_t expire_old_after_s, const CallContext& ctx) {
  if (!config_.rotate) return Product::rotate_secrets(r, reason, expire_old_after_s, ctx);
  json body = {{"expireOldAfterSeconds", expire_old_after_s}};
  if (!reason.empty()) body["reason"] = reason;
  auto res = call("POST", resource_path(r.id) + "/secrets/rotate", body.dump(), ctx);
  if (res.error.empty() && res.status == 202) return ProductReply{true, json::array(), {}};
  if (!res.error.empty() || res.status != 200) fail("secrets rotation", res);
  json answer = parse_object(res.body);
  return ProductReply{false, secrets_of(answer, "secrets rotation"), {}};
}

void HttpBackend::transfer(const ResourceInfo& r, const std::string& from, const std::string& to,
                           const CallContext& ctx) {
  if (!config_.transfer) return;
  json body = {{"fromInstallationId", from}, {"toInstallationId", to}};
  auto res = call("POST", resource_path(r.id) + "/transfer", body.dump(), ctx);
  if (!res.error.empty() || res.status < 200 || res.status > 299) fail("transfer", res);
}

json HttpBackend::repl(const std::string& resource_id, const std::string& input, bool read_only,
                       const Limits& /*limits*/, const std::function<void(const json& block)>& emit,
                       UsageDelta* /*usage*/) {
  if (!config_.repl)
    throw QueryError(error_code::kNotFound, "resource " + resource_id + " has no console");
  json body = {{"input", input}, {"readOnly", read_only}};
  CallContext ctx;
  ctx.idempotency_key = util::to_hex(util::random_bytes(16));
  auto res = call("POST", resource_path(resource_id) + "/repl", body.dump(), ctx);
  if (res.error.empty() && res.status == 404)
    throw QueryError(error_code::kNotFound, "resource " + resource_id + " not found");
  if (!res.error.empty() || res.status != 200) fail("console", res);
  json answer = parse_object(res.body);
  json blocks =
      answer.contains("blocks") && answer["blocks"].is_array() ? answer["blocks"] : json::array();
  for (const auto& b : blocks)
    if (!b.is_object()) throw ProductUnavailable("console: the backend's blocks are not objects");
  if (emit)
    for (const auto& b : blocks) emit(b);
  return blocks;
}

bool HttpBackend::verify_callback(const std::string& signature_header, const std::string& body,
                                  int64_t now_s) const {
  return signature::verify(config_.secret, signature_header, body, now_s);
}

}  // namespace wharf::product
