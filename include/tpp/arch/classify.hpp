#pragma once
// Lanes chosen by their IEEE class, where one instruction does what xsimd 8.1 spells in three:
//   finite_else<A>(q, v)  q where v is finite, v itself (its very bits) where v is NaN or +-Inf. AVX-512DQ:
//                         one vfpclassps and a masked move (instead of an and, a compare and a blend);
//                         elsewhere select(|v| < Inf, q, v).
// Scalar twin finite_else_scalar: lane by lane, std::isfinite.

#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "twin.hpp"

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <class A>
xsimd::batch<float, A> finite_else_scalar(xsimd::batch<float, A> q, xsimd::batch<float, A> v) noexcept {
  return lane_by_lane<A>([](float x, float y, float) { return std::isfinite(y) ? x : y; }, q, v);
}

template <class A>
xsimd::batch<float, A> finite_else(xsimd::batch<float, A> q, xsimd::batch<float, A> v) noexcept {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return _mm512_mask_mov_ps(q, _mm512_fpclass_ps_mask(v, 0x99), v);  // QNaN, +Inf, -Inf, SNaN
  } else
#endif
  {
    using F = xsimd::batch<float, A>;
    return xsimd::select(xsimd::abs(v) < F(std::numeric_limits<float>::infinity()), q, v);
  }
}

}  // namespace tpp::arch
