#include "service/credentials.h"

#include "model/json_check.h"
#include "util/log.h"

namespace wharf::service {

namespace {

// Vercel's error envelope {error: {message}}, or "" (the message only: never the body).
std::string error_message_of(const std::string& body) {
  model::Json j = model::Json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string())
    return j["error"]["message"].get<std::string>().substr(0, 300);
  return "";
}

}  // namespace

CredentialRotation::CredentialRotation(store::Store& store, InstallationService& installations,
                                       const util::Clock& clock, Options options, Send send)
    : store_(store),
      installations_(installations),
      clock_(clock),
      options_(std::move(options)),
      send_(std::move(send)) {}

CredentialRotation::Result CredentialRotation::rotate(const std::string& installation_id) {
  Result out;
  bool active = false;
  store_.read([&](store::ReadTx& tx) {
    auto row = tx.installation(installation_id);
    active = row && row->status == "active";
  });
  auto current = active ? installations_.access_token(installation_id) : std::nullopt;
  if (!current) {
    out.error = "installation " + installation_id + " is not an active installation with a token";
    return out;
  }
  if (options_.client_secret.empty()) {
    out.error = "INTEGRATION_CLIENT_SECRET is required to rotate an installation's credential";
    return out;
  }
  model::Json body = {{"client_secret", options_.client_secret}};
  if (!options_.client_id.empty()) body["client_id"] = options_.client_id;
  int64_t asked_ms = clock_.now_ms();
  net::HttpResult r = send_(vercel::api::rotate_installation_credential(installation_id, body),
                            *current, installation_id);
  out.status = r.status;
  if (!r.error.empty()) {
    out.error = "Vercel could not be reached (" + r.error + ")";
  } else if (!r.ok()) {
    std::string why = error_message_of(r.body);
    out.error = "Vercel refused the rotation (HTTP " + std::to_string(r.status) + ")" +
                (why.empty() ? "" : ": " + why);
  } else {
    model::Json j = model::Json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() ||
        j["access_token"].get<std::string>().empty()) {
      out.error = "Vercel's answer has no access_token";
    } else {
      if (j.contains("expires_in") && j["expires_in"].is_number() &&
          j["expires_in"].get<double>() > 0)
        out.expires_ms = asked_ms + static_cast<int64_t>(j["expires_in"].get<double>() * 1000);
      if (installations_.replace_access_token(installation_id, j["access_token"].get<std::string>(),
                                              out.expires_ms))
        out.ok = true;
      else
        out.error = "installation " + installation_id + " was uninstalled during the rotation";
    }
  }
  if (out.ok)
    util::log_info("installation credential rotated")
        .str("installation", installation_id)
        .num("expires_ms", out.expires_ms.value_or(0));
  else
    util::log_warn("installation credential rotation failed")
        .str("installation", installation_id)
        .num("status", out.status)
        .str("error", out.error);
  return out;
}

bool CredentialRotation::due(const store::InstallationRow& row, int64_t now_ms) const {
  if (row.status != "active" || !row.access_token_sealed) return false;
  if (options_.max_age_ms > 0 && now_ms - row.token_issued_ms >= options_.max_age_ms) return true;
  if (row.token_expires_ms) {
    // Renew a week before expiry, or in the last tenth of a shorter lifetime.
    int64_t lifetime = *row.token_expires_ms - row.token_issued_ms;
    int64_t margin = std::min(options_.renew_before_expiry_ms, std::max<int64_t>(0, lifetime / 10));
    if (now_ms >= *row.token_expires_ms - margin) return true;
  }
  return false;
}

std::vector<std::pair<std::string, CredentialRotation::Result>> CredentialRotation::rotate_due() {
  int64_t now = clock_.now_ms();
  std::vector<std::string> ids;
  store_.read([&](store::ReadTx& tx) {
    for (const auto& row : tx.installations_to_bill())
      if (due(row, now)) ids.push_back(row.id);
  });
  std::vector<std::pair<std::string, Result>> out;
  for (const auto& id : ids) out.emplace_back(id, rotate(id));
  return out;
}

}  // namespace wharf::service
