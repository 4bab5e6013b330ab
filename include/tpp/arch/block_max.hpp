#pragma once
// The largest magnitudes of W blocks at once, for block floating point's shared exponents (xsimd 8.1 has
// neither vrangeps nor a transposing reduction):
//   block_maxima<A>                 whether arch A has the instruction forms below (AVX-512F + DQ, 16 lanes)
//   larger_magnitude_bits<A>(a, b)  lane by lane the bits of whichever of a, b has the larger magnitude,
//                                   sign cleared (vrangeps, imm 0x0b). NaN: a signalling NaN comes back
//                                   quietened with its sign (a's first), a quiet NaN beside a number gives
//                                   the number's magnitude, two quiet NaNs a's, sign cleared.
//   u32_registers<A>                the native register of W unsigned 32-bit lanes (what transpose_max
//                                   takes: GCC 12 keeps an array of xsimd batches in memory across it)
//   transpose_max<Raw, A>(c)        lane k = the largest lane of c[k] as an unsigned integer, k < W, from W
//                                   vectors c[0, W), which it overwrites. Raw: c holds floats' bits, and
//                                   lanes j and j + W/2 of each c[k] first meet in larger_magnitude_bits.
// On AVX-512 the transposition halves the lanes per vector in four rounds: shuffles of 128-bit chunks pair
// vectors (a, b) into one holding both folded (rounds 1, 2: 8 then 4 lanes each, in vector order), then
// in-chunk shuffles (rounds 3, 4) leave lane 4L + r holding vector 4r + L, which one permute puts back in
// order. Its loops are unrolled by pragma: GCC 12 otherwise keeps c in memory.
// Each *_scalar function is the twin the tests hold the instruction forms to, bit for bit.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <class A>
inline constexpr bool block_maxima =
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    std::is_base_of_v<xsimd::avx512f, A> && xsimd::batch<float, A>::size == 16;
#else
    false;
#endif

namespace detail {
inline std::uint32_t larger_magnitude_bits(std::uint32_t a, std::uint32_t b) noexcept {
  const auto nan = [](std::uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; };
  const auto quiet = [](std::uint32_t u) { return (u & 0x00400000u) != 0; };
  if (nan(a) && !quiet(a)) return a | 0x00400000u;
  if (nan(b) && !quiet(b)) return b | 0x00400000u;
  if (nan(a)) return (nan(b) ? a : b) & 0x7fffffffu;
  if (nan(b)) return a & 0x7fffffffu;
  return std::max(a & 0x7fffffffu, b & 0x7fffffffu);
}
}  // namespace detail

template <class A>
xsimd::batch<std::uint32_t, A> larger_magnitude_bits_scalar(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  using U = xsimd::batch<std::uint32_t, A>;
  constexpr std::size_t W = U::size;
  alignas(64) std::uint32_t x[W], y[W];
  xsimd::bitwise_cast<U>(a).store_aligned(x);
  xsimd::bitwise_cast<U>(b).store_aligned(y);
  for (std::size_t i = 0; i < W; ++i) x[i] = detail::larger_magnitude_bits(x[i], y[i]);
  return U::load_aligned(x);
}

template <class A>
xsimd::batch<std::uint32_t, A> larger_magnitude_bits(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return _mm512_castps_si512(_mm512_range_ps(a, b, 0x0b));
  } else
#endif
  {
    return larger_magnitude_bits_scalar<A>(a, b);
  }
}

template <class A>
using u32_registers = typename xsimd::batch<std::uint32_t, A>::register_type;

template <bool Raw, class A>
xsimd::batch<std::uint32_t, A> transpose_max_scalar(const u32_registers<A>* c) noexcept {
  using U = xsimd::batch<std::uint32_t, A>;
  constexpr std::size_t W = U::size;
  alignas(64) std::uint32_t r[W], v[W];
  for (std::size_t k = 0; k < W; ++k) {
    U(c[k]).store_aligned(v);
    std::uint32_t m = 0;
    if constexpr (Raw) {
      for (std::size_t j = 0; j < W / 2; ++j) m = std::max(m, detail::larger_magnitude_bits(v[j], v[j + W / 2]));
    } else {
      for (std::size_t j = 0; j < W; ++j) m = std::max(m, v[j]);
    }
    r[k] = m;
  }
  return U::load_aligned(r);
}

template <bool Raw, class A>
xsimd::batch<std::uint32_t, A> transpose_max(u32_registers<A>* c) noexcept {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (block_maxima<A>) {
    const auto fold = [](__m512i a, __m512i b, auto shuffle, auto lo, auto hi) {
      return _mm512_max_epu32(shuffle(a, b, lo), shuffle(a, b, hi));
    };
    const auto first_fold = [](__m512i a, __m512i b, auto shuffle, auto lo, auto hi) {
      if constexpr (!Raw)
        return _mm512_max_epu32(shuffle(a, b, lo), shuffle(a, b, hi));
      else
        return _mm512_castps_si512(
            _mm512_range_ps(_mm512_castsi512_ps(shuffle(a, b, lo)), _mm512_castsi512_ps(shuffle(a, b, hi)), 0x0b));
    };
    const auto chunks = [](__m512i a, __m512i b, auto imm) { return _mm512_shuffle_i32x4(a, b, decltype(imm)::value); };
    const auto in_chunk = [](__m512i a, __m512i b, auto imm) {
      return _mm512_castps_si512(_mm512_shuffle_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(b), decltype(imm)::value));
    };
    using lo1 = std::integral_constant<int, 0x44>;  // [a0 a1 b0 b1] and [a2 a3 b2 b3]
    using hi1 = std::integral_constant<int, 0xee>;
    using lo2 = std::integral_constant<int, 0x88>;  // [a0 a2 b0 b2] and [a1 a3 b1 b3]
    using hi2 = std::integral_constant<int, 0xdd>;
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) c[k] = first_fold(c[2 * k], c[2 * k + 1], chunks, lo1{}, hi1{});
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) c[k] = fold(c[2 * k], c[2 * k + 1], chunks, lo2{}, hi2{});
#pragma GCC unroll 2
    for (int k = 0; k < 2; ++k) c[k] = fold(c[2 * k], c[2 * k + 1], in_chunk, lo1{}, hi1{});
    c[0] = fold(c[0], c[1], in_chunk, lo2{}, hi2{});
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_epi32(order, c[0]);
  } else
#endif
  {
    return transpose_max_scalar<Raw, A>(c);
  }
}

}  // namespace tpp::arch
