// The `http` product kind: the provider's own service (the backend) does the product work,
// reached over HTTP by the Wharf product protocol (spec/product-protocol.md,
// docs/product-protocol.md). One instance per catalog product: each names its backend.
//
// Wharf → backend (B1–B6) are signed calls with an Idempotency-Key stable across retries;
// this class makes one call and reports how it ended (ProductReply, ProductRefused for a
// 400/404/409/422 to pass on, ProductUnavailable for anything to retry). Retrying, the
// outbox and what Vercel is told are the service's. Backend → Wharf callbacks (W1–W3) are
// checked with verify_callback().
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/http_client.h"
#include "product/product.h"
#include "product/registry.h"

namespace wharf::product {

// `Wharf-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (§2).
namespace signature {
std::string sign(const std::string& secret, int64_t t, const std::string& body);
// The header for a request sent at `t`.
std::string header(const std::string& secret, int64_t t, const std::string& body);
// True when `header` has a v1 value matching `body` under `secret` (any of several, for a
// rollover) and its t is within `tolerance_s` of `now_s`.
bool verify(const std::string& secret, const std::string& header, const std::string& body,
            int64_t now_s, int64_t tolerance_s = 300);
}  // namespace signature

class HttpBackend final : public Product {
 public:
  struct Config {
    std::string url;         // base URL; every call's path is relative to it
    std::string secret_env;  // the environment variable holding the shared secret
    std::string secret;      // its value (≥ 32 bytes)
    int64_t timeout_ms = 10000;
    int64_t provision_wait_ms = 5000;
    bool repl = false;
    bool rotate = false;
    bool transfer = false;
  };
  // Reads the catalog product's `backend` object; `getenv` resolves secretEnv. Throws
  // std::invalid_argument naming the key (or the unset variable).
  static Config parse_config(const nlohmann::json& product_entry,
                             const std::function<const char*(const char*)>& getenv);

  // The kind's factory (kinds.cpp): per catalog product, from KindSettings::product.
  static std::unique_ptr<Product> make(const KindSettings& settings);
  // The kind as the registry knows it (before a product configures it).
  static const Descriptor& kDescriptor();

  HttpBackend(std::string product_id, Config config, const std::vector<MetricSpec>& priced);

  std::string kind() const override { return "http"; }
  const Descriptor& descriptor() const override { return descriptor_; }
  const Config& config() const { return config_; }

  ProductReply provision(const ResourceInfo& resource, const CallContext& ctx) override;
  ProductReply change(const ResourceInfo& resource, const ResourceChange& change,
                      const CallContext& ctx) override;
  void remove(const ResourceInfo& resource, const CallContext& ctx) override;
  ProductReply rotate_secrets(const ResourceInfo& resource, const std::string& reason,
                              int64_t expire_old_after_s, const CallContext& ctx) override;
  void transfer(const ResourceInfo& resource, const std::string& from, const std::string& to,
                const CallContext& ctx) override;
  nlohmann::json repl(const std::string& resource_id, const std::string& input, bool read_only,
                      const Limits& limits,
                      const std::function<void(const nlohmann::json& block)>& emit,
                      UsageDelta* usage) override;
  bool verify_callback(const std::string& signature_header, const std::string& body,
                       int64_t now_s) const override;

 private:
  // One signed call; timeout 0 = the configured one.
  net::HttpResult call(const std::string& method, const std::string& path, const std::string& body,
                       const CallContext& ctx, int64_t timeout_ms = 0) const;
  // ProductRefused for 400/404/409/422, else ProductUnavailable (never returns).
  [[noreturn]] void fail(const std::string& what, const net::HttpResult& result) const;
  static std::string resource_path(const std::string& resource_id);

  std::string product_id_;
  Config config_;
  Descriptor descriptor_;
};

}  // namespace wharf::product
