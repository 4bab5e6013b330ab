#pragma once
// approx::mbm<M>: the minimally biased multiplier (Saadat, Bokhari, Parameswaran, "Minimally biased
// multipliers for approximate integer and floating-point multiplication", IEEE TCAD 37(11), 2018),
// on M-bit mantissas, 1 <= M <= 23.
//
// Mitchell's product of the M-bit-truncated significands (mitchell.hpp) plus the error-reduction term
// c = 2^-4 + 2^-6 = 0.078125 in units of 2^(ea + eb): r = mitchell(x, y) + c, an fp32 add (so a sum that
// reaches [2, 2.08) is rounded to nearest even). In the hardware's terms c is added to the normalised
// mantissa when the log sum did not carry and c / 2 when it did. Mitchell's error is fa*fb (or
// (1-fa)(1-fb)), whose mean over uniform mantissas is 1/12; c is its cheap binary approximation, which
// makes the multiplier nearly unbiased. The special-value and range rules of policy.hpp apply.
//
// GEMM (gemm_traits.hpp): mitchell<M>'s packed path, with the correction c 2^(Ea + Eb) added as
// fma(c 2^Ea, 2^Eb, P) to Mitchell's packed sum P: both factors are powers of two (times 1.25) taken from
// the packed patterns' sign and exponent fields once per loaded operand, so their product is exact and the
// fma rounds P + c 2^(Ea + Eb) once, which is 2^(Ea + Eb) (mitchell_core + c) rounded: mbm::mul bit for
// bit while the correction is normal (low_margin: Ea + Eb >= -122) and the result below the range top
// (carry 2: r < 4.08).

#include <string>

#include "mitchell.hpp"

namespace tpp::approx {
namespace detail {

inline constexpr float mbm_correction = 0.078125f;  // 2^-4 + 2^-6

template <int M>
struct mbm_core {
  static_assert(M >= 1 && M <= 23, "tpp: mbm<M> needs 1 <= M <= 23 mantissa bits");
  static constexpr bool bounded() noexcept { return true; }  // r in [1, 4.5)
  static float core(float x, float y) noexcept { return mitchell_core<M>::core(x, y) + mbm_correction; }
  template <class A>
  static fbatch<A> core(fbatch<A> x, fbatch<A> y) noexcept {
    return mitchell_core<M>::template core<A>(x, y) + fbatch<A>(mbm_correction);
  }
};

}  // namespace detail

template <int M>
struct mbm : detail::significand_policy<detail::mbm_core<M>> {
  static std::string name() { return tpp::detail::concat("mbm<", std::to_string(M), ">"); }
  // Over exact significands the result is at most c / 1 = 7.8125% above the product (fa = fb = 0) and at
  // most (1/4 - c) / (9/4) < 7.64% below it (fa = fb = 1/2); truncation can lower it by 1 - (1 - 2^-M)^2 more.
  static constexpr double max_rel_error =
      detail::truncated_bound(0.0764, M) > 0.0782 ? detail::truncated_bound(0.0764, M) : 0.0782;  // c plus one rounding
};

namespace detail {
// A packed operand and its scale (c 2^Ea for A, 2^Eb for B).
template <class V>
struct mbm_operand {
  V packed, scale;
};
}  // namespace detail

template <int M>
struct gemm_traits<mbm<M>> {
  using mitchell_traits = gemm_traits<mitchell<M>>;
  static constexpr gemm_path path = gemm_path::packed;
  static constexpr int temporaries = 4;  // each operand carries a scale
  static constexpr int carry = 2;
  static constexpr int low_margin = 4;
  static constexpr std::uint32_t a_offset = mitchell_traits::a_offset;
  static constexpr std::uint32_t a_zero = mitchell_traits::a_zero;
  static float pack(float x) noexcept { return mitchell_traits::pack(x); }
  static constexpr std::uint32_t sign_exp = 0xff800000u;
  struct product {
    // A's packed pattern has 127 taken off its exponent field (a_offset): its sign and exponent fields
    // plus 123 in the exponent and 0.25 in the mantissa are c 2^Ea = 1.25 2^(Ea - 4) (normal: low_margin
    // also asks Ea >= -122). B's sign and exponent fields are 2^Eb.
    template <class V>
    static detail::mbm_operand<V> prepare_a(V x) noexcept {
      return {x, mask_pattern(x, sign_exp, (123u << 23) | (1u << 21))};
    }
    template <class V>
    static detail::mbm_operand<V> prepare_b(V x) noexcept {
      return {x, mask_pattern(x, sign_exp)};
    }
    template <class V>
    static V bits(const detail::mbm_operand<V>& x) noexcept {
      return x.packed;
    }
    template <class V>
    static V value(const detail::mbm_operand<V>& a, const detail::mbm_operand<V>& b) noexcept {
      return lanes::fma(a.scale, b.scale, add_patterns(a.packed, b.packed));
    }
  };
  static constexpr bool zero_specialised = true;
  template <bool a_zeros, bool b_zeros>
  using zero_step = log_step<product, a_zero, a_zeros, b_zeros>;
};

}  // namespace tpp::approx
