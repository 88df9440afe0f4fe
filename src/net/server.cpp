#include "net/server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "util/clock.h"
#include "util/crypto.h"

namespace wharf::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

class Session;

struct Server::Impl {
  ServerOptions options;
  Handler handler;
  ErrorBody error_body;
  Observer observer;
  // One io_context per thread, each run by exactly that thread: a connection lives on one
  // context for its whole life, so its handlers never need a strand or a lock, and no
  // wake-up crosses threads on the hot path. Context 0 also owns the acceptor and signals.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  size_t next_context = 0;
  asio::io_context& ioc;
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc};
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> request_counter{0};
  std::string id_prefix;

  std::mutex sessions_mu;
  std::condition_variable sessions_cv;
  std::set<std::shared_ptr<Session>> sessions;
  // Declared after the contexts: destroyed (joined) first, while they still exist.
  std::unique_ptr<asio::thread_pool> pool;

  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (int i = 0; i < std::max(1, n); ++i) out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }

  Impl(ServerOptions o, Handler h, ErrorBody e, Observer ob)
      : options(std::move(o)),
        handler(std::move(h)),
        error_body(std::move(e)),
        observer(std::move(ob)),
        contexts(make_contexts(options.threads)),
        ioc(*contexts[0]),
        id_prefix("req_" + util::to_hex(util::random_bytes(4))) {
    if (options.handler_threads > 0)
      pool = std::make_unique<asio::thread_pool>(static_cast<size_t>(options.handler_threads));
  }

  Response run_handler(Request& req) {
    try {
      return handler(req);
    } catch (const std::exception&) {
      return error_body(500, "internal_error", "internal server error");
    }
  }

  std::string next_request_id() {
    uint64_t n = request_counter.fetch_add(1) + 1;
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08llx", static_cast<unsigned long long>(n));
    return id_prefix + buf;
  }

  void do_accept();
  void begin_drain();
  void add(const std::shared_ptr<Session>& s) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.insert(s);
  }
  void remove(const std::shared_ptr<Session>& s) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.erase(s);
    sessions_cv.notify_all();
  }
};

// One TCP connection. All its handlers run on the single thread of its io_context.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl& server) : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
  }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->wait_request(); });
  }

  // Called by the drain: close the connection unless a request is in flight (being
  // received, handled or answered); those finish and then close.
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->in_request_) self->close();
    });
  }

 private:
  // Waits for the first bytes of the next request. On a fresh connection the read timeout
  // applies from the start; between keep-alive requests the idle timeout applies until a
  // byte arrives, then the read timeout covers the rest of the request.
  void wait_request() {
    in_request_ = false;
    if (server_.draining && requests_ > 0) return close();
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(server_.options.max_header_bytes);
    if (buffer_.size() > 0) {  // pipelined: the next request is already here
      in_request_ = true;
      stream_.expires_after(std::chrono::milliseconds(server_.options.read_timeout_ms));
      return read_header();
    }
    auto wait = requests_ == 0 ? server_.options.read_timeout_ms : server_.options.idle_timeout_ms;
    stream_.expires_after(std::chrono::milliseconds(wait));
    auto buf = buffer_.prepare(4096);
    stream_.async_read_some(buf, [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->close();
      self->buffer_.commit(n);
      self->in_request_ = true;
      if (self->requests_ > 0)  // the read timeout runs from the first byte of the request
        self->stream_.expires_after(
            std::chrono::milliseconds(self->server_.options.read_timeout_ms));
      self->read_header();
    });
  }

  // Reads until the whole header block is in the buffer, checks it for obsolete line
  // folding (Beast would silently unfold it), then lets Beast parse it from the buffer.
  void read_header() {
    auto data = buffer_.data();
    std::string_view received(static_cast<const char*>(data.data()), data.size());
    size_t end = net::header_block_end(received);
    if (end == std::string_view::npos) {
      if (received.size() > server_.options.max_header_bytes) {
        started_ = std::chrono::steady_clock::now();
        return reject(431, "request_header_fields_too_large", "request headers are too large");
      }
      auto buf = buffer_.prepare(4096);
      stream_.async_read_some(buf, [self = shared_from_this()](beast::error_code ec, size_t n) {
        if (ec) return self->on_read_error(ec);
        self->buffer_.commit(n);
        self->read_header();
      });
      return;
    }
    if (net::has_obs_fold(received.substr(0, end + 1))) {
      started_ = std::chrono::steady_clock::now();
      return reject(400, "bad_request",
                    "malformed HTTP request: obsolete line folding in the header is not accepted");
    }
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    started_ = std::chrono::steady_clock::now();
    auto& req = parser_->get();
    {
      std::vector<std::pair<std::string_view, std::string_view>> fields;
      for (const auto& f : req) fields.emplace_back(f.name_string(), f.value());
      if (auto why = net::framing_error(req.version(), fields))
        return reject(400, "bad_request", "malformed HTTP request: " + *why);
    }
    auto expect = req[bhttp::field::expect];
    if (!expect.empty() && beast::iequals(expect, "100-continue") && !parser_->is_done()) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*cont),
                        [self = shared_from_this(), cont](beast::error_code wec, size_t) {
                          if (wec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->on_read_error(ec);
                        self->handle();
                      });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset) {
      return close();
    }
    started_ = std::chrono::steady_clock::now();
    if (ec == bhttp::error::body_limit) {
      return reject(
          413, "payload_too_large",
          "request body exceeds " + std::to_string(server_.options.max_body_bytes) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return reject(431, "request_header_fields_too_large", "request headers are too large");
    }
    reject(400, "bad_request", "malformed HTTP request: " + ec.message());
  }

  // The server's own answer to a request it could not read; the connection is closed after.
  void reject(int status, std::string_view code, const std::string& message) {
    Request req;
    req.request_id = server_.next_request_id();
    req.remote = remote_;
    if (parser_ && parser_->is_header_done()) {
      auto& r = parser_->get();
      req.method = std::string(r.method_string());
      req.target = std::string(r.target());
    }
    Response res = server_.error_body(status, code, message);
    write(req, std::move(res), /*keep_alive=*/false);
  }

  void handle() {
    ++requests_;
    auto msg = parser_->release();
    Request req;
    req.request_id = server_.next_request_id();
    req.received_ms = util::SystemClock().now_ms();
    req.remote = remote_;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    req.headers.reserve(8);
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(msg.body());
    bool keep_alive = msg.keep_alive() && !server_.draining;

    if (!server_.pool || (server_.options.run_inline && server_.options.run_inline(req))) {
      req.on_io_thread = server_.pool != nullptr;
      Response res = server_.run_handler(req);
      if (!res.defer_to_pool || !server_.pool) return write(req, std::move(res), keep_alive);
      // It has to wait after all: start again on the pool, as if it had gone there first.
      req.on_io_thread = false;
      req.route.clear();
      req.log_fields.clear();
    }
    // On the pool; the answer is written back on this connection's own context. A streamed
    // answer is produced (and written) on the pool thread: producing it is the handler's
    // work (e.g. the REPL running statements), which must not hold an I/O thread.
    asio::post(*server_.pool,
               [self = shared_from_this(), req = std::move(req), keep_alive]() mutable {
                 auto res = std::make_shared<Response>(self->server_.run_handler(req));
                 auto shared_req = std::make_shared<Request>(std::move(req));
                 if (res->stream) {
                   bool ok = self->write_stream(*shared_req, std::move(*res), keep_alive);
                   asio::post(self->stream_.get_executor(), [self, ok, keep_alive] {
                     if (!ok || !keep_alive) return self->close();
                     self->wait_request();
                   });
                   return;
                 }
                 asio::post(self->stream_.get_executor(), [self, shared_req, res, keep_alive] {
                   self->write(*shared_req, std::move(*res), keep_alive);
                 });
               });
  }

  // Writes all of `data` to the socket before `deadline`, waiting for the client to read
  // (poll) when its receive window is full. False when the client is gone or too slow: a
  // client that stops reading must not hold the producer (and what it holds) forever.
  bool send_all(std::string_view data, std::chrono::steady_clock::time_point deadline) {
    int fd = stream_.socket().native_handle();
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return false;
      pollfd pfd{fd, POLLOUT, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (r < 0 && errno != EINTR) return false;
      if (r > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
    }
    return true;
  }

  // A streamed body: headers, then each chunk as the producer writes it, then the last
  // chunk. Blocking writes keep the producer's pace tied to the client's; each write must
  // make progress within the write timeout. Runs on the thread that produced the response
  // (never an I/O thread when a handler pool is configured). Returns whether the
  // connection is still good.
  bool write_stream(const Request& req, Response res, bool keep_alive) {
    bhttp::response<bhttp::empty_body> head{static_cast<bhttp::status>(res.status), 11};
    if (!res.content_type.empty()) head.set(bhttp::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers) head.set(name, value);
    head.set("X-Request-Id", req.request_id);
    head.keep_alive(keep_alive);
    head.chunked(true);
    std::ostringstream head_text;
    head_text << head.base();
    auto timeout = std::chrono::milliseconds(server_.options.write_timeout_ms);
    bool ok = send_all(head_text.str(), std::chrono::steady_clock::now() + timeout);
    size_t bytes = 0;
    res.stream([&](std::string_view data) {
      if (!ok) return false;
      if (data.empty()) return true;
      char size_line[24];
      int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
      auto deadline = std::chrono::steady_clock::now() + timeout;
      ok = send_all(std::string_view(size_line, static_cast<size_t>(len)), deadline) &&
           send_all(data, deadline) && send_all("\r\n", deadline);
      bytes += data.size();
      return ok;
    });
    if (ok) ok = send_all("0\r\n\r\n", std::chrono::steady_clock::now() + timeout);
    res.stream = nullptr;
    res.headers.emplace_back("X-Streamed-Bytes", std::to_string(bytes));
    if (server_.observer) server_.observer(req, res, ms_since(started_));
    return ok;
  }

  void write(const Request& req, Response res, bool keep_alive) {
    if (res.stream) {
      bool ok = write_stream(req, std::move(res), keep_alive);
      if (!ok || !keep_alive) return close();
      return wait_request();
    }
    auto out = std::make_shared<bhttp::response<bhttp::string_body>>();
    out->version(11);
    out->result(static_cast<unsigned>(res.status));
    if (!res.content_type.empty()) out->set(bhttp::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers) out->set(name, value);
    out->set("X-Request-Id", req.request_id);
    out->keep_alive(keep_alive);
    out->body() = std::move(res.body);
    out->prepare_payload();
    res.body.clear();
    if (server_.observer) server_.observer(req, res, ms_since(started_));

    stream_.expires_after(std::chrono::milliseconds(server_.options.write_timeout_ms));
    bhttp::async_write(stream_, *out,
                       [self = shared_from_this(), out, keep_alive](beast::error_code ec, size_t) {
                         if (ec || !keep_alive) return self->close();
                         self->wait_request();
                       });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
    server_.remove(shared_from_this());
  }

  beast::tcp_stream stream_;
  Server::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string remote_;
  std::chrono::steady_clock::time_point started_;
  uint64_t requests_ = 0;
  bool in_request_ = false;  // bytes of a request have arrived and it is not answered yet
  bool closed_ = false;
};

void Server::Impl::do_accept() {
  auto& target = *contexts[next_context++ % contexts.size()];
  acceptor.async_accept(target, [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!acceptor.is_open()) return;  // closed by the drain
      // EMFILE and friends: back off briefly instead of spinning.
      auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(50));
      timer->async_wait([this, timer](beast::error_code) { do_accept(); });
      return;
    }
    if (draining) return;
    socket.set_option(tcp::no_delay(true), ec);
    auto session = std::make_shared<Session>(std::move(socket), *this);
    add(session);
    session->start();
    do_accept();
  });
}

void Server::Impl::begin_drain() {
  if (draining.exchange(true)) return;
  {
    // Wakes the drain watcher in run(); the lock orders this with its predicate check.
    std::lock_guard<std::mutex> lock(sessions_mu);
  }
  sessions_cv.notify_all();
  asio::post(ioc, [this] {
    beast::error_code ec;
    acceptor.close(ec);
    signals.cancel(ec);
    std::vector<std::shared_ptr<Session>> snapshot;
    {
      std::lock_guard<std::mutex> lock(sessions_mu);
      snapshot.assign(sessions.begin(), sessions.end());
    }
    for (auto& s : snapshot) s->close_if_idle();
  });
}

Server::Server(ServerOptions options, Handler handler, ErrorBody error_body, Observer observer)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(error_body),
                                   std::move(observer))) {}

Server::~Server() = default;

void Server::bind() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) throw std::runtime_error("invalid listen address '" + impl_->options.host + "'");
  tcp::endpoint ep(address, impl_->options.port);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + impl_->options.host + ":" +
                             std::to_string(impl_->options.port) + ": " + ec.message());
}

uint16_t Server::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void Server::run() {
  auto& impl = *impl_;
  if (impl.options.handle_signals) {
    impl.signals.add(SIGTERM);
    impl.signals.add(SIGINT);
    impl.signals.async_wait([&impl](beast::error_code ec, int) {
      if (!ec) impl.begin_drain();
    });
  }
  impl.do_accept();

  // Keep run() from returning while the server is idle; released when the drain ends.
  using Guard = asio::executor_work_guard<asio::io_context::executor_type>;
  std::vector<std::unique_ptr<Guard>> guards;
  for (auto& c : impl.contexts) guards.push_back(std::make_unique<Guard>(c->get_executor()));
  std::thread drainer([&impl, &guards] {
    std::unique_lock<std::mutex> lock(impl.sessions_mu);
    impl.sessions_cv.wait(lock, [&impl] { return impl.draining.load(); });
    bool done =
        impl.sessions_cv.wait_for(lock, std::chrono::milliseconds(impl.options.drain_timeout_ms),
                                  [&impl] { return impl.sessions.empty(); });
    lock.unlock();
    guards.clear();
    if (!done)  // drain timed out: abandon stragglers
      for (auto& c : impl.contexts) c->stop();
  });

  std::vector<std::thread> threads;
  for (size_t i = 1; i < impl.contexts.size(); ++i)
    threads.emplace_back([c = impl.contexts[i].get()] { c->run(); });
  impl.ioc.run();
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(impl.sessions_mu);
    impl.draining = true;
  }
  impl.sessions_cv.notify_all();
  drainer.join();
}

void Server::stop() {
  impl_->begin_drain();
}
bool Server::draining() const {
  return impl_->draining;
}

}  // namespace wharf::net
