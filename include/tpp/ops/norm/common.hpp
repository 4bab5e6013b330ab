#pragma once
// What the normalisations share (ops/norm/batchnorm.hpp, ops/norm/groupnorm.hpp): notation, statistics,
// special values, element types, scratch memory and argument checks.
//
// Notation: P(a, b) = Policy::mul(a, b), the first operand the data value; rstd = 1 / sqrt(var + eps) in
// fp32 (correctly rounded sqrt and division); xh = P(x - mean, rstd), the normalised value.
//
// Statistics. Mean and (biased) variance in one pass over x with a numerically safe update: the values go
// in blocks that stay in cache (batchnorm over columns: 8 to 256 rows, about 256 KiB, L2; contiguous
// values: row_block = 1024 elements, L1); a block's fp32 sum gives an fp32 mean estimate mb, then the
// deviations d = x - mb (exact in fp32 for x within a factor 2 of mb) give Σ d and Σ P(d, d) in fp32 (the
// corrected two-pass algorithm: block mean mb + Σd / nb, block M2 Σ P(d, d) - (Σd)^2 / nb); the blocks
// merge into a running (count, mean, M2) in double by Chan, Golub and LeVeque's update. So there is no
// cancellation of E[x^2] - E[x]^2 and the error does not grow with |mean| / sigma: it is that of fp32 sums
// of deviations over one block (at most 256 or 1024 terms; a term meets at most 70 or 1024 / (2 W) + 8
// fp32 roundings) plus P's relative error on the squares. Backward sums are fp32 within blocks and double
// across them likewise; row constants (Σ / n, gamma rstd, ...) are exact fp32 products or quotients.
//
// Special values: IEEE propagation. A NaN or Inf in a channel (row, group) makes its mean or variance NaN
// or Inf, and its outputs NaN; other channels are unaffected. eps must be finite and >= 0; with eps = 0 a
// constant channel gives rstd = +Inf and NaN outputs, as the formula does.
//
// Types: a kernel binds the element types of its views as class template parameters after the policy,
// TX (x), TY = TX (y), TDY = TY (dy), TDX = TX (dx): fp32 or bf16 each (computation fp32, bf16 outputs
// rounded to nearest even); a layer binds one type, <Policy, T>. Statistics, gamma, beta, dgamma, dbeta
// are fp32 spans. With accumulate = true, dgamma / dbeta are added to what they hold (else overwritten).
//
// Aliasing: y may be the very same view as x, dx as dy or x (in-place); any other overlap of an output
// (view or span) with another argument throws tpp::error naming both.
//
// Scratch: a kernel's workspace_bytes() covers its largest call; a call takes a tpp::workspace last, or
// a frame on the calling thread's arena (core/workspace.hpp). Single-threaded, safe inside a caller's
// OpenMP region.
//
//   load(p, m), for_lanes(n, body)   a row's W-element steps, the last one m < W elements (masked)
//   row_sums<K>(n, f)                Σ over [0, n) of K lane terms, fp32 blocks merged in double
//   moments, row_moments<P>          running (count, mean, M2) in double; of n contiguous values
//   extremes, seq_extremes           max / min with the index of their first occurrence, NaN ignored
//   scratch_layout, take, bytes      a call's scratch regions: taken from its frame, or added up
//   check_*, named, rstd_of, finish  argument checks, the overlap checks of outputs, row constants

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "../../core/bf16.hpp"
#include "../../core/error.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/workspace.hpp"

namespace tpp::detail::norm_impl {

namespace lanes = tpp::lanes;

using V = simd::lane;
inline constexpr index_t W = lanes::width<V>;
inline constexpr index_t row_block = 1024;  // contiguous values summed in fp32 before the double merge

// The element types a norm kernel binds: fp32 or bf16, not const (its calls add const to their inputs).
template <class... T>
concept activations = (... && (std::same_as<T, float> || std::same_as<T, bf16>));

// The W elements at p, or the first m < W (the other lanes +0), kept in a register (lanes::opaque): GCC
// would otherwise fold the load into the operation using it, and a masked operation (relu's select) then
// reads its memory operand at half speed from DRAM (docs/performance.md).
template <class T>
V load(const T* p, index_t m) noexcept {
  V v = lanes::load<V>(p, m);
  lanes::opaque(v);
  return v;
}

// body(j, m) over [0, n) in steps of W; m = W but for the last, partial step.
template <class Body>
[[gnu::always_inline]] inline void for_lanes(index_t n, Body&& body) {
  index_t j = 0;
  for (; j + W <= n; j += W) body(j, W);
  if (j < n) body(j, n - j);
}

// Σ_{j < n} f(j, m) over K outputs (f returns std::array<V, K> for lanes [j, j + m)): fp32 vector
// accumulators over blocks of row_block elements, the blocks in double. Lanes past n are masked off.
template <int K, class F>
std::array<double, K> row_sums(index_t n, const F& f) {
  std::array<double, K> total{};
  for (index_t b = 0; b < n; b += row_block) {
    const index_t e = std::min(n, b + row_block);
    std::array<V, K> a0{}, a1{};
    for (auto& v : a0) v = V(0.0f);
    for (auto& v : a1) v = V(0.0f);
    index_t j = b;
    for (; j + 2 * W <= e; j += 2 * W) {
      const auto t0 = f(j, W), t1 = f(j + W, W);
      for (int k = 0; k < K; ++k) {
        a0[k] += t0[k];
        a1[k] += t1[k];
      }
    }
    for (; j + W <= e; j += W) {
      const auto t = f(j, W);
      for (int k = 0; k < K; ++k) a0[k] += t[k];
    }
    if (j < e) {
      const auto t = f(j, e - j);
      const auto m = lanes::first_n<V>(e - j);
      for (int k = 0; k < K; ++k) a1[k] += lanes::select(m, t[k], V(0.0f));
    }
    for (int k = 0; k < K; ++k) total[k] += double(lanes::hsum(a0[k] + a1[k]));
  }
  return total;
}

// Running (count, mean, M2) in double. merge(nb, mb, sd, sq) adds a block of nb values x_k given its fp32
// mean estimate mb, sd = Σ (x_k - mb) and sq = Σ (x_k - mb)^2 (the corrected two-pass form: the block's
// mean is mb + sd / nb and its M2 is sq - sd^2 / nb, whatever the error of mb).
struct moments {
  double n = 0, mean = 0, m2 = 0;
  void merge(double nb, double mb, double sd, double sq) noexcept {
    const double tot = n + nb, md = mb + sd / nb, d = md - mean;
    m2 += (sq - sd * sd / nb) + d * d * (n * nb / tot);
    mean += d * (nb / tot);
    n = tot;
  }
  double var() const noexcept { return n > 0 ? std::max(m2 / n, 0.0) : 0.0; }
};

// Max / min of a channel with the index of the first occurrence (NaN ignored).
struct extremes {
  float max = -std::numeric_limits<float>::infinity(), min = std::numeric_limits<float>::infinity();
  index_t arg_max = 0, arg_min = 0;
};

// e updated with x[0, n) (contiguous) at indices base + j. A vector max / min over the stretch, then only
// where that beats the running value a scalar scan for its first index (rare after the first stretches,
// for data in any order but sorted). The running maxima take lanes::max_second_on_nan(x, m), x > m ? x : m,
// so a NaN x never replaces m: NaN is ignored.
template <class T>
void seq_extremes(const T* x, index_t n, index_t base, extremes& e) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  V mx(-inf), mn(inf);
  for_lanes(n, [&](index_t j, index_t m) {
    const V v = load(x + j, m);
    const auto k = lanes::first_n<V>(m);
    mx = lanes::max_second_on_nan(lanes::select(k, v, V(-inf)), mx);
    mn = lanes::min_second_on_nan(lanes::select(k, v, V(inf)), mn);
  });
  const float hx = lanes::hmax(mx), hn = lanes::hmin(mn);  // lanes without NaN: the max / min
  if (hx > e.max) {
    index_t j = 0;
    while (to_float(x[j]) != hx) ++j;
    e.max = hx, e.arg_max = base + j;
  }
  if (hn < e.min) {
    index_t j = 0;
    while (to_float(x[j]) != hn) ++j;
    e.min = hn, e.arg_min = base + j;
  }
}

// Moments of the n contiguous values at x (and, when ex is non-null, their extremes).
template <class Policy, class T>
moments row_moments(const T* x, index_t n, extremes* ex = nullptr) {
  moments s;
  for (index_t b = 0; b < n; b += row_block) {
    const index_t len = std::min(row_block, n - b);
    const T* p = x + b;
    const double sum = row_sums<1>(len, [&](index_t j, index_t m) { return std::array<V, 1>{load(p + j, m)}; })[0];
    const float mb = float(sum / double(len));
    const auto t = row_sums<2>(len, [&](index_t j, index_t m) {
      const V d = load(p + j, m) - V(mb);
      return std::array<V, 2>{d, Policy::mul(d, d)};
    });
    s.merge(double(len), double(mb), t[0], t[1]);
    if (ex != nullptr) seq_extremes(p, len, b, *ex);
  }
  return s;
}

// ---- scratch ----

// The scratch regions of one call, in take order: sums in double, extremes, fp32 rows (counts of elements).
struct scratch_layout {
  index_t doubles = 0, extremes = 0, floats = 0;
};
struct scratch_regions {
  double* doubles;
  extremes* ex;
  float* floats;
};

inline scratch_regions take(scratch& s, const scratch_layout& l) {
  double* d = s.take<double>(std::size_t(l.doubles));
  extremes* e = s.take<extremes>(std::size_t(l.extremes));
  return {d, e, s.take<float>(std::size_t(l.floats))};
}

inline std::size_t bytes(const scratch_layout& l) noexcept {
  scratch_size z;
  z.take<double>(std::size_t(l.doubles)).take<extremes>(std::size_t(l.extremes)).take<float>(std::size_t(l.floats));
  return z.bytes();
}

// ---- checks ----

template <class S>
void check_span(S s, std::size_t size, std::string_view op, std::string_view name) {
  if (s.size() != size) [[unlikely]]
    throw error(op, name, concat("has ", std::to_string(s.size()), " elements (expected ", std::to_string(size), ")"));
  if (s.data() == nullptr && size != 0) [[unlikely]]
    throw error(op, concat(name, ".data"), "is null with nonzero size");
}

inline void check_eps(float eps, std::string_view op) {
  if (!(std::isfinite(eps) && eps >= 0.0f)) [[unlikely]]
    throw error(op, "eps", concat("(", std::to_string(eps), ") must be finite and >= 0"));
}

template <class T>
void check_view(const mat<T>& m, index_t rows, index_t cols, std::string_view op, std::string_view name) {
  check_mat(m, op, name);
  check_shape(m, rows, cols, op, name, "the kernel\'s");
}

// An argument for the overlap checks: a view, or a span as a one-row view, and its name.
template <class T>
struct named_arg {
  mat<const T> v;
  std::string_view name;
};
template <class T>
named_arg<std::remove_const_t<T>> named(mat<T> m, std::string_view name) noexcept {
  return {{m.data, m.rows, m.cols, m.ld}, name};
}
template <class T>
named_arg<std::remove_const_t<T>> named(std::span<T> s, std::string_view name) noexcept {
  const index_t n = index_t(s.size());
  return {{s.data(), n > 0 ? 1 : 0, n, n}, name};
}

// Output out shares no element with any of the other arguments.
template <class O, class... I>
void check_apart(std::string_view op, const named_arg<O>& out, const named_arg<I>&... in) {
  const auto one = [&](const auto& a) {
    if (views_overlap(out.v, a.v)) [[unlikely]]
      throw error(op, a.name, concat("overlaps ", out.name, " (an output shares no element with another argument)"));
  };
  (one(in), ...);
}

inline float rstd_of(double var, float eps) noexcept { return 1.0f / std::sqrt(float(var) + eps); }

// Double accumulators for dgamma / dbeta written to the caller's spans (added with accumulate).
inline void finish(const double* acc, std::span<float> out, bool accumulate) noexcept {
  for (std::size_t c = 0; c < out.size(); ++c) out[c] = float(acc[c] + (accumulate ? double(out[c]) : 0.0));
}

}  // namespace tpp::detail::norm_impl
