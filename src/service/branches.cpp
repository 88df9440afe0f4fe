// ResourceService's part of deployment branches (flows.md F17): the product's copy of a
// resource's database for one deployment, Wharf's tokens for it, and its deployment check.
// DeploymentService (service/deployments.h) decides when; this does the work on the products
// and the store.
#include "model/api_error.h"
#include "service/resources.h"
#include "util/log.h"

namespace wharf::service {

using model::Json;

namespace {

std::string branch_aad(const std::string& branch_id) {
  return "branch:" + branch_id + ":secrets";
}

}  // namespace

std::optional<Json> ResourceService::make_branch(const store::BranchRow& branch) {
  std::optional<store::ResourceRow> row;
  store_.read([&](store::ReadTx& tx) { row = tx.resource(branch.resource_id); });
  if (!row || row->deleted_ms || row->installation_id != branch.installation_id)
    throw product::ProductRefused(404, "not_found", "resource " + branch.resource_id + " is gone",
                                  "The database this deployment branches from no longer exists.");
  product::Product& impl = product_of(*row);
  if (!impl.descriptor().capabilities.branches)
    throw product::ProductRefused(
        400, "not_supported", "product " + row->product_id + " does not branch databases",
        "This product has no branch databases: disable the action for the project.");
  product::CallContext ctx;
  ctx.idempotency_key = "branch-" + branch.id;
  product::ProductReply reply = impl.branch(info_of(*row), branch.id, ctx);

  std::optional<Json> out;
  store_.write([&](store::WriteTx& tx) {
    auto current = tx.branch(branch.id);
    if (!current || current->status != "running") return;  // cancelled (or dropped) meanwhile
    int64_t now = clock_.now_ms();
    // Wharf's tokens for the branch, made again on a retry (the earlier ones are deleted).
    tx.delete_credentials(branch.id);
    store::ResourceRow as_branch = *row;
    as_branch.id = branch.id;
    Json secrets = issue_secrets(tx, as_branch, now);
    for (const auto& s : reply.secrets) secrets.push_back(model::Secret::from_json(s).to_json());
    current->secrets_sealed = box_.seal(secrets.dump(), branch_aad(branch.id));
    current->status = "succeeded";
    current->status_text = "Branch database ready";
    current->updated_ms = now;
    tx.put_branch(*current);
    out = std::move(secrets);
  });
  return out;
}

Json ResourceService::branch_secrets(const store::BranchRow& branch) const {
  if (!branch.secrets_sealed) return Json::array();
  auto plain = box_.open(*branch.secrets_sealed, branch_aad(branch.id));
  if (!plain) throw std::runtime_error("branch secrets do not decrypt (wrong encryption key?)");
  return Json::parse(*plain);
}

void ResourceService::drop_branch(const store::BranchRow& branch, const std::string& status,
                                  const std::string& status_text) {
  std::optional<store::ResourceRow> row;
  store_.read([&](store::ReadTx& tx) { row = tx.resource(branch.resource_id); });
  // The tokens first: the branch stops serving before its data goes.
  store_.write([&](store::WriteTx& tx) {
    tx.delete_credentials(branch.id);
    auto current = tx.branch(branch.id);
    if (!current) return;
    current->status = status;
    current->status_text = status_text;
    current->secrets_sealed.reset();
    current->updated_ms = clock_.now_ms();
    tx.put_branch(*current);
  });
  if (!row) return;  // no resource record: nothing could have been made
  const model::Product* p = catalog_->product(row->product_id);
  if (!p) return;
  product::Product& impl = product_of(*p);
  if (!impl.descriptor().capabilities.branches) return;
  product::CallContext ctx;
  ctx.idempotency_key = "drop-branch-" + branch.id;
  impl.drop_branch(info_of(*row), branch.id, ctx);
  util::log_info("deployment branch dropped")
      .str("branch", branch.id)
      .str("resource", branch.resource_id)
      .str("status", status);
}

std::string ResourceService::check_database(const std::string& resource_id,
                                            const std::string& database_id) {
  std::optional<store::ResourceRow> row;
  store_.read([&](store::ReadTx& tx) { row = tx.resource(resource_id); });
  if (!row || row->deleted_ms) return "the database no longer exists";
  if (row->status == "suspended") return "the database is suspended";
  product::Product& impl = product_of(*row);
  if (!impl.descriptor().capabilities.branches) return "";
  try {
    return impl.check(database_id);
  } catch (const product::QueryError& e) {
    return e.code == product::error_code::kNotFound ? "the database no longer exists" : e.what();
  }
}

}  // namespace wharf::service
