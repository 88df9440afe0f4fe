// PostgreSQL backend (WHARF_STATE_URL=postgres://… or postgresql://…): the same schema and
// numbered migrations as SQLite (store/migrations, {BLOB} as BYTEA, {INT64} as BIGINT), for
// several `wharf` replicas sharing one state.
//
// - Migrations run under a session advisory lock, each in its own transaction and recorded in
//   schema_migrations: replicas that start together apply each one exactly once.
// - A bounded pool of connections (Options::pool_size), each with its prepared statements.
// - Store::read is one REPEATABLE READ READ ONLY transaction: one snapshot for the closure.
// - Store::write is one SERIALIZABLE transaction: the closure's reads and writes behave as if
//   writes ran one at a time, as they do on SQLite (the services' read-then-write rules rely
//   on it). A serialization failure or deadlock (40001, 40P01) rolls back and runs the WHOLE
//   closure again, so write closures must be safe to re-run (docs/decisions.md).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "store/store.h"

namespace wharf::store::postgres {

struct Options {
  std::string url;  // a libpq URL: postgres://user:password@host:port/dbname?…
  // The most connections open at once (reads and writes each hold one for their closure).
  size_t pool_size = 10;
  // How many times a write closure runs before a serialization failure is given up.
  int max_attempts = 20;
  // How long a read or write waits for a free connection before failing.
  int acquire_timeout_ms = 30000;
};

std::unique_ptr<Store> open(const Options& options);
// Factory for register_backend("postgres"/"postgresql", …), with the default options.
std::unique_ptr<Store> open_url(const std::string& url);
// The URL without its password (userinfo's and a `password` query parameter's).
std::string redact_url(const std::string& url);

}  // namespace wharf::store::postgres
