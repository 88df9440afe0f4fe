// Numbered schema migrations shared by every backend. The SQL is portable except for two
// placeholders each backend substitutes: {BLOB} (BLOB / BYTEA) and {INT64} (INTEGER / BIGINT).
// Never edit a released migration; add the next number.
#pragma once
#include <string>
#include <vector>

namespace wharf::store {

struct Migration {
  int version;
  const char* name;
  const char* sql;  // one or more statements separated by ';'
};

const std::vector<Migration>& migrations();
std::string render_migration(const std::string& sql, const std::string& blob_type,
                             const std::string& int64_type);

}  // namespace wharf::store
