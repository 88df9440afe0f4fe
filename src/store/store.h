// The Store interface: every piece of durable state goes through it. Backends (SQLite
// embedded default, PostgreSQL for scale-out) implement the same transactions over the same
// portable schema (store/migrations). Services own transactions: they call write() with a
// function that does all the reads and writes of one operation; it commits when the
// function returns and rolls back if it throws — callers answer only after commit.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace wharf::store {

struct InstallationRow {
  std::string id;
  std::string account_id;
  std::string installer_user_id;
  std::string scopes_json = "[]";
  std::string accepted_policies_json = "{}";
  std::optional<std::string> account_json;  // AccountInfo as received
  std::string token_type;
  std::optional<std::string> access_token_sealed;  // AES-GCM sealed; cleared when finalized
  std::optional<std::string> billing_plan_id;      // installation-level plan
  std::optional<std::string> notification_json;
  std::string status = "active";  // active | uninstalled
  std::optional<std::string> delete_reason;
  bool cascade_delete = false;
  bool finalized = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::optional<int64_t> deleted_ms;
};

struct IdempotencyKey {
  std::string installation_id;  // "" for routes without an installation
  std::string method;
  std::string path;
  std::string key;
};

struct IdempotencyRow {
  IdempotencyKey key;
  std::string request_hash;  // hex SHA-256 of the request body
  std::string state;         // pending | done
  int status = 0;
  std::string content_type;
  std::string body;
  int64_t created_ms = 0;
  int64_t lease_until_ms = 0;  // a pending claim older than this is abandoned (crash)
  std::string owner;           // request id holding the pending claim
};

class ReadTx {
 public:
  virtual ~ReadTx() = default;
  virtual std::optional<InstallationRow> installation(const std::string& id) = 0;
  virtual std::optional<IdempotencyRow> idempotency(const IdempotencyKey& key) = 0;
};

class WriteTx : public ReadTx {
 public:
  virtual void put_installation(const InstallationRow& row) = 0;  // insert or replace
  // Inserts a new row; returns false (and writes nothing) when the key already exists.
  virtual bool insert_idempotency(const IdempotencyRow& row) = 0;
  virtual void update_idempotency(const IdempotencyRow& row) = 0;
  virtual void delete_idempotency(const IdempotencyKey& key) = 0;
  virtual int64_t purge_idempotency(int64_t created_before_ms) = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual void read(const std::function<void(ReadTx&)>& fn) = 0;
  virtual void write(const std::function<void(WriteTx&)>& fn) = 0;
  // Cheap liveness probe for /readyz.
  virtual bool healthy() = 0;
  virtual std::string describe() const = 0;  // e.g. "sqlite:/data/state.db" (no secrets)
};

// Backends register a factory for their URL scheme ("sqlite", "postgres"); app/ does the
// registering so the core never names a concrete backend.
using StoreFactory = std::function<std::unique_ptr<Store>(const std::string& url)>;
void register_backend(const std::string& scheme, StoreFactory factory);
// Opens the store for a URL such as sqlite:///abs/path/state.db or sqlite://relative.db.
// Throws std::runtime_error naming the problem.
std::unique_ptr<Store> open_store(const std::string& url);

}  // namespace wharf::store
