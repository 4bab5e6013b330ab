#pragma once
// Population counts of xor'ed bit rows, the inner loop of the binary GEMM (xsimd 8.1 has no popcount):
//   xor_popcount_4x4<A>(a, b, words, cnt)  cnt[r][c] = Σ_{w < words} popcount(a[r][w] ^ b[c][w]) for 4 rows
//                                          a[0..3] and 4 rows b[0..3]: a 4 x 4 register tile. AVX-512 VPOPCNTDQ
//                                          (vpopcntq over 8 words, a masked load for the last < 8) where the
//                                          target has it; elsewhere the scalar twin.
// Scalar twin xor_popcount_4x4_scalar: std::popcount per word.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
#include <immintrin.h>
#endif

namespace tpp::arch {

inline void xor_popcount_4x4_scalar(const std::uint64_t* const* a, const std::uint64_t* const* b, std::ptrdiff_t words,
                                    std::int64_t (&cnt)[4][4]) noexcept {
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) cnt[r][c] = 0;
  for (std::ptrdiff_t w = 0; w < words; ++w) {
    std::uint64_t va[4], vb[4];
    for (int r = 0; r < 4; ++r) va[r] = a[r][w];
    for (int c = 0; c < 4; ++c) vb[c] = b[c][w];
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) cnt[r][c] += std::popcount(va[r] ^ vb[c]);
  }
}

template <class A>
void xor_popcount_4x4(const std::uint64_t* const* a, const std::uint64_t* const* b, std::ptrdiff_t words,
                      std::int64_t (&cnt)[4][4]) noexcept {
#if defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    __m512i acc[4][4];
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_si512();
    const auto step = [&](auto load8) {
      __m512i va[4], vb[4];
      for (int r = 0; r < 4; ++r) va[r] = load8(a[r]);
      for (int c = 0; c < 4; ++c) vb[c] = load8(b[c]);
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c)
          acc[r][c] = _mm512_add_epi64(acc[r][c], _mm512_popcnt_epi64(_mm512_xor_si512(va[r], vb[c])));
    };
    std::ptrdiff_t w = 0;
    for (; w + 8 <= words; w += 8) step([&](const std::uint64_t* p) { return _mm512_loadu_si512(p + w); });
    if (w < words) {
      const __mmask8 m = __mmask8((1u << (words - w)) - 1);
      step([&](const std::uint64_t* p) { return _mm512_maskz_loadu_epi64(m, p + w); });
    }
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) cnt[r][c] = _mm512_reduce_add_epi64(acc[r][c]);
  } else
#endif
  {
    xor_popcount_4x4_scalar(a, b, words, cnt);
  }
}

}  // namespace tpp::arch
