// Test helper shared by unit tests that need a real HTTP peer on loopback.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/json_check.h"
#include "net/http.h"
#include "net/server.h"

namespace wharf::testutil {

using model::Json;

// An HTTP server on loopback whose answers each test scripts; every request it receives is
// kept. It plays a partner for the sandbox's driver and Vercel for Wharf's outbox.
class ScriptedServer {
 public:
  using Script = std::function<net::Response(const net::Request&)>;

  ScriptedServer() {
    net::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.handler_threads = 8;  // a script may take its time without holding up others
    options.handle_signals = false;
    server_ = std::make_unique<net::Server>(
        options, [this](net::Request& req) { return handle(req); },
        [](int status, std::string_view code, std::string_view message) {
          return net::Response::json(
              status, Json{{"error", {{"code", code}, {"message", message}}}}.dump());
        },
        nullptr);
    server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~ScriptedServer() {
    server_->stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  void script(Script s) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(s);
  }
  std::vector<net::Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.clear();
  }

 private:
  net::Response handle(const net::Request& req) {
    Script s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
      s = script_;
    }
    if (!s) return net::Response::empty(204);
    return s(req);
  }

  std::unique_ptr<net::Server> server_;
  std::thread thread_;
  std::mutex mu_;
  Script script_;
  std::vector<net::Request> requests_;
};

}  // namespace wharf::testutil
