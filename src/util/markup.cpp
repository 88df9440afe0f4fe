#include "util/markup.h"

namespace wharf::util {

std::string markup_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c < 0x20 && c != '\t' && c != '\n' && c != '\r' ? '?' : ch;
    }
  }
  return out;
}

}  // namespace wharf::util
