// The conformance runner (sandbox/check_runner.h): one named check per step of Vercel's flows,
// run in order against the partner, and its three renderings (text, JSON, JUnit XML).
#include "sandbox/check_runner.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <thread>

#include "sandbox/conformance.h"
#include "util/clock.h"
#include "util/markup.h"

namespace wharf::sandbox {

using model::Json;

namespace {

constexpr const char* kRequired = "required";
constexpr const char* kAdvice = "advice";

// How long the runner waits for what a partner does after answering (the secrets of an
// asynchronous rotation).
constexpr int64_t kAsyncWaitMs = 30000;

}  // namespace

const std::vector<CheckInfo>& check_catalog() {
  static const std::vector<CheckInfo> catalog = {
      {"plans.product", kRequired,
       "Get Product Plans answers 200 with at least one plan in the documented shape"},
      {"install", kRequired,
       "Upsert Installation (user token, credentials, account) is accepted with 2xx"},
      {"install.get", kRequired, "Get Installation answers in the documented shape"},
      {"provision", kRequired,
       "Provision Resource answers 200/201 with id, name, status, secrets; the resource then "
       "reads back with Get Resource"},
      {"resource.get", kRequired, "Get Resource answers the provisioned resource"},
      {"resource.list", kRequired, "List Resources includes the provisioned resource"},
      {"resource.update", kRequired, "Update Resource renames it and answers the new name"},
      {"resource.plans", kAdvice, "Get Resource Plans answers the plans a resource can move to"},
      {"resource.change-plan", kRequired,
       "Update Resource with another billing plan is accepted (skipped with one plan)"},
      {"resource.rotate-secrets", kAdvice,
       "Rotate Secrets answers 200 with new secrets, or 202 and PUTs them within 30 s"},
      {"resource.repl", kAdvice, "The REPL answers a command"},
      {"sso", kRequired,
       "The Redirect Login URL exchanges the SSO code (once) and answers the browser with "
       "200 or a redirect"},
      {"webhook.delivery", kRequired, "A signed webhook delivery is acknowledged with 2xx"},
      {"webhook.signature", kRequired,
       "A delivery with a wrong x-vercel-signature is refused (401/403), not processed"},
      {"deployment.action", kAdvice,
       "A deployment integration action (--action SLUG) started for a preview deployment "
       "reports running, then succeeded or failed, with well-formed outcomes"},
      {"deployment.checks", kAdvice,
       "A check the partner registers when the resource is connected to a project runs on "
       "deployment.checkrun.start and completes (with a conclusion) within its timeout"},
      {"transfer", kAdvice,
       "A resource moves to another installation: create, verify, accept; the target then "
       "lists it"},
      {"resource.delete", kRequired, "Delete Resource is accepted with 2xx"},
      {"uninstall", kRequired,
       "Delete Installation is accepted; the installation is finalized or pending deletion"},
  };
  return catalog;
}

namespace {

const CheckInfo& info_of(const std::string& id) {
  for (const auto& c : check_catalog())
    if (id == c.id) return c;
  throw std::logic_error("unknown check " + id);
}

std::vector<std::string> strings_of(const Json& j) {
  std::vector<std::string> out;
  if (j.is_array())
    for (const auto& e : j)
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

class Runner {
 public:
  Runner(Context& ctx, Driver& driver, const CheckOptions& options)
      : ctx_(ctx), driver_(driver), options_(options) {}

  CheckReport run() {
    CheckReport report;
    report.partner_url = ctx_.config.partner_url;
    report.started_at = util::format_iso8601_ms(ctx_.clock.now_ms());
    auto start = std::chrono::steady_clock::now();

    for (const auto& product : options_.products) product_plans(product);
    if (!step("install", "", [&](CheckResult& r) { install(r, icfg_); })) {
      skip_rest("needs a successful install");
    } else {
      step("install.get", "", [&](CheckResult& r) {
        take(r, flow("get-installation", {{"installationId", icfg_}}));
      });
      if (options_.products.empty()) {
        for (const char* id :
             {"provision", "resource.get", "resource.list", "resource.update", "resource.plans",
              "resource.change-plan", "resource.rotate-secrets", "resource.repl",
              "deployment.action", "deployment.checks", "transfer", "resource.delete"})
          skip(id, "", "no product given (--product)");
      }
      for (const auto& product : options_.products) resource_checks(product);
      step("sso", "", [&](CheckResult& r) { sso(r); });
      step("webhook.delivery", "", [&](CheckResult& r) { webhook(r, "good"); });
      step("webhook.signature", "", [&](CheckResult& r) { webhook(r, "bad"); });
      step("uninstall", "", [&](CheckResult& r) { uninstall(r, icfg_); });
    }

    report.results = std::move(results_);
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
  }

 private:
  // ---- bookkeeping --------------------------------------------------------------------

  bool selected(const std::string& id) const {
    if (options_.only.empty()) return true;
    for (const auto& o : options_.only) {
      if (o == id) return true;
      if (!o.empty() && o.back() == '.' && id.rfind(o, 0) == 0) return true;
    }
    return false;
  }

  // Runs one check. A check that is not selected still runs when `needed` (later checks use
  // what it creates) but is reported only if it fails. Returns whether it passed (warnings
  // count as passed: they are advice).
  bool step(const std::string& id, const std::string& product,
            const std::function<void(CheckResult&)>& body, bool needed = true) {
    bool wanted = selected(id);
    if (!wanted && !needed) return true;
    const CheckInfo& info = info_of(id);
    CheckResult r;
    r.id = id;
    r.level = info.level;
    r.title = info.title;
    r.product = product;
    auto start = std::chrono::steady_clock::now();
    try {
      body(r);
    } catch (const model::ApiError& e) {
      // The sandbox refused its own parameters: what the partner answered earlier is missing.
      r.findings.push_back("the sandbox could not run this step: " + e.message);
    } catch (const std::exception& e) {
      r.findings.push_back(std::string("the sandbox could not run this step: ") + e.what());
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r.status.empty()) {
      if (r.findings.empty())
        r.status = "passed";
      else
        r.status = r.level == kRequired ? "failed" : "warning";
    }
    bool passed = r.status == "passed" || r.status == "warning";
    if (wanted || !passed) results_.push_back(std::move(r));
    return passed;
  }

  void skip(const std::string& id, const std::string& product, const std::string& reason) {
    if (!selected(id)) return;
    const CheckInfo& info = info_of(id);
    CheckResult r;
    r.id = id;
    r.level = info.level;
    r.title = info.title;
    r.product = product;
    r.status = "skipped";
    r.reason = reason;
    results_.push_back(std::move(r));
  }

  void skip_rest(const std::string& reason) {
    for (const auto& c : check_catalog()) {
      bool done = std::any_of(results_.begin(), results_.end(),
                              [&](const CheckResult& r) { return r.id == c.id; });
      if (!done) skip(c.id, "", reason);
    }
  }

  Json flow(const std::string& name, const Json& params) { return driver_.run(name, params); }

  // A flow's result into the check: its findings, exchanges, and a failure when the partner's
  // answer was not a success (a transport error or non-2xx names the status).
  static void take(CheckResult& r, const Json& result, const std::string& prefix = "") {
    for (const auto& f : strings_of(result.value("findings", Json::array())))
      r.findings.push_back(prefix + f);
    if (result.contains("exchanges") && result["exchanges"].is_array())
      for (const auto& e : result["exchanges"])
        if (e.is_number_integer()) r.exchanges.push_back(e.get<int64_t>());
    if (!result.value("ok", false)) {
      std::string what = result.contains("error") && result["error"].is_string()
                             ? result["error"].get<std::string>()
                             : "";
      if (what.empty()) {
        int status =
            result.value("status", Json()).is_number_integer() ? result["status"].get<int>() : 0;
        what = status ? "the partner answered " + std::to_string(status)
                      : "the partner did not answer";
      }
      r.findings.push_back(prefix + what);
    }
  }

  // ---- the steps ----------------------------------------------------------------------

  void product_plans(const std::string& product) {
    step("plans.product", product, [&](CheckResult& r) {
      Json res = flow("plans", {{"productId", product}});
      take(r, res);
      const Json& body = res["response"];
      if (res.value("ok", false) && body.is_object() && body.contains("plans") &&
          body["plans"].is_array()) {
        if (body["plans"].empty()) r.findings.push_back("response.plans: is empty");
        plans_[product] = body["plans"];
      }
    });
  }

  void install(CheckResult& r, std::string& icfg) {
    Json res = flow("install", Json::object());
    take(r, res);
    if (res.value("ok", false)) icfg = res.value("installationId", "");
    if (icfg.empty() && r.findings.empty()) r.findings.push_back("no installation was recorded");
    installer_ = res.value("userHex", "");
  }

  // The plan to provision with (a subscription plan first) and another to change to.
  std::pair<std::string, std::string> pick_plans(const std::string& product) const {
    std::vector<std::string> subscription, other;
    auto it = plans_.find(product);
    if (it != plans_.end()) {
      for (const auto& p : it->second) {
        if (!p.is_object() || !p.contains("id") || !p["id"].is_string()) continue;
        if (p.value("disabled", false)) continue;
        (p.value("type", "") == "subscription" ? subscription : other)
            .push_back(p["id"].get<std::string>());
      }
    }
    std::string first = !subscription.empty() ? subscription[0] : !other.empty() ? other[0] : "";
    std::string second = subscription.size() > 1 ? subscription[1] : "";
    return {first, second};
  }

  std::string provision(CheckResult& r, const std::string& icfg, const std::string& product,
                        const std::string& name) {
    auto [plan, unused] = pick_plans(product);
    Json params = {{"installationId", icfg}, {"productId", product}, {"name", name}};
    if (!options_.metadata.empty()) params["metadata"] = options_.metadata;
    if (!plan.empty()) params["billingPlanId"] = plan;
    Json res = flow("provision", params);
    take(r, res);
    return res.value("ok", false) ? res.value("resourceId", "") : "";
  }

  void resource_checks(const std::string& product) {
    std::string rid;
    if (!step("provision", product,
              [&](CheckResult& r) { rid = provision(r, icfg_, product, "conformance"); }) ||
        rid.empty()) {
      for (const char* id :
           {"resource.get", "resource.list", "resource.update", "resource.plans",
            "resource.change-plan", "resource.rotate-secrets", "resource.repl", "deployment.action",
            "deployment.checks", "transfer", "resource.delete"})
        skip(id, product, "needs a successful provision");
      return;
    }
    if (sso_resource_.empty()) sso_resource_ = rid;
    Json ids = {{"installationId", icfg_}, {"resourceId", rid}};
    step(
        "resource.get", product, [&](CheckResult& r) { take(r, flow("get-resource", ids)); },
        false);
    step(
        "resource.list", product,
        [&](CheckResult& r) {
          Json res = flow("list-resources", {{"installationId", icfg_}});
          take(r, res);
          if (!res.value("ok", false)) return;
          bool listed = false;
          const Json& body = res["response"];
          if (body.is_object() && body.contains("resources") && body["resources"].is_array())
            for (const auto& e : body["resources"])
              if (e.is_object() && e.value("id", "") == rid) listed = true;
          if (!listed) r.findings.push_back("response.resources: does not list " + rid);
        },
        false);
    step(
        "resource.update", product,
        [&](CheckResult& r) {
          Json params = ids;
          params["name"] = "conformance-renamed";
          Json res = flow("update-resource", params);
          take(r, res);
          if (res.value("ok", false) && res["resource"].is_object() &&
              res["resource"].value("name", "") != "conformance-renamed")
            r.findings.push_back("the resource read back after the update is named '" +
                                 res["resource"].value("name", "") +
                                 "', not 'conformance-renamed'");
        },
        false);
    step(
        "resource.plans", product, [&](CheckResult& r) { take(r, flow("plans", ids)); }, false);
    auto [plan, other] = pick_plans(product);
    if (other.empty()) {
      skip("resource.change-plan", product, "the product has fewer than two subscription plans");
    } else {
      step(
          "resource.change-plan", product,
          [&, other_plan = other](CheckResult& r) {
            Json params = ids;
            params["billingPlanId"] = other_plan;
            take(r, flow("change-plan", params));
          },
          false);
    }
    step(
        "resource.rotate-secrets", product, [&](CheckResult& r) { rotate(r, rid); }, false);
    step(
        "resource.repl", product,
        [&](CheckResult& r) {
          Json params = ids;
          params["input"] = "help";
          take(r, flow("repl", params));
        },
        false);
    deployment_checks(product, rid);
    step(
        "transfer", product, [&](CheckResult& r) { transfer(r, product); }, false);
    step(
        "resource.delete", product,
        [&](CheckResult& r) {
          take(r, flow("delete-resource", ids));
          if (sso_resource_ == rid) sso_resource_.clear();
        },
        false);
  }

  Json stored_resource(const std::string& icfg, const std::string& rid) const {
    return ctx_.state.read([&](const Json& doc) -> Json {
      if (!doc.contains("resources") || !doc["resources"].contains(icfg)) return Json();
      const Json& all = doc["resources"][icfg];
      return all.contains(rid) ? all[rid] : Json();
    });
  }

  void rotate(CheckResult& r, const std::string& rid) {
    Json res =
        flow("rotate-secrets",
             {{"installationId", icfg_}, {"resourceId", rid}, {"reason", "conformance check"}});
    take(r, res);
    if (!res.value("ok", false) || res.value("sync", true)) return;
    // 202: the partner owes Vercel the new secrets (PUT …/secrets).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kAsyncWaitMs);
    while (std::chrono::steady_clock::now() < deadline) {
      Json rec = stored_resource(icfg_, rid);
      if (rec.is_object() && !rec.value("rotationPending", false)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    r.findings.push_back("the partner answered 202 but did not send the new secrets (PUT " +
                         std::string("/v1/installations/{id}/resources/{id}/secrets) within ") +
                         std::to_string(kAsyncWaitMs / 1000) + " s");
  }

  // One preview deployment of a project the resource is connected to (the `deploy` flow):
  // the action named by --action, and every check run the partner's registered checks open.
  void deployment_checks(const std::string& product, const std::string& rid) {
    if (!selected("deployment.action") && !selected("deployment.checks")) return;
    Json params = {{"installationId", icfg_}, {"resourceId", rid}, {"target", "preview"}};
    if (!options_.action.empty()) params["action"] = options_.action;
    Json res;
    std::string error;
    try {
      res = flow("deploy", params);
    } catch (const std::exception& e) {
      error = std::string("the sandbox could not run the deployment: ") + e.what();
    }
    // What went wrong around the deployment itself (a webhook refused) belongs to both.
    auto common = [&](CheckResult& r) {
      if (!error.empty()) r.findings.push_back(error);
      for (const auto& f : strings_of(res.value("findings", Json::array())))
        r.findings.push_back(f);
      if (res.contains("exchanges") && res["exchanges"].is_array())
        for (const auto& e : res["exchanges"])
          if (e.is_number_integer()) r.exchanges.push_back(e.get<int64_t>());
    };
    if (options_.action.empty()) {
      skip("deployment.action", product, "no action slug given (--action)");
    } else {
      step(
          "deployment.action", product,
          [&](CheckResult& r) {
            common(r);
            for (const auto& a : res.value("actions", Json::array()))
              for (const auto& f : strings_of(a.value("findings", Json::array())))
                r.findings.push_back(f);
          },
          false);
    }
    const Json runs = res.value("checkRuns", Json::array());
    if (error.empty() && runs.empty()) {
      skip("deployment.checks", product,
           "the partner registered no check for the project (POST /v2/projects/{id}/checks on "
           "integration-resource.project-connected)");
      return;
    }
    step(
        "deployment.checks", product,
        [&](CheckResult& r) {
          common(r);
          for (const auto& run : runs)
            for (const auto& f : strings_of(run.value("findings", Json::array())))
              r.findings.push_back(f);
        },
        false);
  }

  void transfer(CheckResult& r, const std::string& product) {
    std::string target;
    Json res = flow("install", Json::object());
    take(r, res, "install (target): ");
    if (!res.value("ok", false)) return;
    target = res.value("installationId", "");
    std::string rid = provision(r, icfg_, product, "conformance-transfer");
    if (rid.empty()) return;
    res = flow("transfer-create", {{"installationId", icfg_}, {"resourceIds", {rid}}});
    take(r, res, "transfer-create: ");
    std::string claim = res.value("claimId", "");
    if (res.value("ok", false) && !claim.empty()) {
      res = flow("transfer-verify", {{"installationId", target}, {"claimId", claim}});
      take(r, res, "transfer-verify: ");
      if (res.value("ok", false)) {
        res = flow("transfer-accept", {{"installationId", target}, {"claimId", claim}});
        take(r, res, "transfer-accept: ");
      }
    }
    // Clean up what the check created, wherever the resource ended up.
    bool moved = stored_resource(target, rid).is_object();
    Json del =
        flow("delete-resource", {{"installationId", moved ? target : icfg_}, {"resourceId", rid}});
    take(r, del, "delete-resource: ");
    Json un = flow("uninstall", {{"installationId", target}});
    take(r, un, "uninstall (target): ");
  }

  void sso(CheckResult& r) {
    Json params = {{"installationId", icfg_}};
    if (!sso_resource_.empty()) params["resourceId"] = sso_resource_;
    Json res = flow("sso", params);
    take(r, res);
    std::string url = res.value("redirectUrl", "");
    std::string code = res.value("code", "");
    if (url.empty() || code.empty()) return;
    // The browser's visit to the Redirect Login URL.
    Exchange ex;
    ex.direction = "to-partner";
    ex.flow = "sso";
    ex.method = "GET";
    ex.url = url;
    ex.at_ms = ctx_.clock.now_ms();
    auto start = std::chrono::steady_clock::now();
    net::HttpResult got = ctx_.http.request("GET", url, {{"Accept", "text/html"}});
    ex.duration_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ex.status = got.status;
    ex.error = got.error;
    ex.response_body = got.body.substr(0, 4096);
    std::string content_type;
    for (const auto& [k, v] : got.headers)
      if (k == "content-type") content_type = v;
    if (got.error.empty())
      ex.findings = check_partner_response("sso-callback", got.status, content_type, got.body);
    else
      ex.findings.push_back("no answer from the Redirect Login URL: " + got.error);
    for (const auto& f : ex.findings) r.findings.push_back("Redirect Login URL: " + f);
    r.exchanges.push_back(ctx_.log.add(std::move(ex)));
    bool used = ctx_.state.read([&](const Json& doc) {
      return doc.contains("ssoCodes") && doc["ssoCodes"].contains(code) &&
             doc["ssoCodes"][code].value("used", false);
    });
    if (got.error.empty() && !used)
      r.findings.push_back(
          "the partner never exchanged the SSO code (POST /v1/integrations/sso/token): a "
          "signed-in session cannot rest on a verified id_token");
  }

  void webhook(CheckResult& r, const std::string& signature) {
    // A benign event every partner receives: the installer's role, unchanged.
    Json payload = {{"installationId", icfg_},
                    {"configuration", {{"id", icfg_}}},
                    {"memberId", installer_},
                    {"role", "ADMIN"}};
    Json res = flow("webhook", {{"type", "marketplace.member.changed"},
                                {"installationId", icfg_},
                                {"payload", payload},
                                {"signature", signature}});
    if (signature == "good") {
      take(r, res);
      return;
    }
    // A refusal is the right answer here; the flow judges it and reports acceptance.
    for (const auto& f : strings_of(res.value("findings", Json::array()))) r.findings.push_back(f);
    if (res.contains("exchanges"))
      for (const auto& e : res["exchanges"])
        if (e.is_number_integer()) r.exchanges.push_back(e.get<int64_t>());
    int status = res.value("status", Json()).is_number_integer() ? res["status"].get<int>() : 0;
    if (status == 0) r.findings.push_back("the webhook URL did not answer");
  }

  void uninstall(CheckResult& r, const std::string& icfg) {
    Json res = flow("uninstall", {{"installationId", icfg}});
    take(r, res);
  }

  Context& ctx_;
  Driver& driver_;
  const CheckOptions& options_;
  std::vector<CheckResult> results_;
  std::map<std::string, Json> plans_;  // product -> plans as answered
  std::string icfg_;
  std::string installer_;
  std::string sso_resource_;
};

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

std::string name_of(const CheckResult& r) {
  return r.product.empty() ? r.id : r.id + " [" + r.product + "]";
}

}  // namespace

bool CheckReport::ok() const {
  return std::none_of(results.begin(), results.end(),
                      [](const CheckResult& r) { return r.status == "failed"; });
}

Json CheckReport::to_json(const ExchangeLog* log) const {
  std::map<std::string, int> counts = {
      {"passed", 0}, {"failed", 0}, {"warning", 0}, {"skipped", 0}};
  Json checks = Json::array();
  std::map<int64_t, Json> exchanges;
  if (log)
    for (const auto& e : log->list(0, SIZE_MAX)) exchanges[e.id] = ExchangeLog::to_json(e);
  for (const auto& r : results) {
    counts[r.status]++;
    Json c = {{"id", r.id},         {"level", r.level},       {"title", r.title},
              {"status", r.status}, {"findings", r.findings}, {"seconds", r.seconds}};
    if (!r.product.empty()) c["product"] = r.product;
    if (!r.reason.empty()) c["reason"] = r.reason;
    c["exchanges"] = r.exchanges;
    if (log && r.status != "passed") {
      Json ex = Json::array();
      for (int64_t id : r.exchanges)
        if (auto it = exchanges.find(id); it != exchanges.end()) ex.push_back(it->second);
      c["exchangeDetails"] = std::move(ex);
    }
    checks.push_back(std::move(c));
  }
  return {{"ok", ok()},         {"partnerUrl", partner_url}, {"startedAt", started_at},
          {"seconds", seconds}, {"summary", counts},         {"checks", std::move(checks)}};
}

std::string CheckReport::to_junit() const {
  int failures = 0, skipped = 0;
  for (const auto& r : results) {
    failures += r.status == "failed";
    skipped += r.status == "skipped";
  }
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  std::string counts = " tests=\"" + std::to_string(results.size()) + "\" failures=\"" +
                       std::to_string(failures) + "\" errors=\"0\" skipped=\"" +
                       std::to_string(skipped) + "\" time=\"" + seconds_text(seconds) + "\"";
  x += "<testsuites name=\"wharf-sandbox check\"" + counts + ">\n";
  x += "  <testsuite name=\"vercel-marketplace-conformance\"" + counts + " timestamp=\"" +
       util::markup_escape(started_at) + "\">\n";
  x += "    <properties><property name=\"partnerUrl\" value=\"" + util::markup_escape(partner_url) +
       "\"/></properties>\n";
  for (const auto& r : results) {
    x += "    <testcase classname=\"" + util::markup_escape(r.level) + "\" name=\"" +
         util::markup_escape(name_of(r)) + "\" time=\"" + seconds_text(r.seconds) + "\">\n";
    std::string text;
    for (const auto& f : r.findings) text += f + "\n";
    if (r.status == "failed") {
      x += "      <failure type=\"conformance\" message=\"" +
           util::markup_escape(r.findings.empty() ? r.title : r.findings.front()) + "\">" +
           util::markup_escape(r.title + "\n" + text) + "</failure>\n";
    } else if (r.status == "skipped") {
      x += "      <skipped message=\"" + util::markup_escape(r.reason) + "\"/>\n";
    } else if (r.status == "warning") {
      // Advice: visible in the report, never a failure of the build.
      x += "      <system-err>" +
           util::markup_escape("warning (advice): " + r.title + "\n" + text) + "</system-err>\n";
    }
    x += "    </testcase>\n";
  }
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

std::string CheckReport::to_text() const {
  std::string t = "wharf-sandbox check against " + partner_url + "\n\n";
  int counts[4] = {0, 0, 0, 0};
  for (const auto& r : results) {
    const char* mark = r.status == "passed"    ? "PASS"
                       : r.status == "failed"  ? "FAIL"
                       : r.status == "warning" ? "WARN"
                                               : "SKIP";
    counts[r.status == "passed" ? 0 : r.status == "failed" ? 1 : r.status == "warning" ? 2 : 3]++;
    t += std::string("  ") + mark + "  " + name_of(r) + "  (" + r.level + ")";
    if (r.status == "skipped") t += " — " + r.reason;
    t += "\n";
    if (r.status == "failed" || r.status == "warning") {
      t += "        " + r.title + "\n";
      for (const auto& f : r.findings) t += "        - " + f + "\n";
      if (!r.exchanges.empty()) {
        t += "        exchanges:";
        for (int64_t id : r.exchanges) t += " #" + std::to_string(id);
        t += "\n";
      }
    }
  }
  t += "\n" + std::to_string(counts[0]) + " passed, " + std::to_string(counts[1]) + " failed, " +
       std::to_string(counts[2]) + " warnings, " + std::to_string(counts[3]) + " skipped in " +
       seconds_text(seconds) + " s — " +
       (ok() ? "conformant" : "NOT conformant (a required check failed)") + "\n";
  return t;
}

CheckReport run_checks(Context& ctx, Driver& driver, const CheckOptions& options) {
  return Runner(ctx, driver, options).run();
}

}  // namespace wharf::sandbox
