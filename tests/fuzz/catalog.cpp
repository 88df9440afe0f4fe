// Fuzz target: the catalog (model::Catalog::parse_text) and the metadata schema
// (src/model/metadata_schema.*).
//
// Input: "<document>" or "<document>\n---\n<metadata>". The document is parsed as a catalog
// and, when it is a JSON object, compiled as a metadata schema on its own. The metadata (a
// JSON value) is then validated against that schema and against every product schema of
// the catalog, fully and partially, and matched against every plan — what Provision
// Resource and the plans endpoints do with a customer's form input.
//
// model::CatalogError and model::ApiError are the expected refusals; any other exception is
// a bug.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "model/catalog.h"
#include "model/json_check.h"
#include "model/metadata_schema.h"

namespace {

using namespace wharf;
using model::Json;

void validate(const model::MetadataSchema& schema, const Json& metadata) {
  for (bool partial : {false, true})
    for (const auto& e : schema.validate(metadata, partial))
      (void)(e.key.size() + e.message.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n---\n";
  const size_t sep = input.find(kSeparator);
  const std::string document(input.substr(0, sep));
  Json metadata = Json::object();
  if (sep != std::string_view::npos) {
    const std::string_view rest = input.substr(sep + kSeparator.size());
    metadata = Json::parse(rest.begin(), rest.end(), nullptr, /*allow_exceptions=*/false);
    if (metadata.is_discarded()) metadata = Json(std::string(rest));  // a non-JSON value
  }

  std::shared_ptr<const model::Catalog> catalog;
  try {
    catalog = model::Catalog::parse_text(document);
  } catch (const model::CatalogError& e) {
    (void)e.path.size();
  }
  if (catalog) {
    for (const auto& product : catalog->products()) {
      if (product.schema) validate(*product.schema, metadata);
      for (const model::Plan* plan : catalog->plans_of(product)) {
        if (plan == nullptr) __builtin_trap();
        (void)plan->matches(metadata);
        (void)plan->public_json.dump();
      }
    }
    (void)catalog->installation_billing();
  }

  const Json doc = Json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded()) {
    model::Checker check;
    auto schema = model::MetadataSchema::compile(doc, "metadataSchema", check);
    if (schema && check.ok()) validate(*schema, metadata);
    if (!check.ok()) {
      try {
        check.throw_if_failed("metadata schema");
      } catch (const model::ApiError&) {
      }
    }
  }
  return 0;
}
