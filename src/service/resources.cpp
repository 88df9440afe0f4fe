#include "service/resources.h"

#include <cmath>
#include <set>

#include "model/api_error.h"
#include "service/billing.h"
#include "util/ids.h"
#include "util/log.h"

namespace wharf::service {

using model::ApiError;
using model::Json;

namespace {

constexpr const char* kStorageWarnTitle = "Storage almost full";

// Update Resource statuses Vercel may set; the others only echo the current status.
bool settable_status(const std::string& status) {
  return status == "suspended" || status == "resumed" || status == "ready" ||
         status == "uninstalled";
}

std::string secrets_aad(const std::string& resource_id) {
  return "resource:" + resource_id + ":secrets";
}

// Maps a product's query error to the HTTP answer a data-plane client gets.
ApiError query_error(const product::QueryError& e) {
  if (e.code == "read_only" || e.code == "forbidden_sql") return ApiError(403, e.code, e.what());
  if (e.code == "not_found") return ApiError(404, e.code, e.what());
  if (e.code == "storage_limit") return ApiError(507, e.code, e.what());
  if (e.code == "result_too_large") return ApiError(413, e.code, e.what());
  if (e.code == "busy") return ApiError(503, e.code, e.what());
  if (e.code == "too_many_transactions") return ApiError(429, e.code, e.what());
  return ApiError(400, e.code, e.what());
}

// A change as recorded in the outbox (deliver_product_call reads it back).
Json change_json(const product::ResourceChange& c) {
  Json j = Json::object();
  if (c.name) j["name"] = *c.name;
  if (c.metadata) j["metadata"] = *c.metadata;
  if (c.plan_changed) j["plan"] = true;
  if (c.status) j["status"] = *c.status;
  return j;
}

}  // namespace

ResourceService::ResourceService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                                 InstallationService& installations,
                                 std::map<std::string, product::Product*> products,
                                 const util::SecretBox& box, const util::Clock& clock,
                                 Options options)
    : store_(store),
      catalog_(std::move(catalog)),
      installations_(installations),
      products_(std::move(products)),
      box_(box),
      clock_(clock),
      options_(std::move(options)) {}

const model::Product& ResourceService::require_product(const std::string& product_id) const {
  const model::Product* p = catalog_->product(product_id);
  if (!p)
    throw ApiError::validation("unknown product '" + product_id + "'",
                               {{"productId", "is not a product of this integration"}});
  return *p;
}

product::Product& ResourceService::product_of(const model::Product& p) const {
  auto it = products_.find(p.id);
  if (it == products_.end() || !it->second)
    throw ApiError(409, "conflict", "product kind '" + p.kind + "' is not available on this server")
        .with_user(p.name + " is not available right now. Please contact the provider.");
  return *it->second;
}

product::Product& ResourceService::product_of(const store::ResourceRow& row) const {
  const model::Product* p = catalog_->product(row.product_id);
  if (!p) throw std::runtime_error("resource " + row.id + " has no product in the catalog");
  return product_of(*p);
}

product::ResourceInfo ResourceService::info_of(const store::ResourceRow& row) const {
  product::ResourceInfo info;
  info.id = row.id;
  info.installation_id = row.installation_id;
  info.product_id = row.product_id;
  info.name = row.name;
  info.plan_id = row.billing_plan_id;
  if (const model::Plan* plan = catalog_->plan(row.billing_plan_id))
    info.plan_limits = plan->limits;
  info.metadata = Json::parse(row.metadata_json, nullptr, false);
  if (info.metadata.is_discarded()) info.metadata = Json::object();
  return info;
}

ApiError ResourceService::refused(const product::ProductRefused& e) {
  ApiError err(e.status, e.code, e.what());
  err.user_message = e.user_message;
  return err;
}

ApiError ResourceService::unavailable(const model::Product& product, const std::string& what,
                                      const std::exception& e) {
  ApiError err(503, "product_unavailable", what + ": " + e.what());
  err.user_message = product.name + " did not answer; try again later.";
  return err;
}

void ResourceService::push_secrets(store::WriteTx& tx, const store::ResourceRow& row,
                                   const Json& secrets, int64_t now) {
  vercel::Outbox::enqueue(
      tx, row.installation_id,
      vercel::api::update_resource_secrets(row.installation_id, row.id,
                                           Json{{"secrets", secrets}, {"partial", false}}),
      now);
}

bool ResourceService::change_resource(
    const std::string& resource_id,
    const std::function<bool(store::WriteTx&, store::ResourceRow&)>& fn) {
  bool changed = false;
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.resource(resource_id);
    if (!row || row->deleted_ms || !fn(tx, *row)) return;
    row->updated_ms = clock_.now_ms();
    tx.put_resource(*row);
    resource_updated(tx, *row);
    changed = true;
  });
  if (changed) wake_outbox();
  return changed;
}

const model::Plan& ResourceService::require_plan(const model::Product& product,
                                                 const std::string& plan_id) const {
  const model::Plan* plan = catalog_->plan(plan_id);
  bool of_product = false;
  for (const auto& id : product.plan_ids) of_product = of_product || id == plan_id;
  if (!plan || !of_product)
    throw ApiError::validation(
        "plan '" + plan_id + "' is not a plan of product '" + product.id + "'",
        {{"billingPlanId", "is not a plan of this product"}})
        .with_user("This plan is not offered for " + product.name +
                   ". Choose one of the plans listed.");
  if (plan->disabled)
    throw ApiError::validation("plan '" + plan_id + "' is not selectable",
                               {{"billingPlanId", "is disabled"}})
        .with_user("The " + plan->name + " plan is not available. Choose another plan.");
  return *plan;
}

void ResourceService::check_max_resources(store::ReadTx& tx, const std::string& installation_id,
                                          const model::Plan& plan) const {
  if (!plan.max_resources) return;
  int64_t on_plan = 0;
  for (const auto& r : tx.live_resources_of(installation_id))
    if (r.billing_plan_id == plan.id) ++on_plan;
  if (on_plan < *plan.max_resources) return;
  const std::string cap = std::to_string(*plan.max_resources);
  const std::string noun = *plan.max_resources == 1 ? " resource" : " resources";
  throw ApiError(409, "max_resources",
                 "installation " + installation_id + " already has " + std::to_string(on_plan) +
                     noun + " on plan '" + plan.id + "', its maxResources is " + cap)
      .with_user("The " + plan.name + " plan allows " + cap + noun +
                     ". Delete a resource or choose another plan.",
                 options_.public_url.empty() ? std::nullopt
                                             : std::optional(options_.public_url + "/dashboard"));
}

void ResourceService::adopt_installation_plan(store::WriteTx& tx, store::InstallationRow inst,
                                              const model::Plan& plan, int64_t now) {
  if (plan.scope != "installation" || inst.billing_plan_id == plan.id) return;
  inst.billing_plan_id = plan.id;
  inst.updated_ms = now;
  tx.put_installation(inst);
  // Changed on our side: Vercel learns the installation's new plan (§8.1, F13).
  vercel::Outbox::enqueue_event(
      tx, inst.id, Json{{"type", "installation.updated"}, {"billingPlanId", plan.id}}, now);
  util::log_info("installation plan changed")
      .str("installation", inst.id)
      .str("plan", plan.id)
      .str("by", "resource");
}

void ResourceService::check_metadata(const model::Product& product, const Json& metadata) const {
  if (!product.schema) return;
  auto errors = product.schema->validate(metadata, /*partial=*/false);
  if (!errors.empty()) throw ApiError::validation("Failed to validate metadata", std::move(errors));
}

store::ResourceRow ResourceService::require_resource(store::ReadTx& tx,
                                                     const std::string& installation_id,
                                                     const std::string& resource_id) const {
  installations_.require_active(tx, installation_id);
  auto row = tx.resource(resource_id);
  // Another installation's resource answers exactly like a missing one: no existence leak.
  if (!row || row->installation_id != installation_id || row->deleted_ms)
    throw ApiError::not_found("resource " + resource_id + " not found");
  return *row;
}

Json ResourceService::render(const store::ResourceRow& row) const {
  Json j = {{"id", row.id},
            {"productId", row.product_id},
            {"name", row.name},
            {"metadata", Json::parse(row.metadata_json)},
            {"status", row.status}};
  if (const model::Plan* plan = catalog_->plan(row.billing_plan_id))
    j["billingPlan"] = plan->public_json;
  if (row.notification_json) j["notification"] = Json::parse(*row.notification_json);
  if (row.protocol_settings_json) {
    // Syncing is reported only where it happens: a product that syncs.
    const product::Descriptor* kind = descriptor_of(row.product_id);
    j["protocolSettings"] = model::render_protocol_settings(
        Json::parse(*row.protocol_settings_json), kind && kind->capabilities.config_sync);
  }
  return j;
}

Json ResourceService::issue_secrets(store::WriteTx& tx, const store::ResourceRow& row,
                                    int64_t now) {
  // The secrets the product declares that Wharf makes; data-plane tokens are stored as
  // hashes.
  Json secrets = Json::array();
  const product::Descriptor& kind = product_of(row).descriptor();
  for (const auto& spec : kind.secrets) {
    std::string value;
    switch (spec.source) {
      case product::SecretSource::kDataPlaneUrl:
        value = options_.public_url + kind.data_plane_path + row.id;
        break;
      case product::SecretSource::kReadWriteToken:
        value = kind.token_prefix + "_" + util::random_token(32);
        tx.insert_credential({token_hash(value), row.id, "rw", now, std::nullopt});
        break;
      case product::SecretSource::kReadOnlyToken:
        value = kind.token_prefix + "ro_" + util::random_token(32);
        tx.insert_credential({token_hash(value), row.id, "ro", now, std::nullopt});
        break;
    }
    secrets.push_back(model::Secret{spec.name, value, std::nullopt, nullptr}.to_json());
  }
  return secrets;
}

Json ResourceService::seal_secrets(store::ResourceRow& row, const Json& wharf_made,
                                   const Json& product_made) const {
  const model::Product* product = catalog_->product(row.product_id);
  if (!product) throw std::runtime_error("resource " + row.id + " has no product in the catalog");
  Json secrets = Json::array();
  for (const auto& s : wharf_made) secrets.push_back(s);
  // The product's own, in Vercel's shape (a malformed one from a backend is refused there).
  for (const auto& s : product_made) secrets.push_back(model::Secret::from_json(s).to_json());
  // Per-environment values the catalog asks for: each names another secret whose value
  // that environment gets instead.
  for (auto& secret : secrets) {
    auto it = product->environment_overrides.find(secret["name"].get<std::string>());
    if (it == product->environment_overrides.end()) continue;
    Json overrides = Json::object();
    for (auto env = it->begin(); env != it->end(); ++env)
      for (const auto& source : secrets)
        if (source["name"] == *env) overrides[env.key()] = source["value"];
    if (!overrides.empty()) secret["environmentOverrides"] = overrides;
  }
  row.secrets_sealed = box_.seal(secrets.dump(), secrets_aad(row.id));
  return secrets;
}

std::pair<Json, Json> ResourceService::split_secrets(const store::ResourceRow& row) const {
  std::set<std::string> wharf_names;
  for (const auto& spec : product_of(row).descriptor().secrets) wharf_names.insert(spec.name);
  std::pair<Json, Json> out{Json::array(), Json::array()};
  for (auto s : open_secrets(row)) {
    s.erase("environmentOverrides");  // derived, applied again when sealed
    (wharf_names.count(s.value("name", "")) ? out.first : out.second).push_back(std::move(s));
  }
  return out;
}

Json open_resource_secrets(const util::SecretBox& box, const store::ResourceRow& row) {
  if (!row.secrets_sealed) return Json::array();
  auto plain = box.open(*row.secrets_sealed, secrets_aad(row.id));
  if (!plain) throw std::runtime_error("resource secrets do not decrypt (wrong encryption key?)");
  return Json::parse(*plain);
}

Json ResourceService::open_secrets(const store::ResourceRow& row) const {
  return open_resource_secrets(box_, row);
}

Json ResourceService::provision(const std::string& installation_id,
                                const model::ProvisionResourceRequest& req,
                                const std::optional<std::string>& idempotency_key) {
  const model::Product& product = require_product(req.product_id);
  const model::Plan& plan = require_plan(product, req.billing_plan_id);
  check_metadata(product, req.metadata);
  product::Product& impl = product_of(product);

  // A retried provision (same key) returns the resource it created the first time.
  std::optional<Json> existing;
  store_.read([&](store::ReadTx& tx) {
    installations_.require_active(tx, installation_id);
    if (idempotency_key) {
      if (auto row = tx.resource_by_idempotency_key(installation_id, *idempotency_key)) {
        Json out = render(*row);
        out["secrets"] = open_secrets(*row);
        existing = out;
        return;
      }
    }
    // Before any product work; checked again in the commit.
    check_max_resources(tx, installation_id, plan);
  });
  if (existing) return *existing;

  store::ResourceRow row;
  row.id = util::new_id("res");
  row.installation_id = installation_id;
  row.product_id = product.id;
  row.name = req.name;
  row.metadata_json = req.metadata.dump();
  row.status = "ready";
  row.billing_plan_id = plan.id;
  row.external_id = req.external_id;
  row.idempotency_key = idempotency_key;
  if (req.protocol_settings) row.protocol_settings_json = req.protocol_settings->dump();

  const product::Descriptor& kind = impl.descriptor();
  product::CallContext ctx;
  ctx.idempotency_key = "provision:" + row.id;  // the same on every retry of this provision
  ctx.request_id = row.id;
  // The row and what Vercel learns are committed together; `pending` additionally records
  // the product call the outbox retries until the product confirms.
  Json secrets;
  auto commit = [&](const Json& product_secrets, bool pending) {
    store_.write([&](store::WriteTx& tx) {
      auto inst = tx.installation(installation_id);
      if (!inst || inst->status != "active")
        throw ApiError::not_found("installation " + installation_id + " not found");
      check_max_resources(tx, installation_id, plan);
      int64_t now = clock_.now_ms();
      row.created_ms = row.updated_ms = now;
      secrets = seal_secrets(row, issue_secrets(tx, row, now), product_secrets);
      tx.put_resource(row);
      resource_changed(tx, nullptr, row);
      if (pending)
        // Due once the inline call below has had its chance.
        vercel::Outbox::enqueue_product_call(tx, installation_id, row.id, "provision",
                                             Json::object(), now + kind.provision_wait_ms + 1000);
      adopt_installation_plan(tx, *inst, plan, now);
    });
  };

  if (!kind.capabilities.async_provisioning) {
    // A local product: the database exists before the row that points at it is committed;
    // if the commit fails, the database is removed again, so nothing half-made survives.
    product::ProductReply reply;
    try {
      reply = impl.provision(info_of(row), ctx);
    } catch (const product::ProductRefused& e) {
      throw refused(e);
    }
    try {
      commit(reply.secrets, false);
    } catch (...) {
      impl.remove(info_of(row), ctx);
      throw;
    }
  } else {
    // A remote product: the resource (pending) and the retried call are recorded first, so
    // a crash or a product that does not answer in time loses nothing (product-protocol §4).
    row.status = "pending";
    commit(Json::array(), true);
    ctx.wait_ms = kind.provision_wait_ms;
    std::string outcome;
    try {
      product::ProductReply reply = impl.provision(info_of(row), ctx);
      if (!reply.pending)
        if (auto finished = finish_provision(row.id, reply, /*push=*/false, &secrets))
          row = *finished;
      outcome = reply.pending ? "pending (the product accepted it)" : "ready";
    } catch (const product::ProductRefused& e) {
      // Refused: answered to Vercel as the product's error, and the resource is not kept.
      store_.write([&](store::WriteTx& tx) {
        auto current = tx.resource(row.id);
        if (!current || current->deleted_ms) return;
        mark_deleted(tx, *current, clock_.now_ms());
      });
      util::log_info("resource provision refused by the product")
          .str("installation", installation_id)
          .str("resource", row.id)
          .str("product", product.id)
          .num("status", e.status)
          .str("code", e.code);
      throw refused(e);
    } catch (const product::ProductUnavailable& e) {
      outcome = std::string("pending (") + e.what() + ")";
    }
    if (row.status == "pending") {
      secrets = Json::array();  // none until the product is done
      wake_outbox();
      util::log_info("resource provision pending")
          .str("installation", installation_id)
          .str("resource", row.id)
          .str("product", product.id)
          .str("outcome", outcome);
    }
  }
  util::log_info("resource provisioned")
      .str("installation", installation_id)
      .str("resource", row.id)
      .str("product", product.id)
      .str("plan", plan.id)
      .str("status", row.status);
  Json out = render(row);
  out["secrets"] = secrets;
  return out;
}

std::optional<store::ResourceRow> ResourceService::finish_provision(
    const std::string& resource_id, const product::ProductReply& reply, bool push,
    Json* secrets_out) {
  std::optional<store::ResourceRow> finished;
  store_.write([&](store::WriteTx& tx) {
    auto row = tx.resource(resource_id);
    if (!row || row->deleted_ms || row->status != "pending") return;
    int64_t now = clock_.now_ms();
    Json secrets = seal_secrets(*row, split_secrets(*row).first, reply.secrets);
    row->status = row->overdue_hold() ? "suspended" : "ready";
    if (reply.notification) row->notification_json = reply.notification->dump();
    row->updated_ms = now;
    tx.put_resource(*row);
    if (push) {
      // Nobody at Vercel is waiting for these: they go out with Update Resource Secrets,
      // then resource.updated makes Vercel read the resource again (product-protocol §4).
      push_secrets(tx, *row, secrets, now);
      resource_updated(tx, *row);
    }
    if (secrets_out) *secrets_out = secrets;
    finished = row;
  });
  if (finished && push) wake_outbox();
  if (finished)
    util::log_info("resource provision finished")
        .str("resource", resource_id)
        .str("by", push ? "outbox or callback" : "request");
  return finished;
}

Json ResourceService::get(const std::string& installation_id, const std::string& resource_id) {
  Json out;
  store_.read(
      [&](store::ReadTx& tx) { out = render(require_resource(tx, installation_id, resource_id)); });
  return out;
}

Json ResourceService::list(const std::string& installation_id,
                           const std::vector<std::string>& ids) {
  std::set<std::string> wanted(ids.begin(), ids.end());
  Json resources = Json::array();
  store_.read([&](store::ReadTx& tx) {
    installations_.require_active(tx, installation_id);
    for (const auto& row : tx.live_resources_of(installation_id)) {
      if (!wanted.empty() && !wanted.count(row.id)) continue;
      resources.push_back(render(row));
    }
  });
  return Json{{"resources", resources}};
}

Json ResourceService::update(const std::string& installation_id, const std::string& resource_id,
                             const model::UpdateResourceRequest& req, bool ours) {
  store::ResourceRow row;
  // Validate against the current row first, so a bad request changes nothing.
  store_.read([&](store::ReadTx& tx) { row = require_resource(tx, installation_id, resource_id); });
  const model::Product& product = require_product(row.product_id);
  if (req.metadata) check_metadata(product, *req.metadata);
  const model::Plan* plan =
      req.billing_plan_id ? &require_plan(product, *req.billing_plan_id) : nullptr;
  // `status` (deprecated, §5.8) takes the values Vercel can ask of a resource: suspended,
  // resumed and ready (serving again), and uninstalled (deleted, as Delete Resource does).
  // pending, onboarding and error describe work only the provider does; they are accepted
  // as they are (a client echoing the resource back) but cannot be set.
  if (req.status && !settable_status(*req.status) && *req.status != row.status)
    throw ApiError::validation(
        "status '" + *req.status +
            "' is reported by the provider and cannot be set (the resource "
            "is " +
            row.status + "); set suspended, resumed, ready or uninstalled",
        {{"status", "must be suspended, resumed, ready, uninstalled or the current status"}});
  if (req.status && *req.status == "uninstalled") {
    if (ours)
      throw ApiError::validation("delete the resource instead of setting it uninstalled",
                                 {{"status", "cannot be uninstalled here"}});
    // Everything else in the request was checked above; none of it matters any more.
    remove(installation_id, resource_id);
    Json out;
    store_.read([&](store::ReadTx& tx) {
      if (auto gone = tx.resource(resource_id)) out = render(*gone);
    });
    return out;
  }
  product::Product& impl = product_of(product);
  const bool remote = impl.descriptor().capabilities.async_provisioning;
  product::ResourceChange change;
  change.name = req.name;
  change.metadata = req.metadata;
  change.plan_changed = plan && plan->id != row.billing_plan_id;
  // A status to apply (an echoed pending/onboarding/error changes nothing).
  const std::optional<std::string> new_status =
      req.status && settable_status(*req.status) ? req.status : std::nullopt;

  store_.write([&](store::WriteTx& tx) {
    row = require_resource(tx, installation_id, resource_id);
    const store::ResourceRow before = row;
    const std::string old_status = row.status;
    if (req.name) row.name = *req.name;
    if (req.metadata) row.metadata_json = req.metadata->dump();
    // A plan whose effectiveDate lies ahead is scheduled (the billing pass makes the change
    // then); any other plan request calls off a change still pending.
    const auto effective = plan && plan->id != row.billing_plan_id
                               ? scheduled_start(*plan, clock_.now_ms())
                               : std::nullopt;
    if (plan && !effective) cancel_plan_change(tx, installation_id, row.id, row.notification_json);
    if (plan && plan->id != row.billing_plan_id) check_max_resources(tx, installation_id, *plan);
    if (effective) {
      schedule_plan_change(tx, installation_id, row.id, *plan, *effective, row.notification_json,
                           clock_.now_ms());
      change.plan_changed = false;
    } else if (plan && plan->id != row.billing_plan_id) {
      row.billing_plan_id = plan->id;
    }
    if (plan && !effective)
      adopt_installation_plan(tx, installations_.require_active(tx, installation_id), *plan,
                              clock_.now_ms());
    if (new_status && *new_status != "suspended" && ours && row.overdue_hold())
      throw ApiError::conflict("resource " + resource_id +
                               " is suspended for an overdue invoice; it resumes when the "
                               "invoice is paid")
          .with_user(
              "This resource is suspended because an invoice is overdue. It resumes "
              "as soon as the invoice is paid.");
    // Vercel resuming it settles a billing suspension (Vercel runs the billing).
    if (new_status && *new_status != "suspended" && !ours && row.overdue_hold())
      row.billing_hold.reset();
    if (new_status && row.status != "pending" && row.status != "error")
      row.status = *new_status == "suspended" ? "suspended" : "ready";
    if (row.status != old_status && (row.status == "suspended" || old_status == "suspended"))
      change.status = row.status == "suspended" ? "suspended" : "resumed";
    if (req.protocol_settings) row.protocol_settings_json = req.protocol_settings->dump();
    row.updated_ms = clock_.now_ms();
    tx.put_resource(row);
    resource_changed(tx, &before, row);
    // A change made on our side (the dashboard) is reported to Vercel with the change.
    if (ours) resource_updated(tx, row);
    // A remote product learns the change from the outbox, retried until it confirms.
    if (remote && !change.empty())
      vercel::Outbox::enqueue_product_call(tx, installation_id, row.id, "change",
                                           change_json(change), row.updated_ms);
  });
  if (remote) {
    if (!change.empty()) wake_outbox();
    return render(row);
  }
  // A local product: limits follow the plan. Applied after commit: a failure here leaves
  // the old (valid) limits in place, and the next query re-applies the plan's limits anyway.
  if (!change.empty()) impl.change(info_of(row), change, product::CallContext{});
  return render(row);
}

void ResourceService::remove(const std::string& installation_id, const std::string& resource_id,
                             bool require_active) {
  std::optional<store::ResourceRow> deleted;
  bool enqueued = false;
  store_.write([&](store::WriteTx& tx) {
    if (require_active) installations_.require_active(tx, installation_id);
    auto row = tx.resource(resource_id);
    if (!row || row->installation_id != installation_id)
      throw ApiError::not_found("resource " + resource_id + " not found");
    const model::Product* p = catalog_->product(row->product_id);
    const bool remote = p && product_of(*p).descriptor().capabilities.async_provisioning;
    if (row->deleted_ms) {
      // Already deleted: success. A local product's part is done again (it is idempotent):
      // a crash between this row's commit and destroy() must not leave the data behind. A
      // remote product's is in the outbox since the first delete.
      if (!remote) deleted = row;
      return;
    }
    int64_t now = clock_.now_ms();
    mark_deleted(tx, *row, now);
    deleted = row;
    // A remote product is told from the outbox, retried until it confirms: the resource is
    // never forgotten before that (product-protocol §4).
    if (remote) {
      vercel::Outbox::enqueue_product_call(tx, installation_id, row->id, "remove", Json::object(),
                                           now);
      deleted.reset();
      enqueued = true;
    }
  });
  if (enqueued) wake_outbox();
  if (!deleted) return;
  const model::Product* p = catalog_->product(deleted->product_id);
  if (p) product_of(*p).remove(info_of(*deleted), product::CallContext{});
  util::log_info("resource deleted")
      .str("installation", installation_id)
      .str("resource", resource_id);
}

int ResourceService::reclaim_storage() {
  int reclaimed = 0;
  std::set<product::Product*> seen;
  for (const auto& entry : products_) {
    const std::string& kind = entry.first;
    product::Product* impl = entry.second;
    if (!impl || !seen.insert(impl).second) continue;
    std::vector<std::string> orphans;
    store_.read([&](store::ReadTx& tx) {
      for (auto& id : impl->stored_resources()) {
        auto row = tx.resource(id);
        if (!row) {
          // A deployment branch lives until its cleanup (or its resource's deletion).
          auto branch = tx.branch(id);
          if (branch && branch->status != "dropped") continue;
        }
        if (!row || row->deleted_ms) orphans.push_back(std::move(id));
      }
    });
    for (const auto& id : orphans) {
      impl->destroy(id);
      ++reclaimed;
      util::log_info("orphaned resource data removed").str("kind", kind).str("resource", id);
    }
  }
  return reclaimed;
}

int ResourceService::remove_all(const std::string& installation_id) {
  std::vector<std::string> ids;
  store_.read([&](store::ReadTx& tx) {
    auto inst = tx.installation(installation_id);
    if (!inst || inst->status != "active") return;  // nothing left to cascade into
    for (const auto& row : tx.live_resources_of(installation_id)) ids.push_back(row.id);
  });
  for (const auto& id : ids) remove(installation_id, id);
  return static_cast<int>(ids.size());
}

int ResourceService::remove_leftovers(const std::string& installation_id) {
  std::vector<std::string> ids;
  bool finalized = false;
  store_.read([&](store::ReadTx& tx) {
    auto inst = tx.installation(installation_id);
    if (!inst || inst->status == "active") return;
    finalized = inst->finalized;
    // Not finalized: only once the uninstall cleanup decided the deletion (billing's grace
    // period after the leftovers were suspended).
    if (!finalized) {
      auto st = tx.billing_state(installation_id);
      if (!st || !st->leftovers_deleted_ms) return;
    }
    for (const auto& row : tx.live_resources_of(installation_id)) ids.push_back(row.id);
  });
  for (const auto& id : ids) remove(installation_id, id, /*require_active=*/false);
  if (!ids.empty())
    util::log_info(finalized ? "resources deprovisioned after finalization"
                             : "resources deprovisioned after the uninstall grace period")
        .str("installation", installation_id)
        .num("count", static_cast<int64_t>(ids.size()));
  return static_cast<int>(ids.size());
}

ResourceService::RotateOutcome ResourceService::rotate(const std::string& installation_id,
                                                       const std::string& resource_id,
                                                       const model::RotateSecretsRequest& req,
                                                       bool ours) {
  store::ResourceRow row;
  store_.read([&](store::ReadTx& tx) { row = require_resource(tx, installation_id, resource_id); });
  const model::Product& product = require_product(row.product_id);
  product::Product& impl = product_of(product);
  const product::Descriptor& kind = impl.descriptor();
  const bool wharf_made = !kind.secrets.empty();
  if (!wharf_made && !kind.capabilities.rotation) {
    ApiError err(400, "not_supported", "product " + product.id + " does not rotate secrets");
    err.user_message = product.name + " does not support rotating secrets.";
    throw err;
  }
  if (row.status == "pending") {
    ApiError err = ApiError::conflict("resource " + resource_id + " is still being provisioned");
    err.user_message =
        "The resource is still being provisioned; rotate its secrets once it is ready.";
    throw err;
  }
  auto delay_ms = static_cast<int64_t>(std::llround(req.delay_hours * 3600.0 * 1000.0));
  // The product's own secrets first (a call that may fail): nothing is changed on our side
  // unless it succeeded.
  std::optional<product::ProductReply> from_product;
  if (kind.capabilities.rotation) {
    product::CallContext ctx;
    ctx.idempotency_key = "rotate:" + row.id + ":" + util::random_token(12);
    ctx.request_id = row.id;
    try {
      from_product =
          impl.rotate_secrets(info_of(row), req.reason.value_or(""), delay_ms / 1000, ctx);
    } catch (const product::ProductRefused& e) {
      throw refused(e);
    } catch (const product::ProductUnavailable& e) {
      throw unavailable(product, "secrets rotation", e);
    }
  }
  // Pending: the product sends its new values later (W3); they reach Vercel from the outbox.
  const bool product_pending = from_product && from_product->pending;
  const bool async = product.rotation == "async" || product_pending;
  Json secrets;
  store_.write([&](store::WriteTx& tx) {
    row = require_resource(tx, installation_id, resource_id);
    int64_t now = clock_.now_ms();
    auto [old_wharf, old_product] = split_secrets(row);
    Json new_wharf = old_wharf;
    if (wharf_made) {
      // Old tokens keep working for the requested delay: deployed apps only see new values
      // after a redeploy.
      tx.expire_credentials(row.id, now + delay_ms);
      new_wharf = issue_secrets(tx, row, now);
    }
    secrets =
        seal_secrets(row, new_wharf,
                     from_product && !from_product->pending ? from_product->secrets : old_product);
    row.updated_ms = now;
    tx.put_resource(row);
    // Asynchronous rotation, or one started from the dashboard: the new secrets reach
    // Vercel through the outbox, committed with the rotation itself (Update Resource
    // Secrets, vercel-api.md §6.1). A product still making its values pushes them (W3).
    if ((async || ours) && !product_pending) push_secrets(tx, row, secrets, now);
  });
  if (async || ours) wake_outbox();
  util::log_info("resource secrets rotated")
      .str("installation", installation_id)
      .str("resource", resource_id)
      .real("delay_hours", req.delay_hours)
      .str("mode", async ? "async" : "sync");
  if (!async) return {200, Json{{"sync", true}, {"secrets", secrets}, {"partial", false}}};
  return {202, Json{{"sync", false}}};
}

store::ResourceRow ResourceService::check_repl(const std::string& installation_id,
                                               const std::string& resource_id) {
  store::ResourceRow row;
  store_.read([&](store::ReadTx& tx) { row = require_resource(tx, installation_id, resource_id); });
  const model::Product& product = require_product(row.product_id);
  if (!product_of(product).descriptor().capabilities.repl) {
    ApiError err(501, "not_implemented", "product " + product.id + " has no console");
    err.user_message = product.name + " has no command console.";
    throw err;
  }
  if (row.status == "suspended")
    throw ApiError::conflict("resource " + resource_id + " is suspended; resume it to run commands")
        .with_user("This resource is suspended. Resume it to run commands.");
  if (row.status == "pending" || row.status == "error")
    throw ApiError::conflict("resource " + resource_id + " is not ready (" + row.status + ")")
        .with_user(row.status == "pending"
                       ? "This resource is still being set up. Try again in a moment."
                       : "This resource is in an error state and cannot run commands. "
                         "Please contact the provider.");
  return row;
}

void ResourceService::admit_repl(const std::string& installation_id,
                                 const std::string& caller_key) {
  if (options_.rate_limits) options_.rate_limits->repl(caller_key, installation_id);
}

Json ResourceService::repl(const std::string& installation_id, const std::string& resource_id,
                           const model::ReplRequest& req,
                           const std::function<void(const Json&)>& emit) {
  store::ResourceRow row = check_repl(installation_id, resource_id);
  const model::Product& product = require_product(row.product_id);
  const model::Plan* plan = catalog_->plan(row.billing_plan_id);
  product::UsageDelta usage;
  Json blocks;
  try {
    blocks = product_of(product).repl(
        row.id, req.input, req.read_only || row.billing_hold == "credits",
        product::Limits::from_json(plan ? plan->limits : Json::object()), emit, &usage);
  } catch (const product::QueryError& e) {
    throw query_error(e);
  } catch (const product::ProductRefused& e) {
    throw refused(e);
  } catch (const product::ProductUnavailable& e) {
    throw unavailable(product, "console", e);
  }
  record_usage(row, usage);
  return blocks;
}

std::string ResourceService::plans(const std::string& installation_id,
                                   const std::string& resource_id, const Json& metadata) {
  store::ResourceRow row;
  store_.read([&](store::ReadTx& tx) { row = require_resource(tx, installation_id, resource_id); });
  const model::Product& product = require_product(row.product_id);
  Json out = Json::array();
  for (const model::Plan* p : catalog_->plans_of(product))
    if (p->matches(metadata)) out.push_back(p->public_json);
  return Json{{"plans", out}}.dump();
}

ResourceService::SqlCaller ResourceService::authorize_sql(const std::string& resource_id,
                                                          const std::string& token) {
  if (token.empty()) throw ApiError::unauthorized("missing bearer token");
  SqlCaller caller;
  caller.token_hash = token_hash(token);
  std::string access;
  store_.read([&](store::ReadTx& tx) {
    auto cred = tx.credential(caller.token_hash);
    int64_t now = clock_.now_ms();
    // A token of another database is rejected exactly like an unknown one.
    if (!cred || (!resource_id.empty() && cred->resource_id != resource_id) ||
        (cred->expires_ms && *cred->expires_ms <= now))
      throw ApiError::unauthorized("invalid or expired database token");
    auto r = tx.resource(cred->resource_id);
    if (!r) {
      // A deployment branch's token: the branch runs under its resource.
      auto branch = tx.branch(cred->resource_id);
      if (branch && branch->status == "succeeded") r = tx.resource(branch->resource_id);
    }
    if (!r || r->deleted_ms)
      throw ApiError::not_found("database " + cred->resource_id + " not found");
    caller.row = *r;
    caller.database_id = cred->resource_id;
    access = cred->access;
  });
  if (options_.rate_limits)
    options_.rate_limits->data_plane(caller.token_hash, caller.row.installation_id);
  if (caller.row.status == "suspended")
    throw ApiError(
        403, "resource_suspended",
        "database " + caller.database_id + " is suspended; resume it in Vercel to use it");
  // A prepaid database out of credits keeps serving reads, not writes, until credited.
  caller.out_of_credits = access == "rw" && caller.row.billing_hold == "credits";
  caller.read_only = access != "rw" || caller.out_of_credits;
  const model::Plan* plan = catalog_->plan(caller.row.billing_plan_id);
  caller.limits = product::Limits::from_json(plan ? plan->limits : Json::object());
  return caller;
}

std::unique_ptr<product::SqlSession> ResourceService::open_sql_session(const SqlCaller& caller) {
  const model::Product& product = require_product(caller.row.product_id);
  std::unique_ptr<product::SqlSession> session;
  try {
    session = product_of(product).open_session(caller.database_id, caller.read_only, caller.limits);
  } catch (const product::QueryError& e) {
    throw query_error(e);
  }
  if (!session)
    throw ApiError::not_found("database " + caller.row.id + " does not accept SQL sessions");
  return session;
}

Json ResourceService::query(const std::string& resource_id, const std::string& token,
                            const Json& body) {
  SqlCaller caller = authorize_sql(resource_id, token);
  const store::ResourceRow& row = caller.row;

  model::Checker check;
  std::vector<product::Statement> statements;
  auto add_statement = [&](const Json& s, const std::string& path) {
    product::Statement st;
    st.sql = check.string(s, "sql", path, true, true).value_or("");
    if (auto it = s.find("params"); it != s.end() && !it->is_null()) {
      if (!it->is_array() && !it->is_object())
        check.add(model::Checker::join(path, "params"), "must be an array or an object");
      else
        st.params = *it;
    }
    statements.push_back(std::move(st));
  };
  if (const Json* list = check.get(body, "statements", "", model::Kind::kArray, false)) {
    if (list->empty()) check.add("statements", "must not be empty");
    for (size_t i = 0; i < list->size(); ++i) {
      std::string path = model::Checker::index("statements", i);
      if (!(*list)[i].is_object())
        check.add(path, "must be an object");
      else
        add_statement((*list)[i], path);
    }
  } else if (!body.contains("statements")) {
    add_statement(body, "");
  }
  check.throw_if_failed("query");

  const model::Product& product = require_product(row.product_id);
  product::UsageDelta usage;
  std::vector<product::StatementResult> results;
  try {
    results = product_of(product).execute(caller.database_id, statements, caller.read_only,
                                          caller.limits, &usage);
  } catch (const product::QueryError& e) {
    record_usage(row, usage);
    if (caller.out_of_credits && e.code == product::error_code::kReadOnly)
      throw ApiError(402, "credits_exhausted",
                     "database " + resource_id +
                         " is out of prepaid credits: reads only until more credits are bought")
          .with_user(
              "This database has used up its prepaid credits, so it only accepts reads. "
              "Buy more credits in Vercel to write again.");
    throw query_error(e);
  }
  record_usage(row, usage);

  Json out = Json::array();
  for (auto& r : results)
    out.push_back({{"columns", r.columns},
                   {"rows", std::move(r.rows)},
                   {"rowsAffected", r.rows_affected},
                   {"lastInsertId", r.last_insert_id}});
  return Json{{"results", out}};
}

void ResourceService::mark_deleted(store::WriteTx& tx, store::ResourceRow& row, int64_t now) {
  row.deleted_ms = row.updated_ms = now;
  row.status = "uninstalled";
  row.secrets_sealed.reset();
  tx.delete_credentials(row.id);
  tx.put_resource(row);
  for (const auto& h : hooks_)
    if (h.deleted) h.deleted(tx, row);
}

void ResourceService::resource_changed(store::WriteTx& tx, const store::ResourceRow* before,
                                       const store::ResourceRow& after) {
  for (const auto& h : hooks_)
    if (h.changed) h.changed(tx, before, after);
}

void ResourceService::resource_updated(store::WriteTx& tx, const store::ResourceRow& row) {
  // Vercel re-reads the resource through Get Resource when it gets this event (§4.5).
  vercel::Outbox::enqueue_resource_updated(tx, row, clock_.now_ms());
}

void ResourceService::record_usage(const store::ResourceRow& row,
                                   const product::UsageDelta& usage) {
  std::string day = util::day_key(clock_.now_ms());
  std::lock_guard<std::mutex> lock(usage_mu_);
  PendingUsage& p = pending_usage_[row.id];
  p.product_id = row.product_id;
  p.billing_plan_id = row.billing_plan_id;
  usage.for_each([&](const char* metric, int64_t value) { p.counters[{day, metric}] += value; });
}

void ResourceService::record_metric(const store::ResourceRow& row, const std::string& metric,
                                    int64_t value) {
  std::string day = util::day_key(clock_.now_ms());
  std::lock_guard<std::mutex> lock(usage_mu_);
  PendingUsage& p = pending_usage_[row.id];
  p.product_id = row.product_id;
  p.billing_plan_id = row.billing_plan_id;
  p.counters[{day, metric}] += value;
}

void ResourceService::flush_usage() {
  std::map<std::string, PendingUsage> batch;
  {
    std::lock_guard<std::mutex> lock(usage_mu_);
    batch.swap(pending_usage_);
  }
  if (batch.empty()) return;
  // Storage is measured outside the transaction (it reads the product's files).
  struct Measured {
    int64_t storage = -1;
    std::string metric;  // the level metric the product records storage as
    bool near_full = false;
    int64_t limit = 0;
  };
  std::map<std::string, Measured> measured;
  for (const auto& [rid, p] : batch) {
    const model::Product* product = catalog_->product(p.product_id);
    if (!product) continue;
    Measured m;
    try {
      product::Product& impl = product_of(*product);
      m.metric = impl.descriptor().storage_metric;
      if (m.metric.empty()) continue;
      m.storage = impl.storage_bytes(rid);
    } catch (const product::QueryError&) {
      continue;  // deleted meanwhile: its counts still go to the ledger below
    }
    const model::Plan* plan = catalog_->plan(p.billing_plan_id);
    m.limit = product::Limits::from_json(plan ? plan->limits : Json::object()).storage_bytes;
    m.near_full = m.limit > 0 && static_cast<double>(m.storage) >=
                                     options_.storage_warn_ratio * static_cast<double>(m.limit);
    measured[rid] = m;
  }
  std::string today = util::day_key(clock_.now_ms());
  try {
    store_.write([&](store::WriteTx& tx) {
      for (const auto& [rid, p] : batch) {
        for (const auto& [key, delta] : p.counters)
          if (delta) tx.add_usage(rid, key.first, key.second, delta);
        auto m = measured.find(rid);
        if (m == measured.end()) continue;
        tx.max_usage(rid, today, m->second.metric, m->second.storage);
        // Near the plan's storage limit the resource carries a warn notification (and
        // loses it once back under), so Vercel shows it on the resource page.
        auto current = tx.resource(rid);
        if (!current || current->deleted_ms) continue;
        bool has_warn =
            current->notification_json &&
            Json::parse(*current->notification_json).value("title", "") == kStorageWarnTitle;
        if (m->second.near_full && !has_warn) {
          current->notification_json = Json{
              {"level", "warn"},
              {"title", kStorageWarnTitle},
              {"message", "The database uses " + std::to_string(m->second.storage) + " of " +
                              std::to_string(m->second.limit) + " bytes allowed by its plan."},
              // Opens the resource's dashboard page through SSO (flows.md §2.3).
              {"href", "sso:" + options_.public_url + "/dashboard/resources/" +
                           rid}}.dump();
          tx.put_resource(*current);
          resource_updated(tx, *current);
        } else if (!m->second.near_full && has_warn) {
          current->notification_json.reset();
          tx.put_resource(*current);
          resource_updated(tx, *current);
        }
      }
    });
  } catch (...) {
    // Put the counts back so the next flush retries them.
    std::lock_guard<std::mutex> lock(usage_mu_);
    for (auto& [rid, p] : batch) {
      PendingUsage& into = pending_usage_[rid];
      into.product_id = p.product_id;
      into.billing_plan_id = p.billing_plan_id;
      for (const auto& [key, delta] : p.counters) into.counters[key] += delta;
    }
    throw;
  }
}

// ---- for the SSO dashboard ----

Json ResourceService::secrets(const std::string& installation_id, const std::string& resource_id) {
  store::ResourceRow row;
  store_.read([&](store::ReadTx& tx) { row = require_resource(tx, installation_id, resource_id); });
  return open_secrets(row);
}

std::vector<ResourceService::UsageSeries> ResourceService::usage_by_day(
    const std::string& installation_id, const std::string& resource_id,
    const std::vector<std::string>& days) {
  std::vector<UsageSeries> out;
  std::map<std::string, size_t> by_metric;  // name -> index in out
  auto series = [&](const product::MetricSpec& m) -> std::vector<int64_t>& {
    auto [it, added] = by_metric.emplace(m.name, out.size());
    if (added) out.push_back({m, std::vector<int64_t>(days.size(), 0)});
    return out[it->second].values;
  };
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < days.size(); ++i) index[days[i]] = i;
  store_.read([&](store::ReadTx& tx) {
    store::ResourceRow row = require_resource(tx, installation_id, resource_id);
    const product::Descriptor* declared = nullptr;
    if (const model::Product* product = catalog_->product(row.product_id))
      declared = &product_of(*product).descriptor();
    if (declared)
      for (const auto& m : declared->metrics) series(m);
    if (days.empty()) return;
    // One range read for the whole period (the days are consecutive and ordered).
    for (const auto& e : tx.usage_between(resource_id, days.front(), days.back())) {
      auto at = index.find(e.day);
      if (at == index.end()) continue;
      series(product::metric_spec(declared, e.metric))[at->second] = e.value;
    }
  });
  return out;
}

}  // namespace wharf::service
