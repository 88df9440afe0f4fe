// `wharf serve` configuration: environment variables, each mirrored by a --flag
// (e.g. WHARF_LISTEN ⇔ --listen). Invalid or missing settings stop start-up with one line
// naming the variable (ConfigError).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "service/rate_limits.h"
#include "service/retention.h"

namespace wharf::app {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& var, const std::string& problem)
      : std::runtime_error(var + ": " + problem), variable(var) {}
  std::string variable;
};

struct Config {
  std::string client_id;      // INTEGRATION_CLIENT_ID
  std::string client_secret;  // INTEGRATION_CLIENT_SECRET
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 3000;  // WHARF_LISTEN
  std::string data_dir = "./data";
  std::string state_url;  // WHARF_STATE_URL (default sqlite://<data dir>/state.db)
  // Connections a postgres:// state store opens at most (reads and writes hold one each).
  int64_t state_pool_size = 10;  // WHARF_STATE_POOL_SIZE
  std::string oidc_issuer = "https://marketplace.vercel.com";
  std::string jwks_url = "https://marketplace.vercel.com/.well-known/jwks";
  std::string vercel_api_url = "https://api.vercel.com";
  std::optional<std::string> catalog_path;  // WHARF_CATALOG
  // Admin connection of the `postgres` product kind (CREATEDB, CREATEROLE); with it the
  // built-in catalog sells a PostgreSQL product too.
  std::optional<std::string> postgres_url;        // WHARF_POSTGRES_URL
  std::optional<std::string> public_url;          // WHARF_PUBLIC_URL
  std::optional<std::string> encryption_key_b64;  // WHARF_ENCRYPTION_KEY
  int threads = 4;          // WHARF_THREADS: I/O threads (parse, authenticate, write)
  int handler_threads = 8;  // WHARF_HANDLER_THREADS: handlers that may wait (store, products)
  uint64_t max_body_bytes = 1 << 20;
  int64_t read_timeout_ms = 10000;
  int64_t idle_timeout_ms = 60000;
  int64_t drain_timeout_ms = 15000;
  int64_t jwks_refresh_ms = 600000;
  int64_t jwks_min_refresh_ms = 30000;
  int64_t leeway_s = 10;
  int64_t token_max_lifetime_s = 86400;       // WHARF_TOKEN_MAX_LIFETIME_S
  service::RateLimitOptions rate_limits;      // WHARF_RATE_LIMIT_*
  service::Retention::Options retention;      // WHARF_RETAIN_*
  int64_t outbox_concurrency = 8;             // WHARF_OUTBOX_CONCURRENCY
  int64_t usage_sample_s = 60;                // WHARF_USAGE_SAMPLE_S
  int64_t sql_stream_idle_s = 10;             // WHARF_SQL_STREAM_IDLE_S
  int64_t sql_transactions_per_database = 8;  // WHARF_SQL_TRANSACTIONS_PER_DATABASE
  std::string log_level = "info";
  std::string webhook_path = "/webhooks/vercel";  // WHARF_WEBHOOK_PATH
  // Billing.
  int64_t billing_interval_s = 3600;  // WHARF_BILLING_INTERVAL_S: interim billing data
  int64_t balance_interval_s = 3600;  // WHARF_BALANCE_INTERVAL_S: prepaid balances
  int64_t overdue_grace_s = 0;        // WHARF_OVERDUE_GRACE_S: overdue → suspended after
  // WHARF_UNINSTALL_GRACE_DAYS: an unfinalized uninstall's leftover resources are suspended
  // this long after it (at once when Vercel reports it gone), deleted this long after that.
  int64_t uninstall_grace_days = 30;
  std::string invoice_test_mode;      // WHARF_INVOICE_TEST_MODE: "", paid, notpaid, overdue
  bool test_clock = false;            // WHARF_TEST_CLOCK: POST /ops/clock moves time (tests)
  int64_t vercel_timeout_ms = 10000;  // WHARF_VERCEL_TIMEOUT_MS: one call to Vercel
  // WHARF_CREDENTIAL_ROTATION_DAYS: rotate installation tokens older than this (0: only
  // tokens near their known expiry).
  int64_t credential_rotation_days = 0;
  // WHARF_RECONCILE_S: seconds between comparisons of Vercel's resources with ours (0: off).
  int64_t reconcile_s = 3600;
  // WHARF_NOTICE_URL / WHARF_NOTICE_SECRET: billing notices to each installation's contact are
  // POSTed, signed, to this endpoint of the provider's (service/notices.h); "" = none.
  std::string notice_url;
  std::string notice_secret;
  // WHARF_SINGLE_REPLICA: only one `wharf serve` will ever run on this (shared) state store,
  // so products that keep data on local disk (sqlite) are allowed with a PostgreSQL store.
  bool single_replica = false;
  // ---- SSO and the dashboard ----
  std::string sso_callback_path = "/sso/callback";                     // WHARF_SSO_CALLBACK_PATH
  std::string url_slug;                                                // WHARF_URL_SLUG
  std::string vercel_sso_url = "https://vercel.com/sso/integrations";  // WHARF_VERCEL_SSO_URL
  int64_t session_ttl_s = 8 * 3600;                                    // WHARF_SESSION_TTL_S
  std::string support_email;                                           // WHARF_SUPPORT_EMAIL
  std::string support_url;                                             // WHARF_SUPPORT_URL
};

// Reads `env` (name → value) overridden by `args` (--listen=… or --listen …).
Config load_config(const std::map<std::string, std::string>& env,
                   const std::vector<std::string>& args);
// The variables and flags, for `wharf help`.
std::string config_help();

// Loads the 32-byte key from WHARF_ENCRYPTION_KEY, or from <data dir>/encryption.key,
// generating that file (mode 0600) on first start.
std::string load_or_create_encryption_key(const Config& config);

}  // namespace wharf::app
