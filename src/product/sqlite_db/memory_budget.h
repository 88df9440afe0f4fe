// A per-call memory budget for client SQL. SQLite's own limits are per process
// (sqlite3_soft_heap_limit64, sqlite3_hard_heap_limit64), so one tenant's query could use up
// a limit every other tenant shares. Instead Wharf installs an accounting allocator
// (SQLITE_CONFIG_MALLOC) that charges each allocation to the budget of the call running on
// the allocating thread; past the budget an allocation fails, SQLite answers SQLITE_NOMEM
// and the call is refused with `memory_limit`. Temporary files (sorts, temp b-trees) are kept
// in memory (PRAGMA temp_store=MEMORY), so they are bounded by the same budget instead of
// growing on disk, unseen by the storage limit.
//
// Allocations made outside a MemoryScope (the state store, connection set-up) are not
// limited. Memory freed inside a scope that was allocated before it is credited, never below
// zero.
#pragma once
#include <cstdint>

namespace wharf::product::sqlite_db {

// Installs the accounting allocator. Must run before SQLite is first used in the process;
// called from a static initializer in memory_budget.cpp and again (idempotent) by
// SqliteDb's constructor. Returns false when SQLite was already initialized with another
// allocator: calls then run without a memory budget (and a warning is logged once).
bool install_memory_accounting();

// Charges the calling thread's SQLite allocations to a budget of `limit_bytes` (0 =
// unlimited) for the scope's lifetime. A nested scope stands in for the outer one until it
// ends.
class MemoryScope {
 public:
  explicit MemoryScope(int64_t limit_bytes);
  ~MemoryScope();
  MemoryScope(const MemoryScope&) = delete;
  MemoryScope& operator=(const MemoryScope&) = delete;

  // True once an allocation was refused for this scope.
  bool exceeded() const { return exceeded_; }
  int64_t limit() const { return limit_; }

  // The scope active on this thread, or null.
  static MemoryScope* current();

 private:
  friend struct Accounting;
  int64_t limit_;
  int64_t used_ = 0;
  bool exceeded_ = false;
  MemoryScope* previous_;
};

}  // namespace wharf::product::sqlite_db
