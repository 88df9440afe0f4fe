// The dashboard's billing page, fed by the billing service: our invoice records (Vercel's
// invoice id when known, our externalId otherwise) and the prepaid balances as reported to
// Vercel.
#pragma once
#include "api/dashboard/routes.h"
#include "service/billing.h"
#include "util/clock.h"

namespace wharf::api::dashboard {

class ServiceBillingView final : public BillingView {
 public:
  explicit ServiceBillingView(service::BillingService& billing) : billing_(&billing) {}

  std::vector<InvoiceView> invoices(const std::string& installation_id) const override {
    std::vector<InvoiceView> out;
    for (const auto& inv : billing_->invoices(installation_id)) {
      InvoiceView v;
      v.external_id = inv.id;
      v.id = inv.vercel_invoice_id.value_or(inv.id);
      v.state = inv.state;
      v.period_start = util::format_iso8601_ms(inv.period_start_ms);
      v.period_end = util::format_iso8601_ms(inv.period_end_ms);
      v.total = inv.total;
      v.invoice_date = util::format_iso8601_ms(inv.created_ms);
      out.push_back(std::move(v));
    }
    return out;
  }

  std::vector<BalanceView> balances(const std::string& installation_id) const override {
    std::vector<BalanceView> out;
    for (const auto& b : billing_->balances(installation_id)) {
      BalanceView v;
      if (b.contains("resourceId")) v.resource_id = b["resourceId"].get<std::string>();
      v.currency_value_in_cents = b.value("currencyValueInCents", int64_t{0});
      v.credit = b.value("credit", "");
      out.push_back(std::move(v));
    }
    return out;
  }

 private:
  service::BillingService* billing_;
};

}  // namespace wharf::api::dashboard
