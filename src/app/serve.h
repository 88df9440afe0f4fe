// Wiring of `wharf serve`: the one place that knows every layer.
#pragma once
#include "app/config.h"

namespace wharf::app {

// Runs until SIGTERM/SIGINT drains the server; returns the process exit code.
int serve(const Config& config);
// `wharf outbox [--state pending|delivered|dead]`: prints the outbox (newest first) as JSON,
// dead letters with the response Vercel gave — the admin view of calls to Vercel.
int print_outbox(const Config& config, const std::string& state);

}  // namespace wharf::app
