#include "net/http.h"

#include <algorithm>
#include <cctype>

namespace wharf::net {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <typename Fn>
void for_each_query_pair(std::string_view query, Fn fn) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (!fn(key, value)) return;
  }
}

}  // namespace

std::string media_type(std::string_view content_type) {
  std::string out;
  for (char c : content_type.substr(0, content_type.find(';')))
    if (!std::isspace(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string_view> Request::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return std::string_view(value);
  return std::nullopt;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::optional<std::string> found;
  for_each_query_pair(query, [&](std::string_view key, std::string_view value) {
    auto k = percent_decode(key, true);
    if (k && *k == name) {
      found = percent_decode(value, true);
      if (!found) found = std::string(value);
      return false;
    }
    return true;
  });
  return found;
}

std::vector<std::string> Request::query_params(std::string_view name) const {
  std::vector<std::string> out;
  for_each_query_pair(query, [&](std::string_view key, std::string_view value) {
    auto k = percent_decode(key, true);
    if (k && *k == name) {
      auto v = percent_decode(value, true);
      out.push_back(v ? *v : std::string(value));
    }
    return true;
  });
  return out;
}

size_t header_block_end(std::string_view received) {
  return std::min(received.find("\r\n\r\n"), received.find("\n\n"));
}

bool has_obs_fold(std::string_view header_block) {
  while (!header_block.empty() && (header_block.front() == '\r' || header_block.front() == '\n'))
    header_block.remove_prefix(1);
  for (size_t i = header_block.find('\n'); i != std::string_view::npos;
       i = header_block.find('\n', i + 1)) {
    if (i + 1 < header_block.size() && (header_block[i + 1] == ' ' || header_block[i + 1] == '\t'))
      return true;
  }
  return false;
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> framing_error(
    unsigned http_version,
    const std::vector<std::pair<std::string_view, std::string_view>>& headers) {
  int hosts = 0;
  int transfer_encodings = 0;
  bool content_length = false;
  std::string_view transfer_encoding;
  for (const auto& [name, value] : headers) {
    if (iequals(name, "host")) {
      ++hosts;
    } else if (iequals(name, "transfer-encoding")) {
      ++transfer_encodings;
      transfer_encoding = value;
    } else if (iequals(name, "content-length")) {
      content_length = true;
    }
  }
  if (transfer_encodings > 0) {
    if (transfer_encodings > 1 || !iequals(trim(transfer_encoding), "chunked"))
      return "unsupported Transfer-Encoding: only a single \"chunked\" is accepted";
    if (content_length) return "Transfer-Encoding and Content-Length must not both be sent";
    if (http_version < 11) return "Transfer-Encoding is not allowed in an HTTP/1.0 request";
  }
  if (http_version >= 11 && hosts != 1)
    return hosts == 0 ? "an HTTP/1.1 request must carry a Host header"
                      : "a request must carry exactly one Host header";
  return std::nullopt;
}

}  // namespace wharf::net
