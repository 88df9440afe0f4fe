#include "model/catalog.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "util/clock.h"

namespace wharf::model {
namespace {

constexpr std::string_view kWharfOnlyKeys[] = {"pricing", "limits",       "default",
                                               "match",   "maxResources", "discount"};

// The limits a plan may set (product::Limits reads them). A key outside this list is refused
// at start-up: a typo such as `storage_bytes` would otherwise leave the plan unlimited.
// maxConnections: the postgres kind's CONNECTION LIMIT per resource (0 = unlimited); the
// SQL limits are product::Limits.
constexpr std::string_view kLimitKeys[] = {"storageBytes", "statementTimeoutMs", "maxResultBytes",
                                           "maxRows",      "maxMemoryBytes",     "maxConnections",
                                           "maxFlags"};

template <size_t N>
bool listed(const std::string_view (&list)[N], std::string_view key) {
  for (auto k : list)
    if (k == key) return true;
  return false;
}

template <size_t N>
std::string joined(const std::string_view (&list)[N]) {
  std::string out;
  for (auto k : list) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

// Refuses members of `obj` not in `known` (provider data: a misspelt key must fail loudly).
template <size_t N>
void only_keys(const Json& obj, const std::string& path, const std::string_view (&known)[N],
               Checker& check) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!listed(known, it.key()))
      check.add(Checker::join(path, it.key()), "is not a known key (known: " + joined(known) + ")");
}

constexpr std::string_view kPricingKeys[] = {"baseFee", "metrics"};
constexpr std::string_view kMetricPriceKeys[] = {"metric", "type", "unit", "unitPrice", "per"};

void check_details(const Json& plan, std::string_view key, const std::string& path,
                   Checker& check) {
  const Json* arr = check.get(plan, key, path, Kind::kArray, false);
  if (!arr) return;
  std::string apath = Checker::join(path, key);
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string p = Checker::index(apath, i);
    if (!(*arr)[i].is_object()) {
      check.add(p, "must be an object");
      continue;
    }
    check.string((*arr)[i], "label", p, true, true);
    check.string((*arr)[i], "value", p, false);
  }
}

void check_amount(const Json& obj, std::string_view key, const std::string& path, Checker& check) {
  if (auto s = check.string(obj, key, path, false); s && !is_decimal_string(*s))
    check.add(Checker::join(path, key), "must be a decimal amount string such as \"10.00\"");
}

std::optional<util::Money> money_at(const Json& obj, std::string_view key, const std::string& path,
                                    bool required, Checker& check) {
  auto s = check.string(obj, key, path, required);
  if (!s) return std::nullopt;
  auto m = util::Money::parse(*s);
  if (!m || *m < util::Money())
    check.add(Checker::join(path, key),
              "must be a non-negative decimal amount with at most 6 decimals, e.g. \"0.25\"");
  return m;
}

Pricing parse_pricing(const Json& j, const std::string& path, Checker& check) {
  Pricing out;
  only_keys(j, path, kPricingKeys, check);
  if (auto fee = money_at(j, "baseFee", path, false, check)) out.base_fee = *fee;
  const Json* metrics = check.get(j, "metrics", path, Kind::kObject, false);
  if (!metrics) return out;
  std::string mpath = Checker::join(path, "metrics");
  for (auto it = metrics->begin(); it != metrics->end(); ++it) {
    std::string p = Checker::join(mpath, it.key());
    if (!it->is_object()) {
      check.add(p, "must be an object");
      continue;
    }
    only_keys(*it, p, kMetricPriceKeys, check);
    MetricPrice m;
    m.name = it.key();
    // Which metrics exist depends on the product kinds pricing with the plan: checked
    // against them at start-up (check_kinds).
    m.ledger_metric = check.string(*it, "metric", p, false, true).value_or(m.name);
    m.type = check.string(*it, "type", p, false).value_or("interval");
    if (m.type != "interval" && m.type != "total")
      check.add(Checker::join(p, "type"), "must be \"interval\" or \"total\"");
    m.unit = check.string(*it, "unit", p, true, true).value_or("");
    m.unit_price = money_at(*it, "unitPrice", p, true, check).value_or(util::Money());
    const Json* per = check.get(*it, "per", p, Kind::kNumber, false);
    if (per) {
      if (!per->is_number_integer() || per->get<int64_t>() <= 0)
        check.add(Checker::join(p, "per"), "must be a positive integer");
      else
        m.per = per->get<int64_t>();
    }
    out.metrics.push_back(m);
  }
  return out;
}

constexpr std::string_view kDiscountKeys[] = {"name",   "details", "percent",
                                              "amount", "periods", "ends"};

PlanDiscount parse_discount(const Json& j, const std::string& path, Checker& check) {
  PlanDiscount d;
  only_keys(j, path, kDiscountKeys, check);
  d.name = check.string(j, "name", path, true, true).value_or("");
  d.details = check.string(j, "details", path, false).value_or("");
  const bool has_percent = j.contains("percent"), has_amount = j.contains("amount");
  if (has_percent == has_amount)
    check.add(path, "must set exactly one of \"percent\" and \"amount\"");
  if (const Json* pct = check.get(j, "percent", path, Kind::kNumber, false)) {
    // Whole basis points: 12.5 is fine, 12.345 is not.
    double v = pct->get<double>();
    int64_t bp = static_cast<int64_t>(v * 100 + (v >= 0 ? 0.5 : -0.5));
    if (!(v > 0 && v <= 100) || std::abs(v * 100 - static_cast<double>(bp)) > 1e-6)
      check.add(Checker::join(path, "percent"),
                "must be a number above 0 and at most 100, with at most 2 decimals");
    else
      d.percent_bp = bp;
  }
  if (has_amount)
    if (auto m = money_at(j, "amount", path, false, check)) {
      if (!(util::Money() < *m)) check.add(Checker::join(path, "amount"), "must be more than zero");
      d.amount = *m;
    }
  if (const Json* n = check.get(j, "periods", path, Kind::kNumber, false)) {
    if (!n->is_number_integer() || n->get<int64_t>() < 1)
      check.add(Checker::join(path, "periods"),
                "must be a positive integer (leave it out for every period)");
    else
      d.periods = n->get<int64_t>();
  }
  if (auto ends = check.string(j, "ends", path, false)) {
    int64_t ms;
    if (!util::parse_iso8601(*ends, &ms))
      check.add(Checker::join(path, "ends"), "must be an ISO-8601 date-time");
    else
      d.ends_ms = ms;
  }
  return d;
}

Plan parse_plan(const Json& j, const std::string& path, Checker& check) {
  Plan p;
  if (!j.is_object()) {
    check.add(path, "must be an object");
    return p;
  }
  p.id = check.string(j, "id", path, true, true).value_or("");
  p.type = check.one_of(j, "type", path, true, {"prepayment", "subscription"}).value_or("");
  p.name = check.string(j, "name", path, true, true).value_or("");
  check.string(j, "description", path, true);
  p.scope =
      check.one_of(j, "scope", path, false, {"installation", "resource"}).value_or("resource");
  p.payment_method_required = check.boolean(j, "paymentMethodRequired", path, false).value_or(true);
  p.disabled = check.boolean(j, "disabled", path, false).value_or(false);
  p.is_default = check.boolean(j, "default", path, false).value_or(false);
  check.get(j, "preauthorizationAmount", path, Kind::kNumber, false);
  for (auto key :
       {"initialCharge", "minimumAmount", "maximumAmount", "maximumAmountAutoPurchasePerPeriod"})
    check_amount(j, key, path, check);
  check.string(j, "cost", path, false);
  check_details(j, "details", path, check);
  check_details(j, "highlightedDetails", path, check);
  if (const Json* quote = check.get(j, "quote", path, Kind::kArray, false)) {
    for (size_t i = 0; i < quote->size(); ++i) {
      std::string qp = Checker::index(Checker::join(path, "quote"), i);
      if (!(*quote)[i].is_object()) {
        check.add(qp, "must be an object");
        continue;
      }
      check.string((*quote)[i], "line", qp, true);
      check.string((*quote)[i], "amount", qp, true);
    }
  }
  if (auto eff = check.string(j, "effectiveDate", path, false)) {
    int64_t ms;
    if (!util::parse_iso8601(*eff, &ms))
      check.add(Checker::join(path, "effectiveDate"), "must be an ISO-8601 date-time");
    else
      p.effective_ms = ms;
  }
  if (const Json* d = check.get(j, "discount", path, Kind::kObject, false)) {
    p.discount = parse_discount(*d, Checker::join(path, "discount"), check);
    if (p.type != "subscription" || !p.payment_method_required)
      check.add(Checker::join(path, "discount"),
                "only a paid subscription plan can have a discount (prepayment plans and "
                "free plans are never invoiced)");
  }
  if (const Json* pricing = check.get(j, "pricing", path, Kind::kObject, false)) {
    p.pricing = *pricing;
    p.prices = parse_pricing(*pricing, Checker::join(path, "pricing"), check);
  }
  if (const Json* limits = check.get(j, "limits", path, Kind::kObject, false)) {
    std::string lpath = Checker::join(path, "limits");
    only_keys(*limits, lpath, kLimitKeys, check);
    for (auto it = limits->begin(); it != limits->end(); ++it)
      if (!it->is_number() || (it->is_number_integer() && it->get<int64_t>() < 0) ||
          (it->is_number_float() && it->get<double>() < 0))
        check.add(Checker::join(lpath, it.key()), "must be a non-negative number");
    p.limits = *limits;
  }
  if (const Json* max = check.get(j, "maxResources", path, Kind::kNumber, false)) {
    if (!max->is_number_integer() || max->get<int64_t>() < 1)
      check.add(Checker::join(path, "maxResources"),
                "must be a positive integer (leave it out for no limit)");
    else
      p.max_resources = max->get<int64_t>();
  }
  // The older name (§9 item 28): refused rather than silently sent to Vercel unenforced.
  if (j.contains("maxProducts"))
    check.add(Checker::join(path, "maxProducts"), "was renamed maxResources");
  if (const Json* match = check.get(j, "match", path, Kind::kObject, false)) {
    for (auto it = match->begin(); it != match->end(); ++it) {
      if (!it->is_array()) {
        check.add(Checker::join(Checker::join(path, "match"), it.key()), "must be an array");
        continue;
      }
      p.match[it.key()] = std::vector<Json>(it->begin(), it->end());
    }
  }
  p.public_json = j;
  for (auto key : kWharfOnlyKeys) p.public_json.erase(std::string(key));
  return p;
}

}  // namespace

bool PlanDiscount::applies(int64_t since_ms, int64_t period_start_ms) const {
  if (ends_ms && period_start_ms >= *ends_ms) return false;
  if (!periods) return true;
  // Billing periods are calendar months: the month it took the plan in is the first.
  int64_t first = util::month_start_ms(since_ms), n = 0;
  for (int64_t p = first; p < period_start_ms && n <= *periods; p = util::next_month_start_ms(p))
    ++n;
  return n < *periods;
}

util::Money PlanDiscount::amount_off(util::Money charged) const {
  if (!(util::Money() < charged)) return util::Money();
  util::Money off = percent_bp ? util::Money::charge(charged, percent_bp, 10000) : amount;
  return off < charged ? off : charged;
}

bool Plan::matches(const Json& metadata) const {
  if (!metadata.is_object()) return true;
  for (const auto& [key, allowed] : match) {
    auto it = metadata.find(key);
    if (it == metadata.end() || it->is_null()) continue;
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == *it;
    if (!ok) return false;
  }
  return true;
}

std::shared_ptr<const Catalog> Catalog::parse_text(const std::string& text) {
  Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw CatalogError("(document)", "is not valid JSON");
  return parse(doc);
}

std::shared_ptr<const Catalog> Catalog::parse(const Json& doc) {
  auto cat = std::make_shared<Catalog>();
  Checker check;
  auto fail_if_errors = [&check] {
    if (!check.ok()) throw CatalogError(check.errors()[0].key, check.errors()[0].message);
  };
  if (!doc.is_object()) throw CatalogError("(document)", "must be a JSON object");
  const Json* plans = check.get(doc, "plans", "", Kind::kArray, true);
  const Json* products = check.get(doc, "products", "", Kind::kArray, true);
  fail_if_errors();

  for (size_t i = 0; i < plans->size(); ++i) {
    std::string path = Checker::index("plans", i);
    Plan p = parse_plan((*plans)[i], path, check);
    fail_if_errors();
    if (cat->plan_index_.count(p.id))
      throw CatalogError(path + ".id", "duplicates plan '" + p.id + "'");
    if (p.is_default && p.scope != "installation")
      throw CatalogError(path + ".default", "only an installation-scope plan can be the default");
    cat->plan_index_[p.id] = cat->plans_.size();
    cat->plans_.push_back(std::move(p));
  }
  if (cat->plans_.empty()) throw CatalogError("plans", "must list at least one plan");

  for (size_t i = 0; i < products->size(); ++i) {
    std::string path = Checker::index("products", i);
    const Json& j = (*products)[i];
    if (!j.is_object()) throw CatalogError(path, "must be an object");
    Product prod;
    prod.id = check.string(j, "id", path, true, true).value_or("");
    // Which kinds exist is the server's (product::Registry): checked at start-up, here only
    // that it is a name.
    prod.kind = check.string(j, "kind", path, true, true).value_or("");
    if (!prod.kind.empty() && !std::all_of(prod.kind.begin(), prod.kind.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        }))
      check.add(Checker::join(path, "kind"), "must be a product kind name such as \"sqlite\"");
    prod.name = check.string(j, "name", path, true, true).value_or("");
    prod.entry = j;
    prod.rotation = check.one_of(j, "rotation", path, false, {"sync", "async"}).value_or("sync");
    if (const Json* eo = check.get(j, "environmentOverrides", path, Kind::kObject, false)) {
      std::string eo_path = path + ".environmentOverrides";
      for (auto it = eo->begin(); it != eo->end(); ++it) {
        std::string p = Checker::join(eo_path, it.key());
        if (!it->is_object()) {
          check.add(p, "must be an object of environment -> secret name");
          continue;
        }
        for (auto env = it->begin(); env != it->end(); ++env) {
          if (env.key() != "development" && env.key() != "preview" && env.key() != "production")
            check.add(Checker::join(p, env.key()), "must be development, preview or production");
          else if (!env->is_string())
            check.add(Checker::join(p, env.key()), "must name a secret");
        }
      }
      prod.environment_overrides = *eo;
    }
    const Json* plan_ids = check.get(j, "plans", path, Kind::kArray, true);
    fail_if_errors();
    for (size_t k = 0; k < plan_ids->size(); ++k) {
      std::string pp = Checker::index(path + ".plans", k);
      if (!(*plan_ids)[k].is_string()) throw CatalogError(pp, "must be a string");
      auto id = (*plan_ids)[k].get<std::string>();
      if (!cat->plan_index_.count(id)) throw CatalogError(pp, "names unknown plan '" + id + "'");
      prod.plan_ids.push_back(id);
    }
    if (prod.plan_ids.empty()) throw CatalogError(path + ".plans", "must list at least one plan");
    if (auto it = j.find("metadataSchema"); it != j.end() && !it->is_null()) {
      prod.schema = MetadataSchema::compile(*it, path + ".metadataSchema", check);
      fail_if_errors();
      prod.metadata_schema = *it;
    }
    if (cat->product_index_.count(prod.id))
      throw CatalogError(path + ".id", "duplicates product '" + prod.id + "'");
    cat->product_index_[prod.id] = cat->products_.size();
    cat->products_.push_back(std::move(prod));
  }
  if (cat->products_.empty()) throw CatalogError("products", "must list at least one product");

  // The default installation plan: the one marked "default", else the first free one.
  int defaults = 0;
  for (const auto& p : cat->plans_) {
    if (p.scope != "installation") continue;
    if (p.is_default) {
      ++defaults;
      cat->default_installation_plan_ = &p;
    }
  }
  if (defaults > 1) throw CatalogError("plans", "more than one plan is marked \"default\"");
  if (!cat->default_installation_plan_) {
    for (const auto& p : cat->plans_)
      if (p.scope == "installation" && p.free() && !p.disabled) {
        cat->default_installation_plan_ = &p;
        break;
      }
  }
  if (!cat->default_installation_plan_) {
    for (const auto& p : cat->plans_)
      if (p.scope == "installation")
        throw CatalogError("plans",
                           "installation-scope plans need a free plan or one marked \"default\"");
  }
  return cat;
}

const Product* Catalog::product(const std::string& id) const {
  auto it = product_index_.find(id);
  return it == product_index_.end() ? nullptr : &products_[it->second];
}

const Plan* Catalog::plan(const std::string& id) const {
  auto it = plan_index_.find(id);
  return it == plan_index_.end() ? nullptr : &plans_[it->second];
}

std::vector<const Plan*> Catalog::plans_of(const Product& product) const {
  std::vector<const Plan*> out;
  for (const auto& id : product.plan_ids) out.push_back(plan(id));
  return out;
}

void Catalog::check_kinds(
    const std::map<std::string, std::vector<std::string>>& metrics_by_kind) const {
  auto list = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? std::string("none") : out;
  };
  std::vector<std::string> kinds;
  for (const auto& [kind, metrics] : metrics_by_kind) kinds.push_back(kind);
  for (size_t i = 0; i < products_.size(); ++i) {
    const Product& product = products_[i];
    auto kind = metrics_by_kind.find(product.kind);
    if (kind == metrics_by_kind.end())
      throw CatalogError(Checker::join(Checker::index("products", i), "kind"),
                         "product '" + product.id + "' has kind '" + product.kind +
                             "', which this server does not have (available: " + list(kinds) + ")");
    for (size_t j = 0; j < plans_.size(); ++j) {
      const Plan& plan = plans_[j];
      if (std::find(product.plan_ids.begin(), product.plan_ids.end(), plan.id) ==
          product.plan_ids.end())
        continue;
      for (const auto& price : plan.prices.metrics) {
        const auto& known = kind->second;
        // "*": the kind records whatever its plans price (a provider's backend reports it).
        if (std::find(known.begin(), known.end(), price.ledger_metric) != known.end() ||
            std::find(known.begin(), known.end(), "*") != known.end())
          continue;
        throw CatalogError(
            Checker::join(Checker::join(Checker::index("plans", j), "pricing.metrics"), price.name),
            "measures usage metric '" + price.ledger_metric + "', which product '" + product.id +
                "' (kind " + product.kind + ") does not record (known: " + list(known) +
                "); name one with \"metric\"");
      }
    }
  }
}

}  // namespace wharf::model
