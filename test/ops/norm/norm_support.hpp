#pragma once
// Shared by the norm tests (test/ops/norm/batchnorm.cpp, groupnorm.cpp): padded buffers whose padding holds
// a sentinel the ops must not touch, random inputs, and the tolerance arithmetic.
//
// Tolerances, derived from the documented arithmetic (u = 2^-24, e = max(P::max_rel_error, u)):
//   sums: fp32 within a block (at most D = max(1024 / (2 W), 128) + 8 roundings per term, W the lane
//         count), double across blocks: |error| <= D u Σ|t|.
//   rstd = 1 / sqrt(var + eps) in fp32: 3 roundings; s = gamma rstd one more; x - mean one.
//   forward  |y - ref| <= (e + 6u) |x - mean| |s| + u |y|                       (+ u_bf16 |y| for bf16 y)
//   stats    |mean - ref| <= (D + 4) u mean|x - mean| + 2u |mean|;  |var - ref| <= (e + (D + 8) u) var
//   backward dx: (3e + (D + 8) u) |gamma rstd| (|dy| + Σ|dy| / n + |xh| Σ|dy xh| / n) + u |dx|
//            dgamma: (2e + (D + 8) u) Σ|dy xh|;  dbeta: D u Σ|dy|
// with the forward's statistics given (the reference uses tpp's mean / var, so each op's error is its own).
// Against finite differences of a double pipeline that recomputes the statistics, the tolerance doubles
// (tpp's statistics carry their own error) plus the differences' own error.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <tpp/core/bf16.hpp>
#include <tpp/core/error.hpp>
#include <tpp/core/mat.hpp>
#include <tpp/core/simd.hpp>

#include "support.hpp"

namespace tpp::test::norm {

using tpp::bf16;
using tpp::index_t;
using tpp::mat;
using tpp::test::u_bf16;
using tpp::test::u_fp32;

inline constexpr index_t lane_count = tpp::simd::enabled ? tpp::simd::width<> : 1;
inline constexpr double D = double(std::max<index_t>(1024 / (2 * lane_count), 128) + 8);

template <class P>
double eps_of() {
  return std::max(double(P::max_rel_error), u_fp32);
}

// A (rows, cols) buffer with ld = cols + pad, padding filled with a sentinel that must survive.
template <class T>
struct buffer {
  index_t rows, cols, ld;
  std::vector<T> v;
  buffer(index_t r, index_t c, index_t pad = 0) : rows(r), cols(c), ld(c + pad), v(static_cast<std::size_t>(std::max<index_t>(r * (c + pad), 1)), tpp::from_float<T>(-777.0f)) {}
  mat<T> m() { return {v.data(), rows, cols, ld}; }
  mat<const T> cm() const { return {v.data(), rows, cols, ld}; }
  double at(index_t i, index_t j) const {
    if constexpr (std::is_same_v<T, double>)
      return v[static_cast<std::size_t>(i * ld + j)];  // (the finite differences' perturbed inputs)
    else
      return double(tpp::to_float(v[static_cast<std::size_t>(i * ld + j)]));
  }
  void set(index_t i, index_t j, float x) { v[static_cast<std::size_t>(i * ld + j)] = tpp::from_float<T>(x); }
  bool padding_intact() const {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = cols; j < ld; ++j)
        if (tpp::to_float(v[static_cast<std::size_t>(i * ld + j)]) != tpp::to_float(tpp::from_float<T>(-777.0f))) return false;
    return true;
  }
};

template <class T>
buffer<T> random_buffer(index_t r, index_t c, index_t pad, float lo, float hi, std::uint64_t seed) {
  buffer<T> b(r, c, pad);
  const auto u = tpp::test::uniform(static_cast<std::size_t>(r * c), lo, hi, seed);
  for (index_t i = 0; i < r; ++i)
    for (index_t j = 0; j < c; ++j) b.set(i, j, u[static_cast<std::size_t>(i * c + j)]);
  return b;
}

inline std::vector<float> random_vec(index_t n, float lo, float hi, std::uint64_t seed) {
  return tpp::test::uniform(static_cast<std::size_t>(n), lo, hi, seed);
}

// Runs f, which must throw tpp::error naming argument arg.
inline void throws_naming(const std::function<void()>& f, const char* arg) {
  try {
    f();
    FAIL("no tpp::error for " << arg);
  } catch (const tpp::error& e) {
    CHECK(e.argument() == arg);
  }
}

}  // namespace tpp::test::norm
