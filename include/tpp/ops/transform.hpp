#pragma once
// Data-movement transforms: transpose, and VNNI packing / unpacking for the bf16 and int8 dot products.
//
// transpose: out (N, M) = in (M, N)^T, out(j, i) = in(i, j), for any element type of 1, 2, 4 or 8 bytes
//   (fp32, bf16, int8, ...), bit patterns copied unchanged (NaN payloads too). Any shape and ld; in and
//   out must not overlap (checked exactly, strided views included: an in-place transpose throws).
//   Cache-blocked in 64 x 64 tiles (128 x 128 for 1-byte); when an ld is near a multiple of 4 KiB (16 rows
//   would share a few L1 sets), each 128 x 128 tile goes through a contiguous stack buffer (<= 74 KiB).
//   Inside a tile, register-blocked SIMD kernels, and smaller ones for the edge bands:
//     4-byte: 16x16 (AVX-512F), 8x8 (AVX), 4x4 (128-bit: SSE2 / NEON, xsimd zips), scalar
//     2-byte: 16x16 (AVX-512F, widened to 32-bit lanes), 8x8 (128-bit zips), scalar
//     1-byte: 16x16 (128-bit zips), scalar
//     8-byte and TPP_NO_SIMD: scalar (still tiled)
//
// VNNI-G packing (G = 2: vdpbf16ps, LIBXSMM bf16 BRGEMM; G = 4: vpdpbusd, int8 BRGEMM): for a (K, N) matrix
// B, groups of G consecutive rows are interleaved so that the G values of one column that a dot-product
// instruction consumes together are adjacent:
//     packed[k / G][n][k % G] = B[k][n]
//   as a view: out (ceil(K/G), G N), out(k / G, G n + k % G) = in(k, n), i.e. with ld = G N the flat index
//   (k / G) G N + G n + k % G. When K is not a multiple of G, the missing rows of the last group are zero
//   (all-zero bits: +0 for bf16, 0 for int8): out(K / G, G n + r) = 0 for K % G <= r < G.
//   Element types: G = 2 for any 16-bit type (bf16, int16, fp16 bits), G = 4 for any 8-bit type
//   (int8, uint8). unpack is the exact inverse: in (ceil(K/G), G N) -> out (K, N), the padding ignored.
//   SIMD: VNNI-2 via 16 -> 32-bit widening (arch/convert.hpp) at simd::default_arch; VNNI-4 with AVX-512F or
//   AVX2 byte widening / narrowing; scalar otherwise.
//
// No policy parameter: these ops copy bits and multiply nothing, so a policy would have nothing to act on.
//
// API (kernel objects made for a shape validate their views on every call; free functions for one-offs):
//   transpose_kernel<T>(rows, cols)(in, out);              transpose(in, out);
//   vnni_pack_kernel<G, T>(k, n)(in, out);                 vnni_pack<G>(in, out);
//   vnni_unpack_kernel<G, T>(k, n)(in, out);               vnni_unpack<G>(in, out);
//   vnni_rows(k, G) = ceil(k / G)
// Input views may be mat<T> or mat<const T>. Single-threaded.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../arch/convert.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp {

// Rows of a VNNI-G packed matrix for k unpacked rows.
constexpr index_t vnni_rows(index_t k, int group) noexcept { return (k + group - 1) / group; }

namespace detail::transform_impl {

// ---- transpose kernels: B x B blocks, in rows ldi elements apart, out rows ldo apart --------------------

#if defined(__SSE2__)
using arch128 = xsimd::sse2;
#elif defined(__ARM_NEON) && defined(__aarch64__)
using arch128 = xsimd::neon64;
#elif defined(__ARM_NEON)
using arch128 = xsimd::neon;
#else
using arch128 = void;
#endif
inline constexpr bool have128 = simd::enabled && !std::is_void_v<arch128>;
#if defined(__AVX512F__)
inline constexpr bool have_avx512 = simd::enabled;
#else
inline constexpr bool have_avx512 = false;
#endif
#if defined(__AVX__)
inline constexpr bool have_avx = simd::enabled;
#else
inline constexpr bool have_avx = false;
#endif

template <std::size_t S>
using word = std::conditional_t<S == 1, std::uint8_t, std::conditional_t<S == 2, std::uint16_t, std::uint32_t>>;

// The largest block kernel for S-byte elements smaller than `below` (1: scalar).
template <std::size_t S>
constexpr index_t next_block(index_t below) noexcept {
  if ((S == 4 || S == 2) && have_avx512 && 16 < below) return 16;
  if (S == 4 && have_avx && 8 < below) return 8;
  if (S == 4 && have128 && 4 < below) return 4;
  if (S == 2 && have128 && 8 < below) return 8;
  if (S == 1 && have128 && 16 < below) return 16;
  return 1;
}

// 128-bit arch: log2(N) rounds of perfect shuffles (zip of row i with row i + N/2) transpose N x N lanes.
template <class U>
void zip_block(const U* in, index_t ldi, U* out, index_t ldo) noexcept {
  if constexpr (!std::is_void_v<arch128>) {
    using B = xsimd::batch<U, arch128>;
    constexpr std::size_t N = B::size;
    B r[N], s[N];
    for (std::size_t i = 0; i < N; ++i) r[i] = B::load_unaligned(in + index_t(i) * ldi);
    for (std::size_t h = 1; h < N; h *= 2) {
      for (std::size_t i = 0; i < N / 2; ++i) {
        s[2 * i] = xsimd::zip_lo(r[i], r[i + N / 2]);
        s[2 * i + 1] = xsimd::zip_hi(r[i], r[i + N / 2]);
      }
      for (std::size_t i = 0; i < N; ++i) r[i] = s[i];
    }
    for (std::size_t i = 0; i < N; ++i) r[i].store_unaligned(out + index_t(i) * ldo);
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

inline void block16x16_32(const void* in, index_t ldi, void* out, index_t ldo) noexcept {
  const float* p = static_cast<const float*>(in);
  float* q = static_cast<float*>(out);
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(p + i * ldi);
  transpose16(r);
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(q + i * ldo, r[i]);
}

// 16-bit elements: widened to 32-bit lanes, transposed, narrowed (bit patterns unchanged).
inline void block16x16_16(const void* in, index_t ldi, void* out, index_t ldo) noexcept {
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
inline void block8x8_32(const void* in, index_t ldi, void* out, index_t ldo) noexcept {
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

template <class T, index_t B>
void block(const T* in, index_t ldi, T* out, index_t ldo) noexcept {
  constexpr std::size_t S = sizeof(T);
  if constexpr (S == 4 && B == 16) {
#if defined(__AVX512F__)
    block16x16_32(in, ldi, out, ldo);
#endif
  } else if constexpr (S == 2 && B == 16) {
#if defined(__AVX512F__)
    block16x16_16(in, ldi, out, ldo);
#endif
  } else if constexpr (S == 4 && B == 8) {
#if defined(__AVX__)
    block8x8_32(in, ldi, out, ldo);
#endif
  } else if constexpr (std::is_same_v<T, float>) {
    zip_block<float>(in, ldi, out, ldo);
  } else {
    using U = word<S>;  // vector loads and stores may alias any type
    zip_block<U>(reinterpret_cast<const U*>(in), ldi, reinterpret_cast<U*>(out), ldo);
  }
}

// A (rows, cols) rectangle: B x B blocks, then the right and bottom bands with the next smaller kernel.
template <class T, index_t B>
void rect(const T* in, index_t ldi, T* out, index_t ldo, index_t rows, index_t cols) noexcept {
  if constexpr (B == 1) {
    for (index_t j = 0; j < cols; ++j)
      for (index_t i = 0; i < rows; ++i) out[j * ldo + i] = in[i * ldi + j];
  } else {
    const index_t mb = rows - rows % B, nb = cols - cols % B;
    for (index_t i = 0; i < mb; i += B)
      for (index_t j = 0; j < nb; j += B) block<T, B>(in + i * ldi + j, ldi, out + j * ldo + i, ldo);
    constexpr index_t next = next_block<sizeof(T)>(B);
    if (nb < cols) rect<T, next>(in + nb, ldi, out + nb * ldo, ldo, rows, cols - nb);
    if (mb < rows) rect<T, next>(in + mb * ldi, ldi, out + mb, ldo, rows - mb, nb);
  }
}

// Whether rows ld bytes apart crowd into few L1 sets (a stride near a multiple of 4 KiB): then the 16 rows
// a block kernel loads or stores compete for 8 ways. Counts the distinct 64-byte sets of 16 rows.
inline bool crowded(index_t ld_bytes) noexcept {
  if (ld_bytes < 512) return false;
  std::uint64_t sets = 0;
  for (index_t i = 0; i < 16; ++i) sets |= std::uint64_t(1) << (((i * ld_bytes) >> 6) & 63);
  return std::popcount(sets) < 8;
}

template <class T>
void transpose(const T* in, index_t ldi, T* out, index_t ldo, index_t rows, index_t cols) noexcept {
  constexpr index_t tile = sizeof(T) == 1 ? 128 : 64;  // 1-byte: longer row pieces (2x at 1024 x 1024)
  constexpr index_t top = next_block<sizeof(T)>(tile + 1);
  if (crowded(ldo * index_t(sizeof(T))) || crowded(ldi * index_t(sizeof(T)))) {
    // Transpose each tile into a contiguous buffer with a conflict-free ld, then copy its rows out
    // (3x faster at 1024 x 1024 fp32 on Zen 4).
    constexpr index_t bt = sizeof(T) == 8 ? 64 : 128;  // <= 74 KiB of stack
    constexpr index_t ldb = bt + 64 / index_t(sizeof(T));
    alignas(64) unsigned char raw[bt * ldb * sizeof(T)];  // uninitialised: T is trivially copyable
    T* buf = reinterpret_cast<T*>(raw);
    for (index_t i = 0; i < rows; i += bt)
      for (index_t j = 0; j < cols; j += bt) {
        const index_t m = std::min(bt, rows - i), n = std::min(bt, cols - j);
        rect<T, top>(in + i * ldi + j, ldi, buf, ldb, m, n);
        for (index_t r = 0; r < n; ++r)
          std::memcpy(static_cast<void*>(out + (j + r) * ldo + i), buf + r * ldb, std::size_t(m) * sizeof(T));
      }
    return;
  }
  for (index_t i = 0; i < rows; i += tile)
    for (index_t j = 0; j < cols; j += tile)
      rect<T, top>(in + i * ldi + j, ldi, out + j * ldo + i, ldo, std::min(tile, rows - i), std::min(tile, cols - j));
}

// ---- VNNI ---------------------------------------------------------------------------------------------

// One group of G input rows (x[g], nullptr = a zero padding row) -> one packed row o of G n elements.
template <int G, class T>
void pack_group(const T* const* x, T* o, index_t n) noexcept {
  index_t j = 0;
  if constexpr (G == 2 && simd::enabled) {
    using A = simd::default_arch;
    using u32 = xsimd::batch<std::uint32_t, A>;
    constexpr index_t W = simd::width<A>;
    auto* o32 = reinterpret_cast<std::uint32_t*>(o);  // stored through vector intrinsics (may alias)
    const auto* a = reinterpret_cast<const std::uint16_t*>(x[0]);
    const auto* b = reinterpret_cast<const std::uint16_t*>(x[1]);
    for (; j + W <= n; j += W) {
      const u32 lo = xsimd::bitwise_cast<u32>(arch::widen_bf16<A>(a + j)) >> 16;  // row k in the low half
      const u32 hi = b ? xsimd::bitwise_cast<u32>(arch::widen_bf16<A>(b + j)) : u32(0u);
      (lo | hi).store_unaligned(o32 + j);
    }
  }
#if defined(__AVX512F__)
  if constexpr (G == 4 && simd::enabled) {
    const __m128i zero = _mm_setzero_si128();
    for (; j + 16 <= n; j += 16) {
      __m512i w[4];
      for (int g = 0; g < 4; ++g)
        w[g] = _mm512_cvtepu8_epi32(x[g] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[g] + j)) : zero);
      const __m512i v = _mm512_or_si512(_mm512_or_si512(w[0], _mm512_slli_epi32(w[1], 8)),
                                        _mm512_or_si512(_mm512_slli_epi32(w[2], 16), _mm512_slli_epi32(w[3], 24)));
      _mm512_storeu_si512(o + 4 * j, v);
    }
  }
#elif defined(__AVX2__)
  if constexpr (G == 4 && simd::enabled) {
    const __m128i zero = _mm_setzero_si128();
    for (; j + 8 <= n; j += 8) {
      __m256i w[4];
      for (int g = 0; g < 4; ++g)
        w[g] = _mm256_cvtepu8_epi32(x[g] ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[g] + j)) : zero);
      const __m256i v = _mm256_or_si256(_mm256_or_si256(w[0], _mm256_slli_epi32(w[1], 8)),
                                        _mm256_or_si256(_mm256_slli_epi32(w[2], 16), _mm256_slli_epi32(w[3], 24)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 4 * j), v);
    }
  }
#endif
  for (; j < n; ++j)
    for (int g = 0; g < G; ++g) o[G * j + g] = x[g] ? x[g][j] : T{};
}

// The inverse: one packed row p of G n elements -> G output rows y[g] (nullptr = padding, not written).
template <int G, class T>
void unpack_group(const T* p, T* const* y, index_t n) noexcept {
  index_t j = 0;
  if constexpr (G == 2 && simd::enabled) {
    using A = simd::default_arch;
    using u32 = xsimd::batch<std::uint32_t, A>;
    constexpr index_t W = simd::width<A>;
    const auto* p32 = reinterpret_cast<const std::uint32_t*>(p);
    auto* a = reinterpret_cast<std::uint16_t*>(y[0]);
    auto* b = reinterpret_cast<std::uint16_t*>(y[1]);
    for (; j + W <= n; j += W) {
      const u32 v = u32::load_unaligned(p32 + j);
      arch::store_high_halves<A>(a + j, v << 16);
      if (b) arch::store_high_halves<A>(b + j, v);
    }
  }
#if defined(__AVX512F__)
  if constexpr (G == 4 && simd::enabled) {
    for (; j + 16 <= n; j += 16) {
      const __m512i v = _mm512_loadu_si512(p + 4 * j);
      const __m128i b[4] = {_mm512_cvtepi32_epi8(v), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8)),
                            _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 16)), _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 24))};
      for (int g = 0; g < 4; ++g)
        if (y[g]) _mm_storeu_si128(reinterpret_cast<__m128i*>(y[g] + j), b[g]);
    }
  }
#elif defined(__AVX2__)
  if constexpr (G == 4 && simd::enabled) {
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
  }
#endif
  for (; j < n; ++j)
    for (int g = 0; g < G; ++g)
      if (y[g]) y[g][j] = p[G * j + g];
}

template <int G, class T>
void vnni_pack(mat<const T> in, mat<T> out) noexcept {
  for (index_t r = 0; r < out.rows; ++r) {
    const T* x[G];
    for (int g = 0; g < G; ++g) x[g] = G * r + g < in.rows ? in.row(G * r + g) : nullptr;
    pack_group<G>(x, out.row(r), in.cols);
  }
}

template <int G, class T>
void vnni_unpack(mat<const T> in, mat<T> out) noexcept {
  for (index_t r = 0; r < in.rows; ++r) {
    T* y[G];
    for (int g = 0; g < G; ++g) y[g] = G * r + g < out.rows ? out.row(G * r + g) : nullptr;
    unpack_group<G>(in.row(r), y, out.cols);
  }
}

template <class T>
constexpr bool movable = std::is_trivially_copyable_v<T> && !std::is_const_v<T> &&
                         (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);


}  // namespace detail::transform_impl

// out (cols, rows) = in (rows, cols)^T for a shape fixed at construction.
template <class T>
class transpose_kernel {
 public:
  static_assert(detail::transform_impl::movable<T>,
                "tpp: transpose needs a trivially copyable, non-const element type of 1, 2, 4 or 8 bytes");

  transpose_kernel(index_t rows, index_t cols) : rows_(rows), cols_(cols) {
    detail::check_sizes("transpose", rows, cols, "rows", "cols");
  }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }

  void operator()(mat<const T> in, mat<T> out) const {
    namespace ti = detail::transform_impl;
    detail::check_mat(in, "transpose", "in");
    detail::check_mat(out, "transpose", "out");
    detail::check_shape(in, rows_, cols_, "transpose", "in");
    detail::check_shape(out, cols_, rows_, "transpose", "out");
    detail::require(!detail::views_overlap(in, out), "transpose", "out", "overlaps in (in-place transpose is not supported)");
    ti::transpose<T>(in.data, in.ld, out.data, out.ld, rows_, cols_);
  }

 private:
  index_t rows_, cols_;
};

// VNNI-G packing of a (k, n) matrix into (vnni_rows(k, G), G n); see the doc block for the layout.
template <int G, class T>
class vnni_pack_kernel {
 public:
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit elements) or 4 (8-bit elements)");
  static_assert(std::is_trivially_copyable_v<T> && !std::is_const_v<T> && sizeof(T) * G == 4,
                "tpp: VNNI-2 packs 16-bit elements (bf16), VNNI-4 packs 8-bit elements (int8, uint8)");

  vnni_pack_kernel(index_t k, index_t n) : k_(k), n_(n) { detail::check_sizes("vnni_pack", k, n, "k", "n"); }
  index_t k() const noexcept { return k_; }
  index_t n() const noexcept { return n_; }

  // in (k, n) -> out (vnni_rows(k, G), G n)
  void operator()(mat<const T> in, mat<T> out) const {
    namespace ti = detail::transform_impl;
    detail::check_mat(in, "vnni_pack", "in");
    detail::check_mat(out, "vnni_pack", "out");
    detail::check_shape(in, k_, n_, "vnni_pack", "in");
    detail::check_shape(out, vnni_rows(k_, G), G * n_, "vnni_pack", "out");
    detail::require(!detail::views_overlap(in, out), "vnni_pack", "out", "overlaps in");
    ti::vnni_pack<G, T>(in, out);
  }

 private:
  index_t k_, n_;
};

// The inverse: (vnni_rows(k, G), G n) -> (k, n); the zero padding of the last group is not read back.
template <int G, class T>
class vnni_unpack_kernel {
 public:
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit elements) or 4 (8-bit elements)");
  static_assert(std::is_trivially_copyable_v<T> && !std::is_const_v<T> && sizeof(T) * G == 4,
                "tpp: VNNI-2 unpacks 16-bit elements (bf16), VNNI-4 unpacks 8-bit elements (int8, uint8)");

  vnni_unpack_kernel(index_t k, index_t n) : k_(k), n_(n) {
    detail::check_sizes("vnni_unpack", k, n, "k", "n");
  }
  index_t k() const noexcept { return k_; }
  index_t n() const noexcept { return n_; }

  // in (vnni_rows(k, G), G n) -> out (k, n)
  void operator()(mat<const T> in, mat<T> out) const {
    namespace ti = detail::transform_impl;
    detail::check_mat(in, "vnni_unpack", "in");
    detail::check_mat(out, "vnni_unpack", "out");
    detail::check_shape(in, vnni_rows(k_, G), G * n_, "vnni_unpack", "in");
    detail::check_shape(out, k_, n_, "vnni_unpack", "out");
    detail::require(!detail::views_overlap(in, out), "vnni_unpack", "out", "overlaps in");
    ti::vnni_unpack<G, T>(in, out);
  }

 private:
  index_t k_, n_;
};

// One-off calls; TI may be const-qualified, TO must be the same element type.
template <class TI, class TO>
void transpose(mat<TI> in, mat<TO> out) {
  static_assert(std::is_same_v<std::remove_const_t<TI>, TO>, "tpp: transpose copies elements: in and out types must match");
  detail::check_mat(in, "transpose", "in");
  transpose_kernel<TO>(in.rows, in.cols)(in, out);
}

template <int G, class TI, class TO>
void vnni_pack(mat<TI> in, mat<TO> out) {
  static_assert(std::is_same_v<std::remove_const_t<TI>, TO>, "tpp: vnni_pack: in and out types must match");
  detail::check_mat(in, "vnni_pack", "in");
  vnni_pack_kernel<G, TO>(in.rows, in.cols)(in, out);
}

// k = out.rows, n = out.cols.
template <int G, class TI, class TO>
void vnni_unpack(mat<TI> in, mat<TO> out) {
  static_assert(std::is_same_v<std::remove_const_t<TI>, TO>, "tpp: vnni_unpack: in and out types must match");
  detail::check_mat(out, "vnni_unpack", "out");
  vnni_unpack_kernel<G, TO>(out.rows, out.cols)(in, out);
}

}  // namespace tpp
