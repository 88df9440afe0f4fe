// Installation request/response types of partner-api.md §4.10–4.13 and §5.1–5.4, with
// strict parsing (every problem reported by JSON path) and rendering.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/json_check.h"

namespace wharf::model {

struct Notification {
  std::string level;  // info | warn | error
  std::string title;
  std::optional<std::string> message;
  std::optional<std::string> href;  // http(s):// or sso:

  static std::optional<Notification> parse(const Json& j, const std::string& path, Checker& check);
  Json to_json() const;
};

struct UpsertInstallationRequest {
  std::vector<std::string> scopes;
  Json accepted_policies = Json::object();  // policy id -> ISO-8601 timestamp
  std::string access_token;
  std::string token_type;
  std::optional<Json> account;  // AccountInfo, stored as received (validated)

  static UpsertInstallationRequest parse(const Json& body);  // throws ApiError 400
};

struct UpdateInstallationRequest {
  std::optional<std::string> billing_plan_id;
  static UpdateInstallationRequest parse(const Json& body);
};

struct DeleteInstallationRequest {
  bool cascade_resource_deletion = false;
  std::optional<std::string> reason;
  // An absent or empty body is allowed (the body is optional).
  static DeleteInstallationRequest parse(std::string_view content_type, std::string_view body);
};

// The response of Get / Upsert / Update Installation.
struct InstallationState {
  std::optional<Json> billing_plan;          // public BillingPlan JSON
  std::optional<Notification> notification;  // rendered as null when absent
  Json to_json() const;
};

}  // namespace wharf::model
