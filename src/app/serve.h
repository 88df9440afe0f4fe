// Wiring of `wharf serve`: the one place that knows every layer.
#pragma once
#include <map>
#include <string>

#include "app/config.h"

namespace wharf::app {

// Runs until SIGTERM/SIGINT drains the server; returns the process exit code.
int serve(const Config& config);
// `wharf catalog`: the catalog this configuration serves (WHARF_CATALOG, or the built-in one
// with what WHARF_POSTGRES_URL adds), checked, as JSON on stdout — a start for a provider's own.
int print_catalog(const Config& config);
// `wharf outbox [--state pending|delivered|dead]`: prints the outbox (newest first) as JSON,
// dead letters with the response Vercel gave — the admin view of calls to Vercel.
int print_outbox(const Config& config, const std::string& state);
// `wharf outbox retry <id>|--all` (a dead letter back to pending, due now) and
// `wharf outbox drop <id>` (given up for good; purged with the delivered ones). Exit 1 when
// no dead letter matched.
int outbox_action(const Config& config, const std::string& action, const std::string& id);
// `wharf billing show|statement|refund --installation ID [--invoice ID --total 5.00
// --reason "…"]`: an installation's invoices and balances, its current statement, or a
// refund request (queued to Vercel's Invoice Actions through the outbox).
// `wharf credentials rotate <installation>|--due`: a new Vercel access token for one
// installation (or every one due under the rotation schedule), stored in place of the old
// one (flows.md F18). Prints one result per installation; exit 1 when any failed.
int credentials_admin(const Config& config, const std::string& action,
                      const std::string& installation_id);
int billing_admin(const Config& config, const std::string& action,
                  const std::map<std::string, std::string>& options);
// `wharf import <installation> <resource>|--all`: pushes resources this server has to Vercel
// with Import Resource (flows.md F14; an upsert), now. Prints one result per resource; exit 1
// when any failed.
int import_admin(const Config& config, const std::string& installation_id,
                 const std::string& resource_id);
// `wharf doctor`: what needs an operator — the state store's migrations, the outbox (pending,
// dead letters) and, per active installation, Vercel's resources compared with ours (unknown
// at Wharf, missing at Vercel; nothing is changed). JSON on stdout; exit 1 when anything is
// wrong.
int doctor(const Config& config);

}  // namespace wharf::app
