#include "app/serve.h"

#include <malloc.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "api/backend/callbacks.h"
#include "api/dashboard/billing_view.h"
#include "api/dashboard/routes.h"
#include "api/dataplane/query.h"
#include "api/dispatcher.h"
#include "api/flags/flags.h"
#include "api/ops/ops.h"
#include "api/partner/routes.h"
#include "api/respond.h"
#include "api/webhooks/vercel.h"
#include "auth/authenticator.h"
#include "auth/jwks_cache.h"
#include "model/catalog.h"
#include "net/http_client.h"
#include "net/server.h"
#include "product/registry.h"
#include "service/billing.h"
#include "service/credentials.h"
#include "service/deployments.h"
#include "service/flags.h"
#include "service/idempotency.h"
#include "service/imports.h"
#include "service/installations.h"
#include "service/notices.h"
#include "service/plans.h"
#include "service/resources.h"
#include "service/sessions.h"
#include "service/sso.h"
#include "service/transfers.h"
#include "service/webhooks.h"
#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"
#include "util/crypto.h"
#include "util/log.h"
#include "vercel/api.h"
#include "vercel/outbox.h"
#include "vercel/sso_client.h"

namespace wharf::app {
namespace {

// The state store backends, chosen by WHARF_STATE_URL's scheme.
void register_store_backends(const Config& config) {
  store::register_backend("sqlite", &store::sqlite::open_url);
  auto postgres = [pool = config.state_pool_size](const std::string& url) {
    store::postgres::Options options;
    options.url = url;
    options.pool_size = static_cast<size_t>(pool);
    return store::postgres::open(options);
  };
  store::register_backend("postgres", postgres);
  store::register_backend("postgresql", postgres);
}

// The usage metrics each product kind of this build records, for the catalog's checks.
std::map<std::string, std::vector<std::string>> metrics_by_kind(const product::Registry& kinds) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& kind : kinds.kinds()) {
    auto& metrics = out[kind];
    for (const auto& m : kinds.descriptor(kind)->metrics) metrics.push_back(m.name);
    if (kinds.open_metrics(kind)) metrics.push_back("*");
  }
  return out;
}

// The product instances the catalog needs, by catalog product id (instances of a shared kind
// appear under each of its products). A kind that cannot be made stops start-up naming the
// product.
std::map<std::string, std::shared_ptr<product::Product>> make_products(
    const Config& config, const model::Catalog& catalog) {
  const product::Registry& kinds = product::builtin_kinds();
  product::KindSettings shared;
  shared.data_dir = config.data_dir;
  shared.settings["sql_transactions_per_database"] =
      std::to_string(config.sql_transactions_per_database);
  if (config.postgres_url) shared.settings["postgres_url"] = *config.postgres_url;
  std::map<std::string, std::shared_ptr<product::Product>> by_kind, out;
  for (const auto& p : catalog.products()) {
    try {
      if (!kinds.per_product(p.kind)) {
        auto& instance = by_kind[p.kind];
        if (!instance) instance = kinds.make(p.kind, shared);
        out[p.id] = instance;
        continue;
      }
      product::KindSettings own = shared;
      own.product_id = p.id;
      own.product = p.entry;
      for (const model::Plan* plan : catalog.plans_of(p))
        for (const auto& price : plan->prices.metrics)
          own.priced_metrics.push_back({price.ledger_metric, price.type == "total",
                                        price.unit.empty() ? price.ledger_metric : price.unit});
      out[p.id] = kinds.make(p.kind, own);
    } catch (const std::invalid_argument& e) {
      throw ConfigError("WHARF_CATALOG",
                        "product '" + p.id + "' (kind " + p.kind + "): " + e.what());
    }
  }
  return out;
}

// The catalog's text: WHARF_CATALOG, or the built-in one (with a Postgres product when a
// PostgreSQL server is configured). `source` names where it came from.
std::string catalog_text(const Config& config, std::string& source) {
  if (config.catalog_path) {
    std::ifstream in(*config.catalog_path);
    if (!in) throw ConfigError("WHARF_CATALOG", "cannot read " + *config.catalog_path);
    source = *config.catalog_path;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  source = "built-in catalog";
  if (!config.postgres_url) return model::builtin_catalog_json();
  auto doc = model::Json::parse(model::builtin_catalog_json());
  auto pg = model::Json::parse(model::builtin_postgres_catalog_json());
  for (auto& p : pg["products"]) doc["products"].push_back(p);
  for (auto& p : pg["plans"]) doc["plans"].push_back(p);
  source = "built-in catalog (with PostgreSQL)";
  return doc.dump(2);
}

// A catalog's text parsed and checked against the product kinds.
std::shared_ptr<const model::Catalog> checked_catalog(const std::string& text,
                                                      const std::string& source) {
  try {
    auto catalog = model::Catalog::parse_text(text);
    catalog->check_kinds(metrics_by_kind(product::builtin_kinds()));
    return catalog;
  } catch (const model::CatalogError& e) {
    throw ConfigError("WHARF_CATALOG", source + ": " + e.what());
  }
}

// The catalog (WHARF_CATALOG or the built-in one), checked against the product kinds.
std::shared_ptr<const model::Catalog> load_catalog(const Config& config) {
  std::string source;
  std::string text = catalog_text(config, source);
  return checked_catalog(text, source);
}

void ensure_data_dir(const std::string& dir) {
  std::string partial;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!partial.empty() && ::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
        throw ConfigError("WHARF_DATA_DIR",
                          "cannot create " + partial + ": " + std::strerror(errno));
    }
    if (i < dir.size()) partial += dir[i];
  }
}

// Runs `fn` every `period` until stopped; stop() returns promptly.
class Periodic {
 public:
  // `now`: also runs `fn` once at once, on the task's own thread (start-up is not held up).
  Periodic(std::chrono::milliseconds period, std::function<void()> fn, bool now = false)
      : thread_([this, period, now, fn = std::move(fn)] {
          auto run = [&fn] {
            try {
              fn();
            } catch (const std::exception& e) {
              util::log_error("periodic task failed").str("error", e.what());
            }
          };
          if (now) run();
          std::unique_lock<std::mutex> lock(mu_);
          while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
            lock.unlock();
            run();
            lock.lock();
          }
        }) {}
  ~Periodic() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// The HTTP client settings of every call to Vercel (serve, and admin commands that call it).
net::HttpClient::Options vercel_http_options(const Config& config) {
  net::HttpClient::Options o;
  o.user_agent = "wharf/0.1 (" + config.client_id + ")";
  o.timeout_ms = static_cast<long>(config.vercel_timeout_ms);
  o.connect_timeout_ms = static_cast<long>(std::min<int64_t>(3000, config.vercel_timeout_ms));
  return o;
}

service::CredentialRotation::Options rotation_options(const Config& config) {
  service::CredentialRotation::Options o;
  o.client_id = config.client_id;
  o.client_secret = config.client_secret;
  o.max_age_ms = config.credential_rotation_days * 24 * 3600 * 1000;
  return o;
}

service::CredentialRotation::Send rotation_send(const vercel::Client& client) {
  return [&client](const vercel::Call& call, const std::string& bearer,
                   const std::string& installation_id) {
    return client.send(call, bearer, installation_id);
  };
}

// What the admin commands that call Vercel share: the store, the catalog, the sealing key,
// the installations (their access tokens) and a Vercel client.
struct AdminContext {
  explicit AdminContext(const Config& config)
      : state(open_admin_store(config)),
        catalog(load_catalog(config)),
        box(load_or_create_encryption_key(config)),
        installations(*state, catalog, box, clock),
        http(vercel_http_options(config)),
        client(http, config.vercel_api_url) {}
  static std::unique_ptr<store::Store> open_admin_store(const Config& config) {
    register_store_backends(config);
    return store::open_store(config.state_url);
  }
  std::unique_ptr<store::Store> state;
  std::shared_ptr<const model::Catalog> catalog;
  util::SecretBox box;
  util::SystemClock clock;
  service::InstallationService installations;
  net::HttpClient http;
  vercel::Client client;
};

}  // namespace

int credentials_admin(const Config& config, const std::string& action,
                      const std::string& installation_id) {
  if (action != "rotate")
    throw ConfigError("wharf credentials " + action, "unknown action (rotate)");
  AdminContext a(config);
  service::CredentialRotation rotation(*a.state, a.installations, a.clock, rotation_options(config),
                                       rotation_send(a.client));
  model::Json out = model::Json::array();
  std::vector<std::pair<std::string, service::CredentialRotation::Result>> results;
  if (installation_id == "--due")
    results = rotation.rotate_due();
  else
    results.emplace_back(installation_id, rotation.rotate(installation_id));
  int failed = 0;
  for (const auto& [id, r] : results) {
    model::Json j = {{"installation", id}, {"rotated", r.ok}};
    if (r.expires_ms) j["expiresAt"] = util::format_iso8601_ms(*r.expires_ms);
    if (!r.ok) {
      j["error"] = r.error;
      if (r.status) j["status"] = r.status;
      ++failed;
    }
    out.push_back(std::move(j));
  }
  std::printf("%s\n", out.dump(2).c_str());
  return failed ? 1 : 0;
}

int import_admin(const Config& config, const std::string& installation_id,
                 const std::string& resource_id) {
  AdminContext a(config);
  service::ImportService imports(*a.state, a.catalog, a.installations, a.box,
                                 rotation_send(a.client));
  std::vector<std::string> ids;
  if (resource_id == "--all")
    a.state->read([&](store::ReadTx& tx) {
      for (const auto& row : tx.live_resources_of(installation_id)) ids.push_back(row.id);
    });
  else
    ids.push_back(resource_id);
  model::Json out = model::Json::array();
  int failed = 0;
  for (const auto& id : ids) {
    model::Json j = {{"installation", installation_id}, {"resource", id}};
    try {
      imports.import(installation_id, id);
      j["imported"] = true;
    } catch (const model::ApiError& e) {
      j["imported"] = false;
      j["error"] = e.message;
      ++failed;
    }
    out.push_back(std::move(j));
  }
  std::printf("%s\n", out.dump(2).c_str());
  return failed ? 1 : 0;
}

int doctor(const Config& config) {
  AdminContext a(config);
  service::ImportService imports(*a.state, a.catalog, a.installations, a.box,
                                 rotation_send(a.client));
  bool wrong = false;
  store::OutboxStats outbox;
  a.state->read([&](store::ReadTx& tx) { outbox = tx.outbox_stats(); });
  model::Json out = {{"store", a.state->describe()},
                     {"outbox", {{"pending", outbox.pending}, {"deadLetters", outbox.dead}}}};
  wrong = outbox.dead > 0;
  model::Json reconcile = model::Json::array();
  for (const auto& r : imports.reconcile_all(/*repair=*/false)) {
    wrong = wrong || !r.unknown.empty() || !r.missing.empty() || !r.error.empty();
    reconcile.push_back(r.to_json());
  }
  out["resources"] = reconcile;
  out["ok"] = !wrong;
  std::printf("%s\n", out.dump(2).c_str());
  return wrong ? 1 : 0;
}

int billing_admin(const Config& config, const std::string& action,
                  const std::map<std::string, std::string>& options) {
  register_store_backends(config);
  auto store = store::open_store(config.state_url);
  auto catalog = load_catalog(config);
  util::SystemClock clock;
  service::BillingService billing(*store, catalog, clock, {});
  auto opt = [&options](const std::string& name) {
    auto it = options.find(name);
    if (it == options.end() || it->second.empty())
      throw ConfigError("--" + name, "is required for this command");
    return it->second;
  };
  model::Json out;
  try {
    if (action == "show")
      out = billing.summary(opt("installation"));
    else if (action == "statement")
      out = billing.statement(opt("installation"), clock.now_ms());
    else if (action == "refund")
      out =
          billing.request_refund(opt("installation"), opt("invoice"), opt("total"), opt("reason"));
    else
      throw ConfigError("wharf billing " + action, "unknown action (show, statement, refund)");
  } catch (const model::ApiError& e) {
    std::fprintf(stderr, "wharf billing %s: %s\n", action.c_str(), e.message.c_str());
    return e.status == 404 ? 3 : 4;
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

int print_catalog(const Config& config) {
  std::string source;
  std::string text = catalog_text(config, source);
  checked_catalog(text, source);  // checked exactly as `serve` checks it
  std::printf("%s\n", model::Json::parse(text).dump(2).c_str());
  return 0;
}

int outbox_action(const Config& config, const std::string& action, const std::string& id) {
  register_store_backends(config);
  auto store = store::open_store(config.state_url);
  util::SystemClock clock;
  int64_t changed = 0;
  store->write([&](store::WriteTx& tx) {
    changed = action == "retry" ? tx.retry_dead_outbox(id, clock.now_ms())
                                : tx.drop_dead_outbox(id, clock.now_ms());
  });
  std::printf("%s\n",
              model::Json{{action == "retry" ? "retried" : "dropped", changed}}.dump().c_str());
  if (changed == 0) {
    std::fprintf(stderr, "wharf outbox %s: no dead letter %s\n", action.c_str(),
                 id.empty() ? "at all" : ("with id " + id).c_str());
    return 1;
  }
  return 0;
}

int print_outbox(const Config& config, const std::string& state) {
  register_store_backends(config);
  auto store = store::open_store(config.state_url);
  std::vector<store::OutboxRow> rows;
  store->read([&](store::ReadTx& tx) { rows = tx.outbox_list(state, 1000); });
  model::Json out = model::Json::array();
  for (const auto& r : rows) {
    model::Json j = {{"id", r.id},
                     {"installationId", r.installation_id},
                     {"kind", r.kind},
                     {"request", r.method + " " + r.path},
                     {"state", r.state},
                     {"attempts", r.attempts},
                     {"lastStatus", r.last_status},
                     {"created", util::format_iso8601_ms(r.created_ms)}};
    if (!r.last_error.empty()) j["lastError"] = r.last_error;
    if (!r.response_body.empty()) j["response"] = r.response_body;
    out.push_back(std::move(j));
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

int serve(const Config& config) {
  // One malloc arena per handler thread multiplies what freed peaks leave resident; a few
  // arenas are enough for this many threads (the soak benchmark's RSS growth).
  ::mallopt(M_ARENA_MAX, 4);
  // glibc raises its mmap threshold to the size of each large block freed, so after one
  // billing pass built a large body, later large blocks come from the arenas and leave
  // holes there when freed; a fixed threshold keeps them in their own mappings, returned
  // to the kernel on free (the soak benchmark's RSS growth).
  ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  // Each SQLite connection would otherwise take its page cache's first 20 pages (~80 kB)
  // as one bulk block at its first read and keep it until it closes, whatever
  // sqlite3_db_release_memory frees; without it, a released page cache is really released
  // (measured: 100 kB -> 23 kB per idle connection). Must precede SQLite's initialisation.
  if (int rc = sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); rc != SQLITE_OK)
    util::log_warn("SQLite page-cache configuration refused").num("code", rc);
  ensure_data_dir(config.data_dir);
  auto catalog = load_catalog(config);
  // A state store other machines share (PostgreSQL) means replicas: a product that keeps its
  // data on this machine's disk would be missing on every other one.
  const bool shared_store = config.state_url.rfind("postgres://", 0) == 0 ||
                            config.state_url.rfind("postgresql://", 0) == 0;
  if (shared_store && !config.single_replica)
    for (const auto& p : catalog->products())
      if (p.kind == "sqlite")
        throw ConfigError("WHARF_STATE_URL",
                          "product '" + p.id +
                              "' (kind sqlite) keeps its databases on this machine's disk, "
                              "which other replicas of this PostgreSQL state store cannot "
                              "reach: take it out of WHARF_CATALOG, or set "
                              "WHARF_SINGLE_REPLICA=1 if only one replica will ever run");
  // One product instance per kind the catalog sells (per product for a kind configured by
  // its catalog entry), made by the kind's registered factory before anything else starts,
  // so a product that cannot be made stops start-up at once; `products` maps each catalog
  // product to its instance.
  auto product_instances = make_products(config, *catalog);
  std::map<std::string, product::Product*> products;
  for (const auto& [id, instance] : product_instances) products[id] = instance.get();
  util::SecretBox box(load_or_create_encryption_key(config));

  register_store_backends(config);
  std::unique_ptr<store::Store> store;
  try {
    store = store::open_store(config.state_url);
  } catch (const std::exception& e) {
    throw ConfigError("WHARF_STATE_URL", e.what());
  }

  // The system clock; test deployments (WHARF_TEST_CLOCK=1) may move it forward.
  util::OffsetClock clock;
  net::HttpClient http(vercel_http_options(config));

  auth::JwksCache::Options jwks_options;
  jwks_options.url = config.jwks_url;
  jwks_options.refresh_interval_ms = config.jwks_refresh_ms;
  jwks_options.unknown_kid_min_interval_ms = config.jwks_min_refresh_ms;
  auth::JwksCache jwks(
      jwks_options, [&http](const std::string& url) { return http.get(url); }, clock);
  // Not fatal when Vercel is unreachable at start: /readyz says so and the background
  // thread keeps trying.
  if (!jwks.refresh_now())
    util::log_warn("JWKS not loaded at start-up; retrying in the background")
        .str("url", config.jwks_url);
  jwks.start_background();

  auth::Authenticator::Options auth_options;
  auth_options.issuer = config.oidc_issuer;
  auth_options.audience = config.client_id;
  auth_options.leeway_s = config.leeway_s;
  auth_options.max_lifetime_s = config.token_max_lifetime_s;
  auth::Authenticator authenticator(auth_options, jwks, clock);

  service::InstallationService installations(*store, catalog, box, clock);
  service::PlanService plans(*store, catalog, installations);

  vercel::Outbox::Options outbox_options;
  outbox_options.max_in_flight = static_cast<size_t>(config.outbox_concurrency);
  // Replicas on a shared store send each lane from one replica at a time (leases).
  outbox_options.shared = store->shared();
  vercel::Outbox outbox(
      *store, http, config.vercel_api_url,
      [&installations](const std::string& id) { return installations.access_token(id); }, clock,
      outbox_options);
  service::RateLimits rate_limits(config.rate_limits, clock);
  service::ResourceService::Options resource_options;
  resource_options.rate_limits = &rate_limits;
  resource_options.public_url = config.public_url.value_or(
      "http://" +
      (config.listen_host == "0.0.0.0" ? std::string("127.0.0.1") : config.listen_host) + ":" +
      std::to_string(config.listen_port));
  resource_options.wake_outbox = [&outbox] { outbox.wake(); };
  service::ResourceService resources(*store, catalog, installations, products, box, clock,
                                     resource_options);
  // Calls on products whose work is remote (a provider's backend), retried from the outbox.
  outbox.set_product_calls(
      [&resources](const store::OutboxRow& item) { return resources.deliver_product_call(item); });
  // The flags product: flag sets in the state store, mirrored to Vercel, evaluated by OFREP.
  service::FlagService flags(
      *store, catalog, resources, clock,
      {resource_options.public_url, &rate_limits, [&outbox] { outbox.wake(); }});
  outbox.set_handler(
      "flags.sync",
      [&flags](const store::OutboxRow& item, const vercel::Client& client,
               const std::string& token) { return flags.deliver_sync(item, client, token); });
  // Deployment integration actions (branch databases) and checks (flows.md F17).
  service::DeploymentService deployments(
      *store, resources, clock,
      {resource_options.public_url, 5 * 60 * 1000, 6, [&outbox] { outbox.wake(); }});
  for (const char* kind :
       {"deployment.action", "deployment.check", "deployment.register-check", "deployment.cleanup"})
    outbox.set_handler(kind,
                       [&deployments](const store::OutboxRow& item, const vercel::Client& client,
                                      const std::string& token) {
                         return deployments.deliver(item, client, token);
                       });
  // Before serving: data a crash left behind for resources that have no row (a provision
  // killed before its commit) or a deleted one (a delete killed before the product's part).
  if (int n = resources.reclaim_storage())
    util::log_info("reclaimed storage of deleted resources").num("resources", n);
  service::IdempotencyService idempotency(*store, clock, box, {});

  api::Metrics metrics;
  metrics.add_external("wharf_jwks_refreshes_total", "JWKS fetch attempts.", "counter",
                       [&jwks] { return static_cast<double>(jwks.refresh_count()); });
  metrics.add_external("wharf_jwks_refresh_failures_total", "Failed JWKS fetches.", "counter",
                       [&jwks] { return static_cast<double>(jwks.refresh_failures()); });
  // Three gauges come from one query: it is run at most once a second, not once per gauge.
  struct OutboxStatsCache {
    std::mutex mu;
    int64_t read_ms = 0;
    store::OutboxStats stats;
  };
  auto outbox_cache = std::make_shared<OutboxStatsCache>();
  auto outbox_stats = [&store, &clock, outbox_cache] {
    std::lock_guard<std::mutex> lock(outbox_cache->mu);
    if (clock.now_ms() - outbox_cache->read_ms >= 1000) {
      store->read([&](store::ReadTx& tx) { outbox_cache->stats = tx.outbox_stats(); });
      outbox_cache->read_ms = clock.now_ms();
    }
    return outbox_cache->stats;
  };
  metrics.add_external("wharf_outbox_pending", "Calls to Vercel waiting for delivery.", "gauge",
                       [outbox_stats] { return static_cast<double>(outbox_stats().pending); });
  metrics.add_external(
      "wharf_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered call to Vercel.",
      "gauge", [outbox_stats, &clock] {
        auto st = outbox_stats();
        return st.oldest_pending_created_ms
                   ? static_cast<double>(clock.now_ms() - st.oldest_pending_created_ms) / 1000.0
                   : 0.0;
      });
  metrics.add_external("wharf_outbox_dead_letters", "Calls to Vercel given up (see wharf outbox).",
                       "gauge",
                       [outbox_stats] { return static_cast<double>(outbox_stats().dead); });
  metrics.add_external("wharf_outbox_delivered_total", "Calls to Vercel delivered.", "counter",
                       [&outbox] { return static_cast<double>(outbox.delivered_total()); });
  metrics.add_external("wharf_rate_limited_total",
                       "Requests refused by the abuse limits (WHARF_RATE_LIMIT_*).", "counter",
                       [&rate_limits] { return static_cast<double>(rate_limits.refused()); });
  metrics.add_external("wharf_jwks_keys", "Usable keys in the current JWKS.", "gauge",
                       [&jwks] { return static_cast<double>(jwks.key_count()); });
  // Where resident memory goes (the soak benchmark samples these): what the program holds
  // on the heap, what the allocator keeps free (fragmentation, not yet trimmed), and what
  // SQLite holds of it (every state-store and product-database connection: page caches,
  // schemas, statements).
  metrics.add_external("wharf_heap_in_use_bytes", "Heap bytes allocated and not freed (malloc).",
                       "gauge", [] { return static_cast<double>(::mallinfo2().uordblks); });
  metrics.add_external("wharf_heap_free_bytes",
                       "Heap bytes freed but kept by the allocator (malloc arenas).", "gauge",
                       [] { return static_cast<double>(::mallinfo2().fordblks); });
  metrics.add_external("wharf_sqlite_memory_bytes", "Memory SQLite holds (sqlite3_memory_used).",
                       "gauge", [] { return static_cast<double>(::sqlite3_memory_used()); });

  api::RouteTable routes;
  service::TransferService transfers(*store, catalog, installations, clock);
  transfers.on_moved([&flags](store::WriteTx& tx, const store::ResourceRow& row,
                              const std::string& from) { flags.resource_moved(tx, row, from); });
  service::BillingService::Options billing_options;
  billing_options.interval_ms = config.billing_interval_s * 1000;
  billing_options.balance_interval_ms = config.balance_interval_s * 1000;
  billing_options.overdue_grace_ms = config.overdue_grace_s * 1000;
  billing_options.uninstall_grace_ms = config.uninstall_grace_days * 86400 * 1000;
  billing_options.invoice_test_result = config.invoice_test_mode;
  billing_options.dashboard_url = resource_options.public_url + "/dashboard";
  // Of the replicas sharing the store, one leads the periodic passes (Store::lead).
  std::atomic<bool> leading{store->lead()};
  billing_options.leads = [&leading] { return leading.load(); };
  billing_options.descriptor_of = [&resources](const std::string& product_id) {
    return resources.descriptor_of(product_id);
  };
  // Billing notices to each installation's contact (WHARF_NOTICE_URL).
  service::NoticeService notices(
      http, clock,
      {config.notice_url, config.notice_secret, resource_options.public_url + "/dashboard"});
  if (notices.enabled()) {
    billing_options.notice = [&notices](store::WriteTx& tx, const store::InstallationRow& inst,
                                        const model::Json& notice,
                                        const std::optional<std::string>& status, int64_t now) {
      notices.enqueue(tx, inst, notice, status, now);
    };
  }
  outbox.set_handler(service::NoticeService::kKind,
                     [&notices](const store::OutboxRow& item, const vercel::Client&,
                                const std::string&) { return notices.deliver(item); });
  service::BillingService billing(*store, catalog, clock, billing_options);
  billing.on_enqueued([&outbox] { outbox.wake(); });
  // Uninstall cleanup: leftovers of an unfinalized uninstall, once their grace period ended.
  billing.on_leftovers_due([&resources](const std::string& id) { resources.remove_leftovers(id); });
  outbox.set_hooks({[&billing, &installations](store::WriteTx& tx, const store::OutboxRow& item,
                                               const std::string& response) {
                      billing.delivered(tx, item, response);
                      installations.account_read(tx, item, response);
                    },
                    [&billing](store::WriteTx& tx, const store::OutboxRow& item, int64_t now) {
                      billing.gone(tx, item, now);
                    },
                    [&resources](const store::OutboxRow& item) {
                      // Finalized: the resources an uninstall left behind go now.
                      if (item.kind == "finalize" && item.state == "delivered")
                        resources.remove_leftovers(item.installation_id);
                    }});
  installations.set_billing_hooks(
      {[&billing](store::ReadTx& tx, const store::InstallationRow& row, int64_t now) {
         return billing.owes(tx, row, now);
       },
       [&billing] { billing.wake(); },
       [&billing](store::WriteTx& tx, const std::string& id, const std::string& plan_id,
                  int64_t now) { billing.plan_taken(tx, id, "", plan_id, now); }});
  // A resource taking a plan (provisioned, or Update Resource's plan change): its sign-up
  // charge, in the same transaction.
  resources.add_hooks({[&billing, &clock](store::WriteTx& tx, const store::ResourceRow* before,
                                          const store::ResourceRow& after) {
                         if (!before || before->billing_plan_id != after.billing_plan_id)
                           billing.plan_taken(tx, after.installation_id, after.id,
                                              after.billing_plan_id, clock.now_ms());
                       },
                       nullptr});
  // Vercel's Get Invoice, synchronous: Provision Purchase must see the invoice paid first.
  vercel::Client vercel_client(http, config.vercel_api_url);
  service::CredentialRotation credentials(*store, installations, clock, rotation_options(config),
                                          rotation_send(vercel_client));
  auto get_invoice = [&vercel_client, &installations](const std::string& installation_id,
                                                      const std::string& invoice_id) {
    auto token = installations.access_token(installation_id);
    if (!token) {
      net::HttpResult none;
      none.error = "the installation has no access token";
      return none;
    }
    return vercel_client.send(vercel::api::get_invoice(installation_id, invoice_id), token,
                              installation_id);
  };
  api::partner::Services services{installations, plans, resources, transfers, billing, get_invoice};
  // integration-configuration.removed: the same path as Delete Installation with cascade.
  service::WebhookService webhooks(*store, config.client_secret, clock, [&](const std::string& id) {
    try {
      resources.remove_all(id);
      model::DeleteInstallationRequest req;
      req.cascade_resource_deletion = true;
      req.reason = "integration-configuration.removed";
      installations.remove(id, req);
    } catch (const model::ApiError& e) {
      if (e.status != 404) throw;  // unknown installation: nothing to uninstall
    }
  });
  api::partner::add_routes(routes, services);
  api::dataplane::hrana::Streams::Options stream_options;
  stream_options.idle = std::chrono::seconds(config.sql_stream_idle_s);
  api::dataplane::hrana::Streams sql_streams(stream_options);
  api::dataplane::add_routes(routes, resources, sql_streams);
  api::webhooks::add_routes(routes, config.webhook_path, webhooks);
  api::backend::add_routes(routes, resources);
  api::flags::add_routes(routes, flags);
  // ---- SSO and the dashboard ----
  service::SessionService sessions(*store, clock, config.session_ttl_s * 1000);
  vercel::SsoClient sso_client(config.client_id, config.client_secret,
                               [&vercel_client](const vercel::Call& call) {
                                 return vercel_client.send(call, std::nullopt);
                               });
  service::SsoService sso(sso_client, authenticator, *store, sessions, &rate_limits);
  // Import Resource (flows.md F14) and the reconcile pass.
  service::ImportService imports(*store, catalog, installations, box, rotation_send(vercel_client));
  metrics.add_external("wharf_reconcile_unknown_resources",
                       "Resources Vercel lists that Wharf does not have (last reconcile pass).",
                       "gauge",
                       [&imports] { return static_cast<double>(imports.unknown_resources()); });
  metrics.add_external("wharf_reconcile_reimported_total",
                       "Resources Vercel lacked, imported again by the reconcile pass.", "counter",
                       [&imports] { return static_cast<double>(imports.reimported_total()); });
  api::dashboard::ServiceBillingView billing_view(billing);
  api::dashboard::Deps dashboard{
      {resource_options.public_url, config.sso_callback_path, config.vercel_sso_url,
       config.url_slug, config.support_email, config.support_url,
       !api::dashboard::loopback_http(resource_options.public_url)},
      sessions,
      sso,
      installations,
      resources,
      billing_view,
      clock,
      &rate_limits,
      &flags,
      &imports,
      catalog.get()};
  api::dashboard::add_routes(routes, dashboard);
  // ---- end SSO and the dashboard ----
  api::ops::add_routes(routes, metrics,
                       {[&store] { return store->healthy(); }, [&jwks] { return jwks.loaded(); },
                        [&leading] { return leading.load(); }, store->describe()});
  outbox.set_handler("member", [&sessions](const store::OutboxRow& item,
                                           const vercel::Client& client, const std::string& token) {
    return sessions.deliver_member_read(item, client, token);
  });
  webhooks.on_member_changed([&sessions, &outbox](const std::string& installation_id,
                                                  const std::string& member_id,
                                                  const std::string& role) {
    sessions.member_changed(installation_id, member_id, role);
    outbox.wake();
  });
  webhooks.on_other([&deployments](const std::string& type, const std::string& installation_id,
                                   const model::Json& payload) {
    deployments.on_event(type, installation_id, payload);
  });
  webhooks.on_transferred([&installations, &outbox](const std::string& installation_id) {
    installations.request_account_info(installation_id);
    outbox.wake();
  });
  webhooks.on_invoice([&billing](const std::string& type, const std::string& installation_id,
                                 const model::Json& payload) {
    billing.invoice_event(type, installation_id, payload);
  });
  if (config.test_clock) {
    util::log_warn("WHARF_TEST_CLOCK is on: POST /ops/clock can move this server's time");
    api::ops::add_test_clock_routes(routes, clock, [&](int64_t now) {
      resources.flush_usage();
      // The leader bills (replicas move their clocks too, and only serve).
      auto stats = leading.load() ? billing.run(now) : service::BillingService::PassStats{};
      int rotated = 0;
      if (leading.load())
        for (const auto& [id, r] : credentials.rotate_due()) rotated += r.ok ? 1 : 0;
      bool drained = outbox.wait_idle(20000);
      return model::Json{{"credentialsRotated", rotated},
                         {"billing",
                          {{"installations", stats.installations},
                           {"billingData", stats.billing_data},
                           {"invoices", stats.invoices},
                           {"balances", stats.balances},
                           {"suspended", stats.suspended},
                           {"finalizing", stats.finalizing},
                           {"leftoversSuspended", stats.leftovers_suspended},
                           {"leftoversDeleting", stats.leftovers_deleting}}},
                         {"outboxDrained", drained}};
    });
  }
  // A store other machines share is reached over the network: its reads wait on round trips,
  // so even quick routes run on the handler pool, never holding an I/O thread.
  api::Dispatcher dispatcher(std::move(routes), authenticator, idempotency, metrics,
                             !store->shared());

  net::ServerOptions server_options;
  server_options.host = config.listen_host;
  server_options.port = config.listen_port;
  server_options.threads = config.threads;
  // Handlers wait (store commits, product queries, the REPL, calls to Vercel): they run on
  // their own pool so an I/O thread only parses, writes and answers the quick routes.
  server_options.handler_threads = config.handler_threads;
  // Every request starts on its I/O thread: the dispatcher matches its route once and answers
  // quick ones there (/healthz, Get Installation, List Resources, Get Resource, the plan
  // listings: memory and store reads only; the hop costs more than they do) and defers the
  // rest to the pool.
  server_options.run_inline = [](const net::Request&) { return true; };
  server_options.max_body_bytes = config.max_body_bytes;
  server_options.read_timeout_ms = config.read_timeout_ms;
  server_options.idle_timeout_ms = config.idle_timeout_ms;
  server_options.drain_timeout_ms = config.drain_timeout_ms;
  net::Server server(
      server_options, [&dispatcher](net::Request& req) { return dispatcher.handle(req); },
      [](int status, std::string_view code, std::string_view message) {
        return api::error_response(status, code, message);
      },
      [&dispatcher](const net::Request& req, const net::Response& res, double ms) {
        dispatcher.observe(req, res, ms);
      });
  try {
    server.bind();
  } catch (const std::exception& e) {
    throw ConfigError("WHARF_LISTEN", e.what());
  }

  // Leadership is looked at every 2 s: a replica that stops leading stops its passes within
  // that, and one takes over from a dead leader within it (plus what the store needs to see
  // the leader gone).
  Periodic leadership(std::chrono::seconds(2), [&store, &leading] {
    bool now = store->lead();
    if (now != leading.exchange(now))
      util::log_info(now ? "this replica now leads the periodic passes"
                         : "this replica no longer leads the periodic passes");
  });
  // The periodic passes below run on the leader only; the rest on every replica.
  auto led = [&leading](std::function<void()> fn) {
    return [&leading, fn = std::move(fn)] {
      if (leading.load()) fn();
    };
  };
  Periodic janitor(std::chrono::minutes(10), led([&idempotency] { idempotency.purge(); }));
  service::Retention retention(*store, clock, config.retention);
  // Also right away (a server restarted often still gets its store trimmed), off start-up.
  Periodic retention_janitor(std::chrono::hours(1), led([&retention] { retention.run(); }),
                             /*now=*/true);
  outbox.start();
  billing.start();
  Periodic session_janitor(std::chrono::minutes(10), led([&sessions] { sessions.purge(); }));
  // Installation tokens due for rotation (WHARF_CREDENTIAL_ROTATION_DAYS, or near their
  // expiry), checked hourly and once at start-up.
  Periodic credential_rotator(std::chrono::hours(1),
                              led([&credentials] { credentials.rotate_due(); }), true);
  // Vercel's resources compared with ours (WHARF_RECONCILE_S): missing ones imported again.
  std::unique_ptr<Periodic> reconciler;
  if (config.reconcile_s > 0)
    reconciler = std::make_unique<Periodic>(std::chrono::seconds(config.reconcile_s),
                                            led([&imports] { imports.reconcile_all(true); }));
  Periodic usage_flusher(std::chrono::seconds(1), [&resources] { resources.flush_usage(); });
  // Usage the products measure themselves (a PostgreSQL server's counters), once a minute.
  Periodic usage_sampler(std::chrono::seconds(config.usage_sample_s),
                         led([&resources] { resources.sample_usage(); }));
  // Abandoned libSQL streams: their open transactions roll back and free their connection.
  Periodic stream_expiry(std::chrono::seconds(1), [&sql_streams] { sql_streams.expire_idle(); });
  // Peaks (a billing pass builds whole billing bodies) are freed but glibc keeps the pages
  // of every thread's arena; give them back so resident memory follows the live heap. Idle
  // SQLite connections drop their page caches first (the state store's and the products'):
  // they fill again from the OS page cache, while left alone they grow with the data until
  // each reaches its cap (the soak benchmark). Every 10 s, so a pass's peak is short-lived.
  Periodic memory_trimmer(std::chrono::seconds(10), [&store, &product_instances] {
    store->release_memory();
    for (auto& [id, instance] : product_instances) instance->release_memory();
    ::malloc_trim(0);
  });

  util::log_info("wharf listening")
      .str("address", config.listen_host + ":" + std::to_string(server.port()))
      .str("store", store->describe())
      .str("issuer", config.oidc_issuer)
      .str("jwks", config.jwks_url)
      .num("threads", config.threads)
      .num("products", static_cast<int64_t>(catalog->products().size()));
  server.run();
  resources.flush_usage();  // the last second of usage counts
  billing.stop();
  outbox.stop();
  jwks.stop();
  util::log_info("wharf stopped");
  return 0;
}

}  // namespace wharf::app
