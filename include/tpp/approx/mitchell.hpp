#pragma once
// approx::mitchell<M>: Mitchell's logarithmic multiplier (Mitchell 1962) on M-bit mantissas, 1 <= M <= 23.
//
// Keep the top M mantissa bits of each operand, add the two bit patterns (exponent and mantissa fields
// together, the mantissa carry flowing into the exponent) and subtract the bias 127 << 23. For
// significands 1 + fa, 1 + fb this is 1 + fa + fb when fa + fb < 1, else 2 (fa + fb): log2(1 + f) ~ f.
// The special-value and range rules of policy.hpp apply.
//
// GEMM (gemm_traits.hpp): the packed path. Packing truncates each operand to M mantissa bits, and packed A
// also has the bias 127 << 23 taken off its bit pattern (a_offset), so one integer add of the packed
// patterns is the product's pattern, sign included (the sign bits' carry falls off bit 31): the step is one
// integer add and one fp32 add per product. Zero operands pack as a marker (A) or 0 (B), and the lanes they
// touch add nothing (the zero forms of the step, taken only for blocks that hold zeros).

#include <string>

#include "../core/error.hpp"
#include "gemm_traits.hpp"
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

template <int M>
struct gemm_traits<mitchell<M>> {
  static constexpr gemm_path path = gemm_path::packed;
  static constexpr int temporaries = 2;
  static constexpr int carry = 1;
  static constexpr int low_margin = 0;
  static constexpr std::uint32_t a_offset = detail::one_bits;
  static constexpr std::uint32_t a_zero = 0u - a_offset;  // a packed zero: no normal operand maps here
  static float pack(float x) noexcept {
    if ((detail::bits(x) & detail::exp_mask) == 0) return 0.0f;  // +-0, denormals: one +0
    return pack_operand(x, [](float v) { return detail::from_bits(detail::bits(v) & detail::keep_mask<M>); });
  }
  struct product {
    template <class V>
    static V bits(V x) noexcept {
      return x;
    }
    template <class V>
    static V value(V a, V b) noexcept {
      return add_patterns(a, b);
    }
  };
  static constexpr bool zero_specialised = true;
  template <bool a_zeros, bool b_zeros>
  using zero_step = log_step<product, a_zero, a_zeros, b_zeros>;
};

}  // namespace tpp::approx
