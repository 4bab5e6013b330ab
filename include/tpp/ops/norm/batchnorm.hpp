#pragma once
// Batchnorm of 2D views, forward and backward, with the moments or the range estimate of the variance
// (LightNorm / Banner et al.), fused relu; notation, statistics, types, aliasing and scratch as in
// ops/norm/common.hpp.
//
// Layouts. Batchnorm normalises each channel over the samples of a batch:
//   channel_axis::cols  x (N, C): one row per sample (or sample x pixel: an NHWC tensor as (N H W, C)),
//                       channel c is column c;
//   channel_axis::rows  x (C, N): channel c is row c (one image of an NCHW tensor as (C, H W)).
//
// Forward (one product per element, through Policy):
//   y = P(x - mean, gamma rstd) + beta       (gamma rstd: an exact fp32 product, one per channel)
//   relu = true: y = max(y, +0) (a NaN y stays NaN)
// Statistics (stats): the mean and the biased variance of each channel, or
//   variance_estimator::range: var = (range_scale(n) (max - min))^2, range_scale(n) = 1 / (2 sqrt(2 ln n))
//   (the expected range of n Gaussian samples is about 2 sigma sqrt(2 ln n); Banner et al. 2018 write the
//   constant as 1 / sqrt(2 ln n) with the factor 2 in the range; n < 2 gives var = 0). The mean is the
//   mean. max / min ignore NaN (the mean is still NaN).
// Backward (the forward's mean and var as inputs; xh = P(x - mean, rstd), dy' = dy, or with relu dy where
// the recomputed forward value is > 0, else 0; sums over the channel's n values):
//   moments: dbeta = Σ dy', dgamma = Σ P(dy', xh), dx = P(dy' - dbeta / n - P(xh, dgamma / n), gamma rstd)
//   range:   dx = P(dy' - dbeta / n, gamma rstd), then at the channel's first maximum dx -= t and at its
//            first minimum dx += t, t = gamma range_scale^2 R rstd^2 dgamma (R = max - min; the derivative
//            of rstd through R; t is applied in fp32)
// Sums over channels as columns are fp32 over blocks of up to 128 rows, double across them.
//
// Channels as columns: every pass walks x row by row, every row in full (one sequential walk per view,
// which the hardware prefetchers follow from DRAM), with the per-channel constants and sums in fp32 rows
// of C values (L1); the statistics go through blocks of 8 to 256 whole rows within ~256 KiB, so a block
// read once from memory is re-read from L2. fp32 y (forward) and dx (backward) are written with
// streaming stores when the op's footprint is at least tpp::stream_threshold (core/stream.hpp; forward x
// and y, backward dy, x and dx), as oneDNN does always: from DRAM the read for ownership of each output
// line would be a sixth of the backward's traffic. Channels as rows: the element-wise row loop
// (ops/detail/elementwise.hpp) with per-row constants.
//
// API (Policy = approx::exact, constrained by approx::multiplier):
//   batchnorm_kernel<P, TX, TY, TDY, TDX> k(rows, cols, batchnorm_params{eps, axis, estimator, relu,
//                                                                           accumulate});
//     k.stats(x, mean, var, [ws]); k.forward(x, mean, var, gamma, beta, y, [ws]);
//     k.backward(dy, x, mean, var, gamma, beta, dx, dgamma, dbeta, [ws])   (beta is read only with relu)
//     k.workspace_bytes(); k.channels(), k.samples() (n), k.params()
//   batchnorm_stats<P>(x, mean, var, p), batchnorm_forward<P>(x, mean, var, gamma, beta, y, p),
//   batchnorm_backward<P>(dy, x, mean, var, gamma, beta, dx, dgamma, dbeta, p): one-off calls
//   range_scale(n)

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/mat.hpp"
#include "../../core/stream.hpp"
#include "../../core/workspace.hpp"
#include "../detail/elementwise.hpp"
#include "common.hpp"

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

// sigma estimated as range_scale(n) (max - min) for n Gaussian samples: 1 / (2 sqrt(2 ln n)); 0 for n < 2.
inline double range_scale(index_t n) noexcept {
  return n < 2 ? 0.0 : 1.0 / (2.0 * std::sqrt(2.0 * std::log(double(n))));
}

namespace detail::norm_impl {

inline constexpr index_t col_rows = 128;  // most rows of a column block (batchnorm backward)

// Rows of a statistics block over x (N, C): 8 to 256 whole rows within ~256 KiB.
inline index_t col_block_rows(index_t cols, std::size_t elem) noexcept {
  const index_t r = index_t((std::size_t(256) << 10) / (std::size_t(std::max<index_t>(cols, 1)) * elem));
  return std::clamp<index_t>(r, 8, 256);
}

// ex[c] updated for every column of x with rows [r0, r1) (row index = sample index). The block's column
// max / min go row by row into fp32 rows (2 C floats at rows: a walk down a column strip would thrash the
// L1 at power-of-two lds), with lanes::max_second_on_nan(x, m) = x > m ? x : m (NaN ignored).
template <class T>
void col_extremes(mat<const T> x, index_t r0, index_t r1, float* rows, extremes* ex) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  const index_t w = x.cols;
  float* mx = rows;
  float* mn = rows + w;
  std::fill_n(mx, w, -inf), std::fill_n(mn, w, inf);
  for (index_t i = r0; i < r1; ++i) {
    const T* row = x.row(i);
    for_lanes(w, [&](index_t j, index_t m) {
      const V v = load(row + j, m);
      lanes::store(mx + j, lanes::max_second_on_nan(v, load(mx + j, m)), m);
      lanes::store(mn + j, lanes::min_second_on_nan(v, load(mn + j, m)), m);
    });
  }
  for (index_t k = 0; k < w; ++k) {
    extremes& e = ex[k];
    if (mx[k] > e.max) {
      index_t i = r0;
      while (to_float(x(i, k)) != mx[k]) ++i;
      e.max = mx[k], e.arg_max = i;
    }
    if (mn[k] < e.min) {
      index_t i = r0;
      while (to_float(x(i, k)) != mn[k]) ++i;
      e.min = mn[k], e.arg_min = i;
    }
  }
}

// acc[k][c] += Σ_{i in [r0, r1)} f(c, m, xs(i, c)...)[k] over every column of the views xs (all of the
// same shape; acc[k] fp32 rows of their cols values): f gets the vectors of lanes [c, c + m) (the others
// zero) and returns std::array<V, K>.
template <int K, class F, class... T>
void add_rows(index_t r0, index_t r1, std::array<float*, K> acc, F f, mat<const T>... xs) {
  const index_t C = std::get<0>(std::tuple{xs...}).cols;
  const auto term = [&](index_t i, index_t c, index_t m) __attribute__((always_inline)) { return f(c, m, load(xs.row(i) + c, m)...); };
  const auto add = [&](index_t c, index_t m, const std::array<V, K>& t) __attribute__((always_inline)) {
    _Pragma("GCC unroll 4") for (int k = 0; k < K; ++k) lanes::store(acc[k] + c, load(acc[k] + c, m) + t[k], m);
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
      if (!detail::stream_whole(o + c, y, m, stream)) lanes::store(o + c, y, m);
    });
  }
}

// Per-column moments of x (N, C) into mean[c], m2[c] (double), count N; extremes when ex is non-null.
// Per row block: fp32 column sums give the block's means mb; then Σ (x - mb) and Σ P(d, d); then the merge
// (moments::merge, written out over the columns). rows: 3 C floats, and 2 C more for col_extremes.
template <class Policy, class T>
void col_moments(mat<const T> x, double* mean, double* m2, extremes* ex, float* rows) {
  const index_t C = x.cols, RB = col_block_rows(C, sizeof(T));
  std::fill_n(mean, C, 0.0);
  std::fill_n(m2, C, 0.0);
  if (ex != nullptr) std::fill_n(ex, C, extremes{});
  float *mb = rows, *sd = rows + C, *sq = rows + 2 * C;
  double n = 0;
  for (index_t r0 = 0; r0 < x.rows; r0 += RB) {
    const index_t r1 = std::min(x.rows, r0 + RB);
    const double nb = double(r1 - r0), inv = 1.0 / nb, tot = n + nb, w = nb / tot, g = n * nb / tot;
    std::fill_n(rows, 3 * C, 0.0f);
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
    if (ex != nullptr) col_extremes(x, r0, r1, rows + 3 * C, ex);
    n = tot;
  }
}

// y = P(x - mu, s) + b [, relu]: the forward of batchnorm.
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

}  // namespace detail::norm_impl

template <class Policy = approx::exact, class TX = float, class TY = TX, class TDY = TY, class TDX = TX>
  requires approx::multiplier<Policy> && detail::norm_impl::activations<TX, TY, TDY, TDX>
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

  // The bytes of a caller's workspace that covers every call.
  std::size_t workspace_bytes() const noexcept {
    using detail::norm_impl::bytes;
    return std::max({bytes(stats_layout()), bytes(forward_layout()), bytes(backward_layout())});
  }

  // mean, var: (channels) — the batch statistics (biased variance, or the range estimate).
  void stats(mat<const TX> x, std::span<float> mean, std::span<float> var, workspace ws = {}) const {
    using namespace detail::norm_impl;
    check_view(x, rows_, cols_, label, "x");
    check_span(mean, std::size_t(channels()), label, "mean");
    check_span(var, std::size_t(channels()), label, "var");
    check_apart(label, named(mean, "mean"), named(x, "x"));
    check_apart(label, named(var, "var"), named(x, "x"), named(mean, "mean"));
    const index_t C = channels(), n = samples();
    const bool range = p_.estimator == variance_estimator::range;
    const double rs = range_scale(n);
    if (n == 0) {
      std::fill(mean.begin(), mean.end(), 0.0f), std::fill(var.begin(), var.end(), 0.0f);
      return;
    }
    if (by_cols()) {
      scratch s(ws, label);
      const scratch_regions reg = take(s, stats_layout());
      double* acc = reg.doubles;  // mean, M2
      extremes* ex = range ? reg.ex : nullptr;
      col_moments<Policy>(x, acc, acc + C, ex, reg.floats);
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
  void forward(mat<const TX> x, std::span<const float> mean, std::span<const float> var, std::span<const float> gamma,
               std::span<const float> beta, mat<TY> y, workspace ws = {}) const {
    using namespace detail::norm_impl;
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    const index_t C = channels();
    check_channel_spans(mean, var, gamma);
    check_span(beta, std::size_t(C), label, "beta");
    check_apart(label, named(y, "y"), named(mean, "mean"), named(var, "var"), named(gamma, "gamma"), named(beta, "beta"));
    scratch frame(ws, label);
    float* s = take(frame, forward_layout()).floats;  // gamma rstd
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
  void backward(mat<const TDY> dy, mat<const TX> x, std::span<const float> mean, std::span<const float> var,
                std::span<const float> gamma, std::span<const float> beta, mat<TDX> dx, std::span<float> dgamma,
                std::span<float> dbeta, workspace ws = {}) const {
    using namespace detail::norm_impl;
    detail::check_in_out(dy, dx, rows_, cols_, label, "dy", "dx");
    check_view(x, rows_, cols_, label, "x");
    detail::check_alias(dx, x, label, "dx", "x");
    const index_t C = channels(), n = samples();
    check_channel_spans(mean, var, gamma);
    if (p_.relu) check_span(beta, std::size_t(C), label, "beta");  // (read only with relu)
    check_span(dgamma, std::size_t(C), label, "dgamma");
    check_span(dbeta, std::size_t(C), label, "dbeta");
    const auto b_in = named(p_.relu ? beta : std::span<const float>{}, "beta");
    check_apart(label, named(dx, "dx"), named(mean, "mean"), named(var, "var"), named(gamma, "gamma"), b_in);
    check_apart(label, named(dgamma, "dgamma"), named(dy, "dy"), named(x, "x"), named(mean, "mean"), named(var, "var"),
                named(gamma, "gamma"), b_in, named(dx, "dx"));
    check_apart(label, named(dbeta, "dbeta"), named(dy, "dy"), named(x, "x"), named(mean, "mean"), named(var, "var"),
                named(gamma, "gamma"), b_in, named(dx, "dx"), named(dgamma, "dgamma"));
    const bool range = p_.estimator == variance_estimator::range;
    scratch frame(ws, label);
    const scratch_regions reg = take(frame, backward_layout());
    double* acc = reg.doubles;  // dbeta, dgamma sums
    extremes* ex = range ? reg.ex : nullptr;
    // Per channel: rstd, s = gamma rstd, and after pass 1: dbeta / n, dgamma / n; then pass 1's rows.
    float *rstd = reg.floats, *s = rstd + C, *dbn = s + C, *dgn = dbn + C, *rows = dgn + C;
    for (index_t c = 0; c < C; ++c) {
      rstd[c] = rstd_of(var[c], p_.eps);
      s[c] = gamma[c] * rstd[c];
    }
    const float* bt = p_.relu ? beta.data() : s;  // (not read without relu)
    if (p_.relu)
      sums<true>(dy, x, mean.data(), rstd, s, bt, acc, ex, rows);
    else
      sums<false>(dy, x, mean.data(), rstd, s, bt, acc, ex, rows);
    for (index_t c = 0; c < C; ++c) {
      dbn[c] = n > 0 ? float(acc[c] / double(n)) : 0.0f;
      dgn[c] = n > 0 ? float(acc[C + c] / double(n)) : 0.0f;
    }
    const auto run = [&]<bool Relu, bool Range>() {
      const auto grad = [](auto g, auto xv, auto mu, auto r, auto sv, auto bv, auto db, auto dg) {
        using L = decltype(g);
        if constexpr (Relu) g = lanes::select(normalize<Policy, false>{}(xv, mu, sv, bv) <= L(0.0f), L(0.0f), g);
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
        const double R = double(e.max) - double(e.min), rc = rstd[c];
        const float t = float(double(gamma[c]) * rs * rs * R * rc * rc * acc[C + c]);
        TDX* pmax = by_cols() ? &dx(e.arg_max, c) : &dx(c, e.arg_max);
        TDX* pmin = by_cols() ? &dx(e.arg_min, c) : &dx(c, e.arg_min);
        *pmax = from_float<TDX>(to_float(*pmax) - t);
        *pmin = from_float<TDX>(to_float(*pmin) + t);
      }
    }
    finish(acc, dbeta, p_.accumulate);
    finish(acc + C, dgamma, p_.accumulate);
  }

 private:
  index_t rows_, cols_;
  batchnorm_params p_;

  bool by_cols() const noexcept { return p_.axis == channel_axis::cols; }
  bool by_range() const noexcept { return p_.estimator == variance_estimator::range; }
  mat<const float> channel_view(const float* p) const noexcept {
    return by_cols() ? mat<const float>{p, 1, cols_, cols_} : mat<const float>{p, rows_, 1, 1};
  }

  // Scratch of each call (common.hpp's scratch_layout): channels as columns, stats: mean and M2 (2 C
  // doubles), extremes, the column passes' rows (3 C floats) and col_extremes' (2 C); forward: gamma rstd
  // (C floats); backward: dbeta and dgamma sums (2 C doubles), extremes, rstd, gamma rstd, dbeta / n,
  // dgamma / n (4 C floats), and as columns pass 1's sums (2 C floats) and col_extremes' rows (2 C).
  detail::norm_impl::scratch_layout stats_layout() const noexcept {
    const index_t C = channels();
    if (!by_cols()) return {};
    return {2 * C, by_range() ? C : 0, 3 * C + (by_range() ? 2 * C : 0)};
  }
  detail::norm_impl::scratch_layout forward_layout() const noexcept { return {0, 0, channels()}; }
  detail::norm_impl::scratch_layout backward_layout() const noexcept {
    const index_t C = channels();
    return {2 * C, by_range() ? C : 0, 4 * C + (by_cols() ? 2 * C + (by_range() ? 2 * C : 0) : 0)};
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

  // Pass 1 of the backward: acc[c] = Σ dy', acc[C + c] = Σ P(dy', xh); the extremes for range. rows: the
  // column passes' fp32 rows (channels as columns).
  template <bool Relu>
  void sums(mat<const TDY> dy, mat<const TX> x, const float* mean, const float* rstd, const float* s,
            const float* beta, double* acc, detail::norm_impl::extremes* ex, float* rows) const {
    using namespace detail::norm_impl;
    const index_t C = channels(), n = samples();
    const auto term = [&](V g, V xv, V mu, V r, V sv, V bv) {
      if constexpr (Relu) g = lanes::select(normalize<Policy, false>{}(xv, mu, sv, bv) <= V(0.0f), V(0.0f), g);
      return std::array<V, 2>{g, Policy::mul(g, Policy::mul(xv - mu, r))};
    };
    if (!by_cols()) {
      for (index_t c = 0; c < C; ++c) {
        const TDY* g = dy.row(c);
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
    float* f = rows;
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
      if (ex != nullptr) col_extremes(x, r0, r1, rows + 2 * C, ex);
    }
  }
};

// ---- one-off calls ----

template <class Policy = approx::exact, class TX>
void batchnorm_stats(mat<TX> x, std::span<float> mean, std::span<float> var, batchnorm_params p = {}) {
  batchnorm_kernel<Policy, std::remove_const_t<TX>>(x.rows, x.cols, p).stats(x, mean, var);
}
template <class Policy = approx::exact, class TX, class TY>
void batchnorm_forward(mat<TX> x, std::span<const float> mean, std::span<const float> var, std::span<const float> gamma,
                       std::span<const float> beta, mat<TY> y, batchnorm_params p = {}) {
  batchnorm_kernel<Policy, std::remove_const_t<TX>, TY>(x.rows, x.cols, p).forward(x, mean, var, gamma, beta, y);
}
template <class Policy = approx::exact, class TDY, class TX, class TDX>
void batchnorm_backward(mat<TDY> dy, mat<TX> x, std::span<const float> mean, std::span<const float> var,
                        std::span<const float> gamma, std::span<const float> beta, mat<TDX> dx, std::span<float> dgamma,
                        std::span<float> dbeta, batchnorm_params p = {}) {
  using tdy = std::remove_const_t<TDY>;
  batchnorm_kernel<Policy, std::remove_const_t<TX>, tdy, tdy, TDX>(x.rows, x.cols, p)
      .backward(dy, x, mean, var, gamma, beta, dx, dgamma, dbeta);
}

}  // namespace tpp
