// Base64 (RFC 4648 §4) and base64url without padding (§5, as JWTs use it).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace wharf::util {

std::string base64_encode(std::string_view data);
std::string base64url_encode(std::string_view data);  // no padding
// Both decoders accept input with or without '=' padding; nullopt on any invalid character.
std::optional<std::string> base64_decode(std::string_view text);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace wharf::util
