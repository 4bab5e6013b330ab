#pragma once
// Correctly rounded lane arithmetic where xsimd 8.1 falls short:
//   fma<A>(a, b, c)  a b + c with one rounding. xsimd 8.1 has no AVX-512 fma kernel and computes a * b + c,
//                    fused only where the compiler contracts it (GCC does by default; clang 14 does not).
//                    One rounding where the arch has an fma instruction (fused_fma<A>, arch/registers.hpp).
//   div<A>(a, b), sqrt<A>(x)  IEEE division and square root. xsimd 8.1's at neon / neon64 are
//                    Newton-Raphson refinements of the reciprocal estimates (a few ulp off, sqrt(+inf) =
//                    NaN, sqrt(-0) = +0); AArch64 has the IEEE instructions.
// Each has a scalar twin (*_scalar: the <cmath> operation lane by lane), which the tests hold it to.

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "twin.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace tpp::arch {

template <class A>
xsimd::batch<float, A> fma_scalar(xsimd::batch<float, A> a, xsimd::batch<float, A> b, xsimd::batch<float, A> c) noexcept {
  return lane_by_lane<A>([](float x, float y, float z) { return std::fma(x, y, z); }, a, b, c);
}
template <class A>
xsimd::batch<float, A> div_scalar(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  return lane_by_lane<A>([](float x, float y, float) { return x / y; }, a, b);
}
template <class A>
xsimd::batch<float, A> sqrt_scalar(xsimd::batch<float, A> a) noexcept {
  return lane_by_lane<A>([](float x, float, float) { return std::sqrt(x); }, a);
}

template <class A>
xsimd::batch<float, A> fma(xsimd::batch<float, A> a, xsimd::batch<float, A> b, xsimd::batch<float, A> c) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) return _mm512_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

template <class A>
xsimd::batch<float, A> div(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
#if defined(__aarch64__)
  if constexpr (std::is_base_of_v<xsimd::neon64, A>) return vdivq_f32(a, b);
#endif
  return a / b;
}

template <class A>
xsimd::batch<float, A> sqrt(xsimd::batch<float, A> x) noexcept {
#if defined(__aarch64__)
  if constexpr (std::is_base_of_v<xsimd::neon64, A>) return vsqrtq_f32(x);
#endif
  return xsimd::sqrt(x);
}

}  // namespace tpp::arch
