#pragma once
// approx::bf16_rz and approx::bf16_rne: bfloat16 multipliers.
//
//   mul(a, b) = round(round(a) * round(b))        round = to bf16, toward zero (rz) or to nearest even (rne)
//
// computed in value space: the fp32 product of two bf16 operands is exact (8 x 8 significand bits) unless
// it leaves the fp32 range. bf16_rz is AMSim's "ACC" model of a bf16 multiplier (ApproxTrain, Gong et al.
// 2023). The special-value rules of policy.hpp apply: an operand that rounds up past FLT_MAX (rne only)
// becomes Inf and the product is +-Inf; a rounded product below the normal range is +-0.
//
// GEMM (gemm_traits.hpp): the packed path. Packing rounds each operand to bf16; their fp32 product is exact,
// and the step rounds it to bf16 and adds: acc + round(g(a) g(b)) == acc + bf16_*::mul(a, b) bit for bit
// while products stay normal (an operand that rounds to Inf makes its panel take the careful path).

#include <string>

#include "../core/bf16.hpp"
#include "gemm_traits.hpp"
#include "policy.hpp"

namespace tpp::approx {
namespace detail {

template <bool nearest_even>
struct bf16_multiplier {
  static float round(float x) noexcept { return to_float(nearest_even ? to_bf16_rne(x) : to_bf16_rz(x)); }

  template <class A>
  static fbatch<A> round(fbatch<A> x) noexcept {
    using I = ibatch<A>;
    I u = ibits(x);
    if constexpr (nearest_even) u = u + (I(0x7fff) + ((u >> 16) & I(1)));
    return fbits<A>(u & I(std::int32_t(0xffff0000u)));
  }

  static float mul(float a, float b) noexcept {
    std::uint32_t out = 0;
    if (special_case(bits(a), bits(b), out)) return from_bits(out);
    std::uint32_t r = bits(round(round(a) * round(b)));
    if ((r & abs_mask) < 0x00800000u) r &= sign_bit;  // below the normal range
    return from_bits(r);
  }

  template <class A>
  static fbatch<A> mul(fbatch<A> a, fbatch<A> b) noexcept {
    using I = ibatch<A>;
    const I ua = ibits(a), ub = ibits(b);
    const I r = ibits(round<A>(round<A>(a) * round<A>(b)));
    const I res = lanes::select((r & I(std::int32_t(abs_mask))) < I(0x00800000), r & I(std::int32_t(sign_bit)), r);
    if (xsimd::all(normal_operands<A>((ua >> 23) & I(0xff), (ub >> 23) & I(0xff)))) return fbits<A>(res);
    return fbits<A>(apply_special_cases<A>(ua, ub, res));
  }
};

template <bool nearest_even>
struct bf16_gemm_traits {
  static constexpr gemm_path path = gemm_path::packed;
  static constexpr int temporaries = 2;
  static constexpr int carry = 2;  // rounding the product may carry it into the next binade
  static constexpr int low_margin = 0;
  static constexpr std::uint32_t a_offset = 0;
  static constexpr bool zero_specialised = false;
  static float pack(float x) noexcept {
    return pack_operand(x, [](float v) { return bf16_multiplier<nearest_even>::round(v); });
  }
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    if constexpr (std::is_same_v<V, float>)
      return acc + bf16_multiplier<nearest_even>::round(a * b);
    else
      return acc + bf16_multiplier<nearest_even>::template round<typename V::arch_type>(a * b);
  }
};

}  // namespace detail

struct bf16_rz : detail::bf16_multiplier<false> {
  static std::string name() { return "bf16_rz"; }
  // Each of the three truncations loses less than 2^-7 relatively: 1 - (1 - 2^-7)^3 < 0.0233.
  static constexpr double max_rel_error = 0.0233;
};

struct bf16_rne : detail::bf16_multiplier<true> {
  static std::string name() { return "bf16_rne"; }
  // Each of the three roundings errs by at most 2^-8 relatively: (1 + 2^-8)^3 - 1 < 0.01177.
  static constexpr double max_rel_error = 0.01177;
};

template <>
struct gemm_traits<bf16_rz> : detail::bf16_gemm_traits<false> {};
template <>
struct gemm_traits<bf16_rne> : detail::bf16_gemm_traits<true> {};

}  // namespace tpp::approx
