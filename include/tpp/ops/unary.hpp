#pragma once
// Unary element-wise ops, forward and backward, and dropout: out(i, j) = f(in(i, j)) over an (M, N) view.
//
// Variants (unary_kind; y = f(x), P(a, b) = Policy::mul(a, b), the first operand the data value):
//   copy        x                          zero        +0 (in is validated, never read)
//   negate      -x                         square      P(x, x)
//   sqrt        sqrt(x)                    rsqrt       1 / sqrt(x)   (a correctly rounded sqrt, then a
//   reciprocal  1 / x                                                 division; not the approximate rsqrt)
//   exp         exp(x)                     relu        x > 0 ? x : +0
//   leaky_relu  x > 0 ? x : P(x, alpha)    elu         x > 0 ? x : P(expm1(x), alpha)
//   gelu_tanh   P(x, s), s = (1 + tanh(t / 2)) / 2, t = 2 sqrt(2/pi) (x + 0.044715 x^3), evaluated as the
//               equal sigmoid(t) = 1 / (1 + exp(-t)) in a cancellation-free form
//   gelu_erf    P(x, Phi(x)), Phi(x) = erfc(-x / sqrt(2)) / 2 (no cancellation for negative x)
//   tanh        tanh(x)                    sigmoid     1 / (1 + exp(-x)), cancellation-free for x < 0
// Backward, unary_backward<K>(dy, v, dx): dx = dy * f'(x), where v is what backward_uses(K) says:
//   forward_value::x (the forward input)  square: P(dy, 2x); relu: x > 0 ? dy : +0;
//       leaky_relu: x > 0 ? dy : P(dy, alpha); elu: x > 0 ? dy : P(dy, alpha exp(x));
//       gelu_tanh: P(dy, s + x s (1 - s) dt/dx); gelu_erf: P(dy, Phi + x phi(x)), phi the normal density
//   forward_value::y (the forward output) sqrt: P(dy, 0.5 / y); rsqrt: P(dy, -0.5 y^3); reciprocal:
//       P(dy, -y^2); exp: P(dy, y); tanh: P(dy, 1 - y^2); sigmoid: P(dy, y (1 - y))
//   forward_value::none (v validated, never read) copy: dy; zero: +0; negate: -dy
// dropout(x, y, mask): y = keep ? P(x, 1 / (1 - p)) : +0, mask = keep ? 1 : 0 (one uint8 per element,
//   an (M, N) mat<std::uint8_t>, the same mask type ternary select takes); dropout_backward(dy, mask, dx):
//   dx = mask != 0 ? P(dy, 1 / (1 - p)) : +0. keep is a counter-based hash of (seed, row, col) in the
//   logical tensor (dropout_keeps below): reproducible, independent of blocking, threading and SIMD width;
//   a caller that tiles a tensor passes each tile's row_offset / col_offset and gets the whole tensor's mask.
//
// Policy products: exactly the P(.) above (square, leaky_relu's slope, elu's alpha, gelu's x * cdf,
// dropout's scale, and every backward's chain-rule product dy * f'). Products inside a function
// evaluation (exp/tanh/erfc polynomials, x^3, alpha exp(x), y (1 - y), ...) are exact fp32. Ops whose
// derivative is a constant 0 or +-1 (copy, zero, negate, relu, the x > 0 branches) select or negate: no
// multiply happens.
//
// Special values (IEEE propagation through the formulas above unless listed): NaN in -> NaN out for every op
// but zero and dropped dropout elements (relu, leaky_relu and elu keep a NaN, their backwards give NaN for a
// NaN x; relu's backward gives +0 where x <= 0 whatever dy is: a mask, not a product). relu(-0) = +0.
// gelu(+inf) = +inf, gelu(-inf) = -0 and gelu(x) = -0 once the cdf underflows; gelu's backward is 1 at
// +inf and 0 at -inf. sigmoid(+-inf) = 1 / +0, tanh(+-inf) = +-1, exp(-inf) = +0, elu(-inf) = -alpha.
// sqrt of a negative number is NaN, rsqrt(+0) = +inf, reciprocal(+-0) = +-inf.
//
// Accuracy (fp32 output; a bf16 output adds its rounding, 2^-8 relative): copy, negate, sqrt, reciprocal
// are correctly rounded; square and the products are P's (exact: correctly rounded). The SIMD path uses
// xsimd 8.1's exp / expm1 / tanh (measured within 2.2 / 2.0 / 2.4 x 2^-24 relative) and erfc (measured
// within (9 + 1.2 z^2) x 2^-24 at argument z; the z^2 term is exp(-z^2)'s conditioning); the scalar path
// (TPP_NO_SIMD) uses <cmath> (glibc: within 1 / 1.3 / 2.7 / 4 x 2^-24). Composite ops add a few
// roundings, amplified where the function is ill-conditioned (gelu_tanh's exp(-|t|) by |t|):
// test/ops/unary.cpp states and checks each bound.
//
// Dispatch: the kind and the policy are template parameters, so the functor is resolved at compile time;
// one row loop (ops/detail/elementwise.hpp) runs full SIMD batches at simd::default_arch and one partial
// batch per row for the tail (scalar loops with TPP_NO_SIMD). Inputs and outputs are fp32 or bf16 in any
// combination, computation is fp32, bf16 outputs round to nearest even. Single-threaded; safe inside a
// caller's parallel region. out may be the very same view as an input (in-place); any other overlap throws.

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/mat.hpp"
#include "detail/elementwise.hpp"

namespace tpp {

enum class unary_kind : std::uint8_t {
  copy, zero, negate, square, sqrt, rsqrt, reciprocal, exp,
  relu, leaky_relu, elu, gelu_tanh, gelu_erf, tanh, sigmoid
};

constexpr std::string_view name(unary_kind k) noexcept {
  switch (k) {
    case unary_kind::copy: return "copy";
    case unary_kind::zero: return "zero";
    case unary_kind::negate: return "negate";
    case unary_kind::square: return "square";
    case unary_kind::sqrt: return "sqrt";
    case unary_kind::rsqrt: return "rsqrt";
    case unary_kind::reciprocal: return "reciprocal";
    case unary_kind::exp: return "exp";
    case unary_kind::relu: return "relu";
    case unary_kind::leaky_relu: return "leaky_relu";
    case unary_kind::elu: return "elu";
    case unary_kind::gelu_tanh: return "gelu_tanh";
    case unary_kind::gelu_erf: return "gelu_erf";
    case unary_kind::tanh: return "tanh";
    case unary_kind::sigmoid: return "sigmoid";
  }
  return "invalid";
}

// What the backward of a unary op takes besides dy: the forward input x, the forward output y, or nothing.
enum class forward_value : std::uint8_t { none, x, y };

constexpr forward_value backward_uses(unary_kind k) noexcept {
  switch (k) {
    case unary_kind::copy:
    case unary_kind::zero:
    case unary_kind::negate: return forward_value::none;
    case unary_kind::sqrt:
    case unary_kind::rsqrt:
    case unary_kind::reciprocal:
    case unary_kind::exp:
    case unary_kind::tanh:
    case unary_kind::sigmoid: return forward_value::y;
    default: return forward_value::x;
  }
}

struct unary_params {
  float leaky_alpha = 0.01f;  // leaky_relu's slope for x <= 0 (finite)
  float elu_alpha = 1.0f;     // elu's alpha (finite)
};

namespace detail {

// gelu's constants: sqrt(2/pi), the cubic coefficient, 1/sqrt(2), 1/sqrt(2 pi).
inline constexpr float gelu_k = 0.7978845608028654f;
inline constexpr float gelu_c = 0.044715f;
inline constexpr float inv_sqrt2 = 0.7071067811865476f;
inline constexpr float inv_sqrt_2pi = 0.3989422804014327f;
// Beyond +-16 both gelu cdfs are 0 or 1 and their densities 0 in fp32; clamping there keeps inf * 0 out
// of the derivatives.
inline constexpr float gelu_clamp = 16.0f;

// sigmoid(t) and sigmoid(t) (1 - sigmoid(t)) from e = exp(-|t|), without cancellation or overflow.
template <class V>
struct sigmoid_parts {
  V s, ds;
};
template <class V>
sigmoid_parts<V> sigmoid_of(V t) noexcept {
  const V e = tpp::lanes::exp(tpp::lanes::neg(tpp::lanes::abs(t)));
  const V r = tpp::lanes::div(V(1.0f), V(1.0f) + e);
  return {tpp::lanes::select(t >= V(0.0f), r, e * r), e * r * r};
}

// gelu_tanh: the cdf s(x) = sigmoid(t), t = 2 sqrt(2/pi) (x + c x^3), and its derivative ds/dx.
template <class V>
sigmoid_parts<V> gelu_tanh_parts(V x) noexcept {
  const sigmoid_parts<V> p = sigmoid_of(V(2.0f * gelu_k) * (x + V(gelu_c) * (x * x * x)));
  return {p.s, V(2.0f * gelu_k) * (V(1.0f) + V(3.0f * gelu_c) * (x * x)) * p.ds};
}

template <class V>
V gelu_erf_cdf(V x) noexcept {
  return V(0.5f) * tpp::lanes::erfc(x * V(-inv_sqrt2));
}

// y = P(x, cdf), with gelu(-inf) = -0 (the limit) instead of -inf * 0.
template <class P, class V>
V gelu_product(V x, V cdf) noexcept {
  return tpp::lanes::select(x == V(-std::numeric_limits<float>::infinity()), V(-0.0f), P::mul(x, cdf));
}

// y = f(x), written once for float and batch lanes.
template <unary_kind K, class P>
struct unary_forward {
  float alpha;  // leaky_relu / elu

  template <class V>
  V operator()(V x) const noexcept {
    using enum unary_kind;
    if constexpr (K == copy) {
      return x;
    } else if constexpr (K == zero) {
      return V(0.0f);
    } else if constexpr (K == negate) {
      return tpp::lanes::neg(x);
    } else if constexpr (K == square) {
      return P::mul(x, x);
    } else if constexpr (K == unary_kind::sqrt) {
      return tpp::lanes::sqrt(x);
    } else if constexpr (K == rsqrt) {
      return tpp::lanes::div(V(1.0f), tpp::lanes::sqrt(x));
    } else if constexpr (K == reciprocal) {
      return tpp::lanes::div(V(1.0f), x);
    } else if constexpr (K == unary_kind::exp) {
      return tpp::lanes::exp(x);
    } else if constexpr (K == relu) {
      return tpp::lanes::select(x <= V(0.0f), V(0.0f), x);
    } else if constexpr (K == leaky_relu) {
      return tpp::lanes::select(x > V(0.0f), x, P::mul(x, V(alpha)));
    } else if constexpr (K == elu) {
      return tpp::lanes::select(x > V(0.0f), x, P::mul(tpp::lanes::expm1(x), V(alpha)));
    } else if constexpr (K == gelu_tanh) {
      return gelu_product<P>(x, gelu_tanh_parts(tpp::lanes::clamp(x, -gelu_clamp, gelu_clamp)).s);
    } else if constexpr (K == gelu_erf) {
      return gelu_product<P>(x, gelu_erf_cdf(tpp::lanes::clamp(x, -gelu_clamp, gelu_clamp)));
    } else if constexpr (K == unary_kind::tanh) {
      return tpp::lanes::tanh(x);
    } else if constexpr (K == sigmoid) {
      return sigmoid_of(x).s;
    } else {
      static_assert(dependent_false<V>, "tpp: unary_kind without a forward definition");
    }
  }
};

// dx = dy * f'(.), v the forward value backward_uses(K) names.
template <unary_kind K, class P>
struct unary_backward_op {
  float alpha;  // leaky_relu / elu

  template <class V>
  V operator()(V dy, V v) const noexcept {
    using enum unary_kind;
    if constexpr (K == copy) {
      return dy;
    } else if constexpr (K == zero) {
      return V(0.0f);
    } else if constexpr (K == negate) {
      return tpp::lanes::neg(dy);
    } else if constexpr (K == square) {
      return P::mul(dy, v + v);
    } else if constexpr (K == unary_kind::sqrt) {
      return P::mul(dy, tpp::lanes::div(V(0.5f), v));
    } else if constexpr (K == rsqrt) {
      return P::mul(dy, V(-0.5f) * (v * v * v));
    } else if constexpr (K == reciprocal) {
      return P::mul(dy, tpp::lanes::neg(v * v));
    } else if constexpr (K == unary_kind::exp) {
      return P::mul(dy, v);
    } else if constexpr (K == relu) {  // NaN x: both compares false -> x
      return tpp::lanes::select(v > V(0.0f), dy, tpp::lanes::select(v <= V(0.0f), V(0.0f), v));
    } else if constexpr (K == leaky_relu) {
      return tpp::lanes::select(v > V(0.0f), dy, tpp::lanes::select(v <= V(0.0f), P::mul(dy, V(alpha)), v));
    } else if constexpr (K == elu) {
      return tpp::lanes::select(v > V(0.0f), dy, P::mul(dy, V(alpha) * tpp::lanes::exp(v)));
    } else if constexpr (K == gelu_tanh) {
      const V x = tpp::lanes::clamp(v, -gelu_clamp, gelu_clamp);
      const sigmoid_parts<V> p = gelu_tanh_parts(x);
      return P::mul(dy, p.s + x * p.ds);
    } else if constexpr (K == gelu_erf) {
      const V x = tpp::lanes::clamp(v, -gelu_clamp, gelu_clamp);
      return P::mul(dy, gelu_erf_cdf(x) + x * (V(inv_sqrt_2pi) * tpp::lanes::exp(V(-0.5f) * (x * x))));
    } else if constexpr (K == unary_kind::tanh) {
      return P::mul(dy, V(1.0f) - v * v);
    } else if constexpr (K == sigmoid) {
      return P::mul(dy, v * (V(1.0f) - v));
    } else {
      static_assert(dependent_false<V>, "tpp: unary_kind without a backward definition");
    }
  }
};

template <unary_kind K>
float unary_alpha(const unary_params& p) noexcept {
  return K == unary_kind::leaky_relu ? p.leaky_alpha : p.elu_alpha;
}

template <unary_kind K>
void check_unary_params(const unary_params& p, std::string_view op) {
  if constexpr (K == unary_kind::leaky_relu)
    if (!std::isfinite(p.leaky_alpha)) throw error(op, "leaky_alpha", concat("(", std::to_string(p.leaky_alpha), ") is not finite"));
  if constexpr (K == unary_kind::elu)
    if (!std::isfinite(p.elu_alpha)) throw error(op, "elu_alpha", concat("(", std::to_string(p.elu_alpha), ") is not finite"));
}

}  // namespace detail

// out = f(in) for an (rows, cols) shape. TI, TO: float or bf16.
template <unary_kind K, class Policy = approx::exact, class TI = float, class TO = float>
  requires approx::multiplier<Policy> && detail::float_element<TI> && detail::float_element<TO> &&
           (!std::is_const_v<TO>)
class unary_kernel : public detail::params_kernel<unary_params> {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("unary", name(K));

  unary_kernel(index_t rows, index_t cols, unary_params p = {}) : params_kernel(label, rows, cols, p) {
    detail::check_unary_params<K>(p, label);
    approx::check_policy<Policy>();
  }

  // in, out: (rows, cols)
  void operator()(mat<const in_type> in, mat<TO> out) const {
    detail::check_in_out(in, out, rows_, cols_, label, "in", "out");
    detail::for_each_element<simd::lane>(detail::unary_forward<K, Policy>{detail::unary_alpha<K>(params_)}, out,
                                             detail::make_operand(in, broadcast::none));
  }
};

// dx = dy * f'(v), v = x or y as backward_uses(K) says (for forward_value::none it is validated only).
template <unary_kind K, class Policy = approx::exact, class TG = float, class TV = float, class TD = float>
  requires approx::multiplier<Policy> && detail::float_element<TG> && detail::float_element<TV> &&
           detail::float_element<TD> && (!std::is_const_v<TD>)
class unary_backward_kernel : public detail::params_kernel<unary_params> {
 public:
  using dy_type = std::remove_const_t<TG>;
  using v_type = std::remove_const_t<TV>;
  static constexpr detail::op_label label = detail::make_label("unary_backward", name(K));
  static constexpr std::string_view v_name = backward_uses(K) == forward_value::y ? "y" : "x";

  unary_backward_kernel(index_t rows, index_t cols, unary_params p = {}) : params_kernel(label, rows, cols, p) {
    detail::check_unary_params<K>(p, label);
    approx::check_policy<Policy>();
  }

  // dy, v, dx: (rows, cols)
  void operator()(mat<const dy_type> dy, mat<const v_type> v, mat<TD> dx) const {
    detail::check_mat(dy, label, "dy");
    detail::check_mat(v, label, v_name);
    detail::check_mat(dx, label, "dx");
    detail::check_shape(dy, rows_, cols_, label, "dy", "the kernel\'s");
    detail::check_shape(v, rows_, cols_, label, v_name, "the kernel\'s");
    detail::check_shape(dx, rows_, cols_, label, "dx", "the kernel\'s");
    detail::check_alias(dx, dy, label, "dx", "dy");
    detail::check_alias(dx, v, label, "dx", v_name);
    detail::for_each_element<simd::lane>(
        detail::unary_backward_op<K, Policy>{detail::unary_alpha<K>(params_)}, dx,
        detail::make_operand(dy, broadcast::none), detail::make_operand(v, broadcast::none));
  }
};

// One-off calls: the shape is out's (dx's).
template <unary_kind K, class Policy = approx::exact, class TI, class TO>
void unary(mat<TI> in, mat<TO> out, unary_params p = {}) {
  detail::check_mat(out, unary_kernel<K, Policy, std::remove_const_t<TI>, TO>::label, "out");
  unary_kernel<K, Policy, std::remove_const_t<TI>, TO>(out.rows, out.cols, p)(in, out);
}

template <unary_kind K, class Policy = approx::exact, class TG, class TV, class TD>
void unary_backward(mat<TG> dy, mat<TV> v, mat<TD> dx, unary_params p = {}) {
  using kernel = unary_backward_kernel<K, Policy, std::remove_const_t<TG>, std::remove_const_t<TV>, TD>;
  detail::kernel_for<kernel>(dx, "dx", p)(dy, v, dx);
}

// ---- dropout ----

struct dropout_params {
  float p = 0.5f;             // drop probability, in [0, 1)
  std::uint64_t seed = 0;
  index_t row_offset = 0;     // the view's position in the logical tensor the mask is defined on (>= 0)
  index_t col_offset = 0;
};

// The dropout hash. Row r of the logical tensor gets a 64-bit key k = mix64(mix64(seed) ^ r); element
// (r, c) gets h = mix32(mix32((c mod 2^32) ^ (k >> 32)) ^ (k mod 2^32)) and is kept when
// h >= floor(p 2^32), so it is kept with probability 1 - p (to 2^-32). mix64 is splitmix64's finaliser,
// mix32 Wellons' lowbias32; both bijective. The 32-bit part runs in SIMD lanes, bit-identical to this.
constexpr std::uint64_t dropout_mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <class U>  // std::uint32_t or a batch of them
constexpr U dropout_mix32(U h) noexcept {
  h = h ^ (h >> 16);
  h = h * U(0x7feb352du);
  h = h ^ (h >> 15);
  h = h * U(0x846ca68bu);
  return h ^ (h >> 16);
}

constexpr std::uint64_t dropout_row_key(std::uint64_t seed, std::uint64_t row) noexcept {
  return dropout_mix64(dropout_mix64(seed) ^ row);
}

template <class U>
constexpr U dropout_hash(std::uint64_t row_key, U col) noexcept {
  return dropout_mix32(dropout_mix32(col ^ U(std::uint32_t(row_key >> 32))) ^ U(std::uint32_t(row_key)));
}

constexpr std::uint32_t dropout_threshold(float p) noexcept {
  return std::uint32_t(double(p) * 0x1p32);  // p in [0, 1): below 2^32
}

// Whether dropout with p keeps element (row, col) of the logical tensor (row_offset/col_offset not applied).
constexpr bool dropout_keeps(const dropout_params& p, index_t row, index_t col) noexcept {
  return dropout_hash(dropout_row_key(p.seed, std::uint64_t(row)), std::uint32_t(col)) >= dropout_threshold(p.p);
}

namespace detail {

inline void check_dropout_params(const dropout_params& p, std::string_view op) {
  if (!(p.p >= 0.0f && p.p < 1.0f)) throw error(op, "p", concat("(", std::to_string(p.p), ") is outside [0, 1)"));
  check_sizes(op, p.row_offset, p.col_offset, "row_offset", "col_offset");
}

inline float dropout_scale(float p) noexcept { return float(1.0 / (1.0 - double(p))); }

// y = keep ? P(x, scale) : +0 and mask = keep over x's shape, one row at a time.
template <class V, class P, class TI, class TO>
void dropout_rows(mat<const TI> x, mat<TO> y, mat<std::uint8_t> mask, const dropout_params& p) noexcept {
  using U = tpp::lanes::u32_of<V>;
  constexpr index_t W = tpp::lanes::width<V>;
  const std::uint32_t threshold = dropout_threshold(p.p);
  const V scale(dropout_scale(p.p));
  const U iota = tpp::lanes::iota<V>();
  const std::uint64_t seed = p.seed;
  const index_t row_offset = p.row_offset, col_offset = p.col_offset;  // locals: the mask stores may alias p
  for (index_t i = 0; i < x.rows; ++i) {
    const std::uint64_t key = dropout_row_key(seed, std::uint64_t(row_offset + i));
    const TI* xr = x.row(i);
    TO* yr = y.row(i);
    std::uint8_t* mr = mask.row(i);
    const auto keep = [&](index_t j) {
      return tpp::lanes::greater_equal(dropout_hash(key, U(std::uint32_t(col_offset + j)) + iota), threshold);
    };
    index_t j = 0;
    for (; j + W <= x.cols; j += W) {
      const auto k = keep(j);
      tpp::lanes::store(yr + j, tpp::lanes::select(k, P::mul(load_lanes<V>(xr + j), scale), V(0.0f)));
      tpp::lanes::store_mask(mr + j, k);
    }
    if constexpr (W > 1) {
      if (j < x.cols) {
        const index_t n = x.cols - j;
        const auto k = keep(j);
        tpp::lanes::store(yr + j, tpp::lanes::select(k, P::mul(load_lanes<V>(xr + j, n), scale), V(0.0f)), n);
        tpp::lanes::store_mask(mr + j, k, n);
      }
    }
  }
}

template <class P>
struct dropout_backward_op {
  float scale;
  template <class V, class M>
  V operator()(V dy, M keep) const noexcept {
    return tpp::lanes::select(keep, P::mul(dy, V(scale)), V(0.0f));
  }
};

}  // namespace detail

// y = dropout(x), mask: (rows, cols), one uint8 per element (1 kept, 0 dropped).
template <class Policy = approx::exact, class TI = float, class TO = float>
  requires approx::multiplier<Policy> && detail::float_element<TI> && detail::float_element<TO> &&
           (!std::is_const_v<TO>)
class dropout_kernel : public detail::params_kernel<dropout_params> {
 public:
  using in_type = std::remove_const_t<TI>;
  static constexpr detail::op_label label = detail::make_label("dropout", "");

  dropout_kernel(index_t rows, index_t cols, dropout_params p = {}) : params_kernel(label, rows, cols, p) {
    detail::check_dropout_params(p, label);
    approx::check_policy<Policy>();
  }

  void operator()(mat<const in_type> x, mat<TO> y, mat<std::uint8_t> mask) const {
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    check_view(mask, label, "mask");
    detail::check_alias(mask, x, label, "mask", "x");
    detail::check_alias(mask, y, label, "mask", "y");
    if (x.empty()) return;
    detail::dropout_rows<simd::lane, Policy>(x, y, mask, params_);
  }
};

// dx = mask != 0 ? P(dy, 1 / (1 - p)) : +0; only p of the params is used.
template <class Policy = approx::exact, class TG = float, class TD = float>
  requires approx::multiplier<Policy> && detail::float_element<TG> && detail::float_element<TD> &&
           (!std::is_const_v<TD>)
class dropout_backward_kernel : public detail::params_kernel<dropout_params> {
 public:
  using dy_type = std::remove_const_t<TG>;
  static constexpr detail::op_label label = detail::make_label("dropout_backward", "");

  dropout_backward_kernel(index_t rows, index_t cols, dropout_params p = {}) : params_kernel(label, rows, cols, p) {
    detail::check_dropout_params(p, label);
    approx::check_policy<Policy>();
  }

  void operator()(mat<const dy_type> dy, mat<const std::uint8_t> mask, mat<TD> dx) const {
    check_view(mask, label, "mask");
    detail::check_in_out(dy, dx, rows_, cols_, label, "dy", "dx");
    detail::check_alias(dx, mask, label, "dx", "mask");
    detail::for_each_element<simd::lane>(detail::dropout_backward_op<Policy>{detail::dropout_scale(params_.p)}, dx,
                                             detail::make_operand(dy, broadcast::none),
                                             detail::make_operand(mask, broadcast::none));
  }
};

template <class Policy = approx::exact, class TI, class TO>
void dropout(mat<TI> x, mat<TO> y, mat<std::uint8_t> mask, dropout_params p = {}) {
  detail::kernel_for<dropout_kernel<Policy, std::remove_const_t<TI>, TO>>(y, "y", p)(x, y, mask);
}

template <class Policy = approx::exact, class TG, class TM, class TD>
  requires std::same_as<std::remove_const_t<TM>, std::uint8_t>
void dropout_backward(mat<TG> dy, mat<TM> mask, mat<TD> dx, dropout_params p = {}) {
  detail::kernel_for<dropout_backward_kernel<Policy, std::remove_const_t<TG>, TD>>(dx, "dx", p)(dy, mask, dx);
}

}  // namespace tpp
