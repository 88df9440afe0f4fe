// The flags product's service (product/flags/flags.h): flag sets kept in the state store,
// managed from the dashboard and the provider API, mirrored to Vercel, evaluated over OFREP.
//
// - Writes: a flag is validated by the rule engine (product/flags/engine.h; every problem a
//   field error), stored, its set's version bumped, and in the same transaction the outbox
//   gets what Vercel must learn: the experimentation item (Create in batches of ≤ 50, Patch,
//   Delete; vercel-api.md §9.1–9.3) and, when the user enabled syncing, a `flags.sync` item.
// - Global Config sync (§9.4): a `flags.sync` item is delivered by deliver_sync(), which
//   writes the whole flag set under one key (kConfigKey) with If-Match on the digest it last
//   saw; 412 → re-read the digest and write again; 404 on `global-config` → the legacy
//   `edge-config` path; 409/410 → syncing stops with a resource notification until the user
//   sets it again. Items of one resource go out in order, in the resource's own lane.
// - Evaluation: flags compiled once per set version and cached; each request reads only the
//   token's credential, the resource and the set's version (one read transaction).
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/catalog.h"
#include "net/http_client.h"
#include "product/flags/engine.h"
#include "service/rate_limits.h"
#include "service/resources.h"
#include "store/store.h"
#include "util/clock.h"
#include "vercel/api.h"

namespace wharf::service {

class FlagService {
 public:
  // The key under which the flag set is written to the user's Global Config.
  static constexpr const char* kConfigKey = "flags";
  // Flags one bulk create may carry.
  static constexpr size_t kMaxBatch = 500;

  struct Options {
    std::string public_url;  // the experimentation items' origin (sso: link to the dashboard)
    RateLimits* rate_limits = nullptr;
    std::function<void()> wake_outbox;
  };
  // Registers with `resources` (ResourceService::Hooks): syncing enabled on a resource starts
  // a full write; a deleted resource's flags go with it.
  FlagService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
              ResourceService& resources, const util::Clock& clock, Options options);

  // ---- who may do what ----
  // A live flags resource of the installation (dashboard): 404 otherwise.
  store::ResourceRow resource_of(const std::string& installation_id,
                                 const std::string& resource_id);
  // A bearer token of the resource: FLAGS_ADMIN_KEY (admin) or FLAGS_SDK_KEY (evaluate
  // only). 401 unknown/expired/another resource's, 403 an SDK key where admin is needed or
  // a suspended resource, 404 gone, 429 over the rate limits.
  struct Caller {
    store::ResourceRow row;
    bool admin = false;
    int64_t version = 0;  // the flag set's version as read with the credential
  };
  Caller authorize(const std::string& resource_id, const std::string& token, bool need_admin);

  // ---- management (each answers the flag(s) as JSON: the definition plus id, createdAt,
  // updatedAt, and origin; 400 with field errors, 404, 409) ----
  model::Json list(const store::ResourceRow& row);  // {flags: [...]}
  model::Json get(const store::ResourceRow& row, const std::string& key);
  // `body`: one flag definition, or {flags: [definition, …]} (≤ kMaxBatch): all or none.
  model::Json create(const store::ResourceRow& row, const model::Json& body);
  // Merges the top-level members of `patch` into the definition (`key` cannot change).
  model::Json update(const store::ResourceRow& row, const std::string& key,
                     const model::Json& patch);
  void remove(const store::ResourceRow& row, const std::string& key);
  // The flag an experimentation item id names, within the installation: (resource, key).
  std::optional<std::pair<std::string, std::string>> locate(const std::string& installation_id,
                                                            const std::string& item_id);

  // ---- evaluation (OFREP) ----
  struct Compiled {
    int64_t version = 0;
    std::vector<std::pair<std::string, product::flags::Flag>> flags;  // by key, sorted
    const product::flags::Flag* find(const std::string& key) const;
  };
  // The caller's flag set compiled at the version authorize() read.
  std::shared_ptr<const Compiled> compiled(const Caller& caller);
  // Counts evaluations in the usage ledger.
  void record_evaluations(const Caller& caller, int64_t n);

  // A flags resource moved to another installation (TransferService::on_moved, in its
  // transaction): its flags become experimentation items there, and its Global Config is
  // written again.
  void resource_moved(store::WriteTx& tx, const store::ResourceRow& row, const std::string& from);

  // ---- the outbox's `flags.sync` handler ----
  net::HttpResult deliver_sync(const store::OutboxRow& item, const vercel::Client& client,
                               const std::string& token);
  // The data written to the Global Config for a flag set: {kConfigKey: {key: definition}}.
  static model::Json config_data(const std::vector<store::FlagRow>& flags);
  // The flag's page in the dashboard (below the public URL).
  static std::string page_path(const std::string& resource_id, const std::string& key);

 private:
  bool is_flags(const std::string& product_id) const;  // a resource of a `flags` product
  void wake() const;                                   // the outbox, after enqueueing
  model::Json render(const store::FlagRow& flag) const;
  model::Json item_of(const store::FlagRow& flag, bool with_id) const;
  // Stores `flag` (new or changed) and enqueues what Vercel learns; bumps the set version.
  void bump(store::WriteTx& tx, const store::ResourceRow& row, int64_t now);
  void enqueue_sync(store::WriteTx& tx, const store::ResourceRow& row, int64_t now);
  // Create calls (≤ 50 items each) for `flags`, in the resource's lane.
  void enqueue_creates(store::WriteTx& tx, const store::ResourceRow& row,
                       const std::vector<store::FlagRow>& flags, int64_t now);
  void check_writable(const store::ResourceRow& row) const;
  int64_t max_flags(const store::ResourceRow& row) const;
  void on_changed(store::WriteTx& tx, const store::ResourceRow* before,
                  const store::ResourceRow& after);
  // Syncing stopped for good by Vercel's answer: the resource says so (notification), and
  // reports syncing off until the user sets it again.
  void stop_sync(const std::string& resource_id, int status, const std::string& why);

  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  ResourceService& resources_;
  const util::Clock& clock_;
  Options options_;
  std::mutex cache_mu_;
  std::unordered_map<std::string, std::shared_ptr<const Compiled>> cache_;
};

}  // namespace wharf::service
