// A route: how it authenticates (auth::EndpointPolicy) and the handler behind it. Handlers
// are thin: parse + validate → one service call → render.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "auth/authenticator.h"
#include "model/json_check.h"
#include "net/http.h"
#include "net/router.h"

namespace wharf::api {

struct Context {
  net::Request& req;
  const net::PathParams& params;
  std::optional<auth::Claims> claims;  // set on authenticated routes

  std::string_view param(std::string_view name) const {
    for (const auto& [k, v] : params)
      if (k == name) return v;
    return {};
  }
  // The body as a JSON object; 400 validation_error for non-JSON or a wrong Content-Type.
  model::Json json_body() const {
    return model::parse_json_object_body(req.header("content-type").value_or(""), req.body);
  }
};

using HandlerFn = std::function<net::Response(Context&)>;

struct Route {
  bool authenticated = true;  // Partner API routes; ops routes are open
  auth::EndpointPolicy policy;
  bool mutating = false;  // honours Idempotency-Key
  HandlerFn handler;
  // Answers from memory and store reads only (no commit, no product, Vercel or backend
  // call): runs on the I/O thread, where the hop to the handler pool and back would cost
  // more than the answer (docs/decisions.md, "Handler threads").
  bool quick = false;
};

using RouteTable = net::Router<Route>;

// Policies of partner-api.md §2.6 (ADMIN required for user-mode writes, USER may read).
inline auth::EndpointPolicy user_write() {
  return {true, false, true, true};
}
// The reads §2.6 documents as System-only (Get Installation, Get/List Resources, the three
// plan listings). A user token — ADMIN or USER — is accepted too, still bound to its
// installation, and logged: the table has drifted before (§10 q13) and reading grants no
// more than the user can already see in Vercel.
inline auth::EndpointPolicy system_read() {
  return {.allow_user = true,
          .allow_system = true,
          .admin_required = false,
          .bind_installation = true,
          .user_undocumented = true};
}
inline auth::EndpointPolicy user_or_system_write() {
  return {true, true, true, true};
}

}  // namespace wharf::api
