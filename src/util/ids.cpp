#include "util/ids.h"

#include "util/crypto.h"

namespace wharf::util {

std::string new_id(std::string_view prefix) {
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  // 256 % 36 != 0, so reject bytes >= 252 to keep the distribution uniform.
  std::string out(prefix);
  out += '_';
  while (out.size() < prefix.size() + 1 + 20) {
    for (unsigned char b : random_bytes(24)) {
      if (b >= 252) continue;
      out += kAlphabet[b % 36];
      if (out.size() == prefix.size() + 1 + 20) break;
    }
  }
  return out;
}

}  // namespace wharf::util
