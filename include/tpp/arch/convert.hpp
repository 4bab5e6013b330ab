#pragma once
// bf16 <-> fp32 lane conversions that xsimd 8.1 lacks (it has no 16 -> 32-bit widening loads or
// 32 -> 16-bit narrowing stores). One intrinsic sequence per ISA, and the scalar twin every other arch
// uses; all produce identical bits.
//   widen_bf16<A>(p):        W bf16 bit patterns at p -> W floats (bits << 16)
//   store_high_halves<A>(p, u): the upper 16 bits of each 32-bit lane of u -> W uint16 at p

#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__SSE2__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace tpp::arch {

template <class A>
xsimd::batch<float, A> widen_bf16_scalar(const std::uint16_t* p) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) std::uint32_t buf[W];
  for (std::size_t i = 0; i < W; ++i) buf[i] = std::uint32_t(p[i]) << 16;
  return xsimd::bitwise_cast<xsimd::batch<float, A>>(xsimd::batch<std::uint32_t, A>::load_aligned(buf));
}

template <class A>
void store_high_halves_scalar(std::uint16_t* p, xsimd::batch<std::uint32_t, A> u) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) std::uint32_t buf[W];
  u.store_aligned(buf);
  for (std::size_t i = 0; i < W; ++i) p[i] = std::uint16_t(buf[i] >> 16);
}

template <class A>
xsimd::batch<float, A> widen_bf16(const std::uint16_t* p) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  } else
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h));
  } else
#endif
#if defined(__ARM_NEON)
  if constexpr (std::is_base_of_v<xsimd::neon, A>) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  } else
#endif
  {
    return widen_bf16_scalar<A>(p);
  }
}

template <class A>
void store_high_halves(std::uint16_t* p, xsimd::batch<std::uint32_t, A> u) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    const __m256i s = _mm256_srai_epi32(u, 16);  // fits int16 exactly, so packs does not saturate
    const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  } else
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    const __m128i s = _mm_srai_epi32(u, 16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi32(s, s));
  } else
#endif
#if defined(__ARM_NEON)
  if constexpr (std::is_base_of_v<xsimd::neon, A>) {
    vst1_u16(p, vshrn_n_u32(u, 16));
  } else
#endif
  {
    store_high_halves_scalar<A>(p, u);
  }
}

}  // namespace tpp::arch
