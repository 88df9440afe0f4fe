// The `flags` product kind: every resource is a feature-flag set. Flags are managed from the
// dashboard and from the provider API with the resource's FLAGS_ADMIN_KEY, mirrored to Vercel
// as experimentation items (and to the user's Global Config when syncing is on), and
// evaluated over OpenFeature's Remote Evaluation Protocol with FLAGS_SDK_KEY
// (service/flags.h, api/flags/).
//
// The definitions live in Wharf's state store, not in a store of the product's own: a flag
// change and the outbox calls that report it to Vercel commit in one transaction, and every
// replica sharing the state store serves the same flags (docs/decisions.md, "flags kind").
// So the lifecycle calls here have nothing to create or remove: the flag service does it in
// the resource's own transactions (ResourceService::Hooks).
#pragma once
#include <memory>
#include <string>

#include "product/product.h"
#include "product/registry.h"

namespace wharf::product {

class FlagsProduct : public Product {
 public:
  static const Descriptor& kDescriptor();
  static std::unique_ptr<Product> make(const KindSettings& settings);

  std::string kind() const override { return "flags"; }
  const Descriptor& descriptor() const override { return kDescriptor(); }
  void create(const std::string& resource_id, const Limits&, const nlohmann::json&) override;
  void destroy(const std::string& resource_id) override;
  bool exists(const std::string& resource_id) const override;
};

}  // namespace wharf::product
