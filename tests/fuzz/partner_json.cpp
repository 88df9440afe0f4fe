// Fuzz target: the Partner API request bodies (src/model/*, partner-api.md §5).
//
// Input: one selector byte, then the body. selector % kModels picks the parser (the table
// below); (selector / kModels) % 3 picks the Content-Type the body arrives with, for the
// parsers that take the raw body. A body that parses then goes where the service takes it:
// its metadata is checked against a product schema and the plans' `match`, and every
// refusal is rendered into the error envelope (api::error_response), as the server does.
//
// model::ApiError is the expected refusal; any other exception is a bug.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/respond.h"
#include "model/catalog.h"
#include "model/installation.h"
#include "model/json_check.h"
#include "model/purchase.h"
#include "model/resource.h"
#include "model/transfer.h"
#include "service/plans.h"

namespace {

using namespace wharf;
using model::Json;

constexpr int64_t kNowMs = 1750000000000;

// A catalog whose schema uses every keyword the validator knows, so parsed metadata meets
// real checks (types, enum, bounds, lengths, a pattern), besides the built-in catalog.
constexpr const char* kCatalog = R"({
  "products": [{"id": "db", "kind": "sqlite", "name": "DB", "plans": ["free", "pro"],
    "metadataSchema": {"type": "object", "required": ["region"], "properties": {
      "region": {"type": "string", "enum": ["iad1", "fra1", "sfo1"]},
      "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z][a-z0-9-]*$"},
      "replicas": {"type": "integer", "minimum": 0, "maximum": 5},
      "ratio": {"type": "number", "minimum": 0.5, "maximum": 1.5},
      "public": {"type": "boolean"}, "tags": {"type": "array"}, "extra": {"type": "object"},
      "any": {}}}}],
  "plans": [
    {"id": "free", "type": "subscription", "name": "Free", "description": "",
     "paymentMethodRequired": false},
    {"id": "pro", "type": "subscription", "name": "Pro", "description": "",
     "match": {"region": ["iad1", "fra1"], "replicas": [1, 2, 3]}}]
})";

struct Fixture {
  std::shared_ptr<const model::Catalog> builtin =
      model::Catalog::parse_text(model::builtin_catalog_json());
  std::shared_ptr<const model::Catalog> rich = model::Catalog::parse_text(kCatalog);
};

// What the service does with request metadata: the product's schema, then plan matching.
void check_metadata(const Fixture& f, const Json& metadata, bool partial) {
  for (const auto* catalog : {f.builtin.get(), f.rich.get()}) {
    for (const auto& product : catalog->products()) {
      if (product.schema) {
        auto errors = product.schema->validate(metadata, partial);
        if (!errors.empty())
          (void)api::error_response(model::ApiError::validation("metadata", std::move(errors)));
      }
      for (const model::Plan* plan : catalog->plans_of(product)) (void)plan->matches(metadata);
    }
  }
}

constexpr const char* kContentTypes[] = {"application/json", "Application/JSON; charset=utf-8",
                                         "text/plain"};
constexpr unsigned kModels = 11;

void parse(const Fixture& f, unsigned model, std::string_view content_type, std::string_view body) {
  switch (model) {
    case 0: {  // PUT /v1/installations/{id}
      auto r = model::UpsertInstallationRequest::parse(
          model::parse_json_object_body(content_type, body));
      if (r.account) (void)r.account->dump();
      (void)r.accepted_policies.dump();
      break;
    }
    case 1:  // PATCH /v1/installations/{id}
      (void)model::UpdateInstallationRequest::parse(
          model::parse_json_object_body(content_type, body));
      break;
    case 2:  // DELETE /v1/installations/{id} (optional body)
      (void)model::DeleteInstallationRequest::parse(content_type, body);
      break;
    case 3: {  // POST …/resources
      auto r =
          model::ProvisionResourceRequest::parse(model::parse_json_object_body(content_type, body));
      check_metadata(f, r.metadata, /*partial=*/false);
      break;
    }
    case 4: {  // PATCH …/resources/{id}
      auto r =
          model::UpdateResourceRequest::parse(model::parse_json_object_body(content_type, body));
      if (r.metadata) check_metadata(f, *r.metadata, /*partial=*/false);
      if (r.protocol_settings)
        (void)model::render_protocol_settings(*r.protocol_settings, true).dump();
      break;
    }
    case 5:  // POST …/resources/{id}/secrets/rotate (optional body)
      (void)model::RotateSecretsRequest::parse(content_type, body);
      break;
    case 6:  // POST …/resources/{id}/repl
      (void)model::ReplRequest::parse(model::parse_json_object_body(content_type, body));
      break;
    case 7:  // POST …/resource-transfer-requests
      (void)model::TransferRequest::parse(model::parse_json_object_body(content_type, body),
                                          kNowMs);
      break;
    case 8:  // PUT …/resource-transfer-requests/{id} (legacy)
      (void)model::TransferRequest::parse_legacy(model::parse_json_object_body(content_type, body),
                                                 kNowMs);
      break;
    case 9:  // POST …/billing/provision
      (void)model::ProvisionPurchaseRequest::parse(
          model::parse_json_object_body(content_type, body));
      break;
    case 10: {  // GET …/plans?metadata=<json> (the value as the router decoded it)
      Json metadata = service::PlanService::parse_metadata(std::string(body));
      check_metadata(f, metadata, /*partial=*/true);
      break;
    }
    default:
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture& f = *new Fixture();
  if (size == 0) return 0;
  const unsigned model = data[0] % kModels;
  const char* content_type = kContentTypes[(data[0] / kModels) % 3];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    parse(f, model, content_type, body);
  } catch (const model::ApiError& e) {
    if (e.status != 400) __builtin_trap();
    (void)api::error_response(e);
  }
  return 0;
}
