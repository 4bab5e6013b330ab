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
//     of 2^-FL. round = rne, or stochastic: floor(t) + (r < t - floor(t)) with r = (h >> 8) 2^-24 uniform on
//     the 2^24-point grid of [0, 1), so t rounds up with probability ceil(frac 2^24) 2^-24: unbiased to
//     within 2^-24 of a step. The scalings by 2^FL and 2^-FL are exact (no Policy product).
//   bf16         round_to_bf16     rne (to_bf16_rne's bits) or stochastic: the fp32 bit pattern plus the low
//     16 bits of h, truncated to its upper half, so |x| rounds away from zero with probability
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
// Stochastic rounding draws h = rounding_bits(seed, row + row_offset, col + col_offset): the counter-based
// hash of dropout (ops/unary.hpp: dropout_hash(dropout_row_key(seed ^ rounding_stream, r), c)), keyed by the
// element's position in the logical tensor, so results are reproducible for a seed and independent of
// tiling, threading and SIMD width (a tile passes its offsets and gets the whole tensor's bits); different
// elements draw independently hashed bits. The constant rounding_stream separates the stream from
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

// The 32 random bits of element (row, col) of the logical tensor (offsets applied by the caller).
inline constexpr std::uint64_t rounding_stream = 0x9e3779b97f4a7c15ull;  // (the golden-ratio constant)

constexpr std::uint32_t rounding_bits(std::uint64_t seed, index_t row, index_t col) noexcept {
  return dropout_hash(dropout_row_key(seed ^ rounding_stream, std::uint64_t(row)), std::uint32_t(col));
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
// (h >> 8) 2^-24: uniform on the 2^24-point grid of [0, 1).
inline float unit_uniform(std::uint32_t h) noexcept { return float(h >> 8) * 0x1p-24f; }
template <class A>
xsimd::batch<float, A> unit_uniform(xsimd::batch<std::uint32_t, A> h) noexcept {
  return xsimd::to_float(xsimd::bitwise_cast<xsimd::batch<std::int32_t, A>>(h >> 8)) * xsimd::batch<float, A>(0x1p-24f);
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

// The same over a row whose fp32 / bf16 input src streams in (read once, perhaps from DRAM), with a
// software prefetch (to L2) 8 KiB ahead of src + j before each f. From DRAM the hardware prefetchers alone
// held int8 quantize to 33 GB/s, and per column (its scales competing for the L1) to 14, against memcpy's
// 41; with it 55 and 41 (distances of 2 and 4 KiB gave 24 and 33 per column). 8- and 16-bit code inputs
// (a quarter or half of a line per vector) measured no faster with it and use the plain form.
template <class T, class F>
[[gnu::flatten]] inline void chunks(index_t cols, const T* src, F&& f) {
  chunks(cols, [&](index_t j, index_t n) {
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(src + j) + 8192), 0, 2);
    f(j, n);
  });
}

// Column indices col_offset + j + lane of a chunk, as the hash's 32-bit counters.
inline VU col_counters(index_t col_offset, index_t j) noexcept {
  return VU(std::uint32_t(col_offset + j)) + io::iota();
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

template <rounding R, class TI>
void fixed_rows(mat<const TI> x, mat<std::int16_t> q, int fl, const stochastic_params& sr) noexcept {
  const V up(std::ldexp(1.0f, fl));
  const std::uint64_t seed = sr.seed;
  const index_t ro = sr.row_offset, co = sr.col_offset;
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    std::int16_t* qr = q.row(i);
    const std::uint64_t key = dropout_row_key(seed ^ rounding_stream, std::uint64_t(ro + i));
    chunks(x.cols, xr, [=](index_t j, index_t n) {
      const V t = load(xr + j, n) * up;  // exact: a power of two, scaling up
      V r;
      if constexpr (R == rounding::nearest_even) {
        r = round_even(t);
      } else {
        const V f = floor(t);
        const V u = unit_uniform(dropout_hash(key, col_counters(co, j)));
        r = f + lanes::select(u < t - f, V(1.0f), V(0.0f));  // Inf: Inf - Inf = NaN, no increment
      }
      r = lanes::select(lanes::is_nan(r), V(0.0f), r);
      store_int(qr + j, to_i32(lanes::clamp(r, -32768.0f, 32767.0f)), n);
    });
  }
}

// ---- bf16 ----

// The fp32 pattern plus the low 16 bits of h (its upper half is the result), NaN made quiet.
template <class U>
V stochastic_bf16(V x, U h) noexcept {
  const U u = as_u32(x);
  return lanes::select(lanes::is_nan(x), as_f32(u | U(0x00400000u)), as_f32(u + (h & U(0xffffu))));
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
    const index_t co = sr.col_offset;
    chunks(x.cols, xr, [=](index_t j, index_t n) {
      store_upper(yr + j, stochastic_bf16(load(xr + j, n), dropout_hash(key, col_counters(co, j))), n);
    });
  }
}

// ---- block floating point ----

inline float pow2f(int e) noexcept { return std::bit_cast<float>(std::uint32_t(e + 127) << 23); }  // e in [-126, 127]

// floor(log2 a) for a finite a > 0 (denormals included).
inline int exponent_of(float a) noexcept {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(a);
  const int be = int(b >> 23);
  return be > 0 ? be - 127 : int(std::bit_width(b)) - 150;
}

// A block's shared exponent and the exact power-of-two factors that take |x| to k's scale (up) and k back
// (down), each split in two so every factor is a normal float.
struct bfp_scale {
  int e;
  float up1, up2, down1, down2;
};

inline bfp_scale make_bfp_scale(int e, int m) noexcept {
  const int u = m - 1 - e;  // |x| 2^u = k's scale; u in [m - 128, 149]
  const int u1 = std::clamp(u, -126, 127), d = e - m + 1, d1 = std::max(d, -126);
  return {e, pow2f(u1), pow2f(u - u1), pow2f(d1), pow2f(d - d1)};
}

inline bfp_scale choose_bfp_scale(float maxabs, int m, bool truncate) noexcept {
  const int emin = m - 150;
  int e = maxabs > 0.0f ? std::max(exponent_of(maxabs), emin) : emin;
  if (!truncate) {
    const bfp_scale s = make_bfp_scale(e, m);
    if (std::nearbyint(maxabs * s.up1 * s.up2) >= pow2f(m)) ++e;  // the maximum rounds up to 2^m (m <= 24)
  }
  return make_bfp_scale(std::min(e, 127), m);
}

// k = round(|x| / step) in [0, 2^m - 1] (float lanes; NaN -> 0, Inf -> 2^m - 1).
inline V bfp_magnitude(V x, const bfp_scale& s, float kmax, bool truncate) noexcept {
  const V t = lanes::abs(x) * V(s.up1) * V(s.up2);
  const V k = lanes::clamp(truncate ? floor(t) : round_even(t), 0.0f, kmax);
  return lanes::select(lanes::is_nan(k), V(0.0f), k);
}

// The largest finite |x| of n values.
template <class T>
float block_maxabs(const T* p, index_t len) noexcept {
  V m(0.0f);
  chunks(len, p, [&](index_t j, index_t n) {
    const V a = lanes::abs(load(p + j, n));
    m = lanes::max(m, lanes::select(a < V(inf), a, V(0.0f)));
  });
  return hmax(m);
}

// Per block of each row: f(row i, block b, first column j0, length len, scale).
template <class TI, class F>
void bfp_blocks_of(mat<const TI> x, const bfp_params& p, F&& f) {
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    for (index_t j0 = 0, b = 0; j0 < x.cols; j0 += p.block, ++b) {
      const index_t len = std::min(p.block, x.cols - j0);
      f(i, b, j0, len, choose_bfp_scale(block_maxabs(xr + j0, len), p.mantissa_bits, p.truncate));
    }
  }
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
      detail::quant::fixed_rows<rounding::stochastic>(x, q, format_.fl, sr_);
    else
      detail::quant::fixed_rows<rounding::nearest_even>(x, q, format_.fl, sr_);
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
    const float kmax = std::ldexp(1.0f, params_.mantissa_bits) - 1.0f;
    const bool trunc = params_.truncate;
    bfp_blocks_of(x, params_, [&](index_t i, index_t b, index_t j0, index_t len, const bfp_scale& s) {
      const in_type* xr = x.row(i) + j0;
      TM* mr = mantissa.row(i) + j0;
      chunks(len, xr, [&](index_t j, index_t n) {
        const V v = load(xr + j, n);
        store_int(mr + j, to_i32(copysign(bfp_magnitude(v, s, kmax, trunc), v)), n);
      });
      exponent(i, b) = std::int16_t(s.e);
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
    for (index_t i = 0; i < rows_; ++i)
      for (index_t j0 = 0, b = 0; j0 < cols_; j0 += params_.block, ++b) {
        const index_t len = std::min(params_.block, cols_ - j0);
        const int e = std::clamp(int(exponent(i, b)), m - 150, 127);
        const bfp_scale s = make_bfp_scale(e, m);
        const TM* mr = mantissa.row(i) + j0;
        TO* yr = y.row(i) + j0;
        chunks(len, [&](index_t j, index_t n) { store(yr + j, load(mr + j, n) * V(s.down1) * V(s.down2), n); });
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
    const float kmax = std::ldexp(1.0f, params_.mantissa_bits) - 1.0f;
    const bool trunc = params_.truncate;
    bfp_blocks_of(x, params_, [&](index_t i, index_t, index_t j0, index_t len, const bfp_scale& s) {
      const in_type* xr = x.row(i) + j0;
      TO* yr = y.row(i) + j0;
      chunks(len, xr, [&](index_t j, index_t n) {
        const V v = load(xr + j, n);
        const V q = copysign(bfp_magnitude(v, s, kmax, trunc) * V(s.down1) * V(s.down2), v);
        store(yr + j, detail::lanes::select(detail::lanes::abs(v) < V(inf), q, v), n);
      });
    });
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
    for (index_t i = 0; i < rows_; ++i) {
      const in_type* xr = x.row(i);
      TO* yr = y.row(i);
      chunks(cols_, xr, [&](index_t j, index_t n) {
        const V v = load(xr + j, n);
        store(yr + j, detail::lanes::select(detail::lanes::is_nan(v), v, copysign(pow2_magnitude(detail::lanes::abs(v), c), v)), n);
      });
    }
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
