#pragma once
// Shared test helpers: deterministic random data, bit access, tolerance arithmetic.

#include <bit>
#include <cmath>
#include <cstdio>
#include <string>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include <tpp/core/bf16.hpp>
#include <tpp/core/error.hpp>
#include <tpp/core/types.hpp>

namespace tpp::test {

inline std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }
inline float from_bits(std::uint32_t u) { return std::bit_cast<float>(u); }

// "0x3f800000": a float's bit pattern, for test messages.
inline std::string hex(float f) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", unsigned(bits(f)));
  return buf;
}

// fp32 unit roundoff (2^-24) and bf16's (2^-8).
inline constexpr double u_fp32 = 0x1p-24;
inline constexpr double u_bf16 = 0x1p-8;

template <class T>
constexpr double unit_roundoff() {
  return std::is_same_v<T, bf16> ? u_bf16 : u_fp32;
}

// Uniform floats in [lo, hi) from a fixed seed.
inline std::vector<float> uniform(std::size_t n, float lo, float hi, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Any 32-bit pattern (every float, NaNs and denormals included).
inline std::vector<float> any_bits(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = from_bits(std::uint32_t(g()));
  return v;
}

// The values every special-value sweep uses.
inline std::vector<float> special_values() {
  const float inf = std::numeric_limits<float>::infinity();
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  const float dmin = std::numeric_limits<float>::denorm_min();
  const float fmin = std::numeric_limits<float>::min();
  const float fmax = std::numeric_limits<float>::max();
  std::vector<float> v = {0.0f, 1.0f, 1.5f, 1.99f, 3.0f, 1e-20f, 1e20f, 1e30f, 1e-30f, inf, qnan, dmin, fmin * 0.5f,
                          fmin, fmin * 1.5f, fmax, fmax * 0.75f, 0x1p-63f, 0x1p64f, 0x1.fffffep-1f, from_bits(0x7f800001u)};
  const std::size_t n = v.size();
  for (std::size_t i = 0; i < n; ++i) v.push_back(-v[i]);
  return v;
}

// The argument a tpp::error thrown by f() names, or "(no error)".
template <class F>
std::string error_argument(F&& f) {
  try {
    f();
  } catch (const tpp::error& e) {
    return e.argument();
  }
  return "(no error)";
}

}  // namespace tpp::test
