// net::Server with handler_threads: a handler that blocks (an outbound call) holds up neither
// accepting nor serving other connections, and answers still reach their own connection.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/server.h"

namespace wharf::net {
namespace {

TEST(ServerPoolTest, ABlockedHandlerDoesNotHoldUpOtherConnections) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 1;  // one I/O thread: without the pool, /slow would stall everything
  options.handler_threads = 4;
  options.handle_signals = false;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Server server(
      options,
      [released](Request& req) {
        if (req.path == "/slow") released.wait();
        return Response::json(200, "{\"path\":\"" + req.path + "\"}");
      },
      [](int status, std::string_view, std::string_view) { return Response::json(status, "{}"); },
      nullptr);
  server.bind();
  std::thread runner([&server] { server.run(); });
  std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  HttpClient::Options client_options;
  client_options.max_idle_handles = 0;  // a new connection per call: accepting is tested too
  HttpClient http(client_options);
  auto slow = std::async(std::launch::async, [&] { return http.get(base + "/slow"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    auto r = http.get(base + "/fast" + std::to_string(i));  // a new connection each time
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"path\":\"/fast" + std::to_string(i) + "\"}");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(slow.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  release.set_value();
  auto r = slow.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"path\":\"/slow\"}");
  server.stop();
  runner.join();
}

TEST(ServerPoolTest, InlineHandlersRunOnTheIoThreadAndCanDeferToThePool) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 1;
  options.handler_threads = 2;
  options.handle_signals = false;
  options.run_inline = [](const Request& req) { return req.path != "/pool"; };
  std::mutex mu;
  std::vector<std::string> seen;  // path + where it ran, in order
  Server server(
      options,
      [&](Request& req) {
        {
          std::lock_guard<std::mutex> lock(mu);
          seen.push_back(req.path + (req.on_io_thread ? "@io" : "@pool"));
        }
        Response res = Response::json(
            200, "{\"io\":" + std::string(req.on_io_thread ? "true" : "false") + "}");
        if (req.path == "/defer" && req.on_io_thread) {
          req.log_fields.emplace_back("tried", "io");
          res.defer_to_pool = true;  // must not be sent
          res.body = "{\"sent\":\"by mistake\"}";
        }
        return res;
      },
      [](int status, std::string_view, std::string_view) { return Response::json(status, "{}"); },
      nullptr);
  server.bind();
  std::thread runner([&server] { server.run(); });
  std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  HttpClient http;
  EXPECT_EQ(http.get(base + "/quick").body, "{\"io\":true}");
  EXPECT_EQ(http.get(base + "/pool").body, "{\"io\":false}");
  auto r = http.get(base + "/defer");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"io\":false}");
  server.stop();
  runner.join();
  std::vector<std::string> want = {"/quick@io", "/pool@pool", "/defer@io", "/defer@pool"};
  EXPECT_EQ(seen, want);
}

}  // namespace
}  // namespace wharf::net
