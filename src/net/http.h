// HTTP request/response values handed between net::Server and the application. They carry
// no Beast types so layers above net/ never include Boost.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wharf::net {

using Headers = std::vector<std::pair<std::string, std::string>>;  // names lowercased

struct Request {
  std::string method;  // upper case, e.g. "GET"
  std::string target;  // raw request target, e.g. "/v1/products/x/plans?metadata=..."
  std::string path;    // target without the query, percent-decoded per segment by the router
  std::string query;   // raw query string (no '?')
  Headers headers;
  std::string body;
  std::string remote;      // peer address
  std::string request_id;  // assigned by the server, echoed as X-Request-Id
  int64_t received_ms = 0;
  // True while the handler runs on an I/O thread although the server has a handler pool
  // (ServerOptions::run_inline chose it): it must not wait on anything; if it finds it has to
  // (e.g. a key set to fetch), it answers with Response::defer_to_pool instead.
  bool on_io_thread = false;
  // Filled in by the application for the access log: the matched route pattern and extra
  // fields (e.g. the installation id). Never put secrets here.
  std::string route;
  Headers log_fields;

  // Case-insensitive header lookup (names are stored lowercased).
  std::optional<std::string_view> header(std::string_view lower_name) const;
  // First value of a query parameter, percent-decoded ('+' as space); nullopt if absent.
  std::optional<std::string> query_param(std::string_view name) const;
  // Every value of a repeated query parameter, percent-decoded.
  std::vector<std::string> query_params(std::string_view name) const;
};

// Writes one chunk of a streamed body; returns false once the client is gone.
using ChunkWriter = std::function<bool(std::string_view)>;

struct Response {
  int status = 200;
  // From a handler running on an I/O thread (Request::on_io_thread): "this request needs to
  // wait; run it again on the handler pool". Nothing of this response is sent.
  bool defer_to_pool = false;
  std::string content_type;  // empty => no Content-Type (e.g. 204)
  Headers headers;
  std::string body;
  // When set, the body is produced by this function, sent chunk by chunk as it calls the
  // writer (Transfer-Encoding: chunked), and `body` is ignored. It runs on the thread that
  // ran the handler (the handler pool), and each write must make progress within the
  // server's write timeout or the connection is dropped (the writer then returns false).
  std::function<void(const ChunkWriter&)> stream;

  static Response json(int status, std::string body) {
    Response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
  }
  static Response empty(int status) {
    Response r;
    r.status = status;
    return r;
  }
};

// Request framing (RFC 9112), checked by the server before a request is handled. A request
// whose body length cannot be determined reliably is answered 400 and the connection closed,
// since what follows it cannot be trusted to be the next request.

// Where the header block of the request at the front of `received` ends (the index of the
// empty line's CR or LF), or npos while it has not all arrived.
size_t header_block_end(std::string_view received);

// True when the header block (request line and header lines, up to and including the CRLF
// of the last header line; leading empty lines are skipped, RFC 9112 §2.2) contains
// obsolete line folding: a line that starts with a space or a tab (§5.2: a server must
// reject it or replace it; Wharf rejects it).
bool has_obs_fold(std::string_view header_block);

// Why a parsed request head must be refused, or nullopt. `headers` are the request's header
// fields as received (any case). Refused: a Transfer-Encoding other than exactly `chunked`
// (RFC 9112 §6.3: e.g. `chunked, identity`, `xchunked`, or several Transfer-Encoding
// fields), Transfer-Encoding together with Content-Length, Transfer-Encoding on HTTP/1.0,
// and an HTTP/1.1 request without exactly one Host field (§3.2).
std::optional<std::string> framing_error(
    unsigned http_version,
    const std::vector<std::pair<std::string_view, std::string_view>>& headers);

// The media type of a Content-Type value, lowercased, without parameters or blanks:
// "Application/JSON; charset=utf-8" -> "application/json".
std::string media_type(std::string_view content_type);

// Percent-decodes `s`; when `plus_as_space` is true, '+' becomes ' ' (query strings).
// Returns nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space);
// Percent-encodes every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - _ . ~), so
// the result is safe as a path segment or a query name or value.
std::string percent_encode(std::string_view s);

}  // namespace wharf::net
