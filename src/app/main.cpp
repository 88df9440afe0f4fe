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
#include "util/log.h"

extern char** environ;

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: wharf serve [--flag value ...]\n"
               "       wharf outbox [--state pending|delivered|dead] [--flag value ...]\n"
               "       wharf billing show|statement --installation ID [--flag value ...]\n"
               "       wharf billing refund --installation ID --invoice ID --total 5.00 "
               "--reason TEXT\n"
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
  if (args[0] != "serve" && args[0] != "outbox" && args[0] != "billing") {
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
    if (args[0] == "outbox") {
      for (size_t i = 0; i < rest.size(); ++i)
        if (rest[i] == "--state" && i + 1 < rest.size()) {
          state = rest[i + 1];
          rest.erase(rest.begin() + static_cast<long>(i), rest.begin() + static_cast<long>(i) + 2);
          break;
        }
    }
    auto config = wharf::app::load_config(env, rest);
    if (args[0] == "outbox") return wharf::app::print_outbox(config, state);
    if (args[0] == "billing") return wharf::app::billing_admin(config, action, billing_options);
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
