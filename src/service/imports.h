// Import and reconciliation (flows.md F14): resources that exist on our side are pushed to
// Vercel with Import Resource (vercel-api.md §5.3, an upsert), synchronously — the import flow
// redirects the browser back to Vercel only once Vercel has the resource — and a periodic pass
// compares Vercel's view (Get Integration Resources, §5.1) with ours: a live resource Vercel
// lacks is imported again; one Vercel lists that we do not have (or have deleted) is only
// reported (/metrics, `wharf doctor`): customer data is never deleted by a comparison.
//
// Every resource Wharf serves is billed through Vercel by Wharf's billing pass, so imports say
// `ownership: "owned"` (docs/decisions.md); the body carries the plan, status, metadata and
// the secrets with their environmentOverrides.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/catalog.h"
#include "net/http_client.h"
#include "service/installations.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "vercel/api.h"

namespace wharf::service {

class ImportService {
 public:
  // Sends a call to Vercel with a bearer token, synchronously.
  using Send = std::function<net::HttpResult(const vercel::Call& call, const std::string& bearer,
                                             const std::string& installation_id)>;
  ImportService(store::Store& store, std::shared_ptr<const model::Catalog> catalog,
                InstallationService& installations, const util::SecretBox& box, Send send);

  // Import Resource for a live resource of the installation; returns Vercel's answer body.
  // Throws ApiError: 404 unknown resource, 409 installation not active, 502 when Vercel
  // refused or could not be reached (with a user message; nothing changed on our side).
  model::Json import(const std::string& installation_id, const std::string& resource_id);
  // The Import Resource body for a resource (vercel-api.md §5.3).
  model::Json body(const store::ResourceRow& row) const;

  struct Report {
    std::string installation_id;
    std::vector<std::string> reimported;  // ours, missing at Vercel, imported again
    std::vector<std::string> unknown;     // at Vercel, not (or no longer) ours: reported
    std::vector<std::string> missing;     // ours, missing at Vercel, not imported (failed, dry run)
    std::string error;                    // Get Integration Resources failed
    model::Json to_json() const;
  };
  // One installation; `repair` false only compares (wharf doctor).
  Report reconcile(const std::string& installation_id, bool repair);
  // Every active installation; remembers the unknown count for unknown_resources().
  std::vector<Report> reconcile_all(bool repair);
  // Resources Vercel lists that we do not have, as of the last reconcile_all (for /metrics).
  int64_t unknown_resources() const { return unknown_.load(); }
  int64_t reimported_total() const { return reimported_.load(); }

 private:
  store::Store& store_;
  std::shared_ptr<const model::Catalog> catalog_;
  InstallationService& installations_;
  const util::SecretBox& box_;
  Send send_;
  std::atomic<int64_t> unknown_{0};
  std::atomic<int64_t> reimported_{0};
};

}  // namespace wharf::service
