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

  // A numeric setting, or `fallback` when it is not given.
  int64_t number(const std::string& name, int64_t fallback) const {
    auto it = settings.find(name);
    return it == settings.end() ? fallback : std::stoll(it->second);
  }
};

using Factory = std::function<std::unique_ptr<Product>(const KindSettings&)>;

class Registry {
 public:
  // Throws std::logic_error for a kind registered twice.
  void add(const std::string& kind, Descriptor descriptor, Factory factory);
  bool has(const std::string& kind) const { return kinds_.count(kind) != 0; }
  std::vector<std::string> kinds() const;  // sorted
  // nullptr for an unknown kind.
  const Descriptor* descriptor(const std::string& kind) const;
  // Throws std::invalid_argument for an unknown kind.
  std::unique_ptr<Product> make(const std::string& kind, const KindSettings& settings) const;

 private:
  struct Entry {
    Descriptor descriptor;
    Factory factory;
  };
  std::map<std::string, Entry> kinds_;
};

// Every kind this build ships (kinds.cpp).
const Registry& builtin_kinds();

}  // namespace wharf::product
