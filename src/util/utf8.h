// UTF-8 repair for text that must go out as JSON.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace wharf::util {

// `text` with every invalid UTF-8 sequence (overlong forms, surrogates, truncated or stray
// bytes) replaced by U+FFFD: JSON output must be UTF-8, and databases store whatever bytes a
// client sends as text.
std::string valid_utf8(std::string_view text);

// Length in Unicode code points (every byte but continuation bytes), as JSON Schema and
// Vercel's "≤ n characters" constraints count it.
size_t utf8_length(std::string_view text);

}  // namespace wharf::util
