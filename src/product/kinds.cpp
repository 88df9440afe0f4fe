// The product kinds this build ships: one line per kind (registry.h).
#include "product/registry.h"
#include "product/sqlite_db/sqlite_db.h"

namespace wharf::product {

const Registry& builtin_kinds() {
  static const Registry registry = [] {
    Registry r;
    r.add("sqlite", SqliteDb::kDescriptor(), &SqliteDb::make);
    return r;
  }();
  return registry;
}

}  // namespace wharf::product
