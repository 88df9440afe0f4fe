#include "app/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "util/base64.h"
#include "util/crypto.h"

namespace wharf::app {
namespace {

struct Setting {
  const char* env;
  const char* flag;
  const char* help;
};

constexpr Setting kSettings[] = {
    {"INTEGRATION_CLIENT_ID", "client-id",
     "Integration (OAuth client) id, oac_…; the token audience"},
    {"INTEGRATION_CLIENT_SECRET", "client-secret",
     "Integration client secret (webhook signatures, SSO)"},
    {"WHARF_LISTEN", "listen", "host:port to listen on (default 0.0.0.0:3000)"},
    {"WHARF_DATA_DIR", "data-dir", "directory for state and keys (default ./data)"},
    {"WHARF_STATE_URL", "state-url", "state store URL (default sqlite://<data dir>/state.db)"},
    {"WHARF_STATE_POOL_SIZE", "state-pool-size",
     "connections a postgres:// state store opens at most (default 10)"},
    {"WHARF_OIDC_ISSUER", "oidc-issuer",
     "expected token issuer (default https://marketplace.vercel.com)"},
    {"WHARF_JWKS_URL", "jwks-url",
     "JWKS URL (default https://marketplace.vercel.com/.well-known/jwks)"},
    {"WHARF_VERCEL_API_URL", "vercel-api-url",
     "Vercel API base URL (default https://api.vercel.com)"},
    {"WHARF_CATALOG", "catalog", "catalog JSON file (default: built-in catalog)"},
    {"WHARF_POSTGRES_URL", "postgres-url",
     "admin connection of the PostgreSQL server the postgres product kind uses (CREATEDB, "
     "CREATEROLE); adds the postgres-db product to the built-in catalog"},
    {"WHARF_CREDENTIAL_ROTATION_DAYS", "credential-rotation-days",
     "rotate each installation's Vercel access token once it is this many days old (default 0: "
     "only a week before a known expiry)"},
    {"WHARF_RECONCILE_S", "reconcile-s",
     "seconds between comparisons of Vercel's resources with Wharf's: missing ones are imported "
     "again, unknown ones reported (default 3600; 0: off)"},
    {"WHARF_NOTICE_URL", "notice-url",
     "the provider's endpoint billing notices to each installation's contact are POSTed to "
     "(signed with WHARF_NOTICE_SECRET; default: none)"},
    {"WHARF_NOTICE_SECRET", "notice-secret",
     "at least 32 bytes; signs each notice (Wharf-Signature), required with WHARF_NOTICE_URL"},
    {"WHARF_USAGE_SAMPLE_S", "usage-sample-s",
     "seconds between samples of usage products measure themselves (default 60)"},
    {"WHARF_PUBLIC_URL", "public-url", "public base URL of this server"},
    {"WHARF_ENCRYPTION_KEY", "encryption-key",
     "base64 of 32 bytes (default: <data dir>/encryption.key)"},
    {"WHARF_THREADS", "threads", "I/O threads (default: the number of cores, at least 2)"},
    {"WHARF_MAX_BODY_BYTES", "max-body-bytes", "request body limit (default 1048576)"},
    {"WHARF_READ_TIMEOUT_MS", "read-timeout-ms", "time to receive a whole request (default 10000)"},
    {"WHARF_IDLE_TIMEOUT_MS", "idle-timeout-ms", "keep-alive idle timeout (default 60000)"},
    {"WHARF_DRAIN_TIMEOUT_MS", "drain-timeout-ms", "SIGTERM drain limit (default 15000)"},
    {"WHARF_JWKS_REFRESH_MS", "jwks-refresh-ms", "JWKS background refresh period (default 600000)"},
    {"WHARF_JWKS_MIN_REFRESH_MS", "jwks-min-refresh-ms",
     "min interval between unknown-kid refreshes (default 30000)"},
    {"WHARF_TOKEN_LEEWAY_S", "token-leeway-s", "clock leeway for exp/nbf/iat (default 10)"},
    {"WHARF_TOKEN_MAX_LIFETIME_S", "token-max-lifetime-s",
     "longest token lifetime accepted, exp - now and exp - iat (default 86400)"},
    {"WHARF_RATE_LIMIT_TOKEN", "rate-limit-token",
     "data-plane requests per database token, N/s|N/min|N/h or off (default 1000/s)"},
    {"WHARF_RATE_LIMIT_INSTALLATION", "rate-limit-installation",
     "data-plane requests per installation (default 5000/s)"},
    {"WHARF_RATE_LIMIT_REPL", "rate-limit-repl",
     "REPL commands per caller and per installation (default 20/s)"},
    {"WHARF_RATE_LIMIT_SSO", "rate-limit-sso",
     "SSO callbacks per client address and per installation (default 30/min)"},
    {"WHARF_OUTBOX_CONCURRENCY", "outbox-concurrency",
     "calls to Vercel out at once, each of a different installation (default 8)"},
    {"WHARF_RETAIN_OUTBOX_DAYS", "retain-outbox-days",
     "days delivered calls to Vercel are kept (default 30; dead letters stay until retried or "
     "dropped)"},
    {"WHARF_RETAIN_WEBHOOKS_DAYS", "retain-webhooks-days",
     "days processed webhook deliveries are kept for de-duplication (default 30)"},
    {"WHARF_RETAIN_USAGE_DAYS", "retain-usage-days",
     "days of the usage ledger kept (default 400, at least 70: billing reads two periods)"},
    {"WHARF_SQL_STREAM_IDLE_S", "sql-stream-idle-s",
     "seconds a libSQL stream may stay unused before it closes and its open transaction rolls "
     "back (default 10)"},
    {"WHARF_SQL_TRANSACTIONS_PER_DATABASE", "sql-transactions-per-database",
     "libSQL client transactions open at once on one database (default 8)"},
    {"WHARF_HANDLER_THREADS", "handler-threads",
     "threads that run request handlers off the I/O threads (default 4 x cores, at least 8)"},
    {"WHARF_LOG_LEVEL", "log-level", "debug, info, warn or error (default info)"},
    {"WHARF_WEBHOOK_PATH", "webhook-path", "path of the Webhook URL (default /webhooks/vercel)"},
    {"WHARF_BILLING_INTERVAL_S", "billing-interval-s",
     "seconds between billing data submissions per installation (default 3600)"},
    {"WHARF_BALANCE_INTERVAL_S", "balance-interval-s",
     "seconds between prepaid balance submissions (default 3600; also after every change)"},
    {"WHARF_OVERDUE_GRACE_S", "overdue-grace-s",
     "seconds an overdue invoice waits before its resources are suspended (default 0)"},
    {"WHARF_UNINSTALL_GRACE_DAYS", "uninstall-grace-days",
     "days an uninstall may stay unfinalized before its leftover resources are suspended, and "
     "days from then until they are deleted (1-3650, default 30)"},
    {"WHARF_INVOICE_TEST_MODE", "invoice-test-mode",
     "submit invoices in Vercel's test mode with this result: paid, notpaid or overdue"},
    {"WHARF_VERCEL_TIMEOUT_MS", "vercel-timeout-ms",
     "time limit of one call to Vercel or the JWKS URL (default 10000)"},
    {"WHARF_SINGLE_REPLICA", "single-replica",
     "1 = only one replica will run on this state store: allows sqlite products (local disk) "
     "with a PostgreSQL WHARF_STATE_URL"},
    {"WHARF_TEST_CLOCK", "test-clock",
     "1 = enable POST /ops/clock to move time forward (test deployments only)"},
    // SSO and the dashboard
    {"WHARF_SSO_CALLBACK_PATH", "sso-callback-path",
     "path of the Redirect Login URL (default /sso/callback)"},
    {"WHARF_URL_SLUG", "url-slug", "integration URL slug, for provider-initiated SSO links"},
    {"WHARF_VERCEL_SSO_URL", "vercel-sso-url",
     "provider-initiated SSO base (default https://vercel.com/sso/integrations)"},
    {"WHARF_SESSION_TTL_S", "session-ttl-s", "dashboard session lifetime (default 28800)"},
    {"WHARF_SUPPORT_EMAIL", "support-email", "support e-mail shown in the dashboard"},
    {"WHARF_SUPPORT_URL", "support-url", "support URL shown in the dashboard"},
};

int64_t parse_int(const std::string& var, const std::string& v, int64_t min, int64_t max) {
  if (v.empty()) throw ConfigError(var, "must be a number");
  size_t pos = 0;
  long long n = 0;
  try {
    n = std::stoll(v, &pos, 10);
  } catch (const std::exception&) {
    throw ConfigError(var, "must be a number, got '" + v + "'");
  }
  if (pos != v.size()) throw ConfigError(var, "must be a number, got '" + v + "'");
  if (n < min || n > max)
    throw ConfigError(var,
                      "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return n;
}

void require_http_url(const std::string& var, const std::string& v) {
  if (v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0)
    throw ConfigError(var, "must be an http:// or https:// URL, got '" + v + "'");
  if (v.size() <= 8) throw ConfigError(var, "has no host");
}

}  // namespace

std::string config_help() {
  std::ostringstream out;
  for (const auto& s : kSettings) {
    std::string left = std::string(s.env) + " / --" + s.flag;
    out << "  " << left << std::string(left.size() < 46 ? 46 - left.size() : 1, ' ') << s.help
        << "\n";
  }
  return out.str();
}

Config load_config(const std::map<std::string, std::string>& env,
                   const std::vector<std::string>& args) {
  std::map<std::string, std::string> values;
  for (const auto& s : kSettings) {
    auto it = env.find(s.env);
    if (it != env.end()) values[s.env] = it->second;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) throw ConfigError(a, "unexpected argument");
    std::string name = a.substr(2), value;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      throw ConfigError(a, "needs a value");
    }
    const Setting* found = nullptr;
    for (const auto& s : kSettings)
      if (name == s.flag) found = &s;
    if (!found) throw ConfigError("--" + name, "unknown flag");
    values[found->env] = value;
  }
  auto get = [&values](const char* var) -> std::optional<std::string> {
    auto it = values.find(var);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };

  Config c;
  c.client_id = get("INTEGRATION_CLIENT_ID").value_or("");
  if (c.client_id.empty())
    throw ConfigError("INTEGRATION_CLIENT_ID", "is required (the oac_… id of your integration)");
  c.client_secret = get("INTEGRATION_CLIENT_SECRET").value_or("");
  if (c.client_secret.empty()) throw ConfigError("INTEGRATION_CLIENT_SECRET", "is required");

  if (auto v = get("WHARF_LISTEN")) {
    auto colon = v->rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw ConfigError("WHARF_LISTEN", "must be host:port, got '" + *v + "'");
    c.listen_host = v->substr(0, colon);
    if (c.listen_host.size() > 2 && c.listen_host.front() == '[' && c.listen_host.back() == ']')
      c.listen_host = c.listen_host.substr(1, c.listen_host.size() - 2);
    c.listen_port =
        static_cast<uint16_t>(parse_int("WHARF_LISTEN", v->substr(colon + 1), 0, 65535));
  }
  if (auto v = get("WHARF_DATA_DIR")) {
    if (v->empty()) throw ConfigError("WHARF_DATA_DIR", "must not be empty");
    c.data_dir = *v;
  }
  c.state_url = get("WHARF_STATE_URL").value_or("sqlite://" + c.data_dir + "/state.db");
  if (c.state_url.find("://") == std::string::npos)
    throw ConfigError("WHARF_STATE_URL", "must be a URL such as sqlite:///var/lib/wharf/state.db");
  if (auto v = get("WHARF_STATE_POOL_SIZE"))
    c.state_pool_size = parse_int("WHARF_STATE_POOL_SIZE", *v, 1, 1000);
  if (auto v = get("WHARF_OIDC_ISSUER")) {
    if (v->empty()) throw ConfigError("WHARF_OIDC_ISSUER", "must not be empty");
    c.oidc_issuer = *v;
  }
  if (auto v = get("WHARF_JWKS_URL")) {
    require_http_url("WHARF_JWKS_URL", *v);
    c.jwks_url = *v;
  }
  if (auto v = get("WHARF_VERCEL_API_URL")) {
    require_http_url("WHARF_VERCEL_API_URL", *v);
    while (v->size() > 8 && v->back() == '/') v->pop_back();
    c.vercel_api_url = *v;
  }
  if (auto v = get("WHARF_CATALOG"); v && !v->empty()) c.catalog_path = *v;
  if (auto v = get("WHARF_POSTGRES_URL"); v && !v->empty()) {
    if (v->rfind("postgres://", 0) != 0 && v->rfind("postgresql://", 0) != 0)
      throw ConfigError("WHARF_POSTGRES_URL", "must be a postgresql:// URL");
    c.postgres_url = *v;
  }
  if (auto v = get("WHARF_PUBLIC_URL"); v && !v->empty()) {
    require_http_url("WHARF_PUBLIC_URL", *v);
    while (v->size() > 8 && v->back() == '/') v->pop_back();
    c.public_url = *v;
  }
  if (auto v = get("WHARF_ENCRYPTION_KEY"); v && !v->empty()) {
    auto raw = util::base64_decode(*v);
    if (!raw) throw ConfigError("WHARF_ENCRYPTION_KEY", "is not valid base64");
    if (raw->size() != 32)
      throw ConfigError("WHARF_ENCRYPTION_KEY",
                        "must decode to 32 bytes, got " + std::to_string(raw->size()));
    c.encryption_key_b64 = *v;
  }
  unsigned hw = std::max(2u, std::thread::hardware_concurrency());
  c.threads = static_cast<int>(
      parse_int("WHARF_THREADS", get("WHARF_THREADS").value_or(std::to_string(hw)), 1, 256));
  c.handler_threads = static_cast<int>(parse_int(
      "WHARF_HANDLER_THREADS",
      get("WHARF_HANDLER_THREADS").value_or(std::to_string(std::max(8u, 4 * hw))), 1, 1024));
  if (auto v = get("WHARF_MAX_BODY_BYTES"))
    c.max_body_bytes =
        static_cast<uint64_t>(parse_int("WHARF_MAX_BODY_BYTES", *v, 1024, 1LL << 30));
  if (auto v = get("WHARF_READ_TIMEOUT_MS"))
    c.read_timeout_ms = parse_int("WHARF_READ_TIMEOUT_MS", *v, 100, 3600000);
  if (auto v = get("WHARF_IDLE_TIMEOUT_MS"))
    c.idle_timeout_ms = parse_int("WHARF_IDLE_TIMEOUT_MS", *v, 100, 3600000);
  if (auto v = get("WHARF_DRAIN_TIMEOUT_MS"))
    c.drain_timeout_ms = parse_int("WHARF_DRAIN_TIMEOUT_MS", *v, 0, 3600000);
  if (auto v = get("WHARF_JWKS_REFRESH_MS"))
    c.jwks_refresh_ms = parse_int("WHARF_JWKS_REFRESH_MS", *v, 1000, 86400000);
  if (auto v = get("WHARF_JWKS_MIN_REFRESH_MS"))
    c.jwks_min_refresh_ms = parse_int("WHARF_JWKS_MIN_REFRESH_MS", *v, 0, 86400000);
  if (auto v = get("WHARF_TOKEN_LEEWAY_S"))
    c.leeway_s = parse_int("WHARF_TOKEN_LEEWAY_S", *v, 0, 300);
  auto rate = [&get](const char* name, service::RateRule& rule) {
    if (auto v = get(name)) {
      try {
        rule = service::RateRule::parse(*v);
      } catch (const std::invalid_argument& e) {
        throw ConfigError(name, e.what());
      }
    }
  };
  rate("WHARF_RATE_LIMIT_TOKEN", c.rate_limits.data_plane_token);
  rate("WHARF_RATE_LIMIT_INSTALLATION", c.rate_limits.data_plane_installation);
  rate("WHARF_RATE_LIMIT_REPL", c.rate_limits.repl);
  rate("WHARF_RATE_LIMIT_SSO", c.rate_limits.sso);
  if (auto v = get("WHARF_OUTBOX_CONCURRENCY"))
    c.outbox_concurrency = parse_int("WHARF_OUTBOX_CONCURRENCY", *v, 1, 256);
  if (auto v = get("WHARF_CREDENTIAL_ROTATION_DAYS"); v && !v->empty())
    c.credential_rotation_days = parse_int("WHARF_CREDENTIAL_ROTATION_DAYS", *v, 0, 3650);
  if (auto v = get("WHARF_NOTICE_URL"); v && !v->empty()) {
    if (v->rfind("https://", 0) != 0 && v->rfind("http://", 0) != 0)
      throw ConfigError("WHARF_NOTICE_URL", "must be an http(s) URL");
    c.notice_url = *v;
    auto secret = get("WHARF_NOTICE_SECRET");
    if (!secret || secret->size() < 32)
      throw ConfigError("WHARF_NOTICE_SECRET",
                        "must be set to at least 32 bytes when WHARF_NOTICE_URL is");
    c.notice_secret = *secret;
  }
  if (auto v = get("WHARF_RECONCILE_S"); v && !v->empty())
    c.reconcile_s = parse_int("WHARF_RECONCILE_S", *v, 0, 7 * 86400);
  if (auto v = get("WHARF_USAGE_SAMPLE_S"); v && !v->empty())
    c.usage_sample_s = parse_int("WHARF_USAGE_SAMPLE_S", *v, 1, 3600);
  if (auto v = get("WHARF_RETAIN_OUTBOX_DAYS"))
    c.retention.outbox_days = parse_int("WHARF_RETAIN_OUTBOX_DAYS", *v, 1, 36500);
  if (auto v = get("WHARF_RETAIN_WEBHOOKS_DAYS"))
    c.retention.webhook_days = parse_int("WHARF_RETAIN_WEBHOOKS_DAYS", *v, 1, 36500);
  if (auto v = get("WHARF_RETAIN_USAGE_DAYS"))
    c.retention.usage_days = parse_int("WHARF_RETAIN_USAGE_DAYS", *v, 70, 36500);
  if (auto v = get("WHARF_SQL_STREAM_IDLE_S"))
    c.sql_stream_idle_s = parse_int("WHARF_SQL_STREAM_IDLE_S", *v, 1, 3600);
  if (auto v = get("WHARF_SQL_TRANSACTIONS_PER_DATABASE"))
    c.sql_transactions_per_database = parse_int("WHARF_SQL_TRANSACTIONS_PER_DATABASE", *v, 1, 1000);
  if (auto v = get("WHARF_TOKEN_MAX_LIFETIME_S"))
    c.token_max_lifetime_s = parse_int("WHARF_TOKEN_MAX_LIFETIME_S", *v, 60, 31536000);
  if (auto v = get("WHARF_LOG_LEVEL")) {
    if (*v != "debug" && *v != "info" && *v != "warn" && *v != "error")
      throw ConfigError("WHARF_LOG_LEVEL", "must be debug, info, warn or error");
    c.log_level = *v;
  }
  if (auto v = get("WHARF_WEBHOOK_PATH")) {
    if (v->empty() || (*v)[0] != '/') throw ConfigError("WHARF_WEBHOOK_PATH", "must start with /");
    c.webhook_path = *v;
  }
  if (auto v = get("WHARF_BILLING_INTERVAL_S"))
    c.billing_interval_s = parse_int("WHARF_BILLING_INTERVAL_S", *v, 60, 86400);
  if (auto v = get("WHARF_BALANCE_INTERVAL_S"))
    c.balance_interval_s = parse_int("WHARF_BALANCE_INTERVAL_S", *v, 60, 86400);
  if (auto v = get("WHARF_OVERDUE_GRACE_S"))
    c.overdue_grace_s = parse_int("WHARF_OVERDUE_GRACE_S", *v, 0, 90LL * 86400);
  if (auto v = get("WHARF_UNINSTALL_GRACE_DAYS"))
    c.uninstall_grace_days = parse_int("WHARF_UNINSTALL_GRACE_DAYS", *v, 1, 3650);
  if (auto v = get("WHARF_INVOICE_TEST_MODE"); v && !v->empty()) {
    if (*v != "paid" && *v != "notpaid" && *v != "overdue")
      throw ConfigError("WHARF_INVOICE_TEST_MODE", "must be paid, notpaid or overdue");
    c.invoice_test_mode = *v;
  }
  if (auto v = get("WHARF_VERCEL_TIMEOUT_MS"))
    c.vercel_timeout_ms = parse_int("WHARF_VERCEL_TIMEOUT_MS", *v, 100, 600000);
  if (auto v = get("WHARF_SINGLE_REPLICA")) {
    if (*v != "0" && *v != "1") throw ConfigError("WHARF_SINGLE_REPLICA", "must be 0 or 1");
    c.single_replica = *v == "1";
  }
  if (auto v = get("WHARF_TEST_CLOCK")) {
    if (*v != "0" && *v != "1") throw ConfigError("WHARF_TEST_CLOCK", "must be 0 or 1");
    c.test_clock = *v == "1";
  }
  // ---- SSO and the dashboard ----
  if (auto v = get("WHARF_SSO_CALLBACK_PATH")) {
    if (v->size() < 2 || (*v)[0] != '/' || v->rfind("/dashboard", 0) == 0 ||
        v->rfind("/v1/", 0) == 0 || *v == c.webhook_path)
      throw ConfigError("WHARF_SSO_CALLBACK_PATH",
                        "must start with / and not be under /dashboard, /v1/ or the webhook path");
    c.sso_callback_path = *v;
  }
  if (auto v = get("WHARF_URL_SLUG")) {
    for (char ch : *v)
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_'))
        throw ConfigError("WHARF_URL_SLUG", "may only hold letters, digits, - and _");
    c.url_slug = *v;
  }
  if (auto v = get("WHARF_VERCEL_SSO_URL")) {
    require_http_url("WHARF_VERCEL_SSO_URL", *v);
    while (v->size() > 8 && v->back() == '/') v->pop_back();
    c.vercel_sso_url = *v;
  }
  if (auto v = get("WHARF_SESSION_TTL_S"))
    c.session_ttl_s = parse_int("WHARF_SESSION_TTL_S", *v, 60, 7 * 86400);
  if (auto v = get("WHARF_SUPPORT_EMAIL")) c.support_email = *v;
  if (auto v = get("WHARF_SUPPORT_URL"); v && !v->empty()) {
    require_http_url("WHARF_SUPPORT_URL", *v);
    c.support_url = *v;
  }
  return c;
}

std::string load_or_create_encryption_key(const Config& config) {
  if (config.encryption_key_b64) return *util::base64_decode(*config.encryption_key_b64);
  const std::string path = config.data_dir + "/encryption.key";
  std::ifstream in(path);
  if (in) {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.pop_back();
    auto raw = util::base64_decode(text);
    if (!raw || raw->size() != 32)
      throw ConfigError("WHARF_ENCRYPTION_KEY", path + " does not hold base64 of 32 bytes");
    return *raw;
  }
  std::string key = util::random_bytes(32);
  std::string text = util::base64_encode(key) + "\n";
  // O_EXCL: two processes starting at once must not both write (and disagree on) the key.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return load_or_create_encryption_key(config);
    throw ConfigError("WHARF_ENCRYPTION_KEY",
                      "cannot create " + path + ": " + std::strerror(errno));
  }
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw ConfigError("WHARF_ENCRYPTION_KEY", "cannot write " + path);
  }
  return key;
}

}  // namespace wharf::app
