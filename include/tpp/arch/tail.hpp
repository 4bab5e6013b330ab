#pragma once
// Partial vectors: the first n lanes of a batch loaded from or stored to memory, never touching the
// elements past n (a row's tail). xsimd 8.1 has no masked loads or stores. Where the ISA has them
// (AVX-512F: fp32, 16-bit stores; AVX-512BW + VL: 16-bit loads; AVX2: fp32) one masked instruction;
// elsewhere the scalar twin, an element loop through a stack buffer (which costs a store-forwarding
// stall when the buffer is reloaded whole: 1536 x 127 fp32 softmax measured 138 us that way, 65 us
// masked, 57 us for 1536 x 128). 0 <= n <= W; lanes past n load as +0.
//   load_first<A>(p, n)                 n floats
//   widen_bf16_first<A>(p, n)           n bf16 bit patterns -> floats (bits << 16)
//   store_first<A>(p, v, n)             n floats
//   store_high_halves_first<A>(p, u, n) the upper 16 bits of the first n 32-bit lanes of u -> n uint16
// Each *_scalar function is the twin the tests hold the instruction form to, bit for bit.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <class A>
inline constexpr std::size_t lanes_of = xsimd::batch<float, A>::size;

template <class A>
xsimd::batch<float, A> load_first_scalar(const float* p, std::ptrdiff_t n) noexcept {
  alignas(64) float buf[lanes_of<A>] = {};
  for (std::ptrdiff_t i = 0; i < n; ++i) buf[i] = p[i];
  return xsimd::batch<float, A>::load_aligned(buf);
}

template <class A>
xsimd::batch<float, A> widen_bf16_first_scalar(const std::uint16_t* p, std::ptrdiff_t n) noexcept {
  alignas(64) std::uint32_t buf[lanes_of<A>] = {};
  for (std::ptrdiff_t i = 0; i < n; ++i) buf[i] = std::uint32_t(p[i]) << 16;
  return xsimd::bitwise_cast<xsimd::batch<float, A>>(xsimd::batch<std::uint32_t, A>::load_aligned(buf));
}

template <class A>
void store_first_scalar(float* p, xsimd::batch<float, A> v, std::ptrdiff_t n) noexcept {
  alignas(64) float buf[lanes_of<A>];
  v.store_aligned(buf);
  for (std::ptrdiff_t i = 0; i < n; ++i) p[i] = buf[i];
}

template <class A>
void store_high_halves_first_scalar(std::uint16_t* p, xsimd::batch<std::uint32_t, A> u, std::ptrdiff_t n) noexcept {
  alignas(64) std::uint32_t buf[lanes_of<A>];
  u.store_aligned(buf);
  for (std::ptrdiff_t i = 0; i < n; ++i) p[i] = std::uint16_t(buf[i] >> 16);
}

#if defined(__AVX2__)
// AVX2 lane masks: lane i all ones for i < n.
inline __m256i first_lanes_avx2(std::ptrdiff_t n) noexcept {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

template <class A>
xsimd::batch<float, A> load_first(const float* p, std::ptrdiff_t n) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), p);
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    return _mm256_maskload_ps(p, first_lanes_avx2(n));
  } else
#endif
  {
    return load_first_scalar<A>(p, n);
  }
}

template <class A>
xsimd::batch<float, A> widen_bf16_first(const std::uint16_t* p, std::ptrdiff_t n) noexcept {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m256i h = _mm256_maskz_loadu_epi16(__mmask16((1u << n) - 1u), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else
#endif
  {
    return widen_bf16_first_scalar<A>(p, n);
  }
}

template <class A>
void store_first(float* p, xsimd::batch<float, A> v, std::ptrdiff_t n) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1u), v);
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    _mm256_maskstore_ps(p, first_lanes_avx2(n), v);
  } else
#endif
  {
    store_first_scalar<A>(p, v, n);
  }
}

template <class A>
void store_high_halves_first(std::uint16_t* p, xsimd::batch<std::uint32_t, A> u, std::ptrdiff_t n) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    _mm512_mask_cvtepi32_storeu_epi16(p, __mmask16((1u << n) - 1u), _mm512_srli_epi32(u, 16));
  } else
#endif
  {
    store_high_halves_first_scalar<A>(p, u, n);
  }
}

}  // namespace tpp::arch
