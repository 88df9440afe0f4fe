#include "model/transfer.h"

#include <set>

namespace wharf::model {
namespace {

std::vector<std::string> parse_resource_ids(const Json& body, Checker& check) {
  std::vector<std::string> ids;
  const Json* arr = check.get(body, "resourceIds", "", Kind::kArray, true);
  if (!arr) return ids;
  if (arr->empty()) check.add("resourceIds", "must list at least one resource");
  std::set<std::string> seen;
  for (size_t i = 0; i < arr->size(); ++i) {
    if (!(*arr)[i].is_string() || (*arr)[i].get<std::string>().empty()) {
      check.add(Checker::index("resourceIds", i), "must be a resource id");
      continue;
    }
    if (seen.insert((*arr)[i].get<std::string>()).second)
      ids.push_back((*arr)[i].get<std::string>());
  }
  return ids;
}

int64_t parse_epoch_ms(const Json& body, const char* key, Checker& check) {
  const Json* v = check.get(body, key, "", Kind::kNumber, true);
  if (!v) return 0;
  double d = v->get<double>();
  // Upper bound: casting a double beyond int64_t is undefined (and no expiry is that far).
  if (!(d >= 1 && d < 9.0e18)) {
    check.add(key, "must be a positive epoch time in milliseconds");
    return 0;
  }
  return static_cast<int64_t>(d);
}

TransferRequest parse_shape(const Json& body, int64_t now_ms, bool legacy) {
  const char* expiry_key = legacy ? "expiration" : "expiresAt";
  TransferRequest out;
  Checker check;
  if (legacy) out.claim_id = check.string(body, "claimId", "", false);
  out.resource_ids = parse_resource_ids(body, check);
  out.expires_ms = parse_epoch_ms(body, expiry_key, check);
  if (check.ok() && out.expires_ms <= now_ms) check.add(expiry_key, "is in the past");
  check.throw_if_failed("Create Resources Transfer Request");
  return out;
}

}  // namespace

TransferRequest TransferRequest::parse(const Json& body, int64_t now_ms) {
  return parse_shape(body, now_ms, false);
}

TransferRequest TransferRequest::parse_legacy(const Json& body, int64_t now_ms) {
  return parse_shape(body, now_ms, true);
}

}  // namespace wharf::model
