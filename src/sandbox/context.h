// What every part of wharf-sandbox shares: its configuration, state, exchange log, identity
// and HTTP client, plus the route table type its HTTP surface is built from.
#pragma once
#include <functional>
#include <string>

#include "model/api_error.h"
#include "model/json_check.h"
#include "net/http.h"
#include "net/http_client.h"
#include "net/router.h"
#include "sandbox/exchange_log.h"
#include "sandbox/identity.h"
#include "sandbox/state.h"
#include "util/clock.h"

namespace wharf::sandbox {

struct SandboxConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 4000;
  std::string data_dir = "./data/sandbox";
  std::string base_url;  // how partners reach the sandbox, e.g. http://127.0.0.1:4000
  std::string issuer;    // iss of every token (default: base_url)
  std::string client_id = "oac_sandbox0000000000000000";
  std::string client_secret;       // generated into the data dir when not given
  std::string partner_url;         // the partner's Base URL, e.g. http://127.0.0.1:3000
  std::string webhook_url;         // default <partner_url>/webhooks/vercel
  std::string redirect_login_url;  // default <partner_url>/sso/callback
  std::string import_url;          // default <partner_url>/dashboard/import (flows.md F14)
  std::string url_slug = "wharf-sandbox";
  int64_t sso_code_ttl_ms = 5 * 60 * 1000;
  int64_t finalization_window_ms = 24LL * 3600 * 1000;
  int64_t webhook_max_attempts = 8;
  int64_t webhook_first_retry_ms = 500;  // doubled after every failure
};

class Faults;

struct Context {
  const SandboxConfig& config;
  State& state;
  ExchangeLog& log;
  Identity& identity;
  net::HttpClient& http;
  const util::Clock& clock;
  // The same clock when it can be moved forward (POST /_sandbox/clock); null otherwise
  // (unit tests with a ManualClock).
  util::OffsetClock* offset_clock = nullptr;
  // Fault rules for the Vercel API (sandbox/faults.h); null: no fault injection.
  Faults* faults = nullptr;
};

using Handler = std::function<net::Response(net::Request&, const net::PathParams&)>;
using Routes = net::Router<Handler>;

// Vercel's error envelope (vercel-api.md §1.4): {"error":{"code","message"}}.
inline net::Response vercel_error(int status, const std::string& code, const std::string& message) {
  return net::Response::json(status,
                             model::Json{{"error", {{"code", code}, {"message", message}}}}.dump(
                                 -1, ' ', false, model::Json::error_handler_t::replace));
}
inline net::Response json_reply(int status, const model::Json& body) {
  return net::Response::json(status,
                             body.dump(-1, ' ', false, model::Json::error_handler_t::replace));
}
inline std::string path_param(const net::PathParams& params, const std::string& name) {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

}  // namespace wharf::sandbox
