#pragma once
// Quantization of 2D views to the low-precision formats of the seed papers, and back.
//
// Variants (x an (M, N) fp32 or bf16 view; P(a, b) = Policy::mul(a, b); rne = round to nearest, ties to even;
// sat = clamp to the code type's range [lo, hi]):
//   int8         quantize    q = sat(rne(P(x, 1 / s)) + z)             fp32 / bf16 -> int8 / uint8
//                dequantize  y = P(q - z, s)                           int8 / uint8 -> fp32 / bf16
//                requantize  q = sat(rne(P(float(acc), s)) + z)        int32 (a GEMM's sum) -> int8 / uint8
//     s, z per tensor, per row or per column (quant_params: spans of 1, M or N scales and zero points; no
//     zero points = all 0). 1 / s is a correctly rounded fp32 division, once per scale. float(acc) is exact
//     for |acc| <= 2^24 and rounds to nearest even beyond. compute_quant_params picks s and z from the data:
//       symmetric  (int8 only)  s = max|x| / 127, z = 0          (codes -127..127; -128 only by saturation)
//       asymmetric              lo = min(min x, 0), hi = max(max x, 0), s = (hi - lo) / (hi_q - lo_q),
//                               z = sat(rne(lo_q - lo / s))      (0 is exactly representable)
//     over each group's finite values (NaN and Inf are ignored); s is computed in double, rounded to fp32 and
//     raised to at least 2^-126 (so 1 / s is finite); a group of zeros gets s = 1. Every x of the group's
//     range then comes back within s / 2 (plus the fp32 and policy roundings: test/ops/quantize.cpp).
//   fixed point  quantize_fixed    q = sat(round(x 2^FL))   fp32 / bf16 -> int16;  dequantize_fixed y = q 2^-FL
//     <IL, FL> as in Gupta et al. 2015: a 16-bit word, IL integer bits including the sign, FL = 16 - IL
//     fractional bits (IL + FL must be 16, IL in [1, 16]); values [-2^(IL-1), 2^(IL-1) - 2^-FL] in steps
//     of 2^-FL. round = rne, or stochastic: with r the element's 16 random bits (below) and
//     S = trunc(clamp(x 2^(FL+16), -2^31, 2^31 - 2^16)) (t = x 2^FL to 16 fractional bits, toward zero),
//     q = floor((S + r) / 2^16): t rounds up with probability (S mod 2^16) / 2^16, within 2^-16 of frac(t):
//     unbiased to within 2^-16 of a step, and an integer t (a representable value) stays. Integer
//     arithmetic throughout (one 32-bit add and an arithmetic shift); NaN gives 0. The scalings by powers of
//     two are exact (no Policy product).
//   bf16         round_to_bf16     rne (to_bf16_rne's bits) or stochastic: the fp32 bit pattern plus the
//     element's 16 random bits r, truncated to its upper half, so |x| rounds away from zero with probability
//     (low 16 bits of x) / 2^16: exactly unbiased on the bf16 grid, denormals included; the result is
//     always one of the two bf16 values bracketing x (x itself when x is a bf16). NaN stays a (quiet) NaN,
//     +-Inf and +-0 stay. A finite x never becomes Inf unless |x| is above the largest finite bf16
//     (0x1.fep127), whose upper neighbour on the grid is Inf: then Inf with probability
//     (|x| - 0x1.fep127) / 2^120 (round to nearest gives Inf from 0x1.ffp127 on).
//   bfp          block floating point (LightNorm): each row splits into blocks of B consecutive values (the
//     last block of a row may be shorter); a block shares one exponent E and each value keeps a sign and an
//     m-bit magnitude k in [0, 2^m - 1]: x ~ +-k 2^(E - m + 1), the step 2^(E - m + 1).
//       nearest (default): k = rne(|x| / step), E = the exponent of the block's largest finite |x| rounded
//       to m significant bits (so the largest k fits m bits): |error| <= step / 2 for every finite value;
//       truncate: k = floor(|x| / step), E = the exponent of the largest finite |x|: |error| < step.
//     E >= m - 150 (the step is at least the smallest denormal, so every code decodes exactly); a block
//     whose rounded maximum reaches 2^128 keeps E = 127 and saturates k at 2^m - 1 (error < one step).
//     bfp_quantize -> (mantissas: signed codes +-k, int8 for m <= 7 or int16 for m <= 15, (M, N);
//     exponents: int16 E, (M, bfp_blocks(N, B))); bfp_dequantize; bfp_fake_quant fp32 / bf16 -> fp32 / bf16
//     in one pass (m <= 24). Non-finite values: fake-quant passes them through; quantize codes Inf as
//     +-(2^m - 1) and NaN as 0. Sign of zero: +-0 in, +-0 out (fake-quant), code 0.
//   pow2         power-of-two quantization (SmartDeal): y = 0 or +-2^k, k in [kmin, kmax] ([-126, 127]):
//     nearest in value (ties to the larger power): k = e + 1 when |x| >= 1.5 2^e (|x| in [2^e, 2^(e+1))),
//     else e; clamped to [kmin, kmax] (Inf saturates to 2^kmax); y = +-0 when |x| < max(zero_threshold,
//     2^(kmin - 1)) (2^(kmin-1): the midpoint between 0 and 2^kmin). NaN stays NaN; the sign is x's.
//     pow2_quantize: fake-quant; pow2_encode / pow2_decode: int8 codes c = 0 or +-(k - kmin + 1)
//     (needs kmax - kmin <= 126; NaN encodes as 0; decode clamps |c| to the range).
//   binary       binarize: b = -1 where x < 0, +1 elsewhere (+-0 and NaN give +1), scale alpha = mean |x| per
//     row; ternarize: delta = threshold * mean|x| (fp32, per row), t = +-1 where |x| > delta (sign of x),
//     else 0; alpha = mean |x| over the nonzero t (0 if none). mean|x| = float(S / n), S the row's sum of |x|
//     in fp32 blocks of 64 and double across them (NaN propagates into alpha). Bit-packed: 64 values per
//     uint64, value j of a row at bit j % 64 of word j / 64, rows of packed_words(N) words (padding bits 0):
//     binary: one plane, bit 1 = -1; ternary: a sign plane (bit 1 = -1) and a nonzero plane. unpack_binary /
//     unpack_ternary: y = +-alpha (or +-1 without scales), 0; sign flips only, no products.
//     binary_gemm: C(i, j) = Σ_k a_ik b_kj, a, b in {-1, +1}, from A's packed rows (M, words(K)) and B
//     packed along K per column (B^T's rows, (N, words(K))): K - 2 popcount(a xor b), exactly (int32); the
//     bits past K in the last word are masked, whatever they hold. AVX-512 VPOPCNTDQ (vpopcntq over 8 words)
//     where __AVX512VPOPCNTDQ__ is defined, else std::popcount per word; 4 x 4 register tiles.
//
// Stochastic rounding draws r = rounding_bits(seed, row + row_offset, col + col_offset), 16 bits per
// element from the counter-based hash of dropout (ops/unary.hpp: h = dropout_hash(dropout_row_key(seed ^
// rounding_stream, row), counter)): columns are taken in groups of 32, and columns c and c + 16 of a group
// share the hash of counter ((c >> 5) << 4) | (c & 15), c taking its low half and c + 16 its high half. Bits are
// keyed by the element's position in the logical tensor, so results are reproducible for a seed and
// independent of tiling, threading and SIMD width (a tile passes its offsets and gets the whole tensor's
// bits); different elements draw different bits (columns c and c + 16 the two halves of one hash, whose
// independence the tests check as they do neighbours'). One hash per two elements: the hash (four 32-bit
// multiplies a vector) is what bounds these kernels (fixed-point stochastic rounding went from 0.54x to
// memcpy's speed with it and integer rounding). The constant rounding_stream separates the stream from
// dropout's: dropout and rounding with the same seed draw unrelated bits.
//
// Policy products: only the int8 family's scalings, P(x, 1 / s), P(q - z, s) and P(acc, s) (scalar mul in
// scalar code, the bit-identical SIMD mul in vector code). Every other scaling is by a power of two, exact.
//
// Special values (int8, fixed point): NaN quantizes to the zero point (0 for fixed point), +-Inf and
// everything beyond the range saturate. Scales must be finite and >= 2^-126, zero points within the code
// type's range; a group's NaN / Inf do not enter compute_quant_params.
//
// Rounding assumes the default floating-point environment (round to nearest, no flush-to-zero).
//
// Dispatch: SIMD at simd::default_arch on the lanes of ops/detail/elementwise.hpp, a partial vector for each
// row's tail; scalar loops with TPP_NO_SIMD. Single-threaded; safe inside a caller's parallel region
// (per-thread scratch, slots 14 and 15). An output may be the very same view as an input of the same element
// type (in-place: the fake-quant ops); any other overlap of an output with an input or another output throws.
// Streaming stores (core/stream.hpp): the fake-quant ops bfp_fake_quant and pow2_quantize write an fp32
// output past the caches when x and y together hold at least tpp::stream_threshold bytes (default 16 MiB),
// where its rows start on vector boundaries (x86 AVX / AVX-512) and, for BFP, B is a multiple of the
// vector width.
//
// API (kernel objects validate their arguments once; free functions make one and call it):
//   compute_quant_params<TQ>(x, mode, granularity, scale, zero_point)
//   quantize_kernel<P, TI, TQ> k(rows, cols);   k(x, quant_params, q);    quantize<P>(x, params, q)
//   dequantize_kernel<P, TQ, TO>;  k(q, quant_params, y);                  dequantize<P>(q, params, y)
//   requantize_kernel<P, TQ>;      k(acc, quant_params, q);                requantize<P>(acc, params, q)
//   fixed_quantize_kernel<TI> k(rows, cols, format, rounding, stochastic); quantize_fixed(...)
//   fixed_dequantize_kernel<TO>;   dequantize_fixed(q, y, format)
//   bf16_round_kernel k(rows, cols, rounding, stochastic);                 round_to_bf16(x, y, rounding, sr)
//   bfp_quantize_kernel<TI, TM>, bfp_dequantize_kernel<TM, TO>, bfp_fake_quant_kernel<TI, TO> (bfp_params)
//   pow2_quantize_kernel<TI, TO>, pow2_encode_kernel<TI>, pow2_decode_kernel<TO> (pow2_params)
//   binarize_kernel<TI>, ternarize_kernel<TI>, unpack_binary, unpack_ternary, binary_gemm_kernel

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/mat.hpp"
#include "../core/scratch.hpp"
#include "../core/stream.hpp"
#include "detail/elementwise.hpp"
#include "unary.hpp"

#if defined(__SSE2__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp {

enum class quant_granularity : std::uint8_t { per_tensor, per_row, per_col };
enum class quant_mode : std::uint8_t { symmetric, asymmetric };
enum class rounding : std::uint8_t { nearest_even, stochastic };

constexpr std::string_view name(quant_granularity g) noexcept {
  switch (g) {
    case quant_granularity::per_tensor: return "per_tensor";
    case quant_granularity::per_row: return "per_row";
    case quant_granularity::per_col: return "per_col";
  }
  return "invalid";
}

// The scales (and zero points) of an int8 quantization: 1, rows or cols values as the granularity says.
struct quant_params {
  quant_granularity granularity = quant_granularity::per_tensor;
  std::span<const float> scale;              // finite, >= 2^-126
  std::span<const std::int32_t> zero_point;  // empty (all 0) or one per scale, within the code type's range
};

// Where a view sits in the logical tensor whose stochastic rounding is defined, and the seed.
struct stochastic_params {
  std::uint64_t seed = 0;
  index_t row_offset = 0;  // >= 0
  index_t col_offset = 0;  // >= 0
};

// The 16 random bits of element (row, col) of the logical tensor (offsets applied by the caller; see the
// header: one hash serves columns c and c + 16 of each group of 32).
inline constexpr std::uint64_t rounding_stream = 0x9e3779b97f4a7c15ull;  // (the golden-ratio constant)

constexpr std::uint32_t rounding_bits(std::uint64_t seed, index_t row, index_t col) noexcept {
  const auto c = std::uint32_t(col);
  const std::uint32_t h = dropout_hash(dropout_row_key(seed ^ rounding_stream, std::uint64_t(row)), ((c >> 5) << 4) | (c & 15u));
  return (c & 16u) != 0 ? h >> 16 : h & 0xffffu;
}

// <IL, FL> fixed point in 16 bits: IL integer bits including the sign, FL fractional bits, IL + FL = 16.
struct fixed_point_format {
  int il = 4;
  int fl = 12;
};

struct bfp_params {
  index_t block = 16;     // B >= 1 values per shared exponent, along a row
  int mantissa_bits = 8;  // m: 1..7 (int8 codes), 1..15 (int16 codes), 1..24 (fake-quant)
  bool truncate = false;  // false: round to nearest even; true: toward zero
};

// Shared-exponent blocks of a row of cols values.
constexpr index_t bfp_blocks(index_t cols, index_t block) noexcept { return block > 0 ? (cols + block - 1) / block : 0; }

struct pow2_params {
  int kmin = -7;               // the smallest power, >= -126
  int kmax = 0;                // the largest power, kmin <= kmax <= 127
  float zero_threshold = 0.0f; // |x| below max(this, 2^(kmin-1)) gives 0; finite, >= 0
};

struct ternarize_params {
  float threshold = 0.7f;  // delta = threshold * mean|x| per row; finite, >= 0
};

// uint64 words of a bit-packed row of cols values.
constexpr index_t packed_words(index_t cols) noexcept { return (cols + 63) / 64; }

namespace detail::quant {

using V = simd::lane;
using io = lane_io<V>;
inline constexpr index_t W = io::width;
using VI = std::conditional_t<simd::enabled, simd::batch<std::int32_t>, std::int32_t>;
using VU = typename io::u32;

template <class T>
concept code8 = std::same_as<T, std::int8_t> || std::same_as<T, std::uint8_t>;
template <class T>
concept int_element = code8<T> || std::same_as<T, std::int16_t> || std::same_as<T, std::int32_t>;

inline constexpr float inf = std::numeric_limits<float>::infinity();
inline constexpr float min_scale = std::numeric_limits<float>::min();  // 2^-126

// ---- lane helpers: float and batch overloads ----

inline float round_even(float t) noexcept { return std::nearbyint(t); }
template <class A>
xsimd::batch<float, A> round_even(xsimd::batch<float, A> t) noexcept {
  return xsimd::nearbyint(t);
}
inline float floor(float t) noexcept { return std::floor(t); }
template <class A>
xsimd::batch<float, A> floor(xsimd::batch<float, A> t) noexcept {
  return xsimd::floor(t);
}
inline float copysign(float m, float s) noexcept { return std::copysign(m, s); }
template <class A>
xsimd::batch<float, A> copysign(xsimd::batch<float, A> m, xsimd::batch<float, A> s) noexcept {
  return xsimd::copysign(m, s);
}
// Integer-valued lanes (|t| < 2^31) to int32 and back.
inline std::int32_t to_i32(float t) noexcept { return std::int32_t(t); }
template <class A>
xsimd::batch<std::int32_t, A> to_i32(xsimd::batch<float, A> t) noexcept {
  return xsimd::to_int(t);
}
inline float to_f32(std::int32_t i) noexcept { return float(i); }
template <class A>
xsimd::batch<float, A> to_f32(xsimd::batch<std::int32_t, A> i) noexcept {
  return xsimd::to_float(i);
}
inline std::uint32_t as_u32(float x) noexcept { return std::bit_cast<std::uint32_t>(x); }
template <class A>
xsimd::batch<std::uint32_t, A> as_u32(xsimd::batch<float, A> x) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<std::uint32_t, A>>(x);
}
inline float as_f32(std::uint32_t u) noexcept { return std::bit_cast<float>(u); }
template <class A>
xsimd::batch<float, A> as_f32(xsimd::batch<std::uint32_t, A> u) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<float, A>>(u);
}
inline float pow2f(int e) noexcept { return std::bit_cast<float>(std::uint32_t(e + 127) << 23); }  // e in [-126, 127]
inline std::int32_t as_i32(std::uint32_t u) noexcept { return std::int32_t(u); }
inline std::uint32_t as_u32(std::int32_t i) noexcept { return std::uint32_t(i); }
template <class A>
xsimd::batch<std::uint32_t, A> as_u32(xsimd::batch<std::int32_t, A> i) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<std::uint32_t, A>>(i);
}
template <class A>
xsimd::batch<std::int32_t, A> as_i32(xsimd::batch<std::uint32_t, A> u) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<std::int32_t, A>>(u);
}

inline float hmax(float v) noexcept { return v; }
template <class A>
float hmax(xsimd::batch<float, A> v) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) return _mm512_reduce_max_ps(v);
#endif
  alignas(64) float b[W];
  v.store_aligned(b);
  float m = b[0];
  for (index_t k = 1; k < W; ++k) m = b[k] > m ? b[k] : m;
  return m;
}
inline float hmin(float v) noexcept { return v; }
template <class A>
float hmin(xsimd::batch<float, A> v) noexcept {
  return -hmax(-v);
}
using lanes::hsum;

// Bit k = lane k of a mask.
inline std::uint64_t lane_bits(bool m) noexcept { return m ? 1u : 0u; }
template <class A>
std::uint64_t lane_bits(xsimd::batch_bool<float, A> m) noexcept {
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
    alignas(64) float b[W];
    xsimd::select(m, xsimd::batch<float, A>(1.0f), xsimd::batch<float, A>(0.0f)).store_aligned(b);
    std::uint64_t r = 0;
    for (index_t k = 0; k < W; ++k) r |= std::uint64_t(b[k] != 0.0f) << k;
    return r;
  }
}

// ---- loads and stores of n <= W elements (n == W: a full vector) ----

// lane_io<V> and VI, dependent on T (so the branches for the other lane type are discarded).
template <class T>
using io_for = lane_io<std::conditional_t<sizeof(T) != 0, V, void>>;
template <class T>
using vi_for = std::conditional_t<sizeof(T) != 0, VI, void>;

template <class T>
V load(const T* p, index_t n) noexcept {
  if constexpr (float_element<T>) {
    if constexpr (W > 1)
      if (n < W) return io_for<T>::load_partial(p, n);
    return io_for<T>::load(p);
  } else if constexpr (W == 1) {
    return float(*p);
  } else {
#if defined(__AVX512F__) && !defined(TPP_NO_SIMD)
    if constexpr (std::is_base_of_v<xsimd::avx512f, typename V::arch_type> && sizeof(T) <= 2) {
      if (n == W) {  // vpmovsxbd / vpmovzxbd / vpmovsxwd
        const __m128i b8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m256i b16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        if constexpr (std::is_same_v<T, std::int8_t>) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b8));
        if constexpr (std::is_same_v<T, std::uint8_t>) return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b8));
        if constexpr (std::is_same_v<T, std::int16_t>) return _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(b16));
      }
    }
#endif
    alignas(64) std::int32_t b[W];
    if (n == W) {
      for (index_t k = 0; k < W; ++k) b[k] = std::int32_t(p[k]);
    } else {
      for (index_t k = 0; k < W; ++k) b[k] = k < n ? std::int32_t(p[k]) : 0;
    }
    return to_f32(vi_for<T>::load_aligned(b));
  }
}

template <class T>
void store(T* p, V v, index_t n) noexcept {
  if constexpr (W > 1)
    if (n < W) return io_for<T>::store_partial(p, v, n);
  io_for<T>::store(p, v);
}

// store(p, v, n), or a streaming store (core/stream.hpp) where stream (the op's detail::streams) and
// the vector is whole: fp32 outputs only.
template <class T>
void store_out(T* p, V v, index_t n, bool stream) noexcept {
  if (!detail::stream_whole(p, v, n, stream)) store(p, v, n);
}

// Integer lanes (already within T's range) to T.
template <class T, class I>
void store_int(T* p, I v, index_t n) noexcept {
  if constexpr (std::is_same_v<I, std::int32_t>) {
    *p = T(v);
  } else {
#if defined(__AVX512F__) && !defined(TPP_NO_SIMD)
    if constexpr (std::is_base_of_v<xsimd::avx512f, typename V::arch_type> && sizeof(T) <= 2) {
      if (n == W) {  // vpmovdb / vpmovdw (the values are in range: truncation is exact)
        if constexpr (sizeof(T) == 1) _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
        if constexpr (sizeof(T) == 2) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
        return;
      }
    }
#endif
    alignas(64) std::int32_t b[W];
    v.store_aligned(b);
    if (n == W) {
      for (index_t k = 0; k < W; ++k) p[k] = T(b[k]);
    } else {
      for (index_t k = 0; k < n; ++k) p[k] = T(b[k]);
    }
  }
}

// f(j, n) for the chunks of a row of cols: full vectors, then one partial vector. Flattened: GCC otherwise
// keeps a large f out of line and pays a call per vector (measured 1.5x on int8 quantize from L2).
template <class F>
[[gnu::flatten]] inline void chunks(index_t cols, F&& f) {
  index_t j = 0;
  for (; j + W <= cols; j += W) f(j, W);
  if constexpr (W > 1)
    if (j < cols) f(j, cols - j);
}

// A software prefetch (to L2) 8 KiB ahead of an input stream. From DRAM the hardware prefetchers alone held
// int8 quantize to 33 GB/s, and per column (its scales competing for the L1) to 14, against memcpy's 41;
// with it 55 and 41 (distances of 2 and 4 KiB gave 24 and 33 per column). 8- and 16-bit code inputs (a
// quarter or half of a line per vector) measured no faster with it and are not prefetched.
template <class T>
inline void prefetch_ahead(const T* p) noexcept {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + 8192), 0, 2);
}

// chunks() over a row whose fp32 / bf16 input src streams in (read once, perhaps from DRAM), prefetching
// ahead of src + j before each f.
template <class T, class F>
[[gnu::flatten]] inline void chunks(index_t cols, const T* src, F&& f) {
  chunks(cols, [&](index_t j, index_t n) {
    prefetch_ahead(src + j);
    f(j, n);
  });
}

// Column indices col_offset + j + lane of a chunk, as the hash's 32-bit counters.
inline VU col_counters(index_t col_offset, index_t j) noexcept {
  return VU(std::uint32_t(col_offset + j)) + io::iota();
}

// rounding_bits of the lanes of the chunk at column col_offset + j of a row keyed key, lane by lane.
inline VU chunk_bits(std::uint64_t key, index_t col_offset, index_t j) noexcept {
  const VU c = col_counters(col_offset, j);
  const VU h = dropout_hash(key, ((c >> 5) << 4) | (c & VU(15u)));
  const VU high = VU(0u) - ((c >> 4) & VU(1u));  // all ones where c & 16: the high half
  return ((h >> 16) & high) | (h & VU(0xffffu) & ~high);
}

// f(j, n, r) over the chunks of a row of cols streaming from src, as chunks(cols, src, f) but with r the
// chunk's rounding_bits (the row's key, its first column at col_offset). Over each whole group of 32 columns
// one hash of W counters serves two vectors, columns j + k and j + 16 + k (a group's counters are
// consecutive); the columns before the first group and after the last hash lane by lane (chunk_bits).
template <class T, class F>
[[gnu::flatten]] inline void rounding_chunks(index_t cols, const T* src, std::uint64_t key, index_t col_offset, F&& f) {
  static_assert(16 % W == 0, "tpp: a group's 16 counters fill whole vectors");
  const auto lane_by_lane = [&](index_t j0, index_t len) {
    chunks(len, src + j0, [&](index_t j, index_t n) { f(j0 + j, n, chunk_bits(key, col_offset, j0 + j)); });
  };
  const index_t head = std::min(cols, (32 - col_offset % 32) % 32);
  lane_by_lane(0, head);
  index_t j = head;
  for (; j + 32 <= cols; j += 32) {
    const VU base = VU(std::uint32_t(col_offset + j) >> 1) + io::iota();  // (col_offset + j) % 32 == 0
    for (index_t k = 0; k < 16; k += W) {
      const VU h = dropout_hash(key, base + VU(std::uint32_t(k)));
      prefetch_ahead(src + j + k);
      f(j + k, W, h & VU(0xffffu));
      prefetch_ahead(src + j + 16 + k);
      f(j + 16 + k, W, h >> 16);
    }
  }
  lane_by_lane(j, cols - j);
}

// ---- validation ----

inline index_t group_count(quant_granularity g, index_t rows, index_t cols) noexcept {
  return g == quant_granularity::per_row ? rows : g == quant_granularity::per_col ? cols : 1;
}

inline void check_granularity(quant_granularity g, std::string_view op) {
  if (g != quant_granularity::per_tensor && g != quant_granularity::per_row && g != quant_granularity::per_col)
    throw error(op, "granularity", concat("has an invalid value (", std::to_string(int(g)), ")"));
}

template <class TQ>
void check_quant_params(const quant_params& p, index_t rows, index_t cols, std::string_view op) {
  check_granularity(p.granularity, op);
  const index_t n = group_count(p.granularity, rows, cols);
  if (index_t(p.scale.size()) != n)
    throw error(op, "scale", concat("has ", std::to_string(p.scale.size()), " values; ", name(p.granularity), " of a ",
                                    std::to_string(rows), "x", std::to_string(cols), " tensor needs ", std::to_string(n)));
  for (std::size_t k = 0; k < p.scale.size(); ++k) {
    const float s = p.scale[k];
    if (!(s >= min_scale && s <= std::numeric_limits<float>::max()))
      throw error(op, concat("scale[", std::to_string(k), "]"),
                  concat("(", std::to_string(s), ") is not a finite value >= 2^-126"));
  }
  if (!p.zero_point.empty()) {
    if (p.zero_point.size() != p.scale.size())
      throw error(op, "zero_point", concat("has ", std::to_string(p.zero_point.size()), " values, scale has ",
                                           std::to_string(p.scale.size())));
    constexpr std::int32_t lo = std::numeric_limits<TQ>::min(), hi = std::numeric_limits<TQ>::max();
    for (std::size_t k = 0; k < p.zero_point.size(); ++k)
      if (p.zero_point[k] < lo || p.zero_point[k] > hi)
        throw error(op, concat("zero_point[", std::to_string(k), "]"),
                    concat("(", std::to_string(p.zero_point[k]), ") is outside the code range [", std::to_string(lo), ", ",
                           std::to_string(hi), "]"));
  }
}

inline void check_stochastic(const stochastic_params& s, std::string_view op) {
  check_sizes(op, s.row_offset, s.col_offset, "row_offset", "col_offset");
}

inline void check_rounding(rounding r, std::string_view op) {
  if (r != rounding::nearest_even && r != rounding::stochastic)
    throw error(op, "rounding", concat("has an invalid value (", std::to_string(int(r)), ")"));
}

// ---- int8 ----

// The per-call multipliers and zero points as floats in scratch: m[k] = inverse ? 1 / scale[k] : scale[k].
struct scale_rows {
  const float* mult;
  const float* zero;
  index_t step;    // 1 per row, 0 per tensor (and per column, where lanes load mult + j)
  bool has_zero;   // per column: whether zero + j is loaded (symmetric: all zero, never read)
};

inline scale_rows prepare_scales(const quant_params& p, bool inverse) {
  const index_t n = index_t(p.scale.size());
  float* buf = thread_scratch<14>(std::size_t(2 * n));
  for (index_t k = 0; k < n; ++k) {
    buf[k] = inverse ? 1.0f / p.scale[std::size_t(k)] : p.scale[std::size_t(k)];
    buf[n + k] = p.zero_point.empty() ? 0.0f : float(p.zero_point[std::size_t(k)]);
  }
  return {buf, buf + n, p.granularity == quant_granularity::per_row ? 1 : 0, !p.zero_point.empty()};
}

// q = sat(rne(P(x, m)) + z): quantize (m = 1 / s) and requantize (m = s).
template <class P, bool PerCol, class TI, class TQ>
void scale_round(mat<const TI> x, mat<TQ> q, scale_rows s) noexcept {
  constexpr float lo = float(std::numeric_limits<TQ>::min()), hi = float(std::numeric_limits<TQ>::max());
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    TQ* qr = q.row(i);
    const float *mr = s.mult, *zr = s.zero;
    const bool zc = s.has_zero;
    const V mi(s.mult[i * s.step]), zi(s.zero[i * s.step]);
    chunks(x.cols, xr, [=](index_t j, index_t n) {
      V m = mi, z = zi;
      if constexpr (PerCol) {
        m = load(mr + j, n);
        if (zc) z = load(zr + j, n);  // (the scales alone keep a 4096-column row's working set in the L1)
      }
      const V t = P::mul(load(xr + j, n), m);
      const V r = lanes::select(lanes::is_nan(t), V(0.0f), round_even(t));
      store_int(qr + j, to_i32(lanes::clamp(r + z, lo, hi)), n);
    });
  }
}

// y = P(q - z, s).
template <class P, bool PerCol, class TQ, class TO>
void scale_codes(mat<const TQ> q, mat<TO> y, scale_rows s) noexcept {
  for (index_t i = 0; i < q.rows; ++i) {
    const TQ* qr = q.row(i);
    TO* yr = y.row(i);
    const float *mr = s.mult, *zr = s.zero;
    const bool zc = s.has_zero;
    const V mi(s.mult[i * s.step]), zi(s.zero[i * s.step]);
    chunks(q.cols, [=](index_t j, index_t n) {
      V m = mi, z = zi;
      if constexpr (PerCol) {
        m = load(mr + j, n);
        if (zc) z = load(zr + j, n);
      }
      store(yr + j, P::mul(load(qr + j, n) - z, m), n);
    });
  }
}

// lo[g] = min(0, finite x of group g), hi[g] = max(0, ...): per_tensor / per_row into lo[0] / lo[i],
// per_col into lo[0, cols).
template <class T>
void group_ranges(mat<const T> x, quant_granularity g, float* lo, float* hi) noexcept {
  const auto finite = [](V v) { return lanes::select(lanes::abs(v) < V(inf), v, V(0.0f)); };
  if (g == quant_granularity::per_col) {
    std::fill_n(lo, x.cols, 0.0f);
    std::fill_n(hi, x.cols, 0.0f);
    for (index_t i = 0; i < x.rows; ++i) {
      const T* xr = x.row(i);
      chunks(x.cols, xr, [&](index_t j, index_t n) {
        const V v = finite(load(xr + j, n));
        store(lo + j, lanes::min(load(lo + j, n), v), n);
        store(hi + j, lanes::max(load(hi + j, n), v), n);
      });
    }
    return;
  }
  V vlo(0.0f), vhi(0.0f);
  for (index_t i = 0; i < x.rows; ++i) {
    const T* xr = x.row(i);
    chunks(x.cols, xr, [&](index_t j, index_t n) {
      const V v = finite(load(xr + j, n));  // partial loads: zeros, inside [lo, hi] anyway
      vlo = lanes::min(vlo, v);
      vhi = lanes::max(vhi, v);
    });
    if (g == quant_granularity::per_row) {
      lo[i] = hmin(vlo);
      hi[i] = hmax(vhi);
      vlo = V(0.0f);
      vhi = V(0.0f);
    }
  }
  if (g == quant_granularity::per_tensor) {
    lo[0] = hmin(vlo);
    hi[0] = hmax(vhi);
  }
}

// ---- fixed point ----

template <class TI>
void fixed_rows_nearest(mat<const TI> x, mat<std::int16_t> q, int fl) noexcept {
  const V up(pow2f(fl));
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    std::int16_t* qr = q.row(i);
    chunks(x.cols, xr, [=](index_t j, index_t n) {
      const V t = load(xr + j, n) * up;  // exact: a power of two, scaling up
      const V r = lanes::select(lanes::is_nan(t), V(0.0f), round_even(t));
      store_int(qr + j, to_i32(lanes::clamp(r, -32768.0f, 32767.0f)), n);
    });
  }
}

// q = floor((S + r) / 2^16), S = trunc(clamp(x 2^(FL+16), -2^31, 2^31 - 2^16)) (NaN: S = 0): S + r <= 2^31 - 1
// and the arithmetic shift lands in [-32768, 32767].
template <class TI>
void fixed_rows_stochastic(mat<const TI> x, mat<std::int16_t> q, int fl, const stochastic_params& sr) noexcept {
  const V up(pow2f(fl + 16));
  const index_t co = sr.col_offset;
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    std::int16_t* qr = q.row(i);
    const std::uint64_t key = dropout_row_key(sr.seed ^ rounding_stream, std::uint64_t(sr.row_offset + i));
    rounding_chunks(x.cols, xr, key, co, [=](index_t j, index_t n, VU r) {
      const V s = lanes::clamp(load(xr + j, n) * up, -0x1p31f, 0x1p31f - 0x1p16f);
      const VI t = to_i32(lanes::select(lanes::is_nan(s), V(0.0f), s));  // truncation toward zero
      store_int(qr + j, VI((t + as_i32(r)) >> 16), n);
    });
  }
}

// ---- bf16 ----

// The fp32 pattern plus 16 random bits r (its upper half is the result), NaN made quiet.
template <class U>
V stochastic_bf16(V x, U r) noexcept {
  const U u = as_u32(x);
  return lanes::select(lanes::is_nan(x), as_f32(u | U(0x00400000u)), as_f32(u + r));
}

template <class L>
void store_upper(bf16* p, L v, index_t n) noexcept {
  if constexpr (std::is_same_v<L, float>) {
    *p = bf16::from_bits(std::uint16_t(as_u32(v) >> 16));
  } else {
    if (n == W) return arch::store_high_halves<typename L::arch_type>(reinterpret_cast<std::uint16_t*>(p), as_u32(v));
    alignas(64) std::uint32_t b[W];
    as_u32(v).store_aligned(b);
    for (index_t k = 0; k < n; ++k) p[k] = bf16::from_bits(std::uint16_t(b[k] >> 16));
  }
}

inline void bf16_rows(mat<const float> x, mat<bf16> y, rounding r, const stochastic_params& sr) noexcept {
  for (index_t i = 0; i < x.rows; ++i) {
    const float* xr = x.row(i);
    bf16* yr = y.row(i);
    if (r == rounding::nearest_even) {
      chunks(x.cols, xr, [&](index_t j, index_t n) { store(yr + j, load(xr + j, n), n); });
      continue;
    }
    const std::uint64_t key = dropout_row_key(sr.seed ^ rounding_stream, std::uint64_t(sr.row_offset + i));
    rounding_chunks(x.cols, xr, key, sr.col_offset, [=](index_t j, index_t n, VU r) {
      store_upper(yr + j, stochastic_bf16(load(xr + j, n), r), n);
    });
  }
}

// ---- block floating point ----

// BFP works on groups of W blocks, block k of a group in lane k. A scalar search per block (a horizontal
// max, then branches on the exponent) cost ~55 cycles a block, four times the block's own arithmetic at
// B = 16. Now a group's maxima come from one transposing reduction (AVX-512; a horizontal max per block
// elsewhere), its exponents and scale factors are computed in lanes (bfp_exponents from the maxima's bits,
// bfp_group_scales), round to nearest goes by magic constants (two adds a vector) where the group allows,
// and large outputs are written by streaming stores (streams). 4096 x 4096 fp32 from DRAM, B = 16: 9 GB/s
// with the scalar search, now about memcpy's speed or above (details in the README).

// Integer lanes: select, min and max for int32 and batches of it.
inline std::int32_t iselect(bool c, std::int32_t a, std::int32_t b) noexcept { return c ? a : b; }
template <class A>
xsimd::batch<std::int32_t, A> iselect(xsimd::batch_bool<std::int32_t, A> c, xsimd::batch<std::int32_t, A> a,
                                      xsimd::batch<std::int32_t, A> b) noexcept {
  return xsimd::select(c, a, b);
}
inline std::int32_t imin(std::int32_t a, std::int32_t b) noexcept { return std::min(a, b); }
inline std::int32_t imax(std::int32_t a, std::int32_t b) noexcept { return std::max(a, b); }
template <class A>
xsimd::batch<std::int32_t, A> imin(xsimd::batch<std::int32_t, A> a, xsimd::batch<std::int32_t, A> b) noexcept {
  return xsimd::min(a, b);
}
template <class A>
xsimd::batch<std::int32_t, A> imax(xsimd::batch<std::int32_t, A> a, xsimd::batch<std::int32_t, A> b) noexcept {
  return xsimd::max(a, b);
}
// The lanes' minimum; where one is NaN, either operand (std::min gives a, vminps b).
inline float min_lanes(float a, float b) noexcept { return std::min(a, b); }
template <class A>
xsimd::batch<float, A> min_lanes(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  return xsimd::min(a, b);
}
inline VI iclamp(VI v, std::int32_t lo, std::int32_t hi) noexcept { return imin(imax(v, VI(lo)), VI(hi)); }
// Whether every lane is at most limit.
inline bool all_at_most(std::int32_t v, std::int32_t limit) noexcept { return v <= limit; }
template <class A>
bool all_at_most(xsimd::batch<std::int32_t, A> v, std::int32_t limit) noexcept {
  return !xsimd::any(v > xsimd::batch<std::int32_t, A>(limit));
}

// 2^e for integer lanes e in [-126, 127].
inline float pow2_lanes(std::int32_t e) noexcept { return pow2f(e); }
template <class A>
xsimd::batch<float, A> pow2_lanes(xsimd::batch<std::int32_t, A> e) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<float, A>>((e + xsimd::batch<std::int32_t, A>(127)) << 23);
}

// Lanes times 2^n, n an integer in [-277, 277]: x f1 f2 with 2^n split into two normal floats, or on
// AVX-512 one vscalefps by n. Both are exact wherever x 2^n is representable; where it is not, they differ
// only below 2^-126, which rounds to the code 0 either way (see bfp_magnitude).
struct pow2_factor {
  V n, f1, f2;
  V operator()(V x) const noexcept {
#if defined(__AVX512F__) && !defined(TPP_NO_SIMD)
    if constexpr (W == 16) return _mm512_scalef_ps(x, n);
#endif
    return x * f1 * f2;
  }
};

// The power-of-two factors of a block with shared exponent e that take |x| to k's scale (up: 2^u,
// u = m - 1 - e in [m - 128, 149]) and k back (down: 2^-u).
struct bfp_scale {
  float u, d, magic, up1, up2, down1, down2;  // d = -u; magic: see bfp_group_scales
  pow2_factor up() const noexcept { return {V(u), V(up1), V(up2)}; }
  pow2_factor down() const noexcept { return {V(d), V(down1), V(down2)}; }
};

// How a group's blocks round: toward zero or to nearest, and (nearest) whether by the magic constants; and
// whether all the group's values are known to be finite (no NaN or Inf to pass through).
template <bool Truncate, bool Magic, bool Finite = false>
struct bfp_mode {
  static constexpr bool truncate = Truncate, magic = Magic, finite = Finite;
};

// The scales of a group of up to W blocks, block k in element k. magic[k] = 1.5 2^(s + 23), s = e - m + 1
// the step's exponent: for |x| < 2^(s + 22), x + magic lies in [2^(s+23), 2^(s+24)), whose spacing is the
// step, so (x + magic) - magic is x rounded to nearest even on the step's grid, exactly (both sums are
// exact or correctly rounded once), sign and all: 2 ops for abs, scaling up, rounding and scaling back.
// Every finite |x| of a block is below 2^(e + 1) = 2^(s + m), so it applies when m <= 22 and the constant
// is finite (s <= 104); magic_ok says so for the whole group (and rounding is to nearest). Blocks at e =
// 127 are the only ones that saturate, and s <= 104 excludes them, so no clamp is needed either.
struct bfp_group_scales {
  bool magic_ok;
  bool finite;  // every value of the group is finite or a quiet NaN (false: unknown; see gathered_maxima)
  alignas(64) std::int32_t e[W];
  alignas(64) float magic[W];
  alignas(64) float u[W];
  alignas(64) float d[W];
  alignas(64) float up1[W];
  alignas(64) float up2[W];
  alignas(64) float down1[W];
  alignas(64) float down2[W];

  // The lanes' exponents e in [m - 150, 127]; magic_allowed: whether the caller rounds to nearest and can
  // use the magic constants. Where magic_ok, the factors are not computed (they keep whatever they held:
  // B = 16 from L1 10% faster).
  void set(VI ev, int m, bool magic_allowed) noexcept {
    const VI se = ev - VI(m - 1);  // the step's exponent s, in [-149, 127]
    store_lanes(e, ev);
    store_lanes(magic, as_f32(as_u32(imin(se + VI(150), VI(254)) << 23) | VU(0x00400000u)));
    magic_ok = magic_allowed && m <= 22 && all_at_most(se, 104);
    if (magic_ok) return;
    const VI un = VI(m - 1) - ev, u1 = iclamp(un, -126, 127), dn = -un, d1 = imax(dn, VI(-126));
    store_lanes(u, to_f32(un));
    store_lanes(d, to_f32(dn));
    store_lanes(up1, pow2_lanes(u1));
    store_lanes(up2, pow2_lanes(un - u1));
    store_lanes(down1, pow2_lanes(d1));
    store_lanes(down2, pow2_lanes(dn - d1));
  }
  bfp_scale operator[](index_t k) const noexcept { return {u[k], d[k], magic[k], up1[k], up2[k], down1[k], down2[k]}; }

 private:
  template <class T, class L>
  static void store_lanes(T* p, L v) noexcept {
    if constexpr (W == 1) *p = v;
    else v.store_aligned(p);
  }
};

// Whether a lane holds a subnormal's bits (1 .. 2^23 - 1).
inline bool any_subnormal(std::uint32_t b) noexcept { return b - 1u < 0x007fffffu; }
template <class A>
bool any_subnormal(xsimd::batch<std::uint32_t, A> b) noexcept {
  using U = xsimd::batch<std::uint32_t, A>;
  return xsimd::any(b - U(1u) < U(0x007fffffu));
}

// The shared exponents of blocks whose largest finite |x| are the lanes of maxabs (0 for an all-zero,
// all-NaN or absent block): e = max(floor(log2 maxabs), m - 150), plus 1 where (rounding to nearest) the
// maximum rounds up to 2^m at e's step; at most 127.
inline VI bfp_exponents(V maxabs, int m, bool truncate) noexcept {
  const VU b = as_u32(maxabs);
  if (!any_subnormal(b)) {  // normal or zero lanes (the usual case): the rounding in the bits, ~9 ops
    VU r = b;  // b rounded to m significant bits, to nearest even: a carry into the exponent field is the +1
    if (const int d = 24 - m; !truncate && d > 0)  // (or the implicit bit: m = 1 keeps it alone, always odd)
      r = b + VU((1u << (d - 1)) - 1u) + (((b | VU(0x00800000u)) >> d) & VU(1u));
    return imin(iselect(as_i32(b) == VI(0), VI(m - 150), as_i32(r >> 23) - VI(127)), VI(127));
  }
  const VI be = as_i32(b >> 23);
  const VI sub = as_i32(as_u32(to_f32(as_i32(b))) >> 23) - VI(276);  // a denormal: bit_width(b) - 150 (b < 2^23: exact)
  VI e = imax(iselect(be > VI(0), be - VI(127), sub), VI(m - 150));  // 0: sub = -276, so m - 150
  if (!truncate) {
    const VI u = VI(m - 1) - e, u1 = iclamp(u, -126, 127);
    const V t = maxabs * pow2_lanes(u1) * pow2_lanes(u - u1);  // exact: below 2^(m+1) <= 2^25
    e = e + to_i32(lanes::select(round_even(t) >= V(pow2f(m)), V(1.0f), V(0.0f)));
  }
  return imin(e, VI(127));
}

// k = round(|x| / step) (truncate: toward zero), at most 2^m - 1: Inf gives 2^m - 1, NaN NaN or 2^m - 1
// (vminps returns its second operand), the caller's to replace. |x| 2^u below 2^-126 (where pow2_factor's
// two forms may round differently) is below 1/2: k = 0 either way.
template <bool Truncate>
V bfp_magnitude(V x, const pow2_factor& up, V kmax) noexcept {
  const V t = up(lanes::abs(x));
  return min_lanes(Truncate ? floor(t) : round_even(t), kmax);
}

// q where v is finite, v itself (its very bits) where v is NaN or +-Inf. One vfpclassps and a masked move
// on AVX-512 (instead of an and, a compare and the move).
inline V finite_else(V q, V v) noexcept {
#if defined(__AVX512F__) && defined(__AVX512DQ__) && !defined(TPP_NO_SIMD)
  if constexpr (W == 16) return _mm512_mask_mov_ps(q, _mm512_fpclass_ps_mask(v, 0x99), v);  // QNaN, +-Inf, SNaN
#endif
  return lanes::select(lanes::abs(v) < V(inf), q, v);
}

inline V finite_abs(V v) noexcept {
  const V a = lanes::abs(v);
  return lanes::select(a < V(inf), a, V(0.0f));
}

// The largest finite |x| of n values.
template <class T>
float block_maxabs(const T* p, index_t len) noexcept {
  V m(0.0f);
  chunks(len, p, [&](index_t j, index_t n) { m = lanes::max(m, finite_abs(load(p + j, n))); });
  return hmax(m);
}

#if defined(__AVX512F__) && !defined(TPP_NO_SIMD)
// Lane k = the largest lane of c[k] (unsigned), k < 16. Four rounds halve the lanes per vector: shuffles of
// 128-bit chunks pair vectors (a, b) into one holding both folded (rounds 1, 2: 8 then 4 lanes each, in
// vector order), then in-chunk shuffles (rounds 3, 4) leave lane 4L + r holding vector 4r + L, which one
// permute puts back in order. Raw: c[k] are the values themselves, whose magnitudes round 1 compares
// (vrangeps, see gathered_maxima); else |x|'s bits. The loops are unrolled by pragma: GCC 12 otherwise
// keeps c in memory (B = 16 from L1: 57 -> 85 GB/s unrolled).
template <bool Raw>
inline __m512i transpose_max16(__m512i* c) noexcept {
  const auto fold = [](__m512i a, __m512i b, auto shuffle, auto lo, auto hi) {
    return _mm512_max_epu32(shuffle(a, b, lo), shuffle(a, b, hi));
  };
  const auto first_fold = [](__m512i a, __m512i b, auto shuffle, auto lo, auto hi) {
    if constexpr (!Raw) return _mm512_max_epu32(shuffle(a, b, lo), shuffle(a, b, hi));
    else return _mm512_castps_si512(_mm512_range_ps(_mm512_castsi512_ps(shuffle(a, b, lo)), _mm512_castsi512_ps(shuffle(a, b, hi)), 0x0b));
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
}

inline __m512i abs_bits(__m512 v) noexcept { return _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)); }

// The maxima of 16 blocks' |x| as they are gathered, block k in c[k]: its values' bits folded lane-wise
// (B = 16: the block's own vector, raw, its abs taken by the transposition's first round; B = 16 t: pairs
// of vectors through vrangeps' largest magnitude, sign cleared, then unsigned maxima, so a vector and a
// half of loads cost one op). A lane at or above Inf's bits (0x7f800000) flags a block holding Inf or a
// signalling NaN (vrangeps returns it quietened); a quiet NaN beside a number gives the number (as
// vrangeps does on AMD Zen 4/5 and as Intel documents it), so such a block is not flagged: its maximum
// is the largest finite |x| all the same, and the quiet NaN passes unchanged through the magic-constant
// rounding, the one path that trusts the flag. (Were quiet NaNs kept, their blocks would be flagged.)
struct gathered_maxima {
  static constexpr bool available = W == 16;
  __m512i c[16];

  // Block k, whole, of B = 16 t values from p.
  template <class T>
  void add(index_t k, const T* p, index_t B) noexcept {
    if (B == 16) {
      c[k] = _mm512_castps_si512(load(p, W));
      return;
    }
    __m512i m = _mm512_setzero_si512();
    index_t j = 0;
    for (; j + 32 <= B; j += 32)
      m = _mm512_max_epu32(m, _mm512_castps_si512(_mm512_range_ps(load(p + j, W), load(p + j + 16, W), 0x0b)));
    if (j < B) m = _mm512_max_epu32(m, abs_bits(load(p + j, W)));
    c[k] = m;
  }

  // The blocks' largest finite |x|, lane k for block k (whose nb <= 16 values, or fewer at the row's end,
  // start at xr + (b0 + k) B); c[k] past nb must be 0. finite: no lane is flagged.
  template <class T>
  V maxabs(bool raw, const T* xr, index_t cols, index_t block, index_t b0, index_t nb, bool& finite) noexcept {
    const __m512i mx = raw ? transpose_max16<true>(c) : transpose_max16<false>(c);
    const __mmask16 special = _mm512_cmpge_epu32_mask(mx, _mm512_set1_epi32(0x7f800000));
    finite = special == 0;
    if (finite) return _mm512_castsi512_ps(mx);
    alignas(64) float f[16];
    _mm512_store_si512(f, mx);
    for (index_t k = 0; k < nb; ++k)
      if ((special >> k) & 1) f[k] = block_maxabs(xr + (b0 + k) * block, std::min(block, cols - (b0 + k) * block));
    return _mm512_load_ps(f);
  }
};
#else
struct gathered_maxima {  // (AVX-512 only)
  static constexpr bool available = false;
  template <class T>
  void add(index_t, const T*, index_t) noexcept {}
  template <class T>
  V maxabs(bool, const T*, index_t, index_t, index_t, index_t, bool& finite) noexcept {
    finite = false;
    return V(0.0f);
  }
};
#endif

// The largest finite |x| of blocks b0 .. b0 + nb - 1 of a row of cols (nb <= W), block k in lane k (0 past
// nb), and finite = whether all their values are finite or quiet NaNs (false: unknown).
// AVX-512, any B: the maxima of |x|'s bits (unsigned integers order as the values) come out of one
// transposing reduction (gathered_maxima; partial loads and blocks past nb give 0), flagged lanes are
// found again by a scan of their blocks. Elsewhere a horizontal maximum per block.
template <class T>
V group_maxabs(const T* xr, index_t cols, index_t block, index_t b0, index_t nb, bool& finite) noexcept {
  finite = false;
  if constexpr (gathered_maxima::available) {
    gathered_maxima g;
    const T* p = xr + b0 * block;
    // B = 16: unrolled, the maxima stay in registers; no software prefetch (from DRAM it measured 8-15%
    // slower with one 8 KiB ahead per vector, 4 and 16 KiB no better)
    if (block == 16 && nb == 16 && (b0 + 16) * 16 <= cols) {
#pragma GCC unroll 16
      for (index_t k = 0; k < 16; ++k) g.add(k, p + k * 16, 16);
      return g.maxabs(true, xr, cols, block, b0, nb, finite);
    }
    if (block % 16 == 0 && nb == 16 && (b0 + 16) * block <= cols) {  // whole blocks of whole vectors
      for (index_t k = 0; k < 16; ++k) g.add(k, p + k * block, block);
      return g.maxabs(false, xr, cols, block, b0, nb, finite);
    }
#if defined(__AVX512F__) && !defined(TPP_NO_SIMD)
    for (index_t k = 0; k < 16; ++k, p += block) {
      __m512i ck = _mm512_setzero_si512();  // (a register: c[k] itself would be stored and reloaded per vector)
      const index_t len = k < nb ? std::min(block, cols - (b0 + k) * block) : 0;
      index_t j = 0;
      for (; j + W <= len; j += W) {
        prefetch_ahead(p + j);
        ck = _mm512_max_epu32(ck, abs_bits(load(p + j, W)));
      }
      if (j < len) ck = _mm512_max_epu32(ck, abs_bits(load(p + j, len - j)));
      g.c[k] = ck;
    }
#endif
    return g.maxabs(false, xr, cols, block, b0, nb, finite);
  }
  alignas(64) float mx[W] = {};
  for (index_t k = 0; k < nb; ++k) {
    const index_t j0 = (b0 + k) * block;
    mx[k] = block_maxabs(xr + j0, std::min(block, cols - j0));
  }
  return load(mx, W);
}

// The blocks of x, W at a time (a group): group(i, b0, n, scales) for the n blocks of row i from block b0,
// then f = row(i) (a functor holding the row's pointers, a local here so its fields stay in registers:
// the stores of vector intrinsics may alias anything in memory) and f(j, c, scale, mode) over their
// columns, c <= W consecutive columns of one block from column j, with mode a bfp_mode (magic where the
// group's magic_ok). (Magic: whether f rounds by the magic constants where it can; otherwise it is always
// given the factors.) Where W divides B, a whole group's blocks are visited in a plain loop of whole vectors.
// Software-pipelined two groups deep (scales in a ring of three): the group after next has its scales
// computed during this group's step, so the dependency chain from its loads through the reduction to its
// exponents overlaps a whole group's work. On AVX-512, when that group is 16 whole blocks of 2 or more
// whole vectors each, it is gathered block by block between this group's blocks (its loads, from DRAM
// perhaps, interleave with this group's stores as in a copy loop: all loads first, then all stores,
// measured 10% slower at B = 64 from DRAM), and reduced after them; otherwise its scales come first.
template <bool Magic, class TI, class G, class R>
[[gnu::flatten]] void bfp_blocks_of(mat<const TI> x, const bfp_params& p, G&& group, R&& row) {
  const index_t B = p.block, nb = bfp_blocks(x.cols, B), groups = (nb + W - 1) / W;
  const int m = p.mantissa_bits;
  if (x.rows <= 0 || groups <= 0) return;
  // whether group q of a row is gathered between the blocks of the group before it
  const auto gathers = [&](index_t q) {
    return gathered_maxima::available && B % W == 0 && B > W && (q + 1) * W <= nb && (q + 1) * W * B <= x.cols;
  };
  const auto run = [&](auto truncate) {
    bfp_group_scales g[3] = {};  // (zeroed once: factors a magic group skips are never indeterminate)
    const auto finish = [&](V mx, bool finite, bfp_group_scales& out) {
      out.set(bfp_exponents(mx, m, truncate), m, Magic && !truncate);
      out.finite = finite;
    };
    // group (i, q): row i's blocks from q W, its scales in g[t % 3] at step t
    const auto scales = [&](index_t i, index_t q, bfp_group_scales& out) {
      bool finite = false;
      const V mx = group_maxabs(x.row(i), x.cols, B, q * W, std::min(W, nb - q * W), finite);
      finish(mx, finite, out);
    };
    const auto advance = [&](index_t& i, index_t& q) {  // (counters: a division per group cost ~40 cycles)
      if (++q == groups) q = 0, ++i;
    };
    gathered_maxima later;  // the maxima of the group after next, gathered during this group
    index_t i = 0, q = 0, i2 = 0, q2 = 0;  // this group, the group after next
    scales(0, 0, g[0]);
    advance(i2, q2);
    if (i2 < x.rows) scales(i2, q2, g[1]);
    advance(i2, q2);
    for (index_t t = 0; i < x.rows; ++t) {
      const bool gather = i2 < x.rows && gathers(q2);
      if (i2 < x.rows && !gather) scales(i2, q2, g[(t + 2) % 3]);
      const TI* next = gather ? x.row(i2) + q2 * W * B : nullptr;
      index_t gathered = 0;  // blocks of that group gathered so far
      const bfp_group_scales& gt = g[t % 3];
      const index_t b0 = q * W, n = std::min(W, nb - b0);
      const TI* xr = x.row(i);
      group(i, b0, n, gt);
      const auto f = row(i);
      const auto visit = [&](auto mode) {
        if (B == W && (b0 + n) * B <= x.cols) {  // (B = 16 on AVX-512: one vector a block)
          for (index_t k = 0; k < n; ++k) f((b0 + k) * W, W, gt[k], mode);
        } else if (B % W == 0 && (b0 + n) * B <= x.cols) {
          for (index_t k = 0; k < n; ++k) {
            if (gather) later.add(gathered++, next + k * B, B);
            const bfp_scale s = gt[k];
            for (index_t j = (b0 + k) * B, end = j + B; j < end; j += W) f(j, W, s, mode);
          }
        } else {
          for (index_t k = 0; k < n; ++k) {
            const bfp_scale s = gt[k];
            const index_t j0 = (b0 + k) * B;
            chunks(std::min(B, x.cols - j0), xr + j0, [&](index_t j, index_t c) { f(j0 + j, c, s, mode); });
          }
        }
      };
      if constexpr (decltype(truncate)::value)
        visit(bfp_mode<true, false>{});
      else if (gt.magic_ok && gt.finite)
        visit(bfp_mode<false, true, true>{});
      else if (gt.magic_ok)
        visit(bfp_mode<false, true>{});
      else
        visit(bfp_mode<false, false>{});
      if (gather) {
        for (; gathered < W; ++gathered) later.add(gathered, next + gathered * B, B);
        bool finite = false;
        const V mx = later.maxabs(false, x.row(i2), x.cols, B, q2 * W, W, finite);
        finish(mx, finite, g[(t + 2) % 3]);
      }
      advance(i, q);
      advance(i2, q2);
    }
  };
  if (p.truncate)
    run(std::true_type{});
  else
    run(std::false_type{});
}

inline void check_bfp_params(const bfp_params& p, int max_bits, std::string_view op) {
  if (p.block < 1) throw error(op, "block", concat("(", std::to_string(p.block), ") is not >= 1"));
  if (p.mantissa_bits < 1 || p.mantissa_bits > max_bits)
    throw error(op, "mantissa_bits",
                concat("(", std::to_string(p.mantissa_bits), ") is outside [1, ", std::to_string(max_bits), "]"));
}

// ---- power of two ----

struct pow2_consts {
  float lo, hi, zero_below, code_base;  // 2^kmin, 2^kmax, the zero threshold, 127 + kmin - 1
};

inline pow2_consts make_pow2(const pow2_params& p) noexcept {
  return {pow2f(p.kmin), pow2f(p.kmax), std::max(p.zero_threshold, std::ldexp(1.0f, p.kmin - 1)), float(127 + p.kmin - 1)};
}

// The biased exponent field of positive lanes, as float lanes; and 2^(e - 127) for integer e in [1, 254].
inline float biased_exponent(float r) noexcept { return float(as_u32(r) >> 23); }
template <class A>
xsimd::batch<float, A> biased_exponent(xsimd::batch<float, A> r) noexcept {
  return xsimd::to_float(xsimd::bitwise_cast<xsimd::batch<std::int32_t, A>>(as_u32(r) >> 23));
}
inline float pow2_of_biased(float e) noexcept { return std::bit_cast<float>(std::uint32_t(e) << 23); }
template <class A>
xsimd::batch<float, A> pow2_of_biased(xsimd::batch<float, A> e) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<float, A>>(xsimd::to_int(e) << 23);
}

// |y| = 0 or 2^k (x's magnitude); NaN lanes are the caller's.
inline V pow2_magnitude(V a, const pow2_consts& c) noexcept {
  const V r = as_f32((as_u32(a) + VU(0x00400000u)) & VU(0x7f800000u));  // nearest power, ties up
  return lanes::select(a < V(c.zero_below), V(0.0f), lanes::clamp(r, c.lo, c.hi));
}

inline void check_pow2_params(const pow2_params& p, std::string_view op, bool encode) {
  if (p.kmin < -126 || p.kmin > 127) throw error(op, "kmin", concat("(", std::to_string(p.kmin), ") is outside [-126, 127]"));
  if (p.kmax < -126 || p.kmax > 127) throw error(op, "kmax", concat("(", std::to_string(p.kmax), ") is outside [-126, 127]"));
  if (p.kmin > p.kmax)
    throw error(op, "kmax", concat("(", std::to_string(p.kmax), ") is below kmin (", std::to_string(p.kmin), ")"));
  if (encode && p.kmax - p.kmin > 126)
    throw error(op, "kmax", concat("- kmin (", std::to_string(p.kmax - p.kmin), ") exceeds 126, the int8 code range"));
  if (!(p.zero_threshold >= 0.0f && p.zero_threshold < inf))
    throw error(op, "zero_threshold", concat("(", std::to_string(p.zero_threshold), ") is not finite and >= 0"));
}

// ---- binary / ternary ----

// Σ|x| of a row's values [j0, j0 + n) (n <= 64) in fp32 lanes.
template <class T>
float word_abs_sum(const T* p, index_t n) noexcept {
  V s(0.0f);
  chunks(n, [&](index_t j, index_t c) { s = s + lanes::abs(load(p + j, c)); });
  return hsum(s);
}

// The bits of a word of up to 64 values: bit k set where pred(value k).
template <class T, class Pred>
std::uint64_t word_bits(const T* p, index_t n, Pred pred) noexcept {
  std::uint64_t w = 0;
  chunks(n, p, [&](index_t j, index_t c) {
    const std::uint64_t b = lane_bits(pred(load(p + j, c)));
    w |= (c == W ? b : b & ((std::uint64_t(1) << c) - 1)) << j;
  });
  return w;
}

inline std::uint64_t tail_mask(index_t k) noexcept {
  const index_t r = k % 64;
  return r == 0 ? ~std::uint64_t(0) : (std::uint64_t(1) << r) - 1;
}

// Differing bits of the 4 x 4 row pairs of a (rows a[r]) and b (rows b[c]) over `full` whole words and a last
// word masked with `last` (words > full).
inline void xor_popcount_4x4(const std::uint64_t* const* a, const std::uint64_t* const* b, index_t words,
                             std::uint64_t last, std::int64_t (&cnt)[4][4]) noexcept {
  const index_t full = last == ~std::uint64_t(0) ? words : words - 1;
  index_t w = 0;
#if defined(__AVX512VPOPCNTDQ__) && defined(__AVX512F__) && !defined(TPP_NO_SIMD)
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
  for (; w + 8 <= full; w += 8) step([&](const std::uint64_t* p) { return _mm512_loadu_si512(p + w); });
  if (w < full) {
    const __mmask8 m = __mmask8((1u << (full - w)) - 1);
    step([&](const std::uint64_t* p) { return _mm512_maskz_loadu_epi64(m, p + w); });
    w = full;
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) cnt[r][c] = _mm512_reduce_add_epi64(acc[r][c]);
#else
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) cnt[r][c] = 0;
  for (; w < full; ++w) {
    std::uint64_t va[4], vb[4];
    for (int r = 0; r < 4; ++r) va[r] = a[r][w];
    for (int c = 0; c < 4; ++c) vb[c] = b[c][w];
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) cnt[r][c] += std::popcount(va[r] ^ vb[c]);
  }
#endif
  if (full < words)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) cnt[r][c] += std::popcount((a[r][full] ^ b[c][full]) & last);
}

}  // namespace detail::quant

// ===================================== int8 =====================================

// Scales (and zero points) for TQ codes from x's values, per tensor / row / column (see the top).
// scale: 1, rows or cols values; zero_point: as many, or empty for symmetric.
template <class TQ = std::int8_t, class TI>
  requires detail::quant::code8<TQ> && detail::float_element<TI>
void compute_quant_params(mat<TI> x, quant_mode mode, quant_granularity g, std::span<float> scale,
                          std::span<std::int32_t> zero_point) {
  using namespace detail::quant;
  constexpr std::string_view op = "compute_quant_params";
  detail::check_mat(x, op, "x");
  check_granularity(g, op);
  if (mode != quant_mode::symmetric && mode != quant_mode::asymmetric)
    throw error(op, "mode", detail::concat("has an invalid value (", std::to_string(int(mode)), ")"));
  if (mode == quant_mode::symmetric && !std::is_signed_v<TQ>)
    throw error(op, "mode", "symmetric needs a signed code type (int8)");
  const index_t n = group_count(g, x.rows, x.cols);
  if (index_t(scale.size()) != n)
    throw error(op, "scale", detail::concat("has ", std::to_string(scale.size()), " values; ", name(g), " needs ", std::to_string(n)));
  if (index_t(zero_point.size()) != n && !(mode == quant_mode::symmetric && zero_point.empty()))
    throw error(op, "zero_point", detail::concat("has ", std::to_string(zero_point.size()), " values; ", name(g), " needs ",
                                         std::to_string(n)));
  if (n == 0) return;
  float* lo = thread_scratch<15>(std::size_t(2 * n));
  float* hi = lo + n;
  const mat<const std::remove_const_t<TI>> cx = {x.data, x.rows, x.cols, x.ld};
  if (x.empty()) {
    std::fill_n(lo, 2 * n, 0.0f);
  } else {
    group_ranges(cx, g, lo, hi);
  }
  constexpr double qlo = std::numeric_limits<TQ>::min(), qhi = std::numeric_limits<TQ>::max();
  for (index_t k = 0; k < n; ++k) {
    const double l = lo[k], h = hi[k];
    const double range = mode == quant_mode::symmetric ? std::max(-l, h) / qhi : (h - l) / (qhi - qlo);
    const float s = range > 0.0 ? std::max(float(range), min_scale) : 1.0f;
    scale[std::size_t(k)] = s;
    if (mode == quant_mode::asymmetric)
      zero_point[std::size_t(k)] = std::int32_t(std::clamp(std::nearbyint(qlo - l / double(s)), qlo, qhi));
    else if (!zero_point.empty())
      zero_point[std::size_t(k)] = 0;
  }
}

// q = sat(rne(P(x, 1 / s)) + z). x (rows, cols) fp32 / bf16, q (rows, cols) int8 / uint8.
template <class Policy = approx::exact, class TI = float, class TQ = std::int8_t>
  requires approx::multiplier<Policy> && detail::float_element<TI> && detail::quant::code8<TQ>
class quantize_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("quantize", "");

  quantize_kernel(index_t rows, index_t cols) : kernel_shape(label, rows, cols) {
    approx::check_policy<Policy>();
  }

  void operator()(mat<const in_type> x, const quant_params& p, mat<TQ> q) const {
    detail::check_in_out(x, q, rows_, cols_, label, "x", "q");
    detail::quant::check_quant_params<TQ>(p, rows_, cols_, label);
    if (x.empty()) return;
    const auto s = detail::quant::prepare_scales(p, true);
    if (p.granularity == quant_granularity::per_col)
      detail::quant::scale_round<Policy, true>(x, q, s);
    else
      detail::quant::scale_round<Policy, false>(x, q, s);
  }
};

// y = P(q - z, s). q (rows, cols) int8 / uint8, y fp32 / bf16.
template <class Policy = approx::exact, class TQ = std::int8_t, class TO = float>
  requires approx::multiplier<Policy> && detail::quant::code8<TQ> && detail::float_element<TO> && (!std::is_const_v<TO>)
class dequantize_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("dequantize", "");

  dequantize_kernel(index_t rows, index_t cols) : kernel_shape(label, rows, cols) {
    approx::check_policy<Policy>();
  }

  void operator()(mat<const TQ> q, const quant_params& p, mat<TO> y) const {
    detail::check_in_out(q, y, rows_, cols_, label, "q", "y");
    detail::quant::check_quant_params<TQ>(p, rows_, cols_, label);
    if (q.empty()) return;
    const auto s = detail::quant::prepare_scales(p, false);
    if (p.granularity == quant_granularity::per_col)
      detail::quant::scale_codes<Policy, true>(q, y, s);
    else
      detail::quant::scale_codes<Policy, false>(q, y, s);
  }
};

// q = sat(rne(P(float(acc), s)) + z): an int32 GEMM result to int8 / uint8 (s typically s_a s_b / s_out).
template <class Policy = approx::exact, class TQ = std::int8_t>
  requires approx::multiplier<Policy> && detail::quant::code8<TQ>
class requantize_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("requantize", "");

  requantize_kernel(index_t rows, index_t cols) : kernel_shape(label, rows, cols) {
    approx::check_policy<Policy>();
  }

  void operator()(mat<const std::int32_t> acc, const quant_params& p, mat<TQ> q) const {
    detail::check_in_out(acc, q, rows_, cols_, label, "acc", "q");
    detail::quant::check_quant_params<TQ>(p, rows_, cols_, label);
    if (acc.empty()) return;
    const auto s = detail::quant::prepare_scales(p, false);
    if (p.granularity == quant_granularity::per_col)
      detail::quant::scale_round<Policy, true>(acc, q, s);
    else
      detail::quant::scale_round<Policy, false>(acc, q, s);
  }
};

template <class Policy = approx::exact, class TI, class TQ>
void quantize(mat<TI> x, const quant_params& p, mat<TQ> q) {
  using kernel = quantize_kernel<Policy, std::remove_const_t<TI>, TQ>;
  detail::check_mat(q, kernel::label, "q");
  kernel(q.rows, q.cols)(x, p, q);
}

template <class Policy = approx::exact, class TQ, class TO>
void dequantize(mat<TQ> q, const quant_params& p, mat<TO> y) {
  using kernel = dequantize_kernel<Policy, std::remove_const_t<TQ>, TO>;
  detail::check_mat(y, kernel::label, "y");
  kernel(y.rows, y.cols)(q, p, y);
}

template <class Policy = approx::exact, class TA, class TQ>
  requires std::same_as<std::remove_const_t<TA>, std::int32_t>
void requantize(mat<TA> acc, const quant_params& p, mat<TQ> q) {
  using kernel = requantize_kernel<Policy, TQ>;
  detail::check_mat(q, kernel::label, "q");
  kernel(q.rows, q.cols)(acc, p, q);
}

// ===================================== fixed point =====================================

namespace detail::quant {
inline void check_fixed_format(const fixed_point_format& f, std::string_view op) {
  if (f.il < 1 || f.il > 16) throw error(op, "il", detail::concat("(", std::to_string(f.il), ") is outside [1, 16]"));
  if (f.il + f.fl != 16)
    throw error(op, "fl", detail::concat("(", std::to_string(f.fl), ") + il (", std::to_string(f.il), ") is not 16"));
}
}  // namespace detail::quant

// q = sat(round(x 2^FL)), int16 codes of <IL, FL>; rounding nearest_even or stochastic (sr's seed and offsets).
template <class TI = float>
  requires detail::float_element<TI>
class fixed_quantize_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("quantize_fixed", "");

  fixed_quantize_kernel(index_t rows, index_t cols, fixed_point_format f, rounding r = rounding::nearest_even,
                        stochastic_params sr = {})
      : kernel_shape(label, rows, cols), format_(f), rounding_(r), sr_(sr) {
    detail::quant::check_fixed_format(f, label);
    detail::quant::check_rounding(r, label);
    detail::quant::check_stochastic(sr, label);
  }

  void operator()(mat<const in_type> x, mat<std::int16_t> q) const {
    detail::check_in_out(x, q, rows_, cols_, label, "x", "q");
    if (x.empty()) return;
    if (rounding_ == rounding::stochastic)
      detail::quant::fixed_rows_stochastic(x, q, format_.fl, sr_);
    else
      detail::quant::fixed_rows_nearest(x, q, format_.fl);
  }

 private:
  fixed_point_format format_;
  rounding rounding_;
  stochastic_params sr_;
};

// y = q 2^-FL (exact in fp32; a bf16 y rounds to nearest even).
template <class TO = float>
  requires detail::float_element<TO> && (!std::is_const_v<TO>)
class fixed_dequantize_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("dequantize_fixed", "");

  fixed_dequantize_kernel(index_t rows, index_t cols, fixed_point_format f) : kernel_shape(label, rows, cols), format_(f) {
    detail::quant::check_fixed_format(f, label);
  }

  void operator()(mat<const std::int16_t> q, mat<TO> y) const {
    using namespace detail::quant;
    detail::check_in_out(q, y, rows_, cols_, label, "q", "y");
    const V down(std::ldexp(1.0f, -format_.fl));
    for (index_t i = 0; i < rows_; ++i) {
      const std::int16_t* qr = q.row(i);
      TO* yr = y.row(i);
      chunks(cols_, [&](index_t j, index_t n) { store(yr + j, load(qr + j, n) * down, n); });
    }
  }

 private:
  fixed_point_format format_;
};

template <class TI>
void quantize_fixed(mat<TI> x, mat<std::int16_t> q, fixed_point_format f, rounding r = rounding::nearest_even,
                    stochastic_params sr = {}) {
  using kernel = fixed_quantize_kernel<std::remove_const_t<TI>>;
  detail::check_mat(q, kernel::label, "q");
  kernel(q.rows, q.cols, f, r, sr)(x, q);
}

template <class TQ, class TO>
  requires std::same_as<std::remove_const_t<TQ>, std::int16_t>
void dequantize_fixed(mat<TQ> q, mat<TO> y, fixed_point_format f) {
  using kernel = fixed_dequantize_kernel<TO>;
  detail::check_mat(y, kernel::label, "y");
  kernel(y.rows, y.cols, f)(q, y);
}

// ===================================== bf16 =====================================

// y = bf16(x), round to nearest even or stochastic.
class bf16_round_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("round_to_bf16", "");

  bf16_round_kernel(index_t rows, index_t cols, rounding r = rounding::nearest_even, stochastic_params sr = {})
      : kernel_shape(label, rows, cols), rounding_(r), sr_(sr) {
    detail::quant::check_rounding(r, label);
    detail::quant::check_stochastic(sr, label);
  }

  void operator()(mat<const float> x, mat<bf16> y) const {
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    if (x.empty()) return;
    detail::quant::bf16_rows(x, y, rounding_, sr_);
  }

 private:
  rounding rounding_;
  stochastic_params sr_;
};

template <class TI>
  requires std::same_as<std::remove_const_t<TI>, float>
void round_to_bf16(mat<TI> x, mat<bf16> y, rounding r = rounding::nearest_even, stochastic_params sr = {}) {
  detail::check_mat(y, bf16_round_kernel::label, "y");
  bf16_round_kernel(y.rows, y.cols, r, sr)(x, y);
}

// ===================================== block floating point =====================================

// x (rows, cols) -> mantissa codes +-k (rows, cols) and shared exponents E (rows, bfp_blocks(cols, B)).
template <class TI = float, class TM = std::int16_t>
  requires detail::float_element<TI> && (std::same_as<TM, std::int8_t> || std::same_as<TM, std::int16_t>)
class bfp_quantize_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("bfp_quantize", "");
  static constexpr int max_bits = sizeof(TM) == 1 ? 7 : 15;

  bfp_quantize_kernel(index_t rows, index_t cols, bfp_params p) : kernel_shape(label, rows, cols), params_(p) {
    detail::quant::check_bfp_params(p, max_bits, label);
  }

  void operator()(mat<const in_type> x, mat<TM> mantissa, mat<std::int16_t> exponent) const {
    using namespace detail::quant;
    detail::check_mat(x, label, "x");
    detail::check_mat(mantissa, label, "mantissa");
    detail::check_mat(exponent, label, "exponent");
    detail::check_shape(x, rows_, cols_, label, "x", "the kernel\'s");
    detail::check_shape(mantissa, rows_, cols_, label, "mantissa", "the kernel\'s");
    detail::check_shape(exponent, rows_, bfp_blocks(cols_, params_.block), label, "exponent", "the blocks\'");
    detail::check_alias(mantissa, x, label, "mantissa", "x");
    detail::check_alias(exponent, x, label, "exponent", "x");
    detail::check_alias(exponent, mantissa, label, "exponent", "mantissa");
    const V kmax(pow2f(params_.mantissa_bits) - 1.0f);
    bfp_blocks_of<false>(
        x, params_,
        [=](index_t i, index_t b0, index_t n, const bfp_group_scales& g) {
          for (index_t k = 0; k < n; ++k) exponent(i, b0 + k) = std::int16_t(g.e[k]);
        },
        [=](index_t i) {
          return [xr = x.row(i), mr = mantissa.row(i), kmax](index_t j, index_t n, const bfp_scale& s, auto mode) {
            const V v = load(xr + j, n);
            const V k = bfp_magnitude<decltype(mode)::truncate>(v, s.up(), kmax);
            store_int(mr + j, to_i32(copysign(detail::lanes::select(detail::lanes::is_nan(v), V(0.0f), k), v)), n);
          };
        });
  }

  const bfp_params& params() const noexcept { return params_; }

 private:
  bfp_params params_;
};

// y = k 2^(E - m + 1) (exact in fp32; a bf16 y rounds to nearest even). Only block and mantissa_bits are used.
template <class TM = std::int16_t, class TO = float>
  requires(std::same_as<TM, std::int8_t> || std::same_as<TM, std::int16_t>) && detail::float_element<TO> &&
          (!std::is_const_v<TO>)
class bfp_dequantize_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("bfp_dequantize", "");
  static constexpr int max_bits = sizeof(TM) == 1 ? 7 : 15;

  bfp_dequantize_kernel(index_t rows, index_t cols, bfp_params p) : kernel_shape(label, rows, cols), params_(p) {
    detail::quant::check_bfp_params(p, max_bits, label);
  }

  void operator()(mat<const TM> mantissa, mat<const std::int16_t> exponent, mat<TO> y) const {
    using namespace detail::quant;
    detail::check_mat(mantissa, label, "mantissa");
    detail::check_mat(exponent, label, "exponent");
    detail::check_mat(y, label, "y");
    detail::check_shape(mantissa, rows_, cols_, label, "mantissa", "the kernel\'s");
    detail::check_shape(exponent, rows_, bfp_blocks(cols_, params_.block), label, "exponent", "the blocks\'");
    detail::check_shape(y, rows_, cols_, label, "y", "the kernel\'s");
    detail::check_alias(y, mantissa, label, "y", "mantissa");
    detail::check_alias(y, exponent, label, "y", "exponent");
    const int m = params_.mantissa_bits;
    const index_t nb = bfp_blocks(cols_, params_.block);
    bfp_group_scales g;
    for (index_t i = 0; i < rows_; ++i)
      for (index_t b0 = 0; b0 < nb; b0 += W) {
        const index_t n = std::min(W, nb - b0);
        const VI e = to_i32(load(exponent.row(i) + b0, n));  // (partial: 0 past n)
        g.set(iclamp(e, m - 150, 127), m, false);
        for (index_t k = 0; k < n; ++k) {
          const index_t j0 = (b0 + k) * params_.block;
          const pow2_factor down = g[k].down();
          const TM* mr = mantissa.row(i) + j0;
          TO* yr = y.row(i) + j0;
          chunks(std::min(params_.block, cols_ - j0), [&](index_t j, index_t c) { store(yr + j, down(load(mr + j, c)), c); });
        }
      }
  }

 private:
  bfp_params params_;
};

// y = the BFP value of x, in one pass (non-finite x pass through). y may be the very same view as x.
template <class TI = float, class TO = float>
  requires detail::float_element<TI> && detail::float_element<TO> && (!std::is_const_v<TO>)
class bfp_fake_quant_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("bfp_fake_quant", "");

  bfp_fake_quant_kernel(index_t rows, index_t cols, bfp_params p) : kernel_shape(label, rows, cols), params_(p) {
    detail::quant::check_bfp_params(p, 24, label);
  }

  void operator()(mat<const in_type> x, mat<TO> y) const {
    using namespace detail::quant;
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    const V kmax(pow2f(params_.mantissa_bits) - 1.0f);
    const bool stream = detail::streams(y, detail::view_bytes(x) + detail::view_bytes(y)) &&
                        params_.block % W == 0;  // (then every full vector is aligned)
    bfp_blocks_of<true>(
        x, params_, [](index_t, index_t, index_t, const bfp_group_scales&) {},
        [=](index_t i) {
          return [xr = x.row(i), yr = y.row(i), kmax, stream](index_t j, index_t n, const bfp_scale& s, auto mode) {
            const V v = load(xr + j, n);
            V q;
            if constexpr (decltype(mode)::magic) {  // the sign of v where the rounding gave +0
              const V c(s.magic);
              q = as_f32(as_u32((v + c) - c) | (as_u32(v) & VU(0x80000000u)));
            } else {
              q = copysign(s.down()(bfp_magnitude<decltype(mode)::truncate>(v, s.up(), kmax)), v);
            }
            if constexpr (!decltype(mode)::finite) q = finite_else(q, v);  // NaN, Inf pass through
            store_out(yr + j, q, n, stream);
          };
        });
    if (stream) detail::stream_fence();
  }

  const bfp_params& params() const noexcept { return params_; }

 private:
  bfp_params params_;
};

template <class TI, class TM>
void bfp_quantize(mat<TI> x, mat<TM> mantissa, mat<std::int16_t> exponent, bfp_params p) {
  using kernel = bfp_quantize_kernel<std::remove_const_t<TI>, TM>;
  detail::check_mat(mantissa, kernel::label, "mantissa");
  kernel(mantissa.rows, mantissa.cols, p)(x, mantissa, exponent);
}

template <class TM, class TE, class TO>
  requires std::same_as<std::remove_const_t<TE>, std::int16_t>
void bfp_dequantize(mat<TM> mantissa, mat<TE> exponent, mat<TO> y, bfp_params p) {
  using kernel = bfp_dequantize_kernel<std::remove_const_t<TM>, TO>;
  detail::check_mat(y, kernel::label, "y");
  kernel(y.rows, y.cols, p)(mantissa, exponent, y);
}

template <class TI, class TO>
void bfp_fake_quant(mat<TI> x, mat<TO> y, bfp_params p) {
  using kernel = bfp_fake_quant_kernel<std::remove_const_t<TI>, TO>;
  detail::check_mat(y, kernel::label, "y");
  kernel(y.rows, y.cols, p)(x, y);
}

// ===================================== power of two =====================================

// y = 0 or +-2^k (fake-quant). y may be the very same view as x.
template <class TI = float, class TO = float>
  requires detail::float_element<TI> && detail::float_element<TO> && (!std::is_const_v<TO>)
class pow2_quantize_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("pow2_quantize", "");

  pow2_quantize_kernel(index_t rows, index_t cols, pow2_params p) : kernel_shape(label, rows, cols), params_(p) {
    detail::quant::check_pow2_params(p, label, false);
  }

  void operator()(mat<const in_type> x, mat<TO> y) const {
    using namespace detail::quant;
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    const pow2_consts c = make_pow2(params_);
    const bool stream = detail::streams(y, detail::view_bytes(x) + detail::view_bytes(y));
    for (index_t i = 0; i < rows_; ++i) {
      const in_type* xr = x.row(i);
      TO* yr = y.row(i);
      chunks(cols_, xr, [&](index_t j, index_t n) {
        const V v = load(xr + j, n);
        store_out(yr + j, detail::lanes::select(detail::lanes::is_nan(v), v, copysign(pow2_magnitude(detail::lanes::abs(v), c), v)), n,
                  stream);
      });
    }
    if (stream) detail::stream_fence();
  }

 private:
  pow2_params params_;
};

// codes c = 0 or +-(k - kmin + 1), int8.
template <class TI = float>
  requires detail::float_element<TI>
class pow2_encode_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("pow2_encode", "");

  pow2_encode_kernel(index_t rows, index_t cols, pow2_params p) : kernel_shape(label, rows, cols), params_(p) {
    detail::quant::check_pow2_params(p, label, true);
  }

  void operator()(mat<const in_type> x, mat<std::int8_t> code) const {
    using namespace detail::quant;
    detail::check_in_out(x, code, rows_, cols_, label, "x", "code");
    const pow2_consts c = make_pow2(params_);
    for (index_t i = 0; i < rows_; ++i) {
      const in_type* xr = x.row(i);
      std::int8_t* cr = code.row(i);
      chunks(cols_, xr, [&](index_t j, index_t n) {
        const V v = load(xr + j, n);
        const V r = pow2_magnitude(detail::lanes::abs(v), c);
        const V k = biased_exponent(r) - V(c.code_base);
        const V z = detail::lanes::select(detail::lanes::is_nan(v) || r == V(0.0f), V(0.0f), k);
        store_int(cr + j, to_i32(copysign(z, v)), n);
      });
    }
  }

 private:
  pow2_params params_;
};

// y = 0 for c = 0, else sign(c) 2^(kmin - 1 + min(|c|, kmax - kmin + 1)).
template <class TO = float>
  requires detail::float_element<TO> && (!std::is_const_v<TO>)
class pow2_decode_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("pow2_decode", "");

  pow2_decode_kernel(index_t rows, index_t cols, pow2_params p) : kernel_shape(label, rows, cols), params_(p) {
    detail::quant::check_pow2_params(p, label, true);
  }

  void operator()(mat<const std::int8_t> code, mat<TO> y) const {
    using namespace detail::quant;
    detail::check_in_out(code, y, rows_, cols_, label, "code", "y");
    const float top = float(params_.kmax - params_.kmin + 1), base = float(127 + params_.kmin - 1);
    for (index_t i = 0; i < rows_; ++i) {
      const std::int8_t* cr = code.row(i);
      TO* yr = y.row(i);
      chunks(cols_, [&](index_t j, index_t n) {
        const V c = load(cr + j, n);
        const V e = detail::lanes::min(detail::lanes::abs(c), V(top)) + V(base);  // the biased exponent, when c != 0
        const V mag = detail::lanes::select(c == V(0.0f), V(0.0f), pow2_of_biased(e));
        store(yr + j, copysign(mag, c), n);
      });
    }
  }

 private:
  pow2_params params_;
};

template <class TI, class TO>
void pow2_quantize(mat<TI> x, mat<TO> y, pow2_params p) {
  using kernel = pow2_quantize_kernel<std::remove_const_t<TI>, TO>;
  detail::check_mat(y, kernel::label, "y");
  kernel(y.rows, y.cols, p)(x, y);
}

template <class TI>
void pow2_encode(mat<TI> x, mat<std::int8_t> code, pow2_params p) {
  using kernel = pow2_encode_kernel<std::remove_const_t<TI>>;
  detail::check_mat(code, kernel::label, "code");
  kernel(code.rows, code.cols, p)(x, code);
}

template <class TC, class TO>
  requires std::same_as<std::remove_const_t<TC>, std::int8_t>
void pow2_decode(mat<TC> code, mat<TO> y, pow2_params p) {
  using kernel = pow2_decode_kernel<TO>;
  detail::check_mat(y, kernel::label, "y");
  kernel(y.rows, y.cols, p)(code, y);
}

// ===================================== binary and ternary =====================================

// bits (rows, packed_words(cols)): bit 1 where x < 0; scale: rows values mean|x| (or empty: not computed).
template <class TI = float>
  requires detail::float_element<TI>
class binarize_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("binarize", "");

  binarize_kernel(index_t rows, index_t cols) : kernel_shape(label, rows, cols) {}

  void operator()(mat<const in_type> x, mat<std::uint64_t> bits, std::span<float> scale = {}) const {
    using namespace detail::quant;
    detail::check_mat(x, label, "x");
    detail::check_mat(bits, label, "bits");
    detail::check_shape(x, rows_, cols_, label, "x", "the kernel\'s");
    detail::check_shape(bits, rows_, packed_words(cols_), label, "bits", "the packed");
    detail::check_alias(bits, x, label, "bits", "x");
    if (!scale.empty() && index_t(scale.size()) != rows_)
      throw error(label, "scale", detail::concat("has ", std::to_string(scale.size()), " values, not rows (", std::to_string(rows_), ")"));
    for (index_t i = 0; i < rows_; ++i) {
      const in_type* xr = x.row(i);
      double sum = 0.0;
      for (index_t w = 0; w < bits.cols; ++w) {
        const index_t j0 = 64 * w, n = std::min<index_t>(64, cols_ - j0);
        bits(i, w) = word_bits(xr + j0, n, [](V v) { return v < V(0.0f); });
        if (!scale.empty()) sum += double(word_abs_sum(xr + j0, n));
      }
      if (!scale.empty()) scale[std::size_t(i)] = cols_ > 0 ? float(sum / double(cols_)) : 0.0f;
    }
  }
};

// sign, nonzero (rows, packed_words(cols)); scale: rows values (mean |x| over the nonzero t).
template <class TI = float>
  requires detail::float_element<TI>
class ternarize_kernel : public detail::kernel_shape {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("ternarize", "");

  ternarize_kernel(index_t rows, index_t cols, ternarize_params p = {}) : kernel_shape(label, rows, cols), params_(p) {
    if (!(p.threshold >= 0.0f && p.threshold < detail::quant::inf))
      throw error(label, "threshold", detail::concat("(", std::to_string(p.threshold), ") is not finite and >= 0"));
  }

  void operator()(mat<const in_type> x, mat<std::uint64_t> sign, mat<std::uint64_t> nonzero, std::span<float> scale) const {
    using namespace detail::quant;
    detail::check_mat(x, label, "x");
    detail::check_mat(sign, label, "sign");
    detail::check_mat(nonzero, label, "nonzero");
    detail::check_shape(x, rows_, cols_, label, "x", "the kernel\'s");
    detail::check_shape(sign, rows_, packed_words(cols_), label, "sign", "the packed");
    detail::check_shape(nonzero, rows_, packed_words(cols_), label, "nonzero", "the packed");
    detail::check_alias(sign, x, label, "sign", "x");
    detail::check_alias(nonzero, x, label, "nonzero", "x");
    detail::check_alias(nonzero, sign, label, "nonzero", "sign");
    if (index_t(scale.size()) != rows_)
      throw error(label, "scale", detail::concat("has ", std::to_string(scale.size()), " values, not rows (", std::to_string(rows_), ")"));
    const index_t words = packed_words(cols_);
    for (index_t i = 0; i < rows_; ++i) {
      const in_type* xr = x.row(i);
      double sum = 0.0;
      for (index_t w = 0; w < words; ++w) sum += double(word_abs_sum(xr + 64 * w, std::min<index_t>(64, cols_ - 64 * w)));
      const float mean = cols_ > 0 ? float(sum / double(cols_)) : 0.0f;
      const float delta = params_.threshold * mean;
      double kept = 0.0;
      index_t count = 0;
      for (index_t w = 0; w < words; ++w) {
        const index_t j0 = 64 * w, n = std::min<index_t>(64, cols_ - j0);
        const std::uint64_t nz = word_bits(xr + j0, n, [&](V v) { return detail::lanes::abs(v) > V(delta); });
        nonzero(i, w) = nz;
        sign(i, w) = nz & word_bits(xr + j0, n, [](V v) { return v < V(0.0f); });
        count += std::popcount(nz);
        V s(0.0f);
        chunks(n, [&](index_t j, index_t c) {
          const V a = detail::lanes::abs(load(xr + j0 + j, c));
          s = s + detail::lanes::select(a > V(delta), a, V(0.0f));
        });
        kept += double(hsum(s));
      }
      scale[std::size_t(i)] = count > 0 ? float(kept / double(count)) : 0.0f;
    }
  }

  const ternarize_params& params() const noexcept { return params_; }

 private:
  ternarize_params params_;
};

template <class TI>
void binarize(mat<TI> x, mat<std::uint64_t> bits, std::span<float> scale = {}) {
  detail::check_mat(x, binarize_kernel<std::remove_const_t<TI>>::label, "x");
  binarize_kernel<std::remove_const_t<TI>>(x.rows, x.cols)(x, bits, scale);
}

template <class TI>
void ternarize(mat<TI> x, mat<std::uint64_t> sign, mat<std::uint64_t> nonzero, std::span<float> scale,
               ternarize_params p = {}) {
  detail::check_mat(x, ternarize_kernel<std::remove_const_t<TI>>::label, "x");
  ternarize_kernel<std::remove_const_t<TI>>(x.rows, x.cols, p)(x, sign, nonzero, scale);
}

namespace detail::quant {
// y(i, j) = (nonzero bit ? (sign bit ? -a : a) : 0), a = scale[i] or 1.
template <class TO>
void unpack_rows(const mat<const std::uint64_t>* sign, const mat<const std::uint64_t>* nonzero, std::span<const float> scale,
                 mat<TO> y) noexcept {
  for (index_t i = 0; i < y.rows; ++i) {
    const float a = scale.empty() ? 1.0f : scale[std::size_t(i)];
    TO* yr = y.row(i);
    for (index_t j = 0; j < y.cols; ++j) {
      const std::uint64_t bit = std::uint64_t(1) << (j % 64);
      const bool neg = ((*sign)(i, j / 64) & bit) != 0;
      const bool nz = nonzero == nullptr || ((*nonzero)(i, j / 64) & bit) != 0;
      yr[j] = from_float<TO>(nz ? (neg ? -a : a) : 0.0f);
    }
  }
}
}  // namespace detail::quant

// y = +-scale[i] (or +-1 with no scales) from binary bits (rows, packed_words(cols)).
template <class TB, class TO>
  requires std::same_as<std::remove_const_t<TB>, std::uint64_t> && detail::float_element<TO> && (!std::is_const_v<TO>)
void unpack_binary(mat<TB> bits, std::span<const float> scale, mat<TO> y) {
  constexpr std::string_view op = "unpack_binary";
  detail::check_mat(bits, op, "bits");
  detail::check_mat(y, op, "y");
  detail::check_shape(bits, y.rows, packed_words(y.cols), op, "bits", "the packed");
  if (!scale.empty() && index_t(scale.size()) != y.rows)
    throw error(op, "scale", detail::concat("has ", std::to_string(scale.size()), " values, not rows (", std::to_string(y.rows), ")"));
  detail::check_alias(y, bits, op, "y", "bits");
  const mat<const std::uint64_t> b = bits;
  detail::quant::unpack_rows<TO>(&b, nullptr, scale, y);
}

// y = +-scale[i] (or +-1), 0 from ternary planes.
template <class TS, class TN, class TO>
  requires std::same_as<std::remove_const_t<TS>, std::uint64_t> && std::same_as<std::remove_const_t<TN>, std::uint64_t> &&
           detail::float_element<TO> && (!std::is_const_v<TO>)
void unpack_ternary(mat<TS> sign, mat<TN> nonzero, std::span<const float> scale, mat<TO> y) {
  constexpr std::string_view op = "unpack_ternary";
  detail::check_mat(sign, op, "sign");
  detail::check_mat(nonzero, op, "nonzero");
  detail::check_mat(y, op, "y");
  detail::check_shape(sign, y.rows, packed_words(y.cols), op, "sign", "the packed");
  detail::check_shape(nonzero, y.rows, packed_words(y.cols), op, "nonzero", "the packed");
  if (!scale.empty() && index_t(scale.size()) != y.rows)
    throw error(op, "scale", detail::concat("has ", std::to_string(scale.size()), " values, not rows (", std::to_string(y.rows), ")"));
  detail::check_alias(y, sign, op, "y", "sign");
  detail::check_alias(y, nonzero, op, "y", "nonzero");
  const mat<const std::uint64_t> s = sign, nz = nonzero;
  detail::quant::unpack_rows<TO>(&s, &nz, scale, y);
}

// C (m, n) int32 = A (m, K) B (K, n) over {-1, +1}: a (m, packed_words(K)), bt = B^T packed (n, packed_words(K)).
class binary_gemm_kernel {
 public:
  static constexpr detail::op_label label = detail::make_label("binary_gemm", "");

  binary_gemm_kernel(index_t m, index_t n, index_t k) : m_(m), n_(n), k_(k) {
    detail::check_sizes(label, m, n, "m", "n");
    detail::check_sizes(label, k, 0, "k");
  }

  void operator()(mat<const std::uint64_t> a, mat<const std::uint64_t> bt, mat<std::int32_t> c) const {
    detail::check_mat(a, label, "a");
    detail::check_mat(bt, label, "bt");
    detail::check_mat(c, label, "c");
    const index_t words = packed_words(k_);
    detail::check_shape(a, m_, words, label, "a", "the packed (m, words(k))");
    detail::check_shape(bt, n_, words, label, "bt", "the packed (n, words(k))");
    detail::check_shape(c, m_, n_, label, "c", "the kernel\'s");
    detail::check_alias(c, a, label, "c", "a");
    detail::check_alias(c, bt, label, "c", "bt");
    if (c.empty()) return;
    const std::uint64_t last = detail::quant::tail_mask(k_);
    // Columns of B^T per pass: about 192 KiB of packed rows, so they stay in L2 while A's rows stream.
    const index_t nc = std::max<index_t>(4, (192 * 1024 / std::max<index_t>(8 * words, 1)) / 4 * 4);
    for (index_t j0 = 0; j0 < n_; j0 += nc) {
      const index_t j1 = std::min(n_, j0 + nc);
      for (index_t i = 0; i < m_; i += 4) {
        const std::uint64_t* ar[4];
        for (index_t r = 0; r < 4; ++r) ar[r] = a.row(std::min(i + r, m_ - 1));  // edge rows repeat row m - 1
        for (index_t j = j0; j < j1; j += 4) {
          const std::uint64_t* br[4];
          for (index_t q = 0; q < 4; ++q) br[q] = bt.row(std::min(j + q, n_ - 1));
          std::int64_t cnt[4][4];
          if (words > 0) {
            detail::quant::xor_popcount_4x4(ar, br, words, last, cnt);
          } else {
            for (auto& row : cnt)
              for (auto& v : row) v = 0;
          }
          for (index_t r = 0; r < 4 && i + r < m_; ++r)
            for (index_t q = 0; q < 4 && j + q < j1; ++q) c(i + r, j + q) = std::int32_t(k_ - 2 * cnt[r][q]);
        }
      }
    }
  }

  index_t m() const noexcept { return m_; }
  index_t n() const noexcept { return n_; }
  index_t k() const noexcept { return k_; }

 private:
  index_t m_, n_, k_;
};

template <class TA, class TB>
  requires std::same_as<std::remove_const_t<TA>, std::uint64_t> && std::same_as<std::remove_const_t<TB>, std::uint64_t>
void binary_gemm(mat<TA> a, mat<TB> bt, mat<std::int32_t> c, index_t k) {
  detail::check_mat(c, binary_gemm_kernel::label, "c");
  binary_gemm_kernel(c.rows, c.cols, k)(a, bt, c);
}

}  // namespace tpp
