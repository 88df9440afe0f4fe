// Fuzz target: Vercel webhook deliveries (service::WebhookService::receive,
// src/service/webhooks.*): the x-vercel-signature check (hex HMAC-SHA1 of the raw body with
// the client secret), then the parse of the envelope and its payload, de-duplication in a
// real (SQLite) store and the dispatch to uninstall / invoice handling.
//
// Input: one selector byte, then the raw body. The selector picks the signature header:
//   0: the correct signature (lower-case hex), so the body reaches the JSON parse
//   1: the correct signature in upper case (accepted: hex is case-insensitive)
//   2: the first line of the rest is the header, the remainder the body
//   3: no header
//   4: the correct signature with its last digit changed
// The store is re-created every kStoreInputs inputs so it stays small; within that window a
// repeated id is answered as a duplicate, as in production.
//
// model::ApiError (401/400) is the expected refusal; any other exception is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "api/respond.h"
#include "model/api_error.h"
#include "service/webhooks.h"
#include "store/sqlite/sqlite_store.h"
#include "temp_dir.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

namespace {

using namespace wharf;

constexpr const char* kSecret = "fuzz-client-secret";
constexpr int kStoreInputs = 5000;

struct Fixture {
  std::string dir = fuzz::make_temp_dir("webhook");
  util::ManualClock clock{1750000000000};
  std::unique_ptr<store::Store> store;
  std::unique_ptr<service::WebhookService> service;
  int inputs = 0;

  Fixture() {
    util::set_log_level(util::LogLevel::kError);
    open();
  }

  void open() {
    service.reset();
    store.reset();
    std::filesystem::remove_all(dir + "/state");
    std::filesystem::create_directories(dir + "/state");
    store = store::sqlite::open({dir + "/state/state.db"});
    service = std::make_unique<service::WebhookService>(
        *store, kSecret, clock, [](const std::string& installation) {
          if (installation.empty()) return;  // uninstalling is not under test here
        });
    service->on_invoice(
        [](const std::string& type, const std::string& installation, const model::Json& payload) {
          if (type.rfind("marketplace.invoice.", 0) != 0 || installation.empty() ||
              !payload.is_object())
            __builtin_trap();
        });
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture& f = *new Fixture();
  if (size == 0) return 0;
  if (++f.inputs % kStoreInputs == 0) f.open();

  const unsigned selector = data[0] % 5;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string signature;
  switch (selector) {
    case 0:
    case 1:
    case 4:
      signature = util::to_hex(util::hmac_sha1(kSecret, body));
      if (selector == 1)
        for (auto& c : signature)
          c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (selector == 4) signature.back() = signature.back() == '0' ? '1' : '0';
      break;
    case 2: {
      size_t eol = body.find('\n');
      if (eol == std::string::npos) eol = body.size();
      signature = body.substr(0, eol);
      body.erase(0, std::min(body.size(), eol + 1));
      break;
    }
    case 3:
      break;
  }

  try {
    model::Json answer = f.service->receive(body, signature);
    if (selector >= 3) __builtin_trap();  // no or a wrong signature must never be accepted
    (void)api::json_response(200, answer);
  } catch (const model::ApiError& e) {
    if (e.status != 400 && e.status != 401) __builtin_trap();
    if (e.status == 400 && selector >= 3) __builtin_trap();  // signature comes first
    (void)api::error_response(e);
  }
  return 0;
}
