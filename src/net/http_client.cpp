#include "net/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace wharf::net {
namespace {

// curl_global_init is not thread-safe and must run before any other libcurl call; doing it
// lazily here keeps HttpClient usable without an init call in main().
void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct Transfer {
  HttpResult* result;
  size_t max_bytes;
  bool too_large = false;
};

size_t on_body(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  if (t->result->body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;  // makes curl abort with CURLE_WRITE_ERROR
  }
  t->result->body.append(data, n);
  return n;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

size_t on_header(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  std::string_view line(data, n);
  // A new status line starts a new response (100 Continue, proxy CONNECT): only the final
  // response's headers are reported.
  if (line.rfind("HTTP/", 0) == 0) {
    t->result->headers.clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // blank terminator or obsolete folding
  std::string name(trim(line.substr(0, colon)));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  t->result->headers.emplace_back(std::move(name), std::string(trim(line.substr(colon + 1))));
  return n;
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

// Idle easy handles, most recently used last (its connections are the likeliest still open).
struct HttpClient::Pool {
  std::mutex mu;
  std::vector<EasyHandle> idle;

  EasyHandle take() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        EasyHandle h = std::move(idle.back());
        idle.pop_back();
        return h;
      }
    }
    return EasyHandle(curl_easy_init());
  }
  // curl_easy_reset forgets every option (and so every pointer into the finished call) but
  // keeps the handle's open connections.
  void give_back(EasyHandle h, size_t max_idle) {
    if (!h) return;
    curl_easy_reset(h.get());
    std::lock_guard<std::mutex> lock(mu);
    if (idle.size() < max_idle) idle.push_back(std::move(h));
  }
};

HttpClient::HttpClient(Options options)
    : options_(std::move(options)), pool_(std::make_unique<Pool>()) {
  global_init_once();
}
HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResult HttpClient::request(const std::string& method, const std::string& url,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& body) const {
  HttpResult result;
  if (method.empty() || has_crlf(method) || has_crlf(url)) {
    result.error = "invalid method or url";
    return result;
  }

  // Back to the pool when this call returns, however it returns (the handle is reset, so
  // nothing below outlives the call in it).
  struct Lease {
    Pool& pool;
    size_t max_idle;
    EasyHandle handle;
    ~Lease() { pool.give_back(std::move(handle), max_idle); }
  } lease{*pool_, options_.max_idle_handles, pool_->take()};
  if (!lease.handle) {
    result.error = "curl_easy_init failed";
    return result;
  }
  CURL* h = lease.handle.get();

  Slist header_list;
  for (const auto& [name, value] : headers) {
    if (name.empty() || has_crlf(name) || has_crlf(value) || name.find(':') != std::string::npos) {
      result.error = "invalid request header";
      return result;
    }
    std::string line = name + ": " + value;
    curl_slist* appended = curl_slist_append(header_list.get(), line.c_str());
    if (!appended) {
      result.error = "out of memory building headers";
      return result;
    }
    static_cast<void>(header_list.release());
    header_list.reset(appended);
  }
  // Without this curl waits up to a second for "100 Continue" on larger bodies.
  if (curl_slist* appended = curl_slist_append(header_list.get(), "Expect:")) {
    static_cast<void>(header_list.release());
    header_list.reset(appended);
  }

  Transfer transfer{&result, options_.max_response_bytes};
  char error_buffer[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // required for multi-threaded use
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // any encoding curl can decode
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
  if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());

  if (method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (body.empty() && (method == "DELETE" || method == "OPTIONS")) {
    // Bodiless methods must not announce a body.
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else {
    // POSTFIELDS makes curl send the body (an empty one as Content-Length: 0, which PUT and
    // PATCH servers expect); CUSTOMREQUEST then renames the method for anything but POST.
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  const CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    result.status = 0;
    result.body.clear();
    result.headers.clear();
    if (transfer.too_large) {
      result.error =
          "response larger than " + std::to_string(options_.max_response_bytes) + " bytes";
    } else {
      result.error = curl_easy_strerror(rc);
      if (error_buffer[0] != '\0') {
        result.error += ": ";
        result.error += error_buffer;
      }
    }
    return result;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  result.status = static_cast<int>(status);
  return result;
}

}  // namespace wharf::net
