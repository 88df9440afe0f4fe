#include "service/sessions.h"

#include "net/http.h"
#include "util/base64.h"
#include "util/crypto.h"
#include "util/log.h"
#include "vercel/outbox.h"

namespace wharf::service {
namespace {

constexpr size_t kIdBytes = 32;
constexpr size_t kCookieChars = 43;  // base64url of 32 bytes, no padding

bool base64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

SessionService::SessionService(store::Store& store, const util::Clock& clock, int64_t ttl_ms)
    : store_(store), clock_(clock), ttl_ms_(ttl_ms) {}

bool SessionService::well_formed(std::string_view v) {
  if (v.size() != kCookieChars) return false;
  for (char c : v)
    if (!base64url_char(c)) return false;
  return true;
}

std::string SessionService::id_hash(std::string_view cookie_value) {
  return util::to_hex(util::sha256(cookie_value));
}

std::string SessionService::csrf_of(std::string_view cookie_value) {
  return util::base64url_encode(util::hmac_sha256(cookie_value, "wharf dashboard csrf v1"));
}

SessionService::Started SessionService::start(const SessionUser& user) {
  Started out;
  out.cookie_value = util::random_token(kIdBytes);
  int64_t now = clock_.now_ms();
  store::SessionRow row{id_hash(out.cookie_value),
                        user.installation_id,
                        user.account_id,
                        user.user_id,
                        user.role,
                        user.name,
                        user.email,
                        now,
                        now + ttl_ms_};
  store_.write([&](store::WriteTx& tx) { tx.insert_session(row); });
  out.session = {user, row.expires_ms, csrf_of(out.cookie_value)};
  return out;
}

std::optional<Session> SessionService::find(std::string_view cookie_value) const {
  if (!well_formed(cookie_value)) return std::nullopt;
  std::optional<store::SessionRow> row;
  bool active = false;
  store_.read([&](store::ReadTx& tx) {
    row = tx.session(id_hash(cookie_value));
    if (!row) return;
    auto inst = tx.installation(row->installation_id);
    active = inst && inst->status == "active";
  });
  if (!row || !active || clock_.now_ms() >= row->expires_ms) return std::nullopt;
  Session s;
  s.user = {row->installation_id, row->account_id, row->user_id, row->role,
            row->user_name,       row->user_email};
  s.expires_ms = row->expires_ms;
  s.csrf_token = csrf_of(cookie_value);
  return s;
}

void SessionService::end(std::string_view cookie_value) {
  if (!well_formed(cookie_value)) return;
  store_.write([&](store::WriteTx& tx) { tx.delete_session(id_hash(cookie_value)); });
}

int64_t SessionService::purge() {
  int64_t n = 0;
  store_.write([&](store::WriteTx& tx) { n = tx.purge_sessions(clock_.now_ms()); });
  return n;
}

bool SessionService::csrf_matches(const Session& session, std::string_view submitted) {
  return !submitted.empty() && util::constant_time_equal(session.csrf_token, submitted);
}

namespace {

// Applies a member's role to their sessions; false when the role is not one of F20's.
bool apply_member_role(store::WriteTx& tx, const std::string& installation_id,
                       const std::string& member_id, const std::string& role, int64_t& changed) {
  if (role == "NONE")
    changed = tx.delete_member_sessions(installation_id, member_id);
  else if (role == "ADMIN" || role == "USER")
    changed = tx.set_member_sessions_role(installation_id, member_id, role);
  else
    return false;
  return true;
}

}  // namespace

int64_t SessionService::member_changed(const std::string& installation_id,
                                       const std::string& member_id, const std::string& role) {
  int64_t changed = 0;
  bool queued = false;
  store_.write([&](store::WriteTx& tx) {
    if (apply_member_role(tx, installation_id, member_id, role, changed)) return;
    auto inst = tx.installation(installation_id);
    if (!inst || inst->status != "active") return;
    vercel::Outbox::enqueue(tx, installation_id,
                            vercel::api::get_member(installation_id, member_id), clock_.now_ms());
    queued = true;
  });
  util::log_info("member changed")
      .str("installation", installation_id)
      .str("member", member_id)
      .str("role", role)
      .num("sessions", changed)
      .flag("confirming", queued);
  return changed;
}

net::HttpResult SessionService::deliver_member_read(const store::OutboxRow& item,
                                                    const vercel::Client& client,
                                                    const std::string& token) {
  const std::string prefix = "/v1/installations/" + item.installation_id + "/member/";
  if (item.path.rfind(prefix, 0) != 0) {
    net::HttpResult done;
    done.status = 204;  // not a member read: nothing to do
    return done;
  }
  net::HttpResult r = client.request("GET", item.path, "", token);
  if (!r.error.empty()) return r;  // retried
  std::string member;
  std::string role;
  if (r.status == 404) {
    // Not a member any more: the id from the path (percent-encoded by get_member).
    auto decoded = net::percent_decode(item.path.substr(prefix.size()), false);
    if (!decoded) return r;
    member = *decoded;
    role = "NONE";
  } else if (r.ok()) {
    model::Json j = model::Json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("id") && j["id"].is_string() && j.contains("role") &&
        j["role"].is_string()) {
      member = j["id"].get<std::string>();
      role = j["role"].get<std::string>();
    }
    // The answer must be about the member asked for.
    if (member.empty() || vercel::api::get_member(item.installation_id, member).path != item.path)
      return r;
  } else {
    return r;  // judged by the outbox (retried or a dead letter)
  }
  int64_t changed = 0;
  bool applied = false;
  store_.write([&](store::WriteTx& tx) {
    applied = apply_member_role(tx, item.installation_id, member, role, changed);
  });
  if (applied)
    util::log_info("member role confirmed")
        .str("installation", item.installation_id)
        .str("member", member)
        .str("role", role)
        .num("sessions", changed);
  if (r.status == 404) {
    net::HttpResult done;
    done.status = 204;  // a member that left: confirmed, nothing to retry
    return done;
  }
  return r;
}

}  // namespace wharf::service
