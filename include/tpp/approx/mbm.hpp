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

}  // namespace tpp::approx
