#pragma once
// dnn::layernorm: layer normalisation of each row (a pixel's c channels of an NHWC tensor, or a token's
// features in a transformer), forward and backward, every product through the policy (DESIGN.md 3b, 7).
//
// Layouts: x, y, dy, dx (rows, c) views; gamma, beta, dgamma, dbeta: spans of c floats; mean, rstd:
// spans of rows floats (the forward saves them for backward). The layer holds no tensors.
//
// Passes (ops/norm/groupnorm.hpp's layernorm_kernel; its notation and error analysis; P(a, b) =
// Policy::mul(a, b)):
//   forward   mean, rstd = 1 / sqrt(var + eps) of each row (biased variance),
//             y = P(x - mean, gamma rstd) + beta
//   backward  g = P(dy, gamma), xh = P(x - mean, rstd), n = c:
//             dx = P(g - Σg / n - P(xh, Σ P(g, xh) / n), rstd) per row,
//             dgamma = Σ_rows P(dy, xh), dbeta = Σ_rows dy (overwritten)
// OpenMP inside: the rows go in contiguous shares to the threads, each running the op on its rows;
// y, mean, rstd and dx are the op's bits whatever the split. dgamma and dbeta are each share's fp32
// sums added in double in share order, rounded once: deterministic for a thread count, one share (a
// single thread, or a call from inside a parallel region, which runs on the calling thread) gives the
// op's bits.
// Arguments: every view and span is checked against the shape, and every output shares no element with
// any other argument (no pass runs in place): a bad one throws tpp::error naming it.
// Special values: IEEE propagation per row; a NaN or Inf in a row makes its outputs and statistics NaN
// (or Inf), and the dgamma / dbeta it contributes to.
//
// API (Policy = approx::exact, T = float or bf16):
//   layernorm<P, T> ln(layernorm_shape{.rows, .c, .eps});
//   ln.forward(x, gamma, beta, y, mean, rstd);
//   ln.backward(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, [ws]);  ln.workspace_bytes()

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/workspace.hpp"
#include "../ops/norm/groupnorm.hpp"
#include "batchnorm.hpp"  // detail::check_norm_shape, check_norm_args, norm_parts, part_workspaces

namespace tpp::dnn {

struct layernorm_shape {
  index_t rows = 0, c = 0;  // rows normalised, and their length
  float eps = 1e-5f;
};

template <class Policy = approx::exact, class T = float>
  requires approx::multiplier<Policy> && (std::same_as<T, float> || std::same_as<T, bf16>)
class layernorm {
 public:
  static constexpr std::string_view label = "layernorm";

  explicit layernorm(layernorm_shape shape) : s_(shape) {
    detail::check_norm_shape(label, s_);
    approx::check_policy<Policy>();
  }

  const layernorm_shape& shape() const noexcept { return s_; }

  // The bytes of a caller's workspace that covers backward (at the thread count of this call).
  std::size_t workspace_bytes() const {
    return scratch_size{}.take<std::byte>(std::size_t(parts()) * detail::part_workspaces::rounded(part_bytes())).bytes();
  }

  // y, and each row's mean and rstd for backward.
  void forward(mat<const T> x, std::span<const float> gamma, std::span<const float> beta, mat<T> y,
               std::span<float> mean, std::span<float> rstd) const {
    using detail::arg;
    constexpr std::string_view op = "layernorm::forward";
    const index_t c = s_.c;
    detail::check_norm_args(op, s_.rows, c, arg(x, "x"), arg(gamma, "gamma", c), arg(beta, "beta", c), arg(y, "y"),
                            arg(mean, "mean", s_.rows), arg(rstd, "rstd", s_.rows));
    const index_t n = parts();
    parallel_for(n, [&](index_t b, index_t e) {
      for (index_t part = b; part < e; ++part) {
        const range r = split(s_.rows, n, part);
        const auto sub = [&](auto sp) { return sp.subspan(std::size_t(r.begin), std::size_t(r.end - r.begin)); };
        kernel(r.end - r.begin, s_.c, {s_.eps, false}).forward(rows(x, r), gamma, beta, rows(y, r), sub(mean), sub(rstd));
      }
    });
  }

  // dx, dgamma, dbeta (overwritten) from dy and the forward's x, mean, rstd, gamma.
  void backward(mat<const T> dy, mat<const T> x, std::span<const float> mean, std::span<const float> rstd,
                std::span<const float> gamma, mat<T> dx, std::span<float> dgamma, std::span<float> dbeta,
                workspace ws = {}) const {
    using detail::arg;
    constexpr std::string_view op = "layernorm::backward";
    const index_t c = s_.c;
    detail::check_norm_args(op, s_.rows, c, arg(dy, "dy"), arg(x, "x"), arg(mean, "mean", s_.rows),
                            arg(rstd, "rstd", s_.rows), arg(gamma, "gamma", c), arg(dx, "dx"), arg(dgamma, "dgamma", c),
                            arg(dbeta, "dbeta", c));
    const index_t n = parts();
    // Per share: the op's scratch, then its dgamma and dbeta (2 c floats).
    const detail::part_workspaces mem(ws, op, n, part_bytes());
    const std::size_t C = std::size_t(s_.c);
    const auto sums = [&](index_t part) { return reinterpret_cast<float*>(mem.base + mem.each * std::size_t(part + 1)) - 2 * C; };
    const std::size_t op_bytes = kernel(1, s_.c).workspace_bytes();
    parallel_for(n, [&](index_t b, index_t e) {
      for (index_t part = b; part < e; ++part) {
        const range r = split(s_.rows, n, part);
        const auto sub = [&](auto sp) { return sp.subspan(std::size_t(r.begin), std::size_t(r.end - r.begin)); };
        float* dg = sums(part);
        kernel(r.end - r.begin, s_.c, {s_.eps, false})
            .backward(rows(dy, r), rows(x, r), sub(mean), sub(rstd), gamma, rows(dx, r), {dg, C}, {dg + C, C},
                      workspace{mem.of(part).data, op_bytes});
      }
    });
    for (std::size_t c = 0; c < C; ++c) {
      double g = 0, bsum = 0;
      for (index_t part = 0; part < n; ++part) g += double(sums(part)[c]), bsum += double(sums(part)[C + c]);
      dgamma[c] = float(g), dbeta[c] = float(bsum);
    }
  }

 private:
  using kernel = layernorm_kernel<Policy, T>;
  static constexpr index_t min_elements = index_t(1) << 14;  // per share: below, threads cost more than they save

  index_t parts() const { return std::min(s_.rows, detail::norm_parts(s_.rows * s_.c, min_elements)); }
  // A share's bytes: the op's backward scratch (independent of the rows), then 2 c floats at the end.
  std::size_t part_bytes() const {
    return detail::part_workspaces::rounded(kernel(1, s_.c).workspace_bytes()) + 2 * std::size_t(s_.c) * sizeof(float);
  }

  template <class U>
  static mat<U> rows(mat<U> m, range r) noexcept {
    return {m.data + r.begin * m.ld, r.end - r.begin, m.cols, m.ld};
  }

  layernorm_shape s_;
};

}  // namespace tpp::dnn
