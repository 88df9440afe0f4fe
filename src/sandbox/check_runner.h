// `wharf-sandbox check`: the conformance runner a provider on any stack adds to CI. It plays
// Vercel through every flow the sandbox knows (install, plans, provision, read, update, plan
// change, rotation, REPL, SSO, webhooks, transfer, delete, uninstall) against a partner's Base
// URL, in order, each flow using what the previous ones created, and reports one named check
// per step with its severity (deployments: an action and the partner's registered checks):
//
//   required  what the Marketplace needs from every native integration (partner-api.md): a
//             failure is a conformance error and makes the runner exit non-zero;
//   advice    optional features (rotation, REPL, transfers) and good practice: a failure is
//             reported as a warning and never fails the run.
//
// A check is skipped, with the reason, when what it needs is missing (no --product, a failed
// earlier step, only one plan to change to). Findings are the exchange log's conformance
// findings (sandbox/conformance.h) plus what the runner itself observes (e.g. the SSO code was
// never exchanged). docs/sandbox.md lists every check.
#pragma once
#include <string>
#include <vector>

#include "sandbox/context.h"
#include "sandbox/driver.h"

namespace wharf::sandbox {

struct CheckInfo {
  const char* id;
  const char* level;  // "required" | "advice"
  const char* title;  // what is checked, one line
};

// Every check in the order the runner performs them.
const std::vector<CheckInfo>& check_catalog();

struct CheckOptions {
  // Products to provision (each gets the resource checks). Empty: resource checks are skipped.
  std::vector<std::string> products;
  // Metadata sent with provisioning (the product's metadataSchema decides what is needed).
  model::Json metadata = model::Json::object();
  // Check ids (or prefixes ending in '.') to run; empty runs all. Checks a selected check
  // needs (install before provision) still run, as prerequisites.
  std::vector<std::string> only;
  // A deployment integration action slug the product declares (deployment.action check);
  // empty: that check is skipped.
  std::string action;
};

struct CheckResult {
  std::string id;
  std::string level;
  std::string title;
  std::string product;  // the product the check ran for, if any
  std::string status;   // passed | failed | warning | skipped
  std::string reason;   // why skipped
  std::vector<std::string> findings;
  std::vector<int64_t> exchanges;
  double seconds = 0;
};

struct CheckReport {
  std::string partner_url;
  std::string started_at;
  double seconds = 0;
  std::vector<CheckResult> results;

  bool ok() const;  // no required check failed
  model::Json to_json(const ExchangeLog* log = nullptr) const;
  std::string to_junit() const;
  std::string to_text() const;  // the readable report printed on stdout
};

// Runs the checks through `driver` (whose context points at the partner). Blocking; the
// sandbox's HTTP surface must be serving ctx's routes so the partner can call back.
CheckReport run_checks(Context& ctx, Driver& driver, const CheckOptions& options);

}  // namespace wharf::sandbox
