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
