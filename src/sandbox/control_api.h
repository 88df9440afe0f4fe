// The sandbox's control surface under /_sandbox/ (JSON): run a flow against the partner,
// read the state and the exchange log, move invoices through their states, mint tokens,
// and start Open in Provider in a browser. The CLI subcommands call these same endpoints.
#pragma once
#include "sandbox/context.h"
#include "sandbox/driver.h"

namespace wharf::sandbox {

void add_control_routes(Routes& routes, Context& ctx, Driver& driver);

}  // namespace wharf::sandbox
