// SQLite backend: WAL journal, synchronous=FULL (a commit is on disk before we answer),
// one writer connection serialised by a mutex (BEGIN IMMEDIATE), and a pool of reader
// connections so reads never wait for writes.
#pragma once
#include <memory>
#include <string>

#include "store/store.h"

namespace wharf::store::sqlite {

struct Options {
  std::string path;
  int busy_timeout_ms = 5000;
};

std::unique_ptr<Store> open(const Options& options);
// Factory for register_backend("sqlite", …): sqlite:///abs/path or sqlite://rel/path.
std::unique_ptr<Store> open_url(const std::string& url);

}  // namespace wharf::store::sqlite
