#pragma once
// Groupnorm, layernorm and RMSNorm of 2D views, forward and backward; notation, statistics, types,
// aliasing and scratch as in ops/norm/common.hpp.
//
// Layouts. Groupnorm normalises, per row of x (M, C S) (a sample's C channels of S = H W values each,
// channel-major), each of G groups of C / G consecutive channels; gamma / beta per channel, mean / rstd per
// (row, group) at [row G + group]. Layernorm is groupnorm with G = 1, S = 1: each row of x (M, N) (tokens x
// features), gamma / beta per column, mean / rstd per row. RMSNorm normalises each row of x (M, N) by its
// root mean square, gamma per column, rstd per row.
//
// Forward (one product per element, through Policy):
//   groupnorm, layernorm: y = P(x - mean, gamma rstd) + beta     (gamma rstd: an exact fp32 product)
//   RMSNorm:              y = P(x, gamma rstd), rstd = 1 / sqrt(mean(P(x, x)) + eps)
// Backward (the forward's mean / rstd as inputs; g = P(dy, gamma); sums over the group's n values):
//   groupnorm, layernorm: dx = P(g - Σg / n - P(xh, Σ P(g, xh) / n), rstd),
//                         dgamma = Σ_rows P(dy, xh), dbeta = Σ_rows dy
//   RMSNorm:              xh = P(x, rstd), dx = P(g - P(xh, Σ P(g, xh) / n), rstd), dgamma = Σ_rows P(dy, xh)
// S = 1 runs along each group with per-element gamma (dgamma / dbeta as fp32 column sums over up to 64 rows,
// then double); S > 1 channel by channel, gamma a splat.
//
// API (Policy = approx::exact, constrained by approx::multiplier):
//   groupnorm_kernel<P, TX, TY, TDY, TDX> k(rows, channels, spatial, groupnorm_params{groups, eps, accumulate});
//     k.forward(x, gamma, beta, y, mean, rstd); k.backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, [ws])
//   layernorm_kernel<P, ...> k(rows, cols, norm_params{eps, accumulate}): the same calls, mean / rstd per row
//   rmsnorm_kernel<P, ...> k(rows, cols, norm_params): k.forward(x, gamma, y, rstd);
//     k.backward(dy, x, rstd, gamma, dx, dgamma, [ws])
//   k.workspace_bytes() (the backward's; the forwards take none)
//   layernorm_forward / layernorm_backward, groupnorm_forward / groupnorm_backward (channels = gamma's
//   size), rmsnorm_forward / rmsnorm_backward: one-off calls, the params last.

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/mat.hpp"
#include "../../core/workspace.hpp"
#include "../detail/elementwise.hpp"
#include "common.hpp"

namespace tpp {

struct norm_params {
  float eps = 1e-5f;
  bool accumulate = false;  // backward: dgamma += ..., dbeta += ...
};

struct groupnorm_params {
  index_t groups = 1;  // divides the channels
  float eps = 1e-5f;
  bool accumulate = false;  // backward: dgamma += ..., dbeta += ...
};

namespace detail::norm_impl {

// The per-row engine of groupnorm (Centered) and RMSNorm (not): each row of x (rows, C S) holds G groups of
// C / G channels of S values; group g of row i is the contiguous segment [g (C/G) S, (g + 1) (C/G) S).
// RMSNorm passes empty beta, mean and dbeta.
template <class Policy, bool Centered>
class segment_norm {
 public:
  segment_norm(std::string_view op, index_t rows, index_t channels, index_t spatial, groupnorm_params p)
      : op_(op), rows_(rows), C_(channels), S_(spatial), G_(p.groups), p_(p) {
    check_sizes(op, rows, channels, "rows", "channels");
    if (spatial < 0) throw error(op, "spatial", concat("is negative (", std::to_string(spatial), ")"));
    if (G_ <= 0) throw error(op, "groups", concat("must be positive (is ", std::to_string(G_), ")"));
    if (channels % G_ != 0)
      throw error(op, "groups", concat("(", std::to_string(G_), ") does not divide channels (", std::to_string(channels), ")"));
    index_t t = 0;
    require(checked_mul(channels, spatial, cols_), op, "channels * spatial", "overflows index_t");
    require(checked_mul(rows, G_, t), op, "rows * groups", "overflows index_t");
    check_eps(p.eps, op);
    approx::check_policy<Policy>();
  }

  // The backward's scratch: dgamma and dbeta sums (2 C doubles); with S = 1 their fp32 column sums (2 C).
  scratch_layout backward_layout() const noexcept { return {2 * C_, 0, S_ == 1 ? 2 * C_ : 0}; }

  template <class TX, class TY>
  void forward(mat<const TX> x, std::span<const float> gamma, std::span<const float> beta, mat<TY> y,
               std::span<float> mean, std::span<float> rstd) const {
    const std::size_t stats = std::size_t(rows_ * G_);
    check_span(gamma, std::size_t(C_), op_, "gamma");
    if constexpr (Centered) {
      check_span(beta, std::size_t(C_), op_, "beta");
      check_span(mean, stats, op_, "mean");
    }
    check_span(rstd, stats, op_, "rstd");
    check_in_out(x, y, rows_, cols_, op_, "x", "y");
    check_apart(op_, named(y, "y"), named(gamma, "gamma"), named(beta, "beta"));
    check_apart(op_, named(mean, "mean"), named(x, "x"), named(gamma, "gamma"), named(beta, "beta"), named(y, "y"));
    check_apart(op_, named(rstd, "rstd"), named(x, "x"), named(gamma, "gamma"), named(beta, "beta"), named(y, "y"),
                named(mean, "mean"));
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
        if constexpr (Centered) mean[std::size_t(i * G_ + g)] = mf;
        rstd[std::size_t(i * G_ + g)] = r;
        const index_t c0 = g * cpg;
        if (S_ == 1) {
          for_lanes(len, [&](index_t j, index_t m) {
            const V s = load(gamma.data() + c0 + j, m) * V(r);
            lanes::store(ys + j, apply(load(xs + j, m), V(mf), s, beta.data(), c0 + j, m), m);
          });
        } else {
          for (index_t c = 0; c < cpg; ++c) {
            const V s(gamma[std::size_t(c0 + c)] * r);
            const TX* xc = xs + c * S_;
            TY* yc = ys + c * S_;
            for_lanes(S_, [&](index_t j, index_t m) {
              lanes::store(yc + j, apply(load(xc + j, m), V(mf), s, beta.data(), c0 + c, 0), m);
            });
          }
        }
      }
  }

  template <class TG, class TX, class TD>
  void backward(mat<const TG> dy, mat<const TX> x, std::span<const float> mean_s, std::span<const float> rstd_s,
                std::span<const float> gamma_s, mat<TD> dx, std::span<float> dgamma, std::span<float> dbeta,
                workspace ws) const {
    const std::size_t stats = std::size_t(rows_ * G_);
    if constexpr (Centered) check_span(mean_s, stats, op_, "mean");
    check_span(rstd_s, stats, op_, "rstd");
    check_span(gamma_s, std::size_t(C_), op_, "gamma");
    check_span(dgamma, std::size_t(C_), op_, "dgamma");
    if constexpr (Centered) check_span(dbeta, std::size_t(C_), op_, "dbeta");
    check_in_out(dy, dx, rows_, cols_, op_, "dy", "dx");
    check_view(x, rows_, cols_, op_, "x");
    check_alias(dx, x, op_, "dx", "x");
    check_apart(op_, named(dx, "dx"), named(mean_s, "mean"), named(rstd_s, "rstd"), named(gamma_s, "gamma"));
    check_apart(op_, named(dgamma, "dgamma"), named(dy, "dy"), named(x, "x"), named(mean_s, "mean"),
                named(rstd_s, "rstd"), named(gamma_s, "gamma"), named(dx, "dx"));
    check_apart(op_, named(dbeta, "dbeta"), named(dy, "dy"), named(x, "x"), named(mean_s, "mean"),
                named(rstd_s, "rstd"), named(gamma_s, "gamma"), named(dx, "dx"), named(dgamma, "dgamma"));
    const float *mean = mean_s.data(), *rstd = rstd_s.data(), *gamma = gamma_s.data();
    const index_t cpg = C_ / G_, len = cpg * S_;
    scratch frame(ws, op_);
    const scratch_regions reg = take(frame, backward_layout());
    double* acc = reg.doubles;  // dgamma, dbeta
    std::fill_n(acc, 2 * C_, 0.0);
    // S = 1: per-column fp32 partial sums over up to flush_rows rows, then into acc.
    constexpr index_t flush_rows = 64;
    float* col = reg.floats;
    if (S_ == 1) std::fill_n(col, 2 * C_, 0.0f);
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
            lanes::store(ds + j, grad(gv, xh, a, b, r), m);
            lanes::store(cg + j, load(cg + j, m) + Policy::mul(d, xh), m);
            lanes::store(cb + j, load(cb + j, m) + d, m);
          });
        } else {
          for (index_t c = 0; c < cpg; ++c) {
            const V gm(gamma[c0 + c]);
            const TG* gc = gs + c * S_;
            const TX* xc = xs + c * S_;
            TD* dc = ds + c * S_;
            for_lanes(S_, [&](index_t j, index_t m) {
              lanes::store(dc + j, grad(Policy::mul(load(gc + j, m), gm), xhat(load(xc + j, m), mu, r), a, b, r), m);
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
  groupnorm_params p_;

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

// The channels and spatial size of x (rows, C S) for a one-off groupnorm call: C = gamma's size.
template <class T>
std::array<index_t, 2> groupnorm_split(const mat<T>& x, std::size_t gamma_size, std::string_view op) {
  check_mat(x, op, "x");
  const index_t C = index_t(gamma_size);
  if (C == 0 ? x.cols != 0 : x.cols % C != 0) [[unlikely]]
    throw error(op, "gamma",
                concat("size (", std::to_string(C), ") does not divide x's cols (", std::to_string(x.cols), ")"));
  return {C, C == 0 ? 0 : x.cols / C};
}

}  // namespace detail::norm_impl

// Groupnorm of x (rows, channels spatial): mean, rstd (rows groups) at [row groups + group].
template <class Policy = approx::exact, class TX = float, class TY = TX, class TDY = TY, class TDX = TX>
  requires approx::multiplier<Policy> && detail::norm_impl::activations<TX, TY, TDY, TDX>
class groupnorm_kernel {
 public:
  groupnorm_kernel(index_t rows, index_t channels, index_t spatial, groupnorm_params p = {})
      : e_("groupnorm", rows, channels, spatial, p) {}

  std::size_t workspace_bytes() const noexcept { return detail::norm_impl::bytes(e_.backward_layout()); }

  void forward(mat<const TX> x, std::span<const float> gamma, std::span<const float> beta, mat<TY> y,
               std::span<float> mean, std::span<float> rstd) const {
    e_.forward(x, gamma, beta, y, mean, rstd);
  }
  void backward(mat<const TDY> dy, mat<const TX> x, std::span<const float> mean, std::span<const float> rstd,
                std::span<const float> gamma, mat<TDX> dx, std::span<float> dgamma, std::span<float> dbeta,
                workspace ws = {}) const {
    e_.backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, ws);
  }

 protected:
  groupnorm_kernel(std::string_view op, index_t rows, index_t cols, norm_params p)
      : e_(op, rows, cols, 1, {1, p.eps, p.accumulate}) {}

 private:
  detail::norm_impl::segment_norm<Policy, true> e_;
};

// Layernorm of each row of x (rows, cols): gamma, beta (cols); mean, rstd (rows).
template <class Policy = approx::exact, class TX = float, class TY = TX, class TDY = TY, class TDX = TX>
  requires approx::multiplier<Policy> && detail::norm_impl::activations<TX, TY, TDY, TDX>
class layernorm_kernel : public groupnorm_kernel<Policy, TX, TY, TDY, TDX> {
 public:
  layernorm_kernel(index_t rows, index_t cols, norm_params p = {})
      : groupnorm_kernel<Policy, TX, TY, TDY, TDX>("layernorm", rows, cols, p) {}
};

// RMSNorm of each row of x (rows, cols): gamma (cols); rstd (rows).
template <class Policy = approx::exact, class TX = float, class TY = TX, class TDY = TY, class TDX = TX>
  requires approx::multiplier<Policy> && detail::norm_impl::activations<TX, TY, TDY, TDX>
class rmsnorm_kernel {
 public:
  rmsnorm_kernel(index_t rows, index_t cols, norm_params p = {}) : e_("rmsnorm", rows, cols, 1, {1, p.eps, p.accumulate}) {}

  std::size_t workspace_bytes() const noexcept { return detail::norm_impl::bytes(e_.backward_layout()); }

  void forward(mat<const TX> x, std::span<const float> gamma, mat<TY> y, std::span<float> rstd) const {
    e_.forward(x, gamma, {}, y, {}, rstd);
  }
  void backward(mat<const TDY> dy, mat<const TX> x, std::span<const float> rstd, std::span<const float> gamma,
                mat<TDX> dx, std::span<float> dgamma, workspace ws = {}) const {
    e_.backward(dy, x, {}, rstd, gamma, dx, dgamma, {}, ws);
  }

 private:
  detail::norm_impl::segment_norm<Policy, false> e_;
};

// ---- one-off calls ----

template <class Policy = approx::exact, class TX, class TY>
void layernorm_forward(mat<TX> x, std::span<const float> gamma, std::span<const float> beta, mat<TY> y,
                       std::span<float> mean, std::span<float> rstd, norm_params p = {}) {
  layernorm_kernel<Policy, std::remove_const_t<TX>, TY>(x.rows, x.cols, p).forward(x, gamma, beta, y, mean, rstd);
}
template <class Policy = approx::exact, class TDY, class TX, class TDX>
void layernorm_backward(mat<TDY> dy, mat<TX> x, std::span<const float> mean, std::span<const float> rstd,
                        std::span<const float> gamma, mat<TDX> dx, std::span<float> dgamma, std::span<float> dbeta,
                        norm_params p = {}) {
  using tdy = std::remove_const_t<TDY>;
  layernorm_kernel<Policy, std::remove_const_t<TX>, tdy, tdy, TDX>(x.rows, x.cols, p)
      .backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta);
}
template <class Policy = approx::exact, class TX, class TY>
void groupnorm_forward(mat<TX> x, std::span<const float> gamma, std::span<const float> beta, mat<TY> y,
                       std::span<float> mean, std::span<float> rstd, groupnorm_params p = {}) {
  const auto [C, S] = detail::norm_impl::groupnorm_split(x, gamma.size(), "groupnorm");
  groupnorm_kernel<Policy, std::remove_const_t<TX>, TY>(x.rows, C, S, p).forward(x, gamma, beta, y, mean, rstd);
}
template <class Policy = approx::exact, class TDY, class TX, class TDX>
void groupnorm_backward(mat<TDY> dy, mat<TX> x, std::span<const float> mean, std::span<const float> rstd,
                        std::span<const float> gamma, mat<TDX> dx, std::span<float> dgamma, std::span<float> dbeta,
                        groupnorm_params p = {}) {
  using tdy = std::remove_const_t<TDY>;
  const auto [C, S] = detail::norm_impl::groupnorm_split(x, gamma.size(), "groupnorm");
  groupnorm_kernel<Policy, std::remove_const_t<TX>, tdy, tdy, TDX>(x.rows, C, S, p)
      .backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta);
}
template <class Policy = approx::exact, class TX, class TY>
void rmsnorm_forward(mat<TX> x, std::span<const float> gamma, mat<TY> y, std::span<float> rstd, norm_params p = {}) {
  rmsnorm_kernel<Policy, std::remove_const_t<TX>, TY>(x.rows, x.cols, p).forward(x, gamma, y, rstd);
}
template <class Policy = approx::exact, class TDY, class TX, class TDX>
void rmsnorm_backward(mat<TDY> dy, mat<TX> x, std::span<const float> rstd, std::span<const float> gamma, mat<TDX> dx,
                      std::span<float> dgamma, norm_params p = {}) {
  using tdy = std::remove_const_t<TDY>;
  rmsnorm_kernel<Policy, std::remove_const_t<TX>, tdy, tdy, TDX>(x.rows, x.cols, p).backward(dy, x, rstd, gamma, dx, dgamma);
}

}  // namespace tpp
