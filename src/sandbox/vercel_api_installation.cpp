// Installation-level endpoints (vercel-api.md §4, §10.5) and the client-credential
// endpoints (§8.1 SSO token exchange, §8.2 OAuth code exchange).
#include <cctype>

#include "sandbox/vercel_api.h"
#include "sandbox/vercel_api_internal.h"
#include "util/crypto.h"
#include "util/ids.h"

namespace wharf::sandbox::vercel_api {
namespace {

constexpr size_t kMaxEvents = 1000;  // the events list is for inspection, not an archive
// Rotate Installation Credential must answer an `expires_in`; sandbox tokens never expire
// (flows say installation tokens do not), so this is a nominal year.
constexpr int64_t kRotatedTokenExpiresInS = 365LL * 24 * 3600;
constexpr int64_t kIdTokenTtlS = 600;

// Update Installation (§4.1): every field optional; null clears it.
net::Response update_installation(Call& c) {
  Json body = c.optional_body();
  require_valid(schema::update_installation(body), "Update Installation body");
  c.ctx.state.mutate([&](Json& doc) {
    Json& inst = installation_of(doc, c.icfg);
    // `status` here is the display ResourceStatus a partner sets (e.g. suspended); the
    // installation's own `status` is its lifecycle, which only Vercel changes.
    static const std::pair<const char*, const char*> kFields[] = {{"status", "partnerStatus"},
                                                                  {"externalId", "externalId"},
                                                                  {"billingPlan", "billingPlan"},
                                                                  {"notification", "notification"}};
    for (const auto& [in, stored] : kFields) {
      auto it = body.find(in);
      if (it == body.end()) continue;
      // `notification` is `Notification | string`; an empty string clears like null.
      if (it->is_null() ||
          (it->is_string() && it->get<std::string>().empty() && std::string(in) == "notification"))
        inst.erase(stored);
      else
        inst[stored] = *it;
    }
    inst["updatedAt"] = c.now_iso();
  });
  return net::Response::empty(204);
}

net::Response get_account(Call& c) {
  Json out = c.ctx.state.read([&](const Json& doc) {
    const Json& inst = installation_of(doc, c.icfg);
    Json account =
        inst.contains("account") && inst["account"].is_object() ? inst["account"] : Json::object();
    Json r = Json::object();
    if (account.contains("name") && account["name"].is_string()) r["name"] = account["name"];
    r["url"] = account.contains("url") && account["url"].is_string()
                   ? account["url"]
                   : Json(c.ctx.config.base_url + "/_sandbox/installations/" + c.icfg);
    // `contact` is required but nullable (§4.2).
    r["contact"] = account.contains("contact") && account["contact"].is_object()
                       ? account["contact"]
                       : Json(nullptr);
    return r;
  });
  return json_reply(200, out);
}

net::Response get_member(Call& c) {
  std::string member = c.param("memberId");
  Json out = c.ctx.state.read([&](const Json& doc) {
    const Json& inst = installation_of(doc, c.icfg);
    if (!inst.contains("users") || !inst["users"].is_object() || !inst["users"].contains(member))
      throw model::ApiError::not_found("member " + member + " not found in installation " + c.icfg);
    const Json& user = inst["users"][member];
    std::string role = get_str(user, "role");
    return Json{{"id", member}, {"role", role.empty() ? "USER" : role}};
  });
  return json_reply(200, out);
}

net::Response rotate_credentials(Call& c) {
  Json body = c.body();
  require_valid(schema::rotate_credentials(body), "Rotate Installation Credential body");
  if (!util::constant_time_equal(body["client_secret"].get<std::string>(),
                                 c.ctx.config.client_secret))
    throw model::ApiError::forbidden("client_secret: does not match the integration's secret");
  if (body.contains("client_id") && body["client_id"].get<std::string>() != c.ctx.config.client_id)
    throw model::ApiError::forbidden("client_id: is not this integration's client id (" +
                                     c.ctx.config.client_id + ")");
  std::string token = util::random_token(32);
  std::string scope = c.ctx.state.mutate([&](Json& doc) {
    Json& inst = installation_of(doc, c.icfg);
    if (!inst["accessTokens"].is_array()) inst["accessTokens"] = Json::array();
    // The old token stays valid (§4.4): retiring it is a separate, unpublished operation.
    inst["accessTokens"].push_back(token);
    Json& rotations = inst["tokenRotations"];
    if (rotations.is_array())
      rotations.push_back({{"at", c.now_iso()}});
    else
      rotations = (rotations.is_number_integer() ? rotations.get<int64_t>() : 0) + 1;
    std::string s;
    if (inst.contains("scopes") && inst["scopes"].is_array())
      for (const auto& x : inst["scopes"])
        if (x.is_string()) s += (s.empty() ? "" : " ") + x.get<std::string>();
    return s;
  });
  return json_reply(200, {{"access_token", token},
                          {"token_type", "oauth2-token"},
                          {"expires_in", kRotatedTokenExpiresInS},
                          {"scope", scope}});
}

// Create Event (§4.5): recorded, then Vercel re-reads what changed through the Partner API.
net::Response create_event(Call& c) {
  Json body = c.body();
  require_valid(schema::create_event(body), "Create Event body");
  Json event = body["event"];
  std::string type = event["type"].get<std::string>();
  std::string rid = get_str(event, "resourceId");
  std::string id = util::new_id("evt");
  c.ctx.state.mutate_in({"installations", "resources", "events"}, [&](Json& doc) {
    installation_of(doc, c.icfg);
    if (type == "resource.updated") live_resource(doc, c.icfg, rid);
    Json& events = doc["events"];
    if (!events.is_array()) events = Json::array();
    events.push_back({{"id", id},
                      {"receivedAt", c.now_iso()},
                      {"installationId", c.icfg},
                      {"event", event},
                      {"refresh", {{"state", "queued"}}}});
    while (events.size() > kMaxEvents) events.erase(events.begin());
  });
  Context& ctx = c.ctx;
  Driver& driver = c.driver;
  c.background.post([&ctx, &driver, icfg = c.icfg, type, rid, id] {
    Json result;
    try {
      result = type == "resource.updated" ? driver.refresh_resource(icfg, rid)
                                          : driver.refresh_installation(icfg);
    } catch (const std::exception& e) {
      result = {{"ok", false}, {"error", e.what()}};
    }
    Json summary = {{"state", "done"}, {"at", util::format_iso8601_ms(ctx.clock.now_ms())}};
    if (result.is_object()) {
      summary["ok"] = result.value("ok", false);
      for (const char* k : {"status", "findings", "exchanges", "error"})
        if (result.contains(k)) summary[k] = result[k];
    }
    ctx.state.mutate([&](Json& doc) {
      if (!doc["events"].is_array()) return;
      for (auto& e : doc["events"])
        if (get_str(e, "id") == id) e["refresh"] = summary;
    });
  });
  return net::Response::empty(201);
}

// Observed-only liveness probe (§10.5).
net::Response get_installation(Call& c) {
  std::string status = c.ctx.state.read(
      [&](const Json& doc) { return get_str(installation_of(doc, c.icfg), "status"); });
  return json_reply(200, {{"id", c.icfg}, {"status", status.empty() ? "active" : status}});
}

// ---- client-credential endpoints ----------------------------------------------------------

// JSON or application/x-www-form-urlencoded (§8.1/§8.2), as a JSON object of strings.
Json client_body(Call& c) {
  std::string media = net::media_type(c.req.header("content-type").value_or(""));
  if (media == "application/json") return c.body();
  if (media != "application/x-www-form-urlencoded")
    throw model::ApiError(
        400, "bad_request",
        "Content-Type: must be application/json or application/x-www-form-urlencoded",
        {{"Content-Type", "must be application/json or application/x-www-form-urlencoded"}});
  Json out = Json::object();
  const std::string& b = c.req.body;
  size_t i = 0;
  while (i < b.size()) {
    size_t amp = b.find('&', i);
    if (amp == std::string::npos) amp = b.size();
    std::string_view pair(b.data() + i, amp - i);
    size_t eq = pair.find('=');
    auto key = net::percent_decode(pair.substr(0, eq), true);
    auto value = net::percent_decode(
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value)
      throw model::ApiError(400, "bad_request", "body: malformed percent-encoding",
                            {{"body", "malformed percent-encoding"}});
    if (!key->empty()) out[*key] = *value;
    i = amp + 1;
  }
  return out;
}

void check_client(const Call& c, const Json& body) {
  if (body["client_id"].get<std::string>() != c.ctx.config.client_id)
    throw model::ApiError::forbidden("client_id: is not this integration's client id (" +
                                     c.ctx.config.client_id + ")");
  if (!util::constant_time_equal(body["client_secret"].get<std::string>(),
                                 c.ctx.config.client_secret))
    throw model::ApiError::forbidden("client_secret: does not match the integration's secret");
}

model::ApiError bad_code(const std::string& message) {
  return model::ApiError(400, "bad_request", "code: " + message, {{"code", message}});
}

net::Response sso_token(Call& c) {
  Json body = client_body(c);
  require_valid(schema::sso_token(body), "SSO token request");
  check_client(c, body);
  if (get_str(body, "grant_type") == "refresh_token")
    throw model::ApiError(
        400, "bad_request", "refresh_token: is not valid (the sandbox issues no refresh tokens)",
        {{"refresh_token", "is not valid (the sandbox issues no refresh tokens)"}});
  std::string code = body["code"].get<std::string>();
  int64_t now = c.ctx.clock.now_ms();
  std::string icfg;
  UserIdentity user;
  c.ctx.state.mutate([&](Json& doc) {
    Json& codes = doc["ssoCodes"];
    if (!codes.is_object() || !codes.contains(code) || !codes[code].is_object())
      throw bad_code("is unknown (it was not issued by this sandbox)");
    Json& rec = codes[code];
    if (rec.value("used", false))
      throw bad_code("was already used (SSO codes are single-use; cache the claims instead)");
    int64_t expires = 0;
    bool has_expiry = false;
    if (rec.contains("expiresAt") && rec["expiresAt"].is_number()) {
      expires = rec["expiresAt"].get<int64_t>();
      has_expiry = true;
    } else if (rec.contains("expiresAt") && rec["expiresAt"].is_string()) {
      has_expiry = schema::parse_date_time(rec["expiresAt"].get<std::string>(), &expires);
    }
    if (has_expiry && now > expires)
      throw bad_code("has expired (at " + util::format_iso8601_ms(expires) + ")");
    std::string expected_state = get_str(rec, "state");
    if (body.contains("state") && !expected_state.empty() &&
        body["state"].get<std::string>() != expected_state)
      throw model::ApiError(400, "bad_request",
                            "state: does not match the state sent with the code",
                            {{"state", "does not match the state sent with the code"}});
    icfg = get_str(rec, "installationId");
    auto& insts = doc["installations"];
    if (!insts.is_object() || !insts.contains(icfg))
      throw bad_code("belongs to an installation that no longer exists");
    const Json& inst = insts[icfg];
    if (get_str(inst, "status") == "finalized")
      throw bad_code("belongs to a finalized installation");
    user.user_hex = get_str(rec, "userHex");
    if (!inst.contains("users") || !inst["users"].contains(user.user_hex))
      throw bad_code("belongs to a user who is no longer a member of the installation");
    const Json& u = inst["users"][user.user_hex];
    user.account_hex = get_str(inst, "accountHex");
    user.account_id = get_str(inst, "accountId");
    if (user.account_id.empty()) user.account_id = "team_" + user.account_hex;
    user.role = get_str(u, "role");
    if (user.role.empty()) user.role = "ADMIN";
    user.email = get_str(u, "email");
    user.name = get_str(u, "name");
    rec["used"] = true;
    rec["usedAt"] = util::format_iso8601_ms(now);
  });
  std::string id_token = c.ctx.identity.user_token(icfg, user, "id_token", kIdTokenTtlS);
  return json_reply(200, {{"id_token", id_token},
                          {"access_token", nullptr},
                          {"token_type", nullptr},
                          {"expires_in", kIdTokenTtlS}});
}

// OAuth 2.0 error answer (RFC 6749 §5.2), the shape OAuth clients of §8.2 parse: a 400 (401
// for a client that failed to authenticate) {"error": <code>, "error_description": …}. The
// problem is also a finding of the call in the exchange log.
net::Response oauth_error(Call& c, int status, const std::string& error,
                          const std::string& description) {
  c.findings.push_back(error + ": " + description);
  return json_reply(status, {{"error", error}, {"error_description", description}});
}

// OAuth code exchange for connectable-account installs (§8.2, flows.md F1b). Codes come from
// POST /_sandbox/oauth/codes (state oauthCodes, see sandbox/deployments.h): single-use,
// expiring after config.sso_code_ttl_ms, bound to a redirect URI when one was given. Success
// issues a fresh access token of the code's installation, which the sandbox then accepts like
// the one delivered with Upsert Installation.
net::Response oauth_token(Call& c) {
  Json body;
  try {
    body = client_body(c);
  } catch (const model::ApiError& e) {
    return oauth_error(c, 400, "invalid_request", e.message);
  }
  schema::Errors errors = schema::oauth_token(body);
  if (!errors.empty()) return oauth_error(c, 400, "invalid_request", schema::describe(errors));
  if (body.contains("grant_type") && body["grant_type"] != "authorization_code")
    return oauth_error(
        c, 400, "unsupported_grant_type",
        "grant_type: must be authorization_code (got " + body["grant_type"].dump() + ")");
  try {
    check_client(c, body);
  } catch (const model::ApiError& e) {
    return oauth_error(c, 401, "invalid_client", e.message);
  }
  std::string code = body["code"].get<std::string>();
  std::string redirect_uri = body["redirect_uri"].get<std::string>();
  int64_t now = c.ctx.clock.now_ms();
  std::string token = "vat_" + util::random_token(24);
  struct Grant {
    std::string problem;  // empty: granted
    std::string icfg, user, team;
  };
  Grant g = c.ctx.state.mutate([&](Json& doc) {
    Json& codes = doc["oauthCodes"];
    if (!codes.is_object() || !codes.contains(code) || !codes[code].is_object())
      return Grant{
          "code: is unknown (it was not issued by this sandbox: POST /_sandbox/oauth/codes "
          "makes one)",
          "", "", ""};
    Json& rec = codes[code];
    if (rec.value("used", false))
      return Grant{"code: was already used (codes are single-use)", "", "", ""};
    int64_t expires = rec.value("expiresAt", int64_t{0});
    if (now > expires)
      return Grant{"code: has expired (at " + util::format_iso8601_ms(expires) + ")", "", "", ""};
    std::string expected = get_str(rec, "redirectUri");
    if (!expected.empty() && redirect_uri != expected)
      return Grant{"redirect_uri: does not match the redirect URI the code was issued for (" +
                       expected + ")",
                   "", "", ""};
    std::string icfg = get_str(rec, "installationId");
    auto& insts = doc["installations"];
    if (!insts.is_object() || !insts.contains(icfg) || !insts[icfg].is_object())
      return Grant{"code: belongs to an installation that no longer exists", "", "", ""};
    Json& inst = insts[icfg];
    std::string status = get_str(inst, "status");
    if (status == "finalized" || status == "pending_deletion")
      return Grant{"code: belongs to an installation that was uninstalled (" + status + ")", "", "",
                   ""};
    rec["used"] = true;
    rec["usedAt"] = now;
    if (!inst["accessTokens"].is_array()) inst["accessTokens"] = Json::array();
    inst["accessTokens"].push_back(token);
    return Grant{"", icfg, get_str(rec, "userHex"), get_str(inst, "accountId")};
  });
  if (!g.problem.empty()) return oauth_error(c, 400, "invalid_grant", g.problem);
  return json_reply(200, {{"token_type", "Bearer"},
                          {"access_token", token},
                          {"installation_id", g.icfg},
                          {"user_id", g.user},
                          {"team_id", g.team.empty() ? Json(nullptr) : Json(g.team)}});
}

}  // namespace

void add_installation_routes(Registrar& r) {
  r.installation("PATCH", "", update_installation);
  r.installation("GET", "", get_installation);
  r.installation("GET", "/account", get_account);
  r.installation("GET", "/member/{memberId}", get_member);
  r.installation("POST", "/credentials/rotate", rotate_credentials);
  r.installation("POST", "/events", create_event);
  r.open("POST", "/v1/integrations/sso/token", sso_token);
  r.open("POST", "/v2/oauth/access_token", oauth_token);
}

}  // namespace wharf::sandbox::vercel_api
