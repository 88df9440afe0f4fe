#include "product/postgres_db/postgres_db.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include "product/postgres_db/console.h"
#include "util/crypto.h"
#include "util/pg_array.h"

namespace wharf::product {

using nlohmann::json;
using postgres_db::Conn;
using postgres_db::ConnParams;
using postgres_db::PgError;
using postgres_db::Result;
using postgres_db::Transaction;

namespace {

constexpr char kStateTag[] = "postgres";
constexpr size_t kPasswordBytes = 24;  // 192 bits, base64url: URL-safe without escaping
// How long a console login's password is valid (it is removed as soon as the login is made).
constexpr int kConsoleLoginSeconds = 60;
// Per-statement bounds of the admin connection's own work.
constexpr char kAdminOptions[] = "-c lock_timeout=30000 -c statement_timeout=120000";
// How long pg_terminate_backend waits for each session to end (PostgreSQL 14+).
constexpr int kTerminateWaitMs = 5000;

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return false;
  return true;
}

std::string percent_encode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

// The advisory lock of one resource's lifecycle (all Wharf instances on the server share it).
std::string lock_key(const std::string& database) {
  std::string digest = util::sha256("wharf-postgres:" + database);
  uint64_t key = 0;
  for (int i = 0; i < 8; ++i) key = (key << 8) | static_cast<unsigned char>(digest[i]);
  return std::to_string(static_cast<int64_t>(key));
}

// Holds the resource's advisory lock on `conn` (a connection to the admin database) for its
// lifetime. Declare it before any Transaction on the same connection.
class ResourceLock {
 public:
  ResourceLock(Conn& conn, const std::string& database) : conn_(conn), key_(lock_key(database)) {
    conn_.query("SELECT pg_catalog.pg_advisory_lock($1::bigint)", {key_});
  }
  ~ResourceLock() {
    try {
      if (conn_.ok()) conn_.query("SELECT pg_catalog.pg_advisory_unlock($1::bigint)", {key_});
    } catch (const PgError&) {
      conn_.mark_broken();  // closed, which releases the lock
    }
  }
  ResourceLock(const ResourceLock&) = delete;
  ResourceLock& operator=(const ResourceLock&) = delete;

 private:
  Conn& conn_;
  std::string key_;
};

// Runs `f`, turning a PostgreSQL failure into ProductUnavailable (safe to retry).
template <typename F>
auto guarded(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const PgError& e) {
    throw ProductUnavailable("postgres: " + what + ": " + e.what());
  }
}

[[noreturn]] void not_found(const std::string& resource_id) {
  throw ProductRefused(404, "not_found", "resource " + resource_id + " has no database",
                       std::nullopt);
}

// A branch's copy waits for sessions on the source to end this often, this long apart.
constexpr int kBranchAttempts = 20;
constexpr int kBranchRetryMs = 250;

std::string new_password() {
  return util::random_token(kPasswordBytes);
}

}  // namespace

// What the database's COMMENT keeps (see the header).
struct PostgresDb::State {
  std::string resource_id;
  int slot = 0;  // the active login pair: 0 = a, 1 = b
  bool suspended = false;
  std::optional<int64_t> transactions;  // the counter at the last sample (or provision)

  std::string to_comment() const {
    json j = {{"wharf", kStateTag},
              {"resource", resource_id},
              {"active", slot == 0 ? "a" : "b"},
              {"suspended", suspended}};
    if (transactions) j["transactions"] = *transactions;
    return j.dump();
  }
  // nullopt for a comment that is not ours.
  static std::optional<State> parse(const std::string& comment) {
    try {
      return parse_json(json::parse(comment, nullptr, /*allow_exceptions=*/false));
    } catch (const json::exception&) {
      return std::nullopt;  // a comment of ours never has fields of other types
    }
  }
  static std::optional<State> parse_json(const json& j) {
    if (!j.is_object() || j.value("wharf", "") != kStateTag) return std::nullopt;
    auto resource = j.find("resource");
    if (resource == j.end() || !resource->is_string()) return std::nullopt;
    State s;
    s.resource_id = resource->get<std::string>();
    s.slot = j.value("active", "a") == "b" ? 1 : 0;
    s.suspended = j.value("suspended", false);
    auto t = j.find("transactions");
    if (t != j.end() && t->is_number_integer()) s.transactions = t->get<int64_t>();
    return s;
  }
};

struct PostgresDb::Plan {
  int64_t statement_timeout_ms = 0;
  int64_t connection_limit = -1;  // -1: unlimited
};

namespace {

struct DbInfo {
  bool exists = false;
  bool allow_connections = true;
  std::optional<PostgresDb::Names> names;
  std::string comment;
};

DbInfo read_info(Conn& admin, const std::string& database) {
  Result r = admin.query(
      "SELECT datallowconn, pg_catalog.shobj_description(oid, 'pg_database') FROM "
      "pg_catalog.pg_database WHERE datname = $1",
      {database});
  DbInfo info;
  if (r.rows() == 0) return info;
  info.exists = true;
  info.allow_connections = r.boolean(0, 0);
  if (!r.null(0, 1)) info.comment = r.text(0, 1);
  return info;
}

void write_state(Conn& admin, const std::string& database, const std::string& comment) {
  admin.exec("COMMENT ON DATABASE " + admin.ident(database) + " IS " + admin.literal(comment));
}

int64_t transactions_now(Conn& admin, const std::string& database) {
  return admin
      .query(
          "SELECT COALESCE((SELECT xact_commit + xact_rollback FROM pg_catalog.pg_stat_database "
          "WHERE datname = $1), 0)",
          {database})
      .integer(0, 0);
}

// The server's clock `seconds` from now, as a timestamp literal's text.
std::string server_time_in(Conn& admin, int64_t seconds) {
  return admin
      .query("SELECT (pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $1))::text",
             {std::to_string(seconds)})
      .text(0, 0);
}

void set_password(Conn& admin, const std::string& role, const std::string& password) {
  admin.exec("ALTER ROLE " + admin.ident(role) + " LOGIN PASSWORD " +
             admin.literal(admin.scram_verifier(password, role)) + " VALID UNTIL 'infinity'");
}

// Creates whatever role is missing and (re)applies memberships and login defaults.
void ensure_roles(Conn& admin, const PostgresDb::Names& n) {
  std::vector<std::string> all = {n.owner, n.rw[0], n.rw[1], n.ro, n.ro_login[0], n.ro_login[1]};
  Transaction tx(admin);
  Result existing = admin.query(
      "SELECT rolname, pg_catalog.pg_has_role(current_user, oid, 'USAGE') FROM "
      "pg_catalog.pg_roles WHERE rolname = ANY($1::text[])",
      {util::pg_text_array(all)});
  std::vector<std::string> have;
  std::vector<std::string> member;
  for (int i = 0; i < existing.rows(); ++i) {
    have.push_back(existing.text(i, 0));
    if (existing.boolean(i, 1)) member.push_back(existing.text(i, 0));
  }
  auto contains = [](const std::vector<std::string>& v, const std::string& s) {
    for (const auto& x : v)
      if (x == s) return true;
    return false;
  };
  std::string sql;
  for (const auto& role : all) {
    // Every role may log in: the owner and <db>-ro only for the console, with a password
    // that lives for one login; none can create databases or roles.
    if (!contains(have, role))
      sql += "CREATE ROLE " + admin.ident(role) +
             " LOGIN INHERIT NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n";
    if (!contains(member, role)) sql += "GRANT " + admin.ident(role) + " TO CURRENT_USER;\n";
  }
  std::string owner = admin.ident(n.owner);
  std::string ro = admin.ident(n.ro);
  for (int slot = 0; slot < 2; ++slot) {
    std::string rw = admin.ident(n.rw[static_cast<size_t>(slot)]);
    std::string ro_login = admin.ident(n.ro_login[static_cast<size_t>(slot)]);
    sql += "GRANT " + owner + " TO " + rw + ";\n";
    sql += "ALTER ROLE " + rw + " SET role = " + admin.literal(n.owner) + ";\n";
    sql += "GRANT " + ro + " TO " + ro_login + ";\n";
    sql += "ALTER ROLE " + ro_login + " SET default_transaction_read_only = on;\n";
  }
  admin.exec(sql);
  tx.commit();
}

}  // namespace

// ---------------------------------------------------------------------------------------

PostgresDb::PostgresDb(Config config)
    : config_(std::move(config)), pool_(params_for(""), config_.max_idle_connections) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(config_.admin_url.c_str(), &error);
  if (!options) {
    std::string message = error ? error : "out of memory";
    if (error) PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw std::invalid_argument("postgres_url is not a valid libpq connection string: " + message);
  }
  std::string hostaddr;
  for (PQconninfoOption* o = options; o->keyword; ++o) {
    if (!o->val) continue;
    if (std::strcmp(o->keyword, "host") == 0) admin_host_ = o->val;
    if (std::strcmp(o->keyword, "hostaddr") == 0) hostaddr = o->val;
    if (std::strcmp(o->keyword, "port") == 0) admin_port_ = o->val;
    if (std::strcmp(o->keyword, "sslmode") == 0) sslmode_ = o->val;
  }
  PQconninfoFree(options);
  if (admin_host_.empty()) admin_host_ = hostaddr;
  // A list of hosts (failover): the first one.
  admin_host_ = admin_host_.substr(0, admin_host_.find(','));
  admin_port_ = admin_port_.substr(0, admin_port_.find(','));
  if (admin_host_.empty()) admin_host_ = "localhost";
  if (admin_port_.empty()) admin_port_ = "5432";
}

PostgresDb::~PostgresDb() = default;

std::unique_ptr<Product> PostgresDb::make(const KindSettings& settings) {
  auto it = settings.settings.find("postgres_url");
  if (it == settings.settings.end() || it->second.empty())
    throw std::invalid_argument(
        "the postgres product kind needs the setting postgres_url (WHARF_POSTGRES_URL): the "
        "libpq URL of an admin role with CREATEDB and CREATEROLE");
  Config config;
  config.admin_url = it->second;
  auto host = settings.settings.find("postgres_public_host");
  if (host != settings.settings.end()) config.public_host = host->second;
  auto number = [&settings](const char* name, int64_t fallback, int64_t max) {
    int64_t value = 0;
    try {
      value = settings.number(name, fallback);
    } catch (const std::exception&) {
      value = -1;
    }
    if (value < 0 || value > max)
      throw std::invalid_argument(std::string("setting ") + name +
                                  " must be an integer from 0 to " + std::to_string(max));
    return value;
  };
  config.public_port = number("postgres_public_port", 0, 65535);
  config.default_connection_limit = number("postgres_connection_limit", 20, INT32_MAX);
  return std::make_unique<PostgresDb>(std::move(config));
}

const Descriptor& PostgresDb::kDescriptor() {
  static const Descriptor descriptor = [] {
    Descriptor d;
    d.metrics = {{"storageBytes", true, "bytes"}, {"transactions", false, "transactions"}};
    d.storage_metric = "storageBytes";
    d.capabilities.repl = true;
    d.capabilities.rotation = true;
    d.capabilities.async_provisioning = true;
    d.capabilities.samples_usage = true;
    d.capabilities.branches = true;
    d.provision_wait_ms = 5000;
    return d;
  }();
  return descriptor;
}

PostgresDb::Names PostgresDb::names_for(const std::string& resource_id) {
  if (!valid_id(resource_id))
    throw std::invalid_argument("invalid resource id (expected [A-Za-z0-9_-]{1,128})");
  std::string lower;
  bool lossy = false;
  for (char c : resource_id) {
    if (c >= 'A' && c <= 'Z') {
      lower += static_cast<char>(c - 'A' + 'a');
      lossy = true;
    } else if (c == '-') {
      lower += '_';
      lossy = true;
    } else {
      lower += c;
    }
  }
  // "wharf_" + at most 50 characters; the longest role suffix ("-owner") keeps it within 63.
  std::string base = "wharf_" + lower;
  if (lossy || lower.size() > 50)
    base = "wharf_" + lower.substr(0, 37) + "_" +
           util::to_hex(util::sha256(resource_id)).substr(0, 12);
  // Role suffixes start with '-', which a database name never holds: no resource's roles can
  // be another resource's.
  Names n;
  n.database = base;
  n.owner = base + "-owner";
  n.rw = {base + "-a", base + "-b"};
  n.ro = base + "-ro";
  n.ro_login = {base + "-ro-a", base + "-ro-b"};
  return n;
}

ConnParams PostgresDb::params_for(const std::string& database, const std::string& user,
                                  const std::string& password) const {
  // In order: defaults the URL may override, the URL, then what this call needs.
  ConnParams p = {{"connect_timeout", std::to_string(config_.connect_timeout_s)},
                  {"application_name", "wharf"}};
  if (user.empty()) p.emplace_back("options", kAdminOptions);
  p.emplace_back("dbname", config_.admin_url);
  if (!database.empty()) p.emplace_back("dbname", database);
  if (!user.empty()) {
    p.emplace_back("user", user);
    p.emplace_back("password", password);
  }
  p.emplace_back("client_encoding", "UTF8");
  return p;
}

json PostgresDb::secrets(const Names& n, int slot, const std::string& rw_password,
                         const std::string& ro_password) const {
  std::string host = config_.public_host.empty() ? admin_host_ : config_.public_host;
  std::string port = config_.public_port > 0 ? std::to_string(config_.public_port) : admin_port_;
  std::string url_host =
      host.find(':') != std::string::npos ? "[" + host + "]" : percent_encode(host);
  std::string query = sslmode_.empty() ? "" : "?sslmode=" + percent_encode(sslmode_);
  const std::string& user = n.rw[static_cast<size_t>(slot)];
  const std::string& ro_user = n.ro_login[static_cast<size_t>(slot)];
  auto url = [&](const std::string& u, const std::string& pw) {
    return "postgresql://" + percent_encode(u) + ":" + percent_encode(pw) + "@" + url_host + ":" +
           port + "/" + percent_encode(n.database) + query;
  };
  auto secret = [](const char* name, const std::string& value) {
    return json{{"name", name}, {"value", value}};
  };
  std::string rw_url = url(user, rw_password);
  return json::array({secret("DATABASE_URL", rw_url), secret("DATABASE_URL_UNPOOLED", rw_url),
                      secret("DATABASE_READONLY_URL", url(ro_user, ro_password)),
                      secret("PGHOST", host), secret("PGPORT", port), secret("PGUSER", user),
                      secret("PGPASSWORD", rw_password), secret("PGDATABASE", n.database)});
}

// The database's own grants and default privileges (needs a connection to it, so not while
// it refuses connections). Idempotent.
void PostgresDb::setup_database(const Names& n) const {
  Conn db(params_for(n.database));
  std::string owner = db.ident(n.owner);
  std::string ro = db.ident(n.ro);
  std::string rw = db.ident(n.rw[0]) + ", " + db.ident(n.rw[1]);
  db.exec("CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION " + owner);
  bool own_public = true;
  try {
    // PostgreSQL 15+: `public` belongs to pg_database_owner, i.e. the admin here.
    db.exec("ALTER SCHEMA public OWNER TO " + owner);
  } catch (const PgError& e) {
    // Older servers: public belongs to the bootstrap superuser, and PUBLIC may create in it.
    if (e.state != "42501") throw;
    own_public = false;
  }
  std::string sql;
  if (own_public) sql += "REVOKE CREATE ON SCHEMA public FROM PUBLIC;\n";
  sql += "GRANT USAGE ON SCHEMA public TO " + ro + ";\n";
  sql += "GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + ro + ";\n";
  sql += "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO " + ro + ";\n";
  const std::string creators = owner + ", " + rw;
  sql +=
      "ALTER DEFAULT PRIVILEGES FOR ROLE " + creators + " GRANT SELECT ON TABLES TO " + ro + ";\n";
  sql += "ALTER DEFAULT PRIVILEGES FOR ROLE " + creators + " GRANT SELECT ON SEQUENCES TO " + ro +
         ";\n";
  sql +=
      "ALTER DEFAULT PRIVILEGES FOR ROLE " + creators + " GRANT USAGE ON SCHEMAS TO " + ro + ";\n";
  // What a read-write login creates as itself (after RESET ROLE) stays usable by the other.
  for (const char* kind : {"TABLES", "SEQUENCES", "FUNCTIONS", "TYPES", "SCHEMAS"})
    sql += "ALTER DEFAULT PRIVILEGES FOR ROLE " + rw + " GRANT ALL ON " + kind + " TO " + owner +
           ";\n";
  db.exec(sql);
}

void PostgresDb::apply_plan(Conn& admin, const Names& n, const Plan& plan) const {
  std::string db = admin.ident(n.database);
  admin.exec("ALTER DATABASE " + db + " CONNECTION LIMIT " + std::to_string(plan.connection_limit) +
             ";\nALTER DATABASE " + db +
             " SET statement_timeout = " + std::to_string(plan.statement_timeout_ms));
}

// Ends the sessions on `database` ("" = any) or of `roles` (only once their VALID UNTIL has
// passed when `expired_only`), except superusers' and this one.
void PostgresDb::terminate(Conn& admin, const std::string& database,
                           const std::vector<std::string>& roles, bool expired_only) const {
  std::string call = admin.server_version() >= 140000 ? "pg_catalog.pg_terminate_backend(a.pid, " +
                                                            std::to_string(kTerminateWaitMs) + ")"
                                                      : "pg_catalog.pg_terminate_backend(a.pid)";
  std::optional<std::string> db;
  if (!database.empty()) db = database;
  admin.query("SELECT count(" + call +
                  ") FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_roles r ON r.oid = "
                  "a.usesysid WHERE a.pid <> pg_catalog.pg_backend_pid() AND NOT r.rolsuper AND "
                  "(a.datname = $1 OR r.rolname = ANY($2::text[]))" +
                  (expired_only ? " AND r.rolvaliduntil < pg_catalog.now()" : ""),
              {db, util::pg_text_array(roles)});
}

PostgresDb::Plan PostgresDb::plan_of(const json& plan_limits) const {
  Plan plan;
  try {
    Limits limits = Limits::from_json(plan_limits);
    plan.statement_timeout_ms = std::min<int64_t>(limits.statement_timeout_ms, INT32_MAX);
    int64_t connections = config_.default_connection_limit;
    if (plan_limits.is_object()) {
      // Not one of Limits' keys: read from the plan's limits as written.
      auto it = plan_limits.find("maxConnections");
      if (it != plan_limits.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<int64_t>() < 0)
          throw std::invalid_argument("plan limit maxConnections must be a non-negative integer");
        connections = it->get<int64_t>();
      }
    }
    plan.connection_limit = connections == 0 ? -1 : std::min<int64_t>(connections, INT32_MAX);
  } catch (const std::invalid_argument& e) {
    throw ProductRefused(422, "invalid_plan", e.what(), std::nullopt);
  }
  return plan;
}

ProductReply PostgresDb::provision(const ResourceInfo& resource, const CallContext& /*ctx*/) {
  const Names n = names_for(resource.id);
  // Limits first: a plan that does not parse is the caller's, and nothing is done.
  const Plan plan = plan_of(resource.plan_limits);

  return guarded("provision " + resource.id, [&] {
    auto admin = pool_.acquire();
    ResourceLock lock(*admin, n.database);
    DbInfo info = read_info(*admin, n.database);
    std::optional<State> state = State::parse(info.comment);
    if (state && state->resource_id != resource.id)
      throw ProductRefused(409, "conflict",
                           "database " + n.database + " belongs to resource " + state->resource_id,
                           std::nullopt);
    ensure_roles(*admin, n);
    if (!info.exists) {
      try {
        admin->exec("CREATE DATABASE " + admin->ident(n.database));
      } catch (const PgError& e) {
        if (e.state != "42P04") throw;  // duplicate_database: made meanwhile
      }
    }
    State s = state.value_or(State{resource.id, 0, !info.allow_connections, std::nullopt});
    if (!s.suspended) setup_database(n);

    const size_t slot = static_cast<size_t>(s.slot);
    std::string rw_password = new_password();
    std::string ro_password = new_password();
    Transaction tx(*admin);
    std::string db = admin->ident(n.database);
    admin->exec("REVOKE ALL ON DATABASE " + db + " FROM PUBLIC;\nGRANT CONNECT, TEMPORARY, " +
                "CREATE ON DATABASE " + db + " TO " + admin->ident(n.owner) +
                ";\nGRANT CONNECT ON DATABASE " + db + " TO " + admin->ident(n.ro));
    apply_plan(*admin, n, plan);
    set_password(*admin, n.rw[slot], rw_password);
    set_password(*admin, n.ro_login[slot], ro_password);
    // Billing starts now: the transactions of the set-up above are not the customer's.
    if (!s.transactions) s.transactions = transactions_now(*admin, n.database);
    write_state(*admin, n.database, s.to_comment());
    tx.commit();
    return ProductReply{false, secrets(n, s.slot, rw_password, ro_password), std::nullopt};
  });
}

ProductReply PostgresDb::change(const ResourceInfo& resource, const ResourceChange& change,
                                const CallContext& /*ctx*/) {
  const Names n = names_for(resource.id);
  if (!change.plan_changed && !change.status) return {};  // name, metadata: nothing to do
  if (change.status && *change.status != "suspended" && *change.status != "resumed")
    throw ProductRefused(400, "bad_request", "unknown status change " + *change.status,
                         std::nullopt);
  Plan plan;
  if (change.plan_changed) plan = plan_of(resource.plan_limits);
  return guarded("change " + resource.id, [&] {
    auto admin = pool_.acquire();
    ResourceLock lock(*admin, n.database);
    DbInfo info = read_info(*admin, n.database);
    if (!info.exists) not_found(resource.id);
    State s = State::parse(info.comment)
                  .value_or(State{resource.id, 0, !info.allow_connections, std::nullopt});
    std::string db = admin->ident(n.database);
    {
      Transaction tx(*admin);
      if (change.plan_changed) apply_plan(*admin, n, plan);
      if (change.status) {
        s.suspended = *change.status == "suspended";
        admin->exec("ALTER DATABASE " + db + " ALLOW_CONNECTIONS " +
                    (s.suspended ? "false" : "true"));
        write_state(*admin, n.database, s.to_comment());
      }
      tx.commit();
    }
    if (s.suspended && change.status) terminate(*admin, n.database, {});
    return ProductReply{};
  });
}

void PostgresDb::drop(const Names& n) {
  auto admin = pool_.acquire();
  ResourceLock lock(*admin, n.database);
  std::vector<std::string> roles = {n.rw[0], n.rw[1], n.ro_login[0], n.ro_login[1], n.ro, n.owner};
  DbInfo info = read_info(*admin, n.database);
  if (info.exists) {
    std::string db = admin->ident(n.database);
    // No new sessions, then none at all (FORCE ends any that raced in).
    admin->exec("ALTER DATABASE " + db + " ALLOW_CONNECTIONS false");
    terminate(*admin, n.database, roles);
    admin->exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  }
  Result existing =
      admin->query("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[])",
                   {util::pg_text_array(roles)});
  if (existing.rows() == 0) return;
  std::vector<std::string> names;
  for (int i = 0; i < existing.rows(); ++i) names.push_back(existing.text(i, 0));
  // Sessions the roles hold on other databases of the server.
  terminate(*admin, "", names);
  std::string list;
  for (const auto& r : names) list += (list.empty() ? "" : ", ") + admin->ident(r);
  Transaction tx(*admin);
  // Whatever the roles own or were granted in the admin database (nothing, normally).
  admin->exec("DROP OWNED BY " + list);
  admin->exec("DROP ROLE IF EXISTS " + list);
  tx.commit();
}

void PostgresDb::remove(const ResourceInfo& resource, const CallContext& /*ctx*/) {
  const Names n = names_for(resource.id);
  guarded("remove " + resource.id, [&] { drop(n); });
}

ProductReply PostgresDb::branch(const ResourceInfo& resource, const std::string& branch_id,
                                const CallContext& ctx) {
  const Names src = names_for(resource.id);
  const Names n = names_for(branch_id);
  guarded("branch " + resource.id, [&] {
    auto admin = pool_.acquire();
    ResourceLock lock(*admin, n.database);
    DbInfo info = read_info(*admin, n.database);
    std::optional<State> state = State::parse(info.comment);
    if (state && state->resource_id == branch_id) return;  // made and set up before
    if (!info.exists) {
      if (!read_info(*admin, src.database).exists) not_found(resource.id);
      ensure_roles(*admin, n);
      for (int attempt = 1;; ++attempt) {
        try {
          admin->exec("CREATE DATABASE " + admin->ident(n.database) + " TEMPLATE " +
                      admin->ident(src.database));
          break;
        } catch (const PgError& e) {
          if (e.state == "42P04") break;  // duplicate_database: made meanwhile
          if (e.state != "55006") throw;  // object_in_use: sessions on the source
          if (attempt >= kBranchAttempts)
            throw ProductRefused(
                409, "database_in_use",
                "database " + src.database + " had sessions open throughout the copy",
                "The database could not be branched: PostgreSQL copies a database only while "
                "no session is connected to it, and it stayed busy. Redeploy to try again.");
          std::this_thread::sleep_for(std::chrono::milliseconds(kBranchRetryMs));
        }
      }
    }
    // The copy's tables belong to the source's roles: hand them to the branch's owner.
    Conn db(params_for(n.database));
    db.exec("REASSIGN OWNED BY " + db.ident(src.owner) + ", " + db.ident(src.rw[0]) + ", " +
            db.ident(src.rw[1]) + " TO " + db.ident(n.owner));
  });
  ResourceInfo copy = resource;
  copy.id = branch_id;
  return provision(copy, ctx);  // roles, grants, logins and state as for a new resource
}

void PostgresDb::drop_branch(const ResourceInfo& /*resource*/, const std::string& branch_id,
                             const CallContext& /*ctx*/) {
  const Names n = names_for(branch_id);
  guarded("drop branch " + branch_id, [&] { drop(n); });
}

std::string PostgresDb::check(const std::string& database_id) {
  const Names n = names_for(database_id);
  try {
    Conn db(params_for(n.database));
    Result r = db.query(
        "SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = "
        "i.indexrelid JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace WHERE NOT "
        "i.indisvalid AND s.nspname NOT IN ('pg_catalog', 'information_schema')");
    std::string invalid = r.rows() ? r.text(0, 0) : "0";
    if (invalid != "0") return invalid + " index(es) are invalid (an interrupted CREATE INDEX)";
    return "";
  } catch (const PgError& e) {
    return "the database cannot be reached: " + std::string(e.what());
  }
}

void PostgresDb::destroy(const std::string& resource_id) {
  const Names n = names_for(resource_id);
  guarded("destroy " + resource_id, [&] { drop(n); });
}

bool PostgresDb::exists(const std::string& resource_id) const {
  if (!valid_id(resource_id)) return false;
  const Names n = names_for(resource_id);
  return guarded("exists " + resource_id, [&] {
    auto admin = pool_.acquire();
    return read_info(*admin, n.database).exists;
  });
}

std::vector<std::string> PostgresDb::stored_resources() const {
  return guarded("list databases", [&] {
    auto admin = pool_.acquire();
    Result r = admin->query(
        "SELECT datname, pg_catalog.shobj_description(oid, 'pg_database') FROM "
        "pg_catalog.pg_database WHERE datname LIKE 'wharf\\_%' ORDER BY datname");
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) {
      if (r.null(i, 1)) continue;
      std::optional<State> s = State::parse(r.text(i, 1));
      if (!s || !valid_id(s->resource_id)) continue;
      if (names_for(s->resource_id).database == r.text(i, 0)) out.push_back(s->resource_id);
    }
    return out;
  });
}

ProductReply PostgresDb::rotate_secrets(const ResourceInfo& resource, const std::string& /*reason*/,
                                        int64_t expire_old_after_s, const CallContext& /*ctx*/) {
  const Names n = names_for(resource.id);
  if (expire_old_after_s < 0) expire_old_after_s = 0;
  return guarded("rotate secrets of " + resource.id, [&] {
    auto admin = pool_.acquire();
    ResourceLock lock(*admin, n.database);
    DbInfo info = read_info(*admin, n.database);
    if (!info.exists) not_found(resource.id);
    std::optional<State> state = State::parse(info.comment);
    if (state && state->resource_id != resource.id)
      throw ProductRefused(409, "conflict",
                           "database " + n.database + " belongs to resource " + state->resource_id,
                           std::nullopt);
    State s = state.value_or(State{resource.id, 0, !info.allow_connections, std::nullopt});
    const size_t old_slot = static_cast<size_t>(s.slot);
    const size_t new_slot = 1 - old_slot;
    std::string rw_password = new_password();
    std::string ro_password = new_password();
    {
      Transaction tx(*admin);
      set_password(*admin, n.rw[new_slot], rw_password);
      set_password(*admin, n.ro_login[new_slot], ro_password);
      std::string until = admin->literal(server_time_in(*admin, expire_old_after_s));
      admin->exec("ALTER ROLE " + admin->ident(n.rw[old_slot]) + " VALID UNTIL " + until +
                  ";\nALTER ROLE " + admin->ident(n.ro_login[old_slot]) + " VALID UNTIL " + until);
      s.slot = static_cast<int>(new_slot);
      write_state(*admin, n.database, s.to_comment());
      tx.commit();
    }
    if (expire_old_after_s == 0) terminate(*admin, "", {n.rw[old_slot], n.ro_login[old_slot]});
    return ProductReply{false, secrets(n, s.slot, rw_password, ro_password), std::nullopt};
  });
}

json PostgresDb::repl(const std::string& resource_id, const std::string& input, bool read_only,
                      const Limits& limits, const std::function<void(const json& block)>& emit,
                      UsageDelta* /*usage*/) {
  const Names n = names_for(resource_id);
  // The console logs in as the resource's own role (never SET ROLE on an admin session,
  // which RESET ROLE would undo), with a password made for this one login.
  const std::string& login = read_only ? n.ro : n.owner;
  std::unique_ptr<Conn> session;
  try {
    auto admin = pool_.acquire();
    ResourceLock lock(*admin, n.database);
    DbInfo info = read_info(*admin, n.database);
    if (!info.exists)
      throw QueryError(error_code::kNotFound, "resource " + resource_id + " not found");
    if (!info.allow_connections)
      return postgres_db::console_error("the database is suspended", emit);
    std::string password = new_password();
    std::string until = server_time_in(*admin, kConsoleLoginSeconds);
    admin->exec("ALTER ROLE " + admin->ident(login) + " PASSWORD " +
                admin->literal(admin->scram_verifier(password, login)) + " VALID UNTIL " +
                admin->literal(until));
    std::string connect_error;
    try {
      session = std::make_unique<Conn>(params_for(n.database, login, password));
    } catch (const PgError& e) {
      connect_error = e.what();
    }
    admin->exec("ALTER ROLE " + admin->ident(login) + " PASSWORD NULL");
    if (!session)
      return postgres_db::console_error("cannot connect to the database: " + connect_error, emit);
  } catch (const PgError& e) {
    return postgres_db::console_error(
        "the database server is unavailable: " + std::string(e.what()), emit);
  }
  return postgres_db::run_console(*session, input, read_only, limits, emit);
}

int64_t PostgresDb::storage_bytes(const std::string& resource_id) const {
  const Names n = names_for(resource_id);
  return guarded("size of " + resource_id, [&] {
    auto admin = pool_.acquire();
    Result r = admin->query(
        "SELECT pg_catalog.pg_database_size(oid) FROM pg_catalog.pg_database WHERE datname = $1",
        {n.database});
    return r.rows() == 0 ? int64_t{0} : r.integer(0, 0);
  });
}

void PostgresDb::sample_usage(
    const std::string& resource_id,
    const std::function<void(const std::string& metric, int64_t value)>& f) {
  const Names n = names_for(resource_id);
  guarded("usage of " + resource_id, [&] {
    auto admin = pool_.acquire();
    ResourceLock lock(*admin, n.database);
    DbInfo info = read_info(*admin, n.database);
    if (!info.exists) return;
    std::optional<State> state = State::parse(info.comment);
    if (state && state->resource_id != resource_id) return;
    State s = state.value_or(State{resource_id, 0, !info.allow_connections, std::nullopt});
    Result r = admin->query(
        "SELECT COALESCE((SELECT xact_commit + xact_rollback FROM pg_catalog.pg_stat_database "
        "WHERE datname = $1), 0), pg_catalog.pg_database_size($1::name)",
        {n.database});
    int64_t now = r.integer(0, 0);
    int64_t size = r.integer(0, 1);
    int64_t last = s.transactions.value_or(now);
    // The counters restart from zero when the server's statistics are reset (a crash,
    // pg_stat_reset): then everything counted since is new.
    int64_t delta = now >= last ? now - last : now;

    // Sessions of the previous login pair that outlived its expiry (rotate_secrets).
    const size_t old_slot = static_cast<size_t>(1 - s.slot);
    terminate(*admin, "", {n.rw[old_slot], n.ro_login[old_slot]}, /*expired_only=*/true);

    // The new counter is committed only once f has taken the values.
    Transaction tx(*admin);
    s.transactions = now;
    write_state(*admin, n.database, s.to_comment());
    f("transactions", delta);
    f("storageBytes", size);
    tx.commit();
  });
}

}  // namespace wharf::product
