#include "sandbox/driver.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "sandbox/conformance.h"
#include "util/crypto.h"
#include "util/log.h"

namespace wharf::sandbox {

namespace {

using model::ApiError;
using model::FieldError;
using model::Json;
using SteadyClock = std::chrono::steady_clock;

// A partner may answer with megabytes; the exchange log keeps thousands of entries, so each
// stored body is bounded.
constexpr size_t kMaxLoggedBody = 256 * 1024;
// state.webhooks keeps the finished deliveries for the inspector, but not forever.
constexpr size_t kMaxWebhookRecords = 1000;

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

// nlohmann's parser and destructor are iterative, but copying and dumping recurse: a partner
// answering with JSON nested a million levels deep must not overflow the stack, so such a
// body is kept as text instead of as JSON.
constexpr int kMaxDepth = 128;
bool too_deep(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
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

// ---------------------------------------------------------------------------------------
// Parameter checking: every problem is collected and reported at once, each naming the
// parameter, like the spec's 400 validation errors.

class Params {
 public:
  Params(const Json& params, std::string flow, std::initializer_list<std::string_view> allowed)
      : p_(params.is_null() ? Json::object() : params), flow_(std::move(flow)) {
    if (!p_.is_object()) {
      throw ApiError::validation("parameters of " + flow_ + " must be a JSON object",
                                 {{"params", "must be an object"}});
    }
    for (auto it = p_.begin(); it != p_.end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
        c_.add(it.key(), "is not a parameter of " + flow_);
    }
  }

  const Json& json() const { return p_; }
  bool has(std::string_view key) const { return p_.contains(key) && !p_.at(key).is_null(); }

  std::optional<std::string> str(std::string_view key, bool required) {
    return c_.string(p_, key, "", required, /*non_empty=*/true);
  }
  std::optional<bool> boolean(std::string_view key) {
    coerce(key, model::Kind::kBool);
    return c_.boolean(p_, key, "", false);
  }
  std::optional<std::string> one_of(std::string_view key, bool required,
                                    std::initializer_list<std::string_view> allowed) {
    return c_.one_of(p_, key, "", required, allowed);
  }
  const Json* object(std::string_view key, bool required) {
    coerce(key, model::Kind::kObject);
    return c_.get(p_, key, "", model::Kind::kObject, required);
  }
  const Json* array(std::string_view key, bool required) {
    coerce(key, model::Kind::kArray);
    return c_.get(p_, key, "", model::Kind::kArray, required);
  }
  // A JSON object or array parameter, either kind.
  const Json* structure(std::string_view key) {
    coerce(key, model::Kind::kObject);
    coerce(key, model::Kind::kArray);
    return has(key) ? &p_.at(key) : nullptr;
  }
  std::optional<double> number(std::string_view key, bool required) {
    coerce(key, model::Kind::kNumber);
    const Json* v = c_.get(p_, key, "", model::Kind::kNumber, required);
    if (!v) return std::nullopt;
    return v->get<double>();
  }
  std::optional<int64_t> integer(std::string_view key, bool required) {
    coerce(key, model::Kind::kInteger);
    const Json* v = c_.get(p_, key, "", model::Kind::kInteger, required);
    if (!v) return std::nullopt;
    return static_cast<int64_t>(v->get<double>());
  }
  std::vector<std::string> strings(std::string_view key, bool required, bool non_empty) {
    std::vector<std::string> out;
    const Json* v = array(key, required);
    if (!v) return out;
    if (non_empty && v->empty()) add(std::string(key), "must not be empty");
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& e = (*v)[i];
      if (!e.is_string() || e.get_ref<const std::string&>().empty())
        add(model::Checker::index(key, i), "must be a non-empty string");
      else
        out.push_back(e.get<std::string>());
    }
    return out;
  }
  void add(std::string key, std::string message) { c_.add(std::move(key), std::move(message)); }
  void done() const { c_.throw_if_failed("parameters of " + flow_); }

 private:
  // Parameters from the CLI arrive as text (`--amount 25.00`, `--metadata '{…}'`): the flow's
  // own type for a parameter decides what its text becomes, so a string parameter stays the
  // text as typed and a number or object is parsed. Text that does not fit is left for the
  // type check to refuse. JSON callers (the control API) pass typed values and are unaffected.
  void coerce(std::string_view key, model::Kind kind) {
    auto it = p_.find(key);
    if (it == p_.end() || !it->is_string()) return;
    const std::string& text = it->get_ref<const std::string&>();
    if (kind == model::Kind::kBool) {
      if (text == "true" || text == "false") *it = text == "true";
      return;
    }
    Json j = Json::parse(text, nullptr, false);
    if (!j.is_discarded() && model::is_kind(j, kind)) *it = std::move(j);
  }

  Json p_;
  std::string flow_;
  model::Checker c_;
};

ApiError no_installation(const std::string& icfg) {
  return ApiError(404, "not_found", "no installation " + icfg + " in the sandbox",
                  {{"installationId", "is not an installation of the sandbox"}});
}

// One outbound Partner API request.
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

// The running result of one flow: every exchange and finding, the primary call's answer.
struct Outcome {
  Json out = Json::object();
  std::vector<int64_t> exchanges;
  std::vector<std::string> findings;

  // The flow's main call: its status and body become the result's.
  void primary(const CallResult& r) {
    out["ok"] = r.ok();
    out["status"] = r.status;
    out["response"] = r.response;
    if (!r.error.empty()) out["error"] = r.error;
    add(r, "");
  }
  // A follow-up call Vercel makes on its own (e.g. Get Resource after Provision): its
  // findings are prefixed with the endpoint so they are told apart.
  void follow_up(const std::string& key, const std::string& endpoint, const CallResult& r) {
    out[key] = {{"ok", r.ok()}, {"status", r.status}, {"response", r.response}};
    if (!r.error.empty()) out[key]["error"] = r.error;
    add(r, endpoint + ": ");
  }
  void add(const CallResult& r, const std::string& prefix) {
    exchanges.push_back(r.exchange_id);
    for (const auto& f : r.findings) findings.push_back(prefix + f);
  }
  Json finish() {
    if (!out.contains("ok")) out["ok"] = true;
    if (!out.contains("status")) out["status"] = nullptr;
    if (!out.contains("response")) out["response"] = nullptr;
    out["exchanges"] = exchanges;
    out["findings"] = findings;
    return std::move(out);
  }
};

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

}  // namespace

struct Driver::Impl {
  explicit Impl(Context& c) : ctx(c) {}

  Context& ctx;

  // Webhook retries and the finalization window run on one background thread.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Delivery> queue;
  bool stopping = false;
  bool clock_moved = false;  // look at due times and the finalization window again now
  std::thread worker;

  // ---- small helpers ------------------------------------------------------------------

  std::string now_iso() const { return util::format_iso8601_ms(ctx.clock.now_ms()); }

  std::string partner_base() const {
    std::string base = ctx.config.partner_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (base.empty()) throw ApiError(409, "conflict", "the sandbox has no partner URL configured");
    return base;
  }
  std::string webhook_url() const {
    if (!ctx.config.webhook_url.empty()) return ctx.config.webhook_url;
    return partner_base() + "/webhooks/vercel";
  }
  std::string redirect_login_url() const {
    if (!ctx.config.redirect_login_url.empty()) return ctx.config.redirect_login_url;
    return partner_base() + "/sso/callback";
  }

  Json installation(const std::string& icfg) const {
    return ctx.state.read([&](const Json& doc) -> Json {
      const Json* all = member(doc, "installations");
      const Json* inst = all ? member(*all, icfg) : nullptr;
      return inst ? *inst : Json();
    });
  }

  Json resource(const std::string& icfg, const std::string& rid) const {
    return ctx.state.read([&](const Json& doc) -> Json {
      const Json* all = member(doc, "resources");
      const Json* in = all ? member(*all, icfg) : nullptr;
      const Json* r = in ? member(*in, rid) : nullptr;
      return r ? *r : Json();
    });
  }

  // The installation a flow acts on. `active` flows are the ones a user starts in Vercel's
  // UI, which Vercel offers only for a live installation; background reads are also made
  // while deletion is pending. A finalized installation is gone for Vercel.
  Json require_installation(const std::string& icfg, bool active) const {
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

  static ConformanceOptions conformance_for(const Json& inst) {
    ConformanceOptions o;
    const Json* plan = member(inst, "billingPlan");
    o.installation_billing = plan && plan->is_object();
    return o;
  }

  // The user a user-auth call is made as: `userHex` if given, else a member with `role`, else
  // the installer. Asking for role USER when the team has no such member adds one (a
  // Billing/Viewer member), so read-only behaviour can be tested without setup.
  UserIdentity pick_user(const std::string& icfg, const Json& inst,
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
        ctx.state.mutate([&](Json& doc) { doc["installations"][icfg]["users"][chosen] = u; });
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

  std::string user_token(const std::string& icfg, const UserIdentity& u) const {
    return ctx.identity.user_token(icfg, u);
  }
  std::string system_token(const std::string& icfg, const Json& inst) const {
    std::string hex = str_member(inst, "accountHex");
    return ctx.identity.system_token(icfg,
                                     hex.empty() ? std::nullopt : std::optional<std::string>(hex));
  }

  // Auth for endpoints that take either mode (`auth` param, default `def`).
  std::pair<std::string, std::string> auth_for(Params& a, const std::string& icfg, const Json& inst,
                                               const std::string& def) {
    std::string mode = a.one_of("auth", false, {"user", "system"}).value_or(def);
    auto user_hex = a.str("userHex", false);
    auto role = a.one_of("role", false, {"ADMIN", "USER"});
    a.done();
    if (mode == "system") return {mode, system_token(icfg, inst)};
    return {mode, user_token(icfg, pick_user(icfg, inst, user_hex, role))};
  }

  static std::string idempotency_key(const Json& params) {
    const Json* k = member(params, "idempotencyKey");
    return k && k->is_string() && !k->get_ref<const std::string&>().empty() ? k->get<std::string>()
                                                                            : new_uuid();
  }

  // ---- the HTTP exchange ---------------------------------------------------------------

  CallResult call(const CallSpec& s) {
    std::string url = partner_base() + s.path;
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer " + s.token}, {"X-Vercel-Auth", s.auth}, {"Accept", s.accept}};
    if (!s.idempotency_key.empty()) headers.emplace_back("Idempotency-Key", s.idempotency_key);
    std::string body;
    if (s.body) {
      body = dump(*s.body);
      headers.emplace_back("Content-Type", "application/json");
    }

    auto started = SteadyClock::now();
    net::HttpResult res = ctx.http.request(s.method, url, headers, body);
    double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();

    CallResult r;
    r.status = res.status;
    r.error = res.error;
    for (const auto& [name, value] : res.headers)
      if (name == "content-type") r.content_type = value;
    if (!res.error.empty())
      r.findings.push_back("transport: " + res.error);
    else
      r.findings =
          check_partner_response(s.endpoint, res.status, r.content_type, res.body, s.conformance);
    r.response = parse_body(r.content_type, res.body);

    Exchange e;
    e.at_ms = ctx.clock.now_ms();
    e.direction = "to-partner";
    e.flow = s.flow;
    e.method = s.method;
    e.url = url;
    for (const auto& [name, value] : headers)
      e.request_headers[name] = ExchangeLog::redact_header(name, value);
    e.request_body = body;
    e.status = res.status;
    e.response_body = clip(res.body);
    e.error = res.error;
    e.duration_ms = ms;
    e.findings = r.findings;
    r.exchange_id = ctx.log.add(std::move(e));
    return r;
  }

  static Json parse_body(const std::string& content_type, const std::string& body) {
    if (body.find_first_not_of(" \t\r\n") == std::string::npos) return nullptr;
    if (too_deep(body)) return safe_string(clip(body));
    if (net::media_type(content_type) == "application/jsonl") {
      Json lines = Json::array();
      size_t start = 0;
      while (start < body.size()) {
        size_t end = body.find('\n', start);
        if (end == std::string::npos) end = body.size();
        std::string line = body.substr(start, end - start);
        start = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        Json v = Json::parse(line, nullptr, false);
        lines.push_back(v.is_discarded() ? safe_string(line) : v);
      }
      return lines;
    }
    Json v = Json::parse(body, nullptr, false);
    return v.is_discarded() ? safe_string(clip(body)) : v;
  }

  // ---- state updates from partner answers ------------------------------------------------

  // Copies the Resource fields Vercel keeps from a Get/Update Resource answer.
  static void apply_resource(Json& rec, const Json& body, const std::string& now) {
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

  static Json valid_secrets(const Json& list) {
    Json out = Json::array();
    if (!list.is_array()) return out;
    for (const auto& s : list)
      if (s.is_object() && member(s, "name") && s["name"].is_string() && member(s, "value") &&
          s["value"].is_string())
        out.push_back(s);
    return out;
  }

  static void apply_installation_state(Json& inst, const Json& body) {
    if (!body.is_object()) return;
    // InstallationState: an absent billingPlan means resource-level billing; notification
    // null clears, absent leaves the current one (partner-api.md §4.13).
    const Json* plan = member(body, "billingPlan");
    inst["billingPlan"] = plan && plan->is_object() ? *plan : Json();
    if (const Json* n = member(body, "notification"); n && (n->is_null() || n->is_object()))
      inst["notification"] = *n;
  }

  CallResult get_resource_call(const std::string& flow, const std::string& icfg,
                               const std::string& rid, const Json& inst) {
    CallSpec s{flow,
               "get-resource",
               "GET",
               "/v1/installations/" + pct_encode(icfg) + "/resources/" + pct_encode(rid),
               "system",
               system_token(icfg, inst),
               std::nullopt,
               "",
               "application/json",
               conformance_for(inst)};
    CallResult r = call(s);
    if (r.ok() && r.response.is_object()) {
      std::string now = now_iso();
      ctx.state.mutate([&](Json& doc) {
        Json& in = doc["resources"][icfg];
        if (!in.is_object() || !in.contains(rid)) return;
        apply_resource(in[rid], r.response, now);
      });
    }
    return r;
  }

  CallResult get_installation_call(const std::string& flow, const std::string& icfg,
                                   const Json& inst) {
    CallSpec s{flow,
               "get-installation",
               "GET",
               "/v1/installations/" + pct_encode(icfg),
               "system",
               system_token(icfg, inst),
               std::nullopt,
               "",
               "application/json",
               conformance_for(inst)};
    CallResult r = call(s);
    if (r.ok() && r.response.is_object()) {
      ctx.state.mutate([&](Json& doc) {
        Json& all = doc["installations"];
        if (all.is_object() && all.contains(icfg)) apply_installation_state(all[icfg], r.response);
      });
    }
    return r;
  }

  // ---- flows ---------------------------------------------------------------------------

  Json install(const Json& params) {
    Params a(params, "install",
             {"installationId", "team", "accountHex", "user", "member", "scopes", "policies",
              "idempotencyKey"});
    auto icfg_param = a.str("installationId", false);
    if (icfg_param && (icfg_param->rfind("icfg_", 0) != 0 || !is_alnum(icfg_param->substr(5))))
      a.add("installationId", "must look like icfg_ followed by letters and digits");
    auto team = a.str("team", false);
    auto account_hex_param = a.str("accountHex", false);
    if (account_hex_param && !is_hex(*account_hex_param))
      a.add("accountHex", "must be hexadecimal (it forms the token's sub)");
    Json user = Json::object(), extra_member;
    // `user` (the installer) and `member` (an extra team member) share one shape.
    auto person = [&a](const std::string& key, Json* into) {
      const Json* p = a.object(key, false);
      if (!p) return;
      model::Checker c;
      c.string(*p, "name", key, false);
      c.string(*p, "email", key, false);
      c.one_of(*p, "role", key, false, {"ADMIN", "USER"});
      if (auto hex = c.string(*p, "userHex", key, false); hex && !is_hex(*hex))
        c.add(key + ".userHex", "must be hexadecimal");
      for (const auto& e : c.errors()) a.add(e.key, e.message);
      *into = *p;
    };
    person("user", &user);
    person("member", &extra_member);
    std::vector<std::string> scopes = a.strings("scopes", false, true);
    if (!a.has("scopes"))
      scopes = {"read:integration-configuration", "read-write:integration-resource"};
    std::string now = now_iso();
    Json policies = {{"toc", now}};
    if (const Json* given = a.structure("policies")) {
      const Json& pol = *given;
      policies = Json::object();
      if (pol.is_array()) {
        for (size_t i = 0; i < pol.size(); ++i) {
          if (pol[i].is_string() && !pol[i].get_ref<const std::string&>().empty())
            policies[pol[i].get<std::string>()] = now;
          else
            a.add(model::Checker::index("policies", i), "must be a policy id");
        }
      } else if (pol.is_object()) {
        for (auto it = pol.begin(); it != pol.end(); ++it) {
          int64_t ms = 0;
          if (!it.value().is_string() || !util::parse_iso8601(it.value().get<std::string>(), &ms))
            a.add("policies." + it.key(), "must be an ISO-8601 acceptance time");
          else
            policies[it.key()] = it.value();
        }
      } else {
        a.add("policies", "must be an array of policy ids or an object of id -> ISO time");
      }
    }
    a.done();

    std::string icfg = icfg_param.value_or("icfg_" + random_alnum(24));
    std::string key = idempotency_key(params);

    // Create (or, for a retry/re-upsert, refresh) the installation before calling the
    // partner: Vercel holds it while the partner may already call the Vercel API with the
    // token it is being handed.
    struct Prepared {
      Json inst;
      bool existed;
      std::string previous_status;
    };
    Prepared prep = ctx.state.mutate([&](Json& doc) -> Prepared {
      Json& all = doc["installations"];
      if (!all.is_object()) all = Json::object();
      bool existed = all.contains(icfg);
      std::string previous = existed ? str_member(all[icfg], "status") : "";
      if (previous == "pending_deletion" || previous == "finalized")
        throw ApiError(409, "conflict",
                       "installation " + icfg + " was uninstalled; a reinstall gets a new id",
                       {{"installationId", "was uninstalled (" + previous + ")"}});
      std::string hex = account_hex_param.value_or(existed ? str_member(all[icfg], "accountHex")
                                                           : random_hex(12));
      // Vercel allows one native installation of an integration per team.
      for (auto it = all.begin(); it != all.end(); ++it) {
        if (it.key() == icfg) continue;
        std::string st = str_member(it.value(), "status");
        if (str_member(it.value(), "accountHex") == hex && st != "finalized" &&
            st != "install_failed")
          throw ApiError(409, "conflict",
                         "team team_" + hex + " already has installation " + it.key(),
                         {{"accountHex", "already has installation " + it.key()}});
      }
      Json inst = existed ? all[icfg] : Json::object();
      inst["id"] = icfg;
      inst["accountHex"] = hex;
      inst["accountId"] = "team_" + hex;
      if (!inst.contains("accessTokens") || !inst["accessTokens"].is_array() ||
          inst["accessTokens"].empty())
        inst["accessTokens"] = Json::array({"vat_" + util::random_token(24)});
      if (!inst.contains("tokenRotations")) inst["tokenRotations"] = Json::array();
      if (!inst.contains("users") || !inst["users"].is_object()) inst["users"] = Json::object();
      std::string installer = str_member(user, "userHex");
      if (installer.empty()) installer = str_member(inst, "installedBy");
      if (installer.empty()) installer = random_hex(12);
      Json& urec = inst["users"][installer];
      if (!urec.is_object()) urec = Json::object();
      urec["role"] = user.value("role", urec.value("role", std::string("ADMIN")));
      urec["email"] = user.value("email", urec.value("email", std::string("admin@example.com")));
      urec["name"] = user.value("name", urec.value("name", std::string("Sandbox Admin")));
      inst["installedBy"] = installer;
      if (extra_member.is_object()) {
        std::string mhex = str_member(extra_member, "userHex");
        if (mhex.empty()) mhex = random_hex(12);
        inst["users"][mhex] = {
            {"role", extra_member.value("role", std::string("USER"))},
            {"email", extra_member.value("email", std::string("viewer@example.com"))},
            {"name", extra_member.value("name", std::string("Sandbox Viewer"))}};
      }
      std::string team_name = team.value_or(str_member(inst.value("account", Json()), "name"));
      if (team_name.empty()) team_name = "Sandbox Team";
      std::string slug;
      for (char ch : team_name)
        slug += std::isalnum(static_cast<unsigned char>(ch))
                    ? static_cast<char>(std::tolower(static_cast<unsigned char>(ch)))
                    : '-';
      inst["account"] = {{"name", team_name},
                         {"url", "https://vercel.com/" + slug + "/~/integrations/" +
                                     ctx.config.url_slug + "/" + icfg},
                         {"contact", {{"email", urec["email"]}, {"name", urec["name"]}}}};
      inst["scopes"] = scopes;
      inst["acceptedPolicies"] = policies;
      if (!inst.contains("billingPlan")) inst["billingPlan"] = nullptr;
      if (!inst.contains("notification")) inst["notification"] = nullptr;
      if (!inst.contains("externalId")) inst["externalId"] = nullptr;
      if (!inst.contains("createdAt")) inst["createdAt"] = now;
      inst["status"] = "active";
      all[icfg] = inst;
      return Prepared{inst, existed, previous};
    });

    const Json& inst = prep.inst;
    UserIdentity installer = pick_user(icfg, inst, str_member(inst, "installedBy"), std::nullopt);
    Json body = {
        {"scopes", inst["scopes"]},
        {"acceptedPolicies", inst["acceptedPolicies"]},
        {"credentials", {{"access_token", inst["accessTokens"].back()}, {"token_type", "Bearer"}}},
        {"account", inst["account"]}};
    CallResult r = call(
        {"install", "upsert-installation", "PUT", "/v1/installations/" + pct_encode(icfg), "user",
         user_token(icfg, installer), body, key, "application/json", conformance_for(inst)});
    // A re-upsert of a working installation that fails leaves it working; a first install
    // (or a retry of a failed one) that fails is kept as failed so it can be retried.
    bool keep_active = prep.existed && prep.previous_status == "active";
    ctx.state.mutate([&](Json& doc) {
      Json& rec = doc["installations"][icfg];
      if (r.ok()) {
        rec["status"] = "active";
        apply_installation_state_if_body(rec, r.response);
      } else if (!keep_active) {
        rec["status"] = "install_failed";
      }
    });

    Outcome o;
    o.primary(r);
    o.out["installationId"] = icfg;
    o.out["accountId"] = inst["accountId"];
    o.out["userHex"] = installer.user_hex;
    o.out["idempotencyKey"] = key;
    o.out["installation"] = installation(icfg);
    return o.finish();
  }

  static void apply_installation_state_if_body(Json& rec, const Json& body) {
    if (body.is_object()) apply_installation_state(rec, body);
  }

  Json plans(const Json& params) {
    Params a(params, "plans", {"installationId", "productId", "resourceId", "metadata"});
    auto icfg = a.str("installationId", false);
    auto product = a.str("productId", false);
    auto rid = a.str("resourceId", false);
    const Json* metadata = a.object("metadata", false);
    if (!icfg && !product) a.add("installationId", "installationId or productId is required");
    if (rid && !icfg) a.add("installationId", "is required with resourceId");
    if (rid && product) a.add("productId", "cannot be combined with resourceId");
    a.done();

    std::string query = metadata ? "?metadata=" + pct_encode(dump(*metadata)) : "";
    CallSpec s;
    s.flow = "plans";
    s.method = "GET";
    s.auth = "system";
    Json inst;
    if (icfg) {
      inst = require_installation(*icfg, false);
      s.token = system_token(*icfg, inst);
      s.conformance = conformance_for(inst);
    } else {
      // Before any installation exists Vercel's token is incomplete (§5.12).
      s.token = ctx.identity.system_token(std::nullopt, std::nullopt);
    }
    if (product) {
      s.endpoint = "product-plans";
      s.path = "/v1/products/" + pct_encode(*product) + "/plans" + query;
    } else if (rid) {
      s.endpoint = "resource-plans";
      s.path = "/v1/installations/" + pct_encode(*icfg) + "/resources/" + pct_encode(*rid) +
               "/plans" + query;
    } else {
      s.endpoint = "installation-plans";
      s.path = "/v1/installations/" + pct_encode(*icfg) + "/plans" + query;
    }
    Outcome o;
    o.primary(call(s));
    o.out["endpoint"] = s.endpoint;
    return o.finish();
  }

  Json provision(const Json& params) {
    Params a(params, "provision",
             {"installationId", "productId", "name", "metadata", "billingPlanId", "externalId",
              "protocolSettings", "role", "userHex", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto product = a.str("productId", true);
    auto name = a.str("name", true);
    const Json* metadata = a.object("metadata", false);
    auto plan = a.str("billingPlanId", true);
    auto external = a.str("externalId", false);
    const Json* protocol = a.object("protocolSettings", false);
    auto role = a.one_of("role", false, {"ADMIN", "USER"});
    auto user_hex = a.str("userHex", false);
    a.done();
    Json inst = require_installation(*icfg, true);
    UserIdentity user = pick_user(*icfg, inst, user_hex, role);

    Json body = {{"productId", *product},
                 {"name", *name},
                 {"metadata", metadata ? *metadata : Json::object()},
                 {"billingPlanId", *plan}};
    if (external) body["externalId"] = *external;
    if (protocol) body["protocolSettings"] = *protocol;
    std::string key = idempotency_key(params);
    CallResult r =
        call({"provision", "provision-resource", "POST",
              "/v1/installations/" + pct_encode(*icfg) + "/resources", "user",
              user_token(*icfg, user), body, key, "application/json", conformance_for(inst)});
    Outcome o;
    o.primary(r);
    o.out["idempotencyKey"] = key;
    if (!r.ok()) return o.finish();

    const Json* id = member(r.response, "id");
    if (!id || !id->is_string() || id->get_ref<const std::string&>().empty()) {
      o.out["ok"] = false;
      o.out["error"] = "the partner's answer has no resource id; nothing was stored";
      return o.finish();
    }
    std::string rid = id->get<std::string>();
    std::string now = now_iso();
    std::string internal = ctx.state.mutate([&](Json& doc) {
      Json& in = doc["resources"][*icfg];
      Json rec = in.is_object() && in.contains(rid) ? in[rid] : Json::object();
      // A replayed provision (same Idempotency-Key) returns the same resource: keep the
      // identity Vercel already gave it.
      if (!rec.contains("internalId")) rec["internalId"] = "ir_" + random_alnum(24);
      if (!rec.contains("createdAt")) rec["createdAt"] = now;
      rec["id"] = rid;
      rec["productId"] = *product;
      rec["name"] = *name;
      rec["metadata"] = body["metadata"];
      rec["status"] = "pending";
      apply_resource(rec, r.response, now);
      rec["secrets"] = valid_secrets(r.response.value("secrets", Json()));
      rec["ownership"] = "owned";
      rec["deleted"] = false;
      if (external) rec["externalId"] = *external;
      in[rid] = rec;
      return rec["internalId"].get<std::string>();
    });
    o.out["resourceId"] = rid;
    o.out["internalId"] = internal;
    // Like Vercel, read the resource back right away (partner-api.md §8 step 3).
    o.follow_up("getResource", "get-resource", get_resource_call("provision", *icfg, rid, inst));
    o.out["resource"] = resource(*icfg, rid);
    return o.finish();
  }

  Json get_resource(const Json& params) {
    Params a(params, "get-resource", {"installationId", "resourceId"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", true);
    a.done();
    return refresh_resource_flow("get-resource", *icfg, *rid);
  }

  Json refresh_resource_flow(const std::string& flow, const std::string& icfg,
                             const std::string& rid) {
    Json inst = require_installation(icfg, false);
    Outcome o;
    o.primary(get_resource_call(flow, icfg, rid, inst));
    o.out["resource"] = resource(icfg, rid);
    return o.finish();
  }

  Json refresh_installation_flow(const std::string& flow, const std::string& icfg) {
    Json inst = require_installation(icfg, false);
    Outcome o;
    o.primary(get_installation_call(flow, icfg, inst));
    o.out["installation"] = installation(icfg);
    return o.finish();
  }

  Json list_resources(const Json& params) {
    Params a(params, "list-resources", {"installationId", "ids"});
    auto icfg = a.str("installationId", true);
    std::vector<std::string> ids = a.strings("ids", false, false);
    a.done();
    Json inst = require_installation(*icfg, false);
    std::string query;
    for (const auto& id : ids) query += (query.empty() ? "?ids=" : "&ids=") + pct_encode(id);
    Outcome o;
    o.primary(call({"list-resources", "list-resources", "GET",
                    "/v1/installations/" + pct_encode(*icfg) + "/resources" + query, "system",
                    system_token(*icfg, inst), std::nullopt, "", "application/json",
                    conformance_for(inst)}));
    return o.finish();
  }

  Json update_resource(const Json& params) {
    Params a(params, "update-resource",
             {"installationId", "resourceId", "name", "metadata", "billingPlanId", "status",
              "protocolSettings", "role", "userHex", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", true);
    Json body = Json::object();
    if (auto v = a.str("name", false)) body["name"] = *v;
    if (const Json* v = a.object("metadata", false)) body["metadata"] = *v;
    if (auto v = a.str("billingPlanId", false)) body["billingPlanId"] = *v;
    if (auto v = a.one_of(
            "status", false,
            {"ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"}))
      body["status"] = *v;
    if (const Json* v = a.object("protocolSettings", false)) body["protocolSettings"] = *v;
    auto role = a.one_of("role", false, {"ADMIN", "USER"});
    auto user_hex = a.str("userHex", false);
    a.done();
    return patch_resource("update-resource", *icfg, *rid, body, role, user_hex, params);
  }

  Json patch_resource(const std::string& flow, const std::string& icfg, const std::string& rid,
                      const Json& body, const std::optional<std::string>& role,
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
      ctx.state.mutate([&](Json& doc) {
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

  Json delete_resource(const Json& params) {
    Params a(params, "delete-resource",
             {"installationId", "resourceId", "auth", "role", "userHex", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", true);
    if (!icfg || !rid) a.done();
    Json inst = require_installation(*icfg, false);
    auto auth = auth_for(a, *icfg, inst, "user");
    const std::string& mode = auth.first;
    const std::string& token = auth.second;
    std::string key = idempotency_key(params);
    CallResult r =
        call({"delete-resource", "delete-resource", "DELETE",
              "/v1/installations/" + pct_encode(*icfg) + "/resources/" + pct_encode(*rid), mode,
              token, std::nullopt, key, "application/json", conformance_for(inst)});
    if (r.ok()) {
      std::string now = now_iso();
      ctx.state.mutate([&](Json& doc) {
        Json& in = doc["resources"][*icfg];
        if (!in.is_object() || !in.contains(*rid)) return;
        in[*rid]["deleted"] = true;
        in[*rid]["status"] = "uninstalled";
        in[*rid]["deletedAt"] = now;
        in[*rid]["updatedAt"] = now;
      });
    }
    Outcome o;
    o.primary(r);
    o.out["auth"] = mode;
    o.out["idempotencyKey"] = key;
    return o.finish();
  }

  Json repl(const Json& params) {
    Params a(params, "repl",
             {"installationId", "resourceId", "input", "readOnly", "stream", "role", "userHex",
              "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", true);
    // An empty command is still a command (the console may send it); only the type matters.
    model::Checker c;
    auto input = c.string(a.json(), "input", "", true);
    for (const auto& e : c.errors()) a.add(e.key, e.message);
    auto read_only = a.boolean("readOnly");
    bool stream = a.boolean("stream").value_or(false);
    auto role = a.one_of("role", false, {"ADMIN", "USER"});
    auto user_hex = a.str("userHex", false);
    a.done();
    Json inst = require_installation(*icfg, true);
    UserIdentity user = pick_user(*icfg, inst, user_hex, role);
    Json body = {{"input", *input}};
    // Vercel marks the console read-only for USER members (§5.11); an explicit value wins.
    body["readOnly"] = read_only.value_or(user.role == "USER");
    std::string key = idempotency_key(params);
    Outcome o;
    o.primary(
        call({"repl", "repl", "POST",
              "/v1/installations/" + pct_encode(*icfg) + "/resources/" + pct_encode(*rid) + "/repl",
              "user", user_token(*icfg, user), body, key,
              stream ? "application/jsonl" : "application/json", conformance_for(inst)}));
    o.out["idempotencyKey"] = key;
    return o.finish();
  }

  Json rotate_secrets(const Json& params) {
    Params a(params, "rotate-secrets",
             {"installationId", "resourceId", "reason", "delayOldSecretsExpirationHours", "auth",
              "role", "userHex", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", true);
    auto reason = a.str("reason", false);
    auto delay = a.number("delayOldSecretsExpirationHours", false);
    if (delay && (*delay < 0 || *delay > 720))
      a.add("delayOldSecretsExpirationHours", "must be between 0 and 720");
    if (!icfg || !rid) a.done();
    Json inst = require_installation(*icfg, true);
    auto auth = auth_for(a, *icfg, inst, "user");
    const std::string& mode = auth.first;
    const std::string& token = auth.second;
    Json body = Json::object();
    if (reason) body["reason"] = *reason;
    if (delay) body["delayOldSecretsExpirationHours"] = a.json()["delayOldSecretsExpirationHours"];
    std::string key = idempotency_key(params);
    // The partner may push the new secrets (async rotation) before its 202 reaches us.
    int64_t version_before = ctx.state.read([&](const Json& doc) -> int64_t {
      auto r = doc.value("/resources"_json_pointer / *icfg / *rid / "secretsVersion", Json(0));
      return r.is_number_integer() ? r.get<int64_t>() : 0;
    });
    CallResult r = call({"rotate-secrets", "rotate-secrets", "POST",
                         "/v1/installations/" + pct_encode(*icfg) + "/resources/" +
                             pct_encode(*rid) + "/secrets/rotate",
                         mode, token, body, key, "application/json", conformance_for(inst)});
    Outcome o;
    o.primary(r);
    o.out["auth"] = mode;
    o.out["idempotencyKey"] = key;
    if (!r.ok() || !r.response.is_object()) return o.finish();
    std::string now = now_iso();
    const Json* sync = member(r.response, "sync");
    bool is_sync = r.status == 200 && sync && sync->is_boolean() && sync->get<bool>();
    ctx.state.mutate([&](Json& doc) {
      Json& in = doc["resources"][*icfg];
      if (!in.is_object() || !in.contains(*rid)) return;
      Json& rec = in[*rid];
      if (is_sync) {
        Json fresh = valid_secrets(r.response.value("secrets", Json()));
        const Json* partial = member(r.response, "partial");
        if (partial && partial->is_boolean() && partial->get<bool>() && rec["secrets"].is_array()) {
          // partial: only the listed secrets changed; the rest stay.
          Json merged = rec["secrets"];
          for (const auto& s : fresh) {
            bool replaced = false;
            for (auto& old : merged)
              if (old.is_object() && str_member(old, "name") == str_member(s, "name")) {
                old = s;
                replaced = true;
              }
            if (!replaced) merged.push_back(s);
          }
          rec["secrets"] = merged;
        } else {
          rec["secrets"] = fresh;
        }
        rec["secretsRotatedAt"] = now;
        rec["rotationPending"] = false;
      } else if (rec.value("secretsVersion", int64_t{0}) > version_before) {
        // The partner already PUT the new secrets while answering: the rotation is done.
        rec["rotationPending"] = false;
        rec["secretsRotatedAt"] = now;
        rec["rotationRequestedAt"] = now;
      } else {
        // The partner will PUT the new secrets to the sandbox's Vercel API later.
        rec["rotationPending"] = true;
        rec["rotationRequestedAt"] = now;
      }
      rec["updatedAt"] = now;
    });
    o.out["sync"] = is_sync;
    o.out["resource"] = resource(*icfg, *rid);
    return o.finish();
  }

  Json change_plan(const Json& params) {
    Params a(
        params, "change-plan",
        {"installationId", "resourceId", "billingPlanId", "role", "userHex", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", false);
    auto plan = a.str("billingPlanId", true);
    auto role = a.one_of("role", false, {"ADMIN", "USER"});
    auto user_hex = a.str("userHex", false);
    a.done();
    if (rid)
      return patch_resource("change-plan", *icfg, *rid, Json{{"billingPlanId", *plan}}, role,
                            user_hex, params);

    Json inst = require_installation(*icfg, true);
    UserIdentity user = pick_user(*icfg, inst, user_hex, role);
    std::string key = idempotency_key(params);
    CallResult r =
        call({"change-plan", "update-installation", "PATCH",
              "/v1/installations/" + pct_encode(*icfg), "user", user_token(*icfg, user),
              Json{{"billingPlanId", *plan}}, key, "application/json", conformance_for(inst)});
    Outcome o;
    o.primary(r);
    o.out["idempotencyKey"] = key;
    if (r.ok() && r.response.is_object()) {
      ctx.state.mutate(
          [&](Json& doc) { apply_installation_state(doc["installations"][*icfg], r.response); });
    } else if (r.ok()) {
      // 204 says nothing about the new plan: read it back as Vercel would.
      o.follow_up("getInstallation", "get-installation",
                  get_installation_call("change-plan", *icfg, inst));
    }
    o.out["installation"] = installation(*icfg);
    return o.finish();
  }

  Json get_installation(const Json& params) {
    Params a(params, "get-installation", {"installationId"});
    auto icfg = a.str("installationId", true);
    a.done();
    return refresh_installation_flow("get-installation", *icfg);
  }

  Json purchase(const Json& params) {
    Params a(params, "purchase",
             {"installationId", "resourceId", "amount", "planId", "auth", "role", "userHex",
              "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto rid = a.str("resourceId", false);
    auto amount = a.str("amount", false);
    if (!a.has("amount"))
      a.add("amount", "is required");
    else if (amount && (!model::is_decimal_string(*amount) ||
                        amount->find_first_not_of("0.") == std::string::npos))
      a.add("amount", "must be a positive decimal USD amount such as \"25.00\"");
    auto plan_param = a.str("planId", false);
    if (!icfg || !amount) a.done();
    Json inst = require_installation(*icfg, true);
    Json res;
    if (rid) {
      res = resource(*icfg, *rid);
      if (!res.is_object() || res.value("deleted", false))
        a.add("resourceId", "is not a resource of the installation");
    }
    std::string plan = plan_param.value_or("");
    if (plan.empty() && res.is_object()) plan = str_member(res.value("billingPlan", Json()), "id");
    if (plan.empty()) plan = str_member(inst.value("billingPlan", Json()), "id");
    if (plan.empty()) a.add("planId", "is required (no plan is known for the purchase)");
    auto auth = auth_for(a, *icfg, inst, "user");
    const std::string& mode = auth.first;
    const std::string& token = auth.second;

    // Like Vercel: the purchase is invoiced and paid first; the partner then verifies the
    // invoice through Get Invoice before crediting it.
    std::string now = now_iso();
    std::string invoice_id = "mi_" + random_alnum(24);
    Json item = {{"billingPlanId", plan}, {"name", "Credits"}, {"price", *amount},
                 {"quantity", 1},         {"units", "credit"}, {"total", *amount}};
    if (rid) item["resourceId"] = *rid;
    Json invoice = {{"invoiceId", invoice_id},
                    {"test", false},
                    {"state", "paid"},
                    {"invoiceDate", now},
                    {"period", {{"start", now}, {"end", now}}},
                    {"paidAt", now},
                    {"items", Json::array({item})},
                    {"total", *amount},
                    {"created", now},
                    {"updated", now}};
    ctx.state.mutate([&](Json& doc) {
      Json& mine = doc["invoices"][*icfg];
      invoice["invoiceNumber"] = "SBX-" + std::to_string(mine.is_object() ? mine.size() + 1 : 1);
      mine[invoice_id] = invoice;
    });

    std::string key = idempotency_key(params);
    CallResult r =
        call({"purchase", "provision-purchase", "POST",
              "/v1/installations/" + pct_encode(*icfg) + "/billing/provision", mode, token,
              Json{{"invoiceId", invoice_id}}, key, "application/json", conformance_for(inst)});
    // The answer carries the up-to-date balances; as with Submit Prepayment Balances the
    // newest timestamp wins.
    if (r.ok() && r.response.is_object() && member(r.response, "balances") &&
        r.response["balances"].is_array()) {
      int64_t ts = 0;
      if (util::parse_iso8601(str_member(r.response, "timestamp"), &ts)) {
        ctx.state.mutate([&](Json& doc) {
          Json& b = doc["balances"][*icfg];
          int64_t old_ts = 0;
          if (b.is_object() && util::parse_iso8601(str_member(b, "timestamp"), &old_ts) &&
              old_ts > ts)
            return;
          b = {{"timestamp", r.response["timestamp"]}, {"balances", r.response["balances"]}};
        });
      }
    }
    Outcome o;
    o.primary(r);
    o.out["auth"] = mode;
    o.out["idempotencyKey"] = key;
    o.out["invoiceId"] = invoice_id;
    o.out["invoice"] = invoice;
    return o.finish();
  }

  Json transfer_create(const Json& params) {
    Params a(params, "transfer-create",
             {"installationId", "resourceIds", "expiresAt", "legacy", "claimId", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    std::vector<std::string> ids = a.strings("resourceIds", true, true);
    auto expires = a.integer("expiresAt", false);
    bool legacy = a.boolean("legacy").value_or(false);
    auto claim_param = a.str("claimId", false);
    if (claim_param && !legacy) a.add("claimId", "is only sent with the legacy shape");
    if (!icfg) a.done();
    Json inst = require_installation(*icfg, true);
    for (size_t i = 0; i < ids.size(); ++i) {
      Json res = resource(*icfg, ids[i]);
      if (!res.is_object() || res.value("deleted", false))
        a.add(model::Checker::index("resourceIds", i), "is not a resource of the installation");
    }
    a.done();
    int64_t expires_at = expires.value_or(ctx.clock.now_ms() + 24LL * 3600 * 1000);
    std::string key = idempotency_key(params);

    CallSpec s{"transfer-create",
               "transfer-create",
               "POST",
               "/v1/installations/" + pct_encode(*icfg) + "/resource-transfer-requests",
               "system",
               system_token(*icfg, inst),
               Json{{"resourceIds", ids}, {"expiresAt", expires_at}},
               key,
               "application/json",
               conformance_for(inst)};
    std::string transfer_id;
    if (legacy) {
      // Legacy shape: Vercel picks the id and PUTs the request under it (§5.16).
      transfer_id = "tr_" + random_alnum(24);
      s.endpoint = "transfer-create-legacy";
      s.method = "PUT";
      s.path += "/" + pct_encode(transfer_id);
      s.body = Json{{"resourceIds", ids}, {"expiration", expires_at}};
      if (claim_param) (*s.body)["claimId"] = *claim_param;
    }
    CallResult r = call(s);
    Outcome o;
    o.primary(r);
    o.out["idempotencyKey"] = key;
    if (!r.ok()) return o.finish();
    std::string claim = legacy ? transfer_id : str_member(r.response, "providerClaimId");
    if (claim.empty()) {
      o.out["ok"] = false;
      o.out["error"] = "the partner's answer has no providerClaimId; nothing was recorded";
      return o.finish();
    }
    Json rec = {{"claimId", claim},
                {"legacy", legacy},
                {"sourceInstallationId", *icfg},
                {"resourceIds", ids},
                {"expiresAt", expires_at},
                {"status", "created"},
                {"verifiedBy", Json::array()},
                {"createdAt", now_iso()}};
    ctx.state.mutate([&](Json& doc) { doc["transfers"][claim] = rec; });
    o.out["claimId"] = claim;
    o.out["transfer"] = rec;
    return o.finish();
  }

  Json transfer_step(const Json& params, bool accept) {
    const std::string flow = accept ? "transfer-accept" : "transfer-verify";
    Params a(params, flow, {"installationId", "claimId", "legacy", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto claim = a.str("claimId", true);
    auto legacy_param = a.boolean("legacy");
    a.done();
    Json target = require_installation(*icfg, true);
    Json transfer = ctx.state.read([&](const Json& doc) -> Json {
      const Json* all = member(doc, "transfers");
      const Json* t = all ? member(*all, *claim) : nullptr;
      return t ? *t : Json();
    });
    // An unknown claim is still sent: a partner must answer it with 404.
    bool legacy = legacy_param.value_or(transfer.is_object() && transfer.value("legacy", false));
    std::string path = "/v1/installations/" + pct_encode(*icfg) + "/resource-transfer-requests/" +
                       pct_encode(*claim) + (accept ? "/accept" : "/verify");
    CallSpec s{flow,
               flow,
               "POST",
               path,
               "system",
               system_token(*icfg, target),
               std::nullopt,
               idempotency_key(params),
               "application/json",
               conformance_for(target)};
    if (accept) {
      // The flows page shows this body; the reference page defines none — partners must
      // accept and ignore it (§5.18).
      s.body = Json{{"targetInstallationId", *icfg}, {"targetTeamId", target["accountId"]}};
    } else if (!legacy) {
      s.method = "GET";  // current shape: GET …/verify, no key (not a mutation)
      s.idempotency_key.clear();
    }
    CallResult r = call(s);
    Outcome o;
    o.primary(r);
    o.out["legacy"] = legacy;
    if (!r.ok() || !transfer.is_object()) return o.finish();

    std::string now = now_iso();
    Json moved = Json::array();
    ctx.state.mutate([&](Json& doc) {
      Json& t = doc["transfers"][*claim];
      if (!accept) {
        t["status"] = t.value("status", "") == "completed" ? "completed" : "verified";
        if (!t["verifiedBy"].is_array()) t["verifiedBy"] = Json::array();
        t["verifiedBy"].push_back(*icfg);
        t["verifiedAt"] = now;
        return;
      }
      std::string source = str_member(t, "sourceInstallationId");
      // On success Vercel moves the resources too, keeping their project connections.
      if (source != *icfg && t["resourceIds"].is_array()) {
        Json& from = doc["resources"][source];
        Json& to = doc["resources"][*icfg];
        for (const auto& rid_json : t["resourceIds"]) {
          if (!rid_json.is_string()) continue;
          std::string rid = rid_json.get<std::string>();
          if (!from.is_object() || !from.contains(rid)) continue;
          Json rec = from[rid];
          rec["transferredFrom"] = source;
          rec["updatedAt"] = now;
          to[rid] = rec;
          from.erase(rid);
          moved.push_back(rid);
        }
      }
      t["status"] = "completed";
      t["targetInstallationId"] = *icfg;
      t["completedAt"] = now;
    });
    if (accept) {
      o.out["moved"] = moved;
      // What Vercel relies on after an accept: the target installation now lists what moved
      // (a partner that answers 204 but keeps the resources under the source is caught here).
      if (!moved.empty()) {
        CallResult listed = call({flow, "list-resources", "GET",
                                  "/v1/installations/" + pct_encode(*icfg) + "/resources", "system",
                                  system_token(*icfg, target), std::nullopt, "", "application/json",
                                  conformance_for(target)});
        o.follow_up("targetResources", "list-resources", listed);
        std::set<std::string> ids;
        if (listed.ok() && listed.response.is_object() && listed.response.contains("resources") &&
            listed.response["resources"].is_array())
          for (const auto& res : listed.response["resources"])
            if (res.is_object() && res.contains("id") && res["id"].is_string())
              ids.insert(res["id"].get<std::string>());
        for (const auto& rid : moved)
          if (listed.ok() && !ids.count(rid.get<std::string>()))
            o.findings.push_back("list-resources: the accepted resource " + rid.get<std::string>() +
                                 " is not listed under the target " + "installation " + *icfg +
                                 " after the transfer");
      }
    }
    return o.finish();
  }

  Json uninstall(const Json& params) {
    Params a(params, "uninstall",
             {"installationId", "cascadeResourceDeletion", "reason", "auth", "role", "userHex",
              "webhook", "idempotencyKey"});
    auto icfg = a.str("installationId", true);
    auto cascade = a.boolean("cascadeResourceDeletion");
    auto reason = a.str("reason", false);
    bool webhook = a.boolean("webhook").value_or(true);
    if (!icfg) a.done();
    Json inst = installation(*icfg);
    if (!inst.is_object()) throw no_installation(*icfg);
    std::string status = str_member(inst, "status");
    if (status == "pending_deletion" || status == "finalized")
      throw ApiError(409, "conflict", "installation " + *icfg + " is already " + status,
                     {{"installationId", "is " + status}});
    auto auth = auth_for(a, *icfg, inst, "user");
    const std::string& mode = auth.first;
    const std::string& token = auth.second;
    std::optional<Json> body;
    if (cascade || reason) {
      body = Json::object();
      if (cascade) (*body)["cascadeResourceDeletion"] = *cascade;
      if (reason) (*body)["reason"] = *reason;
    }
    std::string key = idempotency_key(params);
    CallResult r = call({"uninstall", "delete-installation", "DELETE",
                         "/v1/installations/" + pct_encode(*icfg), mode, token, body, key,
                         "application/json", conformance_for(inst)});
    Outcome o;
    o.primary(r);
    o.out["auth"] = mode;
    o.out["idempotencyKey"] = key;
    if (!r.ok()) return o.finish();

    const Json* fin = member(r.response, "finalized");
    bool finalized = fin && fin->is_boolean() && fin->get<bool>();
    std::string now = now_iso();
    ctx.state.mutate([&](Json& doc) {
      Json& rec = doc["installations"][*icfg];
      rec["deletedAt"] = now;
      if (finalized) {
        // Nothing left to bill: the installation is gone at once and its token stops working.
        rec["status"] = "finalized";
        rec["finalizedAt"] = now;
      } else {
        rec["status"] = "pending_deletion";
      }
      if (cascade.value_or(false) && doc["resources"][*icfg].is_object()) {
        for (auto& res : doc["resources"][*icfg]) {
          if (!res.is_object() || res.value("deleted", false)) continue;
          res["deleted"] = true;
          res["status"] = "uninstalled";
          res["deletedAt"] = now;
        }
      }
    });
    o.out["finalized"] = finalized;
    o.out["installationStatus"] = finalized ? "finalized" : "pending_deletion";
    if (webhook) {
      Json delivery = deliver_now("uninstall", "integration-configuration.removed",
                                  removed_payload(*icfg, inst), false);
      o.exchanges.push_back(delivery["exchange"].get<int64_t>());
      for (const auto& f : delivery["findings"])
        o.findings.push_back("webhook: " + f.get<std::string>());
      o.out["webhook"] = delivery;
    }
    o.out["installation"] = installation(*icfg);
    return o.finish();
  }

  Json sso(const Json& params) {
    Params a(params, "sso",
             {"installationId", "userHex", "role", "resourceId", "projectId", "invoiceId", "path",
              "url", "checkId", "experimentationItemId", "productId", "pr", "support"});
    auto icfg = a.str("installationId", true);
    auto user_hex = a.str("userHex", false);
    // Which member signs in: a given user, else one with this role (created if none), else
    // the installer.
    auto role = a.one_of("role", false, {"ADMIN", "USER"});
    auto path = a.one_of("path", false, {"billing", "usage", "onboarding", "secrets", "support"});
    auto url = a.str("url", false);
    if (url && url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0)
      a.add("url", "must be an http:// or https:// URL");
    // Context parameters as the Redirect Login URL receives them (flows.md §2.1).
    static const std::vector<std::pair<const char*, const char*>> kContext = {
        {"productId", "product_id"},
        {"resourceId", "resource_id"},
        {"checkId", "check_id"},
        {"projectId", "project_id"},
        {"experimentationItemId", "experimentation_item_id"},
        {"invoiceId", "invoice_id"},
        {"pr", "pr"},
        {"path", "path"},
        {"url", "url"},
        {"support", "support"}};
    std::vector<std::pair<std::string, std::string>> context;
    for (const auto& [param, query] : kContext) {
      auto v = std::string(param) == "path"  ? path
               : std::string(param) == "url" ? url
                                             : a.str(param, false);
      if (v) context.emplace_back(query, *v);
    }
    a.done();
    Json inst = require_installation(*icfg, false);
    UserIdentity user = pick_user(*icfg, inst, user_hex, role);

    std::string code = util::random_token(24);
    std::string state = util::random_token(16);
    int64_t now = ctx.clock.now_ms();
    int64_t expires = now + ctx.config.sso_code_ttl_ms;
    Json ctx_json = Json::object();
    for (const auto& [k, v] : context) ctx_json[k] = v;
    ctx.state.mutate([&](Json& doc) {
      Json& codes = doc["ssoCodes"];
      // Spent and expired codes are of no further use; drop them so the map stays small.
      if (codes.is_object()) {
        for (auto it = codes.begin(); it != codes.end();) {
          const Json& c = it.value();
          bool dead = c.value("used", false) || c.value("expiresAt", int64_t{0}) < now - 3600000;
          it = dead && codes.size() > 100 ? codes.erase(it) : std::next(it);
        }
      }
      codes[code] = {{"installationId", *icfg}, {"userHex", user.user_hex}, {"state", state},
                     {"expiresAt", expires},    {"createdAt", now},         {"used", false},
                     {"context", ctx_json}};
    });
    std::string target = redirect_login_url();
    target += target.find('?') == std::string::npos ? '?' : '&';
    target += "mode=sso&code=" + pct_encode(code) + "&state=" + pct_encode(state);
    for (const auto& [k, v] : context) target += "&" + k + "=" + pct_encode(v);

    Outcome o;
    o.out["redirectUrl"] = target;
    o.out["code"] = code;
    o.out["state"] = state;
    o.out["expiresAt"] = expires;
    o.out["userHex"] = user.user_hex;
    return o.finish();
  }

  // ---- webhooks --------------------------------------------------------------------------

  Json removed_payload(const std::string& icfg, const Json& inst) const {
    std::string user = str_member(inst, "installedBy");
    return {
        {"configuration", {{"id", icfg}, {"projectSelection", "all"}, {"projects", Json::array()}}},
        {"installationId", icfg},
        {"team", {{"id", inst.value("accountId", Json())}}},
        {"user", {{"id", user.empty() ? Json() : Json(user)}}}};
  }

  Json invoice_payload(const std::string& type, const std::string& icfg, const Json& inst,
                       const Json& invoice, const std::optional<std::string>& amount,
                       const std::optional<std::string>& reason) const {
    Json p = {{"installationId", icfg},
              {"configuration", {{"id", icfg}}},
              {"team", {{"id", inst.value("accountId", Json())}}},
              {"invoiceId", invoice.value("invoiceId", Json())},
              {"externalInvoiceId", invoice.value("externalId", Json())},
              {"period", invoice.value("period", Json())},
              {"invoiceDate", invoice.value("invoiceDate", Json())},
              {"invoiceTotal", invoice.value("total", Json())}};
    if (type == "marketplace.invoice.refunded") {
      p["amount"] =
          amount ? Json(*amount) : invoice.value("refundTotal", invoice.value("total", Json()));
      p["reason"] = reason ? Json(*reason) : invoice.value("refundReason", Json("refund"));
    }
    return p;
  }

  Json webhook_flow(const Json& params) {
    Params a(params, "webhook",
             {"type", "payload", "installationId", "invoiceId", "amount", "reason", "signature"});
    auto type = a.str("type", true);
    const Json* payload = a.object("payload", false);
    auto icfg = a.str("installationId", false);
    auto invoice_id = a.str("invoiceId", false);
    auto amount = a.str("amount", false);
    auto reason = a.str("reason", false);
    auto signature = a.one_of("signature", false, {"good", "bad"});
    bool is_invoice = type && type->rfind("marketplace.invoice.", 0) == 0;
    bool is_removed = type && *type == "integration-configuration.removed";
    if (!payload && (is_invoice || is_removed) && !icfg)
      a.add("installationId", "is required to build a " + *type + " payload");
    if (!payload && is_invoice && !invoice_id)
      a.add("invoiceId", "is required to build a " + *type + " payload");
    a.done();

    Json body = Json::object();
    Json inst;
    if (icfg) {
      inst = installation(*icfg);
      if (!inst.is_object()) throw no_installation(*icfg);
    }
    if (is_invoice && icfg && invoice_id) {
      Json invoice = ctx.state.read([&](const Json& doc) -> Json {
        const Json* all = member(doc, "invoices");
        const Json* in = all ? member(*all, *icfg) : nullptr;
        const Json* inv = in ? member(*in, *invoice_id) : nullptr;
        return inv ? *inv : Json();
      });
      if (!invoice.is_object())
        throw ApiError(404, "not_found", "no invoice " + *invoice_id + " in " + *icfg,
                       {{"invoiceId", "is not an invoice of the installation"}});
      body = invoice_payload(*type, *icfg, inst, invoice, amount, reason);
    } else if (is_removed && icfg) {
      body = removed_payload(*icfg, inst);
    } else if (icfg) {
      body = {{"installationId", *icfg}, {"configuration", {{"id", *icfg}}}};
    }
    // An explicit payload overrides (key by key) what the sandbox would send.
    if (payload) body.update(*payload);
    Json delivery = deliver_now("webhook", *type, body, signature.value_or("good") == "bad");
    Outcome o;
    o.out["ok"] = delivery["ok"];
    o.out["status"] = delivery["status"];
    o.out["response"] = delivery["response"];
    o.exchanges.push_back(delivery["exchange"].get<int64_t>());
    for (const auto& f : delivery["findings"]) o.findings.push_back(f.get<std::string>());
    o.out["webhookId"] = delivery["id"];
    o.out["delivery"] = delivery;
    return o.finish();
  }

  // Builds the envelope, records it in state.webhooks and returns the delivery.
  Delivery new_delivery(const std::string& flow, const std::string& type, const Json& payload,
                        bool bad_signature) {
    Delivery d;
    d.id = "whd_" + random_alnum(24);
    d.type = type;
    d.flow = flow;
    d.bad_signature = bad_signature;
    Json envelope = {{"id", d.id},
                     {"type", type},
                     {"createdAt", ctx.clock.now_ms()},
                     {"region", nullptr},
                     {"payload", payload}};
    d.body = dump(envelope);
    d.due = SteadyClock::now();
    d.due_ms = ctx.clock.now_ms();
    Json rec = {{"id", d.id},
                {"type", type},
                {"status", "pending"},
                {"attempts", 0},
                {"lastStatus", nullptr},
                {"createdAt", now_iso()},
                {"badSignature", bad_signature},
                {"flow", flow},
                {"body", d.body}};
    ctx.state.mutate([&](Json& doc) {
      Json& list = doc["webhooks"];
      if (!list.is_array()) list = Json::array();
      list.push_back(rec);
      // Drop the oldest finished deliveries beyond the cap; pending ones stay.
      size_t excess = list.size() > kMaxWebhookRecords ? list.size() - kMaxWebhookRecords : 0;
      for (auto it = list.begin(); excess > 0 && it != list.end();) {
        if (it->value("status", "") != "pending") {
          it = list.erase(it);
          --excess;
        } else {
          ++it;
        }
      }
    });
    return d;
  }

  struct Attempt {
    int status = 0;
    std::string error;
    Json response;
    int64_t exchange_id = 0;
    std::vector<std::string> findings;
    bool delivered = false;  // the partner acknowledged with 2xx
  };

  // One POST of a delivery; records the exchange and the delivery's state.
  Attempt attempt(Delivery& d) {
    Attempt out;
    std::string url;
    try {
      url = webhook_url();
    } catch (const ApiError& e) {
      out.error = e.message;
    }
    std::string key = d.bad_signature ? "not-the-client-secret" : ctx.config.client_secret;
    std::string signature = util::to_hex(util::hmac_sha1(key, d.body));
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/json"}, {"x-vercel-signature", signature}};
    net::HttpResult res;
    auto started = SteadyClock::now();
    if (out.error.empty()) res = ctx.http.request("POST", url, headers, d.body);
    double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();
    if (!out.error.empty()) res.error = out.error;
    ++d.attempts;

    out.status = res.status;
    out.error = res.error;
    std::string content_type;
    for (const auto& [name, value] : res.headers)
      if (name == "content-type") content_type = value;
    out.response = parse_body(content_type, res.body);
    out.delivered = res.ok();
    if (!res.error.empty()) {
      out.findings.push_back("transport: " + res.error);
    } else {
      out.findings = check_partner_response("webhook", res.status, content_type, res.body);
      if (d.bad_signature && out.delivered)
        out.findings.push_back(
            "x-vercel-signature: the partner accepted a delivery whose "
            "signature is wrong (it must answer 401/403 and ignore it)");
      if (!d.bad_signature && (res.status == 401 || res.status == 403))
        out.findings.push_back(
            "x-vercel-signature: the partner rejected a correctly signed "
            "delivery (HMAC-SHA1 of the raw body with the client secret)");
    }

    Exchange e;
    e.at_ms = ctx.clock.now_ms();
    e.direction = "webhook";
    e.flow = d.flow;
    e.method = "POST";
    e.url = url;
    for (const auto& [name, value] : headers)
      e.request_headers[name] = ExchangeLog::redact_header(name, value);
    e.request_body = d.body;
    e.status = res.status;
    e.response_body = clip(res.body);
    e.error = res.error;
    e.duration_ms = ms;
    e.findings = out.findings;
    out.exchange_id = ctx.log.add(std::move(e));
    return out;
  }

  // After an attempt: either finished (delivered / failed for good) or due again later.
  bool settle(Delivery& d, const Attempt& at) {
    // A deliberately bad signature is a one-off probe: Vercel never sends one, so never
    // retries one either.
    bool retry = !at.delivered && !d.bad_signature && d.attempts < ctx.config.webhook_max_attempts;
    std::string status = at.delivered ? "delivered" : retry ? "pending" : "failed";
    std::string now = now_iso();
    ctx.state.mutate([&](Json& doc) {
      Json& list = doc["webhooks"];
      if (!list.is_array()) return;
      for (auto& rec : list) {
        if (!rec.is_object() || rec.value("id", "") != d.id) continue;
        rec["attempts"] = d.attempts;
        rec["lastStatus"] = at.status == 0 ? Json() : Json(at.status);
        rec["status"] = status;
        rec["lastAttemptAt"] = now;
        if (!at.error.empty()) rec["lastError"] = at.error;
        if (!rec["exchanges"].is_array()) rec["exchanges"] = Json::array();
        rec["exchanges"].push_back(at.exchange_id);
        if (status != "pending") rec.erase("body");
      }
    });
    if (retry) {
      int64_t shift = std::min<int64_t>(d.attempts - 1, 20);
      int64_t delay = std::max<int64_t>(ctx.config.webhook_first_retry_ms, 1) << shift;
      d.due = SteadyClock::now() + std::chrono::milliseconds(delay);
      d.due_ms = ctx.clock.now_ms() + delay;
    }
    return retry;
  }

  void enqueue(Delivery d) {
    {
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back(std::move(d));
    }
    cv.notify_all();
  }

  // The flow version: the first attempt runs now so the caller sees the partner's answer;
  // retries, if needed, go to the background worker.
  Json deliver_now(const std::string& flow, const std::string& type, const Json& payload,
                   bool bad_signature) {
    Delivery d = new_delivery(flow, type, payload, bad_signature);
    Attempt at = attempt(d);
    bool retry = settle(d, at);
    Json out = {{"id", d.id},
                {"type", type},
                {"ok", at.delivered},
                {"status", at.status},
                {"response", at.response},
                {"exchange", at.exchange_id},
                {"findings", at.findings},
                {"attempts", d.attempts},
                {"retrying", retry},
                {"signature", bad_signature ? "bad" : "good"}};
    if (!at.error.empty()) out["error"] = at.error;
    if (retry) enqueue(std::move(d));
    return out;
  }

  // ---- background work -------------------------------------------------------------------

  int finalize_expired() {
    int64_t now = ctx.clock.now_ms();
    std::string now_text = util::format_iso8601_ms(now);
    return ctx.state.mutate([&](Json& doc) {
      int count = 0;
      Json& all = doc["installations"];
      if (!all.is_object()) return 0;
      for (auto& inst : all) {
        if (!inst.is_object() || inst.value("status", "") != "pending_deletion") continue;
        int64_t deleted = 0;
        if (!util::parse_iso8601(str_member(inst, "deletedAt"), &deleted)) continue;
        if (deleted + ctx.config.finalization_window_ms > now) continue;
        inst["status"] = "finalized";
        inst["finalizedAt"] = now_text;
        ++count;
      }
      return count;
    });
  }

  // Deliveries still pending in the state file (e.g. the sandbox was restarted) go back on
  // the queue.
  void requeue_persisted() {
    std::vector<Delivery> pending = ctx.state.read([&](const Json& doc) {
      std::vector<Delivery> out;
      const Json* list = member(doc, "webhooks");
      if (!list || !list->is_array()) return out;
      for (const auto& rec : *list) {
        if (!rec.is_object() || rec.value("status", "") != "pending" || !rec.contains("body"))
          continue;
        Delivery d;
        d.id = str_member(rec, "id");
        d.type = str_member(rec, "type");
        d.flow = str_member(rec, "flow");
        d.body = str_member(rec, "body");
        d.bad_signature = rec.value("badSignature", false);
        d.attempts = rec.value("attempts", int64_t{0});
        d.due = SteadyClock::now();
        d.due_ms = ctx.clock.now_ms();
        out.push_back(std::move(d));
      }
      return out;
    });
    std::lock_guard<std::mutex> lock(mu);
    for (auto& d : pending) {
      bool queued =
          std::any_of(queue.begin(), queue.end(), [&](const Delivery& q) { return q.id == d.id; });
      if (!queued) queue.push_back(std::move(d));
    }
  }

  void run_worker() {
    auto next_finalize_check = SteadyClock::now();
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      auto now = SteadyClock::now();
      int64_t now_ms = ctx.clock.now_ms();
      if (clock_moved) {
        clock_moved = false;
        next_finalize_check = now;
      }
      if (now >= next_finalize_check) {
        lock.unlock();
        try {
          finalize_expired();
        } catch (const std::exception& e) {
          util::log_warn("sandbox finalization check failed").str("error", e.what());
        }
        lock.lock();
        next_finalize_check = SteadyClock::now() + std::chrono::seconds(1);
        continue;
      }
      // The delivery due first, on whichever of its two clocks comes first.
      auto wake_of = [&](const Delivery& d) {
        return std::min(d.due,
                        now + std::chrono::milliseconds(std::max<int64_t>(0, d.due_ms - now_ms)));
      };
      auto due = std::min_element(
          queue.begin(), queue.end(),
          [&](const Delivery& x, const Delivery& y) { return wake_of(x) < wake_of(y); });
      if (due != queue.end() && wake_of(*due) <= now) {
        Delivery d = std::move(*due);
        queue.erase(due);
        lock.unlock();
        bool retry = false;
        try {
          Attempt at = attempt(d);
          retry = settle(d, at);
        } catch (const std::exception& e) {
          util::log_warn("sandbox webhook delivery failed").str("id", d.id).str("error", e.what());
        }
        lock.lock();
        if (retry) queue.push_back(std::move(d));
        continue;
      }
      auto wake = next_finalize_check;
      if (due != queue.end()) wake = std::min(wake, wake_of(*due));
      cv.wait_until(lock, wake);
    }
  }
};

Driver::Driver(Context& ctx) : impl_(std::make_unique<Impl>(ctx)) {}

Driver::~Driver() {
  stop();
}

std::vector<std::string> Driver::flow_names() {
  return {"install",         "plans",           "provision",       "get-resource",
          "list-resources",  "update-resource", "delete-resource", "repl",
          "rotate-secrets",  "change-plan",     "purchase",        "transfer-create",
          "transfer-verify", "transfer-accept", "uninstall",       "sso",
          "webhook",         "get-installation"};
}

Json Driver::run(const std::string& flow, const Json& params) {
  Impl& i = *impl_;
  if (flow == "install") return i.install(params);
  if (flow == "plans") return i.plans(params);
  if (flow == "provision") return i.provision(params);
  if (flow == "get-resource") return i.get_resource(params);
  if (flow == "list-resources") return i.list_resources(params);
  if (flow == "update-resource") return i.update_resource(params);
  if (flow == "delete-resource") return i.delete_resource(params);
  if (flow == "repl") return i.repl(params);
  if (flow == "rotate-secrets") return i.rotate_secrets(params);
  if (flow == "change-plan") return i.change_plan(params);
  if (flow == "purchase") return i.purchase(params);
  if (flow == "transfer-create") return i.transfer_create(params);
  if (flow == "transfer-verify") return i.transfer_step(params, false);
  if (flow == "transfer-accept") return i.transfer_step(params, true);
  if (flow == "uninstall") return i.uninstall(params);
  if (flow == "sso") return i.sso(params);
  if (flow == "webhook") return i.webhook_flow(params);
  if (flow == "get-installation") return i.get_installation(params);
  throw ApiError::not_found("unknown flow " + flow);
}

Json Driver::refresh_resource(const std::string& installation_id, const std::string& resource_id) {
  return impl_->refresh_resource_flow("refresh", installation_id, resource_id);
}

Json Driver::refresh_installation(const std::string& installation_id) {
  return impl_->refresh_installation_flow("refresh", installation_id);
}

std::string Driver::send_webhook(const std::string& type, const Json& payload) {
  Delivery d = impl_->new_delivery("webhook", type, payload, false);
  std::string id = d.id;
  impl_->enqueue(std::move(d));
  return id;
}

int Driver::finalize_expired() {
  return impl_->finalize_expired();
}

void Driver::clock_moved() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->clock_moved = true;
  }
  impl_->cv.notify_all();
}

void Driver::start() {
  Impl& i = *impl_;
  {
    std::lock_guard<std::mutex> lock(i.mu);
    if (i.worker.joinable()) return;
    i.stopping = false;
  }
  i.requeue_persisted();
  i.worker = std::thread([&i] { i.run_worker(); });
}

void Driver::stop() {
  Impl& i = *impl_;
  {
    std::lock_guard<std::mutex> lock(i.mu);
    i.stopping = true;
  }
  i.cv.notify_all();
  if (i.worker.joinable()) i.worker.join();
}

}  // namespace wharf::sandbox
