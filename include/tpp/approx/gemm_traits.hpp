#pragma once
// What a GEMM may do with a policy's products besides acc += P::mul(a, b): the one interface through which
// ops/gemm reads a policy (it never names one), and the machinery the policies' GEMM traits share. A policy
// declares its traits in its own header, as a specialisation of gemm_traits<P> (CuTe's MMA_Traits beside
// the atom, CUTLASS's TransformA / TransformB); a policy without one takes the careful path.
//
//   path             gemm_path::careful  acc + P::mul(a, b) with the policy's SIMD mul, on the stored
//                                        operands (mul_step; the primary template)
//                    gemm_path::ieee     the products are IEEE fp32 products: step is one FMA on the stored
//                                        operands, and exact dot instructions (vdpbf16ps) or an exact
//                                        backend (LIBXSMM) may compute them
//                    gemm_path::packed   pack(x) transforms each operand while packing (O(n^2)), then step
//                                        runs on the packed values: bit for bit the policy's products while
//                                        no product leaves the normal range and no operand is NaN or Inf
//                                        (products_in_range on the panels' exponent ranges); a block pair
//                                        that fails takes the careful path
//                    gemm_path::table    per-sliver product tables (ops/gemm/table.hpp) from the policy's
//                                        table of significand products: table() (rows x rows floats, the
//                                        operands' top mantissa bits >> shift index it), bounded() (every
//                                        entry in [1, 4.5)), carry, low_margin
//   temporaries      (ieee, packed) SIMD registers the step needs besides the accumulators and the B
//                    vectors: the micro-tile is sized from it (ops/gemm/micro.hpp)
//   packed path:     pack(x); a_offset (subtracted from packed A's bit patterns once a block pair passes
//                    the range check); carry, low_margin (products_in_range); zero_specialised: false with
//                    step(acc, a, b), true with zero_step<a_zeros, b_zeros>, four steps for whether the A
//                    block and the B panel hold zeros (the lanes a zero touches add nothing)
//
// A step is a struct with static step(acc, a, b) over lanes V (float or an xsimd batch), and optionally
// prepare_a(x) / prepare_b(x): what it derives from each loaded operand once (per broadcast A value, per B
// vector) rather than once per product.
//
// int8_multiplier<P>: what the integer GEMM reads from an 8-bit multiplier (approx8.hpp): its operand type
// and its 256 x 256 product table.

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "../core/lanes.hpp"
#include "policy.hpp"

namespace tpp::approx {

enum class gemm_path { careful, ieee, packed, table };

// The careful step: acc + P::mul(a, b) (its SIMD mul needs about 8 registers).
template <class P>
struct mul_step {
  static constexpr int temporaries = 8;
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    return acc + P::mul(a, b);
  }
};

template <class P>
struct gemm_traits {
  static constexpr gemm_path path = gemm_path::careful;
};

// The step on stored (unpacked) operands: the policy's own on the ieee path (the FMA), else mul_step.
template <class P>
using stored_step = std::conditional_t<gemm_traits<P>::path == gemm_path::ieee, gemm_traits<P>, mul_step<P>>;

// The registers of the step P's micro-kernel runs on its main path (table paths: their careful step).
template <class P>
inline constexpr int step_temporaries = [] {
  if constexpr (gemm_traits<P>::path == gemm_path::ieee || gemm_traits<P>::path == gemm_path::packed)
    return gemm_traits<P>::temporaries;
  else
    return mul_step<P>::temporaries;
}();

// ---- what packed paths share ----------------------------------------------------------------------------

// g(x) for a normal x; zeros and denormals pack as signed zeros (the policies flush denormal operands),
// NaN and Inf as they are.
template <class G>
float pack_operand(float x, G&& g) noexcept {
  const std::uint32_t u = detail::bits(x), e = u & detail::exp_mask;
  if (e == 0) return detail::from_bits(u & detail::sign_bit);
  if (e == detail::exp_mask) return x;
  return g(x);
}

// The packed path of a reduced_product whose reduced significands multiply exactly in fp32 (at most 12
// bits each): packing reduces each operand, and the step is one FMA, bit for bit the policy's product
// while products stay normal (a product of two significands in [1, 2) is below 4: carry 1).
template <class Operand>
struct reduced_operand_traits {
  static constexpr gemm_path path = gemm_path::packed;
  static constexpr int temporaries = 0;
  static constexpr int carry = 1;
  static constexpr int low_margin = 0;
  static constexpr std::uint32_t a_offset = 0;
  static constexpr bool zero_specialised = false;
  static float pack(float x) noexcept {
    return pack_operand(x, [](float v) { return Operand::reduce(v); });
  }
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    return lanes::fma(a, b, acc);
  }
};

// The operands of a step: the packed values as loaded, or what its prepare_a / prepare_b derive from them.
template <class Step, class V>
auto step_a_operand(V x) noexcept {
  if constexpr (requires { Step::prepare_a(x); })
    return Step::prepare_a(x);
  else
    return x;
}
template <class Step, class V>
auto step_b_operand(V x) noexcept {
  if constexpr (requires { Step::prepare_b(x); })
    return Step::prepare_b(x);
  else
    return x;
}

// The integer sum of two packed patterns as a float, lane for lane.
template <class V>
V add_patterns(V a, V b) noexcept {
  return lanes::as_f32(lanes::as_u32(a) + lanes::as_u32(b));
}

// (x & mask) + add on the bit patterns of every lane.
template <class V>
V mask_pattern(V x, std::uint32_t mask, std::uint32_t add = 0) noexcept {
  using U = lanes::u32_of<V>;
  return lanes::as_f32((lanes::as_u32(x) & U(mask)) + U(add));
}

// The log-multiplier step (mitchell, mbm): acc + Product::value(a, b) of packed operands, whose patterns'
// integer sum is Mitchell's product; lanes that a zero operand touches (the A marker a_zero, or a B
// pattern +-0) add nothing when the block holds zeros (a_zeros, b_zeros). Product::bits(x) gives an
// operand's packed pattern.
template <class Product, std::uint32_t a_zero, bool a_zeros, bool b_zeros>
struct log_step {
  template <class V>
  static auto prepare_a(V x) noexcept {
    return step_a_operand<Product>(x);
  }
  template <class V>
  static auto prepare_b(V x) noexcept {
    return step_b_operand<Product>(x);
  }
  template <class V, class O>
  static V step(V acc, const O& a, const O& b) noexcept {
    if constexpr (std::is_same_v<V, float>) {
      const std::uint32_t ua = detail::bits(Product::bits(a)), ub = detail::bits(Product::bits(b));
      const bool dead = (a_zeros && ua == a_zero) || (b_zeros && (ub & detail::abs_mask) == 0);
      return dead ? acc : acc + Product::value(a, b);
    } else {
      using I = lanes::i32_of<V>;
      const V sum = acc + Product::value(a, b);
      if constexpr (!a_zeros && !b_zeros) {
        return sum;
      } else {
        const I ua = lanes::as_i32(Product::bits(a));
        const I abs_b = lanes::as_i32(Product::bits(b)) & I(std::int32_t(detail::abs_mask));
        if constexpr (a_zeros && b_zeros)
          return lanes::select(xsimd::bool_cast((ua != I(std::int32_t(a_zero))) && (abs_b != I(0))), sum, acc);
        else if constexpr (a_zeros)
          return lanes::select(xsimd::bool_cast(ua != I(std::int32_t(a_zero))), sum, acc);
        else
          return lanes::select(xsimd::bool_cast(abs_b != I(0)), sum, acc);
      }
    }
  }
};

// ---- range checks -----------------------------------------------------------------------------------------

// The biased exponents of a packed panel's nonzero values, whether it holds a NaN or Inf, and whether it
// holds a zero (padding excluded: padded lanes are never stored).
struct panel_range {
  int emin = 255, emax = 0;
  bool special = false, zeros = false;  // zeros: a zero (or flushed denormal) among the panel's values
  void add(float v) noexcept {
    const int e = int((detail::bits(v) >> 23) & 0xffu);
    if (e == 255) special = true;
    if (e == 0) zeros = true;
    if (e != 0 && e != 255) {
      emin = std::min(emin, e);
      emax = std::max(emax, e);
    }
  }
  bool empty() const noexcept { return emax == 0; }
};

// Every product of a value of one panel and one of the other stays in the normal range, with the traits'
// margins: carry (a product of two significands is below 2^carry) and low_margin (exponents below the
// product's that must be normal too: mbm's correction term).
template <class Traits>
bool products_in_range(const panel_range& a, const panel_range& b) noexcept {
  if (a.special || b.special) return false;
  if (a.empty() || b.empty()) return true;
  constexpr int low = Traits::low_margin;
  return a.emin - low >= 1 && a.emin + b.emin - 127 - low >= 1 && a.emax + b.emax - 127 + Traits::carry <= 254;
}

// ---- 8-bit integer multipliers ------------------------------------------------------------------------------

// What the integer GEMM reads: operand_type (uint8 or int8), mul of two operands as int32, and table(),
// the 256 x 256 products: table()[(a & 0xff) << 8 | (b & 0xff)] = mul(a, b).
template <class P>
concept int8_multiplier = requires(typename P::operand_type x) {
  requires std::same_as<typename P::operand_type, std::uint8_t> || std::same_as<typename P::operand_type, std::int8_t>;
  { P::mul(x, x) } -> std::same_as<std::int32_t>;
  { P::table().data() } -> std::convertible_to<const std::int32_t*>;
};

}  // namespace tpp::approx
