#pragma once
// The softmax family of the norm primitives (included by ops/norm.hpp; compiles on its own): softmax and
// log-softmax over each row of an (M, N) view, forward and backward, and cross-entropy over rows of logits.
//
// Variants (softmax_kind; every row independent, m = max_j x_j, e_j = exp(x_j - m), s = Σ_j e_j,
// P(a, b) = Policy::mul(a, b), the first operand the data value):
//   softmax      forward  y_j  = P(e_j, 1 / s)
//                backward dx_j = P(y_j, dy_j - dot),        dot = Σ_k P(dy_k, y_k)
//   log_softmax  forward  y_j  = (x_j - m) - log(s)
//                backward dx_j = dy_j - P(exp(y_j), sum),   sum = Σ_k dy_k
//   cross_entropy(logits (M, N), labels (M), dlogits): returns (1 / M) Σ_i loss_i,
//                loss_i = log(s_i) - (x_i,label_i - m_i)    (= -log_softmax(x_i)[label_i]);
//                dlogits_ij = P(e_ij, c_i) - (j == label_i ? 1 / M : 0),  c_i = 1 / (s_i M)
//                (= (softmax(x_i) - onehot(label_i)) / M); the M row losses (fp32) are summed in double and
//                the mean rounded once to fp32. M = 0 returns NaN (the mean of nothing, 0 / 0).
// Policy products: exactly the P(.) above: softmax's normalisation P(e, 1/s), its backward's dot terms
// P(dy, y) and P(y, dy - dot), log_softmax's backward P(exp(y), Σ dy), cross-entropy's gradient
// P(e, 1/(s M)); scalar mul in scalar code, the bit-identical SIMD mul in vector code. log_softmax's
// forward and the cross-entropy loss have no per-element product. Row constants (m, s, 1/s, log s,
// 1/(s M), 1/M, the sums) are plain fp32 (M converted to fp32); the products inside exp are exact fp32.
// For approx::exact the compiler may fuse the dot's product into its accumulating add (FMA), which only
// drops a rounding.
//
// Passes over a row: softmax forward 3 (max; exp, sum and e stored, into y when y is fp32, else into a
// per-thread fp32 scratch row; y = P(e, 1/s) from the stored e); log_softmax forward 3 (max; sum of exp;
// y from x); backward 2 (the row sum; dx); cross-entropy 2 without dlogits, 3 with (as softmax).
// Each exp is evaluated once. Rows of up to 1024 elements go through each pass in blocks of
// R = min(8, 2048 / N) rows, so that one row's serial chain (max, horizontal reductions, 1 / s) overlaps
// the next rows' work; longer rows go one at a time and prefetch the next row into L2 during their
// compute pass (measured on one core: 128 x 30522 fp32 softmax 1130 -> 800 us). Results do not
// depend on the blocking: every row runs the same code.
//
// Special values (per row; no row affects another). A NaN anywhere in a row makes s NaN, so every output
// of the row is NaN (and its loss). +Inf in a row gives m = +Inf and Inf - Inf = NaN: the whole row is
// NaN (softmax, log_softmax, loss, gradient). A row of only -Inf gives -Inf - (-Inf) = NaN: a NaN row (the
// limit is 0 / 0). -Inf entries of a row with a finite maximum give e = 0 exactly: softmax y = +0,
// log_softmax y = -Inf, gradient P(0, c) = +0 (at the label: -1/M, the limit), and a -Inf logit at the
// label gives loss = +Inf. Large finite values cannot overflow: x - m <= 0, so 0 <= e <= 1, 1 <= s <= N
// (x - m itself may round to -Inf when x and m are of opposite sign near the float range, which gives the
// correctly rounded e = 0, y = -Inf). Where the row max ignores a NaN is unspecified (it depends on the
// position and the arch); the result does not depend on it. Backward: IEEE propagation through the
// formulas (NaN in dy or y gives NaN in the row's dx through dot / sum; log_softmax backward at y = -Inf
// gives exp(y) = 0, so dx = dy). exp results below the normal range are flushed to +0 by xsimd (arguments
// below -88.38) and kept as denormals by <cmath>; the difference is below 1.2e-38 absolute.
//
// Accuracy (fp32 outputs; a bf16 output adds its rounding, 2^-8 relative). exp: xsimd 8.1 (measured
// within 2.2 x 2^-24 relative) or <cmath> under TPP_NO_SIMD (glibc, within 1 x 2^-24); its argument
// x - m carries one rounding, u |x - m| absolute (u = 2^-24), which exp turns into a relative error.
// Sums are blocked: U = 4 vector accumulators (W lanes) take S = 16 steps each into a leaf of S U W
// elements; leaves combine pairwise (binary-counter cascade), the U accumulators and the W lanes by trees.
// Every term passes through at most d = softmax_sum_depth(n) additions (below: d = ceil(min(n, S U W) /
// (U W)) + 2 + log2 W + ceil(log2 ceil(n / (S U W))): 8 for n = 128 and W = 16, 27 for n = 30522), so for
// terms t_k: |computed - Σ t_k| <= γ_d Σ |t_k|, γ_d = d u / (1 - d u). Then, to first order:
//   softmax y_j:      relative   e_exp + u |x_j - m| + δ_s + u + ε_P   (u: the division 1 / s),
//                     δ_s = γ_d + Σ_k e_k (e_exp + u |x_k - m|) / s   (s's relative error)
//   log_softmax y_j:  absolute   u |x_j - m| + δ_s + e_log |log s| + u |y_j|
//   softmax dx_j:     absolute   |y_j| (E + u (|g_j| + E)) + ε_P |y_j g_j|,  g_j = dy_j - dot,
//                     E = (ε_P + γ_d (1 + ε_P)) Σ_k |dy_k y_k|   (dot's error)
//   log_softmax dx_j: absolute   exp(y_j) (e_exp |Σ dy| + γ_d Σ |dy_k|) + ε_P exp(y_j) |Σ dy| + u |dx_j|
//   cross-entropy:    loss_i absolute  u |x_l - m| + δ_s + e_log |log s| + u |loss_i|, the mean adds its
//                     final rounding; gradient relative to p_ij / M: e_exp + u |x_j - m| + δ_s + 2u + ε_P,
//                     at the label plus u (1/M + |g|)
// with ε_P = Policy::max_rel_error (exact: u), e_exp as above and e_log = 2u (the scalar std::log of the
// row). test/ops/softmax.cpp states and checks these bounds.
//
// Types: x, y, dy, dx, logits, dlogits fp32 or bf16 (mat<T> or mat<const T>), in any combination;
// computation in fp32; bf16 outputs round to nearest even. labels: std::span<const std::int32_t>.
// y may be the very same view as x, dx as dy or as y, dlogits as logits (in-place); any other overlap
// throws (detail::check_alias). dlogits is absent when it is the default (null, 0 x 0) view; otherwise it
// must be (M, N).
//
// Dispatch: the policy is a template parameter, the kind is chosen once per call (a branch to a row loop
// compiled per kind). Vector loops at simd::default_arch with one partial batch per row and pass for the
// tail (masked loads and stores at AVX-512 and, for fp32, AVX2; lane_io's element loops elsewhere);
// scalar loops with TPP_NO_SIMD. The row loops are [[gnu::flatten]]ed: GCC 12 otherwise calls xsimd's
// exp out of line. Single-threaded, safe inside a caller's OpenMP region (the scratch rows are per
// thread: thread_scratch slot 7, R N floats, for softmax with bf16 y and cross-entropy with bf16 dlogits).
//
// API (Policy = approx::exact, constrained by approx::multiplier):
//   softmax_kernel<P> k(rows, cols, softmax_kind::softmax);   // or softmax_kind::log_softmax
//   k.forward(x, y); k.backward(dy, y, dx);
//   softmax<P>(x, y), softmax_backward<P>(dy, y, dx), log_softmax<P>(x, y), log_softmax_backward<P>(dy, y, dx)
//   float loss = cross_entropy<P>(logits, labels, dlogits = {});
//   softmax_sum_depth(n)                  // the d of the sum bound above, for tests and callers
// The member and free functions take mat<T> with T maybe const-qualified (a mat<float> converts to
// mat<const float>, but deduction would not see through that conversion).
// Errors (tpp::error naming op and argument): negative sizes, shapes other than the kernel's, ld < cols,
// null data with nonzero size, forbidden overlaps, an invalid kind, labels.size() != M, a label outside
// [0, N) ("labels[i]").

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/bf16.hpp"
#include "../../core/error.hpp"
#include "../../core/mat.hpp"
#include "../../core/scratch.hpp"
#include "../../core/simd.hpp"
#include "../../core/types.hpp"
#include "elementwise.hpp"

#if defined(__SSE2__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

// The row loops' [[gnu::flatten]] (see softmax_rows), left out under AddressSanitizer, which instruments
// every inlined xsimd temporary: the flattened loops then take minutes and gigabytes to compile (this
// header's test: over 8 GB and 10 minutes with it, 1.2 GB and 1 minute without). #undef'd at the end.
#if defined(__SANITIZE_ADDRESS__)
#define TPP_SOFTMAX_FLATTEN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TPP_SOFTMAX_FLATTEN
#endif
#endif
#ifndef TPP_SOFTMAX_FLATTEN
#define TPP_SOFTMAX_FLATTEN [[gnu::flatten]]
#endif

namespace tpp {

enum class softmax_kind : std::uint8_t { softmax, log_softmax };

constexpr std::string_view name(softmax_kind k) noexcept {
  switch (k) {
    case softmax_kind::softmax: return "softmax";
    case softmax_kind::log_softmax: return "log_softmax";
  }
  return "invalid";
}

namespace detail::softmax_impl {

using V = simd::lane;
using io = lane_io<V>;
inline constexpr index_t W = io::width;
inline constexpr index_t U = 4;                   // vector accumulators of a leaf
inline constexpr index_t S = 16;                  // steps per accumulator in a full leaf
inline constexpr index_t leaf_size = S * U * W;  // elements of a leaf
inline constexpr int scratch_slot = 7;            // thread_scratch: the fp32 e row for bf16 outputs
inline constexpr float inf = std::numeric_limits<float>::infinity();

constexpr index_t ceil_log2(index_t n) noexcept {
  index_t l = 0;
  while (l < 63 && (index_t(1) << l) < n) ++l;
  return l;
}

constexpr std::string_view backward_label(softmax_kind k) noexcept {
  return k == softmax_kind::softmax ? "softmax_backward" : "log_softmax_backward";
}

// ---- lanes ----

using lanes::hsum;

// a > b ? a : b (x86's maxps: b when either is NaN; NEON's fmax returns the NaN). A row max is exact; its
// NaN behaviour does not matter: a NaN x_j makes s, and so the whole row, NaN.
inline float vmax(float a, float b) noexcept { return a > b ? a : b; }
template <class A>
xsimd::batch<float, A> vmax(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  return xsimd::max(a, b);
}

inline float hmax(float v) noexcept { return v; }
template <class A>
float hmax(xsimd::batch<float, A> v) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    const __m512 z = v;
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(z),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1)));
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_max_ss(q, _mm_shuffle_ps(q, q, 1)));
  } else
#endif
#if defined(__AVX__)
  if constexpr (std::is_base_of_v<xsimd::avx, A>) {
    const __m256 h = v;
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_max_ss(q, _mm_shuffle_ps(q, q, 1)));
  } else
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    __m128 q = v;
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_max_ss(q, _mm_shuffle_ps(q, q, 1)));
  } else
#endif
  {
    constexpr std::size_t n = xsimd::batch<float, A>::size;
    alignas(64) float buf[n];
    v.store_aligned(buf);
    float m = buf[0];
    for (std::size_t i = 1; i < n; ++i) m = vmax(buf[i], m);
    return m;
  }
}

// The first c (0 < c < W) elements of a row from p, +0 in the other lanes, and the store of the first c
// lanes (bf16 rounded like lane_io's stores). Masked loads and stores where the ISA has them (AVX-512:
// fp32 and, with BW + VL, bf16; AVX2: fp32), which never touch the masked-off elements; else lane_io's
// element loops (a buffer store and a wide reload: a store-forwarding stall per tail; measured at AVX-512,
// 1536 x 127 fp32 softmax: 138 us with them, 65 us masked, 57 us for 1536 x 128). Named so that the
// scalar build (W = 1, never a tail) compiles the calls.
// (These belong in arch/ next to convert.hpp, where lane_io could use them too.)
template <class T>
V load_tail(const T* p, [[maybe_unused]] index_t c) noexcept {
  if constexpr (W == 1) {
    return to_float(*p);
  } else {
    using A = simd::default_arch;
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
      const __mmask16 k = __mmask16((1u << c) - 1u);
      if constexpr (std::is_same_v<T, float>) return V(_mm512_maskz_loadu_ps(k, p));
#if defined(__AVX512BW__) && defined(__AVX512VL__)
      if constexpr (std::is_same_v<T, bf16>)
        return V(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16)));
#endif
    }
#endif
#if defined(__AVX2__)
    if constexpr (std::is_same_v<A, xsimd::fma3<xsimd::avx2>> || std::is_same_v<A, xsimd::avx2>) {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(c)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      if constexpr (std::is_same_v<T, float>) return V(_mm256_maskload_ps(p, m));
    }
#endif
    return simd::load_partial<A>(p, c);
  }
}
template <class T>
void store_tail(T* p, V v, [[maybe_unused]] index_t c) noexcept {
  if constexpr (W == 1) {
    *p = from_float<T>(v);
  } else {
    using A = simd::default_arch;
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
      const __mmask16 k = __mmask16((1u << c) - 1u);
      if constexpr (std::is_same_v<T, float>) return _mm512_mask_storeu_ps(p, k, v);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
      if constexpr (std::is_same_v<T, bf16>) {
        alignas(32) bf16 buf[16];
        simd::store<A>(buf, v);
        return _mm256_mask_storeu_epi16(p, k, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf)));
      }
#endif
    }
#endif
#if defined(__AVX2__)
    if constexpr (std::is_same_v<A, xsimd::fma3<xsimd::avx2>> || std::is_same_v<A, xsimd::avx2>) {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(c)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      if constexpr (std::is_same_v<T, float>) return _mm256_maskstore_ps(p, m, v);
    }
#endif
    simd::store_partial<A>(p, v, c);
  }
}

// Lanes [0, c) true, the others false (0 < c < W).
template <class A>
xsimd::batch_bool<float, A> first_lanes(index_t c) noexcept {
  alignas(64) static constexpr float iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  static_assert(xsimd::batch<float, A>::size <= 16);
  return xsimd::batch<float, A>::load_aligned(iota) < xsimd::batch<float, A>(float(c));
}

// v in lanes [0, c), +0 (or `fill`) in the others: what a tail contributes to a row reduction.
template <class A>
xsimd::batch<float, A> keep_first(xsimd::batch<float, A> v, index_t c, float fill = 0.0f) noexcept {
  return xsimd::select(first_lanes<A>(c), v, xsimd::batch<float, A>(fill));
}
inline float keep_first(float v, index_t, float = 0.0f) noexcept { return v; }

// ---- row reductions ----

// max_j x_j over a row of n >= 1 elements (NaN: see vmax).
template <class T>
float row_max(const T* x, index_t n) noexcept {
  V m0(-inf), m1(-inf), m2(-inf), m3(-inf);
  index_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) {
    m0 = vmax(io::load(x + j), m0);
    m1 = vmax(io::load(x + j + W), m1);
    m2 = vmax(io::load(x + j + 2 * W), m2);
    m3 = vmax(io::load(x + j + 3 * W), m3);
  }
  for (; j + W <= n; j += W) m0 = vmax(io::load(x + j), m0);
  if constexpr (W > 1) {
    if (j < n) m1 = vmax(keep_first(load_tail(x + j, n - j), n - j, -inf), m1);
  }
  return hmax(vmax(vmax(m0, m1), vmax(m2, m3)));
}

// Σ_j t_j over the leaf [j, j1) of a row (j1 - j <= leaf_size): f.full(j) gives the W terms from j,
// f.tail(j, c) the c < W terms from j with +0 in the other lanes (only a row's last leaf has a tail). Four
// accumulators take the vectors in turn (the rotation is register renaming), so each adds at most
// ceil(vectors / 4) terms; one call site of f.full keeps the flattened row loops small (an unrolled
// version compiled to eight inlined exps per loop nest, with no speed gain: the exps are independent).
template <class F>
[[gnu::always_inline]] inline V leaf_sum(const F& f, index_t j, index_t j1) noexcept {
  V a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
  for (; j + W <= j1; j += W) {
    const V t = a0 + f.full(j);
    a0 = a1;
    a1 = a2;
    a2 = a3;
    a3 = t;
  }
  if constexpr (W > 1) {
    if (j < j1) a0 = a0 + f.tail(j, j1 - j);
  }
  return (a0 + a1) + (a2 + a3);
}

// Rows longer than a leaf: leaves combined pairwise (binary-counter cascade).
template <class F>
TPP_SOFTMAX_FLATTEN [[gnu::noinline]] V long_row_sum(const F& f, index_t n) noexcept {
  V level[64];
  std::uint64_t count = 0;
  for (index_t j = 0; j < n; j += leaf_size) {
    V t = leaf_sum(f, j, n - j < leaf_size ? n : j + leaf_size);
    int l = 0;
    for (; (count >> l) & 1u; ++l) t = level[l] + t;
    level[l] = t;
    ++count;
  }
  V r(0.0f);
  bool first = true;
  for (int l = 0; (count >> l) != 0; ++l)
    if ((count >> l) & 1u) {
      r = first ? level[l] : r + level[l];
      first = false;
    }
  return r;
}

template <class F>
TPP_SOFTMAX_FLATTEN float row_sum(const F& f, index_t n) noexcept {
  return hsum(n <= leaf_size ? leaf_sum(f, 0, n) : long_row_sum(f, n));
}

// ---- the terms the rows sum ----

// While a long row is processed, the next row's arrays (inputs a, b; the output c, with write intent) are
// fetched into L2, one prefetch per W elements of each, so that the next row's first pass reads L2 instead
// of memory while this row computes (measured 128 x 30522 fp32 softmax: 1130 -> 800 us). Null pointers
// (short rows: a block stays in L1 and the hardware prefetchers keep up; the last row) fetch nothing.
template <class A, class B, class C>
struct next_row {
  const A* a = nullptr;
  const B* b = nullptr;
  C* c = nullptr;
  [[gnu::always_inline]] void at(index_t j) const noexcept {
    if (a) __builtin_prefetch(a + j, 0, 2);
    if (b) __builtin_prefetch(b + j, 0, 2);
    if (c) __builtin_prefetch(c + j, 1, 2);
  }
};

// e_j = exp(x_j - m), also stored to e[j] (fp32) when Store.
template <class T, bool Store, class Next>
struct exp_terms {
  const T* x;
  float* e;
  V m;
  Next next;
  [[gnu::always_inline]] V full(index_t j) const noexcept {
    next.at(j);
    const V v = lanes::exp(io::load(x + j) - m);
    if constexpr (Store) io::store(e + j, v);
    return v;
  }
  [[gnu::always_inline]] V tail(index_t j, index_t c) const noexcept {
    if constexpr (W > 1) {
      const V v = keep_first(lanes::exp(load_tail(x + j, c) - m), c);  // exp(0 - m) may be Inf
      if constexpr (Store) store_tail(e + j, v, c);
      return v;
    } else {
      return full(j);
    }
  }
};

// dy_j (log_softmax backward's Σ dy).
template <class T>
struct value_terms {
  const T* x;
  [[gnu::always_inline]] V full(index_t j) const noexcept { return io::load(x + j); }
  [[gnu::always_inline]] V tail(index_t j, index_t c) const noexcept {
    if constexpr (W > 1)
      return load_tail(x + j, c);  // zeros in the other lanes
    else
      return full(j);
  }
};

// P(dy_j, y_j) (softmax backward's dot).
template <class P, class TG, class TY>
struct product_terms {
  const TG* dy;
  const TY* y;
  [[gnu::always_inline]] V full(index_t j) const noexcept { return P::mul(io::load(dy + j), io::load(y + j)); }
  [[gnu::always_inline]] V tail(index_t j, index_t c) const noexcept {
    if constexpr (W > 1)
      return keep_first(P::mul(load_tail(dy + j, c), load_tail(y + j, c)), c);
    else
      return full(j);
  }
};

// ---- row loops ----

// out_j = full(j) over a row, full(j) giving the W values from j, tail(j, c) the c < W values of the last
// partial batch; next fetches the next row.
template <class TO, class Full, class Tail, class Next>
[[gnu::always_inline]] inline void row_store(TO* out, index_t n, const Full& full, [[maybe_unused]] const Tail& tail,
                                             const Next& next) {
  index_t j = 0;
  for (; j + W <= n; j += W) {
    next.at(j);
    io::store(out + j, full(j));
  }
  if constexpr (W > 1) {
    if (j < n) store_tail(out + j, tail(j, n - j), n - j);
  }
}

// Short rows go through each pass R at a time (R n <= block_elems, R <= max_block_rows: a block stays in
// L1), so that the serial chain of one row (its max, the horizontal reductions, 1/s) overlaps the next rows'
// work (measured 1536 x 128 bf16 softmax: 85 -> 61 us); long rows (R = 1) fetch the next row instead.
// The row loops below are [[gnu::flatten]]: every call in them (row_max, row_sum, xsimd's exp, P::mul) is
// inlined (GCC 12 keeps exp out of line otherwise; measured 1536 x 128 softmax, fp32 57 -> 47 us, bf16
// 68 -> 54 us), and the per-call constants (exp's coefficients) are set up once per block.
inline constexpr index_t block_elems = 2048, max_block_rows = 8;
inline index_t block_rows(index_t n) noexcept {
  const index_t r = block_elems / (n > 0 ? n : 1);
  return r < 1 ? 1 : r > max_block_rows ? max_block_rows : r;
}

// Row i + 1 of m for next_row when the rows are long (R = 1), else null.
template <class T>
T* next_of(const mat<T>& m, index_t i, index_t R) noexcept {
  return R == 1 && i + 1 < m.rows ? m.row(i + 1) : nullptr;
}

// y = P(e, 1/s), e stored in y (fp32 y) or in the scratch rows (R n floats).
template <class P, class TX, class TY>
TPP_SOFTMAX_FLATTEN void softmax_rows(mat<const TX> x, mat<TY> y) {
  const index_t n = x.cols, R = block_rows(n);
  float* scratch = std::is_same_v<TY, float> ? nullptr : thread_scratch<scratch_slot>(std::size_t(R * n));
  for (index_t i0 = 0; i0 < x.rows; i0 += R) {
    const index_t r = x.rows - i0 < R ? x.rows - i0 : R;
    const auto e_row = [&](index_t k) {
      if constexpr (std::is_same_v<TY, float>)
        return y.row(i0 + k);
      else
        return scratch + k * n;
    };
    float m[max_block_rows], s[max_block_rows];
    for (index_t k = 0; k < r; ++k) m[k] = row_max(x.row(i0 + k), n);
    for (index_t k = 0; k < r; ++k) {
      const next_row<TX, TX, TY> next{next_of(x, i0, R), nullptr, next_of(y, i0, R)};
      s[k] = row_sum(exp_terms<TX, true, next_row<TX, TX, TY>>{x.row(i0 + k), e_row(k), V(m[k]), next}, n);
    }
    for (index_t k = 0; k < r; ++k) {
      const float* e = e_row(k);
      const V rs(1.0f / s[k]);
      row_store(
          y.row(i0 + k), n, [&](index_t j) { return P::mul(io::load(e + j), rs); },
          [&](index_t j, index_t c) { return P::mul(load_tail(e + j, c), rs); }, next_row<float, float, float>{});
    }
  }
}

// y = (x - m) - log(s).
template <class TX, class TY>
TPP_SOFTMAX_FLATTEN void log_softmax_rows(mat<const TX> x, mat<TY> y) {
  const index_t n = x.cols, R = block_rows(n);
  for (index_t i0 = 0; i0 < x.rows; i0 += R) {
    const index_t r = x.rows - i0 < R ? x.rows - i0 : R;
    float m[max_block_rows], ls[max_block_rows];
    for (index_t k = 0; k < r; ++k) m[k] = row_max(x.row(i0 + k), n);
    for (index_t k = 0; k < r; ++k) {
      const next_row<TX, TX, TY> next{next_of(x, i0, R), nullptr, next_of(y, i0, R)};
      ls[k] = std::log(row_sum(exp_terms<TX, false, next_row<TX, TX, TY>>{x.row(i0 + k), nullptr, V(m[k]), next}, n));
    }
    for (index_t k = 0; k < r; ++k) {
      const TX* xr = x.row(i0 + k);
      const V vm(m[k]), vls(ls[k]);
      row_store(
          y.row(i0 + k), n, [&](index_t j) { return (io::load(xr + j) - vm) - vls; },
          [&](index_t j, index_t c) { return (load_tail(xr + j, c) - vm) - vls; }, next_row<TX, TX, TY>{});
    }
  }
}

// dx = P(y, dy - Σ P(dy, y)).
template <class P, class TG, class TY, class TD>
TPP_SOFTMAX_FLATTEN void softmax_backward_rows(mat<const TG> dy, mat<const TY> y, mat<TD> dx) {
  const index_t n = dy.cols, R = block_rows(n);
  for (index_t i0 = 0; i0 < dy.rows; i0 += R) {
    const index_t r = dy.rows - i0 < R ? dy.rows - i0 : R;
    float dot[max_block_rows];
    for (index_t k = 0; k < r; ++k) dot[k] = row_sum(product_terms<P, TG, TY>{dy.row(i0 + k), y.row(i0 + k)}, n);
    for (index_t k = 0; k < r; ++k) {
      const TG* g = dy.row(i0 + k);
      const TY* yr = y.row(i0 + k);
      const V vdot(dot[k]);
      row_store(
          dx.row(i0 + k), n, [&](index_t j) { return P::mul(io::load(yr + j), io::load(g + j) - vdot); },
          [&](index_t j, index_t c) { return P::mul(load_tail(yr + j, c), load_tail(g + j, c) - vdot); },
          next_row<TG, TY, TD>{next_of(dy, i0, R), next_of(y, i0, R), next_of(dx, i0, R)});
    }
  }
}

// dx = dy - P(exp(y), Σ dy).
template <class P, class TG, class TY, class TD>
TPP_SOFTMAX_FLATTEN void log_softmax_backward_rows(mat<const TG> dy, mat<const TY> y, mat<TD> dx) {
  const index_t n = dy.cols, R = block_rows(n);
  for (index_t i0 = 0; i0 < dy.rows; i0 += R) {
    const index_t r = dy.rows - i0 < R ? dy.rows - i0 : R;
    float sum[max_block_rows];
    for (index_t k = 0; k < r; ++k) sum[k] = row_sum(value_terms<TG>{dy.row(i0 + k)}, n);
    for (index_t k = 0; k < r; ++k) {
      const TG* g = dy.row(i0 + k);
      const TY* yr = y.row(i0 + k);
      const V vsum(sum[k]);
      row_store(
          dx.row(i0 + k), n, [&](index_t j) { return io::load(g + j) - P::mul(lanes::exp(io::load(yr + j)), vsum); },
          [&](index_t j, index_t c) {
            return load_tail(g + j, c) - P::mul(lanes::exp(load_tail(yr + j, c)), vsum);
          },
          next_row<TG, TY, TD>{next_of(dy, i0, R), next_of(y, i0, R), next_of(dx, i0, R)});
    }
  }
}

// The loss (the mean of the row losses) and, when d is non-null, the gradient rows.
template <class P, class TX, class TD>
TPP_SOFTMAX_FLATTEN float cross_entropy_rows(mat<const TX> x, std::span<const std::int32_t> labels, const mat<TD>* d) {
  const index_t n = x.cols, M = x.rows, R = block_rows(n);
  if (M == 0) return std::numeric_limits<float>::quiet_NaN();
  const float inv_m = 1.0f / float(M);
  float* scratch = d && !std::is_same_v<TD, float> ? thread_scratch<scratch_slot>(std::size_t(R * n)) : nullptr;
  double total = 0.0;
  for (index_t i0 = 0; i0 < M; i0 += R) {
    const index_t r = M - i0 < R ? M - i0 : R;
    const auto e_row = [&](index_t k) {
      if constexpr (std::is_same_v<TD, float>)
        return d->row(i0 + k);
      else
        return scratch + k * n;
    };
    float m[max_block_rows], s[max_block_rows], xl[max_block_rows];
    for (index_t k = 0; k < r; ++k) {
      xl[k] = to_float(x(i0 + k, labels[std::size_t(i0 + k)]));  // before a gradient in place replaces it
      m[k] = row_max(x.row(i0 + k), n);
    }
    for (index_t k = 0; k < r; ++k) {
      const TX* xr = x.row(i0 + k);
      if (d) {
        const next_row<TX, TX, TD> next{next_of(x, i0, R), nullptr, next_of(*d, i0, R)};
        s[k] = row_sum(exp_terms<TX, true, next_row<TX, TX, TD>>{xr, e_row(k), V(m[k]), next}, n);
      } else {
        const next_row<TX, TX, TD> next{next_of(x, i0, R), nullptr, nullptr};
        s[k] = row_sum(exp_terms<TX, false, next_row<TX, TX, TD>>{xr, nullptr, V(m[k]), next}, n);
      }
      total += double(std::log(s[k]) - (xl[k] - m[k]));
    }
    if (!d) continue;
    for (index_t k = 0; k < r; ++k) {
      const index_t l = labels[std::size_t(i0 + k)];
      const float* e = e_row(k);
      TD* dr = d->row(i0 + k);
      const float c = 1.0f / (s[k] * float(M));
      const float el = e[l];  // before the store below replaces it (fp32 dlogits)
      const V vc(c);
      row_store(
          dr, n, [&](index_t j) { return P::mul(io::load(e + j), vc); },
          [&](index_t j, index_t k2) { return P::mul(load_tail(e + j, k2), vc); }, next_row<float, float, float>{});
      dr[l] = from_float<TD>(P::mul(el, c) - inv_m);
    }
  }
  return float(total / double(M));
}

}  // namespace detail::softmax_impl

// d of the sum bound γ_d Σ|t_k| (doc block) for a row of n terms, at the compiled lane width.
constexpr index_t softmax_sum_depth(index_t n) noexcept {
  namespace si = detail::softmax_impl;
  if (n <= 1) return 0;
  const index_t first = n < si::leaf_size ? n : si::leaf_size;
  const index_t vectors = (first + si::W - 1) / si::W;
  return (vectors + si::U - 1) / si::U + 2 + si::ceil_log2(si::W) + si::ceil_log2((n + si::leaf_size - 1) / si::leaf_size);
}

// Softmax or log-softmax over each row of (rows, cols) views.
template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
class softmax_kernel {
 public:
  softmax_kernel(index_t rows, index_t cols, softmax_kind kind = softmax_kind::softmax)
      : rows_(rows), cols_(cols), kind_(kind) {
    detail::require(kind == softmax_kind::softmax || kind == softmax_kind::log_softmax, "softmax", "kind",
                    detail::concat("(", std::to_string(int(kind)), ") is not a softmax_kind"));
    detail::check_sizes(name(kind), rows, cols);
    approx::check_policy<Policy>();
  }

  // x, y: (rows, cols); y may be the very same view as x.
  template <class TX, class TY>
    requires detail::float_element<TX> && detail::float_element<TY> && (!std::is_const_v<TY>)
  void forward(mat<TX> x, mat<TY> y) const {
    using tx = std::remove_const_t<TX>;
    const std::string_view op = name(kind_);
    const mat<const tx> xc = x;
    detail::check_in_out(xc, y, rows_, cols_, op, "x", "y");
    if (xc.empty()) return;
    if (kind_ == softmax_kind::softmax)
      detail::softmax_impl::softmax_rows<Policy>(xc, y);
    else
      detail::softmax_impl::log_softmax_rows(xc, y);
  }

  // dy, y, dx: (rows, cols); y is the forward's output; dx may be the very same view as dy or as y.
  template <class TG, class TY, class TD>
    requires detail::float_element<TG> && detail::float_element<TY> && detail::float_element<TD> &&
             (!std::is_const_v<TD>)
  void backward(mat<TG> dy, mat<TY> y, mat<TD> dx) const {
    const std::string_view op = detail::softmax_impl::backward_label(kind_);
    const mat<const std::remove_const_t<TG>> g = dy;
    const mat<const std::remove_const_t<TY>> yc = y;
    detail::check_in_out(g, dx, rows_, cols_, op, "dy", "dx");
    detail::check_mat(yc, op, "y");
    detail::check_shape(yc, rows_, cols_, op, "y", "the kernel's");
    detail::check_alias(dx, yc, op, "dx", "y");
    if (g.empty()) return;
    if (kind_ == softmax_kind::softmax)
      detail::softmax_impl::softmax_backward_rows<Policy>(g, yc, dx);
    else
      detail::softmax_impl::log_softmax_backward_rows<Policy>(g, yc, dx);
  }

  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  softmax_kind kind() const noexcept { return kind_; }

 private:
  index_t rows_, cols_;
  softmax_kind kind_;
};

// One-off calls: the shape is the output's (y's, dx's).
template <class Policy = approx::exact, class TX, class TY>
void softmax(mat<TX> x, mat<TY> y) {
  detail::check_mat(y, "softmax", "y");
  softmax_kernel<Policy>(y.rows, y.cols, softmax_kind::softmax).forward(x, y);
}

template <class Policy = approx::exact, class TG, class TY, class TD>
void softmax_backward(mat<TG> dy, mat<TY> y, mat<TD> dx) {
  detail::check_mat(dx, "softmax_backward", "dx");
  softmax_kernel<Policy>(dx.rows, dx.cols, softmax_kind::softmax).backward(dy, y, dx);
}

template <class Policy = approx::exact, class TX, class TY>
void log_softmax(mat<TX> x, mat<TY> y) {
  detail::check_mat(y, "log_softmax", "y");
  softmax_kernel<Policy>(y.rows, y.cols, softmax_kind::log_softmax).forward(x, y);
}

template <class Policy = approx::exact, class TG, class TY, class TD>
void log_softmax_backward(mat<TG> dy, mat<TY> y, mat<TD> dx) {
  detail::check_mat(dx, "log_softmax_backward", "dx");
  softmax_kernel<Policy>(dx.rows, dx.cols, softmax_kind::log_softmax).backward(dy, y, dx);
}

// Mean cross-entropy of the rows of logits (M, N) against labels (M) in [0, N); dlogits (M, N), unless
// absent (the default view), receives (softmax(x) - onehot(label)) / M.
template <class Policy = approx::exact, class TX, class TD = float>
  requires approx::multiplier<Policy> && detail::float_element<TX> && detail::float_element<TD> &&
           (!std::is_const_v<TD>)
float cross_entropy(mat<TX> logits, std::span<const std::int32_t> labels, mat<TD> dlogits = {}) {
  constexpr std::string_view op = "cross_entropy";
  const mat<const std::remove_const_t<TX>> x = logits;
  detail::check_mat(x, op, "logits");
  const bool grad = !(dlogits.data == nullptr && dlogits.rows == 0 && dlogits.cols == 0);
  if (grad) {
    detail::check_mat(dlogits, op, "dlogits");
    detail::check_shape(dlogits, x.rows, x.cols, op, "dlogits", "logits'");
    detail::check_alias(dlogits, x, op, "dlogits", "logits");
  }
  if (index_t(labels.size()) != x.rows)
    throw error(op, "labels",
                detail::concat("size (", std::to_string(labels.size()), ") differs from logits' rows (",
                               std::to_string(x.rows), ")"));
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= x.cols)
      throw error(op, detail::concat("labels[", std::to_string(i), "]"),
                  detail::concat("(", std::to_string(labels[i]), ") is outside [0, ", std::to_string(x.cols),
                                 ") (row ", std::to_string(i), ")"));
  approx::check_policy<Policy>();
  return detail::softmax_impl::cross_entropy_rows<Policy>(x, labels, grad ? &dlogits : nullptr);
}

}  // namespace tpp

#undef TPP_SOFTMAX_FLATTEN
