// Fuzz target: the product protocol's backend → Wharf callbacks (spec/product-protocol.md §5,
// src/api/backend/callbacks.cpp → service::ResourceService): the Wharf-Signature check of the
// raw body with the product's secret, then W1 (status), W2 (usage batches, de-duplicated in a
// real SQLite store) and W3 (secrets) on a resource of an `http` product whose backend is
// unreachable (so provisioning leaves it pending, as a backend that is down would).
//
// Input: one selector byte, then the raw body. selector % 3 picks the call (W1, W2, W3);
// selector / 3 % 4 the signature: 0 valid, 1 none, 2 the first line of the rest is the
// header, 3 valid with its last digit changed. The body may name the fixture's resource by
// containing "$RID", replaced before signing.
//
// model::ApiError is the expected refusal (401 before anything else for a bad signature,
// 400/404/409/422 after); any other exception is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>

#include "api/respond.h"
#include "model/api_error.h"
#include "model/catalog.h"
#include "model/installation.h"
#include "model/json_check.h"
#include "model/resource.h"
#include "product/http_backend/http_backend.h"
#include "product/registry.h"
#include "service/installations.h"
#include "service/resources.h"
#include "store/sqlite/sqlite_store.h"
#include "temp_dir.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

namespace {

using namespace wharf;
using model::Json;

constexpr const char* kSecret = "fuzz-backend-secret-0123456789abcdef";
constexpr int kStoreInputs = 3000;

const char* kCatalog = R"j({
  "products": [{"id": "acme", "kind": "http", "name": "Acme", "plans": ["free"],
                "backend": {"url": "http://127.0.0.1:9/wharf/v1", "secretEnv": "FUZZ_BACKEND_SECRET",
                            "timeoutMs": 50, "provisionWaitMs": 0}}],
  "plans": [{"id": "free", "type": "subscription", "name": "Free", "description": "Free",
             "scope": "resource", "paymentMethodRequired": false,
             "pricing": {"baseFee": "0.00", "metrics": {
               "calls": {"unit": "calls", "unitPrice": "0.01", "per": 1000}}}}]
})j";

struct Fixture {
  std::string dir = fuzz::make_temp_dir("product_callbacks");
  util::SystemClock clock;
  util::SecretBox box{std::string(32, 'k')};
  std::shared_ptr<const model::Catalog> catalog = model::Catalog::parse_text(kCatalog);
  std::unique_ptr<product::Product> acme;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<service::InstallationService> installations;
  std::unique_ptr<service::ResourceService> resources;
  std::string rid;
  int inputs = 0;

  Fixture() {
    util::set_log_level(util::LogLevel::kError);
    ::setenv("FUZZ_BACKEND_SECRET", kSecret, 1);
    product::KindSettings settings;
    settings.product_id = "acme";
    settings.product = catalog->product("acme")->entry;
    acme = product::builtin_kinds().make("http", settings);
    open();
  }

  void open() {
    resources.reset();
    installations.reset();
    store.reset();
    std::filesystem::remove_all(dir + "/state");
    std::filesystem::create_directories(dir + "/state");
    store = store::sqlite::open({dir + "/state/state.db"});
    installations = std::make_unique<service::InstallationService>(*store, catalog, box, clock);
    resources = std::make_unique<service::ResourceService>(
        *store, catalog, *installations,
        std::map<std::string, product::Product*>{{"acme", acme.get()}}, box, clock,
        service::ResourceService::Options{"http://wharf.fuzz", 0.9, nullptr, {}});
    installations->upsert("icfg_fuzz", service::Actor{"team_fuzz", "u1"},
                          model::UpsertInstallationRequest::parse(Json{
                              {"scopes", {"x"}},
                              {"acceptedPolicies", Json::object()},
                              {"credentials", {{"access_token", "t"}, {"token_type", "Bearer"}}}}));
    Json res = resources->provision(
        "icfg_fuzz",
        model::ProvisionResourceRequest::parse(Json{{"productId", "acme"},
                                                    {"name", "r"},
                                                    {"metadata", Json::object()},
                                                    {"billingPlanId", "free"}}),
        std::nullopt);
    if (res["status"] != "pending") __builtin_trap();  // the backend is unreachable
    rid = res["id"];
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture& f = *new Fixture();
  if (size == 0) return 0;
  if (++f.inputs % kStoreInputs == 0) f.open();

  const unsigned call = data[0] % 3;
  const unsigned sig_mode = data[0] / 3 % 4;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (size_t at = body.find("$RID"); at != std::string::npos; at = body.find("$RID", at))
    body.replace(at, 4, f.rid);
  std::string header;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  switch (sig_mode) {
    case 0:
    case 3:
      header = product::signature::header(kSecret, now, body);
      if (sig_mode == 3) header.back() = header.back() == '0' ? '1' : '0';
      break;
    case 1:
      break;
    case 2: {
      size_t eol = body.find('\n');
      if (eol == std::string::npos) eol = body.size();
      header = body.substr(0, eol);
      body.erase(0, std::min(body.size(), eol + 1));
      break;
    }
  }

  bool verified = false;
  try {
    f.resources->verify_callback("acme", header, body);
    verified = true;
    if (sig_mode == 1 || sig_mode == 3) __builtin_trap();  // never accepted
    Json parsed = model::parse_json_object_body("application/json", body);
    Json answer;
    if (call == 0)
      answer = f.resources->backend_status("acme", f.rid, parsed);
    else if (call == 1)
      answer = f.resources->ingest_usage("acme", parsed);
    else
      answer = f.resources->backend_secrets("acme", f.rid, parsed);
    (void)api::json_response(200, answer);
  } catch (const model::ApiError& e) {
    if (!verified && e.status != 401) __builtin_trap();  // the signature comes first
    if (verified && e.status != 400 && e.status != 404 && e.status != 409 && e.status != 422)
      __builtin_trap();
    (void)api::error_response(e);
  }
  return 0;
}
