#pragma once
// approx::approx8<Model>: an 8-bit integer approximate multiplier for quantized inference, in the form
// EvoApproxLib publishes its circuits:
//   unsigned: static std::uint16_t Model::mul(std::uint8_t a, std::uint8_t b)   (a "mul8u_*" circuit)
//   signed:   static std::int16_t  Model::mul(std::int8_t a, std::int8_t b)     (a "mul8s_*" circuit)
// (the signedness is read off the return type). The whole behaviour is one 256 x 256 table of int32,
// built once on first use, thread-safely, shared by every user of the same Model:
//   table[(a & 0xff) << 8 | (b & 0xff)] = Model::mul(a, b)
// Scalar mul(a, b) reads one entry; SIMD mul over int32 lanes holding operand values gathers
// (vpgatherdd on AVX2/AVX-512). Built-in models: exact8u, exact8s, mitchell8u (integer Mitchell).
//
// GEMM: an int8_multiplier (gemm_traits.hpp): the integer GEMM builds per-sliver tables of its products
// from table() (ops/gemm/int8_table.hpp).

#include <bit>
#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "gemm_traits.hpp"
#include "lut.hpp"

namespace tpp::approx {

template <class M>
concept int8_model = requires(std::uint8_t ua, std::int8_t sa) {
  requires std::same_as<decltype(M::mul(ua, ua)), std::uint16_t> ||
               std::same_as<decltype(M::mul(sa, sa)), std::int16_t>;
};

template <int8_model Model>
struct approx8 {
  static constexpr bool is_signed = std::is_same_v<decltype(Model::mul(std::int8_t{}, std::int8_t{})), std::int16_t>;
  using operand_type = std::conditional_t<is_signed, std::int8_t, std::uint8_t>;

  static const std::vector<std::int32_t>& table() noexcept {
    static const std::vector<std::int32_t> t = [] {
      std::vector<std::int32_t> v(256 * 256);
      for (int a = 0; a < 256; ++a)
        for (int b = 0; b < 256; ++b)
          v[std::size_t(a) * 256 + b] = std::int32_t(Model::mul(operand_type(a), operand_type(b)));
      return v;
    }();
    return t;
  }

  static std::int32_t mul(operand_type a, operand_type b) noexcept {
    return table()[std::size_t(std::uint8_t(a)) << 8 | std::uint8_t(b)];
  }

  // a, b: int32 lanes holding operand values (only their low 8 bits are used).
  template <class A>
  static xsimd::batch<std::int32_t, A> mul(xsimd::batch<std::int32_t, A> a, xsimd::batch<std::int32_t, A> b) noexcept {
    using I = xsimd::batch<std::int32_t, A>;
    const I idx = ((a & I(0xff)) << 8) | (b & I(0xff));
    return arch::gather<A>(table().data(), idx);
  }

  static std::string name() { return tpp::detail::concat("approx8<", detail::model_name<Model>(), ">"); }
};

// Exact 8-bit products (references).
struct exact8u {
  static std::uint16_t mul(std::uint8_t a, std::uint8_t b) noexcept { return std::uint16_t(unsigned(a) * unsigned(b)); }
  static std::string name() { return "exact8u"; }
};
struct exact8s {
  static std::int16_t mul(std::int8_t a, std::int8_t b) noexcept { return std::int16_t(int(a) * int(b)); }
  static std::string name() { return "exact8s"; }
};

// Mitchell's logarithmic multiplier on unsigned 8-bit integers: with a = 2^ka (1 + fa), b = 2^kb (1 + fb),
// the product is 2^(ka+kb) (1 + fa + fb) when fa + fb < 1, else 2^(ka+kb+1) (fa + fb), truncated to an
// integer; zero when either operand is zero. Fractions are kept in 7-bit fixed point (exact for 8 bits).
struct mitchell8u {
  static std::uint16_t mul(std::uint8_t a, std::uint8_t b) noexcept {
    if (a == 0 || b == 0) return 0;
    const int ka = std::bit_width(unsigned(a)) - 1, kb = std::bit_width(unsigned(b)) - 1;
    const unsigned fa = (unsigned(a) - (1u << ka)) << (7 - ka), fb = (unsigned(b) - (1u << kb)) << (7 - kb);
    const unsigned f = fa + fb;  // fraction sum in units of 2^-7
    const unsigned m = f < 128u ? 128u + f : 2u * f;  // significand in units of 2^-7, times 2^(ka+kb)
    return std::uint16_t((m << (ka + kb)) >> 7);
  }
  static std::string name() { return "mitchell8u"; }
};

}  // namespace tpp::approx
