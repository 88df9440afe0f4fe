// Request bodies of Create Resources Transfer Request (partner-api.md §5.16), in both shapes:
// current  POST …/resource-transfer-requests         {resourceIds, expiresAt}
// legacy   PUT  …/resource-transfer-requests/{id}    {claimId?, resourceIds, expiration}
// Times are epoch milliseconds.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/json_check.h"

namespace wharf::model {

struct TransferRequest {
  std::vector<std::string> resource_ids;  // non-empty, duplicates dropped, request order kept
  int64_t expires_ms = 0;                 // expiresAt (current) or expiration (legacy)
  std::optional<std::string> claim_id;    // legacy only; informative (the path names it)

  // Throws ApiError 400 naming every bad field; an expiry at or before `now_ms` is refused
  // too (reported only when the body is otherwise valid).
  static TransferRequest parse(const Json& body, int64_t now_ms);
  static TransferRequest parse_legacy(const Json& body, int64_t now_ms);
};

}  // namespace wharf::model
