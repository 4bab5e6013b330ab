#pragma once
// Softmax and log-softmax over each row of an (M, N) view, forward and backward, and cross-entropy over
// rows of logits.
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
// Passes over a row: softmax forward 3 (max; exp, sum and e stored, into y when y is fp32, else into an
// fp32 scratch row; y = P(e, 1/s) from the stored e); log_softmax forward 3 (max; sum of exp; y from x);
// backward 2 (the row sum; dx); cross-entropy 2 without dlogits, 3 with (as softmax). Each exp is
// evaluated once. Rows of up to 1024 elements go through each pass in blocks of R = min(8, 2048 / N) rows
// (R N <= 2048 floats, L1), so that one row's serial chain (max, horizontal reductions, 1 / s) overlaps
// the next rows' work; longer rows go one at a time and fetch the next row into L2 during their compute
// pass, so that its first pass reads L2 instead of memory. Results do not depend on the blocking: every
// row runs the same code.
//
// Special values (per row; no row affects another). A NaN anywhere in a row makes s NaN, so every output
// of the row is NaN (and its loss). +Inf in a row gives m = +Inf and Inf - Inf = NaN: the whole row is
// NaN (softmax, log_softmax, loss, gradient). A row of only -Inf gives -Inf - (-Inf) = NaN: a NaN row (the
// limit is 0 / 0). -Inf entries of a row with a finite maximum give e = 0 exactly: softmax y = +0,
// log_softmax y = -Inf, gradient P(0, c) = +0 (at the label: -1/M, the limit), and a -Inf logit at the
// label gives loss = +Inf. Large finite values cannot overflow: x - m <= 0, so 0 <= e <= 1, 1 <= s <= N
// (x - m itself may round to -Inf when x and m are of opposite sign near the float range, which gives the
// correctly rounded e = 0, y = -Inf). The row max is lanes::max_second_on_nan(x, m) = x > m ? x : m, so
// it skips a NaN x; which NaNs it sees depends on their position and the arch, and the result does not
// depend on it. Backward: IEEE propagation through the formulas (NaN in dy or y gives NaN in the row's dx
// through dot / sum; log_softmax backward at y = -Inf gives exp(y) = 0, so dx = dy). exp results below the
// normal range are flushed to +0 by xsimd (arguments below -88.38) and kept as denormals by <cmath>; the
// difference is below 1.2e-38 absolute.
//
// Accuracy (fp32 outputs; a bf16 output adds its rounding, 2^-8 relative). exp: xsimd 8.1 (within
// 2.2 x 2^-24 relative) or <cmath> under TPP_NO_SIMD (glibc, within 1 x 2^-24); its argument x - m carries
// one rounding, u |x - m| absolute (u = 2^-24), which exp turns into a relative error. Sums are blocked:
// U = 4 vector accumulators (W lanes) take S = 16 steps each into a leaf of S U W elements; leaves combine
// pairwise (binary-counter cascade), the U accumulators and the W lanes by trees. Every term passes
// through at most d = softmax_sum_depth(n) additions (below: d = ceil(min(n, S U W) / (U W)) + 2 + log2 W
// + ceil(log2 ceil(n / (S U W))): 8 for n = 128 and W = 16, 27 for n = 30522), so for terms t_k:
// |computed - Σ t_k| <= γ_d Σ |t_k|, γ_d = d u / (1 - d u). Then, to first order:
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
// Types: a kernel binds the element types of its views as class template parameters after the kind and
// the policy: softmax_kernel's TX (x), TY = TX (y), TDY = TY (dy), TDX = TX (dx); cross_entropy_kernel's
// TX (logits), TD = TX (dlogits); fp32 or bf16 each, in any combination; computation in fp32; bf16 outputs
// round to nearest even. The free functions deduce them from their views (of const or mutable elements).
// labels: std::span<const std::int32_t>. y may be the very same view as x, dx as dy or as y, dlogits as
// logits (in-place); any other overlap throws (detail::check_alias), as does dlogits overlapping labels.
// dlogits is absent when it is the default (null, 0 x 0) view; otherwise it must be (M, N).
//
// Dispatch: the kind and the policy are template parameters. Vector loops at simd::default_arch with one
// masked partial vector per row and pass for the tail (core/lanes.hpp); scalar loops with TPP_NO_SIMD. The
// row loops are [[gnu::flatten]]ed (TPP_FLATTEN): every call in them (row_max, row_sum,
// xsimd's exp, P::mul) is inlined, which GCC 12 otherwise does not do for exp, and the per-call constants
// (exp's coefficients) are set up once per block. Single-threaded, safe inside a caller's OpenMP region.
// Scratch: the fp32 e rows (R N floats) of softmax with bf16 y and of cross-entropy with bf16 dlogits;
// workspace_bytes() says how much, and those calls take a tpp::workspace last (core/workspace.hpp).
//
// API (Policy = approx::exact, constrained by approx::multiplier; K a softmax_kind, no default):
//   softmax_kernel<K, P, TX, TY, TDY, TDX> k(rows, cols);
//     k.forward(x, y, [ws]); k.backward(dy, y, dx); k.workspace_bytes(); k.rows(), k.cols(), k.kind()
//   softmax<K, P>(x, y), softmax_backward<K, P>(dy, y, dx)
//   cross_entropy_kernel<P, TX, TD> k(rows, cols); float loss = k(logits, labels, dlogits = {}, [ws]);
//   float loss = cross_entropy<P>(logits, labels, dlogits = {});
//   softmax_sum_depth(n)                  // the d of the sum bound above, for tests and callers
// Errors (tpp::error naming op and argument): negative sizes, shapes other than the kernel's, ld < cols,
// null data with nonzero size, forbidden overlaps, labels.size() != M, a label outside [0, N)
// ("labels[i]"); a kind other than softmax_kind's does not compile.

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
#include "../core/attributes.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/lanes.hpp"
#include "../core/mat.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"
#include "../core/workspace.hpp"
#include "detail/elementwise.hpp"


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

namespace lanes = tpp::lanes;

using V = simd::lane;
inline constexpr index_t W = lanes::width<V>;
inline constexpr index_t U = 4;                   // vector accumulators of a leaf
inline constexpr index_t S = 16;                  // steps per accumulator in a full leaf
inline constexpr index_t leaf_size = S * U * W;  // elements of a leaf
inline constexpr float inf = std::numeric_limits<float>::infinity();

// The element types a kernel binds: fp32 or bf16, not const (its calls add const to their inputs).
template <class... T>
concept elements = (... && (std::same_as<T, float> || std::same_as<T, bf16>));

constexpr bool valid(softmax_kind k) noexcept { return k == softmax_kind::softmax || k == softmax_kind::log_softmax; }

constexpr index_t ceil_log2(index_t n) noexcept {
  index_t l = 0;
  while (l < 63 && (index_t(1) << l) < n) ++l;
  return l;
}

constexpr std::string_view backward_label(softmax_kind k) noexcept {
  return k == softmax_kind::softmax ? "softmax_backward" : "log_softmax_backward";
}

// W elements from p, kept in a register (lanes::opaque: GCC would otherwise fold the load into the
// operation using it; docs/performance.md). A row's tail (c < W elements) is lanes::load<V>(p, c): one
// masked load where the ISA has it, +0 in the other lanes.
template <class T>
[[gnu::always_inline]] inline V load(const T* p) noexcept {
  V v = lanes::load<V>(p);
  lanes::opaque(v);
  return v;
}

// ---- row reductions ----

// max_j x_j over a row of n >= 1 elements (NaN: see Special values).
template <class T>
float row_max(const T* x, index_t n) noexcept {
  V m0(-inf), m1(-inf), m2(-inf), m3(-inf);
  index_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) {
    m0 = lanes::max_second_on_nan(load(x + j), m0);
    m1 = lanes::max_second_on_nan(load(x + j + W), m1);
    m2 = lanes::max_second_on_nan(load(x + j + 2 * W), m2);
    m3 = lanes::max_second_on_nan(load(x + j + 3 * W), m3);
  }
  for (; j + W <= n; j += W) m0 = lanes::max_second_on_nan(load(x + j), m0);
  if constexpr (W > 1) {
    if (j < n) {
      const index_t c = n - j;
      m1 = lanes::max_second_on_nan(lanes::select(lanes::first_n<V>(c), lanes::load<V>(x + j, c), V(-inf)), m1);
    }
  }
  return lanes::hmax(lanes::max_second_on_nan(lanes::max_second_on_nan(m0, m1), lanes::max_second_on_nan(m2, m3)));
}

// Σ_j t_j over the leaf [j, j1) of a row (j1 - j <= leaf_size): f.full(j) gives the W terms from j,
// f.tail(j, c) the c < W terms from j with +0 in the other lanes (only a row's last leaf has a tail). Four
// accumulators take the vectors in turn (the rotation is register renaming), so each adds at most
// ceil(vectors / 4) terms; one call site of f.full keeps the flattened row loops small.
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
TPP_FLATTEN [[gnu::noinline]] V long_row_sum(const F& f, index_t n) noexcept {
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
TPP_FLATTEN float row_sum(const F& f, index_t n) noexcept {
  return lanes::hsum(n <= leaf_size ? leaf_sum(f, 0, n) : long_row_sum(f, n));
}

// ---- the terms the rows sum ----

// While a long row is processed, the next row's arrays (inputs a, b; the output c, with write intent) are
// fetched into L2, one prefetch per W elements of each. Null pointers (short rows: a block stays in L1 and
// the hardware prefetchers keep up; the last row) fetch nothing.
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
    const V v = lanes::exp(load(x + j) - m);
    if constexpr (Store) lanes::store(e + j, v);
    return v;
  }
  [[gnu::always_inline]] V tail(index_t j, index_t c) const noexcept {
    if constexpr (W > 1) {
      // exp(0 - m) in the lanes past c may be Inf: +0 there
      const V v = lanes::select(lanes::first_n<V>(c), lanes::exp(lanes::load<V>(x + j, c) - m), V(0.0f));
      if constexpr (Store) lanes::store(e + j, v, c);
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
  [[gnu::always_inline]] V full(index_t j) const noexcept { return load(x + j); }
  [[gnu::always_inline]] V tail(index_t j, index_t c) const noexcept {
    if constexpr (W > 1)
      return lanes::load<V>(x + j, c);  // zeros in the other lanes
    else
      return full(j);
  }
};

// P(dy_j, y_j) (softmax backward's dot).
template <class P, class TG, class TY>
struct product_terms {
  const TG* dy;
  const TY* y;
  [[gnu::always_inline]] V full(index_t j) const noexcept { return P::mul(load(dy + j), load(y + j)); }
  [[gnu::always_inline]] V tail(index_t j, index_t c) const noexcept {
    if constexpr (W > 1)
      return lanes::select(lanes::first_n<V>(c), P::mul(lanes::load<V>(dy + j, c), lanes::load<V>(y + j, c)), V(0.0f));
    else
      return full(j);
  }
};

// ---- row loops ----

// out_j = full(j) over a row, full(j) giving the W values from j, tail(j, c) the c < W values of the last
// partial vector; next fetches the next row.
template <class TO, class Full, class Tail, class Next>
[[gnu::always_inline]] inline void row_store(TO* out, index_t n, const Full& full, [[maybe_unused]] const Tail& tail,
                                             const Next& next) {
  index_t j = 0;
  for (; j + W <= n; j += W) {
    next.at(j);
    lanes::store(out + j, full(j));
  }
  if constexpr (W > 1) {
    if (j < n) lanes::store(out + j, tail(j, n - j), n - j);
  }
}

// Rows per block: R = min(8, 2048 / n), at least 1.
inline constexpr index_t block_elems = 2048, max_block_rows = 8;
constexpr index_t block_rows(index_t n) noexcept {
  const index_t r = block_elems / (n > 0 ? n : 1);
  return r < 1 ? 1 : r > max_block_rows ? max_block_rows : r;
}

// The fp32 e rows of a block (R n floats) where the output is not fp32 (softmax's y, cross-entropy's
// dlogits); none for fp32 outputs, which hold e themselves.
template <class TO>
constexpr index_t e_rows_floats(index_t n) noexcept {
  return std::is_same_v<TO, float> ? 0 : block_rows(n) * n;
}

// Row i + 1 of m for next_row when the rows are long (R = 1), else null.
template <class T>
T* next_of(const mat<T>& m, index_t i, index_t R) noexcept {
  return R == 1 && i + 1 < m.rows ? m.row(i + 1) : nullptr;
}

// y = P(e, 1/s), e stored in y (fp32 y) or in the scratch rows at e_rows (R n floats).
template <class P, class TX, class TY>
TPP_FLATTEN void softmax_rows(mat<const TX> x, mat<TY> y, float* e_rows) {
  const index_t n = x.cols, R = block_rows(n);
  for (index_t i0 = 0; i0 < x.rows; i0 += R) {
    const index_t r = x.rows - i0 < R ? x.rows - i0 : R;
    const auto e_row = [&](index_t k) {
      if constexpr (std::is_same_v<TY, float>)
        return y.row(i0 + k);
      else
        return e_rows + k * n;
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
          y.row(i0 + k), n, [&](index_t j) { return P::mul(load(e + j), rs); },
          [&](index_t j, index_t c) { return P::mul(lanes::load<V>(e + j, c), rs); }, next_row<float, float, float>{});
    }
  }
}

// y = (x - m) - log(s).
template <class TX, class TY>
TPP_FLATTEN void log_softmax_rows(mat<const TX> x, mat<TY> y) {
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
          y.row(i0 + k), n, [&](index_t j) { return (load(xr + j) - vm) - vls; },
          [&](index_t j, index_t c) { return (lanes::load<V>(xr + j, c) - vm) - vls; }, next_row<TX, TX, TY>{});
    }
  }
}

// The backward passes: per block of rows, a scalar of each row (row_scalar(i)), then dx_j = f(dy_j, y_j, s)
// over each row, f taking lanes of any width (a full vector or the row's tail).
template <class TG, class TY, class TD, class RowScalar, class F>
[[gnu::always_inline]] inline void backward_rows(mat<const TG> dy, mat<const TY> y, mat<TD> dx,
                                                 const RowScalar& row_scalar, const F& f) {
  const index_t n = dy.cols, R = block_rows(n);
  for (index_t i0 = 0; i0 < dy.rows; i0 += R) {
    const index_t r = dy.rows - i0 < R ? dy.rows - i0 : R;
    float s[max_block_rows];
    for (index_t k = 0; k < r; ++k) s[k] = row_scalar(i0 + k);
    for (index_t k = 0; k < r; ++k) {
      const TG* g = dy.row(i0 + k);
      const TY* yr = y.row(i0 + k);
      const V vs(s[k]);
      row_store(
          dx.row(i0 + k), n, [&](index_t j) { return f(load(g + j), load(yr + j), vs); },
          [&](index_t j, index_t c) { return f(lanes::load<V>(g + j, c), lanes::load<V>(yr + j, c), vs); },
          next_row<TG, TY, TD>{next_of(dy, i0, R), next_of(y, i0, R), next_of(dx, i0, R)});
    }
  }
}

// dx = P(y, dy - Σ P(dy, y)).
template <class P, class TG, class TY, class TD>
TPP_FLATTEN void softmax_backward_rows(mat<const TG> dy, mat<const TY> y, mat<TD> dx) {
  backward_rows(
      dy, y, dx, [&](index_t i) { return row_sum(product_terms<P, TG, TY>{dy.row(i), y.row(i)}, dy.cols); },
      [](V g, V yv, V dot) { return P::mul(yv, g - dot); });
}

// dx = dy - P(exp(y), Σ dy).
template <class P, class TG, class TY, class TD>
TPP_FLATTEN void log_softmax_backward_rows(mat<const TG> dy, mat<const TY> y, mat<TD> dx) {
  backward_rows(
      dy, y, dx, [&](index_t i) { return row_sum(value_terms<TG>{dy.row(i)}, dy.cols); },
      [](V g, V yv, V sum) { return g - P::mul(lanes::exp(yv), sum); });
}

// The loss (the mean of the row losses) and, when d is non-null, the gradient rows; e_rows as for
// softmax_rows.
template <class P, class TX, class TD>
TPP_FLATTEN float cross_entropy_rows(mat<const TX> x, std::span<const std::int32_t> labels, const mat<TD>* d,
                                                 float* e_rows) {
  const index_t n = x.cols, M = x.rows, R = block_rows(n);
  if (M == 0) return std::numeric_limits<float>::quiet_NaN();
  const float inv_m = 1.0f / float(M);
  double total = 0.0;
  for (index_t i0 = 0; i0 < M; i0 += R) {
    const index_t r = M - i0 < R ? M - i0 : R;
    const auto e_row = [&](index_t k) {
      if constexpr (std::is_same_v<TD, float>)
        return d->row(i0 + k);
      else
        return e_rows + k * n;
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
          dr, n, [&](index_t j) { return P::mul(load(e + j), vc); },
          [&](index_t j, index_t k2) { return P::mul(lanes::load<V>(e + j, k2), vc); }, next_row<float, float, float>{});
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

// Softmax (K = softmax_kind::softmax) or log-softmax over each row of (rows, cols) views.
template <softmax_kind K, class Policy = approx::exact, class TX = float, class TY = TX, class TDY = TY, class TDX = TX>
  requires(detail::softmax_impl::valid(K) && approx::multiplier<Policy> &&
           detail::softmax_impl::elements<TX, TY, TDY, TDX>)
class softmax_kernel {
 public:
  softmax_kernel(index_t rows, index_t cols) : rows_(rows), cols_(cols) {
    detail::check_sizes(name(K), rows, cols);
    approx::check_policy<Policy>();
  }

  // Bytes of a caller's workspace for forward: softmax's fp32 e rows when y is bf16; else none.
  std::size_t workspace_bytes() const noexcept {
    scratch_size z;
    if constexpr (K == softmax_kind::softmax) z.take<float>(std::size_t(detail::softmax_impl::e_rows_floats<TY>(cols_)));
    return z.bytes();
  }

  // x, y: (rows, cols); y may be the very same view as x.
  void forward(mat<const TX> x, mat<TY> y, workspace ws = {}) const {
    constexpr std::string_view op = name(K);
    detail::check_in_out(x, y, rows_, cols_, op, "x", "y");
    if (x.empty()) return;
    if constexpr (K == softmax_kind::softmax) {
      scratch s(ws, op);
      float* e = std::is_same_v<TY, float> ? nullptr : s.take<float>(std::size_t(detail::softmax_impl::e_rows_floats<TY>(cols_)));
      detail::softmax_impl::softmax_rows<Policy>(x, y, e);
    } else {
      detail::softmax_impl::log_softmax_rows(x, y);
    }
  }

  // dy, y, dx: (rows, cols); y is the forward's output; dx may be the very same view as dy or as y.
  void backward(mat<const TDY> dy, mat<const TY> y, mat<TDX> dx) const {
    constexpr std::string_view op = detail::softmax_impl::backward_label(K);
    detail::check_in_out(dy, dx, rows_, cols_, op, "dy", "dx");
    detail::check_mat(y, op, "y");
    detail::check_shape(y, rows_, cols_, op, "y", "the kernel's");
    detail::check_alias(dx, y, op, "dx", "y");
    if (dy.empty()) return;
    if constexpr (K == softmax_kind::softmax)
      detail::softmax_impl::softmax_backward_rows<Policy>(dy, y, dx);
    else
      detail::softmax_impl::log_softmax_backward_rows<Policy>(dy, y, dx);
  }

  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  static constexpr softmax_kind kind() noexcept { return K; }

 private:
  index_t rows_, cols_;
};

// Mean cross-entropy of the rows of logits (rows, cols) against labels (rows) in [0, cols); dlogits
// (rows, cols), unless absent (the default view), receives (softmax(x) - onehot(label)) / rows.
template <class Policy = approx::exact, class TX = float, class TD = TX>
  requires(approx::multiplier<Policy> && detail::softmax_impl::elements<TX, TD>)
class cross_entropy_kernel {
 public:
  static constexpr std::string_view label = "cross_entropy";

  cross_entropy_kernel(index_t rows, index_t cols) : rows_(rows), cols_(cols) {
    detail::check_sizes(label, rows, cols);
    approx::check_policy<Policy>();
  }

  // Bytes of a caller's workspace: the fp32 e rows when dlogits is bf16; else none.
  std::size_t workspace_bytes() const noexcept {
    scratch_size z;
    z.take<float>(std::size_t(detail::softmax_impl::e_rows_floats<TD>(cols_)));
    return z.bytes();
  }

  float operator()(mat<const TX> logits, std::span<const std::int32_t> labels, mat<TD> dlogits = {},
                   workspace ws = {}) const {
    detail::check_mat(logits, label, "logits");
    detail::check_shape(logits, rows_, cols_, label, "logits", "the kernel's");
    const bool grad = !(dlogits.data == nullptr && dlogits.rows == 0 && dlogits.cols == 0);
    if (grad) {
      detail::check_mat(dlogits, label, "dlogits");
      detail::check_shape(dlogits, rows_, cols_, label, "dlogits", "logits'");
      detail::check_alias(dlogits, logits, label, "dlogits", "logits");
      const index_t nl = index_t(labels.size());
      if (detail::views_overlap(dlogits, mat<const std::int32_t>{labels.data(), nl > 0 ? 1 : 0, nl, nl})) [[unlikely]]
        throw error(label, "labels", "overlaps dlogits (an output shares no element with another argument)");
    }
    if (index_t(labels.size()) != rows_)
      throw error(label, "labels",
                  detail::concat("size (", std::to_string(labels.size()), ") differs from logits' rows (",
                                 std::to_string(rows_), ")"));
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0 || labels[i] >= cols_)
        throw error(label, detail::concat("labels[", std::to_string(i), "]"),
                    detail::concat("(", std::to_string(labels[i]), ") is outside [0, ", std::to_string(cols_), ") (row ",
                                   std::to_string(i), ")"));
    scratch s(ws, label);
    float* e = grad && !std::is_same_v<TD, float>
                   ? s.take<float>(std::size_t(detail::softmax_impl::e_rows_floats<TD>(cols_)))
                   : nullptr;
    return detail::softmax_impl::cross_entropy_rows<Policy>(logits, labels, grad ? &dlogits : nullptr, e);
  }

  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }

 private:
  index_t rows_, cols_;
};

// ---- one-off calls (the shape is the output's: y's, dx's, logits') ----

template <softmax_kind K, class Policy = approx::exact, class TX, class TY>
void softmax(mat<TX> x, mat<TY> y) {
  detail::check_mat(y, name(K), "y");
  softmax_kernel<K, Policy, std::remove_const_t<TX>, TY>(y.rows, y.cols).forward(x, y);
}

template <softmax_kind K, class Policy = approx::exact, class TDY, class TY, class TDX>
void softmax_backward(mat<TDY> dy, mat<TY> y, mat<TDX> dx) {
  detail::check_mat(dx, detail::softmax_impl::backward_label(K), "dx");
  softmax_kernel<K, Policy, TDX, std::remove_const_t<TY>, std::remove_const_t<TDY>, TDX>(dx.rows, dx.cols)
      .backward(dy, y, dx);
}

template <class Policy = approx::exact, class TX, class TD = float>
float cross_entropy(mat<TX> logits, std::span<const std::int32_t> labels, mat<TD> dlogits = {}) {
  detail::check_mat(logits, "cross_entropy", "logits");
  return cross_entropy_kernel<Policy, std::remove_const_t<TX>, TD>(logits.rows, logits.cols)(logits, labels, dlogits);
}

}  // namespace tpp

