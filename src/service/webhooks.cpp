#include "service/webhooks.h"

#include "model/api_error.h"
#include "util/crypto.h"
#include "util/log.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

WebhookService::WebhookService(store::Store& store, std::string client_secret,
                               const util::Clock& clock, UninstallFn uninstall)
    : store_(store),
      secret_(std::move(client_secret)),
      clock_(clock),
      uninstall_(std::move(uninstall)) {}

Json WebhookService::receive(const std::string& raw_body, const std::string& signature) {
  if (signature.empty()) throw ApiError::unauthorized("missing x-vercel-signature");
  std::string expected = util::to_hex(util::hmac_sha1(secret_, raw_body));
  std::string given;
  for (char c : signature) given += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!util::constant_time_equal(expected, given))
    throw ApiError::unauthorized("x-vercel-signature does not match the body");

  Json doc = Json::parse(raw_body, nullptr, /*allow_exceptions=*/false);
  model::Checker check;
  if (doc.is_discarded() || !doc.is_object())
    throw ApiError::validation("webhook body is not a JSON object",
                               {{"body", "must be a JSON object"}});
  auto id = check.string(doc, "id", "", true, true);
  auto type = check.string(doc, "type", "", true, true);
  const Json* payload = check.get(doc, "payload", "", model::Kind::kObject, false);
  check.throw_if_failed("webhook");

  // The installation: payload.installationId, else payload.configuration.id (flows.md §3.2).
  std::optional<std::string> installation;
  if (payload) {
    if (payload->contains("installationId") && (*payload)["installationId"].is_string())
      installation = (*payload)["installationId"].get<std::string>();
    else if (payload->contains("configuration") && (*payload)["configuration"].is_object() &&
             (*payload)["configuration"].value("id", Json()).is_string())
      installation = (*payload)["configuration"]["id"].get<std::string>();
  }

  bool duplicate = false;
  store_.write([&](store::WriteTx& tx) {
    auto existing = tx.webhook_event(*id);
    if (existing && existing->processed_ms) {
      duplicate = true;
      return;
    }
    if (!existing)
      tx.put_webhook_event({*id, *type, installation, raw_body, clock_.now_ms(), std::nullopt});
  });
  if (duplicate) return Json{{"received", true}, {"duplicate", true}};

  // Act, then mark processed: a failure answers 500, so Vercel redelivers and we retry.
  if (*type == "integration-configuration.removed" && installation) uninstall_(*installation);
  if (*type == "integration-configuration.transferred" && installation && transferred_)
    transferred_(*installation);
  if (*type == "marketplace.member.changed" && installation && payload && member_changed_) {
    auto member = payload->find("memberId");
    if (member != payload->end() && member->is_string() && !member->get<std::string>().empty()) {
      auto role = payload->find("role");
      member_changed_(
          *installation, member->get<std::string>(),
          role != payload->end() && role->is_string() ? role->get<std::string>() : std::string());
    }
  }
  if (type->rfind("marketplace.invoice.", 0) == 0 && installation && payload && invoice_)
    invoice_(*type, *installation, *payload);
  else if (installation && payload && other_)
    other_(*type, *installation, *payload);
  store_.write([&](store::WriteTx& tx) {
    if (auto row = tx.webhook_event(*id)) {
      row->processed_ms = clock_.now_ms();
      tx.put_webhook_event(*row);
    }
  });
  util::log_info("webhook received")
      .str("id", *id)
      .str("type", *type)
      .str("installation", installation.value_or(""));
  return Json{{"received", true}, {"duplicate", false}};
}

}  // namespace wharf::service
