// The dashboard's billing page, fed by the billing service: our invoice records (Vercel's
// invoice id when known, our externalId otherwise) and the prepaid balances as reported to
// Vercel.
#pragma once
#include "api/dashboard/routes.h"
#include "model/api_error.h"
#include "service/billing.h"

namespace wharf::api::dashboard {

class ServiceBillingView final : public BillingView {
 public:
  explicit ServiceBillingView(service::BillingService& billing) : billing_(&billing) {}

  std::vector<InvoiceView> invoices(const std::string& installation_id) const override {
    std::vector<InvoiceView> out;
    for (const auto& inv : summary(installation_id).value("invoices", model::Json::array())) {
      InvoiceView v;
      v.external_id = inv.value("id", "");
      v.id = inv.value("invoiceId", v.external_id);
      v.state = inv.value("state", "");
      v.period_start = inv["period"].value("start", "");
      v.period_end = inv["period"].value("end", "");
      v.total = inv.value("total", "0.00");
      v.invoice_date = inv.value("createdAt", v.period_end);
      out.push_back(std::move(v));
    }
    return out;
  }

  std::vector<BalanceView> balances(const std::string& installation_id) const override {
    std::vector<BalanceView> out;
    for (const auto& b : summary(installation_id).value("balances", model::Json::array())) {
      BalanceView v;
      if (b.contains("resourceId")) v.resource_id = b["resourceId"].get<std::string>();
      v.currency_value_in_cents = b.value("currencyValueInCents", int64_t{0});
      v.credit = b.value("credit", "");
      out.push_back(std::move(v));
    }
    return out;
  }

 private:
  model::Json summary(const std::string& installation_id) const {
    try {
      return billing_->summary(installation_id);
    } catch (const model::ApiError& e) {
      if (e.status == 404) return model::Json::object();
      throw;
    }
  }
  service::BillingService* billing_;
};

}  // namespace wharf::api::dashboard
