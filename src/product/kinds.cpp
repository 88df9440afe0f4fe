// The product kinds this build ships: one line per kind (registry.h).
#include "product/flags/flags.h"
#include "product/http_backend/http_backend.h"
#include "product/postgres_db/postgres_db.h"
#include "product/registry.h"
#include "product/sqlite_db/sqlite_db.h"

namespace wharf::product {

const Registry& builtin_kinds() {
  static const Registry registry = [] {
    Registry r;
    r.add("sqlite", SqliteDb::kDescriptor(), &SqliteDb::make);
    r.add("postgres", PostgresDb::kDescriptor(), &PostgresDb::make);
    r.add("flags", FlagsProduct::kDescriptor(), &FlagsProduct::make);
    r.add("http", HttpBackend::kDescriptor(), &HttpBackend::make, /*per_product=*/true,
          /*open_metrics=*/true);
    return r;
  }();
  return registry;
}

}  // namespace wharf::product
