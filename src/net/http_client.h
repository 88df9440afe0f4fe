// A small blocking HTTP(S) client over libcurl, used for outbound calls (JWKS fetches, the
// Vercel API). One HttpClient may be shared by any number of threads: each call takes a CURL
// easy handle of its own from a small pool (under a lock held only to take or return one),
// and a handle keeps its connections open between calls, so calls to the same host reuse a
// connection (keep-alive) instead of paying a TCP (and TLS) handshake each time.
//
// Deliberately minimal: no redirects are followed (a redirect is returned as-is so callers
// never silently send credentials to another host), only http and https are allowed, and
// nothing about a request or its headers is logged (they may carry bearer tokens).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wharf::net {

struct HttpResult {
  int status = 0;  // 0 when no HTTP response was received
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order
  std::string error;  // non-empty on transport failure (connect, TLS, timeout, too large)

  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

class HttpClient {
 public:
  struct Options {
    long connect_timeout_ms = 3000;
    long timeout_ms = 10000;
    std::string user_agent = "wharf";
    // Responses larger than this are abandoned with an error: a misbehaving peer must not be
    // able to make us buffer unbounded memory.
    size_t max_response_bytes = size_t{16} << 20;
    // Extra CA bundle for https (e.g. a local test CA); empty = system trust store.
    std::string ca_file;
    // Idle easy handles (each with its open connections) kept for the next calls; 0 = a new
    // handle, and so a new connection, for every call.
    size_t max_idle_handles = 16;
  };

  explicit HttpClient(Options options);
  HttpClient() : HttpClient(Options{}) {}
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // `headers` are sent as given ("Name", "value"); values containing CR/LF are refused (header
  // injection) with an error result and no request is made.
  HttpResult request(const std::string& method, const std::string& url,
                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                     const std::string& body = {}) const;
  HttpResult get(const std::string& url) const { return request("GET", url); }

  const Options& options() const { return options_; }

 private:
  struct Pool;  // the idle easy handles (curl.h stays out of this header)
  Options options_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace wharf::net
