// Prefixed, CSPRNG-generated identifiers (`req_…`, `res_…`, `inv_…`).
#pragma once
#include <string>
#include <string_view>

namespace wharf::util {

// prefix + "_" + 20 random characters from [0-9a-z] (about 103 bits).
std::string new_id(std::string_view prefix);

}  // namespace wharf::util
