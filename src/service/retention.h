// Retention: what the state store no longer needs is deleted on a schedule, so it does not
// grow with every call delivered and every day of usage. Delivered (and operator-dropped)
// outbox rows, processed webhook deliveries, and usage-ledger days older than their
// retention go; pending and dead outbox rows are never touched (a dead letter waits for an
// operator: `wharf outbox retry|drop`). Defaults and limits: docs/decisions.md, README.
#pragma once
#include <cstdint>

#include "store/store.h"
#include "util/clock.h"

namespace wharf::service {

class Retention {
 public:
  struct Options {
    int64_t outbox_days = 30;   // WHARF_RETAIN_OUTBOX_DAYS
    int64_t webhook_days = 30;  // WHARF_RETAIN_WEBHOOKS_DAYS (their ids stop de-duplicating)
    int64_t usage_days = 400;   // WHARF_RETAIN_USAGE_DAYS (billing reads the current and the
                                // previous period, disputes a year back)
  };
  struct Purged {
    int64_t outbox = 0;
    int64_t webhooks = 0;
    int64_t usage = 0;
    int64_t usage_events = 0;  // ids of backend usage events (dedupe), after 62 days
  };

  Retention(store::Store& store, const util::Clock& clock, Options options)
      : store_(store), clock_(clock), options_(options) {}

  // One pass, in one transaction. Logs what it removed.
  Purged run();

 private:
  store::Store& store_;
  const util::Clock& clock_;
  Options options_;
};

}  // namespace wharf::service
