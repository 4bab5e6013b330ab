#pragma once
// approx::drum<K>: the dynamic range unbiased multiplier (Hashemi, Bahar, Reda, "DRUM: a dynamic range
// unbiased multiplier for approximate applications", ICCAD 2015), floating-point form, 2 <= K <= 24.
//
// Each significand keeps its K most significant bits (the leading one and K-1 fraction bits); below
// K = 24 the lowest kept bit is then set to 1, which centres the truncation error around zero (each
// operand errs by less than one kept LSB, either way, with mean ~0). The two
// K-bit significands are multiplied in fp32 (exactly when 2K <= 24, else rounded to nearest even).
// The special-value and range rules of policy.hpp apply.
//
// GEMM (gemm_traits.hpp), K <= 12: the packed path. Packing reduces each operand to its K leading bits
// with the lowest set; the reduced operands multiply exactly in fp32 (2K <= 24), so the step is one FMA:
// FMA(g(a), g(b), acc) == acc + drum<K>::mul(a, b) bit for bit while products stay normal.

#include <string>

#include "../core/error.hpp"
#include "gemm_traits.hpp"
#include "policy.hpp"

namespace tpp::approx {
namespace detail {

// One operand: its K leading significand bits, the lowest of them set.
template <int K>
struct drum_operand {
  static_assert(K >= 2 && K <= 24, "tpp: drum<K> needs 2 <= K <= 24 significant bits");
  static constexpr bool bounded() noexcept { return true; }  // r in [1, 4.5)
  static constexpr std::uint32_t keep = keep_mask<K - 1>;
  static constexpr std::uint32_t lsb = K < 24 ? std::uint32_t(1) << (24 - K) : 0u;

  static float reduce(float x) noexcept { return from_bits((bits(x) & keep) | lsb); }
  template <class A>
  static fbatch<A> reduce(fbatch<A> x) noexcept {
    using I = ibatch<A>;
    return fbits<A>((ibits(x) & I(std::int32_t(keep))) | I(std::int32_t(lsb)));
  }
};

}  // namespace detail

template <int K>
struct drum : detail::significand_policy<detail::reduced_product<detail::drum_operand<K>>> {
  static std::string name() { return tpp::detail::concat("drum<", std::to_string(K), ">"); }
  // Setting the kept LSB moves an operand by less than one kept LSB, 2^-(K-1) of a significand >= 1
  // (down when that bit was already set, up when it was clear): (1 + 2^-(K-1))^2 - 1, plus one fp32
  // rounding when 2K > 24.
  static constexpr double max_rel_error =
      (1.0 + 2.0 / double(1u << K)) * (1.0 + 2.0 / double(1u << K)) - 1.0 + (2 * K > 24 ? 0x1p-24 : 0.0);
};

template <int K>
  requires(K <= 12)
struct gemm_traits<drum<K>> : reduced_operand_traits<detail::drum_operand<K>> {};

}  // namespace tpp::approx
