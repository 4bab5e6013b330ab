#pragma once
// Ternary element-wise ops: out(i, j) = f(in0(i, j), in1(i, j), in2(i, j)) over an (M, N) output, any input
// broadcast.
//
// Variants (ternary_kind; P(a, b) = Policy::mul(a, b)):
//   muladd  (a, b, c)     P(a, b) + c: one policy product, then an fp32 add (which the compiler may fuse
//                         into an fma for the exact policy)
//   select  (cond, a, b)  cond != 0 ? a : b, cond a uint8 mask (mat<const std::uint8_t>, the type
//                         dropout writes; any nonzero byte selects a). Values pass through unchanged
//                         (NaN payloads included) apart from the conversion to the output type.
// The only policy product is muladd's P(a, b). Special values follow IEEE through the formulas.
//
// Broadcast (ternary_params::in0 / in1 / in2, the inputs in call order, see tpp::broadcast): each input is
// (M, N), a row (1, N), a column (M, 1) or a scalar (1, 1); a wrong shape throws.
//
// Dispatch: kind and policy are template parameters (compile-time functor); one row loop
// (ops/detail/elementwise.hpp) of full SIMD batches at simd::default_arch plus one partial batch per row
// (scalar loops with TPP_NO_SIMD). fp32/bf16 data inputs and output in any combination, fp32
// computation, bf16 output rounded to nearest even. Single-threaded. out may be the very same view as a
// non-broadcast data input of its element type (in-place, e.g. c += a * b); any other overlap throws.

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/mat.hpp"
#include "detail/elementwise.hpp"

namespace tpp {

struct ternary_params {
  broadcast in0 = broadcast::none;  // muladd: a; select: cond
  broadcast in1 = broadcast::none;  // muladd: b; select: a
  broadcast in2 = broadcast::none;  // muladd: c; select: b
};

enum class ternary_kind : std::uint8_t { muladd, select };

constexpr std::string_view name(ternary_kind k) noexcept {
  switch (k) {
    case ternary_kind::muladd: return "muladd";
    case ternary_kind::select: return "select";
  }
  return "invalid";
}

namespace detail {

// The first input: a float element for muladd, the uint8 mask for select.
template <ternary_kind K, class T>
concept ternary_first_input = (K == ternary_kind::select && std::same_as<std::remove_const_t<T>, std::uint8_t>) ||
                              (K != ternary_kind::select && float_element<T>);

template <ternary_kind K, class P>
struct ternary_op {
  template <class M, class V>
  V operator()(M in0, V in1, V in2) const noexcept {
    if constexpr (K == ternary_kind::muladd)
      return P::mul(in0, in1) + in2;
    else if constexpr (K == ternary_kind::select)
      return tpp::lanes::select(in0, in1, in2);
    else
      static_assert(dependent_false<V>, "tpp: ternary_kind without a definition");
  }
};

// The inputs' names in error messages.
constexpr std::string_view ternary_input_name(ternary_kind k, int i) noexcept {
  constexpr std::string_view muladd[] = {"a", "b", "c"}, select[] = {"cond", "a", "b"};
  return k == ternary_kind::select ? select[i] : muladd[i];
}

}  // namespace detail

// out = f(in0, in1, in2) for an (rows, cols) output. T0: float or bf16 (muladd), std::uint8_t (select);
// T1, T2, TO: float or bf16.
template <ternary_kind K, class Policy = approx::exact, class T0 = float, class T1 = float, class T2 = float,
          class TO = float>
  requires approx::multiplier<Policy> && detail::ternary_first_input<K, T0> && detail::float_element<T1> &&
           detail::float_element<T2> && detail::float_element<TO> && (!std::is_const_v<TO>)
class ternary_kernel : public detail::kernel_shape {
 public:
  using in0_type = std::remove_const_t<T0>;
  using in1_type = std::remove_const_t<T1>;
  using in2_type = std::remove_const_t<T2>;
  static constexpr detail::op_label label = detail::make_label("ternary", name(K));
  static constexpr std::string_view name0 = detail::ternary_input_name(K, 0);
  static constexpr std::string_view name1 = detail::ternary_input_name(K, 1);
  static constexpr std::string_view name2 = detail::ternary_input_name(K, 2);

  ternary_kernel(index_t rows, index_t cols, ternary_params p = {}) : kernel_shape(label, rows, cols), params_(p) {
    detail::require(detail::valid(p.in0), label, name0, "has an invalid broadcast value");
    detail::require(detail::valid(p.in1), label, name1, "has an invalid broadcast value");
    detail::require(detail::valid(p.in2), label, name2, "has an invalid broadcast value");
    approx::check_policy<Policy>();
  }

  // in0, in1, in2: (rows, cols) or as broadcast; out: (rows, cols)
  void operator()(mat<const in0_type> in0, mat<const in1_type> in1, mat<const in2_type> in2, mat<TO> out) const {
    detail::check_mat(in0, label, name0);
    detail::check_mat(in1, label, name1);
    detail::check_mat(in2, label, name2);
    detail::check_mat(out, label, "out");
    detail::check_shape(out, rows_, cols_, label, "out", "the kernel\'s");
    detail::check_broadcast_shape(in0, params_.in0, rows_, cols_, label, name0);
    detail::check_broadcast_shape(in1, params_.in1, rows_, cols_, label, name1);
    detail::check_broadcast_shape(in2, params_.in2, rows_, cols_, label, name2);
    detail::check_alias(out, in0, label, "out", name0);
    detail::check_alias(out, in1, label, "out", name1);
    detail::check_alias(out, in2, label, "out", name2);
    detail::for_each_element<simd::lane>(detail::ternary_op<K, Policy>{}, out,
                                             detail::make_operand(in0, params_.in0),
                                             detail::make_operand(in1, params_.in1),
                                             detail::make_operand(in2, params_.in2));
  }

  const ternary_params& params() const noexcept { return params_; }

 private:
  ternary_params params_;
};

// One-off call: the shape is out's.
template <ternary_kind K, class Policy = approx::exact, class T0, class T1, class T2, class TO>
void ternary(mat<T0> in0, mat<T1> in1, mat<T2> in2, mat<TO> out, ternary_params p = {}) {
  using kernel =
      ternary_kernel<K, Policy, std::remove_const_t<T0>, std::remove_const_t<T1>, std::remove_const_t<T2>, TO>;
  detail::check_mat(out, kernel::label, "out");
  kernel(out.rows, out.cols, p)(in0, in1, in2, out);
}

}  // namespace tpp
