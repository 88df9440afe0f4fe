// The inspector: one self-contained web page served at /_sandbox/inspector that shows what
// a provider looks at while developing — installations, resources, the env vars a project
// would receive, billing data and usage per day, invoices and their states, balances, and
// the exchange log with conformance findings. It reads the control API; no build step.
#pragma once
#include <string>

#include "sandbox/context.h"

namespace wharf::sandbox {

std::string inspector_html(const Context& ctx);

}  // namespace wharf::sandbox
