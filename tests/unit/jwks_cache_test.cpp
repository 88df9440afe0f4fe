// JWKS parsing, the key cache (throttling, single flight, background refresh) and the
// HttpClient it fetches with (loopback only).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "auth/jwk.h"
#include "auth/jwks_cache.h"
#include "auth/jwt.h"
#include "net/http_client.h"
#include "test_keys.h"
#include "util/clock.h"

namespace wharf::auth {
namespace {

using nlohmann::json;
using testutil::jwks_json;
using testutil::TestKey;

constexpr int64_t kStartMs = 1767225600000;

net::HttpResult ok_response(std::string body) {
  net::HttpResult r;
  r.status = 200;
  r.body = std::move(body);
  return r;
}

// A fetch function whose answers and call count the test controls.
struct FakeJwksServer {
  std::mutex mu;
  std::string body = jwks_json({TestKey::a().jwk()});
  int status = 200;
  std::string transport_error;
  bool throw_error = false;
  std::atomic<int> calls{0};

  net::HttpResult operator()(const std::string&) {
    ++calls;
    std::lock_guard<std::mutex> lock(mu);
    if (throw_error) throw std::runtime_error("fetch exploded");
    net::HttpResult r;
    r.status = transport_error.empty() ? status : 0;
    r.error = transport_error;
    r.body = body;
    return r;
  }
  void serve(std::string b) {
    std::lock_guard<std::mutex> lock(mu);
    body = std::move(b);
  }
};

JwksCache::Options options(int64_t throttle_ms = 30000) {
  JwksCache::Options o;
  o.url = "http://jwks.test/.well-known/jwks";
  o.unknown_kid_min_interval_ms = throttle_ms;
  return o;
}

JwksCache::FetchFn fetch_via(FakeJwksServer& server) {
  return [&server](const std::string& url) { return server(url); };
}

TEST(JwksParseTest, JunkKeysAreSkippedGoodOnesKept) {
  json bad_n = TestKey::c().jwk();
  bad_n["n"] = "***";
  json padded_n = TestKey::c().jwk();
  padded_n["n"] = padded_n["n"].get<std::string>() + "=";
  json no_kid = TestKey::c().jwk();
  no_kid.erase("kid");
  json enc = TestKey::c().jwk("RSA-OAEP", "enc");
  json no_e = TestKey::c().jwk();
  no_e.erase("e");
  json n_number = TestKey::c().jwk();
  n_number["n"] = 12345;
  json kid_number = TestKey::c().jwk();
  kid_number["kid"] = 7;
  json no_verify_ops = TestKey::c().jwk();
  no_verify_ops["key_ops"] = {"encrypt"};
  json even_e = TestKey::c().jwk();
  even_e["e"] = testutil::b64url(std::string("\x01\x00\x00", 3));
  json dup_a = TestKey::b().jwk();
  dup_a["kid"] = TestKey::a().kid();

  const std::string doc = jwks_json({
      {{"kty", "EC"}, {"kid", "ec-1"}, {"crv", "P-256"}, {"x", "AA"}, {"y", "AA"}},
      {{"kty", "oct"}, {"kid", "hmac"}, {"k", "c2VjcmV0"}},
      "not an object",
      bad_n,
      padded_n,
      no_kid,
      enc,
      no_e,
      n_number,
      kid_number,
      no_verify_ops,
      even_e,
      TestKey::small().jwk(),  // 1024-bit: too small
      TestKey::a().jwk(),
      dup_a,  // second key under kid "key-a": ignored
      TestKey::b().jwk(std::nullopt, std::nullopt),
  });
  std::string error;
  auto parsed = parse_jwks(doc, &error);
  ASSERT_TRUE(parsed.has_value()) << error;
  ASSERT_EQ(parsed->keys.size(), 2u);
  EXPECT_EQ(parsed->keys[0]->kid(), "key-a");
  EXPECT_EQ(parsed->keys[0]->alg(), "RS256");
  EXPECT_EQ(parsed->keys[0]->bits(), 2048);
  EXPECT_EQ(parsed->keys[1]->kid(), "key-b");
  EXPECT_EQ(parsed->keys[1]->alg(), "");
  EXPECT_EQ(parsed->keys[1]->allowed_alg(), JwsAlg::kRS256);
  EXPECT_EQ(parsed->skipped.size(), 14u);

  // The kept key A is really A's (not the duplicate's): A's token verifies with it.
  const std::string token = TestKey::a().token({{"x", 1}});
  DecodedJws jws = decode_jws(token);
  EXPECT_NO_THROW(verify_signature(jws, *parsed->keys[0]));
}

TEST(JwksParseTest, InvalidDocuments) {
  std::string error;
  EXPECT_FALSE(parse_jwks("", &error).has_value());
  EXPECT_FALSE(parse_jwks("{not json", &error).has_value());
  EXPECT_FALSE(parse_jwks("[]", &error).has_value());
  EXPECT_FALSE(parse_jwks("{\"keys\":{}}", &error).has_value());
  EXPECT_FALSE(parse_jwks("{}", &error).has_value());
  auto empty = parse_jwks("{\"keys\":[]}", &error);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->keys.empty());
}

TEST(JwksParseTest, UnsupportedPinnedAlgKeptButNeverVerifies) {
  std::string error;
  auto parsed = parse_jwks(jwks_json({TestKey::a().jwk("ES256")}), &error);
  ASSERT_TRUE(parsed.has_value());
  ASSERT_EQ(parsed->keys.size(), 1u);
  EXPECT_FALSE(parsed->keys[0]->allowed_alg().has_value());
  DecodedJws jws = decode_jws(TestKey::a().token({{"x", 1}}));
  try {
    verify_signature(jws, *parsed->keys[0]);
    ADD_FAILURE() << "verified with an ES256-pinned key";
  } catch (const AuthFailure& e) {
    EXPECT_EQ(e.reason, "alg_not_allowed");
  }
}

TEST(JwksCacheTest, LoadsAndFinds) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache cache(options(), fetch_via(server), clock);
  EXPECT_FALSE(cache.loaded());
  EXPECT_EQ(cache.find_cached("key-a"), nullptr);
  ASSERT_TRUE(cache.refresh_now());
  EXPECT_TRUE(cache.loaded());
  EXPECT_EQ(cache.key_count(), 1u);
  EXPECT_EQ(cache.refresh_count(), 1);
  EXPECT_EQ(cache.refresh_failures(), 0);
  EXPECT_EQ(cache.last_success_ms(), kStartMs);
  auto key = cache.find("key-a");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->kid(), "key-a");
  EXPECT_EQ(server.calls, 1);
}

TEST(JwksCacheTest, FailedRefreshKeepsOldKeys) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache cache(options(), fetch_via(server), clock);
  ASSERT_TRUE(cache.refresh_now());

  for (const std::string& body : {std::string("<html>oops</html>"), std::string("{\"keys\":[]}"),
                                  jwks_json({{{"kty", "EC"}, {"kid", "x"}}})}) {
    server.serve(body);
    EXPECT_FALSE(cache.refresh_now()) << body;
  }
  server.serve(jwks_json({TestKey::b().jwk()}));
  server.status = 503;
  EXPECT_FALSE(cache.refresh_now());
  server.status = 200;
  server.transport_error = "Couldn't connect to server";
  EXPECT_FALSE(cache.refresh_now());
  server.transport_error.clear();
  server.throw_error = true;
  EXPECT_FALSE(cache.refresh_now());  // an exception from fetch is a failed refresh
  server.throw_error = false;

  EXPECT_EQ(cache.refresh_failures(), 6);
  EXPECT_NE(cache.find_cached("key-a"), nullptr);  // still serving the last good set
  EXPECT_EQ(cache.last_success_ms(), kStartMs);

  clock.advance_ms(1000);
  ASSERT_TRUE(cache.refresh_now());                // and it recovers
  EXPECT_EQ(cache.find_cached("key-a"), nullptr);  // replaced wholesale
  EXPECT_NE(cache.find_cached("key-b"), nullptr);
  EXPECT_EQ(cache.refresh_count(), 8);
  EXPECT_EQ(cache.last_success_ms(), kStartMs + 1000);
}

TEST(JwksCacheTest, LoadJson) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache cache(options(), fetch_via(server), clock);
  EXPECT_FALSE(cache.load_json("{}"));
  EXPECT_FALSE(cache.loaded());
  EXPECT_TRUE(cache.load_json(jwks_json({TestKey::a().jwk(), TestKey::b().jwk()})));
  EXPECT_EQ(cache.key_count(), 2u);
  EXPECT_EQ(server.calls, 0);
}

TEST(JwksCacheTest, UnknownKidFloodFetchesOncePerWindow) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache cache(options(30000), fetch_via(server), clock);
  ASSERT_TRUE(cache.refresh_now());
  server.calls = 0;

  for (int i = 0; i < 1000; ++i) EXPECT_EQ(cache.find("random-" + std::to_string(i)), nullptr);
  EXPECT_EQ(server.calls, 1);

  // Many threads at once: still no extra fetch inside the window.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 200; ++i) cache.find("t" + std::to_string(t) + "-" + std::to_string(i));
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(server.calls, 1);

  clock.advance_ms(29999);
  EXPECT_EQ(cache.find("random-x"), nullptr);
  EXPECT_EQ(server.calls, 1);
  clock.advance_ms(1);
  EXPECT_EQ(cache.find("random-y"), nullptr);
  EXPECT_EQ(server.calls, 2);
  // Known kids are never throttled and never fetch.
  EXPECT_NE(cache.find("key-a"), nullptr);
  EXPECT_EQ(server.calls, 2);
}

TEST(JwksCacheTest, ClockGoingBackwardsDoesNotBlockRefreshForever) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache cache(options(30000), fetch_via(server), clock);
  cache.find("nope");
  EXPECT_EQ(server.calls, 1);
  clock.set_ms(kStartMs - 3600 * 1000);
  cache.find("nope");
  EXPECT_EQ(server.calls, 2);
}

TEST(JwksCacheTest, UnknownKidRefreshFindsRotatedKey) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache cache(options(), fetch_via(server), clock);
  ASSERT_TRUE(cache.refresh_now());
  server.serve(jwks_json({TestKey::a().jwk(), TestKey::b().jwk()}));
  auto key = cache.find("key-b");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->kid(), "key-b");
  EXPECT_EQ(server.calls, 2);
}

TEST(JwksCacheTest, ConcurrentUnknownKidLookupsShareOneFetch) {
  util::ManualClock clock(kStartMs);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> calls{0};
  // The fetch blocks until the test releases it, so all lookups pile up behind it.
  auto fetch = [&](const std::string&) {
    ++calls;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    return ok_response(jwks_json({TestKey::a().jwk(), TestKey::b().jwk()}));
  };
  JwksCache cache(options(), fetch, clock);

  std::atomic<int> found{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      if (cache.find("key-b")) ++found;
    });
  std::thread refresher([&] { EXPECT_TRUE(cache.refresh_now()); });
  while (calls.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the others queue up
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& th : threads) th.join();
  refresher.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(found.load(), 8);
}

TEST(JwksCacheTest, BackgroundRefreshRunsAndStopsPromptly) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache::Options o = options();
  o.refresh_interval_ms = 20;
  o.fetch_retry_ms = 20;
  JwksCache cache(o, fetch_via(server), clock);
  cache.start_background();
  cache.start_background();  // idempotent
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server.calls.load() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(server.calls.load(), 3);
  EXPECT_TRUE(cache.loaded());  // the first background fetch ran at once
  const auto t0 = std::chrono::steady_clock::now();
  cache.stop();
  cache.stop();  // idempotent
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  const int after_stop = server.calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(server.calls.load(), after_stop);
}

TEST(JwksCacheTest, StopDoesNotWaitForTheRefreshInterval) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  JwksCache::Options o = options();
  o.refresh_interval_ms = 600000;  // ten minutes
  JwksCache cache(o, fetch_via(server), clock);
  ASSERT_TRUE(cache.refresh_now());  // loaded: the thread starts by sleeping
  cache.start_background();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto t0 = std::chrono::steady_clock::now();
  cache.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_EQ(server.calls.load(), 1);
}

TEST(JwksCacheTest, BackgroundRetriesSoonerAfterFailure) {
  util::ManualClock clock(kStartMs);
  FakeJwksServer server;
  server.status = 500;
  JwksCache::Options o = options();
  o.refresh_interval_ms = 600000;
  o.fetch_retry_ms = 10;
  {
    JwksCache cache(o, fetch_via(server), clock);
    cache.start_background();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (server.calls.load() < 3 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_GE(server.calls.load(), 3);
    EXPECT_FALSE(cache.loaded());
    {
      std::lock_guard<std::mutex> lock(server.mu);
      server.status = 200;
    }
    while (!cache.loaded() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE(cache.loaded());
  }  // the destructor stops the thread
}

// ---------------------------------------------------------------------------------------
// HttpClient on loopback (suite named Jwks* so the auth test filter picks it up).

// A one-shot HTTP server on 127.0.0.1: accepts one connection, reads the request head,
// writes `response`, closes.
// A listening TCP socket on 127.0.0.1 with a port the kernel picks (written to *port).
int listen_on_loopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

class OneShotServer {
 public:
  explicit OneShotServer(std::string response) : response_(std::move(response)) {
    fd_ = listen_on_loopback(&port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string request() {
    std::lock_guard<std::mutex> lock(mu_);
    return request_;
  }

 private:
  void serve() {
    const int conn = ::accept(fd_, nullptr, nullptr);
    if (conn < 0) return;
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      request_ = req;
    }
    size_t off = 0;
    while (off < response_.size()) {
      const ssize_t n = ::send(conn, response_.data() + off, response_.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(conn);
  }

  std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string request_;
};

std::string http_response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Type: application/json\r\nX-Custom-Header:  spaced  \r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

int unused_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // nothing listens there now
  return ntohs(addr.sin_port);
}

TEST(JwksHttpClientTest, NothingListening) {
  net::HttpClient::Options o;
  o.connect_timeout_ms = 1000;
  o.timeout_ms = 2000;
  net::HttpClient client(o);
  const net::HttpResult r =
      client.get("http://127.0.0.1:" + std::to_string(unused_loopback_port()) + "/jwks");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_FALSE(r.ok());
}

TEST(JwksHttpClientTest, RefusesOtherSchemesAndHeaderInjection) {
  net::HttpClient client;
  net::HttpResult r = client.get("file:///etc/passwd");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_TRUE(r.body.empty());
  r = client.request("GET", "http://127.0.0.1:1/", {{"X-A", "b\r\nInjected: yes"}});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, "invalid request header");
}

TEST(JwksHttpClientTest, GetParsesStatusHeadersBody) {
  OneShotServer server(http_response(404, "{\"error\":1}"));
  net::HttpClient client;
  const net::HttpResult r = client.get(server.url("/x"));
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "{\"error\":1}");
  bool found = false;
  for (const auto& [name, value] : r.headers)
    if (name == "x-custom-header") found = value == "spaced";
  EXPECT_TRUE(found);
  EXPECT_NE(server.request().find("GET /x HTTP/1.1"), std::string::npos);
  EXPECT_NE(server.request().find("User-Agent: wharf"), std::string::npos);
}

TEST(JwksHttpClientTest, PostSendsBodyAndHeaders) {
  OneShotServer server(http_response(201, "{}"));
  net::HttpClient client;
  const net::HttpResult r = client.request("PATCH", server.url("/v1/x"),
                                           {{"Content-Type", "application/json"}}, "{\"a\":1}");
  EXPECT_EQ(r.status, 201) << r.error;
  const std::string req = server.request();
  EXPECT_NE(req.find("PATCH /v1/x HTTP/1.1"), std::string::npos) << req;
  EXPECT_NE(req.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(req.find("Content-Length: 7"), std::string::npos);
}

TEST(JwksHttpClientTest, ResponseSizeLimit) {
  OneShotServer server(http_response(200, std::string(5000, 'x')));
  net::HttpClient::Options o;
  o.max_response_bytes = 1000;
  net::HttpClient client(o);
  const net::HttpResult r = client.get(server.url("/big"));
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("larger"), std::string::npos) << r.error;
  EXPECT_TRUE(r.body.empty());
}

TEST(JwksHttpClientTest, CacheFetchesOverHttp) {
  OneShotServer server(http_response(200, jwks_json({TestKey::a().jwk()})));
  net::HttpClient client;
  util::ManualClock clock(kStartMs);
  JwksCache::Options o = options();
  o.url = server.url("/.well-known/jwks");
  JwksCache cache(
      o, [&client](const std::string& url) { return client.get(url); }, clock);
  EXPECT_TRUE(cache.refresh_now());
  EXPECT_NE(cache.find_cached("key-a"), nullptr);
}

// A keep-alive HTTP server on 127.0.0.1 that counts the connections it accepts: answers every
// request (head only, no body) with a 200 and keeps the connection for the next, one
// connection at a time.
class CountingServer {
 public:
  CountingServer() {
    fd_ = listen_on_loopback(&port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~CountingServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return connections_; }

 private:
  void serve() {
    while (true) {
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      ++connections_;
      std::string buffered;
      char buf[4096];
      while (true) {  // requests on this connection until the client closes it
        size_t end;
        while ((end = buffered.find("\r\n\r\n")) == std::string::npos) {
          const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
          if (n <= 0) break;
          buffered.append(buf, static_cast<size_t>(n));
        }
        if (end == std::string::npos) break;
        buffered.erase(0, end + 4);
        const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (::send(conn, response.data(), response.size(), MSG_NOSIGNAL) <= 0) break;
      }
      ::close(conn);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
};

TEST(JwksHttpClientTest, KeepsItsConnectionForTheNextCall) {
  CountingServer server;
  {
    net::HttpClient http;
    for (int i = 0; i < 3; ++i) {
      auto r = http.get(server.url("/a"));
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, "ok");
    }
  }  // the client closes its connections
  EXPECT_EQ(server.connections(), 1);
  {
    net::HttpClient::Options o;
    o.max_idle_handles = 0;  // a new connection per call
    net::HttpClient http(o);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(http.get(server.url("/b")).status, 200);
  }
  EXPECT_EQ(server.connections(), 4);
}

}  // namespace
}  // namespace wharf::auth
