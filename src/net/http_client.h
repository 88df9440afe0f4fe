// A small blocking HTTP(S) client over libcurl, used for outbound calls (JWKS fetches, the
// Vercel API). Every call uses its own CURL easy handle, so one HttpClient may be shared by
// any number of threads without locking.
//
// Deliberately minimal: no redirects are followed (a redirect is returned as-is so callers
// never silently send credentials to another host), only http and https are allowed, and
// nothing about a request or its headers is logged (they may carry bearer tokens).
#pragma once
#include <cstddef>
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
  };

  explicit HttpClient(Options options);
  HttpClient() : HttpClient(Options{}) {}

  // `headers` are sent as given ("Name", "value"); values containing CR/LF are refused (header
  // injection) with an error result and no request is made.
  HttpResult request(const std::string& method, const std::string& url,
                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                     const std::string& body = {}) const;
  HttpResult get(const std::string& url) const { return request("GET", url); }

  const Options& options() const { return options_; }

 private:
  Options options_;
};

}  // namespace wharf::net
