// The customer dashboard reached through Vercel SSO ("Open in Provider", flows.md §2):
//   sso.cpp      the Redirect Login URL (code exchange → session → deep link), sign-out and
//                the provider-initiated SSO link API
//   pages.cpp    server-rendered pages: home, resource, usage, billing, support, …
//   actions.cpp  POSTs (CSRF-checked): reveal/rotate secrets, suspend/resume, the SQL console
//   flags_pages.cpp  the flags product: flag list, flag editor, experimentation deep links
//   import.cpp   the Import Resource URL (flows.md F14): create or pick, import, back to Vercel
//   html.cpp     escaping, the page frame, usage charts (inline SVG), the session cookie
//   assets.cpp   the embedded stylesheet and script (no build step, no CDN)
// Every page is HTML with a strict Content-Security-Policy; failures become an HTML error
// page (the console's JSON endpoint answers the usual error envelope).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/route.h"
#include "service/flags.h"
#include "service/imports.h"
#include "service/installations.h"
#include "service/resources.h"
#include "service/sessions.h"
#include "service/sso.h"
#include "util/clock.h"

namespace wharf::api::dashboard {

// Read-only billing data for the billing page (ServiceBillingView in billing_view.h reads
// the billing service; EmptyBillingView is for tests of the pages alone).
struct InvoiceView {
  std::string id;
  std::string external_id;
  std::string state;  // pending, scheduled, invoiced, paid, notpaid, refund_requested, refunded
  std::string period_start;  // ISO-8601
  std::string period_end;
  std::string total;  // decimal string, e.g. "12.50"
  std::string invoice_date;
};
struct BalanceView {
  std::optional<std::string> resource_id;  // absent: installation-level
  int64_t currency_value_in_cents = 0;
  std::string credit;  // label, e.g. "2,000 queries"
};
class BillingView {
 public:
  virtual ~BillingView() = default;
  virtual std::vector<InvoiceView> invoices(const std::string& installation_id) const = 0;
  virtual std::vector<BalanceView> balances(const std::string& installation_id) const = 0;
};
class EmptyBillingView final : public BillingView {
 public:
  std::vector<InvoiceView> invoices(const std::string&) const override { return {}; }
  std::vector<BalanceView> balances(const std::string&) const override { return {}; }
};

struct Options {
  std::string public_url;                       // scheme://host[:port]: same-origin checks
  std::string callback_path = "/sso/callback";  // the Redirect Login URL's path
  std::string sso_base = "https://vercel.com/sso/integrations";
  std::string url_slug;  // provider-initiated SSO links (empty: not offered)
  std::string support_email;
  std::string support_url;
  bool secure_cookie = true;  // false only when public_url is on loopback over http
};

struct Deps {
  Options options;
  service::SessionService& sessions;
  service::SsoService& sso;
  service::InstallationService& installations;
  service::ResourceService& resources;
  const BillingView& billing;
  const util::Clock& clock;                    // the billing period shown
  service::RateLimits* rate_limits = nullptr;  // abuse limits on the SSO callback
  service::FlagService* flags = nullptr;       // the flags product (null: none sold)
  // The Import Resource URL (null: not served).
  service::ImportService* imports = nullptr;
  const model::Catalog* catalog = nullptr;
};

void add_sso_routes(RouteTable& routes, Deps& deps);
void add_page_routes(RouteTable& routes, Deps& deps);
void add_action_routes(RouteTable& routes, Deps& deps);
void add_flag_routes(RouteTable& routes, Deps& deps);
void add_asset_routes(RouteTable& routes);
void add_import_routes(RouteTable& routes, Deps& deps);

inline void add_routes(RouteTable& routes, Deps& deps) {
  add_sso_routes(routes, deps);
  add_page_routes(routes, deps);
  add_action_routes(routes, deps);
  add_flag_routes(routes, deps);
  add_import_routes(routes, deps);
  add_asset_routes(routes);
}

// True for http://127.0.0.1…, http://localhost…, http://[::1]… (cookies without Secure).
bool loopback_http(const std::string& public_url);

}  // namespace wharf::api::dashboard
