#pragma once
// Low-precision dot-product instructions xsimd 8.1 does not have, each with its scalar twin (the
// instruction's definition, one 32-bit lane), which the tests hold the instruction to:
//
//   dot_bf16_pairs(acc, a, b)    AVX512_BF16 vdpbf16ps: each 32-bit lane of a and b holds two bf16 (the
//                                lower 16 bits the first); acc += a.hi * b.hi, then += a.lo * b.lo, each
//                                add rounded to nearest even, denormal inputs and results flushed to zero
//   dot_u8s8_quads(acc, a, b)    AVX512_VNNI vpdpbusd: each 32-bit lane of a holds four uint8, of b four
//                                int8; acc += the sum of the four products, in int32 (wrapping)
//
// The vector forms take and return batch<float> (bf16) or batch<int32> (int8) at avx512 archs; they
// exist only where the compiler targets the instruction (has_dot_bf16 / has_dot_u8s8).

#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#if defined(__AVX512BF16__) || defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

namespace tpp::arch {

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
inline constexpr bool has_dot_bf16 = true;
#else
inline constexpr bool has_dot_bf16 = false;
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
inline constexpr bool has_dot_u8s8 = true;
#else
inline constexpr bool has_dot_u8s8 = false;
#endif

namespace detail {

inline float flush_denormal(float x) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
  std::memcpy(&x, &u, 4);
  return x;
}

inline float bf16_half(std::uint32_t pair, int half) noexcept {
  const std::uint32_t u = half == 0 ? pair << 16 : pair & 0xffff0000u;
  float x;
  std::memcpy(&x, &u, 4);
  return flush_denormal(x);
}

}  // namespace detail

// vdpbf16ps on one lane. The bf16 products are exact in fp32; each add rounds (the current fp32 mode,
// nearest even, is what the instruction always uses).
inline float dot_bf16_pair(float acc, std::uint32_t a, std::uint32_t b) noexcept {
  using detail::bf16_half;
  using detail::flush_denormal;
  float t = flush_denormal(acc);
  t = flush_denormal(t + bf16_half(a, 1) * bf16_half(b, 1));
  t = flush_denormal(t + bf16_half(a, 0) * bf16_half(b, 0));
  return t;
}

// vpdpbusd on one lane.
inline std::int32_t dot_u8s8_quad(std::int32_t acc, std::uint32_t a, std::uint32_t b) noexcept {
  std::uint32_t sum = std::uint32_t(acc);
  for (int q = 0; q < 4; ++q)
    sum += std::uint32_t(std::int32_t(std::uint8_t(a >> (8 * q))) * std::int32_t(std::int8_t(b >> (8 * q))));
  return std::int32_t(sum);
}

// The vector forms, for the arch where the compiler targets the instruction (has_dot_bf16 /
// has_dot_u8s8); instantiating one elsewhere is a compile error.
template <class A>
xsimd::batch<float, A> dot_bf16_pairs(xsimd::batch<float, A> acc, xsimd::batch<float, A> a,
                                      xsimd::batch<float, A> b) noexcept {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  static_assert(xsimd::batch<float, A>::size == 16, "tpp: dot_bf16_pairs needs a 512-bit arch");
  return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b));
#else
  static_assert(sizeof(A) == 0, "tpp: dot_bf16_pairs needs AVX512_BF16 (check arch::has_dot_bf16)");
  (void)a, (void)b;
  return acc;
#endif
}

template <class A>
xsimd::batch<std::int32_t, A> dot_u8s8_quads(xsimd::batch<std::int32_t, A> acc, xsimd::batch<std::int32_t, A> a,
                                             xsimd::batch<std::int32_t, A> b) noexcept {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  static_assert(xsimd::batch<std::int32_t, A>::size == 16, "tpp: dot_u8s8_quads needs a 512-bit arch");
  return _mm512_dpbusd_epi32(acc, a, b);
#else
  static_assert(sizeof(A) == 0, "tpp: dot_u8s8_quads needs AVX512_VNNI (check arch::has_dot_u8s8)");
  (void)a, (void)b;
  return acc;
#endif
}

}  // namespace tpp::arch
