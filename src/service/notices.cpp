#include "service/notices.h"

#include "product/http_backend/http_backend.h"
#include "util/clock.h"
#include "util/ids.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {

using model::Json;

NoticeService::NoticeService(const net::HttpClient& http, const util::Clock& clock, Options options)
    : http_(http), clock_(clock), options_(std::move(options)) {}

void NoticeService::enqueue(store::WriteTx& tx, const store::InstallationRow& installation,
                            const Json& notification, const std::optional<std::string>& status,
                            int64_t now_ms) const {
  if (!enabled() || !notification.is_object()) return;
  Json account = installation.account_json ? Json::parse(*installation.account_json, nullptr, false)
                                           : Json::object();
  if (!account.is_object()) account = Json::object();
  std::string id = util::new_id("ntc");
  Json body = {{"id", id},
               {"type", "billing.notice"},
               {"installationId", installation.id},
               {"level", notification.value("level", "info")},
               {"title", notification.value("title", "")},
               {"message", notification.value("message", "")},
               {"contact", account.value("contact", Json())},
               {"team", Json::object()},
               {"createdAt", util::format_iso8601_ms(now_ms)}};
  for (const char* k : {"name", "url"})
    if (account.contains(k) && account[k].is_string()) body["team"][k] = account[k];
  if (status) body["status"] = *status;
  if (!options_.dashboard_url.empty()) body["dashboardUrl"] = options_.dashboard_url;
  vercel::Outbox::enqueue(tx, installation.id, vercel::Call{kKind, "POST", "/notice", body}, now_ms,
                          "notice:" + installation.id);
}

net::HttpResult NoticeService::deliver(const store::OutboxRow& item) const {
  if (!enabled()) {
    net::HttpResult r;
    r.status = 204;  // notices turned off since it was queued: nothing to send
    return r;
  }
  Json body = Json::parse(item.body, nullptr, false);
  std::string key = body.is_object() ? body.value("id", item.id) : item.id;
  net::HttpResult r = http_.request(
      "POST", options_.url,
      {{"Content-Type", "application/json"},
       {"Wharf-Signature",
        product::signature::header(options_.secret, clock_.now_ms() / 1000, item.body)},
       {"Idempotency-Key", key}},
      item.body);
  if (!r.ok())
    util::log_warn("billing notice not delivered")
        .str("installation", item.installation_id)
        .num("status", r.status)
        .str("error", r.error);
  return r;
}

}  // namespace wharf::service
