// wharf-sandbox — a local Vercel Marketplace that plays Vercel's part towards a partner.
//
//   wharf-sandbox serve [--flag value …]     run it (see `wharf-sandbox help`)
//   wharf-sandbox check --partner-url URL …   run every flow against a partner and report its
//                                            conformance (text, --junit, --json; exit 1 on
//                                            an error) — see docs/sandbox.md
//   wharf-sandbox <flow> [--param value …]   run a flow (install, plans, provision, …) on a
//                                            running sandbox and print the JSON result
//   wharf-sandbox state | log | config        print the sandbox's state / exchange log / config
//   wharf-sandbox clock [--advanceMs n]       print (or move forward) the sandbox's clock
//   wharf-sandbox token --kind user|system --installationId …
//   wharf-sandbox invoice-state --installationId … --invoiceId … --state paid
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/server.h"
#include "sandbox/check_runner.h"
#include "sandbox/context.h"
#include "sandbox/control_api.h"
#include "sandbox/driver.h"
#include "sandbox/faults.h"
#include "sandbox/vercel_api.h"
#include "util/crypto.h"
#include "util/log.h"

extern char** environ;

namespace wharf::sandbox {
namespace {

using model::Json;

struct Setting {
  const char* env;
  const char* flag;
  const char* help;
};

constexpr Setting kSettings[] = {
    {"SANDBOX_LISTEN", "listen", "host:port to listen on (default 127.0.0.1:4000)"},
    {"SANDBOX_DATA_DIR", "data-dir", "state, signing key, client secret (default ./data/sandbox)"},
    {"SANDBOX_PUBLIC_URL", "public-url",
     "URL partners use to reach the sandbox (default http://<listen>)"},
    {"SANDBOX_ISSUER", "issuer", "iss of every token (default: the public URL)"},
    {"INTEGRATION_CLIENT_ID", "client-id",
     "integration client id, the tokens' audience (default oac_sandbox…)"},
    {"INTEGRATION_CLIENT_SECRET", "client-secret",
     "client secret (default: generated into the data dir)"},
    {"SANDBOX_PARTNER_URL", "partner-url",
     "the partner's Base URL (default http://127.0.0.1:3000)"},
    {"SANDBOX_WEBHOOK_URL", "webhook-url",
     "partner webhook URL (default <partner>/webhooks/vercel)"},
    {"SANDBOX_REDIRECT_LOGIN_URL", "redirect-login-url",
     "partner SSO URL (default <partner>/sso/callback)"},
    {"SANDBOX_URL_SLUG", "url-slug", "integration URL slug (default wharf-sandbox)"},
    {"SANDBOX_IMPORT_URL", "import-url",
     "partner Import Resource URL (default <partner>/dashboard/import)"},
    {"SANDBOX_SSO_CODE_TTL_MS", "sso-code-ttl-ms", "lifetime of SSO codes (default 300000)"},
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "wharf-sandbox: %s\n", message.c_str());
  std::exit(2);
}

std::map<std::string, std::string> environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  return env;
}

// --name value / --name=value pairs.
std::vector<std::pair<std::string, std::string>> parse_flags(const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) die("unexpected argument '" + a + "'");
    std::string name = a.substr(2);
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      out.emplace_back(name.substr(0, eq), name.substr(eq + 1));
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      out.emplace_back(name, args[++i]);
    } else {
      out.emplace_back(name, "true");
    }
  }
  return out;
}

void ensure_dir(const std::string& dir) {
  std::string partial;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if ((i == dir.size() || dir[i] == '/') && !partial.empty() &&
        ::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      die("cannot create " + partial + ": " + std::strerror(errno));
    if (i < dir.size()) partial += dir[i];
  }
}

std::string load_or_create_secret(const std::string& path) {
  std::ifstream in(path);
  std::string secret;
  if (in && std::getline(in, secret) && !secret.empty()) return secret;
  secret = util::random_token(24);
  std::ofstream out(path, std::ios::trunc);
  out << secret << "\n";
  ::chmod(path.c_str(), 0600);
  return secret;
}

// Settings from the environment, overridden by --flags; flags that are not settings are
// returned in `rest` when given (the check command's own), refused otherwise.
std::map<std::string, std::string> settings_of(
    const std::vector<std::string>& args,
    std::vector<std::pair<std::string, std::string>>* rest = nullptr) {
  auto env = environment();
  std::map<std::string, std::string> values;
  for (const auto& s : kSettings)
    if (auto it = env.find(s.env); it != env.end() && !it->second.empty())
      values[s.env] = it->second;
  for (const auto& [name, value] : parse_flags(args)) {
    const Setting* found = nullptr;
    for (const auto& s : kSettings)
      if (name == s.flag) found = &s;
    if (found)
      values[found->env] = value;
    else if (rest)
      rest->emplace_back(name, value);
    else
      die("unknown flag --" + name);
  }
  return values;
}

SandboxConfig config_of(const std::map<std::string, std::string>& values) {
  auto get = [&](const char* k, const std::string& def) {
    auto it = values.find(k);
    return it == values.end() ? def : it->second;
  };
  SandboxConfig c;
  std::string listen = get("SANDBOX_LISTEN", "127.0.0.1:4000");
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) die("SANDBOX_LISTEN: must be host:port, got '" + listen + "'");
  c.listen_host = listen.substr(0, colon);
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    c.listen_port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    die("SANDBOX_LISTEN: bad port in '" + listen + "'");
  }
  c.data_dir = get("SANDBOX_DATA_DIR", "./data/sandbox");
  ensure_dir(c.data_dir);
  c.base_url = get("SANDBOX_PUBLIC_URL", "http://" + listen);
  while (c.base_url.size() > 8 && c.base_url.back() == '/') c.base_url.pop_back();
  c.issuer = get("SANDBOX_ISSUER", c.base_url);
  c.client_id = get("INTEGRATION_CLIENT_ID", c.client_id);
  c.client_secret = get("INTEGRATION_CLIENT_SECRET", "");
  if (c.client_secret.empty())
    c.client_secret = load_or_create_secret(c.data_dir + "/client-secret");
  c.partner_url = get("SANDBOX_PARTNER_URL", "http://127.0.0.1:3000");
  while (c.partner_url.size() > 8 && c.partner_url.back() == '/') c.partner_url.pop_back();
  c.webhook_url = get("SANDBOX_WEBHOOK_URL", c.partner_url + "/webhooks/vercel");
  c.redirect_login_url = get("SANDBOX_REDIRECT_LOGIN_URL", c.partner_url + "/sso/callback");
  c.url_slug = get("SANDBOX_URL_SLUG", c.url_slug);
  c.import_url = get("SANDBOX_IMPORT_URL", c.partner_url + "/dashboard/import");
  try {
    c.sso_code_ttl_ms =
        std::stoll(get("SANDBOX_SSO_CODE_TTL_MS", std::to_string(c.sso_code_ttl_ms)));
  } catch (const std::exception&) {
    die("SANDBOX_SSO_CODE_TTL_MS: must be a number of milliseconds");
  }
  return c;
}

// One running sandbox: its state, Vercel API and control API on an HTTP server. `serve` runs
// it until a signal; `check` runs it on a thread while the conformance runner drives flows.
class Sandbox {
 public:
  explicit Sandbox(SandboxConfig config)
      : c_(std::move(config)),
        state_(c_.data_dir + "/sandbox-state.json"),
        identity_(c_.data_dir, c_.issuer, c_.client_id, clock_),
        http_(http_options()),
        faults_(clock_),
        ctx_{c_, state_, log_, identity_, http_, clock_, &clock_, &faults_},
        driver_(ctx_) {
    state_.mutate([&](Json& doc) {
      doc["integration"] = {
          {"clientId", c_.client_id},     {"partnerUrl", c_.partner_url},
          {"webhookUrl", c_.webhook_url}, {"redirectLoginUrl", c_.redirect_login_url},
          {"importUrl", c_.import_url},   {"urlSlug", c_.url_slug},
          {"issuer", c_.issuer}};
    });
    add_vercel_api_routes(routes_, ctx_, driver_);
    add_control_routes(routes_, ctx_, driver_);
    net::ServerOptions so;
    so.host = c_.listen_host;
    so.port = c_.listen_port;
    // Flows call the partner, which may call back into the sandbox (Get Invoice during a
    // purchase), and delaying fault rules sleep: handlers run on a pool, never on the I/O
    // threads, so accepting and serving other connections never waits for them.
    so.threads = 2;
    so.handler_threads = 32;
    server_ = std::make_unique<net::Server>(
        so, [this](net::Request& req) { return handle(req); },
        [](int status, std::string_view code, std::string_view message) {
          return vercel_error(status, std::string(code), std::string(message));
        },
        [](const net::Request& req, const net::Response& res, double ms) {
          util::log_info("request")
              .str("rid", req.request_id)
              .str("method", req.method)
              .str("route", req.route.empty() ? "unmatched" : req.route)
              .num("status", res.status)
              .real("ms", ms);
        });
    try {
      server_->bind();
    } catch (const std::exception& e) {
      die(std::string("SANDBOX_LISTEN: ") + e.what());
    }
  }

  // Serves until the server drains (a signal, or stop()).
  void run() {
    driver_.start();
    util::log_info("wharf-sandbox listening")
        .str("url", c_.base_url)
        .str("issuer", c_.issuer)
        .str("client_id", c_.client_id)
        .str("partner", c_.partner_url)
        .str("inspector", c_.base_url + "/_sandbox/inspector");
    server_->run();
    driver_.stop();
  }
  void stop() { server_->stop(); }

  Context& context() { return ctx_; }
  Driver& driver() { return driver_; }
  const ExchangeLog& log() const { return log_; }

 private:
  static net::HttpClient::Options http_options() {
    net::HttpClient::Options o;
    o.user_agent = "wharf-sandbox (Vercel Marketplace stand-in)";
    return o;
  }

  net::Response handle(net::Request& req) {
    auto m = routes_.match(req.method, req.path);
    req.route = m.pattern;
    if (m.method_not_allowed)
      return vercel_error(405, "method_unknown", "method " + req.method + " not allowed here");
    if (!m.route)
      return vercel_error(404, "not_found", "no route for " + req.method + " " + req.path);
    try {
      return (*m.route)(req, m.params);
    } catch (const model::ApiError& e) {
      return vercel_error(e.status, e.code, e.message);
    } catch (const std::exception& e) {
      util::log_error("sandbox handler failed").str("route", m.pattern).str("error", e.what());
      return vercel_error(500, "internal_server_error", "sandbox error: " + std::string(e.what()));
    }
  }

  SandboxConfig c_;
  // System time moved by an offset that POST /_sandbox/clock advances (tests replay months).
  util::OffsetClock clock_;
  State state_;
  ExchangeLog log_;
  Identity identity_;
  net::HttpClient http_;
  Faults faults_;
  Context ctx_;
  Driver driver_;
  Routes routes_;
  std::unique_ptr<net::Server> server_;
};

int serve(const std::vector<std::string>& args) {
  Sandbox sandbox(config_of(settings_of(args)));
  sandbox.run();
  return 0;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) std::fprintf(stderr, "wharf-sandbox: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

// The conformance runner: a fresh sandbox (its own data dir unless --data-dir is given) serves
// while every check runs against --partner-url; prints the report, writes --junit / --json,
// exits 0 when conformant, 1 when a required check failed, 2 on bad usage.
int check(const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> own;
  auto values = settings_of(args, &own);
  CheckOptions options;
  std::string junit, json_path;
  bool verbose = false;  // the sandbox's request log on stderr (off: the report is the output)
  for (const auto& [name, value] : own) {
    if (name == "product") {
      options.products.push_back(value);
    } else if (name == "metadata") {
      options.metadata = Json::parse(value, nullptr, false);
      if (!options.metadata.is_object()) die("--metadata: must be a JSON object");
    } else if (name == "only") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        std::string id = value.substr(start, comma == std::string::npos ? comma : comma - start);
        if (!id.empty()) {
          bool known = false;
          for (const auto& c : check_catalog())
            known =
                known || id == c.id || (id.back() == '.' && std::string(c.id).rfind(id, 0) == 0);
          if (!known) die("--only: no check named '" + id + "' (see wharf-sandbox check --list)");
          options.only.push_back(id);
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (name == "action") {
      options.action = value;
    } else if (name == "junit") {
      junit = value;
    } else if (name == "json") {
      json_path = value;
    } else if (name == "verbose") {
      verbose = value != "false";
    } else if (name == "list") {
      for (const auto& c : check_catalog()) std::printf("%-24s %-9s %s\n", c.id, c.level, c.title);
      return 0;
    } else {
      die("unknown flag --" + name + " (try 'wharf-sandbox help')");
    }
  }
  if (!values.count("SANDBOX_PARTNER_URL"))
    die("check needs the partner's Base URL (--partner-url or SANDBOX_PARTNER_URL)");
  if (!values.count("INTEGRATION_CLIENT_SECRET"))
    die("check needs the client secret the partner verifies with (--client-secret or "
        "INTEGRATION_CLIENT_SECRET)");
  if (!values.count("SANDBOX_DATA_DIR")) {
    char tmpl[] = "/tmp/wharf-sandbox-check-XXXXXX";
    if (!::mkdtemp(tmpl)) die(std::string("cannot create a data dir: ") + std::strerror(errno));
    values["SANDBOX_DATA_DIR"] = tmpl;
  }
  if (!verbose) util::set_log_level(util::LogLevel::kWarn);
  Sandbox sandbox(config_of(values));
  std::thread server([&sandbox] { sandbox.run(); });
  CheckReport report = run_checks(sandbox.context(), sandbox.driver(), options);
  sandbox.stop();
  server.join();
  std::fputs(report.to_text().c_str(), stdout);
  bool written = true;
  if (!junit.empty()) written = write_file(junit, report.to_junit()) && written;
  if (!json_path.empty())
    written = write_file(json_path, report.to_json(&sandbox.log()).dump(2) + "\n") && written;
  if (!written) return 2;
  return report.ok() ? 0 : 1;
}

// Client side: the CLI talks to a running sandbox over its control API.
int call(const std::string& method, const std::string& path, const Json& body,
         const std::string& sandbox_url) {
  net::HttpClient::Options options;
  options.timeout_ms = 120000;  // flows wait for the partner
  net::HttpClient http(options);
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
  auto res = http.request(method, sandbox_url + path, headers, method == "GET" ? "" : body.dump());
  if (!res.error.empty()) {
    std::fprintf(stderr, "wharf-sandbox: cannot reach %s: %s\n", sandbox_url.c_str(),
                 res.error.c_str());
    return 2;
  }
  auto doc = Json::parse(res.body, nullptr, false);
  std::printf("%s\n", doc.is_discarded() ? res.body.c_str() : doc.dump(2).c_str());
  if (res.status >= 400) return 1;
  if (doc.is_object() && doc.contains("ok") && doc["ok"] == false) return 1;
  return 0;
}

Json params_of(const std::vector<std::pair<std::string, std::string>>& flags) {
  Json params = Json::object();
  for (const auto& [k, v] : flags) {
    if (k == "sandbox") continue;
    // Sent as typed: the flow's own parameter types decide what the text becomes (a
    // `--name 123` stays a name, `--amount 25.00` stays the decimal string a purchase takes,
    // `--metadata '{…}'` becomes an object).
    params[k] = v;
  }
  return params;
}

// The control API's own parameters of the commands that are not flows (a flow types its
// parameters itself): the text of `key` as the integer (or boolean) it must be; text that is
// not one is sent as is, for the API to refuse by name.
void typed(Json& params, const char* key, bool boolean) {
  auto it = params.find(key);
  if (it == params.end() || !it->is_string()) return;
  Json j = Json::parse(it->get<std::string>(), nullptr, false);
  if (!j.is_discarded() && (boolean ? j.is_boolean() : j.is_number_integer())) *it = j;
}

void usage(FILE* out) {
  std::fprintf(
      out,
      "usage: wharf-sandbox serve [--flag value ...]\n"
      "       wharf-sandbox check --partner-url URL --client-secret S [--product ID ...]\n"
      "             [--metadata JSON] [--action SLUG] [--only ID,ID] [--junit FILE]\n"
      "             [--json FILE] [--list] [--verbose]   (plus any serve flag; see "
      "docs/sandbox.md)\n"
      "       wharf-sandbox <flow> [--sandbox URL] [--param value ...]\n"
      "       wharf-sandbox state | log | config | flows [--sandbox URL]\n"
      "       wharf-sandbox clock [--advanceMs MS | --setMs EPOCH_MS | --set ISO-8601]\n"
      "       wharf-sandbox token --kind user|system [--installationId ID] [--role ADMIN|USER]\n"
      "       wharf-sandbox invoice-state --installationId ID --invoiceId ID --state "
      "paid|notpaid|overdue|refunded\n\n"
      "flows: ");
  for (const auto& f : Driver::flow_names()) std::fprintf(out, "%s ", f.c_str());
  std::fprintf(out, "\n\nserve configuration (environment variable / flag):\n");
  for (const auto& s : kSettings) std::fprintf(out, "  %-28s --%-20s %s\n", s.env, s.flag, s.help);
  std::fprintf(out,
               "\nThe client commands reach the sandbox at --sandbox or $SANDBOX_URL (default "
               "http://127.0.0.1:4000).\n");
}

}  // namespace
}  // namespace wharf::sandbox

int main(int argc, char** argv) {
  using namespace wharf::sandbox;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    usage(args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (cmd == "serve") return serve(rest);
    if (cmd == "check") return check(rest);
    auto flags = parse_flags(rest);
    std::string sandbox_url = "http://127.0.0.1:4000";
    if (const char* e = std::getenv("SANDBOX_URL"); e && *e) sandbox_url = e;
    for (const auto& [k, v] : flags)
      if (k == "sandbox") sandbox_url = v;
    while (sandbox_url.size() > 8 && sandbox_url.back() == '/') sandbox_url.pop_back();
    Json params = params_of(flags);
    if (cmd == "state") return call("GET", "/_sandbox/state", params, sandbox_url);
    if (cmd == "log") return call("GET", "/_sandbox/log", params, sandbox_url);
    if (cmd == "config") return call("GET", "/_sandbox/config", params, sandbox_url);
    if (cmd == "flows") return call("GET", "/_sandbox/flows", params, sandbox_url);
    if (cmd == "clock") {  // no flag: read it; --advanceMs N | --setMs N | --set ISO: move it
      for (const char* ms : {"advanceMs", "setMs"}) typed(params, ms, false);
      return call(params.empty() ? "GET" : "POST", "/_sandbox/clock", params, sandbox_url);
    }
    if (cmd == "token") return call("POST", "/_sandbox/tokens", params, sandbox_url);
    if (cmd == "invoice-state") {
      std::string icfg = params.value("installationId", ""), inv = params.value("invoiceId", "");
      if (icfg.empty() || inv.empty()) die("invoice-state needs --installationId and --invoiceId");
      params.erase("installationId");
      params.erase("invoiceId");
      typed(params, "webhook", true);
      return call("POST", "/_sandbox/invoices/" + icfg + "/" + inv + "/state", params, sandbox_url);
    }
    for (const auto& f : Driver::flow_names())
      if (f == cmd) return call("POST", "/_sandbox/flows/" + cmd, params, sandbox_url);
    std::fprintf(stderr, "wharf-sandbox: unknown command '%s' (try 'wharf-sandbox help')\n",
                 cmd.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wharf-sandbox: fatal: %s\n", e.what());
    return 1;
  }
}
