#pragma once
// approx::truncated<M>: the truncated-significand multiplier, 1 <= M <= 23: a floating-point multiplier
// whose significand datapath is narrowed to M fraction bits (Tong, Nagle, Rutenbar, "Reducing power by
// optimizing the necessary precision/range of floating-point arithmetic", IEEE Trans. VLSI Systems 8(3),
// 2000, which found most programs keep their output with half the mantissa bits and the multiplier's
// energy falling with them).
//
// Each operand keeps the top M bits of its mantissa (the lower ones truncated, as a narrower multiplier
// array ignores them); the two (M + 1)-bit significands multiply in fp32: exactly when 2 (M + 1) <= 24,
// else rounded to nearest even. For M <= 8 it equals lut<exact_model, M> bit for bit. The special-value and
// range rules of policy.hpp apply (zero and denormal operands give +-0, NaN and Inf as documented there,
// products above the range +-Inf, below the normal range +-0).
//
// GEMM (gemm_traits.hpp), M <= 11: the packed path. Truncation is per operand, so it is done while packing;
// the truncated operands then multiply exactly in fp32, so the step is one FMA:
// FMA(t(a), t(b), acc) == acc + truncated<M>::mul(a, b) bit for bit while products stay normal.

#include <string>

#include "../core/error.hpp"
#include "gemm_traits.hpp"
#include "policy.hpp"

namespace tpp::approx {
namespace detail {

// One operand: its top M mantissa bits.
template <int M>
struct truncated_operand {
  static_assert(M >= 1 && M <= 23, "tpp: truncated<M> needs 1 <= M <= 23 mantissa bits");
  static constexpr bool bounded() noexcept { return true; }  // r in [1, 4)

  static float reduce(float x) noexcept { return from_bits(bits(x) & keep_mask<M>); }
  template <class A>
  static fbatch<A> reduce(fbatch<A> x) noexcept {
    return fbits<A>(ibits(x) & ibatch<A>(std::int32_t(keep_mask<M>)));
  }
};

}  // namespace detail

template <int M>
struct truncated : detail::significand_policy<detail::reduced_product<detail::truncated_operand<M>>> {
  static std::string name() { return tpp::detail::concat("truncated<", std::to_string(M), ">"); }
  // Truncating a significand in [1, 2) to M fraction bits lowers it by less than 2^-M, so by less than a
  // factor 1 - 2^-M; the product of the truncated significands is exact (2 (M + 1) <= 24) or rounded once
  // (2^-24 either way): at most 1 - (1 - 2^-M)^2 (1 - 2^-24) below the product, and at most 2^-24 above.
  static constexpr double max_rel_error = detail::truncated_bound(2 * (M + 1) <= 24 ? 0.0 : 0x1p-24, M);
};

template <int M>
  requires(M <= 11)
struct gemm_traits<truncated<M>> : reduced_operand_traits<detail::truncated_operand<M>> {};

}  // namespace tpp::approx
