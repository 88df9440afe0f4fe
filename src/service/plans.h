// The three plan listings (partner-api.md §5.12–5.14), with the `metadata` query.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "model/catalog.h"
#include "service/installations.h"

namespace wharf::service {

class PlanService {
 public:
  PlanService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
              InstallationService& installations);

  // Each returns the rendered BillingPlansResponse body. The catalog is immutable, so the
  // unfiltered listings are rendered once at construction (they are on Vercel's hot path:
  // the create-resource modal polls them).
  // `metadata_param` is the raw (already URL-decoded) `metadata` query value, if any.
  std::string product_plans(const std::string& product_slug,
                            const std::optional<std::string>& metadata_param) const;
  std::string installation_plans(const std::string& installation_id,
                                 const std::optional<std::string>& metadata_param) const;

  // Parses the `metadata` query: a JSON object, or 400 validation_error naming `metadata`.
  static model::Json parse_metadata(const std::optional<std::string>& param);

 private:
  static std::string render(const std::vector<const model::Plan*>& plans,
                            const model::Json& metadata);
  std::vector<const model::Plan*> all_plans() const;

  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  InstallationService& installations_;
  std::map<std::string, std::string, std::less<>> product_cache_;  // slug -> unfiltered body
  std::string all_plans_cache_;
};

}  // namespace wharf::service
