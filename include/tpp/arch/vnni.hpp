#pragma once
// VNNI-G row groups: G rows of n elements interleaved into one packed row of G n, o[G j + g] = x[g][j]
// (the G values of one column that a dot-product instruction consumes together, adjacent), and back.
//   vnni_pack<G, A>(x, o, n)    x[g] == nullptr: a zero row (the padding of a last group)
//   vnni_unpack<G, A>(p, y, n)  y[g] == nullptr: that row is not written
// At xsimd arch A, W columns a step: each row's words widened to 32-bit lanes (convert.hpp: 16 -> 32 bits
// for G = 2, 8 -> 32 for G = 4), shifted to their place in the lane and or-ed; the unpack shifts each back
// down and stores it narrowed.
// The columns past the last full vector go through the scalar twins, vnni_pack_scalar<G> and
// vnni_unpack_scalar<G> (the element loops), which the tests hold the whole rows to, bit for bit.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "convert.hpp"

namespace tpp::arch {

// The word a VNNI-G element is moved as: 16 bits for G = 2, 8 bits for G = 4.
template <int G>
using vnni_word = std::conditional_t<G == 2, std::uint16_t, std::uint8_t>;

template <int G, class U>
void vnni_pack_scalar(const U* const* x, U* o, std::ptrdiff_t n) noexcept {
  for (std::ptrdiff_t j = 0; j < n; ++j)
    for (int g = 0; g < G; ++g) o[G * j + g] = x[g] ? x[g][j] : U{};
}

template <int G, class U>
void vnni_unpack_scalar(const U* p, U* const* y, std::ptrdiff_t n) noexcept {
  for (std::ptrdiff_t j = 0; j < n; ++j)
    for (int g = 0; g < G; ++g)
      if (y[g]) y[g][j] = p[G * j + g];
}

// A row's W words at r as the low bits of W 32-bit lanes, and back (the low bits of each lane to W words).
template <int G, class A>
xsimd::batch<std::uint32_t, A> vnni_words(const vnni_word<G>* r) noexcept {
  using u32 = xsimd::batch<std::uint32_t, A>;
  if constexpr (G == 2)
    return xsimd::bitwise_cast<u32>(widen_bf16<A>(r)) >> 16;
  else
    return xsimd::bitwise_cast<u32>(widen_int<A>(r));
}

template <int G, class A>
void store_vnni_words(vnni_word<G>* r, xsimd::batch<std::uint32_t, A> v) noexcept {
  if constexpr (G == 2)
    store_high_halves<A>(r, v << 16);
  else
    store_narrowed<A>(r, xsimd::bitwise_cast<xsimd::batch<std::int32_t, A>>(v & xsimd::batch<std::uint32_t, A>(0xffu)));
}

template <int G, class A>
void vnni_pack(const vnni_word<G>* const* x, vnni_word<G>* o, std::ptrdiff_t n) noexcept {
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit) or 4 (8-bit)");
  using U = vnni_word<G>;
  using u32 = xsimd::batch<std::uint32_t, A>;
  constexpr std::ptrdiff_t W = std::ptrdiff_t(u32::size);
  auto* o32 = reinterpret_cast<std::uint32_t*>(o);  // stored through vector intrinsics (may alias)
  std::ptrdiff_t j = 0;
  for (; j + W <= n; j += W) {
    u32 v(0u);
    for (int g = 0; g < G; ++g)
      if (x[g]) v = v | (vnni_words<G, A>(x[g] + j) << (32 / G * g));  // row k + g in word g of each lane
    v.store_unaligned(o32 + j);
  }
  const U* rest[G];
  for (int g = 0; g < G; ++g) rest[g] = x[g] ? x[g] + j : nullptr;
  vnni_pack_scalar<G>(rest, o + G * j, n - j);
}

template <int G, class A>
void vnni_unpack(const vnni_word<G>* p, vnni_word<G>* const* y, std::ptrdiff_t n) noexcept {
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit) or 4 (8-bit)");
  using U = vnni_word<G>;
  using u32 = xsimd::batch<std::uint32_t, A>;
  constexpr std::ptrdiff_t W = std::ptrdiff_t(u32::size);
  const auto* p32 = reinterpret_cast<const std::uint32_t*>(p);
  std::ptrdiff_t j = 0;
  for (; j + W <= n; j += W) {
    const u32 v = u32::load_unaligned(p32 + j);
    for (int g = 0; g < G; ++g)
      if (y[g]) store_vnni_words<G, A>(y[g] + j, v >> (32 / G * g));
  }
  U* rest[G];
  for (int g = 0; g < G; ++g) rest[g] = y[g] ? y[g] + j : nullptr;
  vnni_unpack_scalar<G>(p + G * j, rest, n - j);
}

}  // namespace tpp::arch
