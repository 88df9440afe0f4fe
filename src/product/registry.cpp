#include "product/registry.h"

#include <stdexcept>

namespace wharf::product {

void Registry::add(const std::string& kind, Descriptor descriptor, Factory factory,
                   bool per_product, bool open_metrics) {
  if (!kinds_
           .emplace(kind,
                    Entry{std::move(descriptor), std::move(factory), per_product, open_metrics})
           .second)
    throw std::logic_error("product kind '" + kind + "' is registered twice");
}

std::vector<std::string> Registry::kinds() const {
  std::vector<std::string> out;
  for (const auto& [kind, entry] : kinds_) out.push_back(kind);
  return out;
}

const Descriptor* Registry::descriptor(const std::string& kind) const {
  auto it = kinds_.find(kind);
  return it == kinds_.end() ? nullptr : &it->second.descriptor;
}

std::unique_ptr<Product> Registry::make(const std::string& kind,
                                        const KindSettings& settings) const {
  auto it = kinds_.find(kind);
  if (it == kinds_.end()) throw std::invalid_argument("unknown product kind '" + kind + "'");
  return it->second.factory(settings);
}

}  // namespace wharf::product
