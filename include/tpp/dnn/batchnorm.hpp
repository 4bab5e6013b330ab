#pragma once
// dnn::batchnorm: batch normalisation of NHWC activations, training and inference forward and the
// backward pass, with an optional fused ReLU, every product through the policy (DESIGN.md 3b and 7).
//
// Layouts: x, y, dy, dx (rows, c) views, rows = N*H*W (one row per pixel), channel j is column j;
// gamma, beta, mean, var, running_mean, running_var, dgamma, dbeta: spans of c floats the caller owns
// (the layer holds no tensors).
//
// Passes (ops/norm/batchnorm.hpp's batchnorm_kernel with channels as columns; its notation and error
// analysis; P(a, b) = Policy::mul(a, b)):
//   forward_training   mean, var = the batch's mean and biased variance per channel (saved for backward),
//                      y = P(x - mean, gamma rstd) + beta [then max(y, +0) with relu],
//                      rstd = 1 / sqrt(var + eps); then the running statistics, PyTorch's rule:
//                        running_mean = (1 - momentum) running_mean + momentum mean
//                        running_var  = (1 - momentum) running_var  + momentum var rows / (rows - 1)
//                      (the unbiased variance; computed in double from the fp32 values, rounded once:
//                      per-channel constants are exact, as the op's gamma rstd is)
//   forward_inference  y as above with running_mean, running_var in place of the batch statistics
//   backward           from dy and the training forward's x, mean, var, gamma (and beta with relu: the
//                      ReLU mask is where the recomputed forward value, bit-equal to y, is > 0):
//                      dbeta = Σ dy', dgamma = Σ P(dy', xh), dx = P(dy' - dbeta / n - P(xh, dgamma / n),
//                      gamma rstd), xh = P(x - mean, rstd), dy' = dy masked by the ReLU
// OpenMP inside: the channels go in blocks of 64 bytes' worth (whole cache lines of a row) to the
// threads, each running the op on its column slice; every channel's arithmetic is the op's whatever the
// split, so the results are bit-identical for any thread count while c * sizeof(T) <= 1 KiB (beyond,
// the op's statistics block height depends on the slice's width: deterministic for a thread count).
// Called from inside a parallel region, it runs on the calling thread. Training needs rows >= 2.
// Arguments: every view and span is checked against the shape, and every output shares no element with
// any other argument (no pass runs in place): a bad one throws tpp::error naming it.
// Special values: IEEE propagation per channel; a NaN or Inf in a channel makes its outputs, its saved
// statistics and its running statistics NaN (or Inf); other channels are unaffected.
//
// API (Policy = approx::exact, T = float or bf16):
//   batchnorm<P, T> bn(batchnorm_shape{.rows, .c, .eps, .momentum, .relu});
//   bn.forward_training(x, gamma, beta, y, mean, var, running_mean, running_var, [ws]);
//   bn.forward_inference(x, running_mean, running_var, gamma, beta, y, [ws]);
//   bn.backward(dy, x, mean, var, gamma, beta, dx, dgamma, dbeta, [ws]);   (dgamma, dbeta overwritten)
//   bn.workspace_bytes()  (a caller's workspace covering every call, at this call's thread count)

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/workspace.hpp"
#include "../ops/norm/batchnorm.hpp"

namespace tpp::dnn {

struct batchnorm_shape {
  index_t rows = 0, c = 0;  // N*H*W, channels
  float eps = 1e-5f, momentum = 0.1f;
  bool relu = false;  // y = max(y, +0) fused; backward masks dy where y <= 0
};

namespace detail {

using tpp::detail::concat;

// A norm layer's shape (batchnorm_shape, layernorm_shape): rows and c positive with rows * c within
// index_t, eps > 0 finite, momentum (where the shape has one) in [0, 1].
template <class Shape>
void check_norm_shape(std::string_view op, const Shape& s) {
  if (s.rows < 1) throw error(op, "rows", concat("(", std::to_string(s.rows), ") must be at least 1"));
  if (s.c < 1) throw error(op, "c", concat("(", std::to_string(s.c), ") must be at least 1"));
  index_t t = 0;
  if (!tpp::detail::checked_mul(s.rows, s.c, t)) throw error(op, "rows", "rows * c overflows index_t");
  if (!(std::isfinite(s.eps) && s.eps > 0.0f)) throw error(op, "eps", concat("(", std::to_string(s.eps), ") must be finite and > 0"));
  if constexpr (requires { s.momentum; })
    if (!(s.momentum >= 0.0f && s.momentum <= 1.0f))
      throw error(op, "momentum", concat("(", std::to_string(s.momentum), ") must be in [0, 1]"));
}

// An argument of a norm layer's call and its name: a view, which must be (rows, c), or a span of float,
// which must hold size values (held as a one-row view). Outputs are the mutable ones (mat<T>, span<float>).
template <class E>
struct norm_arg {
  mat<E> v;
  std::string_view name;
  bool span = false;
  std::size_t size = 0;
};
template <class E>
norm_arg<E> arg(mat<E> m, std::string_view name) noexcept {
  return {m, name};
}
template <class E>
norm_arg<E> arg(std::span<E> s, std::string_view name, index_t size) noexcept {
  const index_t n = index_t(s.size());
  return {{s.data(), n > 0 ? 1 : 0, n, n}, name, true, std::size_t(size)};
}

// a and b share no element when either is an output (the error names the other one, b when both are).
template <class A, class B>
void check_pair_apart(std::string_view op, const norm_arg<A>& a, const norm_arg<B>& b) {
  using tpp::detail::norm_impl::check_apart, tpp::detail::norm_impl::named;
  if constexpr (!std::is_const_v<A>)
    check_apart(op, named(a.v, a.name), named(b.v, b.name));
  else if constexpr (!std::is_const_v<B>)
    check_apart(op, named(b.v, b.name), named(a.v, a.name));
}
template <class A, class... B>
void check_outputs_apart(std::string_view op, const norm_arg<A>& a, const norm_arg<B>&... b) {
  (check_pair_apart(op, a, b), ...);
  if constexpr (sizeof...(B) > 0) check_outputs_apart(op, b...);
}

// A norm layer call's arguments in one statement: each view against (rows, c) and each span against its
// size, then every output apart from every other argument; the first bad one throws tpp::error naming it.
template <class... E>
void check_norm_args(std::string_view op, index_t rows, index_t c, const norm_arg<E>&... args) {
  const auto one = [&]<class U>(const norm_arg<U>& a) {
    if (a.span)
      tpp::detail::norm_impl::check_span(std::span<U>(a.v.data, std::size_t(a.v.cols)), a.size, op, a.name);
    else
      tpp::detail::check_view(a.v, rows, c, op, a.name, "(rows, c)");
  };
  (one(args), ...);
  check_outputs_apart(op, args...);
}

// Items [0, n) in parts: at most max_threads() (one inside a parallel region), each at least min_items.
inline index_t norm_parts(index_t n, index_t min_items) {
  if (in_parallel()) return 1;
  return std::clamp<index_t>(n / std::max<index_t>(min_items, 1), 1, std::max<index_t>(1, max_threads()));
}

// Each part's workspace in one frame taken on the calling thread (before the parallel region).
struct part_workspaces {
  scratch frame;
  std::byte* base = nullptr;
  std::size_t each = 0;
  part_workspaces(workspace ws, std::string_view op, index_t parts, std::size_t bytes)
      : frame(ws, op), each(rounded(bytes)) {
    if (each > 0) base = frame.take<std::byte>(each * std::size_t(parts));
  }
  static std::size_t rounded(std::size_t bytes) noexcept { return tpp::detail::round_up(bytes, tpp::detail::scratch_align); }
  workspace of(index_t part) const noexcept { return each > 0 ? workspace{base + each * std::size_t(part), each} : workspace{}; }
};

}  // namespace detail

template <class Policy = approx::exact, class T = float>
  requires approx::multiplier<Policy> && (std::same_as<T, float> || std::same_as<T, bf16>)
class batchnorm {
 public:
  static constexpr std::string_view label = "batchnorm";

  explicit batchnorm(batchnorm_shape shape) : s_(shape) {
    detail::check_norm_shape(label, s_);
    approx::check_policy<Policy>();
  }

  const batchnorm_shape& shape() const noexcept { return s_; }

  // The bytes of a caller's workspace that covers every call (at the thread count of this call).
  std::size_t workspace_bytes() const {
    const plan p = make_plan();
    return scratch_size{}.take<std::byte>(std::size_t(p.parts) * detail::part_workspaces::rounded(part_bytes(p))).bytes();
  }

  // y from the batch statistics; mean, var (the biased variance) saved for backward; running statistics
  // updated with momentum.
  void forward_training(mat<const T> x, std::span<const float> gamma, std::span<const float> beta, mat<T> y,
                        std::span<float> mean, std::span<float> var, std::span<float> running_mean,
                        std::span<float> running_var, workspace ws = {}) const {
    using detail::arg;
    constexpr std::string_view op = "batchnorm::forward_training";
    if (s_.rows < 2)
      throw error(op, "rows", "(1) must be at least 2 in training: the unbiased running variance needs two samples");
    const index_t c = s_.c;
    detail::check_norm_args(op, s_.rows, c, arg(x, "x"), arg(gamma, "gamma", c), arg(beta, "beta", c), arg(y, "y"),
                            arg(mean, "mean", c), arg(var, "var", c), arg(running_mean, "running_mean", c),
                            arg(running_var, "running_var", c));
    const double m = double(s_.momentum), keep = 1.0 - m, unbias = double(s_.rows) / double(s_.rows - 1);
    run(ws, op, [&](const kernel& k, index_t c0, index_t cn, workspace w) {
      const auto sub = [&](auto sp) { return sp.subspan(std::size_t(c0), std::size_t(cn)); };
      k.stats(slice(x, c0, cn), sub(mean), sub(var), w);
      k.forward(slice(x, c0, cn), sub(std::span<const float>(mean)), sub(std::span<const float>(var)), sub(gamma),
                sub(beta), slice(y, c0, cn), w);
      for (index_t c = c0; c < c0 + cn; ++c) {
        const std::size_t j = std::size_t(c);
        running_mean[j] = float(keep * double(running_mean[j]) + m * double(mean[j]));
        running_var[j] = float(keep * double(running_var[j]) + m * (double(var[j]) * unbias));
      }
    });
  }

  // y from the running statistics.
  void forward_inference(mat<const T> x, std::span<const float> running_mean, std::span<const float> running_var,
                         std::span<const float> gamma, std::span<const float> beta, mat<T> y, workspace ws = {}) const {
    using detail::arg;
    constexpr std::string_view op = "batchnorm::forward_inference";
    const index_t c = s_.c;
    detail::check_norm_args(op, s_.rows, c, arg(x, "x"), arg(running_mean, "running_mean", c),
                            arg(running_var, "running_var", c), arg(gamma, "gamma", c), arg(beta, "beta", c), arg(y, "y"));
    run(ws, op, [&](const kernel& k, index_t c0, index_t cn, workspace w) {
      const auto sub = [&](auto sp) { return sp.subspan(std::size_t(c0), std::size_t(cn)); };
      k.forward(slice(x, c0, cn), sub(running_mean), sub(running_var), sub(gamma), sub(beta), slice(y, c0, cn), w);
    });
  }

  // dx, dgamma, dbeta (overwritten) from dy and the training forward's x, mean, var, gamma, beta (beta is
  // read only with relu).
  void backward(mat<const T> dy, mat<const T> x, std::span<const float> mean, std::span<const float> var,
                std::span<const float> gamma, std::span<const float> beta, mat<T> dx, std::span<float> dgamma,
                std::span<float> dbeta, workspace ws = {}) const {
    using detail::arg;
    constexpr std::string_view op = "batchnorm::backward";
    const index_t c = s_.c;
    detail::check_norm_args(op, s_.rows, c, arg(dy, "dy"), arg(x, "x"), arg(mean, "mean", c), arg(var, "var", c),
                            arg(gamma, "gamma", c), arg(beta, "beta", c), arg(dx, "dx"), arg(dgamma, "dgamma", c),
                            arg(dbeta, "dbeta", c));
    run(ws, op, [&](const kernel& k, index_t c0, index_t cn, workspace w) {
      const auto sub = [&](auto sp) { return sp.subspan(std::size_t(c0), std::size_t(cn)); };
      k.backward(slice(dy, c0, cn), slice(x, c0, cn), sub(mean), sub(var), sub(gamma), sub(beta), slice(dx, c0, cn),
                 sub(dgamma), sub(dbeta), w);
    });
  }

 private:
  using kernel = batchnorm_kernel<Policy, T>;
  // Channels per block: a cache line of a row, so no two threads write one line of y or dx.
  static constexpr index_t block = index_t(64 / sizeof(T));
  static constexpr index_t min_elements = index_t(1) << 14;  // per part: below, threads cost more than they save

  struct plan {
    index_t blocks, parts;
  };
  plan make_plan() const {
    const index_t blocks = (s_.c + block - 1) / block;
    const index_t parts = std::min(blocks, detail::norm_parts(s_.rows * s_.c, min_elements));
    return {blocks, parts};
  }
  // Part p's channels [c0, c0 + cn): its share of the blocks.
  std::pair<index_t, index_t> channels_of(const plan& p, index_t part) const noexcept {
    const range r = split(p.blocks, p.parts, part);
    const index_t c0 = r.begin * block;
    return {c0, std::min(s_.c, r.end * block) - c0};
  }
  std::size_t part_bytes(const plan& p) const {
    return kernel(s_.rows, channels_of(p, 0).second, params()).workspace_bytes();  // part 0 is the widest
  }
  batchnorm_params params() const noexcept { return {s_.eps, channel_axis::cols, variance_estimator::moments, s_.relu, false}; }

  // f(kernel, c0, cn, workspace) on every part, in parallel.
  template <class F>
  void run(workspace ws, std::string_view op, F&& f) const {
    const plan p = make_plan();
    const detail::part_workspaces parts(ws, op, p.parts, part_bytes(p));
    parallel_for(p.parts, [&](index_t b, index_t e) {
      for (index_t part = b; part < e; ++part) {
        const auto [c0, cn] = channels_of(p, part);
        f(kernel(s_.rows, cn, params()), c0, cn, parts.of(part));
      }
    });
  }

  template <class U>
  static mat<U> slice(mat<U> m, index_t c0, index_t cn) noexcept {
    return {m.data + c0, m.rows, cn, m.ld};
  }

  batchnorm_shape s_;
};

}  // namespace tpp::dnn
