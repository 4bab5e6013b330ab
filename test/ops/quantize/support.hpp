#pragma once
// Shared by test/ops/quantize/*.cpp (each tests the header of its name against independent references,
// double or integer arithmetic, with tolerances derived from the definitions in the header's doc block):
// special values, random data spread over many binades, the policy's relative error.
//
// Notation: u = 2^-24 (fp32 unit roundoff), m = max(P::max_rel_error, u) the policy's relative error.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "ops/elementwise_support.hpp"

namespace tpp::test::quant {

inline constexpr double u = u_fp32;
inline constexpr float inf = std::numeric_limits<float>::infinity();
inline constexpr float qnan = std::numeric_limits<float>::quiet_NaN();
// NaNs with payloads and signs: fake-quant must pass each one through with its very bits
inline const float nan_q = std::bit_cast<float>(0xffc01234u), nan_s = std::bit_cast<float>(0x7f800321u);

template <class P>
double rel_of() {
  return std::max(double(P::max_rel_error), u);
}

// Random values whose magnitudes spread over 2^-spread .. 2^spread.
inline std::vector<float> spread(std::size_t n, int spread_exp, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(-spread_exp, spread_exp);
  std::vector<float> v(n);
  for (auto& x : v) x = std::ldexp(d(g), e(g));
  return v;
}

}  // namespace tpp::test::quant
