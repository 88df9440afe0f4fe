// Billing (flows.md F10–F13, F19; vercel-api.md §7): what each installation owes, told to
// Vercel through the outbox so nothing is lost or sent twice.
//
//   * Billing periods are calendar months (UTC), one cycle for every resource of an
//     installation. Prices come from the catalog's `pricing`; amounts are exact
//     (util::Money) and each line is rounded to cents once.
//   * A pass (run(), every WHARF_BILLING_TICK and at least every WHARF_BILLING_INTERVAL per
//     installation) enqueues interim billing data, yesterday's final data (catch-up after
//     downtime), invoices for ended periods, prepaid debits and balances, overdue
//     suspensions and the uninstall finalization — each installation in one transaction
//     together with the state that records it was done.
//   * Invoices are one per resource per plan per period, with an externalId derived from
//     those (a retry can never bill twice); totals under $0.50 are carried to the next
//     invoice of that resource and plan.
//   * Prepayment plans are never invoiced: usage is debited from prepaid balances credited
//     by Provision Purchase; at zero the resource only serves reads until credited.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "model/catalog.h"
#include "model/json_check.h"
#include "net/http_client.h"
#include "product/registry.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/money.h"

namespace wharf::service {

using util::day_key;
using util::day_start_ms;
using util::month_start_ms;
using util::next_month_start_ms;
// Whether an invoice still awaits settlement (anything but paid, refunded, carried, waived).
bool invoice_open(const std::string& state);
// Invoice states in the order they can follow each other; -1 for unknown ones.
int invoice_state_rank(const std::string& state);

// Plan changes scheduled for a plan's `effectiveDate` (flows.md F13 step 5;
// service/billing_schedule.cpp). When a change to `plan` requested at `now_ms` takes effect:
// the plan's effectiveDate when it lies ahead; nullopt = at once.
std::optional<int64_t> scheduled_start(const model::Plan& plan, int64_t now_ms);
// The notice a row shows while a change to `plan` waits for `effective_ms`.
model::Json scheduled_change_notice(const model::Plan& plan, int64_t effective_ms);
// Records the pending change of a resource (resource_id) or the installation (""), replacing
// any earlier one; the row keeps its plan until the billing pass makes the change. The row's
// notification (`notification_json`) shows it, unless it holds another notice.
void schedule_plan_change(store::WriteTx& tx, const std::string& installation_id,
                          const std::string& resource_id, const model::Plan& plan,
                          int64_t effective_ms, std::optional<std::string>& notification_json,
                          int64_t now_ms);
// Calls off a pending change (a later request took effect at once, or asked for the current
// plan) and clears its notice from `notification_json`. Returns whether there was one.
bool cancel_plan_change(store::WriteTx& tx, const std::string& installation_id,
                        const std::string& resource_id,
                        std::optional<std::string>& notification_json);

class BillingService {
 public:
  struct Options {
    int64_t interval_ms = 3600 * 1000;          // interim billing data per installation
    int64_t balance_interval_ms = 3600 * 1000;  // prepaid balances (also after every change)
    int64_t overdue_grace_ms = 0;               // overdue invoice → suspension after this long
    // Uninstall cleanup (WHARF_UNINSTALL_GRACE_DAYS): an uninstall not finalized this long
    // after it (or at once when Vercel reports the installation gone) has its leftover
    // resources suspended; they are deleted this long after the suspension.
    int64_t uninstall_grace_ms = 30LL * 24 * 3600 * 1000;
    // Submit invoices in Vercel's test mode with this outcome ("paid", "notpaid", "overdue");
    // empty = live invoices.
    std::string invoice_test_result;
    int64_t tick_ms = 1000;  // how often the worker looks for due work (real time)
    // Base URL of the dashboard (WHARF_PUBLIC_URL + /dashboard): billing notifications link
    // to it as sso: URLs, so Vercel signs the user in on the way. Empty: no links.
    std::string dashboard_url;
    // The product kinds whose declared metrics (units, level or interval) the usage report
    // and the prices follow.
    const product::Registry* kinds = &product::builtin_kinds();
    // What a catalog product's instance declares (ResourceService::descriptor_of): a kind
    // configured per product (http) declares more than its kind. Unset: the kind's.
    std::function<const product::Descriptor*(const std::string& product_id)> descriptor_of;
    // An installation-level notice was set (payment failed, overdue): tell the installation's
    // contact too (NoticeService), in the same transaction. Unset: Vercel only.
    std::function<void(store::WriteTx&, const store::InstallationRow&, const model::Json& notice,
                       const std::optional<std::string>& status, int64_t now_ms)>
        notice;
    // Whether this replica leads the periodic passes (Store::lead); unset: always. The worker
    // of a replica that does not lead only waits (webhooks still record, the leader bills).
    std::function<bool()> leads;
  };

  BillingService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                 const util::Clock& clock, Options options);
  ~BillingService();

  struct PassStats {
    int installations = 0;
    int billing_data = 0;
    int invoices = 0;
    int balances = 0;
    int suspended = 0;
    int finalizing = 0;
    int leftovers_suspended = 0;  // resources suspended by the uninstall cleanup
    int leftovers_deleting = 0;   // installations whose leftovers are due for deletion
    int plan_changes = 0;         // scheduled plan changes made
  };
  // One pass over every installation billing still concerns.
  PassStats run(int64_t now_ms);
  void start();  // background worker: run() every tick
  void stop();
  void wake();
  // Called after each pass that enqueued something (serve wires it to Outbox::wake).
  void on_enqueued(std::function<void()> fn) { enqueued_ = std::move(fn); }
  // Called after a pass committed, for each uninstalled installation whose leftover
  // resources are due for deletion and still exist (serve wires it to
  // ResourceService::remove_leftovers). Called again by every pass until none is left, so a
  // pass that dies before or during the deletion is redone by the next.
  void on_leftovers_due(std::function<void(const std::string& installation_id)> fn) {
    leftovers_due_ = std::move(fn);
  }

  // Whether uninstalling now leaves something to bill: charges of at least $0.50 not yet
  // invoiced (this period, earlier periods, carried amounts) or invoices not settled.
  bool owes(store::ReadTx& tx, const store::InstallationRow& installation, int64_t now_ms) const;

  // Interim statement of an installation for the period containing `at_ms`: the `billing`
  // and `usage` of Submit Billing Data (for the dashboard and `wharf billing`).
  model::Json statement(const std::string& installation_id, int64_t at_ms);
  // Invoices and balances of an installation as stored (admin listing).
  model::Json summary(const std::string& installation_id);
  // The stored invoices, in period order, and the balances as Balance[] (the dashboard).
  std::vector<store::InvoiceRow> invoices(const std::string& installation_id);
  model::Json balances(const std::string& installation_id);

  // Outbox hooks, inside the delivery's transaction.
  void delivered(store::WriteTx& tx, const store::OutboxRow& item, const std::string& response);
  void gone(store::WriteTx& tx, const store::OutboxRow& item, int64_t now_ms);

  // marketplace.invoice.* webhooks (flows.md §3.3, F19). Returns false when the invoice is
  // not one of ours (e.g. a credit purchase), which is not an error.
  bool invoice_event(const std::string& type, const std::string& installation_id,
                     const model::Json& payload);

  // Provision Purchase (partner-api.md §5.15). `fetch_invoice` performs Vercel's Get Invoice
  // for this installation. Credits each item once per invoice id; answers
  // {timestamp, balances}.
  using FetchInvoice = std::function<net::HttpResult(const std::string& invoice_id)>;
  model::Json purchase(const std::string& installation_id, const std::string& invoice_id,
                       const FetchInvoice& fetch_invoice);

  // Invoice Actions refund (vercel-api.md §7.4), from the admin command: validated against
  // our record, enqueued, and the invoice marked refund_requested.
  model::Json request_refund(const std::string& installation_id, const std::string& invoice,
                             const std::string& total, const std::string& reason);

  // Balances as Vercel's Balance[] (partner-api.md §4.9).
  model::Json balances_json(store::ReadTx& tx, const std::string& installation_id) const;

  // A resource (resource_id) or the installation ("") took a plan: a plan's `initialCharge`
  // is invoiced at once, once per resource and plan (flows.md F3 step 6, F10 step 5).
  void plan_taken(store::WriteTx& tx, const std::string& installation_id,
                  const std::string& resource_id, const std::string& plan_id, int64_t now);

 private:
  struct Period {
    int64_t start = 0;
    int64_t end = 0;
  };
  // What an installation's plans and usage cost over (part of) a period.
  // Lines and the usage report are kept as values and rendered straight to JSON text (the
  // bodies a pass enqueues are most of its work; a DOM per body only to dump it cost more
  // than the pricing).
  struct Computed {
    // One BillingItem.
    struct Line {
      std::string plan_id;
      std::string resource_id;  // "" = installation-level
      std::string name, details, price;
      std::string quantity;  // JSON number text
      std::string units;
      util::Money total;
      std::string total_text;
      std::optional<std::pair<int64_t, int64_t>> span;  // start, end: not the whole period
    };
    // One Discount (vercel-api.md §2.7): the plan's catalog `discount` on the group.
    struct Discount {
      std::string plan_id;
      std::string resource_id;  // "" = installation-wide
      std::string name, details;
      util::Money amount;  // whole cents, never more than the group's total
      std::optional<std::pair<int64_t, int64_t>> span;
    };
    struct Group {
      std::string resource_id;  // "" = the installation's plan
      std::string plan_id;
      const model::Plan* plan = nullptr;
      std::vector<std::pair<int64_t, int64_t>> spans;  // clipped to [period start, cutoff)
      std::vector<Line> items;                         // BillingItem[]
      util::Money total;                               // of the items
      std::optional<Discount> discount;
      util::Money net() const { return discount ? total - discount->amount : total; }
    };
    std::vector<Group> groups;
    std::string usage = "[]";  // Usage[] as JSON text
  };
  // What compute() reads of one installation (its resources' kinds, a period's plan spans
  // and usage ledger), read once and shared by every computation of the installation in a
  // pass: final data, invoices, interim data and prepaid debits price the same days.
  // Billing writes none of it, so it holds for the whole transaction.
  struct Ledger {
    // A resource's ledger for the period, by metric index (metrics sorted by name).
    struct Usage {
      std::vector<std::string> metrics;
      std::vector<char> level;  // by metric: a level (storage), else counted per day
      // By metric: a level's last value before the period (unread when the first day has one).
      std::vector<std::optional<int64_t>> before;
      std::vector<std::pair<size_t, int64_t>> values;  // (metric, value), in day order
      std::vector<size_t> day_end;                     // by day: end of its values
    };
    struct Month {
      std::vector<store::PlanPeriodRow> spans;  // overlapping the period, by start
      std::vector<std::string> days;            // key of each day of the period
      std::map<std::string, Usage> usage;       // by resource, read when first priced
      // The ledger entries of every resource with a span, read together when the first
      // resource is priced (one statement instead of one per resource), taken by `usage`.
      std::optional<std::map<std::string, std::vector<store::UsageEntry>>> ledger;
      std::vector<std::string> resources;  // with a span in the period, sorted: `ledger`'s
      // By level metric: each resource's last value before the period, read for all the
      // resources together the first time one has no value on the first day.
      std::map<std::string, std::map<std::string, int64_t>> before;
    };
    // Every plan span of the installation (when a discount counts its billing periods from
    // when the plan was taken), read when first needed.
    std::optional<std::vector<store::PlanPeriodRow>> all_spans;
    bool kinds_read = false;
    // Called once, after the first month's ledger is read (the pass sends the next
    // installation's read ahead then: the server reads it while this one is priced).
    std::function<void()> after_first_read;
    std::map<std::string, const product::Descriptor*> kind_of;  // by resource
    std::map<std::pair<int64_t, int64_t>, Month> months;        // by period
    // Groups priced with their lines, by (period start, end, cutoff): at a month's end the
    // final data, the invoices and the prepaid debits all price the month that ended.
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<Computed::Group>> priced;
  };
  // How much of a computation the caller uses: group totals only (prepaid debits, what is
  // owed), also the BillingItem[] lines (invoices), also the usage report (billing data).
  enum class Detail { kTotals, kItems, kAll };
  Computed compute(store::ReadTx& tx, const store::InstallationRow& inst, Period period,
                   int64_t cutoff_ms, int64_t report_day_ms) const;
  Computed compute(store::ReadTx& tx, Ledger& ledger, const store::InstallationRow& inst,
                   Period period, int64_t cutoff_ms, int64_t report_day_ms, Detail detail) const;
  Ledger::Month& month_of(store::ReadTx& tx, Ledger& ledger, const std::string& installation_id,
                          Period period) const;
  const Ledger::Usage& usage_of(store::ReadTx& tx, Ledger& ledger, Ledger::Month& month,
                                const std::string& resource_id,
                                const product::Descriptor* kind) const;
  // Submit Billing Data's body as JSON text.
  std::string billing_data_body(const Computed& c, Period period, int64_t now_ms,
                                int64_t report_day_ms) const;
  // `leftovers_due`: gets the installation's id when its leftovers are due for deletion.
  bool bill_installation(store::WriteTx& tx, const store::InstallationRow& inst, int64_t now,
                         PassStats& stats, std::vector<std::string>& leftovers_due, Ledger& ledger);
  // The resources whose ledger a month with these spans reads (sorted, once each).
  static std::vector<std::string> ledger_resources(const std::vector<store::PlanPeriodRow>& spans);
  // Tells the store which ledger read bill_installation will most likely make first for an
  // installation (ReadTx::expect_usage_between_many), from its billing state.
  void expect_first_ledger(store::ReadTx& tx, const std::string& installation_id,
                           int64_t now) const;
  void enqueue_billing_data(store::WriteTx& tx, Ledger& ledger, const store::InstallationRow& inst,
                            int64_t now, int64_t report_day_ms, int64_t cutoff_ms);
  int invoice_period(store::WriteTx& tx, Ledger& ledger, const store::InstallationRow& inst,
                     Period period, int64_t cutoff_ms, bool final, int64_t now);
  // Debits prepaid usage; `previous_settled`: the previous period needs no second look.
  bool prepaid(store::WriteTx& tx, Ledger& ledger, const store::InstallationRow& inst, int64_t now,
               bool previous_settled);
  int suspend_overdue(store::WriteTx& tx, const std::string& installation_id, int64_t now);
  // Makes the installation's scheduled plan changes that are due (billing_schedule.cpp): each
  // plan span splits at the change's effective time. Returns how many were made.
  int apply_scheduled_plans(store::WriteTx& tx, const std::string& installation_id, int64_t now);
  // Uninstall cleanup of an uninstalled, unfinalized installation: suspends its leftover
  // resources once finalization stalled (uninstall + grace) or Vercel reported it gone,
  // decides their deletion a grace period later, and drops the access token once nothing
  // more will be sent. Edits `st` (the caller stores it); true when it changed. `due`:
  // whether leftovers are due for deletion and still exist.
  bool cleanup_leftovers(store::WriteTx& tx, const store::InstallationRow& inst,
                         store::BillingStateRow& st, int64_t now, int& suspended, bool& due);
  // Tells a remote product (capabilities.async_provisioning) that the resource is now
  // "suspended" or "resumed", through the outbox.
  // What the resource's product declares (Options::descriptor_of, else its kind's); null for
  // a product gone from the catalog.
  const product::Descriptor* descriptor_of(const std::string& product_id) const;
  void tell_product(store::WriteTx& tx, const store::ResourceRow& row, const std::string& status,
                    int64_t now) const;
  void hold(store::WriteTx& tx, const std::string& installation_id, const std::string& resource_id,
            const std::string& hold, const model::Json& notification, int64_t now);
  void release(store::WriteTx& tx, const std::string& installation_id,
               const std::string& resource_id, const std::string& hold, int64_t now);
  void enqueue_balances(store::WriteTx& tx, const std::string& installation_id, int64_t now);
  // A notification, with an sso: link to a dashboard page when the dashboard URL is known.
  // `discounts`: the Discount[] as JSON text, "" for none.
  std::string invoice_body(const store::InvoiceRow& row, int64_t invoice_date,
                           const std::string& items, const std::string& memo,
                           const std::string& discounts = "") const;
  // Installation-wide state shown in Vercel (vercel-api.md §4.1) for an installation-level
  // invoice (one without a resource): the notification (null clears it) is stored, so Get
  // Installation returns it, and Update Installation sends it with `status` when given.
  void installation_state(store::WriteTx& tx, const std::string& installation_id,
                          const std::optional<std::string>& status, const model::Json& notification,
                          int64_t now);
  model::Json notification(const std::string& level, const std::string& title,
                           const std::string& message, const std::string& page) const;

  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  const util::Clock& clock_;
  Options options_;
  std::function<void()> enqueued_;
  std::function<void(const std::string&)> leftovers_due_;

  std::mutex mu_;
  std::mutex run_mu_;  // one pass at a time (worker, /ops/clock, shutdown)
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::thread worker_;
};

}  // namespace wharf::service
