// Wiring of `wharf serve`: the one place that knows every layer.
#pragma once
#include "app/config.h"

namespace wharf::app {

// Runs until SIGTERM/SIGINT drains the server; returns the process exit code.
int serve(const Config& config);

}  // namespace wharf::app
