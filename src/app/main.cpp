// wharf — a Vercel Marketplace native integration server.
//
//   wharf serve [--flag value …]   run the server (configuration: env vars, see `wharf help`)
//   wharf help                     list the configuration
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "app/config.h"
#include "app/serve.h"
#include "service/sso.h"
#include "util/log.h"

extern char** environ;

namespace {

void usage(FILE* out) {
  std::fprintf(
      out,
      "usage: wharf serve [--flag value ...]\n"
      "       wharf outbox [--state pending|delivered|dead|dropped] [--flag value ...]\n"
      "       wharf outbox retry <id>|--all | drop <id> [--flag value ...]\n"
      "       wharf billing show|statement --installation ID [--flag value ...]\n"
      "       wharf billing refund --installation ID --invoice ID --total 5.00 "
      "--reason TEXT\n"
      "       wharf credentials rotate <installationId>|--due [--flag value ...]\n"
      "       wharf import <installationId> <resourceId>|--all [--flag value ...]\n"
      "       wharf doctor [--flag value ...]\n"
      "       wharf sso-link <installationId> [resource_id=… path=… …] [--flag value ...]\n"
      "       wharf catalog [--flag value ...]   (the catalog served, as JSON)\n"
      "       wharf help\n\n"
      "Configuration (environment variable / flag):\n%s",
      wharf::app::config_help().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    usage(args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "serve" && args[0] != "outbox" && args[0] != "billing" && args[0] != "sso-link" &&
      args[0] != "catalog" && args[0] != "credentials" && args[0] != "import" &&
      args[0] != "doctor") {
    std::fprintf(stderr, "wharf: unknown command '%s' (try 'wharf help')\n", args[0].c_str());
    return 2;
  }
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  try {
    std::vector<std::string> rest(args.begin() + 1, args.end());
    std::string state;
    std::string action;
    std::map<std::string, std::string> billing_options;
    if (args[0] == "billing") {
      if (rest.empty()) {
        usage(stderr);
        return 2;
      }
      action = rest[0];
      rest.erase(rest.begin());
      for (const char* name : {"installation", "invoice", "total", "reason"})
        for (size_t i = 0; i < rest.size(); ++i)
          if (rest[i] == std::string("--") + name && i + 1 < rest.size()) {
            billing_options[name] = rest[i + 1];
            rest.erase(rest.begin() + static_cast<long>(i),
                       rest.begin() + static_cast<long>(i) + 2);
            break;
          }
    }
    std::string credentials_target;
    if (args[0] == "credentials") {
      if (rest.size() < 2 || rest[0] != "rotate" ||
          (rest[1].rfind("--", 0) == 0 && rest[1] != "--due")) {
        std::fprintf(stderr, "usage: wharf credentials rotate <installationId>|--due\n");
        return 2;
      }
      action = rest[0];
      credentials_target = rest[1];
      rest.erase(rest.begin(), rest.begin() + 2);
    }
    std::string import_installation;
    std::string import_resource;
    if (args[0] == "import") {
      if (rest.size() < 2 || rest[0].rfind("--", 0) == 0 ||
          (rest[1].rfind("--", 0) == 0 && rest[1] != "--all")) {
        std::fprintf(stderr, "usage: wharf import <installationId> <resourceId>|--all\n");
        return 2;
      }
      import_installation = rest[0];
      import_resource = rest[1];
      rest.erase(rest.begin(), rest.begin() + 2);
    }
    std::string outbox_id;
    if (args[0] == "outbox" && !rest.empty() && (rest[0] == "retry" || rest[0] == "drop")) {
      action = rest[0];
      rest.erase(rest.begin());
      if (!rest.empty() && action == "retry" && rest[0] == "--all") {
        rest.erase(rest.begin());  // outbox_id "" = every dead letter
      } else if (!rest.empty() && rest[0].rfind("--", 0) != 0) {
        outbox_id = rest[0];
        rest.erase(rest.begin());
      } else {
        std::fprintf(stderr, "wharf outbox %s: give the id of a dead letter%s\n", action.c_str(),
                     action == "retry" ? " (or --all)" : "");
        return 2;
      }
    }
    if (args[0] == "outbox") {
      for (size_t i = 0; i < rest.size(); ++i)
        if (rest[i] == "--state" && i + 1 < rest.size()) {
          state = rest[i + 1];
          rest.erase(rest.begin() + static_cast<long>(i), rest.begin() + static_cast<long>(i) + 2);
          break;
        }
    }
    // sso-link: a provider-initiated SSO link (flows.md §2.2) for e-mails or our own site.
    std::string installation_id;
    std::vector<std::pair<std::string, std::string>> link_query;
    if (args[0] == "sso-link") {
      while (!rest.empty() && rest.front().rfind("--", 0) != 0) {
        std::string a = rest.front();
        rest.erase(rest.begin());
        auto eq = a.find('=');
        if (installation_id.empty() && eq == std::string::npos) {
          installation_id = a;
        } else if (eq != std::string::npos && wharf::service::is_deep_link_param(a.substr(0, eq))) {
          link_query.emplace_back(a.substr(0, eq), a.substr(eq + 1));
        } else {
          std::fprintf(stderr,
                       "wharf sso-link: '%s' is not one of resource_id=, project_id=, "
                       "invoice_id=, check_id=, experimentation_item_id=, product_id=, pr=, path=, "
                       "url=, support=\n",
                       a.c_str());
          return 2;
        }
      }
      if (installation_id.empty()) {
        std::fprintf(stderr, "wharf sso-link: the installation id is required\n");
        return 2;
      }
    }
    auto config = wharf::app::load_config(env, rest);
    if (args[0] == "outbox" && !action.empty())
      return wharf::app::outbox_action(config, action, outbox_id);
    if (args[0] == "outbox") return wharf::app::print_outbox(config, state);
    if (args[0] == "catalog") return wharf::app::print_catalog(config);
    if (args[0] == "billing") return wharf::app::billing_admin(config, action, billing_options);
    if (args[0] == "credentials")
      return wharf::app::credentials_admin(config, action, credentials_target);
    if (args[0] == "import")
      return wharf::app::import_admin(config, import_installation, import_resource);
    if (args[0] == "doctor") return wharf::app::doctor(config);
    if (args[0] == "sso-link") {
      if (config.url_slug.empty())
        throw wharf::app::ConfigError("WHARF_URL_SLUG", "is required for sso-link");
      std::printf("%s\n", wharf::service::provider_sso_url(config.vercel_sso_url, config.url_slug,
                                                           installation_id, link_query)
                              .c_str());
      return 0;
    }
    if (config.log_level == "debug") wharf::util::set_log_level(wharf::util::LogLevel::kDebug);
    if (config.log_level == "warn") wharf::util::set_log_level(wharf::util::LogLevel::kWarn);
    if (config.log_level == "error") wharf::util::set_log_level(wharf::util::LogLevel::kError);
    return wharf::app::serve(config);
  } catch (const wharf::app::ConfigError& e) {
    std::fprintf(stderr, "wharf: configuration error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wharf: fatal: %s\n", e.what());
    return 1;
  }
}
