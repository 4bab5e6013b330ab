#pragma once
// Binary element-wise ops: out(i, j) = f(a(i, j), b(i, j)) over an (M, N) output, either input broadcast.
//
// Variants (binary_kind; P(a, b) = Policy::mul(a, b)):
//   add     a + b            sub     a - b            div     a / b        (IEEE, correctly rounded)
//   mul     P(a, b)                                   (bit for bit Policy::mul of the fp32 inputs)
//   max     a > b ? a : b    min     a < b ? a : b    (NaN-propagating: a NaN in either input gives NaN;
//                                                      equal inputs, +0 and -0 included, give b)
//   muladd  out + P(a, b)    (out is read: out += a * b; one policy product, then an fp32 add, which the
//                             compiler may fuse into an fma for the exact policy)
// The only policy products are mul's and muladd's P(a, b). Special values follow IEEE through the formulas
// (for non-exact policies, P's own rules of approx/policy.hpp).
//
// Broadcast (binary_params::a / ::b, see tpp::broadcast): each input is (M, N), a row (1, N) applied to
// every row, a column (M, 1) applied to every column, or a scalar (1, 1); a wrong shape throws. Broadcasts
// are resolved once per row (a splat is copied into a W-lane buffer the SIMD body reads with step 0), so
// the inner loop is the same SIMD body for every broadcast kind.
//
// Dispatch: kind and policy are template parameters (compile-time functor); one row loop
// (ops/detail/elementwise.hpp) of full SIMD batches at simd::default_arch plus one partial batch per row
// (scalar loops with TPP_NO_SIMD). fp32/bf16 inputs and output in any combination, fp32 computation,
// bf16 output rounded to nearest even. Single-threaded. out may be the very same view as a non-broadcast
// input (in-place); any other overlap with an input throws.

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/mat.hpp"
#include "detail/elementwise.hpp"

namespace tpp {

enum class binary_kind : std::uint8_t { add, sub, mul, div, max, min, muladd };

constexpr std::string_view name(binary_kind k) noexcept {
  switch (k) {
    case binary_kind::add: return "add";
    case binary_kind::sub: return "sub";
    case binary_kind::mul: return "mul";
    case binary_kind::div: return "div";
    case binary_kind::max: return "max";
    case binary_kind::min: return "min";
    case binary_kind::muladd: return "muladd";
  }
  return "invalid";
}

struct binary_params {
  broadcast a = broadcast::none;
  broadcast b = broadcast::none;
};

namespace detail {

template <binary_kind K, class P>
struct binary_op {
  template <class V>
  V operator()(V a, V b) const noexcept {
    if constexpr (K == binary_kind::add) {
      return a + b;
    } else if constexpr (K == binary_kind::sub) {
      return a - b;
    } else if constexpr (K == binary_kind::mul) {
      return P::mul(a, b);
    } else if constexpr (K == binary_kind::div) {
      return tpp::lanes::div(a, b);
    } else if constexpr (K == binary_kind::max) {
      return tpp::lanes::max_propagating_nan(a, b);
    } else if constexpr (K == binary_kind::min) {
      return tpp::lanes::min_propagating_nan(a, b);
    } else {
      static_assert(dependent_false<V>, "tpp: binary_kind without a two-input definition");
    }
  }

  // muladd: out + P(a, b)
  template <class V>
  V operator()(V a, V b, V out) const noexcept {
    static_assert(K == binary_kind::muladd);
    return out + P::mul(a, b);
  }
};

}  // namespace detail

// out = f(a, b) for an (rows, cols) output. TA, TB, TO: float or bf16.
template <binary_kind K, class Policy = approx::exact, class TA = float, class TB = float, class TO = float>
  requires approx::multiplier<Policy> && detail::float_element<TA> && detail::float_element<TB> &&
           detail::float_element<TO> && (!std::is_const_v<TO>)
class binary_kernel : public detail::params_kernel<binary_params> {
 public:
  using a_type = std::remove_const_t<TA>;
  using b_type = std::remove_const_t<TB>;
  static constexpr detail::op_label label = detail::make_label("binary", name(K));

  binary_kernel(index_t rows, index_t cols, binary_params p = {}) : params_kernel(label, rows, cols, p) {
    detail::require(detail::valid(p.a), label, "a", "has an invalid broadcast value");
    detail::require(detail::valid(p.b), label, "b", "has an invalid broadcast value");
    approx::check_policy<Policy>();
  }

  // a, b: (rows, cols) or as broadcast; out: (rows, cols)
  void operator()(mat<const a_type> a, mat<const b_type> b, mat<TO> out) const {
    detail::check_mat(a, label, "a");
    detail::check_mat(b, label, "b");
    detail::check_mat(out, label, "out");
    detail::check_shape(out, rows_, cols_, label, "out", "the kernel\'s");
    detail::check_broadcast_shape(a, params_.a, rows_, cols_, label, "a");
    detail::check_broadcast_shape(b, params_.b, rows_, cols_, label, "b");
    detail::check_alias(out, a, label, "out", "a");
    detail::check_alias(out, b, label, "out", "b");
    const auto oa = detail::make_operand(a, params_.a);
    const auto ob = detail::make_operand(b, params_.b);
    if constexpr (K == binary_kind::muladd)
      detail::for_each_element<simd::lane>(detail::binary_op<K, Policy>{}, out, oa, ob,
                                               detail::make_operand(mat<const TO>(out), broadcast::none));
    else
      detail::for_each_element<simd::lane>(detail::binary_op<K, Policy>{}, out, oa, ob);
  }
};

// One-off call: the shape is out's.
template <binary_kind K, class Policy = approx::exact, class TA, class TB, class TO>
void binary(mat<TA> a, mat<TB> b, mat<TO> out, binary_params p = {}) {
  using kernel = binary_kernel<K, Policy, std::remove_const_t<TA>, std::remove_const_t<TB>, TO>;
  detail::kernel_for<kernel>(out, "out", p)(a, b, out);
}

}  // namespace tpp
