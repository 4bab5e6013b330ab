#pragma once
// tpp_train's counter-based randomness: every random number is a hash of (seed, stream, index), so the
// initialisation, the shuffles and the stochastic-rounding keys are the same on any machine and thread count.

#include <cstdint>

namespace tpp_train {

inline std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1): 53 bits of the hash of (seed, stream, i).
inline double uniform01(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) noexcept {
  return double(mix(mix(seed ^ mix(stream)) + i) >> 11) * 0x1p-53;
}

}  // namespace tpp_train
