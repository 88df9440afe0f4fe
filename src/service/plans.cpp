#include "service/plans.h"

#include <set>

#include "model/api_error.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

PlanService::PlanService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                         InstallationService& installations)
    : store_(store), catalog_(std::move(catalog)), installations_(installations) {
  for (const auto& product : catalog_->products())
    product_cache_[product.id] = render(catalog_->plans_of(product), Json::object());
  all_plans_cache_ = render(all_plans(), Json::object());
}

std::vector<const model::Plan*> PlanService::all_plans() const {
  std::vector<const model::Plan*> plans;
  std::set<std::string> seen;
  for (const auto& product : catalog_->products())
    for (const model::Plan* p : catalog_->plans_of(product))
      if (seen.insert(p->id).second) plans.push_back(p);
  return plans;
}

Json PlanService::parse_metadata(const std::optional<std::string>& param) {
  if (!param || param->empty()) return Json::object();
  Json j = Json::parse(*param, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw ApiError::validation("the metadata query parameter must be a URL-encoded JSON object",
                               {{"metadata", "must be a URL-encoded JSON object"}});
  return j;
}

std::string PlanService::render(const std::vector<const model::Plan*>& plans,
                                const Json& metadata) {
  Json out = Json::array();
  for (const model::Plan* p : plans)
    if (p->matches(metadata)) out.push_back(p->public_json);
  return Json{{"plans", std::move(out)}}.dump();
}

std::string PlanService::product_plans(const std::string& product_slug,
                                       const std::optional<std::string>& metadata_param) const {
  const model::Product* product = catalog_->product(product_slug);
  if (!product) throw ApiError::not_found("unknown product '" + product_slug + "'");
  Json metadata = parse_metadata(metadata_param);
  // The form may be half filled in: check the values present, not `required`.
  if (product->schema) {
    auto errors = product->schema->validate(metadata, /*partial=*/true);
    if (!errors.empty())
      throw ApiError::validation("metadata does not match the product's schema", std::move(errors));
  }
  if (metadata.empty()) return product_cache_.at(product->id);
  return render(catalog_->plans_of(*product), metadata);
}

std::string PlanService::installation_plans(
    const std::string& installation_id, const std::optional<std::string>& metadata_param) const {
  Json metadata = parse_metadata(metadata_param);
  store_.read([&](store::ReadTx& tx) { installations_.require_active(tx, installation_id); });
  // Every plan of every product, each once: the list may mix installation- and resource-
  // scope plans (§5.14).
  if (metadata.empty()) return all_plans_cache_;
  return render(all_plans(), metadata);
}

}  // namespace wharf::service
