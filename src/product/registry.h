// The product kinds this server can sell, by name. Each kind registers a factory (and its
// Descriptor, readable without an instance) in kinds.cpp: adding a kind touches its own
// folder plus one line there. At start-up the catalog's `kind` of every product is checked
// against the registry, and one instance is made per kind the catalog uses.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "product/product.h"

namespace wharf::product {

// What a factory gets: where the server keeps data, and the kind's settings (already parsed
// and checked by the app's configuration), by name.
struct KindSettings {
  std::string data_dir;
  std::map<std::string, std::string> settings;
  // For a kind made per catalog product (Registry::add per_product): that product's catalog
  // entry as written (e.g. its `backend`), and the metrics its plans price.
  std::string product_id;
  nlohmann::json product = nlohmann::json::object();
  std::vector<MetricSpec> priced_metrics;

  // A numeric setting, or `fallback` when it is not given.
  int64_t number(const std::string& name, int64_t fallback) const {
    auto it = settings.find(name);
    return it == settings.end() ? fallback : std::stoll(it->second);
  }
};

using Factory = std::function<std::unique_ptr<Product>(const KindSettings&)>;

class Registry {
 public:
  // Throws std::logic_error for a kind registered twice. `per_product`: one instance per
  // catalog product of the kind (it is configured by the product's entry), else one shared.
  // `open_metrics`: the kind records whatever metrics its plans price (a provider's backend
  // reports them), so the catalog's check accepts any.
  void add(const std::string& kind, Descriptor descriptor, Factory factory,
           bool per_product = false, bool open_metrics = false);
  bool has(const std::string& kind) const { return kinds_.count(kind) != 0; }
  bool per_product(const std::string& kind) const {
    auto it = kinds_.find(kind);
    return it != kinds_.end() && it->second.per_product;
  }
  bool open_metrics(const std::string& kind) const {
    auto it = kinds_.find(kind);
    return it != kinds_.end() && it->second.open_metrics;
  }
  std::vector<std::string> kinds() const;  // sorted
  // nullptr for an unknown kind.
  const Descriptor* descriptor(const std::string& kind) const;
  // Throws std::invalid_argument for an unknown kind.
  std::unique_ptr<Product> make(const std::string& kind, const KindSettings& settings) const;

 private:
  struct Entry {
    Descriptor descriptor;
    Factory factory;
    bool per_product = false;
    bool open_metrics = false;
  };
  std::map<std::string, Entry> kinds_;
};

// Every kind this build ships (kinds.cpp).
const Registry& builtin_kinds();

}  // namespace wharf::product
