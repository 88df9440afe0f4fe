#include "service/sessions.h"

#include "util/base64.h"
#include "util/crypto.h"

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

}  // namespace wharf::service
