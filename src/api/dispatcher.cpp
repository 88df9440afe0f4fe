#include "api/dispatcher.h"

#include "api/respond.h"
#include "util/log.h"

namespace wharf::api {
namespace {

constexpr size_t kMaxIdempotencyKey = 255;

void add_log_field(net::Request& req, std::string name, std::string value) {
  req.log_fields.emplace_back(std::move(name), std::move(value));
}

}  // namespace

Dispatcher::Dispatcher(RouteTable routes, const auth::Authenticator& authenticator,
                       service::IdempotencyService& idempotency, Metrics& metrics,
                       bool quick_on_io_threads)
    : routes_(std::move(routes)),
      authenticator_(authenticator),
      idempotency_(idempotency),
      metrics_(metrics),
      quick_on_io_threads_(quick_on_io_threads) {}

net::Response Dispatcher::handle(net::Request& req) const {
  try {
    return run(req);
  } catch (const model::ApiError& e) {
    return error_response(e);
  } catch (const auth::AuthFailure& f) {
    metrics_.auth_failure(f.reason);
    add_log_field(req, "auth_failure", f.reason);
    return error_response(f.status, f.status == 401 ? "unauthorized" : "forbidden", f.message);
  } catch (const std::exception& e) {
    util::log_error("unhandled error").str("rid", req.request_id).str("error", e.what());
    return error_response(500, "internal_error", "internal server error");
  }
}

net::Response Dispatcher::run(net::Request& req) const {
  auto match = routes_.match(req.method, req.path);
  req.route = match.pattern;
  if (match.method_not_allowed) {
    auto res = error_response(405, "method_not_allowed",
                              "method " + req.method + " is not allowed on " + match.pattern);
    std::string allow;
    for (const auto& m : routes_.methods_for(req.path)) allow += (allow.empty() ? "" : ", ") + m;
    res.headers.emplace_back("Allow", allow);
    return res;
  }
  if (!match.route) throw model::ApiError::not_found("no route for " + req.method + " " + req.path);
  const Route& route = *match.route;
  net::Response defer;
  defer.defer_to_pool = true;
  if (req.on_io_thread && !(route.quick && quick_on_io_threads_)) return defer;

  Context ctx{req, match.params, std::nullopt};
  std::string installation_id(ctx.param("installationId"));
  if (!installation_id.empty()) add_log_field(req, "installation", installation_id);
  if (route.authenticated) {
    try {
      ctx.claims = authenticator_.authenticate(req.header("authorization").value_or(""),
                                               req.header("x-vercel-auth").value_or(""),
                                               route.policy, installation_id, !req.on_io_thread);
    } catch (const auth::KeyNotCached&) {
      return defer;  // a JWKS fetch may be needed: not on an I/O thread
    }
    add_log_field(req, "auth", ctx.claims->mode == auth::AuthMode::kUser ? "user" : "system");
    if (!auth::mode_documented(route.policy, ctx.claims->mode)) {
      // Accepted leniently (partner-api.md §2.6, §10 q13): every such request says so in its
      // access-log line; the first per route and mode also gets a warning of its own.
      const std::string_view mode = auth::auth_mode_name(ctx.claims->mode);
      add_log_field(req, "auth_undocumented_mode", std::string(mode));
      if (metrics_.auth_undocumented_mode(match.pattern, req.method, mode))
        util::log_warn("accepted an auth mode this endpoint does not document")
            .str("route", match.pattern)
            .str("method", req.method)
            .str("mode", mode)
            .str("role", auth::role_name(ctx.claims->role));
    }
  }

  auto key = req.header("idempotency-key");
  if (!route.mutating || !key || key->empty()) return route.handler(ctx);
  if (key->size() > kMaxIdempotencyKey)
    throw model::ApiError::validation("Idempotency-Key is too long",
                                      {{"Idempotency-Key", "must be at most 255 characters"}});

  store::IdempotencyKey ikey{installation_id, req.method, req.path, std::string(*key)};
  if (auto stored = idempotency_.begin(ikey, req.body, req.request_id)) {
    net::Response res;
    res.status = stored->status;
    res.content_type = stored->content_type;
    res.body = std::move(stored->body);
    metrics_.idempotent_replay();
    res.headers.emplace_back("Idempotency-Replayed", "true");
    add_log_field(req, "idempotent_replay", "true");
    return res;
  }
  net::Response res;
  try {
    res = route.handler(ctx);
  } catch (...) {
    idempotency_.abandon(ikey, req.request_id);  // a failed request leaves no record
    throw;
  }
  if (!res.stream) {
    idempotency_.finish(ikey, req.request_id, {res.status, res.content_type, res.body, false});
    return res;
  }
  // A streamed answer is recorded once complete, so a retry replays all of it.
  res.stream = [this, ikey, owner = req.request_id, status = res.status,
                content_type = res.content_type,
                produce = std::move(res.stream)](const net::ChunkWriter& write) {
    std::string all;
    produce([&](std::string_view chunk) {
      all.append(chunk);
      return write(chunk);
    });
    idempotency_.finish(ikey, owner, {status, content_type, all, false});
  };
  return res;
}

void Dispatcher::observe(const net::Request& req, const net::Response& res,
                         double elapsed_ms) const {
  metrics_.observe_request(req.route, req.method, res.status, elapsed_ms);
  auto line = util::log_info("request");
  line.str("rid", req.request_id)
      .str("method", req.method)
      .str("route", req.route.empty() ? "unmatched" : req.route)
      .num("status", res.status)
      .real("ms", elapsed_ms)
      .str("remote", req.remote);
  for (const auto& [k, v] : req.log_fields) line.str(k, v);
}

}  // namespace wharf::api
