#include "sandbox/driver.h"

#include <algorithm>
#include <cctype>

#include "sandbox/driver_internal.h"
#include "util/crypto.h"

namespace wharf::sandbox {

namespace detail {

namespace {

constexpr size_t kMaxLoggedBody = 256 * 1024;

}  // namespace

// ---- helpers ------------------------------------------------------------------------------

namespace {

std::string random_from(std::string_view alphabet, size_t n) {
  // Rejection sampling keeps the distribution uniform for any alphabet size.
  const size_t limit = 256 - (256 % alphabet.size());
  std::string out;
  while (out.size() < n) {
    for (unsigned char b : util::random_bytes(n * 2)) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == n) break;
    }
  }
  return out;
}
}  // namespace

std::string random_alnum(size_t n) {
  return random_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", n);
}
std::string random_hex(size_t bytes) {
  return util::to_hex(util::random_bytes(bytes));
}
// Vercel's Idempotency-Key values look like UUIDs; partners may store them as such.
std::string new_uuid() {
  std::string h = random_hex(16);
  h[12] = '4';
  h[16] = "89ab"[static_cast<unsigned char>(h[16]) % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string pct_encode(std::string_view s) {
  return net::percent_encode(s);
}

bool is_hex(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
  });
}

bool is_alnum(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0;
  });
}

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Bytes from the wire may be invalid UTF-8; a Json string holding them would make every later
// dump() throw, so they are made valid (invalid sequences replaced) before being kept.
Json safe_string(const std::string& raw) {
  return Json::parse(dump(Json(raw)));
}

std::string clip(const std::string& body) {
  if (body.size() <= kMaxLoggedBody) return body;
  return body.substr(0, kMaxLoggedBody) + "…[" + std::to_string(body.size() - kMaxLoggedBody) +
         " more bytes]";
}

const Json* member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string str_member(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}
ApiError no_installation(const std::string& icfg) {
  return ApiError(404, "not_found", "no installation " + icfg + " in the sandbox",
                  {{"installationId", "is not an installation of the sandbox"}});
}

std::string partner_base(const SandboxConfig& config) {
  std::string base = config.partner_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.empty()) throw ApiError(409, "conflict", "the sandbox has no partner URL configured");
  return base;
}

// ---- Outcome ------------------------------------------------------------------------------

void Outcome::primary(const CallResult& r) {
  out["ok"] = r.ok();
  out["status"] = r.status;
  out["response"] = r.response;
  if (!r.error.empty()) out["error"] = r.error;
  add(r, "");
}

void Outcome::follow_up(const std::string& key, const std::string& endpoint, const CallResult& r) {
  out[key] = {{"ok", r.ok()}, {"status", r.status}, {"response", r.response}};
  if (!r.error.empty()) out[key]["error"] = r.error;
  add(r, endpoint + ": ");
}

void Outcome::add(const CallResult& r, const std::string& prefix) {
  exchanges.push_back(r.exchange_id);
  for (const auto& f : r.findings) findings.push_back(prefix + f);
}

Json Outcome::finish() {
  if (!out.contains("ok")) out["ok"] = true;
  if (!out.contains("status")) out["status"] = nullptr;
  if (!out.contains("response")) out["response"] = nullptr;
  out["exchanges"] = exchanges;
  out["findings"] = findings;
  return std::move(out);
}

// ---- state updates from partner answers ---------------------------------------------------

void apply_resource(Json& rec, const Json& body, const std::string& now) {
  for (auto key : {"productId", "name", "status"})
    if (const Json* v = member(body, key); v && v->is_string()) rec[key] = *v;
  if (const Json* v = member(body, "metadata"); v && v->is_object()) rec["metadata"] = *v;
  if (const Json* v = member(body, "billingPlan"); v && v->is_object()) rec["billingPlan"] = *v;
  // A Resource without a notification has none active.
  const Json* n = member(body, "notification");
  rec["notification"] = n && n->is_object() ? *n : Json();
  if (const Json* v = member(body, "protocolSettings"); v && v->is_object())
    rec["protocolSettings"] = *v;
  rec["updatedAt"] = now;
}

Json valid_secrets(const Json& list) {
  Json out = Json::array();
  if (!list.is_array()) return out;
  for (const auto& s : list)
    if (s.is_object() && member(s, "name") && s["name"].is_string() && member(s, "value") &&
        s["value"].is_string())
      out.push_back(s);
  return out;
}

void apply_installation_state(Json& inst, const Json& body) {
  if (!body.is_object()) return;
  // InstallationState: an absent billingPlan means resource-level billing; notification
  // null clears, absent leaves the current one (partner-api.md §4.13).
  const Json* plan = member(body, "billingPlan");
  inst["billingPlan"] = plan && plan->is_object() ? *plan : Json();
  if (const Json* n = member(body, "notification"); n && (n->is_null() || n->is_object()))
    inst["notification"] = *n;
}

ConformanceOptions conformance_for(const Json& inst) {
  ConformanceOptions o;
  const Json* plan = member(inst, "billingPlan");
  o.installation_billing = plan && plan->is_object();
  return o;
}

std::string idempotency_key(const Json& params) {
  const Json* k = member(params, "idempotencyKey");
  return k && k->is_string() && !k->get_ref<const std::string&>().empty() ? k->get<std::string>()
                                                                          : new_uuid();
}

// ---- DriverImpl ---------------------------------------------------------------------------

std::string DriverImpl::now_iso() const {
  return util::format_iso8601_ms(ctx.clock.now_ms());
}

std::string DriverImpl::redirect_login_url() const {
  if (!ctx.config.redirect_login_url.empty()) return ctx.config.redirect_login_url;
  return partner_base(ctx.config) + "/sso/callback";
}

Json DriverImpl::installation(const std::string& icfg) const {
  return ctx.state.read([&](const Json& doc) -> Json {
    const Json* all = member(doc, "installations");
    const Json* inst = all ? member(*all, icfg) : nullptr;
    return inst ? *inst : Json();
  });
}

Json DriverImpl::resource(const std::string& icfg, const std::string& rid) const {
  return ctx.state.read([&](const Json& doc) -> Json {
    const Json* all = member(doc, "resources");
    const Json* in = all ? member(*all, icfg) : nullptr;
    const Json* r = in ? member(*in, rid) : nullptr;
    return r ? *r : Json();
  });
}

Json DriverImpl::require_installation(const std::string& icfg, bool active) const {
  Json inst = installation(icfg);
  if (!inst.is_object()) throw no_installation(icfg);
  std::string status = str_member(inst, "status");
  if (status == "finalized")
    throw ApiError(409, "conflict", "installation " + icfg + " is finalized",
                   {{"installationId", "is finalized"}});
  if (active && status != "active")
    throw ApiError(409, "conflict", "installation " + icfg + " is " + status,
                   {{"installationId", "is " + status + ", not active"}});
  return inst;
}

UserIdentity DriverImpl::pick_user(const std::string& icfg, const Json& inst,
                                   const std::optional<std::string>& user_hex,
                                   const std::optional<std::string>& role) {
  Json users = inst.value("users", Json::object());
  std::string chosen;
  if (user_hex) {
    if (!users.contains(*user_hex))
      throw ApiError::validation("no user " + *user_hex + " in installation " + icfg,
                                 {{"userHex", "is not a member of the installation"}});
    chosen = *user_hex;
  } else if (role) {
    std::string installer = str_member(inst, "installedBy");
    if (users.contains(installer) && str_member(users[installer], "role") == *role)
      chosen = installer;
    for (auto it = users.begin(); chosen.empty() && it != users.end(); ++it)
      if (str_member(it.value(), "role") == *role) chosen = it.key();
    if (chosen.empty()) {
      chosen = random_hex(12);
      Json u = {{"role", *role},
                {"email", "member-" + chosen.substr(0, 6) + "@example.com"},
                {"name", *role == "USER" ? "Sandbox Viewer" : "Sandbox Admin"}};
      ctx.state.mutate_in({"installations"},
                          [&](Json& doc) { doc["installations"][icfg]["users"][chosen] = u; });
      users[chosen] = u;
    }
  } else {
    chosen = str_member(inst, "installedBy");
    for (auto it = users.begin(); !users.contains(chosen) && it != users.end(); ++it)
      if (str_member(it.value(), "role") == "ADMIN") chosen = it.key();
    if (!users.contains(chosen))
      throw ApiError(409, "conflict", "installation " + icfg + " has no ADMIN user");
  }
  UserIdentity u;
  u.account_hex = str_member(inst, "accountHex");
  u.account_id = str_member(inst, "accountId");
  u.user_hex = chosen;
  u.role = str_member(users[chosen], "role");
  u.email = str_member(users[chosen], "email");
  u.name = str_member(users[chosen], "name");
  return u;
}

std::string DriverImpl::user_token(const std::string& icfg, const UserIdentity& u) const {
  return ctx.identity.user_token(icfg, u);
}

std::string DriverImpl::system_token(const std::string& icfg, const Json& inst) const {
  std::string hex = str_member(inst, "accountHex");
  return ctx.identity.system_token(icfg,
                                   hex.empty() ? std::nullopt : std::optional<std::string>(hex));
}

std::pair<std::string, std::string> DriverImpl::auth_for(Params& a, const std::string& icfg,
                                                         const Json& inst, const std::string& def) {
  std::string mode = a.one_of("auth", false, {"user", "system"}).value_or(def);
  auto user_hex = a.str("userHex", false);
  auto role = a.one_of("role", false, {"ADMIN", "USER"});
  a.done();
  if (mode == "system") return {mode, system_token(icfg, inst)};
  return {mode, user_token(icfg, pick_user(icfg, inst, user_hex, role))};
}

CallSpec DriverImpl::system_get(const std::string& flow, const std::string& endpoint,
                                std::string path, const std::string& icfg, const Json& inst) const {
  return CallSpec{flow,
                  endpoint,
                  "GET",
                  std::move(path),
                  "system",
                  system_token(icfg, inst),
                  std::nullopt,
                  "",
                  "application/json",
                  conformance_for(inst)};
}

CallResult DriverImpl::get_resource_call(const std::string& flow, const std::string& icfg,
                                         const std::string& rid, const Json& inst) {
  CallResult r = call(system_get(
      flow, "get-resource",
      "/v1/installations/" + pct_encode(icfg) + "/resources/" + pct_encode(rid), icfg, inst));
  if (r.ok() && r.response.is_object()) {
    std::string now = now_iso();
    ctx.state.mutate_in({"resources"}, [&](Json& doc) {
      Json& in = doc["resources"][icfg];
      if (!in.is_object() || !in.contains(rid)) return;
      apply_resource(in[rid], r.response, now);
    });
  }
  return r;
}

CallResult DriverImpl::get_installation_call(const std::string& flow, const std::string& icfg,
                                             const Json& inst) {
  CallResult r = call(
      system_get(flow, "get-installation", "/v1/installations/" + pct_encode(icfg), icfg, inst));
  if (r.ok() && r.response.is_object()) {
    ctx.state.mutate_in({"installations"}, [&](Json& doc) {
      Json& all = doc["installations"];
      if (all.is_object() && all.contains(icfg)) apply_installation_state(all[icfg], r.response);
    });
  }
  return r;
}

Json DriverImpl::refresh_resource_flow(const std::string& flow, const std::string& icfg,
                                       const std::string& rid) {
  Json inst = require_installation(icfg, false);
  Outcome o;
  o.primary(get_resource_call(flow, icfg, rid, inst));
  o.out["resource"] = resource(icfg, rid);
  return o.finish();
}

Json DriverImpl::refresh_installation_flow(const std::string& flow, const std::string& icfg) {
  Json inst = require_installation(icfg, false);
  Outcome o;
  o.primary(get_installation_call(flow, icfg, inst));
  o.out["installation"] = installation(icfg);
  return o.finish();
}

Json DriverImpl::patch_resource(const std::string& flow, const std::string& icfg,
                                const std::string& rid, const Json& body,
                                const std::optional<std::string>& role,
                                const std::optional<std::string>& user_hex, const Json& params) {
  Json inst = require_installation(icfg, true);
  UserIdentity user = pick_user(icfg, inst, user_hex, role);
  std::string key = idempotency_key(params);
  CallResult r =
      call({flow, "update-resource", "PATCH",
            "/v1/installations/" + pct_encode(icfg) + "/resources/" + pct_encode(rid), "user",
            user_token(icfg, user), body, key, "application/json", conformance_for(inst)});
  if (r.ok() && r.response.is_object()) {
    std::string now = now_iso();
    ctx.state.mutate_in({"resources"}, [&](Json& doc) {
      Json& in = doc["resources"][icfg];
      if (in.is_object() && in.contains(rid)) apply_resource(in[rid], r.response, now);
    });
  }
  Outcome o;
  o.primary(r);
  o.out["idempotencyKey"] = key;
  o.out["resource"] = resource(icfg, rid);
  return o.finish();
}

Json DriverImpl::removed_payload(const std::string& icfg, const Json& inst) const {
  std::string user = str_member(inst, "installedBy");
  return {
      {"configuration", {{"id", icfg}, {"projectSelection", "all"}, {"projects", Json::array()}}},
      {"installationId", icfg},
      {"team", {{"id", inst.value("accountId", Json())}}},
      {"user", {{"id", user.empty() ? Json() : Json(user)}}}};
}

// ---- the flow table -----------------------------------------------------------------------

const std::vector<FlowInfo>& flow_table() {
  static const std::vector<FlowInfo> table = {
#define WHARF_SANDBOX_FLOW_ROW(name, handler, description) {name, &flows::handler, description},
      WHARF_SANDBOX_FLOWS(WHARF_SANDBOX_FLOW_ROW)
#undef WHARF_SANDBOX_FLOW_ROW
  };
  return table;
}

}  // namespace detail

// ---- Driver -------------------------------------------------------------------------------

using detail::DriverImpl;
using model::Json;

Driver::Driver(Context& ctx) : impl_(std::make_unique<DriverImpl>(ctx)) {}

Driver::~Driver() {
  stop();
}

std::vector<std::string> Driver::flow_names() {
  std::vector<std::string> names;
  for (const auto& f : detail::flow_table()) names.emplace_back(f.name);
  return names;
}

Json Driver::run(const std::string& flow, const Json& params) {
  for (const auto& f : detail::flow_table())
    if (flow == f.name) return f.handler(*impl_, params);
  throw model::ApiError::not_found("unknown flow " + flow);
}

Json Driver::refresh_resource(const std::string& installation_id, const std::string& resource_id) {
  return impl_->refresh_resource_flow("refresh", installation_id, resource_id);
}

Json Driver::refresh_installation(const std::string& installation_id) {
  return impl_->refresh_installation_flow("refresh", installation_id);
}

std::string Driver::send_webhook(const std::string& type, const Json& payload) {
  return impl_->webhooks.send("webhook", type, payload);
}

int Driver::finalize_expired() {
  return impl_->webhooks.finalize_expired();
}

void Driver::clock_moved() {
  impl_->webhooks.clock_moved();
}

void Driver::start() {
  impl_->webhooks.start();
}

void Driver::stop() {
  impl_->webhooks.stop();
}

}  // namespace wharf::sandbox
