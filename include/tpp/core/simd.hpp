#pragma once
// The SIMD substrate: xsimd batches at the compile-time arch (xsimd::default_arch), plus full and partial
// loads/stores of fp32 and bf16 element types into fp32 batches.
//
// TPP_NO_SIMD (CMake: TPP_SIMD=OFF) makes the ops take their scalar loops; the policies' SIMD `mul` is
// still defined for every xsimd arch, so it is tested in every build.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../arch/convert.hpp"
#include "../arch/ieee.hpp"
#include "bf16.hpp"
#include "types.hpp"

namespace tpp::simd {

#if defined(TPP_NO_SIMD)
inline constexpr bool enabled = false;
#else
inline constexpr bool enabled = true;
#endif

using default_arch = xsimd::default_arch;

template <class T, class A = default_arch>
using batch = xsimd::batch<T, A>;

// The fp32 lane type the ops compute on: a batch at the compile-time arch, or float with TPP_NO_SIMD.
using lane = std::conditional_t<enabled, batch<float>, float>;

// Lanes of a float batch at arch A.
template <class A = default_arch>
inline constexpr index_t width = index_t(xsimd::batch<float, A>::size);

// select() on 32-bit integer lanes. xsimd 8.1's avx512bw integer select does not compile (its
// switch on sizeof(T) instantiates the 8- and 16-bit blends), so blend through the float domain:
// the same instruction class, and bit patterns pass through unchanged.
template <class A>
batch<std::int32_t, A> select(xsimd::batch_bool<std::int32_t, A> c, batch<std::int32_t, A> a,
                              batch<std::int32_t, A> b) noexcept {
  using F = batch<float, A>;
  return xsimd::bitwise_cast<batch<std::int32_t, A>>(
      xsimd::select(xsimd::bool_cast(c), xsimd::bitwise_cast<F>(a), xsimd::bitwise_cast<F>(b)));
}

// a b + c with one rounding (arch/ieee.hpp). (Old spelling: use lanes::fma.)
template <class A>
batch<float, A> fma(batch<float, A> a, batch<float, A> b, batch<float, A> c) noexcept {
  return arch::fma<A>(a, b, c);
}
inline float fma(float a, float b, float c) noexcept { return std::fma(a, b, c); }

template <class A>
batch<float, A> load(const float* p) noexcept {
  return batch<float, A>::load_unaligned(p);
}
template <class A>
batch<float, A> load(const bf16* p) noexcept {
  return arch::widen_bf16<A>(reinterpret_cast<const std::uint16_t*>(p));
}

template <class A>
void store(float* p, batch<float, A> v) noexcept {
  v.store_unaligned(p);
}

// Round to nearest even, NaN kept a quiet NaN: lane for lane what to_bf16_rne does.
template <class A>
void store(bf16* p, batch<float, A> v) noexcept {
  using i32 = batch<std::int32_t, A>;
  const i32 u = xsimd::bitwise_cast<i32>(v);
  const i32 rounded = u + (i32(0x7fff) + ((u >> 16) & i32(1)));  // >> is arithmetic; & 1 drops the sign
  const i32 quiet = u | i32(0x00400000);
  const auto is_nan = (u & i32(0x7fffffff)) > i32(0x7f800000);
  arch::store_high_halves<A>(reinterpret_cast<std::uint16_t*>(p),
                             xsimd::bitwise_cast<batch<std::uint32_t, A>>(simd::select<A>(is_nan, quiet, rounded)));
}

// The first n (< width) elements; the other lanes are zero.
template <class A, class T>
batch<float, A> load_partial(const T* p, index_t n) noexcept {
  alignas(64) float buf[width<A>] = {};
  for (index_t i = 0; i < n; ++i) buf[i] = to_float(p[i]);
  return batch<float, A>::load_aligned(buf);
}

// Stores the first n (< width) lanes, converting like store().
template <class A, class T>
void store_partial(T* p, batch<float, A> v, index_t n) noexcept {
  alignas(64) float buf[width<A>];
  v.store_aligned(buf);
  for (index_t i = 0; i < n; ++i) p[i] = from_float<T>(buf[i]);
}

}  // namespace tpp::simd
