#pragma once
// bf16: the 16-bit brain float (1 sign, 8 exponent, 7 mantissa bits): the upper half of an fp32.
// Conversions from float round to nearest even (to_bf16_rne) or toward zero (to_bf16_rz); a NaN stays a
// (quiet) NaN with its sign; infinities, zeros and denormals convert like any other value (no flushing).

#include <bit>
#include <cstdint>
#include <type_traits>

namespace tpp {

struct bf16 {
  std::uint16_t bits = 0;

  static constexpr bf16 from_bits(std::uint16_t b) noexcept { return bf16{b}; }
  friend constexpr bool operator==(bf16, bf16) = default;  // bitwise equality (NaN == same NaN)
};

constexpr float to_float(bf16 h) noexcept { return std::bit_cast<float>(std::uint32_t(h.bits) << 16); }
constexpr float to_float(float f) noexcept { return f; }

constexpr bf16 to_bf16_rne(float f) noexcept {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{std::uint16_t(u >> 16)};
}

constexpr bf16 to_bf16_rz(float f) noexcept {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x0040u)};
  return bf16{std::uint16_t(u >> 16)};
}

// Element conversion used by every op that stores its fp32 result: bf16 outputs round to nearest even.
template <class T>
constexpr T from_float(float f) noexcept {
  if constexpr (std::is_same_v<T, bf16>)
    return to_bf16_rne(f);
  else
    return f;
}

}  // namespace tpp
