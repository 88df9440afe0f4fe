#include "model/purchase.h"

namespace wharf::model {

ProvisionPurchaseRequest ProvisionPurchaseRequest::parse(const Json& body) {
  Checker check;
  auto invoice_id = check.string(body, "invoiceId", "", true, true);
  // It goes into a Vercel URL path: Vercel's ids are [A-Za-z0-9_-].
  if (invoice_id &&
      invoice_id->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789_-") != std::string::npos)
    check.add("invoiceId", "must consist of letters, digits, _ and -");
  check.throw_if_failed("Provision Purchase body");
  return {*invoice_id};
}

}  // namespace wharf::model
