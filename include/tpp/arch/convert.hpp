#pragma once
// bf16 <-> fp32 and 8/16-bit integer <-> int32 lane conversions that xsimd 8.1 lacks (it has no widening
// loads or narrowing stores). One intrinsic sequence per ISA, and the scalar twin every other arch
// uses; all produce identical bits.
//   widen_bf16<A>(p):        W bf16 bit patterns at p -> W floats (bits << 16)
//   store_high_halves<A>(p, u): the upper 16 bits of each 32-bit lane of u -> W uint16 at p
//   widen_int<A>(p):         W int8 / uint8 / int16 at p -> W int32 lanes (sign- or zero-extended)
//   store_narrowed<A>(p, v): W int32 lanes, each within T's range -> W int8 / uint8 / int16 at p
//                            (AVX-512: vpmovsxbd / vpmovzxbd / vpmovsxwd and vpmovdb / vpmovdw; AVX2: the same
//                            widenings and a byte shuffle; elsewhere the twins' loops, which the compiler
//                            vectorises)

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

template <class T>
inline constexpr bool narrow_int = std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint8_t> ||
                                   std::is_same_v<T, std::int16_t>;

template <class A, class T>
xsimd::batch<std::int32_t, A> widen_int_scalar(const T* p) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) std::int32_t buf[W];
  for (std::size_t i = 0; i < W; ++i) buf[i] = std::int32_t(p[i]);
  return xsimd::batch<std::int32_t, A>::load_aligned(buf);
}

template <class A, class T>
void store_narrowed_scalar(T* p, xsimd::batch<std::int32_t, A> v) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) std::int32_t buf[W];
  v.store_aligned(buf);
  for (std::size_t i = 0; i < W; ++i) p[i] = T(buf[i]);
}

template <class A, class T>
xsimd::batch<std::int32_t, A> widen_int(const T* p) noexcept {
  static_assert(narrow_int<T>, "tpp: widen_int of int8, uint8 or int16");
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    if constexpr (sizeof(T) == 2) {
      return _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      if constexpr (std::is_signed_v<T>)
        return _mm512_cvtepi8_epi32(b);
      else
        return _mm512_cvtepu8_epi32(b);
    }
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    if constexpr (sizeof(T) == 2) {
      return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      if constexpr (std::is_signed_v<T>)
        return _mm256_cvtepi8_epi32(b);
      else
        return _mm256_cvtepu8_epi32(b);
    }
  } else
#endif
  {
    return widen_int_scalar<A>(p);
  }
}

template <class A, class T>
void store_narrowed(T* p, xsimd::batch<std::int32_t, A> v) noexcept {
  static_assert(narrow_int<T>, "tpp: store_narrowed to int8, uint8 or int16");
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    if constexpr (sizeof(T) == 2)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
    else
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    // The low byte (or half) of each dword to the front of its 128-bit lane, then the two lanes' fronts
    // side by side (the in-range value is its low bytes).
    constexpr char z = -1;  // a shuffle index with the high bit set writes a zero byte
    const __m256i front = sizeof(T) == 2 ? _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, z, z, z, z, z, z, z, z,  //
                                                            0, 1, 4, 5, 8, 9, 12, 13, z, z, z, z, z, z, z, z)
                                         : _mm256_setr_epi8(0, 4, 8, 12, z, z, z, z, z, z, z, z, z, z, z, z,  //
                                                            0, 4, 8, 12, z, z, z, z, z, z, z, z, z, z, z, z);
    const __m256i fronts = sizeof(T) == 2 ? _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7)  // two dwords a lane
                                          : _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // one
    const __m256i s = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, front), fronts);
    if constexpr (sizeof(T) == 2)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(s));
    else
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(s));
  } else
#endif
  {
    store_narrowed_scalar<A>(p, v);
  }
}

}  // namespace tpp::arch
