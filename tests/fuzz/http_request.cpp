// Fuzz target: the HTTP request path of net::Server (src/net/server.cpp) up to the handler.
//
// The input is the byte stream a client sends on one connection. Each request on it goes
// through what a Session does: wait for the whole header block (431 above the header
// limit), refuse obsolete line folding (net::has_obs_fold), parse with Beast's
// request_parser<string_body> under the server's default body and header limits, refuse bad
// framing (net::framing_error), read the body, then build the net::Request the application
// sees and use it as the application does (routing with percent-decoded segments, header
// and query lookups, the media type). Pipelined requests follow one another until the
// input ends or a request is refused (the server closes the connection then).
//
// Any exception or sanitizer report is a bug: malformed input must end in a refusal.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http.h"
#include "net/router.h"
#include "net/server.h"

namespace {

using namespace wharf;
namespace beast = boost::beast;
namespace bhttp = beast::http;

struct Fixture {
  net::ServerOptions options;  // the server's defaults: 1 MiB body, 16 KiB header
  net::Router<int> router;
  Fixture() {
    int n = 0;
    for (const char* pattern :
         {"/v1/installations/{installationId}", "/v1/installations/{installationId}/resources",
          "/v1/installations/{installationId}/resources/{resourceId}",
          "/v1/installations/{installationId}/resources/{resourceId}/repl",
          "/v1/products/{productSlug}/plans", "/webhooks/vercel", "/healthz", "/metrics"})
      for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"})
        router.add(method, pattern, n++);
  }
};

// What the application does with a request (api/dispatcher.cpp and the handlers).
void use(const Fixture& f, const net::Request& req) {
  auto m = f.router.match(req.method, req.path);
  for (const auto& [name, value] : m.params) (void)(name.size() + value.size());
  (void)f.router.methods_for(req.path);
  (void)net::media_type(req.header("content-type").value_or(""));
  (void)req.header("authorization");
  (void)req.header("x-vercel-signature");
  (void)req.query_param("metadata");
  (void)req.query_params("metadata");
  if (auto decoded = net::percent_decode(req.query, true)) (void)net::percent_encode(*decoded);
}

// One request from the front of `stream`; false when the connection ends with it (refused,
// incomplete or not keep-alive). Advances `stream` past the bytes it consumed.
bool one_request(const Fixture& f, std::string_view& stream) {
  // Session::read_header: the whole header block must be there; obs-fold is refused.
  size_t end = net::header_block_end(stream);
  if (end == std::string_view::npos) return false;  // 431 past the limit, else more to read
  if (net::has_obs_fold(stream.substr(0, end + 1))) return false;  // 400

  bhttp::request_parser<bhttp::string_body> parser;
  parser.body_limit(f.options.max_body_bytes);
  parser.header_limit(f.options.max_header_bytes);
  size_t used = 0;
  bool framing_checked = false;
  beast::error_code ec;
  while (!parser.is_done()) {
    if (used == stream.size()) return false;  // the rest has not arrived (yet)
    size_t n = parser.put(boost::asio::buffer(stream.data() + used, stream.size() - used), ec);
    used += n;
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (n == 0) return false;  // the rest has not arrived (yet)
      continue;
    }
    if (ec) return false;                           // 400 / 413 / 431
    if (n == 0 && !parser.is_done()) return false;  // no progress
    if (parser.is_header_done() && !framing_checked) {
      // Session::on_header.
      framing_checked = true;
      const auto& head = parser.get();
      std::vector<std::pair<std::string_view, std::string_view>> fields;
      for (const auto& field : head) fields.emplace_back(field.name_string(), field.value());
      if (auto why = net::framing_error(head.version(), fields)) return false;  // 400
    }
  }
  stream.remove_prefix(used);

  // Session::handle.
  auto msg = parser.release();
  net::Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  auto q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  req.body = std::move(msg.body());
  if (req.body.size() > f.options.max_body_bytes) __builtin_trap();
  use(f, req);
  return msg.keep_alive();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture& f = *new Fixture();
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 16 && !stream.empty(); ++i)
    if (!one_request(f, stream)) break;
  return 0;
}
