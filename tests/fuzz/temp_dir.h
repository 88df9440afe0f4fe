// A private scratch directory for a fuzz target's fixture (tests/fuzz/README.md): under
// $TMPDIR when set, else /dev/shm (files there cost no disk I/O per input), else /tmp.
#pragma once
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace wharf::fuzz {

inline std::string make_temp_dir(const std::string& name) {
  const char* base = std::getenv("TMPDIR");
  std::string root = base && *base ? base : "/tmp";
  if (std::filesystem::is_directory("/dev/shm") && !(base && *base)) root = "/dev/shm";
  std::string templ = root + "/wharf-fuzz-" + name + ".XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) __builtin_trap();
  return templ;
}

}  // namespace wharf::fuzz
