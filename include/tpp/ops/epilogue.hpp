#pragma once
// GEMM epilogues: what a gemm / gemm_kernel / brgemm_kernel does to C after the last product is summed,
// while each finished tile is still in L1, so "linear + bias + activation" is one call and fused operators
// are compositions, not new kernels.
//
// Contract: an epilogue e is called as e(i, j, row, n) once for every stretch of a row of C, in fp32:
// row[0, n) holds C(i, j + q) = alpha * sum + beta * C_old, and e rewrites it in place. The calls cover
// every element of C exactly once; their order and stretch lengths are unspecified (one per micro-tile
// row). With a bf16 C the epilogue sees the fp32 value before the one rounding. Any callable with that
// signature is an epilogue; these are provided:
//
//   none                      leaves C as it is (the default; costs nothing)
//   bias_per_col{bias}        C(i, j) += bias[j]     bias: n floats (a linear layer's per-output bias)
//   bias_per_row{bias}        C(i, j) += bias[i]     bias: m floats (a convolution's per-channel bias, K x N)
//   activation<K, Policy>     C = f_K(C), any unary_kind (relu, gelu_tanh, gelu_erf, ...), its products
//                             through Policy as in unary_kernel (ops/unary.hpp)
//   chain{e1, e2, ...}        e1, then e2, ... on the same stretch
//
// Column-wise epilogues: where C(i, j)'s result depends on j and its value only (none, bias_per_col,
// activation, and chains of them), the epilogue also offers v' = e.column(j, v) on a vector v of column
// j's values from any rows (`columnwise<E>`). A loop nest whose vectors run down a column (dnn::conv2d's
// pixels nest, K of them per output pixel) applies it there, before its transpose, instead of calling
// e(i, j, row, n) once per short row.
//
// Example: Y (batch, out) = relu(X W + b):
//   gemm(X, W, Y, {}, epilogue::chain{epilogue::bias_per_col{b}, epilogue::activation<unary_kind::relu>{}});

#include <algorithm>
#include <concepts>
#include <tuple>

#include "../core/lanes.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"
#include "unary.hpp"

namespace tpp::epilogue {

// What GEMM entry points accept as an epilogue.
template <class E>
concept callable = std::invocable<const E&, index_t, index_t, float*, index_t>;

struct none {
  void operator()(index_t, index_t, float*, index_t) const noexcept {}
  template <class V>
  V column(index_t, V x) const noexcept {
    return x;
  }
};

// Whether E offers column(j, v) (see above) on the SIMD lane type.
template <class E>
concept columnwise = requires(const E& e, simd::lane v, index_t j) {
  { e.column(j, v) } -> std::same_as<simd::lane>;
};

namespace detail {

// row[q] = f(row[q], q) for q < n, on lanes, the tail through a masked load and store.
template <class F>
void rewrite(float* row, index_t n, F f) noexcept {
  using V = simd::lane;
  constexpr index_t W = tpp::lanes::width<V>;
  index_t q = 0;
  for (; q + W <= n; q += W) tpp::lanes::store(row + q, f(tpp::lanes::load<V>(row + q), q));
  if (q < n) tpp::lanes::store(row + q, f(tpp::lanes::load<V>(row + q, n - q), q), n - q);
}

// The bias values for lanes starting at q: a full vector, or the first n - q (the tail).
template <class V>
V bias_lanes(const float* b, index_t q, index_t n) noexcept {
  return tpp::lanes::load<V>(b + q, std::min(tpp::lanes::width<V>, n - q));
}

}  // namespace detail

// C(i, j) += bias[j]; bias holds C's n columns (indices are the whole C's, also under a threaded split).
struct bias_per_col {
  const float* bias;
  void operator()(index_t, index_t j, float* row, index_t n) const noexcept {
    const float* b = bias + j;
    detail::rewrite(row, n, [&]<class V>(V x, index_t q) { return x + detail::bias_lanes<V>(b, q, n); });
  }
  template <class V>
  V column(index_t j, V x) const noexcept {
    return x + V(bias[j]);
  }
};

// C(i, j) += bias[i]; bias holds C's m rows.
struct bias_per_row {
  const float* bias;
  void operator()(index_t i, index_t, float* row, index_t n) const noexcept {
    const float b = bias[i];
    detail::rewrite(row, n, [&]<class V>(V x, index_t) { return x + V(b); });
  }
};

// C = f_K(C) with unary_kernel's definition of f_K (Policy for its products, params for leaky_relu / elu).
template <unary_kind K, class Policy = approx::exact>
  requires approx::multiplier<Policy>
struct activation {
  unary_params params{};
  void operator()(index_t, index_t, float* row, index_t n) const noexcept {
    const tpp::detail::unary_forward<K, Policy> f{tpp::detail::unary_alpha<K>(params)};
    detail::rewrite(row, n, [&]<class V>(V x, index_t) { return f(x); });
  }
  template <class V>
  V column(index_t, V x) const noexcept {
    return tpp::detail::unary_forward<K, Policy>{tpp::detail::unary_alpha<K>(params)}(x);
  }
};

// Several epilogues applied in order to each stretch.
template <class... E>
struct chain {
  std::tuple<E...> parts;
  chain(E... e) : parts(e...) {}
  void operator()(index_t i, index_t j, float* row, index_t n) const {
    std::apply([&](const E&... e) { (e(i, j, row, n), ...); }, parts);
  }
  template <class V>
    requires(columnwise<E> && ...)
  V column(index_t j, V x) const noexcept {
    std::apply([&](const E&... e) { ((x = e.column(j, x)), ...); }, parts);
    return x;
  }
};

}  // namespace tpp::epilogue
