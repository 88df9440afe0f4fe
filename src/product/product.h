// The Product interface: one implementation per product kind ("sqlite", "postgres", "flags").
// A product does the real work behind a resource and knows nothing about HTTP, tokens,
// installations or the store: the service layer resolves those and hands the product a
// resource id, the plan's limits and the resource's metadata.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace wharf::product {

// A plan's `limits` from the catalog. Every limit uses 0 for "unlimited" so a provider can
// lift one explicitly; the defaults are the ones a plan without `limits` gets.
struct Limits {
  int64_t storage_bytes = 0;  // the database cannot grow past it
  int64_t statement_timeout_ms = 5000;
  int64_t max_result_bytes = int64_t{4} << 20;  // total size of the rows one call returns
  int64_t max_rows = 10000;                     // total rows one call returns
  // Memory one call may allocate inside the database engine (sorts, temporary b-trees,
  // values being built). Bounds what a single statement can cost, since one engine step
  // (sorting, building a large value) runs between two checks of the statement timeout.
  int64_t max_memory_bytes = int64_t{64} << 20;

  // Keys storageBytes, statementTimeoutMs, maxResultBytes, maxRows, maxMemoryBytes; a missing
  // key keeps its default. Throws std::invalid_argument for a non-object, a non-integer or a
  // negative value: the catalog is provider data and a typo there must fail loudly at load
  // time. Unknown keys are refused by the catalog itself (model/catalog.cpp, kLimitKeys), the
  // one list of the limits a plan may set.
  static Limits from_json(const nlohmann::json& limits);
  nlohmann::json to_json() const;

  bool operator==(const Limits&) const = default;
};

struct Statement {
  std::string sql;  // exactly one SQL statement
  // A positional array ([1, "a"]) or a named object ({":x": 1} or {"x": 1}). Values: null,
  // booleans (stored as 0/1), integers, reals, strings, {"base64": "..."} for blobs.
  nlohmann::json params = nlohmann::json::array();
};

struct StatementResult {
  std::vector<std::string> columns;
  // Each column's declared type when it comes straight from a table column (INTEGER, TEXT…),
  // else nullopt (expressions). Same length as columns.
  std::vector<std::optional<std::string>> decltypes;
  // Array of arrays. Integers are JSON integers, reals doubles, text strings (invalid UTF-8
  // replaced by U+FFFD), blobs {"base64": "..."}, NULL null.
  nlohmann::json rows = nlohmann::json::array();
  int64_t rows_affected = 0;   // rows inserted, updated or deleted by this statement
  int64_t last_insert_id = 0;  // rowid of the last row this statement inserted, else 0
};

// Usage measured by a call of the SQL data plane, for billing. Added to (never reset), so one
// delta can collect a whole request.
struct UsageDelta {
  int64_t queries = 0;       // statements executed (failed ones included: they cost work)
  int64_t rows_read = 0;     // rows returned to the caller
  int64_t rows_written = 0;  // rows inserted, updated or deleted, counted only when committed

  // Each counter with the usage-ledger metric it is recorded as (the names a SQL product
  // declares in its Descriptor).
  template <typename F>
  void for_each(F&& f) const {
    f("queries", queries);
    f("rowsRead", rows_read);
    f("rowsWritten", rows_written);
  }
};

// ---------------------------------------------------------------------------------------
// What a product kind offers, declared once (Product::descriptor(), Registry): services,
// billing and the dashboard read it instead of naming a kind's secrets or metrics.

// A usage metric the product records in the usage ledger.
struct MetricSpec {
  std::string name;    // the ledger's metric and the usage name reported to Vercel
  bool level = false;  // a level (storage now: the day's maximum), else counted per interval
  std::string units;   // the units reported to Vercel ("rows", "bytes", "queries")
};

// Where the value of a secret the resource gets comes from.
enum class SecretSource {
  kDataPlaneUrl,    // <public URL><data_plane_path><resource id>, Wharf's data plane for it
  kReadWriteToken,  // a bearer token of the data plane, read-write
  kReadOnlyToken,   // a bearer token of the data plane, read-only
};

struct SecretSpec {
  std::string name;  // the env var name, e.g. "DATABASE_URL"
  SecretSource source;
};

struct Capabilities {
  bool sql_data_plane = false;  // execute(): Wharf's query API with the resource's tokens
  bool repl = false;            // repl(): the Partner API REPL and the dashboard console
  bool sql_sessions = false;    // open_session(): libSQL clients, interactive transactions
  // rotate_secrets(): the product makes new values of its own secrets (Wharf's tokens, if it
  // declares any, are rotated by Wharf either way).
  bool rotation = false;
  // Lifecycle calls (provision, change, remove) may answer pending or fail for a while
  // (ProductUnavailable): the service keeps them in its durable outbox and retries them
  // until the product confirms. Without it they are local, immediate and only fail for good.
  bool async_provisioning = false;
  bool transfer_hook = false;  // transfer(): told when a resource moves installation
  // sample_usage(): the product measures usage on its own (a database server's counters);
  // the service samples every live resource of it on a period.
  bool samples_usage = false;
  // The product writes to the Global (Edge) Config a user enables in the resource's
  // protocolSettings.experimentation (flags): only then is syncing reported as enabled.
  bool config_sync = false;
  // branch(), drop_branch(), check(): the deployment action "branch" (a database per preview
  // deployment, flows.md F17) and the project check run on each deployment.
  bool branches = false;
};

struct Descriptor {
  // Secrets Wharf makes for the resource (data-plane URL and tokens). A product may return
  // secrets of its own as well (ProductReply::secrets): the resource gets both.
  std::vector<SecretSpec> secrets;
  std::vector<MetricSpec> metrics;
  std::string storage_metric;  // the level metric storage_bytes() is recorded as ("" = none)
  Capabilities capabilities;
  // (async_provisioning) How long a provision waits for the product before Vercel is told
  // `pending` (0: as long as the product's own call takes).
  int64_t provision_wait_ms = 0;
  // Where kDataPlaneUrl points under the public URL, and how the tokens Wharf makes begin
  // ("<prefix>_…" read-write, "<prefix>ro_…" read-only), so a leaked token says what it is.
  std::string data_plane_path = "/v1/databases/";
  std::string token_prefix = "wdb";

  const MetricSpec* metric(const std::string& name) const {
    for (const auto& m : metrics)
      if (m.name == name) return &m;
    return nullptr;
  }
};

// A metric as `kind` declares it; one it does not declare (or no kind: recorded by an older
// version, or a product gone from the catalog) counts per interval with its name as units.
inline MetricSpec metric_spec(const Descriptor* kind, const std::string& name) {
  if (const MetricSpec* m = kind ? kind->metric(name) : nullptr) return *m;
  return {name, false, name};
}

// What one request's results may still return (rows, bytes), carried across the statements
// of a request so that many statements cannot add up to an unbounded answer.
struct ResultBudget {
  int64_t rows = 0;
  int64_t bytes = 0;
};

// What a statement would do, without running it (libSQL's `describe`).
struct StatementDescription {
  std::vector<std::optional<std::string>> params;  // parameter 1..n: its name with prefix, or null
  std::vector<std::string> columns;
  std::vector<std::optional<std::string>> decltypes;
  bool is_explain = false;
  bool is_readonly = false;
};

// Stable machine-readable codes; the API layer maps them onto HTTP statuses.
namespace error_code {
inline constexpr char kReadOnly[] = "read_only";               // a write with a read-only call
inline constexpr char kTimeout[] = "timeout";                  // statementTimeoutMs exceeded
inline constexpr char kResultTooLarge[] = "result_too_large";  // maxResultBytes or maxRows
inline constexpr char kStorageLimit[] = "storage_limit";       // storageBytes reached
inline constexpr char kForbiddenSql[] = "forbidden_sql";       // SQL that could escape
inline constexpr char kSqlError[] = "sql_error";               // anything SQLite rejects
inline constexpr char kNotFound[] = "not_found";               // no such resource (or deleted)
inline constexpr char kBadParams[] = "bad_params";             // params do not fit the SQL
inline constexpr char kMemoryLimit[] = "memory_limit";         // maxMemoryBytes exceeded
inline constexpr char kBusy[] = "busy";  // another writer held the database past busy timeout
// A session would keep more client transactions open on one database than allowed.
inline constexpr char kTooManyTransactions[] = "too_many_transactions";
}  // namespace error_code

// The only error a product throws for a caller's mistake or a limit. Anything else
// (std::runtime_error from I/O, std::invalid_argument for a malformed resource id) is a
// server fault or a bug in the caller.
struct QueryError : std::runtime_error {
  QueryError(std::string error_code, const std::string& message, int engine_result = 0)
      : std::runtime_error(message), code(std::move(error_code)), engine_code(engine_result) {}
  std::string code;
  // For sql_error: the database engine's own result code (SQLite's, e.g. 19 for a
  // constraint), so wire protocols that expose it (libSQL's SQLITE_CONSTRAINT) can; else 0.
  int engine_code = 0;
};

// A client's connection kept across calls (libSQL's streams, so `client.transaction()` works
// over HTTP). Statements run one at a time, each in autocommit unless the client opened a
// transaction (BEGIN … COMMIT/ROLLBACK, SAVEPOINT … RELEASE); an open transaction spans calls
// and holds a connection of the resource until it ends, other statements hold none. Used by
// one thread at a time. Destroying the session rolls back an open transaction. A destroyed
// resource makes every later call fail with not_found.
class SqlSession {
 public:
  virtual ~SqlSession() = default;
  // Runs exactly one statement; rows are returned only when `want_rows`. The plan's limits
  // apply per statement (timeout, memory) and through `budget` (rows, bytes). Rows written in
  // a transaction count in `usage` when it commits. Throws QueryError.
  virtual StatementResult run(const Statement& statement, bool want_rows, ResultBudget& budget,
                              UsageDelta* usage) = 0;
  // Runs every statement of `sql` in order, discarding rows; stops at the first error.
  virtual void run_script(const std::string& sql, UsageDelta* usage) = 0;
  virtual StatementDescription describe(const std::string& sql) = 0;
  // False while the client's transaction is open.
  virtual bool autocommit() const = 0;
};

// ---------------------------------------------------------------------------------------
// The resource lifecycle as every kind sees it. A kind whose work is local (sqlite) gets
// these from create/destroy/set_limits/set_metadata; a kind whose work is remote or slow
// (http, postgres) implements them.

// Who a resource is, for products that need more than its id.
struct ResourceInfo {
  std::string id;
  std::string installation_id;
  std::string product_id;
  std::string name;
  std::string plan_id;
  nlohmann::json plan_limits = nlohmann::json::object();  // the plan's `limits`, as written
  nlohmann::json metadata = nlohmann::json::object();
};

// One call's identity: retries of the same operation carry the same idempotency key.
struct CallContext {
  std::string idempotency_key;
  std::string request_id;
  // How long the caller waits for an answer (0: the product's own call timeout).
  int64_t wait_ms = 0;
};

// A change to apply (Update Resource, billing holds, the dashboard): only the set fields.
struct ResourceChange {
  std::optional<std::string> name;
  std::optional<nlohmann::json> metadata;
  bool plan_changed = false;          // ResourceInfo's plan_id/plan_limits are the new plan's
  std::optional<std::string> status;  // "suspended" or "resumed"
  bool empty() const { return !name && !metadata && !plan_changed && !status; }
};

// What a lifecycle call answered.
struct ProductReply {
  bool pending = false;  // accepted, finished later (retried from the outbox, or a callback)
  nlohmann::json secrets = nlohmann::json::array();  // the product's own secrets (Secret[])
  std::optional<nlohmann::json> notification;        // Vercel's resource notification
};

// A refusal to pass on to Vercel as is: 400, 404, 409 or 422 with the product's code and the
// message a Vercel user reads. Nothing was done.
struct ProductRefused : std::runtime_error {
  ProductRefused(int http_status, std::string error_code, const std::string& message,
                 std::optional<std::string> user)
      : std::runtime_error(message),
        status(http_status),
        code(std::move(error_code)),
        user_message(std::move(user)) {}
  int status;
  std::string code;
  std::optional<std::string> user_message;
};

// The product could not do it now (unreachable, timed out, failed): safe to retry later.
struct ProductUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One instance per product kind (per catalog product for kinds configured per product, such
// as `http`), shared by every request thread: implementations are thread-safe. Resource ids are
// generated by the service; an id that is not [A-Za-z0-9_-]{1,128} is a bug and throws
// std::invalid_argument (exists() says false).
class Product {
 public:
  virtual ~Product() = default;

  virtual std::string kind() const = 0;  // "sqlite"
  // What this instance offers (the kind's Descriptor in the Registry, narrowed or widened by
  // the catalog product's own configuration for kinds configured per product).
  virtual const Descriptor& descriptor() const = 0;
  // Gives back memory that idle resources hold and can rebuild cheaply (e.g. the page caches
  // of pooled connections); serve calls it every few seconds, before malloc_trim.
  virtual void release_memory() {}

  // ---- a local kind's resource (sqlite): the lifecycle below is made of these ----
  // Idempotent: an existing resource (and its data) is kept; limits and metadata are
  // (re)applied, so a retried provision converges.
  virtual void create(const std::string& /*resource_id*/, const Limits& /*limits*/,
                      const nlohmann::json& /*metadata*/) {
    throw std::logic_error(kind() + " products provision through provision()");
  }
  // Stops in-flight work on the resource, makes every later call fail with not_found at
  // once, and removes everything the resource stored. Idempotent.
  virtual void destroy(const std::string& /*resource_id*/) {
    throw std::logic_error(kind() + " products remove through remove()");
  }
  virtual bool exists(const std::string& /*resource_id*/) const { return false; }
  // Every resource id this product holds data for (for reclaiming orphans at start-up);
  // a kind that cannot list them (a remote service) returns none.
  virtual std::vector<std::string> stored_resources() const { return {}; }
  // Plan change: the new limits apply to the next call.
  virtual void set_limits(const std::string& /*resource_id*/, const Limits& /*limits*/) {}
  // Metadata change (e.g. `durability`): applies to the next call.
  virtual void set_metadata(const std::string& /*resource_id*/,
                            const nlohmann::json& /*metadata*/) {}

  // (capabilities.sql_data_plane) Runs the statements in one transaction (all or nothing)
  // and returns one result each. `limits` are the plan's current limits (the storage cap
  // enforced is the tighter of these and the resource's own, see set_limits). Throws
  // QueryError; nothing partial is returned.
  virtual std::vector<StatementResult> execute(const std::string& resource_id,
                                               const std::vector<Statement>& /*statements*/,
                                               bool /*read_only*/, const Limits& /*limits*/,
                                               UsageDelta* /*usage*/) {
    throw QueryError(error_code::kNotFound, "resource " + resource_id + " has no SQL data plane");
  }

  // (capabilities.repl) The REPL (partner-api.md §4.14, §5.11). Returns the top-level
  // blocks (paragraph/table) as a JSON array; `emit`, when set, receives each block as soon
  // as it is produced so the HTTP layer can stream application/jsonl. Errors in the input
  // become red paragraphs; only a missing resource throws (QueryError not_found).
  virtual nlohmann::json repl(const std::string& resource_id, const std::string& /*input*/,
                              bool /*read_only*/, const Limits& /*limits*/,
                              const std::function<void(const nlohmann::json& block)>& /*emit*/,
                              UsageDelta* /*usage*/) {
    throw QueryError(error_code::kNotFound, "resource " + resource_id + " has no console");
  }

  // Bytes the resource occupies now (for storage billing and near-limit warnings), when the
  // descriptor names a storage_metric.
  virtual int64_t storage_bytes(const std::string& /*resource_id*/) const { return 0; }

  // ---- lifecycle (see ResourceInfo); each throws ProductRefused or ProductUnavailable ----
  // Provision or re-apply (idempotent per resource id and ctx.idempotency_key).
  virtual ProductReply provision(const ResourceInfo& resource, const CallContext& /*ctx*/) {
    create(resource.id, Limits::from_json(resource.plan_limits), resource.metadata);
    return {};
  }
  // Applies a change (only its set fields). Suspension: the product stops serving the
  // resource (a local product is stopped by the service itself and ignores it).
  virtual ProductReply change(const ResourceInfo& resource, const ResourceChange& change,
                              const CallContext& /*ctx*/) {
    if (change.plan_changed) set_limits(resource.id, Limits::from_json(resource.plan_limits));
    if (change.metadata) set_metadata(resource.id, *change.metadata);
    return {};
  }
  // Removes the resource and everything it stored; an already-removed one is success.
  virtual void remove(const ResourceInfo& resource, const CallContext& /*ctx*/) {
    destroy(resource.id);
  }
  // (capabilities.rotation) New values of the product's own secrets; the old ones keep
  // working for `expire_old_after_s` seconds. pending: the new values follow later.
  virtual ProductReply rotate_secrets(const ResourceInfo& resource, const std::string& /*reason*/,
                                      int64_t /*expire_old_after_s*/, const CallContext& /*ctx*/) {
    throw ProductRefused(400, "not_supported",
                         "product " + resource.product_id + " does not rotate secrets",
                         std::nullopt);
  }
  // (capabilities.transfer_hook) The resource moved from one installation to another.
  virtual void transfer(const ResourceInfo& /*resource*/, const std::string& /*from*/,
                        const std::string& /*to*/, const CallContext& /*ctx*/) {}
  // Interval usage measured since the last call, and levels now, by metric (products that
  // measure on their own, sampled on a period): f(metric, value). Default: none.
  virtual void sample_usage(const std::string& /*resource_id*/,
                            const std::function<void(const std::string& metric, int64_t value)>&
                            /*f*/) {}

  // For a product whose service calls Wharf back (a provider's backend): true when a
  // callback's signature header is valid for `body` now. Default: it takes no callbacks.
  virtual bool verify_callback(const std::string& /*signature_header*/, const std::string& /*body*/,
                               int64_t /*now_s*/) const {
    return false;
  }

  // (capabilities.branches) A copy of the resource's data as of one moment, made as a new
  // database `branch_id` of this product with the resource's plan. Idempotent: an existing
  // branch is kept (its data untouched). Returns the product's own secrets for the branch (a
  // kind whose data plane is Wharf's returns none: the service makes the branch's tokens).
  virtual ProductReply branch(const ResourceInfo& resource, const std::string& /*branch_id*/,
                              const CallContext& /*ctx*/) {
    throw ProductRefused(400, "not_supported",
                         "product " + resource.product_id + " does not branch databases",
                         std::nullopt);
  }
  // Removes a branch and everything it stored; an already-removed one is success.
  virtual void drop_branch(const ResourceInfo& /*resource*/, const std::string& /*branch_id*/,
                           const CallContext& /*ctx*/) {}
  // (capabilities.branches) A deployment check of a database (a resource's or a branch's):
  // it is reachable and its schema is intact. Returns "" when it is, else what is wrong, in
  // words for the deployment's owner. Throws ProductUnavailable when it cannot tell now.
  virtual std::string check(const std::string& /*database_id*/) { return ""; }

  // A session on the resource for an interactive client (see SqlSession); null when the
  // product has none. Throws QueryError not_found for a missing resource.
  virtual std::unique_ptr<SqlSession> open_session(const std::string& /*resource_id*/,
                                                   bool /*read_only*/, const Limits& /*limits*/) {
    return nullptr;
  }
};

// ---------------------------------------------------------------------------------------
// Limits JSON codec (inline: plain data, shared by every product).

inline Limits Limits::from_json(const nlohmann::json& limits) {
  Limits out;
  if (limits.is_null()) return out;
  if (!limits.is_object()) throw std::invalid_argument("plan limits must be a JSON object");
  auto read = [&limits](const char* key, int64_t& field) {
    auto it = limits.find(key);
    if (it == limits.end() || it->is_null()) return;
    int64_t value = 0;
    if (it->is_number_unsigned()) {
      if (it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        throw std::invalid_argument(std::string("plan limit ") + key + " is too large");
      value = it->get<int64_t>();
    } else if (it->is_number_integer()) {
      value = it->get<int64_t>();
    } else if (it->is_number_float()) {
      // Lenient on input: 1e6 or 5000.0 are integers written as reals.
      double d = it->get<double>();
      if (!(d >= -9.0e18 && d <= 9.0e18) || d != static_cast<double>(static_cast<int64_t>(d)))
        throw std::invalid_argument(std::string("plan limit ") + key + " must be an integer");
      value = static_cast<int64_t>(d);
    } else {
      throw std::invalid_argument(std::string("plan limit ") + key + " must be an integer");
    }
    if (value < 0)
      throw std::invalid_argument(std::string("plan limit ") + key + " must not be negative");
    field = value;
  };
  read("storageBytes", out.storage_bytes);
  read("statementTimeoutMs", out.statement_timeout_ms);
  read("maxResultBytes", out.max_result_bytes);
  read("maxRows", out.max_rows);
  read("maxMemoryBytes", out.max_memory_bytes);
  return out;
}

inline nlohmann::json Limits::to_json() const {
  return {{"storageBytes", storage_bytes},
          {"statementTimeoutMs", statement_timeout_ms},
          {"maxResultBytes", max_result_bytes},
          {"maxRows", max_rows},
          {"maxMemoryBytes", max_memory_bytes}};
}

}  // namespace wharf::product
