// The sandbox acting as Vercel towards a partner: performs each flow of flows.md against the
// configured partner Base URL, with tokens in Vercel's shapes, records every exchange in the
// ExchangeLog with conformance findings (sandbox/conformance.h), and updates the sandbox
// state the way Vercel would from the partner's answers.
//
// Every flow takes a JSON object of parameters and returns a JSON result:
//   {"ok": bool, "status": <partner HTTP status>, "response": <partner body or null>,
//    "exchanges": [ids…], "findings": [..], …flow-specific fields}
// Bad parameters throw model::ApiError (400 with `fields`), which the control API renders.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "sandbox/context.h"

namespace wharf::sandbox {

namespace detail {
struct DriverImpl;  // sandbox/driver_internal.h
}

class Driver {
 public:
  explicit Driver(Context& ctx);
  ~Driver();

  // Runs the flow `flow` (the control API exposes each at POST /_sandbox/flows/<name> and the
  // CLI as `wharf-sandbox <name>`); the flows and their descriptions are the rows of
  // sandbox/driver_flows.h, which flow_names() lists in order. Unknown name → ApiError 404.
  model::Json run(const std::string& flow, const model::Json& params);
  static std::vector<std::string> flow_names();

  // What Vercel does after the partner reports a change (Create Event): re-read the
  // resource / installation through the Partner API and update the sandbox's copy.
  // Safe to call from a Vercel API handler (runs the call synchronously; the caller
  // must not hold the State lock).
  model::Json refresh_resource(const std::string& installation_id, const std::string& resource_id);
  model::Json refresh_installation(const std::string& installation_id);

  // Webhooks: queues a signed delivery (x-vercel-signature, HMAC-SHA1 of the raw body with
  // the client secret) to config.webhook_url, retried with backoff on non-2xx/timeouts.
  // Returns the delivery id.
  std::string send_webhook(const std::string& type, const model::Json& payload);
  void start();  // background workers (webhook retries, finalization window)
  void stop();

  // Moves every pending_deletion installation whose finalization window
  // (config.finalization_window_ms, measured on ctx.clock from deletedAt) has passed to
  // finalized; returns how many. The background worker calls it every second; tests and the
  // control API may call it directly after moving a manual clock.
  int finalize_expired();
  // Tells the background worker the sandbox clock was moved forward (POST /_sandbox/clock):
  // webhook retries due by the new time go out and the finalization window is checked now,
  // not at the worker's next real-time wake-up.
  void clock_moved();

 private:
  std::unique_ptr<detail::DriverImpl> impl_;
};

}  // namespace wharf::sandbox
