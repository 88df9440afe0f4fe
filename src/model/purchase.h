// Request body of Provision Purchase (partner-api.md §5.15): {invoiceId}.
#pragma once
#include <string>

#include "model/json_check.h"

namespace wharf::model {

struct ProvisionPurchaseRequest {
  std::string invoice_id;  // Vercel's id: [A-Za-z0-9_-]+ (it goes into a Vercel URL path)

  static ProvisionPurchaseRequest parse(const Json& body);  // throws ApiError 400
};

}  // namespace wharf::model
