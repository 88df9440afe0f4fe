// Registration and plumbing of the sandbox's Vercel API: authentication with installation
// access tokens, body parsing, the error envelope, the exchange log, the background worker,
// and the identity documents. The endpoints themselves live in vercel_api_*.cpp.
#include "sandbox/vercel_api.h"

#include <cctype>
#include <chrono>
#include <optional>
#include <thread>

#include "auth/authenticator.h"
#include "sandbox/faults.h"
#include "sandbox/vercel_api_internal.h"
#include "util/crypto.h"
#include "util/log.h"

namespace wharf::sandbox {
namespace vercel_api {

// ---- Background -----------------------------------------------------------------------------

Background::~Background() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Background::post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  tasks_.push_back(std::move(task));
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_one();
}

void Background::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    // A failing follow-up (partner down, driver bug) must not take the worker down with it.
    try {
      task();
    } catch (const std::exception& e) {
      util::Log(util::LogLevel::kWarn, "sandbox background task failed").str("error", e.what());
    } catch (...) {
      util::Log(util::LogLevel::kWarn, "sandbox background task failed");
    }
  }
}

// ---- helpers --------------------------------------------------------------------------------

namespace {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string mask(const std::string& v) {
  return v.size() > 6 ? "…" + v.substr(v.size() - 6) : "…";
}

// Client secrets and issued tokens do not belong in the exchange log (it is served to anyone
// who can reach /_sandbox/log); a tail is kept so values can still be told apart.
std::string redact_body(const std::string& body) {
  static const char* const kKeys[] = {"client_secret", "access_token", "id_token", "refresh_token"};
  if (body.empty()) return body;
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_discarded()) {
    if (!j.is_object()) return body;
    bool changed = false;
    for (const char* k : kKeys) {
      auto it = j.find(k);
      if (it != j.end() && it->is_string()) {
        *it = mask(it->get<std::string>());
        changed = true;
      }
    }
    return changed ? j.dump(-1, ' ', false, Json::error_handler_t::replace) : body;
  }
  // application/x-www-form-urlencoded
  std::string out;
  size_t i = 0;
  while (i <= body.size()) {
    size_t amp = body.find('&', i);
    if (amp == std::string::npos) amp = body.size();
    std::string pair = body.substr(i, amp - i);
    size_t eq = pair.find('=');
    std::string key = pair.substr(0, eq);
    bool secret = false;
    for (const char* k : kKeys) secret = secret || key == k;
    if (i > 0) out += '&';
    out += secret && eq != std::string::npos ? key + "=" + mask(pair.substr(eq + 1)) : pair;
    i = amp + 1;
  }
  return out;
}

// Installation token check (vercel-api.md §1.3). Runs before the handler touches anything.
// With `icfg` empty (Auth::kToken) any installation's token is accepted; returns the
// installation the token belongs to.
std::string authenticate(Context& ctx, const net::Request& req, const std::string& icfg) {
  auto header = req.header("authorization");
  if (!header)
    throw model::ApiError::unauthorized(
        "missing Authorization header: send Authorization: Bearer <installation access token> "
        "(credentials.access_token from Upsert Installation)");
  std::string token(auth::bearer_token(*header));
  if (token.empty())
    throw model::ApiError::unauthorized(
        "Authorization must use the Bearer scheme with the installation access token");
  return ctx.state.read([&](const Json& doc) {
    std::string owner;
    std::string owner_status;
    if (auto insts = doc.find("installations"); insts != doc.end() && insts->is_object()) {
      for (auto it = insts->begin(); it != insts->end() && owner.empty(); ++it) {
        auto tokens = it->find("accessTokens");
        if (tokens == it->end() || !tokens->is_array()) continue;
        for (const auto& t : *tokens) {
          if (t.is_string() && util::constant_time_equal(t.get<std::string>(), token)) {
            owner = it.key();
            owner_status = get_str(*it, "status");
            break;
          }
        }
      }
    }
    if (owner.empty())
      throw model::ApiError::unauthorized(
          "the bearer token is not an access token of any installation");
    if (owner_status == "finalized")
      throw model::ApiError::unauthorized("installation " + owner +
                                          " is finalized; its access token no longer works");
    if (icfg.empty()) {
      // General REST endpoints: the installation is the token's; `teamId` may name its team.
      if (auto team = req.query_param("teamId")) {
        std::string account = get_str(doc["installations"][owner], "accountId");
        if (*team != account)
          throw model::ApiError::forbidden("teamId " + *team +
                                           " is not the team of this access token's installation " +
                                           owner + (account.empty() ? "" : " (" + account + ")"));
      }
      return owner;
    }
    bool exists = doc.contains("installations") && doc["installations"].contains(icfg);
    if (!exists) throw model::ApiError::not_found("installation " + icfg + " not found");
    if (owner != icfg)
      throw model::ApiError::forbidden("this access token belongs to installation " + owner +
                                       ", not to " + icfg);
    return owner;
  });
}

net::Response render_error(const model::ApiError& e, std::vector<std::string>* findings) {
  // Vercel's envelope has no `fields`; the message names every field instead.
  std::string code = e.code == "validation_error" ? "bad_request" : e.code;
  if (!e.fields.empty()) {
    *findings = schema::findings(e.fields);
  } else {
    findings->push_back(e.message);
  }
  return vercel_error(e.status, code, e.message);
}

net::Response handle(Context& ctx, Driver& driver, Background& background, Auth auth,
                     const Endpoint& fn, net::Request& req, const net::PathParams& params,
                     std::vector<std::string>* findings) {
  net::Response resp;
  Call call{ctx, driver, background, req, params, {}, {}};
  try {
    if (auth == Auth::kInstallation) {
      call.icfg = path_param(params, "icfg");
      req.log_fields.emplace_back("installationId", call.icfg);
      authenticate(ctx, req, call.icfg);
    } else if (auth == Auth::kToken) {
      call.icfg = authenticate(ctx, req, "");
      req.log_fields.emplace_back("installationId", call.icfg);
    }
    resp = fn(call);
    *findings = std::move(call.findings);
  } catch (const model::ApiError& e) {
    resp = render_error(e, findings);
  } catch (const std::exception& e) {
    resp = vercel_error(500, "internal_server_error", std::string("sandbox error: ") + e.what());
    findings->push_back(std::string("sandbox internal error (not the partner's fault): ") +
                        e.what());
  } catch (...) {
    resp = vercel_error(500, "internal_server_error", "sandbox error");
    findings->push_back("sandbox internal error (not the partner's fault)");
  }
  return resp;
}

// The sleep of a delaying fault rule. It holds this request's I/O thread (net::Server runs
// handlers synchronously), so nothing is locked while it lasts and the sandbox runs enough
// I/O threads that other connections keep being served.
void sleep_ms(int64_t ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

net::Response dispatch(Context& ctx, Driver& driver, Background& background, Auth auth,
                       const Endpoint& fn, net::Request& req, const net::PathParams& params) {
  auto started = std::chrono::steady_clock::now();
  int64_t arrived_ms = ctx.clock.now_ms();
  net::Response resp;
  std::vector<std::string> findings;
  std::optional<FaultRule> fault;
  if (ctx.faults) fault = ctx.faults->take(req.method, req.path);
  Json fault_record;
  if (!fault) {
    resp = handle(ctx, driver, background, auth, fn, req, params, &findings);
  } else {
    fault_record = Faults::log_record(*fault);
    req.log_fields.emplace_back("fault", std::to_string(fault->id) + ":" + fault->mode);
    if (fault->mode == "after") {
      // Vercel committed the change; the answer is what gets lost.
      net::Response handled = handle(ctx, driver, background, auth, fn, req, params, &findings);
      fault_record["handledStatus"] = handled.status;
      sleep_ms(fault->delay_ms);
      resp = Faults::response(*fault, ctx.clock.now_ms());
    } else if (fault->mode == "delay") {
      sleep_ms(fault->delay_ms);
      resp = handle(ctx, driver, background, auth, fn, req, params, &findings);
    } else {  // respond: the call is not handled at all
      sleep_ms(fault->delay_ms);
      resp = Faults::response(*fault, ctx.clock.now_ms());
    }
  }
  try {
    Exchange ex;
    ex.at_ms = arrived_ms;
    ex.fault = std::move(fault_record);
    ex.direction = "from-partner";
    ex.method = req.method;
    ex.url = ctx.config.base_url + req.target;
    for (const auto& [name, value] : req.headers)
      ex.request_headers[name] = ExchangeLog::redact_header(name, value);
    ex.request_body = redact_body(req.body);
    ex.status = resp.status;
    ex.response_body = redact_body(resp.body);
    ex.duration_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    ex.findings = std::move(findings);
    ctx.log.add(std::move(ex));
  } catch (...) {
    // The log is a convenience; never fail the call because of it.
  }
  return resp;
}

}  // namespace

Json Call::body() const {
  std::string media = net::media_type(req.header("content-type").value_or(""));
  if (media != "application/json") {
    std::string got = req.header("content-type") ? std::string(*req.header("content-type")) : "";
    throw model::ApiError(
        400, "bad_request",
        got.empty() ? "Content-Type: is missing; send application/json"
                    : "Content-Type: must be application/json, got " + got,
        {{"Content-Type", got.empty() ? "is missing" : "must be application/json"}});
  }
  Json doc;
  try {
    doc = Json::parse(req.body);
  } catch (const Json::parse_error& e) {
    std::string what = e.what();
    throw model::ApiError(400, "bad_request", "body: is not valid JSON (" + what + ")",
                          {{"body", "is not valid JSON (" + what + ")"}});
  }
  if (!doc.is_object())
    throw model::ApiError(400, "bad_request", "body: must be a JSON object",
                          {{"body", "must be a JSON object"}});
  return doc;
}

Json Call::optional_body() const {
  if (trim(req.body).empty()) return Json::object();
  return body();
}

std::string Call::now_iso() const {
  return util::format_iso8601_ms(ctx.clock.now_ms());
}

void Registrar::add(const std::string& method, const std::string& pattern, Auth auth, Endpoint fn) {
  // The identity documents live at the issuer, not under the REST API: only /v<n>/… paths
  // get the /api twin.
  if (pattern.rfind("/v", 0) == 0) add_one(method, "/api" + pattern, auth, fn);
  add_one(method, pattern, auth, std::move(fn));
}

void Registrar::add_one(const std::string& method, const std::string& pattern, Auth auth,
                        Endpoint fn) {
  routes_.add(method, pattern,
              [&ctx = ctx_, &driver = driver_, background = background_, auth, fn = std::move(fn)](
                  net::Request& req, const net::PathParams& params) {
                return dispatch(ctx, driver, *background, auth, fn, req, params);
              });
}

void Registrar::installation(const std::string& method, const std::string& suffix, Endpoint fn) {
  add(method, "/v1/installations/{icfg}" + suffix, Auth::kInstallation, fn);
  add(method, "/v1/integrations/marketplace/installations/{icfg}" + suffix, Auth::kInstallation,
      std::move(fn));
}

void Registrar::scoped(const std::string& method, const std::string& pattern, Endpoint fn) {
  add(method, pattern, Auth::kInstallation, std::move(fn));
}

void Registrar::token(const std::string& method, const std::string& pattern, Endpoint fn) {
  add(method, pattern, Auth::kToken, std::move(fn));
}

void Registrar::open(const std::string& method, const std::string& pattern, Endpoint fn) {
  add(method, pattern, Auth::kNone, std::move(fn));
}

void require_valid(const schema::Errors& errors, const std::string& what) {
  if (errors.empty()) return;
  throw model::ApiError(400, "bad_request", "invalid " + what + ": " + schema::describe(errors),
                        errors);
}

std::string get_str(const Json& obj, const std::string& key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

Json& installation_of(Json& doc, const std::string& icfg) {
  if (!doc["installations"].is_object() || !doc["installations"].contains(icfg))
    throw model::ApiError::not_found("installation " + icfg + " not found");
  return doc["installations"][icfg];
}

const Json& installation_of(const Json& doc, const std::string& icfg) {
  auto insts = doc.find("installations");
  if (insts == doc.end() || !insts->is_object() || !insts->contains(icfg))
    throw model::ApiError::not_found("installation " + icfg + " not found");
  return (*insts)[icfg];
}

const Json* find_live_resource(const Json& doc, const std::string& icfg, const std::string& rid) {
  auto rs = doc.find("resources");
  if (rs == doc.end() || !rs->is_object()) return nullptr;
  auto inst = rs->find(icfg);
  if (inst == rs->end() || !inst->is_object()) return nullptr;
  auto r = inst->find(rid);
  if (r == inst->end() || !r->is_object()) return nullptr;
  if (r->value("deleted", false)) return nullptr;
  return &*r;
}

Json& live_resource(Json& doc, const std::string& icfg, const std::string& rid) {
  if (!find_live_resource(doc, icfg, rid))
    throw model::ApiError::not_found("resource " + rid + " not found in installation " + icfg);
  return doc["resources"][icfg][rid];
}

}  // namespace vercel_api

using vercel_api::Json;

void add_vercel_api_routes(Routes& routes, Context& ctx, Driver& driver) {
  vercel_api::Registrar r(routes, ctx, driver, std::make_shared<vercel_api::Background>());
  vercel_api::add_installation_routes(r);
  vercel_api::add_resource_routes(r);
  vercel_api::add_billing_routes(r);
  vercel_api::add_deployment_routes(r);

  // Vercel's identity documents. PostHog fetches .../jwks.json, so both names answer.
  auto jwks = [](vercel_api::Call& c) { return json_reply(200, c.ctx.identity.jwks()); };
  r.open("GET", "/.well-known/jwks", jwks);
  r.open("GET", "/.well-known/jwks.json", jwks);
  r.open("GET", "/.well-known/openid-configuration", [](vercel_api::Call& c) {
    return json_reply(200, c.ctx.identity.openid_configuration(c.ctx.config.base_url));
  });
}

std::string env_var_name(const std::string& name, const std::string& prefix) {
  if (prefix.empty()) return name;
  std::string p = prefix;
  for (char& c : p)
    if (c == '-' || c == ' ') c = '_';
  std::string sep = p.back() == '_' ? p : p + "_";
  auto apply = [&](const std::string& n) { return n.rfind(sep, 0) == 0 ? n : sep + n; };
  static const std::string kPublic = "NEXT_PUBLIC_";
  if (name.rfind(kPublic, 0) == 0) return kPublic + apply(name.substr(kPublic.size()));
  return apply(name);
}

Json project_env(const Json& resource) {
  static const char* const kEnvs[] = {"development", "preview", "production"};
  Json out = Json::object();
  for (const char* env : kEnvs) out[env] = Json::object();
  if (!resource.is_object()) return out;
  auto secrets = resource.find("secrets");
  if (secrets == resource.end() || !secrets->is_array()) return out;
  for (const auto& s : *secrets) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
    std::string value = vercel_api::get_str(s, "value");
    std::string name = env_var_name(s["name"].get<std::string>(), vercel_api::get_str(s, "prefix"));
    const Json* overrides =
        s.contains("environmentOverrides") && s["environmentOverrides"].is_object()
            ? &s["environmentOverrides"]
            : nullptr;
    for (const char* env : kEnvs) {
      std::string v = value;
      if (overrides && overrides->contains(env) && (*overrides)[env].is_string())
        v = (*overrides)[env].get<std::string>();
      out[env][name] = v;
    }
  }
  // Global (Edge) Config syncing on (flows.md F16 step 7): connected projects also get the
  // store's connection string, which Vercel makes (the Flags SDK adapter reads it).
  if (resource.contains("protocolSettings") && resource["protocolSettings"].is_object()) {
    const Json& ps = resource["protocolSettings"];
    if (ps.contains("experimentation") && ps["experimentation"].is_object()) {
      const Json& e = ps["experimentation"];
      std::string id = vercel_api::get_str(e, "edgeConfigId");
      if (!id.empty() && e.value("edgeConfigSyncingEnabled", true) == true) {
        std::string token = vercel_api::get_str(e, "edgeConfigTokenId");
        std::string conn = "https://edge-config.vercel.com/" + id +
                           "?token=" + (token.empty() ? "sandbox-" + id : token);
        for (const char* env : kEnvs) out[env]["EXPERIMENTATION_CONFIG"] = conn;
      }
    }
  }
  return out;
}

}  // namespace wharf::sandbox
