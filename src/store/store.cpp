#include "store/store.h"

#include <map>
#include <mutex>
#include <stdexcept>

namespace wharf::store {
namespace {

std::mutex g_mu;
std::map<std::string, StoreFactory>& registry() {
  static std::map<std::string, StoreFactory> r;
  return r;
}

}  // namespace

void register_backend(const std::string& scheme, StoreFactory factory) {
  std::lock_guard<std::mutex> lock(g_mu);
  registry()[scheme] = std::move(factory);
}

std::unique_ptr<Store> open_store(const std::string& url) {
  auto colon = url.find("://");
  if (colon == std::string::npos)
    throw std::runtime_error("state URL '" + url + "' has no scheme (expected sqlite://…)");
  std::string scheme = url.substr(0, colon);
  StoreFactory factory;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = registry().find(scheme);
    if (it == registry().end())
      throw std::runtime_error("unsupported state URL scheme '" + scheme + "'");
    factory = it->second;
  }
  return factory(url);
}

}  // namespace wharf::store
