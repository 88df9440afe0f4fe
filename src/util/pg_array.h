#pragma once
// PostgreSQL array literals, for binding a list as one text parameter ($1::text[]).

#include <string>
#include <vector>

namespace wharf::util {

// {"a","b"}: every item quoted, quotes and backslashes escaped; {} for none.
std::string pg_text_array(const std::vector<std::string>& items);

}  // namespace wharf::util
