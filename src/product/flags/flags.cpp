#include "product/flags/flags.h"

#include <cctype>
#include <stdexcept>

namespace wharf::product {

namespace {

void check_id(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  if (!ok) throw std::invalid_argument("malformed resource id: " + id);
}

}  // namespace

const Descriptor& FlagsProduct::kDescriptor() {
  static const Descriptor descriptor = [] {
    Descriptor d;
    // FLAGS_URL is the base URL an OFREP provider takes; OFREP's paths follow it.
    d.secrets = {{"FLAGS_URL", SecretSource::kDataPlaneUrl},
                 {"FLAGS_ADMIN_KEY", SecretSource::kReadWriteToken},
                 {"FLAGS_SDK_KEY", SecretSource::kReadOnlyToken}};
    d.metrics = {{"evaluations", false, "evaluations"}};
    d.data_plane_path = "/v1/flags/";
    d.token_prefix = "wfl";
    d.capabilities.config_sync = true;
    return d;
  }();
  return descriptor;
}

std::unique_ptr<Product> FlagsProduct::make(const KindSettings&) {
  return std::make_unique<FlagsProduct>();
}

void FlagsProduct::create(const std::string& resource_id, const Limits&, const nlohmann::json&) {
  check_id(resource_id);
}

void FlagsProduct::destroy(const std::string& resource_id) {
  check_id(resource_id);
}

bool FlagsProduct::exists(const std::string& resource_id) const {
  check_id(resource_id);
  return true;
}

}  // namespace wharf::product
