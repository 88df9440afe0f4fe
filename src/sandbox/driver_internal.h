// Private to the Driver's implementation (src/sandbox/driver*.cpp): the state every flow works
// with (DriverImpl), one outbound Partner API call (CallSpec / CallResult, made and recorded by
// the Recorder), a flow's running result (Outcome), the webhook deliverer and the helpers the
// flow families share. The flows themselves are listed once, in driver_flows.h.
//
//   driver.cpp               Driver's public methods, the flow table, DriverImpl's helpers
//   driver_recorder.cpp      Recorder: one Partner API call, its exchange and findings
//   driver_webhooks.cpp      WebhookDeliverer: signing, retries, the background worker and
//                            the finalization sweep
//   driver_<family>.cpp      the flows of one family (installations, resources, billing,
//                            transfers, sso, webhook)
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sandbox/conformance.h"
#include "sandbox/context.h"
#include "sandbox/driver.h"
#include "sandbox/driver_flows.h"
#include "sandbox/params.h"

namespace wharf::sandbox::detail {

using model::ApiError;
using model::Json;
using SteadyClock = std::chrono::steady_clock;

// ---- helpers ------------------------------------------------------------------------------

std::string random_alnum(size_t n);
std::string random_hex(size_t bytes);
// Vercel's Idempotency-Key values look like UUIDs; partners may store them as such.
std::string new_uuid();
std::string pct_encode(std::string_view s);
bool is_hex(const std::string& s);
bool is_alnum(std::string_view s);
// Never throws on invalid UTF-8 (replaced).
std::string dump(const Json& j);
// Bytes from the wire may be invalid UTF-8; a Json string holding them would make every later
// dump() throw, so they are made valid (invalid sequences replaced) before being kept.
Json safe_string(const std::string& raw);
// A partner may answer with megabytes; the exchange log keeps thousands of entries, so each
// stored body is bounded.
std::string clip(const std::string& body);
// A member of an object, or null when `obj` is no object or lacks it.
const Json* member(const Json& obj, std::string_view key);
// A string member, or "" when absent or not a string.
std::string str_member(const Json& obj, std::string_view key);
ApiError no_installation(const std::string& icfg);
// The partner's Base URL without trailing slashes; 409 when none is configured.
std::string partner_base(const SandboxConfig& config);

// ---- one Partner API call -----------------------------------------------------------------

struct CallSpec {
  std::string flow;
  std::string endpoint;  // conformance endpoint id
  std::string method;
  std::string path;  // below the partner's Base URL, starting with '/'
  std::string auth;  // "user" | "system"
  std::string token;
  std::optional<Json> body;
  std::string idempotency_key;  // empty: not sent (GET)
  std::string accept = "application/json";
  ConformanceOptions conformance;
};

struct CallResult {
  int status = 0;
  std::string error;  // transport error
  std::string content_type;
  Json response;  // parsed body: JSON, array of JSONL records, raw text, or null when empty
  int64_t exchange_id = 0;
  std::vector<std::string> findings;

  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

// Makes the sandbox's outbound HTTP requests and records each as an Exchange in the log, with
// the conformance findings on the partner's answer.
class Recorder {
 public:
  explicit Recorder(Context& ctx) : ctx_(ctx) {}

  // One Partner API request: sent, checked against the endpoint's contract, recorded.
  CallResult call(const CallSpec& s);

  // Records one finished exchange (request as sent, `res` as received) in the log; returns
  // its id. Header values are redacted, the response body clipped.
  int64_t record(const std::string& direction, const std::string& flow, const std::string& method,
                 const std::string& url,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 const std::string& request_body, const net::HttpResult& res, double duration_ms,
                 const std::vector<std::string>& findings);

  // A response body as the result shows it: JSON, an array of JSONL records, text (also for
  // JSON nested too deep to copy safely), or null when blank.
  static Json parse_body(const std::string& content_type, const std::string& body);

 private:
  Context& ctx_;
};

// ---- the running result of one flow -------------------------------------------------------

// Every exchange and finding of a flow, and the primary call's answer.
struct Outcome {
  Json out = Json::object();
  std::vector<int64_t> exchanges;
  std::vector<std::string> findings;

  // The flow's main call: its status and body become the result's.
  void primary(const CallResult& r);
  // A follow-up call Vercel makes on its own (e.g. Get Resource after Provision): its
  // findings are prefixed with the endpoint so they are told apart.
  void follow_up(const std::string& key, const std::string& endpoint, const CallResult& r);
  void add(const CallResult& r, const std::string& prefix);
  Json finish();
};

// ---- webhooks -----------------------------------------------------------------------------

struct Delivery {
  std::string id;
  std::string type;
  std::string flow;
  std::string body;
  bool bad_signature = false;
  int64_t attempts = 0;
  // Due when either passes: real time (so retries proceed while a test clock stands still)
  // or the sandbox clock (so moving it forward makes pending retries due at once).
  SteadyClock::time_point due;
  int64_t due_ms = 0;
};

// Signed webhook deliveries (x-vercel-signature: HMAC-SHA1 of the raw body with the client
// secret) to the partner's webhook URL, recorded in state.webhooks, retried with exponential
// backoff; and the background worker that runs the retries and the finalization sweep.
class WebhookDeliverer {
 public:
  WebhookDeliverer(Context& ctx, Recorder& recorder) : ctx_(ctx), recorder_(recorder) {}
  ~WebhookDeliverer() { stop(); }

  // Queued for the worker; returns the delivery id.
  std::string send(const std::string& flow, const std::string& type, const Json& payload);
  // The flow version: the first attempt runs now so the caller sees the partner's answer;
  // retries, if needed, go to the background worker. Returns the delivery's summary.
  Json deliver_now(const std::string& flow, const std::string& type, const Json& payload,
                   bool bad_signature);

  // Moves every pending_deletion installation whose finalization window has passed to
  // finalized; returns how many.
  int finalize_expired();
  void clock_moved();
  void start();
  void stop();

 private:
  struct Attempt {
    int status = 0;
    std::string error;
    Json response;
    int64_t exchange_id = 0;
    std::vector<std::string> findings;
    bool delivered = false;  // the partner acknowledged with 2xx
  };

  std::string webhook_url() const;
  Delivery new_delivery(const std::string& flow, const std::string& type, const Json& payload,
                        bool bad_signature);
  Attempt attempt(Delivery& d);
  bool settle(Delivery& d, const Attempt& at);
  void enqueue(Delivery d);
  void requeue_persisted();
  void run_worker();

  Context& ctx_;
  Recorder& recorder_;

  // Webhook retries and the finalization window run on one background thread.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Delivery> queue_;
  bool stopping_ = false;
  bool clock_moved_ = false;  // look at due times and the finalization window again now
  std::thread worker_;
};

// ---- what flows work with -----------------------------------------------------------------

// Copies the Resource fields Vercel keeps from a Get/Update Resource answer.
void apply_resource(Json& rec, const Json& body, const std::string& now);
// The well-formed {name, value} secrets of a list.
Json valid_secrets(const Json& list);
// InstallationState: an absent billingPlan means resource-level billing; notification null
// clears, absent leaves the current one (partner-api.md §4.13). Ignores a non-object body.
void apply_installation_state(Json& inst, const Json& body);
ConformanceOptions conformance_for(const Json& inst);
// The `idempotencyKey` parameter, else a new UUID.
std::string idempotency_key(const Json& params);

struct DriverImpl {
  explicit DriverImpl(Context& c) : ctx(c), recorder(c), webhooks(c, recorder) {}

  Context& ctx;
  Recorder recorder;
  WebhookDeliverer webhooks;

  CallResult call(const CallSpec& s) { return recorder.call(s); }
  std::string now_iso() const;
  std::string redirect_login_url() const;

  // Copies from the state (null when absent).
  Json installation(const std::string& icfg) const;
  Json resource(const std::string& icfg, const std::string& rid) const;
  // The installation a flow acts on. `active` flows are the ones a user starts in Vercel's
  // UI, which Vercel offers only for a live installation; background reads are also made
  // while deletion is pending. A finalized installation is gone for Vercel.
  Json require_installation(const std::string& icfg, bool active) const;

  // The user a user-auth call is made as: `userHex` if given, else a member with `role`, else
  // the installer. Asking for role USER when the team has no such member adds one (a
  // Billing/Viewer member), so read-only behaviour can be tested without setup.
  UserIdentity pick_user(const std::string& icfg, const Json& inst,
                         const std::optional<std::string>& user_hex,
                         const std::optional<std::string>& role);
  std::string user_token(const std::string& icfg, const UserIdentity& u) const;
  std::string system_token(const std::string& icfg, const Json& inst) const;
  // Auth for endpoints that take either mode (`auth` param, default `def`): {mode, token}.
  // Calls a.done().
  std::pair<std::string, std::string> auth_for(Params& a, const std::string& icfg, const Json& inst,
                                               const std::string& def);

  // A GET Vercel makes with a system token (reads and refreshes).
  CallSpec system_get(const std::string& flow, const std::string& endpoint, std::string path,
                      const std::string& icfg, const Json& inst) const;
  // Calls shared by several flows (and Vercel's own refreshes after Create Event).
  CallResult get_resource_call(const std::string& flow, const std::string& icfg,
                               const std::string& rid, const Json& inst);
  CallResult get_installation_call(const std::string& flow, const std::string& icfg,
                                   const Json& inst);
  Json refresh_resource_flow(const std::string& flow, const std::string& icfg,
                             const std::string& rid);
  Json refresh_installation_flow(const std::string& flow, const std::string& icfg);
  // Update Resource (PATCH) as a user; stores the answer (update-resource and change-plan).
  Json patch_resource(const std::string& flow, const std::string& icfg, const std::string& rid,
                      const Json& body, const std::optional<std::string>& role,
                      const std::optional<std::string>& user_hex, const Json& params);
  // The integration-configuration.removed payload (uninstall and webhook flows).
  Json removed_payload(const std::string& icfg, const Json& inst) const;
};

// ---- the flows (one row each in driver_flows.h) -------------------------------------------

using FlowHandler = Json (*)(DriverImpl&, const Json& params);

struct FlowInfo {
  const char* name;
  FlowHandler handler;
  const char* description;
};

// The rows of driver_flows.h, in order.
const std::vector<FlowInfo>& flow_table();

namespace flows {
#define WHARF_SANDBOX_DECLARE_FLOW(name, handler, description) \
  Json handler(DriverImpl& d, const Json& params);
WHARF_SANDBOX_FLOWS(WHARF_SANDBOX_DECLARE_FLOW)
#undef WHARF_SANDBOX_DECLARE_FLOW
}  // namespace flows

}  // namespace wharf::sandbox::detail
