#include "service/retention.h"

#include "util/log.h"

namespace wharf::service {

namespace {
constexpr int64_t kDayMs = 86400 * 1000LL;
constexpr int64_t kUsageEventDays = 62;
}  // namespace

Retention::Purged Retention::run() {
  int64_t now = clock_.now_ms();
  Purged purged;
  store_.write([&](store::WriteTx& tx) {
    purged.outbox = tx.purge_outbox(now - options_.outbox_days * kDayMs);
    purged.webhooks = tx.purge_webhook_events(now - options_.webhook_days * kDayMs);
    purged.usage = tx.purge_usage(util::day_key(now - options_.usage_days * kDayMs));
    // Usage event ids only matter while their events could be sent again: events before the
    // current billing period are refused anyway (product-protocol §5), so two months do.
    purged.usage_events = tx.purge_usage_events(now - kUsageEventDays * kDayMs);
  });
  if (purged.outbox || purged.webhooks || purged.usage || purged.usage_events)
    util::log_info("retention: old records removed")
        .num("outbox", purged.outbox)
        .num("webhook_events", purged.webhooks)
        .num("usage_entries", purged.usage)
        .num("usage_event_ids", purged.usage_events);
  return purged;
}

}  // namespace wharf::service
