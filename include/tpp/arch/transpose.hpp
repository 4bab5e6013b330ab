#pragma once
// Square block transposes: out[j ldo + i] = in[i ldi + j] for i, j < B, rows ldi (in) and ldo (out) elements
// apart, bit patterns copied unchanged (NaN payloads too). The instruction forms this build has:
//   4-byte  16x16  AVX-512F: 64 shuffles on 16 zmm rows (unpack, then 128-bit lane shuffles)
//            8x8   AVX: unpack, shuffle and permute2f128 on 8 ymm rows
//            4x4   128-bit (SSE2, NEON): log2(4) rounds of xsimd zips
//   2-byte  16x16  AVX-512F: rows widened to 32-bit lanes, the 4-byte 16x16, narrowed back
//            8x8   128-bit zips
//   1-byte  16x16  128-bit zips
//   transpose_block_native<S, B>   whether this build has an instruction form for S-byte elements, B x B
//   transpose_block<U, B>(in, ldi, out, ldo)
//                                  that form, else the twin. U: float, or the unsigned word of the element
//                                  size (std::uint8_t, std::uint16_t, std::uint32_t); the 128-bit zips
//                                  work in U's domain (float or integer unpacks)
//   transpose_block_scalar<U, B>   the twin the tests hold every form to: the element loop
//   arch128                        the 128-bit xsimd arch of the zips (sse2, neon64, neon), or void

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

#if defined(__SSE2__)
using arch128 = xsimd::sse2;
#elif defined(__ARM_NEON) && defined(__aarch64__)
using arch128 = xsimd::neon64;
#elif defined(__ARM_NEON)
using arch128 = xsimd::neon;
#else
using arch128 = void;
#endif

#if defined(__AVX512F__)
inline constexpr bool transpose_avx512 = true;
#else
inline constexpr bool transpose_avx512 = false;
#endif
#if defined(__AVX__)
inline constexpr bool transpose_avx = true;
#else
inline constexpr bool transpose_avx = false;
#endif

template <std::size_t S, std::ptrdiff_t B>
inline constexpr bool transpose_block_native = (B == 16 && (S == 4 || S == 2) && transpose_avx512) ||
                                               (B == 8 && S == 4 && transpose_avx) ||
                                               (std::ptrdiff_t(S) * B == 16 && !std::is_void_v<arch128>);

template <class U, std::ptrdiff_t B>
void transpose_block_scalar(const U* in, std::ptrdiff_t ldi, U* out, std::ptrdiff_t ldo) noexcept {
  for (std::ptrdiff_t i = 0; i < B; ++i)
    for (std::ptrdiff_t j = 0; j < B; ++j) out[j * ldo + i] = in[i * ldi + j];
}

namespace detail {

// 128-bit arch: log2(N) rounds of perfect shuffles (zip of row i with row i + N/2) transpose N x N lanes.
template <class U>
void transpose_zip(const U* in, std::ptrdiff_t ldi, U* out, std::ptrdiff_t ldo) noexcept {
  if constexpr (!std::is_void_v<arch128>) {
    using B = xsimd::batch<U, arch128>;
    constexpr std::size_t N = B::size;
    B r[N], s[N];
    for (std::size_t i = 0; i < N; ++i) r[i] = B::load_unaligned(in + std::ptrdiff_t(i) * ldi);
    for (std::size_t h = 1; h < N; h *= 2) {
      for (std::size_t i = 0; i < N / 2; ++i) {
        s[2 * i] = xsimd::zip_lo(r[i], r[i + N / 2]);
        s[2 * i + 1] = xsimd::zip_hi(r[i], r[i + N / 2]);
      }
      for (std::size_t i = 0; i < N; ++i) r[i] = s[i];
    }
    for (std::size_t i = 0; i < N; ++i) r[i].store_unaligned(out + std::ptrdiff_t(i) * ldo);
  }
}

#if defined(__AVX512F__)
// 16 x 16 32-bit lanes in r[0..16), transposed in place: 64 shuffles.
inline void transpose16(__m512* r) noexcept {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {  // 2x2 blocks of elements
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // 4x4 within each 128-bit lane
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int g = 0; g < 16; g += 8)  // 128-bit lanes across rows i and i + 4
    for (int i = 0; i < 4; ++i) {
      t[g + i] = _mm512_shuffle_f32x4(r[g + i], r[g + i + 4], 0x88);
      t[g + i + 4] = _mm512_shuffle_f32x4(r[g + i], r[g + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {  // and across rows i and i + 8
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

inline void transpose_16x16_32(const void* in, std::ptrdiff_t ldi, void* out, std::ptrdiff_t ldo) noexcept {
  const float* p = static_cast<const float*>(in);
  float* q = static_cast<float*>(out);
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(p + i * ldi);
  transpose16(r);
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(q + i * ldo, r[i]);
}

// 16-bit elements: widened to 32-bit lanes, transposed, narrowed (bit patterns unchanged).
inline void transpose_16x16_16(const void* in, std::ptrdiff_t ldi, void* out, std::ptrdiff_t ldo) noexcept {
  const std::uint16_t* p = static_cast<const std::uint16_t*>(in);
  std::uint16_t* q = static_cast<std::uint16_t*>(out);
  __m512 r[16];
  for (int i = 0; i < 16; ++i)
    r[i] = _mm512_castsi512_ps(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i * ldi))));
  transpose16(r);
  for (int i = 0; i < 16; ++i)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i * ldo), _mm512_cvtepi32_epi16(_mm512_castps_si512(r[i])));
}
#endif

#if defined(__AVX__)
inline void transpose_8x8_32(const void* in, std::ptrdiff_t ldi, void* out, std::ptrdiff_t ldo) noexcept {
  const float* p = static_cast<const float*>(in);
  float* q = static_cast<float*>(out);
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(p + i * ldi);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(q + i * ldo, t[i]);
}
#endif

}  // namespace detail

template <class U, std::ptrdiff_t B>
void transpose_block(const U* in, std::ptrdiff_t ldi, U* out, std::ptrdiff_t ldo) noexcept {
  constexpr std::size_t S = sizeof(U);
  static_assert(std::is_same_v<U, float> || std::is_same_v<U, std::uint8_t> || std::is_same_v<U, std::uint16_t> ||
                    std::is_same_v<U, std::uint32_t>,
                "tpp: transpose_block moves float or unsigned 8/16/32-bit words");
#if defined(__AVX512F__)
  if constexpr (B == 16 && S == 4) {
    detail::transpose_16x16_32(in, ldi, out, ldo);
  } else if constexpr (B == 16 && S == 2) {
    detail::transpose_16x16_16(in, ldi, out, ldo);
  } else
#endif
#if defined(__AVX__)
  if constexpr (B == 8 && S == 4) {
    detail::transpose_8x8_32(in, ldi, out, ldo);
  } else
#endif
  if constexpr (std::ptrdiff_t(S) * B == 16 && !std::is_void_v<arch128>) {
    detail::transpose_zip<U>(in, ldi, out, ldo);
  } else {
    transpose_block_scalar<U, B>(in, ldi, out, ldo);
  }
}

}  // namespace tpp::arch
