#pragma once
// Normalisations of 2D views, forward and backward: batchnorm (moments or the range estimate of LightNorm /
// Banner et al.), layernorm, groupnorm, RMSNorm; and the softmax family (softmax, log-softmax,
// cross-entropy: ops/detail/norm_softmax.hpp, included here).
//
// Layouts. Batchnorm normalises each channel over the samples of a batch:
//   channel_axis::cols  x (N, C): one row per sample (or sample x pixel: an NHWC tensor as (N H W, C)),
//                       channel c is column c;
//   channel_axis::rows  x (C, N): channel c is row c (one image of an NCHW tensor as (C, H W)).
// Layernorm and RMSNorm normalise each row of x (M, N) (tokens x features), gamma / beta per column.
// Groupnorm normalises, per row of x (M, C S) (a sample's C channels of S = H W values each, channel-major),
// each of G groups of C / G consecutive channels; gamma / beta per channel, mean / rstd per (row, group) at
// [row G + group]. Layernorm is groupnorm with G = 1, S = 1.
//
// Forward (one product per element, through Policy; P(a, b) = Policy::mul(a, b)):
//   rstd = 1 / sqrt(var + eps)  (fp32, correctly rounded sqrt and division)
//   y    = P(x - mean, gamma rstd) + beta          (gamma rstd: an exact fp32 product, one per channel / element)
//   RMSNorm: y = P(x, gamma rstd), rstd = 1 / sqrt(mean(P(x, x)) + eps)
//   batchnorm with relu = true: y = max(y, +0) (a NaN y stays NaN)
// Statistics. Mean and (biased) variance in one pass over x with a numerically safe update: the values go
// in blocks that stay in cache (batchnorm over columns: 8 to 256 rows, about 256 KiB, L2; rows: 1024
// elements, L1); a block's fp32 sum gives an fp32 mean estimate mb, then the deviations d = x - mb (exact
// in fp32 for x within a factor 2 of mb) give Σ d and Σ P(d, d) in fp32 (the corrected two-pass
// algorithm: block mean mb + Σd / nb, block M2 Σ P(d, d) - (Σd)^2 / nb); the blocks merge into a running
// (count, mean, M2) in double by Chan, Golub and LeVeque's update. So there is no cancellation of
// E[x^2] - E[x]^2 and the error does not grow with |mean| / sigma: it is that of fp32 sums of deviations
// over one block (at most 256 or 1024 terms; a term meets at most 70 or 1024 / (2 W) + 8 fp32 roundings)
// plus P's relative error on the squares.
//   variance_estimator::range: var = (range_scale(n) (max - min))^2, range_scale(n) = 1 / (2 sqrt(2 ln n))
//   (the expected range of n Gaussian samples is about 2 sigma sqrt(2 ln n); Banner et al. 2018 write the
//   constant as 1 / sqrt(2 ln n) with the factor 2 in the range; n < 2 gives var = 0). The mean is the mean.
// Backward (the forward's mean / var or rstd as inputs; xh = P(x - mean, rstd), dy' = dy, or with relu dy
// where the recomputed forward value is > 0, else 0; sums over the channel's / row's n values):
//   batchnorm, moments: dbeta = Σ dy', dgamma = Σ P(dy', xh),
//                       dx = P(dy' - dbeta / n - P(xh, dgamma / n), gamma rstd)
//   batchnorm, range:   dx = P(dy' - dbeta / n, gamma rstd), then at the channel's first maximum
//                       dx -= t and at its first minimum dx += t, t = gamma range_scale^2 R rstd^2 dgamma
//                       (R = max - min; the derivative of rstd through R; t is applied in fp32)
//   layernorm / groupnorm: g = P(dy, gamma), dx = P(g - Σg / n - P(xh, Σ P(g, xh) / n), rstd),
//                       dgamma = Σ_rows P(dy, xh), dbeta = Σ_rows dy
//   RMSNorm:            xh = P(x, rstd), dx = P(g - P(xh, Σ P(g, xh) / n), rstd), dgamma = Σ_rows P(dy, xh)
// Row constants (dbeta / n, gamma rstd, ...) are exact fp32 products or quotients; sums are fp32 within
// blocks (batchnorm over columns: 128 rows) and double across them, as for the statistics.
// Streaming: batchnorm over columns writes fp32 y (forward) and dx (backward) with non-temporal stores
// when the op's footprint is at least tpp::stream_threshold (core/stream.hpp; forward x and y, backward
// dy, x and dx), as oneDNN does always: from DRAM the read for ownership of each output line
// would be a sixth of the backward's traffic.
// With accumulate = true, dgamma / dbeta are added to what they hold (else overwritten).
//
// Types: x, y, dy, dx fp32 or bf16 (computation fp32, bf16 outputs rounded to nearest even); statistics,
// gamma, beta, dgamma, dbeta fp32 spans. y may be the very same view as x, dx as dy or x (in-place); other
// overlaps of views throw; spans must not overlap views or each other (not checked).
//
// Special values: IEEE propagation. A NaN or Inf in a channel (row, group) makes its mean or variance NaN
// or Inf, and its outputs NaN (relu keeps them NaN); other channels are unaffected. The range estimator
// ignores NaN in max / min (its mean is still NaN). eps must be finite and >= 0; with eps = 0 a constant
// channel gives rstd = +Inf and NaN outputs, as the formula does.
//
// API (Policy = approx::exact, constrained by approx::multiplier; kernel objects validate their arguments,
// free functions make one and call it):
//   batchnorm_kernel<P> k(rows, cols, batchnorm_params{eps, axis, estimator, relu, accumulate});
//     k.stats(x, mean, var); k.forward(x, mean, var, gamma, beta, y);
//     k.backward(dy, x, mean, var, gamma, beta, dx, dgamma, dbeta)      (beta is read only with relu)
//   groupnorm_kernel<P> k(rows, channels, spatial, groups, norm_params{eps, accumulate});
//     k.forward(x, gamma, beta, y, mean, rstd); k.backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta)
//   layernorm_kernel<P> k(rows, cols, norm_params): the same calls, mean / rstd per row
//   rmsnorm_kernel<P> k(rows, cols, norm_params): k.forward(x, gamma, y, rstd); k.backward(dy, x, rstd,
//     gamma, dx, dgamma)
//   batchnorm_stats / batchnorm_forward / batchnorm_backward, layernorm_forward / layernorm_backward,
//   groupnorm_forward / groupnorm_backward, rmsnorm_forward / rmsnorm_backward: one-off calls.
// Single-threaded, safe inside a caller's OpenMP region (per-thread scratch, slot 9).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/mat.hpp"
#include "../core/scratch.hpp"
#include "../core/stream.hpp"
#include "detail/elementwise.hpp"
#include "detail/norm_softmax.hpp"

namespace tpp {

enum class channel_axis : std::uint8_t { cols, rows };
enum class variance_estimator : std::uint8_t { moments, range };

struct batchnorm_params {
  float eps = 1e-5f;
  channel_axis axis = channel_axis::cols;
  variance_estimator estimator = variance_estimator::moments;
  bool relu = false;        // y = max(y, 0) fused; backward masks dy where the forward value was <= 0
  bool accumulate = false;  // backward: dgamma += ..., dbeta += ... (for tiles of one batch)
};

struct norm_params {
  float eps = 1e-5f;
  bool accumulate = false;  // backward: dgamma += ..., dbeta += ...
};

// sigma estimated as range_scale(n) (max - min) for n Gaussian samples: 1 / (2 sqrt(2 ln n)); 0 for n < 2.
inline double range_scale(index_t n) noexcept {
  return n < 2 ? 0.0 : 1.0 / (2.0 * std::sqrt(2.0 * std::log(double(n))));
}

namespace detail::norm_impl {

using V = simd::lane;
using io = lane_io<V>;
inline constexpr index_t W = io::width;
inline constexpr index_t row_block = 1024;  // elements of a row summed in fp32 before the double merge
inline constexpr index_t col_rows = 128;    // most rows of a column block (batchnorm backward)

using lanes::hsum;

inline bool lane_mask(index_t) noexcept { return true; }
template <class A>
xsimd::batch_bool<float, A> lane_mask(index_t n) noexcept {
  alignas(64) float idx[W];
  for (index_t k = 0; k < W; ++k) idx[k] = float(k);
  return xsimd::batch<float, A>::load_aligned(idx) < xsimd::batch<float, A>(float(n));
}
// Lanes [0, n) of a V true (n <= W).
template <class L = V>
auto tail_mask(index_t n) noexcept {
  if constexpr (std::is_same_v<L, float>)
    return lane_mask(n);
  else
    return lane_mask<typename L::arch_type>(n);
}

// Full or partial (m < W, the other lanes zero) loads and stores.
template <class T, class L = lane_io<std::conditional_t<sizeof(T) != 0, V, void>>>  // (dependent, for if constexpr)
V load(const T* p, index_t m) noexcept {
  if constexpr (W > 1)
    if (m < W) return L::load_partial(p, m);
  return L::load(p);
}
template <class T, class L = lane_io<std::conditional_t<sizeof(T) != 0, V, void>>>
void store(T* p, V v, index_t m) noexcept {
  if constexpr (W > 1)
    if (m < W) return L::store_partial(p, v, m);
  L::store(p, v);
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
      const auto m = tail_mask(e - j);
      for (int k = 0; k < K; ++k) a1[k] += lanes::select(m, t[k], V(0.0f));
    }
    for (int k = 0; k < K; ++k) total[k] += double(hsum(a0[k] + a1[k]));
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

// Extremes with first occurrences, vectorised: a vector max / min over a stretch (NaN ignored: a NaN
// never compares greater), and only where that beats the running value a scalar scan for its first index
// (rare after the first stretches, for data in any order but sorted).
inline V vmax_nan_ignored(V x, V m) noexcept { return lanes::select(x > m, x, m); }
inline V vmin_nan_ignored(V x, V m) noexcept { return lanes::select(x < m, x, m); }

// e updated with x[0, n) (contiguous) at indices base + j.
template <class T>
void seq_extremes(const T* x, index_t n, index_t base, extremes& e) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  V mx(-inf), mn(inf);
  for_lanes(n, [&](index_t j, index_t m) {
    const V v = load(x + j, m);
    const auto k = tail_mask(m);
    mx = vmax_nan_ignored(lanes::select(k, v, V(-inf)), mx);
    mn = vmin_nan_ignored(lanes::select(k, v, V(inf)), mn);
  });
  alignas(64) float a[W], b[W];
  store(a, mx, W), store(b, mn, W);
  float hx = -inf, hn = inf;
  for (index_t k = 0; k < W; ++k) hx = std::max(hx, a[k]), hn = std::min(hn, b[k]);
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

// ex[c] updated for columns [c0, c1) of x with rows [r0, r1) (row index = sample index). The block's
// column max / min go row by row into fp32 rows in scratch (a walk down a column strip would thrash the
// L1 at power-of-two lds).
template <class T>
void col_extremes(mat<const T> x, index_t r0, index_t r1, index_t c0, index_t c1, extremes* ex) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  const index_t w = c1 - c0;
  float* mx = tpp::thread_scratch<13>(std::size_t(2 * w));
  float* mn = mx + w;
  std::fill_n(mx, w, -inf), std::fill_n(mn, w, inf);
  for (index_t i = r0; i < r1; ++i) {
    const T* row = x.row(i) + c0;
    for_lanes(w, [&](index_t j, index_t m) {
      const V v = load(row + j, m);
      store(mx + j, vmax_nan_ignored(v, load(mx + j, m)), m);
      store(mn + j, vmin_nan_ignored(v, load(mn + j, m)), m);
    });
  }
  for (index_t k = 0; k < w; ++k) {
    extremes& e = ex[c0 + k];
    if (mx[k] > e.max) {
      index_t i = r0;
      while (to_float(x(i, c0 + k)) != mx[k]) ++i;
      e.max = mx[k], e.arg_max = i;
    }
    if (mn[k] < e.min) {
      index_t i = r0;
      while (to_float(x(i, c0 + k)) != mn[k]) ++i;
      e.min = mn[k], e.arg_min = i;
    }
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

// The column passes of batchnorm over x (N, C) go row by row, every row in full: one sequential walk per
// view, which the hardware prefetchers follow from DRAM, with per-column constants and sums in fp32 rows
// of C values (L1). (Strips of two vectors of columns walked down a block of rows, constants and sums in
// registers, measured 5-15% slower on bench/compare_norm's ResNet-50 shapes.) The statistics go through
// blocks of whole rows, 8 to 256 rows within ~256 KiB, so a block read once from memory is re-read from L2.
inline index_t col_block_rows(index_t cols, std::size_t elem) noexcept {
  const index_t r = index_t((std::size_t(256) << 10) / (std::size_t(std::max<index_t>(cols, 1)) * elem));
  return std::clamp<index_t>(r, 8, 256);
}

// acc[k][c] += Σ_{i in [r0, r1)} f(c, m, xs(i, c)...)[k] over every column of the views xs (all of the
// same shape; acc[k] fp32 rows of their cols values): f gets the vectors of lanes [c, c + m) (the others
// zero) and returns std::array<V, K>.
template <int K, class F, class... T>
void add_rows(index_t r0, index_t r1, std::array<float*, K> acc, F f, mat<const T>... xs) {
  const index_t C = std::get<0>(std::tuple{xs...}).cols;
  const auto term = [&](index_t i, index_t c, index_t m) __attribute__((always_inline)) { return f(c, m, load(xs.row(i) + c, m)...); };
  const auto add = [&](index_t c, index_t m, const std::array<V, K>& t) __attribute__((always_inline)) {
    _Pragma("GCC unroll 4") for (int k = 0; k < K; ++k) store(acc[k] + c, load(acc[k] + c, m) + t[k], m);
  };
  // Four rows at a time: each fp32 row is read and written once per four (through L1 the sums would
  // otherwise wait on the last store at small C).
  index_t i = r0;
  for (; i + 4 <= r1; i += 4)
    for_lanes(C, [&](index_t c, index_t m) __attribute__((always_inline)) {
      auto t = term(i, c, m);
      const auto t1 = term(i + 1, c, m), t2 = term(i + 2, c, m), t3 = term(i + 3, c, m);
      _Pragma("GCC unroll 4") for (int k = 0; k < K; ++k) t[k] = (t[k] + t1[k]) + (t2[k] + t3[k]);
      add(c, m, t);
    });
  for (; i < r1; ++i) for_lanes(C, [&](index_t c, index_t m) __attribute__((always_inline)) { add(c, m, term(i, c, m)); });
}

// out(i, c) = f(c, m, xs(i, c)...) over every element (f as for add_rows, returning V). With stream, whole
// fp32 vectors are stored past the caches (core/stream.hpp; the caller fences). (f is taken by value, and
// should capture by value: a vector store may alias anything, so what it reaches through a reference is
// re-read after every store.)
template <class F, class TO, class... T>
void map_rows(mat<TO> out, bool stream, F f, mat<const T>... xs) {
  for (index_t i = 0; i < out.rows; ++i) {
    TO* o = out.row(i);
    for_lanes(out.cols, [&, p = std::tuple{xs.row(i)...}](index_t c, index_t m) __attribute__((always_inline)) {
      const V y = std::apply([&](const auto*... r) { return f(c, m, load(r + c, m)...); }, p);
      if (!detail::stream_whole(o + c, y, m, stream)) store(o + c, y, m);
    });
  }
}

// Per-column moments of x (N, C) into mean[c], m2[c] (double), count N; extremes when ex is non-null.
// Per row block: fp32 column sums give the block's means mb; then Σ (x - mb) and Σ P(d, d); then the merge
// (moments::merge, written out over the columns).
template <class Policy, class T>
void col_moments(mat<const T> x, double* mean, double* m2, extremes* ex) {
  const index_t C = x.cols, RB = col_block_rows(C, sizeof(T));
  std::fill_n(mean, C, 0.0);
  std::fill_n(m2, C, 0.0);
  if (ex != nullptr) std::fill_n(ex, C, extremes{});
  float* f = tpp::thread_scratch<12>(std::size_t(3 * C));
  float *mb = f, *sd = f + C, *sq = f + 2 * C;
  double n = 0;
  for (index_t r0 = 0; r0 < x.rows; r0 += RB) {
    const index_t r1 = std::min(x.rows, r0 + RB);
    const double nb = double(r1 - r0), inv = 1.0 / nb, tot = n + nb, w = nb / tot, g = n * nb / tot;
    std::fill_n(f, 3 * C, 0.0f);
    add_rows<1>(r0, r1, {mb}, [](index_t, index_t, V v) { return std::array<V, 1>{v}; }, x);
    for (index_t c = 0; c < C; ++c) mb[c] = float(double(mb[c]) * inv);
    add_rows<2>(
        r0, r1, {sd, sq},
        [mb](index_t c, index_t m, V v) {
          const V d = v - load(mb + c, m);
          return std::array<V, 2>{d, Policy::mul(d, d)};
        },
        x);
    for (index_t c = 0; c < C; ++c) {
      const double e = double(sd[c]), md = double(mb[c]) + e * inv, d = md - mean[c];
      m2[c] += (double(sq[c]) - e * e * inv) + d * d * g;
      mean[c] += d * w;
    }
    if (ex != nullptr) col_extremes(x, r0, r1, 0, C, ex);
    n = tot;
  }
}

// y = P(x - mu, s) + b [, relu]: the forward of every centred norm.
template <class Policy, bool Relu>
struct normalize {
  template <class L>
  L operator()(L x, L mu, L s, L b) const noexcept {
    const L y = Policy::mul(x - mu, s) + b;
    if constexpr (Relu)
      return lanes::select(y <= L(0.0f), L(0.0f), y);
    else
      return y;
  }
};

// A view of const elements (the kernels take views of const or mutable elements alike).
template <class T>
mat<const std::remove_const_t<T>> cview(mat<T> m) noexcept {
  return {m.data, m.rows, m.cols, m.ld};
}

// Checks shared by the kernels.
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

inline float rstd_of(double var, float eps) noexcept { return 1.0f / std::sqrt(float(var) + eps); }

// Double accumulators for dgamma / dbeta written to the caller's spans (added with accumulate).
inline void finish(const double* acc, std::span<float> out, bool accumulate) noexcept {
  for (std::size_t c = 0; c < out.size(); ++c) out[c] = float(acc[c] + (accumulate ? double(out[c]) : 0.0));
}

}  // namespace detail::norm_impl

// ---- batchnorm -------------------------------------------------------------------------------------

template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
class batchnorm_kernel {
 public:
  static constexpr std::string_view label = "batchnorm";

  batchnorm_kernel(index_t rows, index_t cols, batchnorm_params p = {}) : rows_(rows), cols_(cols), p_(p) {
    detail::check_sizes(label, rows, cols);
    detail::norm_impl::check_eps(p.eps, label);
    detail::require(p.axis == channel_axis::cols || p.axis == channel_axis::rows, label, "axis", "is invalid");
    detail::require(p.estimator == variance_estimator::moments || p.estimator == variance_estimator::range, label,
                    "estimator", "is invalid");
    approx::check_policy<Policy>();
  }

  index_t channels() const noexcept { return by_cols() ? cols_ : rows_; }
  index_t samples() const noexcept { return by_cols() ? rows_ : cols_; }  // n, per channel
  const batchnorm_params& params() const noexcept { return p_; }

  // mean, var: (channels) — the batch statistics (biased variance, or the range estimate).
  template <class TX>
  void stats(mat<TX> x_arg, std::span<float> mean, std::span<float> var) const {
    const auto x = detail::norm_impl::cview(x_arg);
    using namespace detail::norm_impl;
    check_view(x, rows_, cols_, label, "x");
    check_span(mean, std::size_t(channels()), label, "mean");
    check_span(var, std::size_t(channels()), label, "var");
    const index_t C = channels(), n = samples();
    const bool range = p_.estimator == variance_estimator::range;
    const double rs = range_scale(n);
    if (n == 0) {
      std::fill(mean.begin(), mean.end(), 0.0f), std::fill(var.begin(), var.end(), 0.0f);
      return;
    }
    if (by_cols()) {
      double* acc = scratch_doubles(2 * C);
      extremes* ex = range ? scratch_extremes(C) : nullptr;
      col_moments<Policy>(x, acc, acc + C, ex);
      for (index_t c = 0; c < C; ++c) {
        mean[c] = float(acc[c]);
        var[c] = range ? range_var(ex[c], rs) : float(std::max(acc[C + c] / double(n), 0.0));
      }
    } else {
      for (index_t c = 0; c < C; ++c) {
        extremes e;
        const moments m = row_moments<Policy>(x.row(c), n, range ? &e : nullptr);
        mean[c] = float(m.mean);
        var[c] = range ? range_var(e, rs) : float(m.var());
      }
    }
  }

  // y = P(x - mean, gamma rstd) + beta [relu]; gamma, beta: (channels).
  template <class TX, class TY>
    requires(!std::is_const_v<TY>)
  void forward(mat<TX> x_arg, std::span<const float> mean, std::span<const float> var,
               std::span<const float> gamma, std::span<const float> beta, mat<TY> y) const {
    const auto x = detail::norm_impl::cview(x_arg);
    using namespace detail::norm_impl;
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    const index_t C = channels();
    check_channel_spans(mean, var, gamma);
    check_span(beta, std::size_t(C), label, "beta");
    float* s = tpp::thread_scratch<9>(std::size_t(C));
    for (index_t c = 0; c < C; ++c) s[c] = gamma[c] * rstd_of(var[c], p_.eps);
    const auto run = [&]<bool Relu>() {
      if (by_cols()) {
        const bool nt = detail::streams(y, detail::view_bytes(x) + detail::view_bytes(y));
        map_rows(y, nt, [mu = mean.data(), s, b = beta.data()](index_t c, index_t m, V xv) {
            return normalize<Policy, Relu>{}(xv, load(mu + c, m), load(s + c, m), load(b + c, m));
          }, x);
        if (nt) detail::stream_fence();
      } else {
        const auto chan = [&](const float* p) { return detail::make_operand(channel_view(p), broadcast::col); };
        detail::for_each_element<V>(normalize<Policy, Relu>{}, y, detail::make_operand(x, broadcast::none),
                                    chan(mean.data()), chan(s), chan(beta.data()));
      }
    };
    p_.relu ? run.template operator()<true>() : run.template operator()<false>();
  }

  // dx, dgamma, dbeta from dy and the forward's x, mean, var, gamma (and beta, read only with relu).
  template <class TG, class TX, class TD>
    requires(!std::is_const_v<TD>)
  void backward(mat<TG> dy_arg, mat<TX> x_arg, std::span<const float> mean, std::span<const float> var,
                std::span<const float> gamma, std::span<const float> beta, mat<TD> dx, std::span<float> dgamma,
                std::span<float> dbeta) const {
    const auto dy = detail::norm_impl::cview(dy_arg);
    const auto x = detail::norm_impl::cview(x_arg);
    using namespace detail::norm_impl;
    detail::check_in_out(dy, dx, rows_, cols_, label, "dy", "dx");
    check_view(x, rows_, cols_, label, "x");
    detail::check_alias(dx, x, label, "dx", "x");
    const index_t C = channels(), n = samples();
    check_channel_spans(mean, var, gamma);
    if (p_.relu) check_span(beta, std::size_t(C), label, "beta");  // (read only with relu)
    check_span(dgamma, std::size_t(C), label, "dgamma");
    check_span(dbeta, std::size_t(C), label, "dbeta");
    const bool range = p_.estimator == variance_estimator::range;
    // Per channel: rstd, s = gamma rstd, and after pass 1: dbeta / n, dgamma / n.
    double* acc = scratch_doubles(2 * C);  // dbeta, dgamma sums
    extremes* ex = range ? scratch_extremes(C) : nullptr;
    float* f = tpp::thread_scratch<10>(std::size_t(4 * C));
    float *rstd = f, *s = f + C, *dbn = f + 2 * C, *dgn = f + 3 * C;
    for (index_t c = 0; c < C; ++c) {
      rstd[c] = rstd_of(var[c], p_.eps);
      s[c] = gamma[c] * rstd[c];
    }
    const float* bt = p_.relu ? beta.data() : s;  // (not read without relu)
    if (p_.relu)
      sums<true>(dy, x, mean.data(), rstd, s, bt, acc, ex);
    else
      sums<false>(dy, x, mean.data(), rstd, s, bt, acc, ex);
    for (index_t c = 0; c < C; ++c) {
      dbn[c] = n > 0 ? float(acc[c] / double(n)) : 0.0f;
      dgn[c] = n > 0 ? float(acc[C + c] / double(n)) : 0.0f;
    }
    const auto run = [&]<bool Relu, bool Range>() {
      const auto grad = [](auto g, auto xv, auto mu, auto r, auto sv, auto bv, auto db, auto dg) {
        using L = decltype(g);
        if constexpr (Relu) g = detail::lanes::select(normalize<Policy, false>{}(xv, mu, sv, bv) <= L(0.0f), L(0.0f), g);
        if constexpr (Range) {
          return Policy::mul(g - db, sv);
        } else {
          const L xh = Policy::mul(xv - mu, r);
          return Policy::mul(g - db - Policy::mul(xh, dg), sv);
        }
      };
      if (by_cols()) {
        const bool nt = detail::streams(dx, detail::view_bytes(dy) + detail::view_bytes(x) + detail::view_bytes(dx));
        map_rows(dx, nt, [grad, mu = mean.data(), rstd, s, bt, dbn, dgn](index_t c, index_t m, V g, V xv) {
            return grad(g, xv, load(mu + c, m), Range ? V(0.0f) : load(rstd + c, m), load(s + c, m),
                     Relu ? load(bt + c, m) : V(0.0f), load(dbn + c, m), Range ? V(0.0f) : load(dgn + c, m));
          }, dy, x);
        if (nt) detail::stream_fence();
        return;
      }
      const auto chan = [&](const float* p) { return detail::make_operand(channel_view(p), broadcast::col); };
      detail::for_each_element<V>(
          grad, dx, detail::make_operand(dy, broadcast::none), detail::make_operand(x, broadcast::none), chan(mean.data()),
          chan(rstd), chan(s), chan(bt), chan(dbn), chan(dgn));
    };
    if (p_.relu)
      range ? run.template operator()<true, true>() : run.template operator()<true, false>();
    else
      range ? run.template operator()<false, true>() : run.template operator()<false, false>();
    if (range && n > 0) {
      const double rs = range_scale(n);
      for (index_t c = 0; c < C; ++c) {
        const extremes& e = ex[c];
        if (e.arg_max == e.arg_min) continue;  // a constant channel: R = 0
        const double R = double(e.max) - double(e.min), r = rstd[c];
        const float t = float(double(gamma[c]) * rs * rs * R * r * r * acc[C + c]);
        TD* pmax = by_cols() ? &dx(e.arg_max, c) : &dx(c, e.arg_max);
        TD* pmin = by_cols() ? &dx(e.arg_min, c) : &dx(c, e.arg_min);
        *pmax = from_float<TD>(to_float(*pmax) - t);
        *pmin = from_float<TD>(to_float(*pmin) + t);
      }
    }
    finish(acc, dbeta, p_.accumulate);
    finish(acc + C, dgamma, p_.accumulate);
  }

 private:
  index_t rows_, cols_;
  batchnorm_params p_;

  bool by_cols() const noexcept { return p_.axis == channel_axis::cols; }
  mat<const float> channel_view(const float* p) const noexcept {
    return by_cols() ? mat<const float>{p, 1, cols_, cols_} : mat<const float>{p, rows_, 1, 1};
  }
  static double* scratch_doubles(index_t n) { return reinterpret_cast<double*>(tpp::thread_scratch<9>(std::size_t(2 * n) + 16)); }
  static detail::norm_impl::extremes* scratch_extremes(index_t n) {
    static_assert(alignof(detail::norm_impl::extremes) <= 64);
    constexpr std::size_t per = (sizeof(detail::norm_impl::extremes) + sizeof(float) - 1) / sizeof(float);
    return reinterpret_cast<detail::norm_impl::extremes*>(tpp::thread_scratch<11>(std::size_t(n) * per));
  }
  static float range_var(const detail::norm_impl::extremes& e, double rs) noexcept {
    if (!(e.max >= e.min)) return 0.0f;  // no finite comparison happened (all NaN): NaN comes from the mean
    const double sd = rs * (double(e.max) - double(e.min));
    return float(sd * sd);
  }
  void check_channel_spans(std::span<const float> mean, std::span<const float> var, std::span<const float> gamma) const {
    using detail::norm_impl::check_span;
    const std::size_t C = std::size_t(channels());
    check_span(mean, C, label, "mean");
    check_span(var, C, label, "var");
    check_span(gamma, C, label, "gamma");
  }

  // Pass 1 of the backward: acc[c] = Σ dy', acc[C + c] = Σ P(dy', xh); the extremes for range.
  template <bool Relu, class TG, class TX>
  void sums(mat<const TG> dy, mat<const TX> x, const float* mean, const float* rstd, const float* s,
            const float* beta, double* acc, detail::norm_impl::extremes* ex) const {
    using namespace detail::norm_impl;
    const index_t C = channels(), n = samples();
    const auto term = [&](V g, V xv, V mu, V r, V sv, V bv) {
      if constexpr (Relu) g = detail::lanes::select(normalize<Policy, false>{}(xv, mu, sv, bv) <= V(0.0f), V(0.0f), g);
      return std::array<V, 2>{g, Policy::mul(g, Policy::mul(xv - mu, r))};
    };
    if (!by_cols()) {
      for (index_t c = 0; c < C; ++c) {
        const TG* g = dy.row(c);
        const TX* xr = x.row(c);
        const V mu(mean[c]), r(rstd[c]), sv(s[c]), bv(beta[c]);
        const auto t = row_sums<2>(n, [&](index_t j, index_t m) { return term(load(g + j, m), load(xr + j, m), mu, r, sv, bv); });
        acc[c] = t[0], acc[C + c] = t[1];
        if (ex != nullptr) {
          ex[c] = extremes{};
          for (index_t b = 0; b < n; b += row_block) seq_extremes(xr + b, std::min(row_block, n - b), b, ex[c]);
        }
      }
      return;
    }
    // Channels are columns: blocks of up to col_rows rows summed into fp32 rows, merged in double.
    float* f = tpp::thread_scratch<12>(std::size_t(2 * C));
    std::fill_n(acc, 2 * C, 0.0);
    if (ex != nullptr) std::fill_n(ex, C, extremes{});
    for (index_t r0 = 0; r0 < rows_; r0 += col_rows) {
      const index_t r1 = std::min(rows_, r0 + col_rows);
      std::fill_n(f, 2 * C, 0.0f);
      add_rows<2>(
          r0, r1, {f, f + C},
          [term, mean, rstd, s, beta](index_t c, index_t m, V g, V xv) {
            return term(g, xv, load(mean + c, m), load(rstd + c, m), load(s + c, m), Relu ? load(beta + c, m) : V(0.0f));
          },
          dy, x);
      for (index_t c = 0; c < C; ++c) acc[c] += double(f[c]), acc[C + c] += double(f[C + c]);
      if (ex != nullptr) col_extremes(x, r0, r1, 0, C, ex);
    }
  }
};

// ---- groupnorm, layernorm, RMSNorm ----------------------------------------------------------------

namespace detail::norm_impl {

// The per-row engine of groupnorm (Centered) and RMSNorm (not): each row of x (rows, C S) holds G groups of
// C / G channels of S values; group g of row i is the contiguous segment [g (C/G) S, (g + 1) (C/G) S).
// S = 1 runs along the segment with per-element gamma; S > 1 per channel, gamma a splat.
template <class Policy, bool Centered>
class segment_norm {
 public:
  segment_norm(std::string_view op, index_t rows, index_t channels, index_t spatial, index_t groups, norm_params p)
      : op_(op), rows_(rows), C_(channels), S_(spatial), G_(groups), p_(p) {
    check_sizes(op, rows, channels, "rows", "channels");
    if (spatial < 0) throw error(op, "spatial", concat("is negative (", std::to_string(spatial), ")"));
    if (groups <= 0) throw error(op, "groups", concat("must be positive (is ", std::to_string(groups), ")"));
    if (channels % groups != 0)
      throw error(op, "groups", concat("(", std::to_string(groups), ") does not divide channels (", std::to_string(channels), ")"));
    index_t t = 0;
    require(checked_mul(channels, spatial, cols_), op, "channels * spatial", "overflows index_t");
    require(checked_mul(rows, groups, t), op, "rows * groups", "overflows index_t");
    check_eps(p.eps, op);
    approx::check_policy<Policy>();
  }

  index_t cols() const noexcept { return cols_; }

  template <class TX, class TY>
  void forward(mat<const TX> x, const float* gamma, const float* beta, mat<TY> y, float* mean, float* rstd) const {
    check_in_out(x, y, rows_, cols_, op_, "x", "y");
    const index_t cpg = C_ / G_, len = cpg * S_;
    for (index_t i = 0; i < rows_; ++i)
      for (index_t g = 0; g < G_; ++g) {
        const TX* xs = x.row(i) + g * len;
        TY* ys = y.row(i) + g * len;
        double mu = 0, var = 0;
        if constexpr (Centered) {
          const moments m = row_moments<Policy>(xs, len);
          mu = m.mean, var = m.var();
        } else if (len > 0) {
          var = row_sums<1>(len, [&](index_t j, index_t m) {
                  const V v = load(xs + j, m);
                  return std::array<V, 1>{Policy::mul(v, v)};
                })[0] / double(len);
        }
        const float mf = float(mu), r = rstd_of(var, p_.eps);
        if (mean != nullptr) mean[i * G_ + g] = mf;
        rstd[i * G_ + g] = r;
        const index_t c0 = g * cpg;
        if (S_ == 1) {
          for_lanes(len, [&](index_t j, index_t m) {
            const V s = load(gamma + c0 + j, m) * V(r);
            store(ys + j, apply(load(xs + j, m), V(mf), s, beta, c0 + j, m), m);
          });
        } else {
          for (index_t c = 0; c < cpg; ++c) {
            const V s(gamma[c0 + c] * r);
            const TX* xc = xs + c * S_;
            TY* yc = ys + c * S_;
            for_lanes(S_, [&](index_t j, index_t m) { store(yc + j, apply(load(xc + j, m), V(mf), s, beta, c0 + c, 0), m); });
          }
        }
      }
  }

  template <class TG, class TX, class TD>
  void backward(mat<const TG> dy, mat<const TX> x, const float* mean, const float* rstd, const float* gamma,
                mat<TD> dx, std::span<float> dgamma, std::span<float> dbeta) const {
    check_in_out(dy, dx, rows_, cols_, op_, "dy", "dx");
    check_view(x, rows_, cols_, op_, "x");
    check_alias(dx, x, op_, "dx", "x");
    const index_t cpg = C_ / G_, len = cpg * S_;
    double* acc = reinterpret_cast<double*>(tpp::thread_scratch<9>(std::size_t(4 * C_) + 16));  // dgamma, dbeta
    std::fill_n(acc, 2 * C_, 0.0);
    // S = 1: per-column fp32 partial sums over up to flush_rows rows, then into acc.
    constexpr index_t flush_rows = 64;
    float* col = tpp::thread_scratch<10>(std::size_t(2 * C_));
    std::fill_n(col, 2 * C_, 0.0f);
    const auto flush = [&] {
      for (index_t c = 0; c < 2 * C_; ++c) acc[c] += double(col[c]), col[c] = 0.0f;
    };
    for (index_t i = 0; i < rows_; ++i) {
      for (index_t g = 0; g < G_; ++g) {
        const TG* gs = dy.row(i) + g * len;
        const TX* xs = x.row(i) + g * len;
        TD* ds = dx.row(i) + g * len;
        const V mu(Centered ? mean[i * G_ + g] : 0.0f), r(rstd[i * G_ + g]);
        const index_t c0 = g * cpg;
        // Σ g, Σ P(g, xh) over the group
        double sg = 0, sgx = 0;
        if (S_ == 1) {
          const auto t = row_sums<2>(len, [&](index_t j, index_t m) {
            const V gv = Policy::mul(load(gs + j, m), load(gamma + c0 + j, m));
            return std::array<V, 2>{gv, Policy::mul(gv, xhat(load(xs + j, m), mu, r))};
          });
          sg = t[0], sgx = t[1];
        } else {
          for (index_t c = 0; c < cpg; ++c) {
            const V gm(gamma[c0 + c]);
            const TG* gc = gs + c * S_;
            const TX* xc = xs + c * S_;
            const auto t = row_sums<4>(S_, [&](index_t j, index_t m) {
              const V d = load(gc + j, m), xh = xhat(load(xc + j, m), mu, r), gv = Policy::mul(d, gm);
              return std::array<V, 4>{gv, Policy::mul(gv, xh), Policy::mul(d, xh), d};
            });
            sg += t[0], sgx += t[1], acc[c0 + c] += t[2], acc[C_ + c0 + c] += t[3];
          }
        }
        const V a(Centered ? float(sg / double(len)) : 0.0f), b(float(sgx / double(len)));
        if (S_ == 1) {
          float* cg = col + c0;
          float* cb = col + C_ + c0;
          for_lanes(len, [&](index_t j, index_t m) {
            const V d = load(gs + j, m), xh = xhat(load(xs + j, m), mu, r);
            const V gv = Policy::mul(d, load(gamma + c0 + j, m));
            store(ds + j, grad(gv, xh, a, b, r), m);
            store(cg + j, load(cg + j, m) + Policy::mul(d, xh), m);
            store(cb + j, load(cb + j, m) + d, m);
          });
        } else {
          for (index_t c = 0; c < cpg; ++c) {
            const V gm(gamma[c0 + c]);
            const TG* gc = gs + c * S_;
            const TX* xc = xs + c * S_;
            TD* dc = ds + c * S_;
            for_lanes(S_, [&](index_t j, index_t m) {
              store(dc + j, grad(Policy::mul(load(gc + j, m), gm), xhat(load(xc + j, m), mu, r), a, b, r), m);
            });
          }
        }
      }
      if (S_ == 1 && (i + 1) % flush_rows == 0) flush();
    }
    if (S_ == 1) flush();
    finish(acc, dgamma, p_.accumulate);
    if constexpr (Centered) finish(acc + C_, dbeta, p_.accumulate);
  }

 private:
  std::string_view op_;
  index_t rows_, C_, S_, G_, cols_ = 0;
  norm_params p_;

  // y = P(x - mu, s) + beta[c] (centred; beta per element at c.. when m > 0, a splat when m = 0), or P(x, s).
  static V apply(V x, V mu, V s, const float* beta, index_t c, index_t m) noexcept {
    if constexpr (Centered)
      return Policy::mul(x - mu, s) + (m > 0 ? load(beta + c, m) : V(beta[c]));
    else
      return Policy::mul(x, s);
  }
  static V xhat(V x, V mu, V r) noexcept {
    if constexpr (Centered)
      return Policy::mul(x - mu, r);
    else
      return Policy::mul(x, r);
  }
  // P(g - a - P(xh, b), r), a = Σg / n (0 for RMSNorm), b = Σ P(g, xh) / n.
  static V grad(V g, V xh, V a, V b, V r) noexcept {
    if constexpr (Centered)
      return Policy::mul(g - a - Policy::mul(xh, b), r);
    else
      return Policy::mul(g - Policy::mul(xh, b), r);
  }
};

}  // namespace detail::norm_impl

// Groupnorm of x (rows, channels spatial): mean, rstd (rows groups) at [row groups + group].
template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
class groupnorm_kernel {
 public:
  static constexpr std::string_view label = "groupnorm";
  groupnorm_kernel(index_t rows, index_t channels, index_t spatial, index_t groups, norm_params p = {})
      : e_(label, rows, channels, spatial, groups, p), rows_(rows), C_(channels), G_(groups) {}

  template <class TX, class TY>
    requires(!std::is_const_v<TY>)
  void forward(mat<TX> x_arg, std::span<const float> gamma, std::span<const float> beta, mat<TY> y,
               std::span<float> mean, std::span<float> rstd) const {
    const auto x = detail::norm_impl::cview(x_arg);
    using detail::norm_impl::check_span;
    check_span(gamma, std::size_t(C_), label, "gamma");
    check_span(beta, std::size_t(C_), label, "beta");
    check_span(mean, std::size_t(rows_ * G_), label, "mean");
    check_span(rstd, std::size_t(rows_ * G_), label, "rstd");
    e_.forward(x, gamma.data(), beta.data(), y, mean.data(), rstd.data());
  }
  template <class TG, class TX, class TD>
    requires(!std::is_const_v<TD>)
  void backward(mat<TG> dy_arg, mat<TX> x_arg, std::span<const float> mean, std::span<const float> rstd,
                std::span<const float> gamma, mat<TD> dx, std::span<float> dgamma, std::span<float> dbeta) const {
    const auto dy = detail::norm_impl::cview(dy_arg);
    const auto x = detail::norm_impl::cview(x_arg);
    using detail::norm_impl::check_span;
    check_span(mean, std::size_t(rows_ * G_), label, "mean");
    check_span(rstd, std::size_t(rows_ * G_), label, "rstd");
    check_span(gamma, std::size_t(C_), label, "gamma");
    check_span(dgamma, std::size_t(C_), label, "dgamma");
    check_span(dbeta, std::size_t(C_), label, "dbeta");
    e_.backward(dy, x, mean.data(), rstd.data(), gamma.data(), dx, dgamma, dbeta);
  }

 private:
  detail::norm_impl::segment_norm<Policy, true> e_;
  index_t rows_, C_, G_;
};

// Layernorm of each row of x (rows, cols): gamma, beta (cols); mean, rstd (rows).
template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
class layernorm_kernel : public groupnorm_kernel<Policy> {
 public:
  layernorm_kernel(index_t rows, index_t cols, norm_params p = {}) : groupnorm_kernel<Policy>(rows, cols, 1, 1, p) {}
};

// RMSNorm of each row of x (rows, cols): gamma (cols); rstd (rows).
template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
class rmsnorm_kernel {
 public:
  static constexpr std::string_view label = "rmsnorm";
  rmsnorm_kernel(index_t rows, index_t cols, norm_params p = {}) : e_(label, rows, cols, 1, 1, p), rows_(rows), cols_(cols) {}

  template <class TX, class TY>
    requires(!std::is_const_v<TY>)
  void forward(mat<TX> x_arg, std::span<const float> gamma, mat<TY> y, std::span<float> rstd) const {
    const auto x = detail::norm_impl::cview(x_arg);
    using detail::norm_impl::check_span;
    check_span(gamma, std::size_t(cols_), label, "gamma");
    check_span(rstd, std::size_t(rows_), label, "rstd");
    e_.forward(x, gamma.data(), nullptr, y, nullptr, rstd.data());
  }
  template <class TG, class TX, class TD>
    requires(!std::is_const_v<TD>)
  void backward(mat<TG> dy_arg, mat<TX> x_arg, std::span<const float> rstd, std::span<const float> gamma,
                mat<TD> dx, std::span<float> dgamma) const {
    const auto dy = detail::norm_impl::cview(dy_arg);
    const auto x = detail::norm_impl::cview(x_arg);
    using detail::norm_impl::check_span;
    check_span(rstd, std::size_t(rows_), label, "rstd");
    check_span(gamma, std::size_t(cols_), label, "gamma");
    check_span(dgamma, std::size_t(cols_), label, "dgamma");
    e_.backward(dy, x, nullptr, rstd.data(), gamma.data(), dx, dgamma, {});
  }

 private:
  detail::norm_impl::segment_norm<Policy, false> e_;
  index_t rows_, cols_;
};

// ---- one-off calls ----

template <class Policy = approx::exact, class TX>
void batchnorm_stats(mat<TX> x, std::span<float> mean, std::span<float> var, batchnorm_params p = {}) {
  batchnorm_kernel<Policy>(x.rows, x.cols, p).stats(mat<const std::remove_const_t<TX>>(x), mean, var);
}
template <class Policy = approx::exact, class TX, class TY>
void batchnorm_forward(mat<TX> x, std::span<const float> mean, std::span<const float> var,
                       std::span<const float> gamma, std::span<const float> beta, mat<TY> y, batchnorm_params p = {}) {
  batchnorm_kernel<Policy>(x.rows, x.cols, p).forward(mat<const std::remove_const_t<TX>>(x), mean, var, gamma, beta, y);
}
template <class Policy = approx::exact, class TG, class TX, class TD>
void batchnorm_backward(mat<TG> dy, mat<TX> x, std::span<const float> mean, std::span<const float> var,
                        std::span<const float> gamma, std::span<const float> beta, mat<TD> dx,
                        std::span<float> dgamma, std::span<float> dbeta, batchnorm_params p = {}) {
  batchnorm_kernel<Policy>(x.rows, x.cols, p)
      .backward(mat<const std::remove_const_t<TG>>(dy), mat<const std::remove_const_t<TX>>(x), mean, var, gamma, beta,
                dx, dgamma, dbeta);
}
template <class Policy = approx::exact, class TX, class TY>
void layernorm_forward(mat<TX> x, std::span<const float> gamma, std::span<const float> beta, mat<TY> y,
                       std::span<float> mean, std::span<float> rstd, norm_params p = {}) {
  layernorm_kernel<Policy>(x.rows, x.cols, p).forward(mat<const std::remove_const_t<TX>>(x), gamma, beta, y, mean, rstd);
}
template <class Policy = approx::exact, class TG, class TX, class TD>
void layernorm_backward(mat<TG> dy, mat<TX> x, std::span<const float> mean, std::span<const float> rstd,
                        std::span<const float> gamma, mat<TD> dx, std::span<float> dgamma, std::span<float> dbeta,
                        norm_params p = {}) {
  layernorm_kernel<Policy>(x.rows, x.cols, p)
      .backward(mat<const std::remove_const_t<TG>>(dy), mat<const std::remove_const_t<TX>>(x), mean, rstd, gamma, dx,
                dgamma, dbeta);
}
template <class Policy = approx::exact, class TX, class TY>
void groupnorm_forward(mat<TX> x, index_t channels, index_t groups, std::span<const float> gamma,
                       std::span<const float> beta, mat<TY> y, std::span<float> mean, std::span<float> rstd,
                       norm_params p = {}) {
  groupnorm_kernel<Policy>(x.rows, channels, channels > 0 ? x.cols / channels : 0, groups, p)
      .forward(mat<const std::remove_const_t<TX>>(x), gamma, beta, y, mean, rstd);
}
template <class Policy = approx::exact, class TG, class TX, class TD>
void groupnorm_backward(mat<TG> dy, mat<TX> x, index_t channels, index_t groups, std::span<const float> mean,
                        std::span<const float> rstd, std::span<const float> gamma, mat<TD> dx,
                        std::span<float> dgamma, std::span<float> dbeta, norm_params p = {}) {
  groupnorm_kernel<Policy>(x.rows, channels, channels > 0 ? x.cols / channels : 0, groups, p)
      .backward(mat<const std::remove_const_t<TG>>(dy), mat<const std::remove_const_t<TX>>(x), mean, rstd, gamma, dx,
                dgamma, dbeta);
}
template <class Policy = approx::exact, class TX, class TY>
void rmsnorm_forward(mat<TX> x, std::span<const float> gamma, mat<TY> y, std::span<float> rstd, norm_params p = {}) {
  rmsnorm_kernel<Policy>(x.rows, x.cols, p).forward(mat<const std::remove_const_t<TX>>(x), gamma, y, rstd);
}
template <class Policy = approx::exact, class TG, class TX, class TD>
void rmsnorm_backward(mat<TG> dy, mat<TX> x, std::span<const float> rstd, std::span<const float> gamma, mat<TD> dx,
                      std::span<float> dgamma, norm_params p = {}) {
  rmsnorm_kernel<Policy>(x.rows, x.cols, p)
      .backward(mat<const std::remove_const_t<TG>>(dy), mat<const std::remove_const_t<TX>>(x), rstd, gamma, dx, dgamma);
}

}  // namespace tpp
