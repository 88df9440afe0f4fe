#include "product/sqlite_db/memory_budget.h"

#include <sqlite3.h>

#include <cstdlib>
#include <mutex>

namespace wharf::product::sqlite_db {
namespace {

thread_local MemoryScope* t_scope = nullptr;

// Each block carries its size in a 16-byte header (keeps malloc's 16-byte alignment), so
// xFree and xRealloc can credit the budget exactly.
constexpr size_t kHeader = 16;

size_t& size_of(void* block) {
  return *reinterpret_cast<size_t*>(static_cast<char*>(block) - kHeader);
}

}  // namespace

struct Accounting {
  static bool charge(int64_t bytes) {
    MemoryScope* s = t_scope;
    if (!s) return true;
    if (s->limit_ > 0 && s->used_ + bytes > s->limit_) {
      s->exceeded_ = true;
      return false;
    }
    s->used_ += bytes;
    return true;
  }
  static void credit(int64_t bytes) {
    MemoryScope* s = t_scope;
    if (!s) return;
    s->used_ = s->used_ > bytes ? s->used_ - bytes : 0;
  }

  static void* x_malloc(int n) {
    if (n <= 0) return nullptr;
    if (!charge(n)) return nullptr;
    char* raw = static_cast<char*>(std::malloc(static_cast<size_t>(n) + kHeader));
    if (!raw) {
      credit(n);
      return nullptr;
    }
    *reinterpret_cast<size_t*>(raw) = static_cast<size_t>(n);
    return raw + kHeader;
  }
  static void x_free(void* p) {
    if (!p) return;
    credit(static_cast<int64_t>(size_of(p)));
    std::free(static_cast<char*>(p) - kHeader);
  }
  static void* x_realloc(void* p, int n) {
    if (!p) return x_malloc(n);
    if (n <= 0) return nullptr;
    auto old_size = static_cast<int64_t>(size_of(p));
    int64_t grow = n - old_size;
    if (grow > 0 && !charge(grow)) return nullptr;
    char* raw = static_cast<char*>(
        std::realloc(static_cast<char*>(p) - kHeader, static_cast<size_t>(n) + kHeader));
    if (!raw) {
      if (grow > 0) credit(grow);
      return nullptr;
    }
    if (grow < 0) credit(-grow);
    *reinterpret_cast<size_t*>(raw) = static_cast<size_t>(n);
    return raw + kHeader;
  }
  static int x_size(void* p) { return p ? static_cast<int>(size_of(p)) : 0; }
  static int x_roundup(int n) { return (n + 7) & ~7; }
  static int x_init(void*) { return SQLITE_OK; }
  static void x_shutdown(void*) {}
};

bool install_memory_accounting() {
  static std::once_flag once;
  static bool installed = false;
  std::call_once(once, [] {
    static const sqlite3_mem_methods methods = {
        &Accounting::x_malloc,  &Accounting::x_free, &Accounting::x_realloc,  &Accounting::x_size,
        &Accounting::x_roundup, &Accounting::x_init, &Accounting::x_shutdown, nullptr};
    installed = sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK;
  });
  return installed;
}

namespace {
// Before main(): nothing in Wharf touches SQLite during static initialization, so the
// allocator is in place before the state store or any product opens a database.
[[maybe_unused]] const bool kInstalledAtStart = install_memory_accounting();
}  // namespace

MemoryScope::MemoryScope(int64_t limit_bytes) : limit_(limit_bytes), previous_(t_scope) {
  t_scope = this;
}

MemoryScope::~MemoryScope() {
  t_scope = previous_;
}

MemoryScope* MemoryScope::current() {
  return t_scope;
}

}  // namespace wharf::product::sqlite_db
