#pragma once
// approx::mitchell<M>: Mitchell's logarithmic multiplier (Mitchell 1962) on M-bit mantissas, 1 <= M <= 23.
//
// Keep the top M mantissa bits of each operand, add the two bit patterns (exponent and mantissa fields
// together, the mantissa carry flowing into the exponent) and subtract the bias 127 << 23. For
// significands 1 + fa, 1 + fb this is 1 + fa + fb when fa + fb < 1, else 2 (fa + fb): log2(1 + f) ~ f.
// The special-value and range rules of policy.hpp apply.

#include <string>

#include "../core/error.hpp"
#include "policy.hpp"

namespace tpp::approx {
namespace detail {

template <int M>
struct mitchell_core {
  static_assert(M >= 1 && M <= 23, "tpp: mitchell<M> needs 1 <= M <= 23 mantissa bits");
  static constexpr bool bounded() noexcept { return true; }  // r in [1, 4.5)
  static float core(float x, float y) noexcept {
    return from_bits((bits(x) & keep_mask<M>) + (bits(y) & keep_mask<M>) - one_bits);
  }
  template <class A>
  static fbatch<A> core(fbatch<A> x, fbatch<A> y) noexcept {
    using I = ibatch<A>;
    const I k = I(std::int32_t(keep_mask<M>));
    return fbits<A>((ibits(x) & k) + (ibits(y) & k) - I(std::int32_t(one_bits)));
  }
};

}  // namespace detail

template <int M>
struct mitchell : detail::significand_policy<detail::mitchell_core<M>> {
  static std::string name() { return tpp::detail::concat("mitchell<", std::to_string(M), ">"); }
  // Mitchell's product of exact significands is at most 1/9 (11.1%) below the true product (at fa = fb = 1/2).
  static constexpr double max_rel_error = detail::truncated_bound(1.0 / 9.0, M);
};

}  // namespace tpp::approx
