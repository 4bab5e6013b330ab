#pragma once
// VNNI-G row groups: G rows of n elements interleaved into one packed row of G n, o[G j + g] = x[g][j]
// (the G values of one column that a dot-product instruction consumes together, adjacent), and back.
//   vnni_pack<G, A>(x, o, n)    x[g] == nullptr: a zero row (the padding of a last group)
//   vnni_unpack<G, A>(p, y, n)  y[g] == nullptr: that row is not written
//   G = 2: 16-bit words, at xsimd arch A: 16 -> 32-bit widening (convert.hpp) and an or, 32 -> 16-bit
//          narrowing stores of each half
//   G = 4: 8-bit words, AVX-512F (16 columns a step) or AVX2 (8) byte widening and shifts; the unpack
//          narrows (AVX-512F vpmovdb) or shuffles bytes within lanes, then dwords across them (AVX2)
// The columns past the last full vector go through the scalar twins, vnni_pack_scalar<G> and
// vnni_unpack_scalar<G> (the element loops), which the tests hold the whole rows to, bit for bit.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "convert.hpp"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

// The word a VNNI-G element is moved as: 16 bits for G = 2, 8 bits for G = 4.
template <int G>
using vnni_word = std::conditional_t<G == 2, std::uint16_t, std::uint8_t>;

template <int G, class U>
void vnni_pack_scalar(const U* const* x, U* o, std::ptrdiff_t n) noexcept {
  for (std::ptrdiff_t j = 0; j < n; ++j)
    for (int g = 0; g < G; ++g) o[G * j + g] = x[g] ? x[g][j] : U{};
}

template <int G, class U>
void vnni_unpack_scalar(const U* p, U* const* y, std::ptrdiff_t n) noexcept {
  for (std::ptrdiff_t j = 0; j < n; ++j)
    for (int g = 0; g < G; ++g)
      if (y[g]) y[g][j] = p[G * j + g];
}

template <int G, class A>
void vnni_pack(const vnni_word<G>* const* x, vnni_word<G>* o, std::ptrdiff_t n) noexcept {
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit) or 4 (8-bit)");
  using U = vnni_word<G>;
  std::ptrdiff_t j = 0;
  if constexpr (G == 2) {
    using u32 = xsimd::batch<std::uint32_t, A>;
    constexpr std::ptrdiff_t W = std::ptrdiff_t(u32::size);
    auto* o32 = reinterpret_cast<std::uint32_t*>(o);  // stored through vector intrinsics (may alias)
    for (; j + W <= n; j += W) {
      const u32 lo = xsimd::bitwise_cast<u32>(widen_bf16<A>(x[0] + j)) >> 16;  // row k in the low half
      const u32 hi = x[1] ? xsimd::bitwise_cast<u32>(widen_bf16<A>(x[1] + j)) : u32(0u);
      (lo | hi).store_unaligned(o32 + j);
    }
  } else {
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
      const __m128i zero = _mm_setzero_si128();
      for (; j + 16 <= n; j += 16) {
        __m512i w[4];
        for (int g = 0; g < 4; ++g)
          w[g] = _mm512_cvtepu8_epi32(x[g] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[g] + j)) : zero);
        const __m512i v = _mm512_or_si512(_mm512_or_si512(w[0], _mm512_slli_epi32(w[1], 8)),
                                          _mm512_or_si512(_mm512_slli_epi32(w[2], 16), _mm512_slli_epi32(w[3], 24)));
        _mm512_storeu_si512(o + 4 * j, v);
      }
    } else
#endif
#if defined(__AVX2__)
    if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
      const __m128i zero = _mm_setzero_si128();
      for (; j + 8 <= n; j += 8) {
        __m256i w[4];
        for (int g = 0; g < 4; ++g)
          w[g] = _mm256_cvtepu8_epi32(x[g] ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[g] + j)) : zero);
        const __m256i v = _mm256_or_si256(_mm256_or_si256(w[0], _mm256_slli_epi32(w[1], 8)),
                                          _mm256_or_si256(_mm256_slli_epi32(w[2], 16), _mm256_slli_epi32(w[3], 24)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 4 * j), v);
      }
    } else
#endif
    {
    }
  }
  const U* rest[G];
  for (int g = 0; g < G; ++g) rest[g] = x[g] ? x[g] + j : nullptr;
  vnni_pack_scalar<G>(rest, o + G * j, n - j);
}

template <int G, class A>
void vnni_unpack(const vnni_word<G>* p, vnni_word<G>* const* y, std::ptrdiff_t n) noexcept {
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit) or 4 (8-bit)");
  using U = vnni_word<G>;
  std::ptrdiff_t j = 0;
  if constexpr (G == 2) {
    using u32 = xsimd::batch<std::uint32_t, A>;
    constexpr std::ptrdiff_t W = std::ptrdiff_t(u32::size);
    const auto* p32 = reinterpret_cast<const std::uint32_t*>(p);
    for (; j + W <= n; j += W) {
      const u32 v = u32::load_unaligned(p32 + j);
      store_high_halves<A>(y[0] + j, v << 16);
      if (y[1]) store_high_halves<A>(y[1] + j, v);
    }
  } else {
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
      for (; j + 16 <= n; j += 16) {
        const __m512i v = _mm512_loadu_si512(p + 4 * j);
        const __m128i b[4] = {_mm512_cvtepi32_epi8(v), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8)),
                              _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 16)), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 24))};
        for (int g = 0; g < 4; ++g)
          if (y[g]) _mm_storeu_si128(reinterpret_cast<__m128i*>(y[g] + j), b[g]);
      }
    } else
#endif
#if defined(__AVX2__)
    if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
      // Per 128-bit lane gather byte g of each dword, then put the two lanes' groups side by side.
      const __m256i by_byte = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,  //
                                               0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      const __m256i lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (; j + 8 <= n; j += 8) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4 * j));
        const __m256i s = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, by_byte), lanes);
        const __m128i g01 = _mm256_castsi256_si128(s), g23 = _mm256_extracti128_si256(s, 1);
        if (y[0]) _mm_storel_epi64(reinterpret_cast<__m128i*>(y[0] + j), g01);
        if (y[1]) _mm_storel_epi64(reinterpret_cast<__m128i*>(y[1] + j), _mm_unpackhi_epi64(g01, g01));
        if (y[2]) _mm_storel_epi64(reinterpret_cast<__m128i*>(y[2] + j), g23);
        if (y[3]) _mm_storel_epi64(reinterpret_cast<__m128i*>(y[3] + j), _mm_unpackhi_epi64(g23, g23));
      }
    } else
#endif
    {
    }
  }
  U* rest[G];
  for (int g = 0; g < G; ++g) rest[g] = y[g] ? y[g] + j : nullptr;
  vnni_unpack_scalar<G>(p + G * j, rest, n - j);
}

}  // namespace tpp::arch
