// HTTP/1.1 server on Boost.Beast/Asio: keep-alive, a fixed pool of I/O threads, and bounds
// on everything a client controls (body size, header size, time to send a request, idle
// keep-alive time) so that slow or hostile clients cannot hold threads or memory.
//
// Reads and writes are asynchronous; once a whole request has arrived its handler runs on
// the handler pool (or, without one, synchronously on the I/O thread). SIGTERM/SIGINT start a
// graceful drain: stop accepting, close idle connections, let in-flight requests finish (bounded by
// drain_timeout_ms).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "net/http.h"

namespace wharf::net {

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 3000;
  int threads = 4;
  // 0: handlers run on the I/O threads (fast, non-blocking handlers). > 0: on a pool of this
  // many threads, so a handler that blocks (e.g. on an outbound HTTP call) never holds up
  // accepting or serving other connections.
  int handler_threads = 0;
  // With a handler pool: requests for which this returns true still run on the I/O thread
  // (cheap answers that must stay available however busy the pool is, e.g. /healthz, and
  // answers that never wait: a hop to the pool and back costs more than they do). Such a
  // handler sees Request::on_io_thread and may answer Response::defer_to_pool to move the
  // request to the pool after all.
  std::function<bool(const Request&)> run_inline;
  uint64_t max_body_bytes = 1 << 20;
  uint32_t max_header_bytes = 16 * 1024;
  int64_t read_timeout_ms = 10000;   // whole request (headers + body) must arrive in this time
  int64_t idle_timeout_ms = 60000;   // keep-alive connection with no request in flight
  int64_t write_timeout_ms = 30000;  // a client that does not read its response
  int64_t drain_timeout_ms = 15000;  // SIGTERM: longest wait for in-flight requests
  bool handle_signals = true;
};

class Server {
 public:
  using Handler = std::function<Response(Request&)>;
  // Builds the body of a response the server produces itself (413, 431, 400 on unparsable
  // requests); the application supplies its error envelope so every non-2xx looks the same.
  using ErrorBody =
      std::function<Response(int status, std::string_view code, std::string_view message)>;
  // Called once per response written (including the server's own rejections).
  using Observer = std::function<void(const Request&, const Response&, double elapsed_ms)>;

  Server(ServerOptions options, Handler handler, ErrorBody error_body, Observer observer);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; throws std::runtime_error with a clear message on failure.
  void bind();
  // The bound port (useful with port 0).
  uint16_t port() const;
  // Runs the I/O threads; returns after a drain completes (signal or stop()).
  void run();
  // Starts a graceful drain from any thread.
  void stop();
  bool draining() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wharf::net
