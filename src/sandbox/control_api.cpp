#include "sandbox/control_api.h"

#include <algorithm>
#include <limits>

#include "sandbox/deployments.h"
#include "sandbox/faults.h"
#include "sandbox/inspector.h"
#include "sandbox/vercel_api.h"
#include "util/crypto.h"

namespace wharf::sandbox {
namespace {

using model::ApiError;
using model::Json;

// Control API errors use the same envelope as everything else, with `fields` when a
// parameter is at fault.
net::Response error_of(const ApiError& e) {
  Json err = {{"code", e.code}, {"message", e.message}};
  if (!e.fields.empty()) {
    Json fields = Json::array();
    for (const auto& f : e.fields) fields.push_back({{"key", f.key}, {"message", f.message}});
    err["fields"] = fields;
  }
  return json_reply(e.status, Json{{"error", err}});
}

Json body_object(const net::Request& req) {
  return model::parse_optional_json_object_body(req.header("content-type").value_or(""), req.body)
      .value_or(Json::object());
}

template <typename Fn>
net::Response guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const ApiError& e) {
    return error_of(e);
  }
}

Json clock_view(const Context& ctx) {
  int64_t now = ctx.clock.now_ms();
  return Json{{"nowMs", now},
              {"now", util::format_iso8601_ms(now)},
              {"offsetMs", ctx.offset_clock ? ctx.offset_clock->offset_ms() : 0}};
}

// POST /_sandbox/clock: exactly one of advanceMs (>= 0), setMs (epoch ms) or set (ISO-8601);
// the clock only moves forward.
Json move_clock(Context& ctx, Driver& driver, const Json& body) {
  if (!ctx.offset_clock) throw ApiError(409, "clock_fixed", "this sandbox's clock cannot be moved");
  model::Checker check;
  int given = 0;
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() == "advanceMs" || it.key() == "setMs" || it.key() == "set")
      ++given;
    else
      check.add(it.key(), "is not allowed (send one of advanceMs, setMs, set)");
  }
  if (given != 1)
    check.add(given == 0 ? "advanceMs" : "body",
              given == 0 ? "is required: send exactly one of advanceMs, setMs, set"
                         : "must hold exactly one of advanceMs, setMs, set");
  check.throw_if_failed("clock change");

  auto integer = [&](const char* key) -> int64_t {
    const Json& v = body[key];
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() &&
         v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())))
      throw ApiError::validation(std::string("invalid clock change: ") + key +
                                     " must be an integer number of milliseconds",
                                 {{key, "must be an integer number of milliseconds"}});
    return v.get<int64_t>();
  };
  auto backwards = [&](const char* key, int64_t target, int64_t now) {
    std::string msg = "is before the sandbox's current time " + util::format_iso8601_ms(now) +
                      " (" + std::to_string(now) + " ms): the clock only moves forward";
    return ApiError::validation(std::string("invalid clock change: ") + key + " " +
                                    util::format_iso8601_ms(target) + " " + msg,
                                {{key, msg}});
  };
  util::OffsetClock& clock = *ctx.offset_clock;
  if (body.contains("advanceMs")) {
    int64_t ms = integer("advanceMs");
    if (ms < 0)
      throw ApiError::validation(
          "invalid clock change: advanceMs must not be negative: the clock only moves forward",
          {{"advanceMs", "must not be negative: the clock only moves forward"}});
    clock.advance_ms(ms);
  } else {
    int64_t target = 0;
    const char* key = body.contains("setMs") ? "setMs" : "set";
    if (body.contains("setMs")) {
      target = integer("setMs");
    } else if (!body["set"].is_string() ||
               !util::parse_iso8601(body["set"].get<std::string>(), &target)) {
      throw ApiError::validation(
          "invalid clock change: set must be an ISO-8601 date-time such as "
          "2025-03-01T00:00:00Z",
          {{"set", "must be an ISO-8601 date-time such as 2025-03-01T00:00:00Z"}});
    }
    int64_t now = clock.now_ms();
    if (target < now) throw backwards(key, target, now);
    clock.set_ms(target);
  }
  // Webhook retries and the finalization window are due on this clock: look again now.
  driver.clock_moved();
  return clock_view(ctx);
}

// POST /_sandbox/oauth/codes: a connectable-account code (vercel-api.md §8.2) for an
// installation, as Vercel hands one to the partner's Redirect URL; spent by
// POST /v2/oauth/access_token. Made for the installer (or the first member).
Json make_oauth_code(Context& ctx, const Json& body) {
  model::Checker check;
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "installationId" && it.key() != "redirectUri")
      check.add(it.key(), "is not allowed (send installationId and optionally redirectUri)");
  auto icfg = check.string(body, "installationId", "", true, true);
  auto redirect = check.string(body, "redirectUri", "", false, true);
  check.throw_if_failed("OAuth code request");
  std::string code = util::random_token(24);
  int64_t now = ctx.clock.now_ms();
  int64_t expires = now + ctx.config.sso_code_ttl_ms;
  ctx.state.mutate([&](Json& doc) {
    auto inst = doc.value("/installations"_json_pointer / *icfg, Json());
    if (!inst.is_object()) throw ApiError::not_found("unknown installation " + *icfg);
    std::string status = inst.value("status", "");
    if (status == "finalized" || status == "pending_deletion")
      throw ApiError(409, "conflict", "installation " + *icfg + " is " + status,
                     {{"installationId", "is " + status}});
    std::string user = inst.value("installedBy", "");
    if (user.empty() && inst.contains("users") && inst["users"].is_object() &&
        !inst["users"].empty())
      user = inst["users"].begin().key();
    Json& codes = doc["oauthCodes"];
    if (!codes.is_object()) codes = Json::object();
    // Spent and long-expired codes are of no further use; keep the map small.
    for (auto it = codes.begin(); it != codes.end();) {
      bool dead = it->value("used", false) || it->value("expiresAt", int64_t{0}) < now - 3600000;
      it = dead && codes.size() > 100 ? codes.erase(it) : std::next(it);
    }
    Json rec = {{"installationId", *icfg},
                {"userHex", user},
                {"createdAt", now},
                {"expiresAt", expires},
                {"used", false}};
    if (redirect) rec["redirectUri"] = *redirect;
    codes[code] = rec;
  });
  return Json{{"code", code}, {"expiresAt", expires}};
}

// Only the listed members; each problem named.
void only_members(model::Checker& check, const Json& body,
                  std::initializer_list<std::string_view> allowed) {
  for (auto it = body.begin(); it != body.end(); ++it)
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      check.add(it.key(), "is not allowed");
}

}  // namespace

void add_control_routes(Routes& routes, Context& ctx, Driver& driver) {
  routes.add("GET", "/_sandbox", [](net::Request&, const net::PathParams&) {
    net::Response r;
    r.status = 302;
    r.headers.emplace_back("Location", "/_sandbox/inspector");
    return r;
  });
  routes.add("GET", "/_sandbox/inspector", [&ctx](net::Request&, const net::PathParams&) {
    net::Response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = inspector_html(ctx);
    return r;
  });

  routes.add("GET", "/_sandbox/flows", [](net::Request&, const net::PathParams&) {
    return json_reply(200, Json{{"flows", Driver::flow_names()}});
  });
  routes.add("POST", "/_sandbox/flows/{flow}",
             [&driver](net::Request& req, const net::PathParams& p) {
               return guarded([&] {
                 Json result = driver.run(path_param(p, "flow"), body_object(req));
                 return json_reply(200, result);
               });
             });

  // The sandbox's clock (tokens, billing-data staleness, SSO codes, webhook retries, the
  // finalization window): read it, or move it forward.
  routes.add("GET", "/_sandbox/clock", [&ctx](net::Request&, const net::PathParams&) {
    return json_reply(200, clock_view(ctx));
  });
  routes.add("POST", "/_sandbox/clock", [&ctx, &driver](net::Request& req, const net::PathParams&) {
    return guarded([&] { return json_reply(200, move_clock(ctx, driver, body_object(req))); });
  });

  // Fault injection for the Vercel API (sandbox/faults.h).
  auto list_faults = [&ctx] {
    Json rules = Json::array();
    int64_t now = ctx.clock.now_ms();
    if (ctx.faults)
      for (const auto& r : ctx.faults->list()) rules.push_back(Faults::to_json(r, now));
    return rules;
  };
  routes.add("GET", "/_sandbox/faults", [list_faults](net::Request&, const net::PathParams&) {
    return json_reply(200, Json{{"rules", list_faults()}});
  });
  routes.add("POST", "/_sandbox/faults",
             [&ctx, list_faults](net::Request& req, const net::PathParams&) {
               return guarded([&] {
                 if (!ctx.faults)
                   throw ApiError(409, "faults_disabled", "fault injection is not enabled");
                 Json added = Json::array();
                 for (const auto& r : ctx.faults->add(body_object(req))) added.push_back(r.id);
                 return json_reply(200, Json{{"added", added}, {"rules", list_faults()}});
               });
             });
  routes.add("DELETE", "/_sandbox/faults", [&ctx](net::Request&, const net::PathParams&) {
    size_t n = ctx.faults ? ctx.faults->clear() : 0;
    return json_reply(200, Json{{"cleared", n}});
  });

  routes.add("GET", "/_sandbox/state", [&ctx](net::Request&, const net::PathParams&) {
    return json_reply(200, ctx.state.snapshot());
  });
  routes.add("GET", "/_sandbox/config", [&ctx](net::Request&, const net::PathParams&) {
    const auto& c = ctx.config;
    return json_reply(200, Json{{"baseUrl", c.base_url},
                                {"issuer", c.issuer},
                                {"jwksUrl", c.base_url + "/.well-known/jwks"},
                                {"clientId", c.client_id},
                                {"partnerUrl", c.partner_url},
                                {"webhookUrl", c.webhook_url},
                                {"redirectLoginUrl", c.redirect_login_url},
                                {"urlSlug", c.url_slug}});
  });

  routes.add("GET", "/_sandbox/log", [&ctx](net::Request& req, const net::PathParams&) {
    return guarded([&] {
      int64_t after = 0;
      size_t limit = 200;
      try {
        if (auto a = req.query_param("after")) after = std::stoll(*a);
        if (auto l = req.query_param("limit")) limit = static_cast<size_t>(std::stoul(*l));
      } catch (const std::exception&) {
        throw ApiError::validation("after and limit must be numbers",
                                   {{"after", "must be a number"}, {"limit", "must be a number"}});
      }
      Json out = Json::array();
      for (const auto& e : ctx.log.list(after, std::min<size_t>(limit, 5000)))
        out.push_back(ExchangeLog::to_json(e));
      return json_reply(200, Json{{"exchanges", out}});
    });
  });

  // The env vars a Vercel project connected to the resource receives, per environment.
  routes.add("GET", "/_sandbox/env/{installationId}/{resourceId}",
             [&ctx](net::Request&, const net::PathParams& p) {
               return guarded([&] {
                 std::string icfg = path_param(p, "installationId");
                 std::string rid = path_param(p, "resourceId");
                 Json resource = ctx.state.read([&](const Json& doc) -> Json {
                   auto r = doc.value("/resources"_json_pointer / icfg / rid, Json());
                   return r;
                 });
                 if (resource.is_null())
                   throw ApiError::not_found("no resource " + rid + " in " + icfg);
                 return json_reply(200, project_env(resource));
               });
             });

  // Moves an invoice to a state (paid, notpaid, overdue, refunded …) and sends the matching
  // marketplace.invoice.* webhook, as Vercel does when a payment succeeds or fails.
  routes.add("POST", "/_sandbox/invoices/{installationId}/{invoiceId}/state",
             [&ctx, &driver](net::Request& req, const net::PathParams& p) {
               return guarded([&] {
                 Json body = body_object(req);
                 model::Checker check;
                 auto state = check.one_of(body, "state", "", true,
                                           {"paid", "notpaid", "overdue", "refunded", "invoiced"});
                 bool webhook = check.boolean(body, "webhook", "", false).value_or(true);
                 check.throw_if_failed("invoice state change");
                 std::string icfg = path_param(p, "installationId");
                 Json invoice = set_invoice_state(ctx, icfg, path_param(p, "invoiceId"), *state);
                 Json result = {{"invoice", invoice}};
                 if (webhook && *state != "invoiced")
                   result["webhook"] = driver.send_webhook("marketplace.invoice." + *state,
                                                           invoice_webhook_payload(invoice, icfg));
                 return json_reply(200, result);
               });
             });

  // The import flow (flows.md F14) as Vercel plays it: "Import Existing" makes a single-use
  // state (12 h) and sends the browser to the partner's Import Resource URL; the partner
  // imports the resource (PUT …/resources/{id}) and sends the browser back to
  // /api/v1/integrations/installations/resources/import/complete, where the sandbox checks the
  // state and that the resource was imported before it came back. State key `imports`:
  // state -> {installationId, productId?, createdAt, expiresAt, status (started | completed |
  // refused), resourceId?, reason?}.
  routes.add("POST", "/_sandbox/imports", [&ctx](net::Request& req, const net::PathParams&) {
    return guarded([&] {
      Json body = body_object(req);
      model::Checker check;
      only_members(check, body, {"installationId", "productId"});
      auto icfg = check.string(body, "installationId", "", true, true);
      auto product = check.string(body, "productId", "", false, true);
      check.throw_if_failed("import");
      std::string state = util::random_token(24);
      int64_t now = ctx.clock.now_ms();
      ctx.state.mutate([&](Json& doc) {
        if (!doc.contains("installations") || !doc["installations"].contains(*icfg))
          throw ApiError::not_found("installation " + *icfg + " not found");
        Json rec = {{"installationId", *icfg},
                    {"createdAt", now},
                    {"expiresAt", now + 12LL * 3600 * 1000},
                    {"status", "started"}};
        if (product) rec["productId"] = *product;
        doc["imports"][state] = rec;
      });
      std::string ret =
          ctx.config.base_url + "/api/v1/integrations/installations/resources/import/complete";
      std::string url = ctx.config.import_url + "?installation_id=" + net::percent_encode(*icfg) +
                        (product ? "&product_id=" + net::percent_encode(*product) : "") +
                        "&state=" + state + "&return=" + net::percent_encode(ret);
      return json_reply(200, {{"state", state}, {"url", url}, {"return", ret}});
    });
  });
  routes.add("GET", "/api/v1/integrations/installations/resources/import/complete",
             [&ctx](net::Request& req, const net::PathParams&) {
               std::string icfg = req.query_param("installation_id").value_or("");
               std::string rid = req.query_param("resource_id").value_or("");
               std::string state = req.query_param("state").value_or("");
               int64_t now = ctx.clock.now_ms();
               std::string reason = ctx.state.mutate([&](Json& doc) -> std::string {
                 if (!doc.contains("imports") || !doc["imports"].contains(state))
                   return "unknown state";
                 Json& rec = doc["imports"][state];
                 std::string why;
                 if (rec.value("status", "") != "started")
                   why = "the state was used already";
                 else if (rec.value("expiresAt", int64_t{0}) < now)
                   why = "the state expired";
                 else if (rec.value("installationId", "") != icfg)
                   why = "the state belongs to another installation";
                 else if (rid.empty())
                   why = "resource_id is missing";
                 else {
                   const Json* res = nullptr;
                   if (doc.contains("resources") && doc["resources"].contains(icfg) &&
                       doc["resources"][icfg].contains(rid))
                     res = &doc["resources"][icfg][rid];
                   if (!res || res->value("deleted", false) || !res->contains("importedAt"))
                     why = "resource " + rid + " was not imported before the redirect";
                 }
                 rec["status"] = why.empty() ? "completed" : "refused";
                 if (!rid.empty()) rec["resourceId"] = rid;
                 if (!why.empty()) rec["reason"] = why;
                 rec["completedAt"] = now;
                 return why;
               });
               net::Response r;
               r.status = reason.empty() ? 200 : 400;
               r.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
               // No favicon request: the page is the whole answer.
               const std::string head = "<!doctype html><link rel=\"icon\" href=\"data:,\">";
               r.body = reason.empty()
                            ? head + "<title>Imported</title><h1>Resource " + rid + " imported</h1>"
                            : head + "<title>Import failed</title><h1>Import failed</h1><p>" +
                                  reason + "</p>";
               return r;
             });

  // Connectable-account install codes (see make_oauth_code).
  routes.add("POST", "/_sandbox/oauth/codes", [&ctx](net::Request& req, const net::PathParams&) {
    return guarded([&] { return json_reply(200, make_oauth_code(ctx, body_object(req))); });
  });

  // Projects and deployments (sandbox/deployments.h), for tests and the CLI. These record
  // only: they send no webhook (the driver's flows do when they play a deployment).
  routes.add("POST", "/_sandbox/projects", [&ctx](net::Request& req, const net::PathParams&) {
    return guarded([&] {
      Json body = body_object(req);
      model::Checker check;
      only_members(check, body, {"installationId", "name"});
      auto icfg = check.string(body, "installationId", "", true, true);
      auto name = check.string(body, "name", "", true, true);
      check.throw_if_failed("project");
      return json_reply(200, deployments::create_project(ctx, *icfg, *name));
    });
  });
  routes.add("POST", "/_sandbox/projects/{projectId}/connect",
             [&ctx](net::Request& req, const net::PathParams& p) {
               return guarded([&] {
                 Json body = body_object(req);
                 model::Checker check;
                 only_members(check, body, {"resourceId"});
                 auto rid = check.string(body, "resourceId", "", true, true);
                 check.throw_if_failed("project connection");
                 return json_reply(
                     200, deployments::connect_resource(ctx, path_param(p, "projectId"), *rid));
               });
             });
  routes.add("POST", "/_sandbox/projects/{projectId}/deployments",
             [&ctx](net::Request& req, const net::PathParams& p) {
               return guarded([&] {
                 Json body = body_object(req);
                 model::Checker check;
                 only_members(check, body, {"target", "meta"});
                 auto target = check.one_of(body, "target", "", false, {"preview", "production"});
                 check.get(body, "meta", "", model::Kind::kObject, false);
                 check.throw_if_failed("deployment");
                 return json_reply(
                     200, deployments::create_deployment(ctx, path_param(p, "projectId"),
                                                         target.value_or("preview"),
                                                         body.value("meta", Json::object())));
               });
             });
  routes.add("GET", "/_sandbox/deployments/{deploymentId}",
             [&ctx](net::Request&, const net::PathParams& p) {
               return guarded([&] {
                 std::string id = path_param(p, "deploymentId");
                 Json d = deployments::stored_deployment(ctx, id);
                 if (!d.is_object()) throw ApiError::not_found("deployment " + id + " not found");
                 return json_reply(200, d);
               });
             });
  // Records that action.start was sent for a resource's action (no webhook is sent).
  routes.add("POST", "/_sandbox/deployments/{deploymentId}/actions",
             [&ctx](net::Request& req, const net::PathParams& p) {
               return guarded([&] {
                 Json body = body_object(req);
                 model::Checker check;
                 only_members(check, body, {"resourceId", "action"});
                 auto rid = check.string(body, "resourceId", "", true, true);
                 auto action = check.string(body, "action", "", true, true);
                 check.throw_if_failed("deployment action");
                 return json_reply(200, deployments::start_action(
                                            ctx, path_param(p, "deploymentId"), *rid, *action));
               });
             });
  // Opens the check runs of the project's Checks v2 checks (no webhook is sent).
  routes.add("POST", "/_sandbox/deployments/{deploymentId}/check-runs",
             [&ctx](net::Request&, const net::PathParams& p) {
               return guarded([&] {
                 return json_reply(200,
                                   Json{{"checkRuns", deployments::start_check_runs(
                                                          ctx, path_param(p, "deploymentId"))}});
               });
             });
  // The judges' findings: ?resourceId=&action= for an action, ?checkRunId= for a check run.
  routes.add(
      "GET", "/_sandbox/deployments/{deploymentId}/judge",
      [&ctx](net::Request& req, const net::PathParams& p) {
        return guarded([&] {
          std::string id = path_param(p, "deploymentId");
          if (auto run = req.query_param("checkRunId"))
            return json_reply(200, Json{{"findings", deployments::judge_check_run(
                                                         ctx, id, *run, ctx.clock.now_ms())}});
          auto rid = req.query_param("resourceId");
          auto action = req.query_param("action");
          if (!rid || !action)
            throw ApiError::validation("send checkRunId, or resourceId and action",
                                       {{"checkRunId", "or resourceId and action are required"}});
          return json_reply(200,
                            Json{{"findings", deployments::judge_action(ctx, id, *rid, *action)}});
        });
      });

  // Mints a token in Vercel's shape, for providers testing their own endpoints by hand.
  routes.add("POST", "/_sandbox/tokens", [&ctx](net::Request& req, const net::PathParams&) {
    return guarded([&] {
      Json body = body_object(req);
      model::Checker check;
      auto kind = check.one_of(body, "kind", "", true, {"user", "system"});
      auto icfg = check.string(body, "installationId", "", false);
      auto role = check.one_of(body, "role", "", false, {"ADMIN", "USER"});
      check.throw_if_failed("token request");
      if (*kind == "system") {
        std::optional<std::string> account;
        if (icfg)
          account = ctx.state.read([&](const Json& doc) -> std::optional<std::string> {
            auto inst = doc.value("/installations"_json_pointer / *icfg, Json());
            if (inst.is_object() && inst.contains("accountHex"))
              return inst["accountHex"].get<std::string>();
            return std::nullopt;
          });
        return json_reply(200, Json{{"token", ctx.identity.system_token(icfg, account)}});
      }
      if (!icfg)
        throw ApiError::validation("user tokens need an installation",
                                   {{"installationId", "is required"}});
      Json inst = ctx.state.read([&](const Json& doc) {
        return doc.value("/installations"_json_pointer / *icfg, Json());
      });
      if (!inst.is_object()) throw ApiError::not_found("unknown installation " + *icfg);
      UserIdentity user;
      user.account_hex = inst.value("accountHex", "");
      user.account_id = inst.value("accountId", "");
      user.role = role.value_or("ADMIN");
      for (auto it = inst["users"].begin(); it != inst["users"].end(); ++it) {
        if (it.value().value("role", "") == user.role || user.user_hex.empty()) {
          user.user_hex = it.key();
          user.email = it.value().value("email", "");
          user.name = it.value().value("name", "");
          if (it.value().value("role", "") == user.role) break;
        }
      }
      return json_reply(200, Json{{"token", ctx.identity.user_token(*icfg, user)}});
    });
  });

  // Open in Provider from a browser: runs the sso flow and redirects to the partner.
  routes.add("GET", "/_sandbox/sso", [&driver](net::Request& req, const net::PathParams&) {
    return guarded([&] {
      Json params = Json::object();
      for (auto name :
           {"installationId", "userHex", "role", "resourceId", "projectId", "invoiceId", "path",
            "url", "checkId", "experimentationItemId", "productId", "pr", "support"})
        if (auto v = req.query_param(name)) params[name] = *v;
      Json result = driver.run("sso", params);
      net::Response r;
      r.status = 302;
      r.headers.emplace_back("Location",
                             result.value("redirectUrl", std::string("/_sandbox/inspector")));
      return r;
    });
  });

  // Provider-initiated SSO (flows.md §2.2) as vercel.com serves it:
  // /sso/integrations/{URLSlug}/{installationId}?{query}. The sandbox signs in the installer
  // (or a member with ?role=USER, a sandbox-only choice) and passes the partner's deep-link
  // parameters through to the Redirect Login URL.
  routes.add("GET", "/sso/integrations/{slug}/{installationId}",
             [&ctx, &driver](net::Request& req, const net::PathParams& p) {
               return guarded([&] {
                 if (path_param(p, "slug") != ctx.config.url_slug)
                   throw ApiError::not_found("no integration with URL slug " +
                                             path_param(p, "slug") + " (this one is " +
                                             ctx.config.url_slug + ")");
                 static const std::vector<std::pair<const char*, const char*>> kPassThrough = {
                     {"product_id", "productId"},
                     {"resource_id", "resourceId"},
                     {"project_id", "projectId"},
                     {"check_id", "checkId"},
                     {"experimentation_item_id", "experimentationItemId"},
                     {"invoice_id", "invoiceId"},
                     {"pr", "pr"},
                     {"path", "path"},
                     {"url", "url"},
                     {"support", "support"},
                     {"role", "role"}};
                 Json params = {{"installationId", path_param(p, "installationId")}};
                 for (const auto& [query, param] : kPassThrough)
                   if (auto v = req.query_param(query)) params[param] = *v;
                 Json result = driver.run("sso", params);
                 net::Response r;
                 r.status = 302;
                 r.headers.emplace_back("Location", result.value("redirectUrl", std::string()));
                 return r;
               });
             });
}

}  // namespace wharf::sandbox
