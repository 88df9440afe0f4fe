// Registration of the Partner API routes. The files under api/partner/ mirror the URL tree:
//   installations.cpp  /v1/installations/{installationId}
//   plans.cpp          /v1/products/{productSlug}/plans, /v1/installations/{installationId}/plans
//   resources.cpp      /v1/installations/{installationId}/resources[/{resourceId}[/…]]
//   transfers.cpp      /v1/installations/{installationId}/resource-transfer-requests[/…]
//   billing.cpp        /v1/installations/{installationId}/billing/provision
#pragma once
#include "api/route.h"
#include "service/billing.h"
#include "service/installations.h"
#include "service/plans.h"
#include "service/resources.h"
#include "service/transfers.h"

namespace wharf::api::partner {

struct Services {
  service::InstallationService& installations;
  service::PlanService& plans;
  service::ResourceService& resources;
  service::TransferService& transfers;
  service::BillingService& billing;
  // Vercel's Get Invoice for (installation id, invoice id), with the installation's token.
  std::function<net::HttpResult(const std::string&, const std::string&)> get_invoice;
};

void add_installation_routes(RouteTable& routes, Services& services);
void add_plan_routes(RouteTable& routes, Services& services);
void add_resource_routes(RouteTable& routes, Services& services);
void add_transfer_routes(RouteTable& routes, Services& services);
void add_billing_routes(RouteTable& routes, Services& services);

inline void add_routes(RouteTable& routes, Services& services) {
  add_installation_routes(routes, services);
  add_plan_routes(routes, services);
  add_resource_routes(routes, services);
  add_transfer_routes(routes, services);
  add_billing_routes(routes, services);
}

}  // namespace wharf::api::partner
