#pragma once
// The approximate-multiply policy concept and the machinery the built-in policies share.
//
// A policy P is an empty struct with
//   static float mul(float a, float b) noexcept;                       // the definition
//   template <class A> static xsimd::batch<float, A>
//       mul(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept; // bit-identical, lane for lane
//                                                                       // (exact: but for NaN payloads)
//   static std::string name();                                          // e.g. "mitchell<7>"
//   static constexpr double max_rel_error;  // proven bound on |mul(a,b) - ab| / |ab|, normal in and out
// `multiplier<P>` checks this at every op entry point, so a policy can never be dropped on a packed path.
// A policy whose products are IEEE fp32 products (`exact`) says so with `static constexpr bool ieee = true`
// (is_ieee<P>): its special values are IEEE's, not the rules below. What a GEMM may do with a policy's
// products (pack its operands, a micro-kernel step of its own) is in its header too, as gemm_traits<P>
// (gemm_traits.hpp).
//
// Special values, for every policy other than `exact` (plain IEEE):
//   - the sign of the result is the XOR of the operands' signs (NaN results included);
//   - NaN in -> NaN out (the quiet NaN 0x7fc00000 with that sign); Inf x 0 -> NaN; Inf x nonzero -> +-Inf;
//   - a zero or denormal operand gives +-0 (denormal inputs flush to zero, so Inf x denormal -> NaN);
//   - a result above the float range is +-Inf, a result below the normal range is +-0.
//
// Most policies are "significand policies": they only say how two significands x, y in [1, 2) multiply,
// core(x, y) -> r, and significand_mul() applies the sign, the exponents 2^(ea + eb), the range rules and
// the special values above, identically in scalar and SIMD code. The result is +-r * 2^(ea+eb), rescaled
// exactly: a zero or denormal r gives +-0, a NaN or Inf r gives NaN, and the range check is on the final
// exponent.

#include <bit>
#include <concepts>
#include <cstdint>
#include <string>

#include <xsimd/xsimd.hpp>

#include "../core/lanes.hpp"

namespace tpp::approx {

// A model for lut<> and direct<>: any struct with a static float mul(float, float).
template <class M>
concept scalar_model = requires(float a, float b) {
  { M::mul(a, b) } -> std::convertible_to<float>;
};

template <class P>
concept multiplier = requires(float a, float b, xsimd::batch<float> va) {
  { P::mul(a, b) } noexcept -> std::same_as<float>;
  { P::mul(va, va) } noexcept -> std::same_as<xsimd::batch<float>>;
  { P::name() } -> std::convertible_to<std::string>;
  { P::max_rel_error } -> std::convertible_to<double>;
};

// Whether P's products are IEEE fp32 products (P::ieee): then IEEE's special values apply, not policy.hpp's.
template <class P>
inline constexpr bool is_ieee = requires { requires P::ieee; };

// Policies whose tables or models can be invalid at run time provide validate(), which throws tpp::error;
// op kernel objects call check_policy<P>() once when they are made.
template <class P>
void check_policy() {
  if constexpr (requires { P::validate(); }) P::validate();
}

namespace detail {

inline constexpr std::uint32_t sign_bit = 0x80000000u;
inline constexpr std::uint32_t abs_mask = 0x7fffffffu;
inline constexpr std::uint32_t exp_mask = 0x7f800000u;
inline constexpr std::uint32_t man_mask = 0x007fffffu;
inline constexpr std::uint32_t one_bits = 0x3f800000u;  // 1.0f
inline constexpr std::uint32_t qnan_bits = 0x7fc00000u;

constexpr std::uint32_t bits(float f) noexcept { return std::bit_cast<std::uint32_t>(f); }
constexpr float from_bits(std::uint32_t u) noexcept { return std::bit_cast<float>(u); }

// Keeps the top m of the 23 mantissa bits (truncation toward zero).
template <int M>
constexpr std::uint32_t keep_mask = ~((std::uint32_t(1) << (23 - M)) - 1u);

// 1 - (1 - e)(1 - 2^-m)^2: a bound e on an approximation that only lowers products, after both operands
// are truncated to m mantissa bits (which also only lowers them).
constexpr double truncated_bound(double e, int m) noexcept {
  const double t = 1.0 - 1.0 / double(1u << (m > 30 ? 30 : m));
  return 1.0 - (1.0 - e) * t * t;
}

template <class A>
using fbatch = xsimd::batch<float, A>;
template <class A>
using ibatch = xsimd::batch<std::int32_t, A>;

template <class A>
ibatch<A> ibits(fbatch<A> v) noexcept {
  return xsimd::bitwise_cast<ibatch<A>>(v);
}
template <class A>
fbatch<A> fbits(ibatch<A> v) noexcept {
  return xsimd::bitwise_cast<fbatch<A>>(v);
}

// Special-value rules (scalar). Returns true and sets out when one applies.
constexpr bool special_case(std::uint32_t ua, std::uint32_t ub, std::uint32_t& out) noexcept {
  const std::uint32_t s = (ua ^ ub) & sign_bit;
  const std::uint32_t aa = ua & abs_mask, ab = ub & abs_mask;
  const bool za = aa < 0x00800000u, zb = ab < 0x00800000u;  // zero or denormal
  const bool ia = aa >= exp_mask, ib = ab >= exp_mask;       // Inf or NaN
  if (aa > exp_mask || ab > exp_mask || ((ia || ib) && (za || zb))) {
    out = s | qnan_bits;
    return true;
  }
  if (ia || ib) {
    out = s | exp_mask;
    return true;
  }
  if (za || zb) {
    out = s;
    return true;
  }
  return false;
}

// Special-value rules (SIMD): overrides res where a rule applies.
template <class A>
ibatch<A> apply_special_cases(ibatch<A> ua, ibatch<A> ub, ibatch<A> res) noexcept {
  using I = ibatch<A>;
  const I s = (ua ^ ub) & I(std::int32_t(sign_bit));
  const I aa = ua & I(std::int32_t(abs_mask)), ab = ub & I(std::int32_t(abs_mask));
  const I min_normal = I(0x00800000), inf = I(std::int32_t(exp_mask));
  const auto zero = (aa < min_normal) || (ab < min_normal);
  const auto infinite = (aa >= inf) || (ab >= inf);
  const auto nan = (aa > inf) || (ab > inf) || (infinite && zero);
  res = lanes::select(zero, s, res);
  res = lanes::select(infinite, s | inf, res);
  return lanes::select(nan, s | I(std::int32_t(qnan_bits)), res);
}

// +-r * 2^e_sum with the range rules, where e_sum = (biased ea) + (biased eb) - 254 and r >= 0.
constexpr std::uint32_t rescale(std::uint32_t s, float r, std::int32_t e_sum) noexcept {
  const std::uint32_t ur = bits(r) & abs_mask;
  const std::int32_t er = std::int32_t(ur >> 23);
  if (er == 255) return s | qnan_bits;
  const std::int32_t e = er + e_sum;
  if (er == 0 || e <= 0) return s;
  if (e >= 255) return s | exp_mask;
  return s | (ur + (std::uint32_t(e_sum) << 23));
}

template <class A>
ibatch<A> rescale(ibatch<A> s, fbatch<A> r, ibatch<A> e_sum) noexcept {
  using I = ibatch<A>;
  const I ur = ibits(r) & I(std::int32_t(abs_mask));
  const I er = ur >> 23;
  const I e = er + e_sum;
  I res = s | (ur + (e_sum << 23));
  res = lanes::select((er == I(0)) || (e <= I(0)), s, res);
  res = lanes::select(e >= I(255), s | I(std::int32_t(exp_mask)), res);
  return lanes::select(er == I(255), s | I(std::int32_t(qnan_bits)), res);
}

// The significand-policy product: Core::core(x, y) with x, y in [1, 2) the operands' significands
// (full 23-bit mantissas; the core truncates or rounds them as its definition says). A core whose
// result always lies in [1, 4.5) says so with `bounded() == true`, which enables the SIMD common case below.
template <class Core>
float significand_mul(float a, float b) noexcept {
  const std::uint32_t ua = bits(a), ub = bits(b);
  std::uint32_t out = 0;
  if (special_case(ua, ub, out)) return from_bits(out);
  const float x = from_bits(one_bits | (ua & man_mask)), y = from_bits(one_bits | (ub & man_mask));
  const std::int32_t e_sum = std::int32_t((ua >> 23) & 0xffu) + std::int32_t((ub >> 23) & 0xffu) - 254;
  return from_bits(rescale((ua ^ ub) & sign_bit, Core::core(x, y), e_sum));
}

// True in lanes whose operands are both normal (biased exponents 1..254): no special-value rule applies.
template <class A>
auto normal_operands(ibatch<A> ea, ibatch<A> eb) noexcept {
  using I = ibatch<A>;
  return (xsimd::min(ea, eb) >= I(1)) && (xsimd::max(ea, eb) <= I(254));
}

template <class Core, class A>
fbatch<A> significand_mul(fbatch<A> a, fbatch<A> b) noexcept {
  using I = ibatch<A>;
  const I ua = ibits(a), ub = ibits(b);
  const I man = I(std::int32_t(man_mask)), one = I(std::int32_t(one_bits));
  const fbatch<A> x = fbits<A>(one | (ua & man)), y = fbits<A>(one | (ub & man));
  const I ea = (ua >> 23) & I(0xff), eb = (ub >> 23) & I(0xff);
  const I e_sum = ea + eb - I(254);
  const I s = (ua ^ ub) & I(std::int32_t(sign_bit));
  const fbatch<A> r = Core::core(x, y);
  if (Core::bounded()) {
    // Common case: r in [1, 4.5) has biased exponent 127 or 128, so with |e_sum| <= 125 every lane's
    // result exponent is in 2..253 and the rescale is one add; no rule of policy.hpp can apply.
    const auto plain = normal_operands<A>(ea, eb) && (e_sum >= I(-125)) && (e_sum <= I(125));
    if (xsimd::all(plain)) return fbits<A>(s | (ibits(r) + (e_sum << 23)));
  }
  return fbits<A>(apply_special_cases<A>(ua, ub, rescale<A>(s, r, e_sum)));
}

// The significand core of a multiplier that reduces each operand on its own (Operand::reduce, a float and
// an xsimd::batch form that agree bit for bit) and multiplies the reduced significands in fp32 (drum,
// truncated). Operand also says bounded().
template <class Operand>
struct reduced_product : Operand {
  static float core(float x, float y) noexcept { return Operand::reduce(x) * Operand::reduce(y); }
  template <class A>
  static fbatch<A> core(fbatch<A> x, fbatch<A> y) noexcept {
    return Operand::template reduce<A>(x) * Operand::template reduce<A>(y);
  }
};

// Shared by the significand policies: the scalar and SIMD entry points.
template <class Core>
struct significand_policy {
  static float mul(float a, float b) noexcept { return significand_mul<Core>(a, b); }
  template <class A>
  static fbatch<A> mul(fbatch<A> a, fbatch<A> b) noexcept {
    return significand_mul<Core, A>(a, b);
  }
};

}  // namespace detail
}  // namespace tpp::approx
