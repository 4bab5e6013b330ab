#pragma once
// Across the lanes of one batch, what xsimd 8.1 has no kernel for:
//   hmax<A>(v), hmin<A>(v)  the largest / smallest lane by a halving tree: at width h = W/2, W/4, ... 1,
//                           lane i = op(lane i, lane i + h) with op(a, b) = a > b ? a : b (hmin: a < b),
//                           x86's maxps / minps rule: b where either is NaN. So the result is exact and,
//                           for lanes without NaN, the maximum; which lane a NaN reaches depends on its
//                           position (callers that must propagate NaN test for it themselves).
//   mask_bits<A>(m)         bit i = lane i of a float batch_bool (movemask)
// hmax and hmin are hreduce<true / false, A>, whose scalar twin hreduce_scalar<Max, A> has the same tree;
// mask_bits has mask_bits_scalar. The tests hold the instruction forms to the twins.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <bool Max, class A>
float hreduce_scalar(xsimd::batch<float, A> v) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) float b[W];
  v.store_aligned(b);
  for (std::size_t h = W / 2; h >= 1; h /= 2)
    for (std::size_t i = 0; i < h; ++i) b[i] = (Max ? b[i] > b[i + h] : b[i] < b[i + h]) ? b[i] : b[i + h];
  return b[0];
}

#if defined(__SSE2__)
namespace detail {
// The tree's 128-bit end: lanes (0, 2) and (1, 3), then lane 0 with lane 1.
template <bool Max>
inline float hreduce_128(__m128 q) noexcept {
  if constexpr (Max) {
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_max_ss(q, _mm_shuffle_ps(q, q, 1)));
  } else {
    q = _mm_min_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_min_ss(q, _mm_shuffle_ps(q, q, 1)));
  }
}
#if defined(__AVX__)
template <bool Max>
inline float hreduce_256(__m256 h) noexcept {
  const __m128 lo = _mm256_castps256_ps128(h), hi = _mm256_extractf128_ps(h, 1);
  return hreduce_128<Max>(Max ? _mm_max_ps(lo, hi) : _mm_min_ps(lo, hi));
}
#endif
}  // namespace detail
#endif

template <bool Max, class A>
float hreduce(xsimd::batch<float, A> v) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m512 z = v;
    const __m256 lo = _mm512_castps512_ps256(z), hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1));
    return detail::hreduce_256<Max>(Max ? _mm256_max_ps(lo, hi) : _mm256_min_ps(lo, hi));
  } else
#endif
#if defined(__AVX__)
  if constexpr (std::is_base_of_v<xsimd::avx, A>) {
    return detail::hreduce_256<Max>(v);
  } else
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    return detail::hreduce_128<Max>(v);
  } else
#endif
  {
    return hreduce_scalar<Max, A>(v);
  }
}

template <class A>
float hmax(xsimd::batch<float, A> v) noexcept {
  return hreduce<true, A>(v);
}
template <class A>
float hmin(xsimd::batch<float, A> v) noexcept {
  return hreduce<false, A>(v);
}

template <class A>
std::uint64_t mask_bits_scalar(xsimd::batch_bool<float, A> m) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) float b[W];
  xsimd::select(m, xsimd::batch<float, A>(1.0f), xsimd::batch<float, A>(0.0f)).store_aligned(b);
  std::uint64_t r = 0;
  for (std::size_t k = 0; k < W; ++k) r |= std::uint64_t(b[k] != 0.0f) << k;
  return r;
}

template <class A>
std::uint64_t mask_bits(xsimd::batch_bool<float, A> m) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return std::uint64_t(__mmask16(m));
  } else
#endif
#if defined(__AVX__)
  if constexpr (std::is_base_of_v<xsimd::avx, A>) {
    return std::uint64_t(unsigned(_mm256_movemask_ps(m)));
  } else
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    return std::uint64_t(unsigned(_mm_movemask_ps(m)));
  } else
#endif
  {
    return mask_bits_scalar<A>(m);
  }
}

}  // namespace tpp::arch
