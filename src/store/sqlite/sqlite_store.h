// SQLite backend: WAL journal, synchronous=FULL (a commit is on disk before we answer),
// one writer connection, and a pool of reader connections so reads never wait for writes.
//
// Group commit: writers that arrive while a transaction is being written queue up; the next
// one to run (the leader) writes every queued operation in ONE transaction, each inside its
// own savepoint, and commits (one fsync) before any of them returns. An operation that
// throws is rolled back to its savepoint alone and its caller gets its exception; the others
// commit. A failed commit fails every operation of the batch. Callers still answer only after
// their commit: write() returns once the batch holding its operation is on disk.
#pragma once
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "store/store.h"

namespace wharf::store::sqlite {

struct Options {
  Options(std::string p = {}, int busy_ms = 5000) : path(std::move(p)), busy_timeout_ms(busy_ms) {}
  std::string path;
  int busy_timeout_ms = 5000;
  // The most operations one commit carries (1 turns group commit off).
  size_t max_group = 64;
  // Called after each successful commit with the number of operations it carried
  // (tests and metrics).
  std::function<void(size_t)> on_commit;
  // release_memory closes the idle reader connections (all but one) that no read took for
  // this long.
  std::chrono::milliseconds reader_idle_close_after{60000};
};

std::unique_ptr<Store> open(const Options& options);
// Factory for register_backend("sqlite", …): sqlite:///abs/path or sqlite://rel/path.
std::unique_ptr<Store> open_url(const std::string& url);

}  // namespace wharf::store::sqlite
