// Checks a partner's HTTP response against partner-api.md, so the sandbox can tell a provider
// exactly what in an answer Vercel would find wrong. Every finding names the offending field
// by its path from the body root ("response.secrets[0].value: required string missing"), or
// the status / content type when those are wrong.
//
// The checker is strict about what the spec requires (statuses, required fields, their types
// and enums, the error envelope) and silent about what it leaves open (unknown keys are never
// reported: Vercel tolerates them and partners may carry their own data). It never throws on
// a malformed body: a body that is not JSON, or JSON of the wrong shape, is itself a finding.
#pragma once
#include <string>
#include <vector>

namespace wharf::sandbox {

struct ConformanceOptions {
  // The integration uses installation-level billing plans (partner-api.md §8.1): then
  // Resource.billingPlan may be omitted; otherwise its absence is an error.
  bool installation_billing = false;
};

// `endpoint` is one of known_endpoints(): "upsert-installation", "get-installation",
// "update-installation", "delete-installation", "provision-resource", "list-resources",
// "get-resource", "update-resource", "delete-resource", "rotate-secrets", "repl",
// "product-plans", "installation-plans", "resource-plans", "provision-purchase",
// "transfer-create", "transfer-create-legacy", "transfer-verify", "transfer-accept",
// "sso-callback" (the partner's Redirect Login URL answering a browser), "webhook" (the
// partner's Webhook URL answering a delivery). `status` 0 means no response was received.
// Returns the findings; empty means conformant.
std::vector<std::string> check_partner_response(const std::string& endpoint, int status,
                                                const std::string& content_type,
                                                const std::string& body,
                                                const ConformanceOptions& options = {});

const std::vector<std::string>& known_endpoints();

}  // namespace wharf::sandbox
