// Resource request/response types of partner-api.md §4.5–4.8 and §5.5–5.11.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/json_check.h"

namespace wharf::model {

struct Secret {
  std::string name;
  std::string value;
  std::optional<std::string> prefix;
  Json environment_overrides;  // null or {development?, preview?, production?}
  Json to_json() const;
  static Secret from_json(const Json& j);
};

// ProtocolSettings, request variant: {experimentation?: {edgeConfigId?}}.
std::optional<Json> parse_protocol_settings(const Json& body, Checker& check);
// Response variant of stored request settings. `syncs`: the resource's product writes to the
// Global (Edge) Config the user chose (the flags product); edgeConfigSyncingEnabled is true
// only then, and only until Vercel stopped it (mark_config_sync_stopped).
Json render_protocol_settings(const Json& stored, bool syncs);
// True when the stored settings ask for Global Config syncing (an Edge/Global Config id) and
// it was not stopped since they were set.
bool wants_config_sync(const Json& stored);
// Syncing stopped by Vercel's answer (409/410): recorded in the stored settings, so it holds
// until Update Resource sets them again.
void mark_config_sync_stopped(Json& stored, const std::string& why);

struct ProvisionResourceRequest {
  std::string product_id;
  std::string name;
  Json metadata = Json::object();
  std::string billing_plan_id;
  std::optional<std::string> external_id;
  std::optional<Json> protocol_settings;
  static ProvisionResourceRequest parse(const Json& body);
};

struct UpdateResourceRequest {
  std::optional<std::string> name;
  std::optional<Json> metadata;
  std::optional<std::string> billing_plan_id;
  std::optional<std::string> status;  // deprecated; any ResourceStatus (the service decides)
  std::optional<Json> protocol_settings;
  static UpdateResourceRequest parse(const Json& body);
};

struct RotateSecretsRequest {
  std::optional<std::string> reason;
  double delay_hours = 0;  // 0–720, fractional allowed
  static RotateSecretsRequest parse(std::string_view content_type, std::string_view body);
};

struct ReplRequest {
  std::string input;
  bool read_only = false;
  static ReplRequest parse(const Json& body);
};

bool is_resource_status(const std::string& s);

}  // namespace wharf::model
