// Helpers shared by the C++ benchmarks: deterministic pseudo-random data and flag parsing.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace wharf::bench {

// splitmix64: the same data on every run, no state.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline int64_t in_range(uint64_t seed, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(mix(seed) % static_cast<uint64_t>(hi - lo + 1));
}

// A positive integer flag value; throws std::invalid_argument otherwise.
inline int positive_int(const std::string& v) {
  size_t used = 0;
  int n = std::stoi(v, &used);
  if (used != v.size() || n <= 0) throw std::invalid_argument(v);
  return n;
}

}  // namespace wharf::bench
