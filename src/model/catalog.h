// The provider's products and billing plans (WHARF_CATALOG or the built-in default).
//
// A plan is the spec's BillingPlan object (partner-api.md §4.2), returned to Vercel as is,
// plus Wharf-only keys that never leave the server:
//   pricing  – base fee and per-metric unit prices (used by billing)
//   limits   – per-resource limits (storage bytes, …) enforced by the product
//   default  – true on the installation-scope plan assigned at Upsert Installation
//   match    – {"metadataKey": ["allowed", …]}: list the plan only for matching form input
//   maxResources – the most live resources one installation may hold on this plan (a
//              positive integer), enforced at Provision Resource and at a plan change. The
//              spec's historical BillingPlan field (partner-api.md §4.2, §9 items 12 and 28):
//              no longer in Vercel's schema, so it is not sent to Vercel either.
//   discount – a promotion on a subscription plan (PlanDiscount): sent as a Discount
//              (vercel-api.md §2.7) with the billing data and invoices it applies to.
// The spec's `effectiveDate` is sent as written and also parsed: a change to a plan whose
// effectiveDate lies ahead is scheduled for that date (flows.md F13 step 5).
#pragma once
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/json_check.h"
#include "model/metadata_schema.h"
#include "util/money.h"

namespace wharf::model {

// A plan's prices (the catalog's `pricing`): a base fee per billing period and a price per
// metric. `per` units of the ledger metric cost `unit_price`; "interval" metrics are summed
// over the period (rows read), "total" metrics are levels averaged over the days of the
// period (storage bytes → byte-months).
struct MetricPrice {
  std::string name;           // billing line / usage name, e.g. "rowsRead"
  std::string ledger_metric;  // usage ledger metric it is measured by (default: name)
  std::string type = "interval";
  std::string unit;  // e.g. "million rows", "GB-month"
  util::Money unit_price;
  int64_t per = 1;
};

struct Pricing {
  util::Money base_fee;
  std::vector<MetricPrice> metrics;
  bool free() const { return base_fee == util::Money() && metrics.empty(); }
};

// A plan's promotion (the catalog's `discount`): `percent` off, or a fixed `amount` off per
// billing period, of what the resource (or, for an installation-scope plan, the
// installation) is charged on the plan in a period; never more than that. Optionally only
// for the first `periods` billing periods from when it took the plan (the period it took it
// in counts as the first), and only for periods that begin before `ends` (an offer ending).
struct PlanDiscount {
  std::string name;
  std::string details;
  int64_t percent_bp = 0;  // basis points (20% = 2000); 0 when `amount` is set
  util::Money amount;      // fixed amount off per period
  std::optional<int64_t> periods;
  std::optional<int64_t> ends_ms;

  // Whether the discount applies to the period starting at `period_start_ms` for something
  // that took the plan at `since_ms`.
  bool applies(int64_t since_ms, int64_t period_start_ms) const;
  // The amount off `charged` (the lines' total): rounded to cents once, never more than
  // `charged`, never negative.
  util::Money amount_off(util::Money charged) const;
};

struct Plan {
  std::string id;
  std::string name;   // as shown to users, e.g. "Hobby"
  std::string type;   // subscription | prepayment
  std::string scope;  // resource | installation
  bool payment_method_required = true;
  bool disabled = false;
  bool is_default = false;
  Json public_json;  // the BillingPlan as sent to Vercel (Wharf-only keys removed)
  Json pricing = Json::object();
  Pricing prices;  // `pricing`, parsed
  Json limits = Json::object();
  std::map<std::string, std::vector<Json>> match;
  std::optional<int64_t> max_resources;  // `maxResources`; none = no cap
  std::optional<int64_t> effective_ms;   // `effectiveDate`, parsed
  std::optional<PlanDiscount> discount;  // `discount`

  // Free = nothing can ever be owed on this plan.
  bool free() const { return type == "subscription" && !payment_method_required; }
  // Whether the plan is offered for the given (possibly partial) metadata form values.
  bool matches(const Json& metadata) const;
};

struct Product {
  std::string id;  // the product slug Vercel uses in /v1/products/{productSlug}/plans
  std::string kind;
  std::string name;
  std::vector<std::string> plan_ids;
  std::string rotation = "sync";  // secrets rotation answered sync (200) or async (202 + push)
  // Per-environment secret values: {"DATABASE_TOKEN": {"preview": "DATABASE_READONLY_TOKEN"}}
  // gives that secret, in that environment, the value of the named secret (e.g. preview
  // deployments get read-only access). Empty when the product asks for none.
  Json environment_overrides = Json::object();
  Json metadata_schema;  // null when the product has none
  std::shared_ptr<const MetadataSchema> schema;
  // The catalog entry as written: a kind configured per product reads its own keys there
  // (an `http` product's `backend`).
  Json entry = Json::object();
};

class CatalogError : public std::runtime_error {
 public:
  CatalogError(std::string json_path, const std::string& message)
      : std::runtime_error(json_path + ": " + message), path(std::move(json_path)) {}
  std::string path;
};

class Catalog {
 public:
  // Validates the whole document; throws CatalogError naming the first offending path.
  static std::shared_ptr<const Catalog> parse(const Json& doc);
  static std::shared_ptr<const Catalog> parse_text(const std::string& text);

  const Product* product(const std::string& id) const;
  const Plan* plan(const std::string& id) const;
  const std::vector<Product>& products() const { return products_; }
  const std::vector<Plan>& plans() const { return plans_; }
  // Plans of one product, in catalog order.
  std::vector<const Plan*> plans_of(const Product& product) const;
  // Installation-level billing is on when any plan has scope "installation" (§8.1).
  bool installation_billing() const { return default_installation_plan_ != nullptr; }
  const Plan* default_installation_plan() const { return default_installation_plan_; }

  // Checks the catalog against the product kinds this server has (product::Registry, by the
  // app): every product's kind is one of `kinds`, and every metric its plans price is one
  // that kind records. Throws CatalogError naming the offending path and what is available.
  void check_kinds(const std::map<std::string, std::vector<std::string>>& metrics_by_kind) const;

 private:
  std::vector<Product> products_;
  std::vector<Plan> plans_;
  std::map<std::string, size_t, std::less<>> product_index_, plan_index_;
  const Plan* default_installation_plan_ = nullptr;
};

// The catalog used when WHARF_CATALOG is not set.
const std::string& builtin_catalog_json();
// What the built-in catalog adds when a PostgreSQL server is configured (WHARF_POSTGRES_URL):
// a `postgres` product and its plans, in the same format.
const std::string& builtin_postgres_catalog_json();

}  // namespace wharf::model
