// The `postgres` product kind: every resource is a real PostgreSQL database with login roles
// of its own, made on a server the provider runs, through an admin connection (a role with
// CREATEDB and CREATEROLE; it need not be a superuser).
//
// Per resource (names from the id, see names_for(); role names are the database's plus a
// suffix starting with '-', which no database name holds, so one resource's roles can never
// be another's):
//   database   wharf_<id>         owned by the admin role (so that users cannot lift its
//                                  CONNECTION LIMIT or ALLOW_CONNECTIONS); CONNECT revoked from
//                                  PUBLIC; its schema `public` owned by <db>-owner
//   <db>-owner                     the owner of the resource's objects; logs in only for the
//                                  read-write console (a password that lives for one login)
//   <db>-a, <db>-b                 the read-write logins; members of <db>-owner, and every
//                                  session starts as SET ROLE <db>-owner, so whatever either
//                                  creates belongs to <db>-owner and stays usable after a
//                                  rotation (what one makes as itself after RESET ROLE is
//                                  granted to <db>-owner by default privileges). One is active
//                                  (its password is in the secrets); the other is the previous
//                                  one until it expires.
//   <db>-ro                        read-only: SELECT on every table and sequence (default
//                                  privileges of <db>-owner, <db>-a, <db>-b); logs in only for
//                                  the read-only console
//   <db>-ro-a, <db>-ro-b           the read-only logins (members of <db>-ro), rotated with the
//                                  read-write ones; default_transaction_read_only = on
// The admin role is made a member of each (to own, grant, terminate sessions).
//
// State that must survive a restart (which read-write login is active, whether the resource
// is suspended, the last transaction counter sampled, the resource id a database belongs
// to) is the COMMENT of the database, a small JSON object: it lives and dies with the
// database, and needs no table in a database the admin may not be allowed to write. It holds
// no secret (comments are readable by every role of the server). Passwords are kept nowhere:
// provision() (also when repeated) sets a new password on the active logins and returns
// fresh secrets, and rotate_secrets() switches to the other pair.
//
// Every lifecycle call of one resource takes a session advisory lock on the admin database
// (keyed by the database name), so that concurrent calls — from several threads or several
// Wharf replicas — run one after another.
//
// Plan limits: statementTimeoutMs becomes the database's default statement_timeout; the
// database's CONNECTION LIMIT is the plan's `maxConnections` when the raw plan limits have
// one (0 = unlimited), else the kind's default (setting postgres_connection_limit, 20).
// storageBytes is measured (storage_bytes) but not enforced: PostgreSQL has no quota.
// Suspension: ALLOW_CONNECTIONS false, and the resource's sessions are terminated.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "product/postgres_db/pg_conn.h"
#include "product/product.h"
#include "product/registry.h"

namespace wharf::product {

class PostgresDb final : public Product {
 public:
  struct Config {
    // The admin connection: a libpq URL or key=value string (any database it may connect
    // to; "postgres" usually). Its role needs CREATEDB and CREATEROLE.
    std::string admin_url;
    // Host and port put in the secrets (where applications reach the server); empty / 0:
    // the admin URL's.
    std::string public_host;
    int64_t public_port = 0;
    // Each database's CONNECTION LIMIT unless the plan sets maxConnections; 0 = unlimited.
    int64_t default_connection_limit = 20;
    int64_t connect_timeout_s = 5;
    size_t max_idle_connections = 4;  // admin connections kept open between calls
  };

  // The roles and database of one resource.
  struct Names {
    std::string database;
    std::string owner;
    std::array<std::string, 2> rw;        // <db>_a, <db>_b
    std::string ro;                       // <db>_ro
    std::array<std::string, 2> ro_login;  // <db>_ro_a, <db>_ro_b
  };

  // Throws std::invalid_argument for an admin URL libpq cannot parse. Connects lazily (the
  // server may be down at start-up).
  explicit PostgresDb(Config config);
  ~PostgresDb() override;
  PostgresDb(const PostgresDb&) = delete;
  PostgresDb& operator=(const PostgresDb&) = delete;

  // The kind's factory (kinds.cpp). Settings: postgres_url (required), postgres_public_host,
  // postgres_public_port, postgres_connection_limit. Throws std::invalid_argument.
  static std::unique_ptr<Product> make(const KindSettings& settings);
  // No Wharf-made secrets (the product returns DATABASE_URL, DATABASE_URL_UNPOOLED,
  // DATABASE_READONLY_URL, PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE); storageBytes
  // (level) and transactions (interval); REPL, rotation, async provisioning, sampled usage.
  static const Descriptor& kDescriptor();

  // The database and role names of a resource: "wharf_" + the id lowercased with '-' → '_';
  // an id that does not map one-to-one (upper case, '-') or is long gets a hash suffix, so
  // that every name stays within PostgreSQL's 63 bytes. Throws std::invalid_argument for an
  // id that is not [A-Za-z0-9_-]{1,128}.
  static Names names_for(const std::string& resource_id);

  std::string kind() const override { return "postgres"; }
  const Descriptor& descriptor() const override { return kDescriptor(); }

  // Idempotent: makes whatever is missing, (re)applies grants and limits, sets a new password
  // on the active logins and returns the eight secrets (so a repeated provision returns new
  // passwords, and the previous ones stop working at once; the data is kept). 409 conflict
  // (ProductRefused) when the database name belongs to another resource id; 422 invalid_plan for
  // plan limits that do not parse. ProductUnavailable when the server cannot be reached or fails.
  ProductReply provision(const ResourceInfo& resource, const CallContext& ctx) override;
  // plan_changed: limits again; status "suspended" / "resumed". 404 not_found when the
  // database does not exist. Name and metadata changes need nothing.
  ProductReply change(const ResourceInfo& resource, const ResourceChange& change,
                      const CallContext& ctx) override;
  // Terminates the sessions, drops the database and the roles; a missing one is success.
  void remove(const ResourceInfo& resource, const CallContext& ctx) override;
  // CREATE DATABASE … TEMPLATE <the resource's>, the copy's objects handed to the branch's
  // own roles, then set up as provision() does. PostgreSQL copies a database only while no
  // session is connected to it: busy for a few seconds, this answers 409 database_in_use.
  ProductReply branch(const ResourceInfo& resource, const std::string& branch_id,
                      const CallContext& ctx) override;
  void drop_branch(const ResourceInfo& resource, const std::string& branch_id,
                   const CallContext& ctx) override;
  // Connects to the database and looks for invalid indexes (a failed CREATE INDEX
  // CONCURRENTLY).
  std::string check(const std::string& database_id) override;
  void destroy(const std::string& resource_id) override;
  bool exists(const std::string& resource_id) const override;
  // The resource ids of the wharf_* databases on the server (from their comments).
  std::vector<std::string> stored_resources() const override;
  // The other login pair becomes active with new passwords; the old pair stays valid for
  // `expire_old_after_s` seconds (VALID UNTIL; at 0 it expires now and its sessions are
  // terminated; sessions it opened before expiring are terminated by a later sample_usage).
  // 404 not_found when the database does not exist.
  ProductReply rotate_secrets(const ResourceInfo& resource, const std::string& reason,
                              int64_t expire_old_after_s, const CallContext& ctx) override;
  // The console: `input` runs as <db>_owner (or <db>_ro when read_only) on a connection of
  // its own, as psql -c would (one implicit transaction unless the input has its own
  // BEGIN/COMMIT). `usage` is not filled: the work is counted by sample_usage's transactions.
  nlohmann::json repl(const std::string& resource_id, const std::string& input, bool read_only,
                      const Limits& limits,
                      const std::function<void(const nlohmann::json& block)>& emit,
                      UsageDelta* usage) override;
  // pg_database_size (0 for a missing database).
  int64_t storage_bytes(const std::string& resource_id) const override;
  // f("transactions", commits + rollbacks since the previous sample, from pg_stat_database;
  // the counter last seen is kept in the database's comment, and only advanced when f has
  // returned, so a restart or a new instance neither loses nor double counts), then
  // f("storageBytes", size). A missing database reports nothing.
  void sample_usage(
      const std::string& resource_id,
      const std::function<void(const std::string& metric, int64_t value)>& f) override;

  const Config& config() const { return config_; }

 private:
  struct State;
  struct Plan;

  postgres_db::ConnParams params_for(const std::string& database, const std::string& user = "",
                                     const std::string& password = "") const;
  // The plan's limits as this kind applies them; ProductRefused 422 when they do not parse.
  Plan plan_of(const nlohmann::json& plan_limits) const;
  nlohmann::json secrets(const Names& n, int slot, const std::string& rw_password,
                         const std::string& ro_password) const;
  void setup_database(const Names& n) const;
  void apply_plan(postgres_db::Conn& admin, const Names& n, const Plan& plan) const;
  void terminate(postgres_db::Conn& admin, const std::string& database,
                 const std::vector<std::string>& roles, bool expired_only = false) const;
  void drop(const Names& n);

  Config config_;
  std::string admin_host_;
  std::string admin_port_;
  std::string sslmode_;  // the admin URL's sslmode, repeated in the secrets' URLs
  mutable postgres_db::ConnPool pool_;
};

}  // namespace wharf::product
