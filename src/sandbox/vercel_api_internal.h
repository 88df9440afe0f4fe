// Plumbing shared by the vercel_api_*.cpp files (not part of the sandbox's public surface):
// the per-request Call, endpoint registration with authentication, logging and error
// rendering, and small state helpers.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/context.h"
#include "sandbox/driver.h"
#include "sandbox/vercel_schema.h"

namespace wharf::sandbox::vercel_api {

using model::Json;

// Runs tasks one after another on a thread started on first use; pending tasks are dropped
// and the thread joined on destruction. Tasks run without any State lock held.
class Background {
 public:
  Background() = default;
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  void post(std::function<void()> task);

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

struct Call {
  Context& ctx;
  Driver& driver;
  Background& background;
  net::Request& req;
  const net::PathParams& params;
  std::string icfg;  // the authenticated installation ("" for endpoints without a bearer)
  // Problems to record with a call that still succeeds (test-invoice validationErrors).
  std::vector<std::string> findings;

  std::string param(const std::string& name) const { return path_param(params, name); }
  // The body as a JSON object; requires Content-Type: application/json. 400 otherwise.
  Json body() const;
  // As body(), but an empty body is {} (endpoints whose body is optional).
  Json optional_body() const;
  std::string now_iso() const;
};

using Endpoint = std::function<net::Response(Call&)>;

// How an endpoint authenticates its caller.
enum class Auth {
  kNone,          // client credentials in the body, or public
  kInstallation,  // bearer = an access token of the {icfg} named in the path
  kToken,         // bearer = any installation's access token; that installation is Call::icfg
};

// Every pattern is registered twice: as given and under the `/api` prefix, because
// https://vercel.com/api + path is the base the reference implementation (and integrations
// copied from it) hard-code (vercel-api.md §1.1, §13 Q14). Both forms answer identically.
class Registrar {
 public:
  Registrar(Routes& routes, Context& ctx, Driver& driver, std::shared_ptr<Background> background)
      : routes_(routes), ctx_(ctx), driver_(driver), background_(std::move(background)) {}

  // An installation-scoped endpoint: `suffix` follows /v1/installations/{icfg}; also
  // registered under the legacy /v1/integrations/marketplace/installations/{icfg} prefix.
  // The bearer must be an access token of {icfg}.
  void installation(const std::string& method, const std::string& suffix, Endpoint fn);
  // An endpoint whose pattern names {icfg} elsewhere (deployment actions); bearer as above.
  void scoped(const std::string& method, const std::string& pattern, Endpoint fn);
  // A general REST endpoint whose path names no installation (projects, deployments, checks;
  // §10.2–10.4): the bearer must be an access token of an installation, which becomes
  // Call::icfg. A `teamId` query parameter is optional (§13 Q7: the reference implementation
  // omits it, others send it); when given it must be that installation's team (accountId),
  // else 403.
  void token(const std::string& method, const std::string& pattern, Endpoint fn);
  // An endpoint without bearer authentication (client credentials in the body, or public).
  void open(const std::string& method, const std::string& pattern, Endpoint fn);

 private:
  void add(const std::string& method, const std::string& pattern, Auth auth, Endpoint fn);
  void add_one(const std::string& method, const std::string& pattern, Auth auth, Endpoint fn);
  Routes& routes_;
  Context& ctx_;
  Driver& driver_;
  std::shared_ptr<Background> background_;
};

// Throws a 400 bad_request naming every problem, if there is any.
void require_valid(const schema::Errors& errors, const std::string& what);

// String member or "" (stored state is trusted but may be partial).
std::string get_str(const Json& obj, const std::string& key);

// The installation record; 404 when it is gone.
Json& installation_of(Json& doc, const std::string& icfg);
const Json& installation_of(const Json& doc, const std::string& icfg);
// A resource of the installation that has not been deleted; 404 otherwise.
Json& live_resource(Json& doc, const std::string& icfg, const std::string& rid);
const Json* find_live_resource(const Json& doc, const std::string& icfg, const std::string& rid);

// Registration of each endpoint group (one file each).
void add_installation_routes(Registrar& r);
void add_resource_routes(Registrar& r);
void add_billing_routes(Registrar& r);
void add_deployment_routes(Registrar& r);

}  // namespace wharf::sandbox::vercel_api
