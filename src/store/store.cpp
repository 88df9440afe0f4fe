#include "store/store.h"

#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

namespace wharf::store {
namespace {

std::mutex g_mu;
std::map<std::string, StoreFactory>& registry() {
  static std::map<std::string, StoreFactory> r;
  return r;
}

}  // namespace

std::vector<OutboxRow> claim_outbox_heads(WriteTx& tx, const std::string& owner, size_t limit,
                                          int64_t now_ms, int64_t lease_until_ms) {
  std::vector<OutboxRow> taken;
  // Read more heads than wanted: those of lanes other replicas hold are skipped.
  for (auto& head : tx.outbox_heads(limit * 4, now_ms)) {
    if (taken.size() >= limit) break;
    if (tx.take_outbox_lease(head.ordering_key(), owner, now_ms, lease_until_ms))
      taken.push_back(std::move(head));
  }
  if (taken.empty()) return taken;
  // Read again, now that the leases are ours: a head whose call another replica recorded
  // between the first read and its lease's release is no longer a head (a backend that reads
  // each statement's latest commit, such as PostgreSQL's READ COMMITTED, needs this).
  std::set<std::string> still;
  for (const auto& head : tx.outbox_heads(limit * 4, now_ms)) still.insert(head.id);
  std::vector<OutboxRow> out;
  for (auto& head : taken) {
    if (still.count(head.id))
      out.push_back(std::move(head));
    else
      tx.release_outbox_lease(head.ordering_key(), owner);
  }
  return out;
}

std::map<std::string, std::vector<UsageEntry>> ReadTx::usage_between_many(
    const std::vector<std::string>& resource_ids, const std::string& from_day,
    const std::string& to_day) {
  std::map<std::string, std::vector<UsageEntry>> out;
  for (const auto& id : resource_ids) {
    auto entries = usage_between(id, from_day, to_day);
    if (!entries.empty()) out[id] = std::move(entries);
  }
  return out;
}

std::map<std::string, int64_t> ReadTx::usage_before_many(
    const std::vector<std::string>& resource_ids, const std::string& metric,
    const std::string& day) {
  std::map<std::string, int64_t> out;
  for (const auto& id : resource_ids)
    if (auto value = usage_before(id, metric, day)) out[id] = *value;
  return out;
}

void ReadTx::prefetch_billing(const std::vector<std::string>& /*installation_ids*/) {}

void ReadTx::expect_usage_between_many(const std::vector<std::string>& /*resource_ids*/,
                                       const std::string& /*from_day*/,
                                       const std::string& /*to_day*/) {}

// Keeps plan_periods in step with a plan change: closes the open span of (installation,
// resource) when its plan changes or it is deleted, and opens one for the new plan.
void WriteTx::track_plan(const std::string& installation_id, const std::string& resource_id,
                         const std::optional<std::string>& old_plan, bool old_deleted,
                         const std::optional<std::string>& new_plan, bool new_deleted, int64_t at) {
  bool was_open = old_plan && !old_deleted;
  bool now_open = new_plan && !new_deleted;
  if (was_open && now_open && *old_plan == *new_plan) return;
  if (was_open) end_plan_span(installation_id, resource_id, at);
  if (now_open) start_plan_span(installation_id, resource_id, *new_plan, at);
}

void WriteTx::put_installation(const InstallationRow& r) {
  auto before = installation(r.id);
  track_plan(r.id, "", before ? before->billing_plan_id : std::nullopt,
             before ? before->deleted_ms.has_value() : false, r.billing_plan_id,
             r.deleted_ms.has_value(), r.deleted_ms.value_or(r.updated_ms));
  store_installation(r);
}

void WriteTx::put_resource(const ResourceRow& r) {
  auto before = resource(r.id);
  int64_t at = r.deleted_ms.value_or(before ? r.updated_ms : r.created_ms);
  if (before && before->installation_id != r.installation_id) {
    // Moved to another installation (transfer): the old one's span ends here.
    track_plan(before->installation_id, r.id, before->billing_plan_id,
               before->deleted_ms.has_value(), std::nullopt, true, at);
    before.reset();
  }
  track_plan(r.installation_id, r.id,
             before ? std::optional<std::string>(before->billing_plan_id) : std::nullopt,
             before ? before->deleted_ms.has_value() : false, r.billing_plan_id,
             r.deleted_ms.has_value(), at);
  store_resource(r);
}

void WriteTx::insert_outbox(OutboxRow& r) {
  r.seq = next_seq_ ? *next_seq_ : max_outbox_seq() + 1;
  next_seq_.reset();  // if the insert throws, ask the backend again next time
  store_outbox(r);
  next_seq_ = r.seq + 1;
}

void WriteTx::update_outbox(const OutboxRow& r) {
  next_seq_.reset();  // may renumber a row
  restore_outbox(r);
}

void register_backend(const std::string& scheme, StoreFactory factory) {
  std::lock_guard<std::mutex> lock(g_mu);
  registry()[scheme] = std::move(factory);
}

std::unique_ptr<Store> open_store(const std::string& url) {
  auto colon = url.find("://");
  if (colon == std::string::npos)
    throw std::runtime_error("state URL '" + url + "' has no scheme (expected sqlite://…)");
  std::string scheme = url.substr(0, colon);
  StoreFactory factory;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = registry().find(scheme);
    if (it == registry().end())
      throw std::runtime_error("unsupported state URL scheme '" + scheme + "'");
    factory = it->second;
  }
  return factory(url);
}

}  // namespace wharf::store
