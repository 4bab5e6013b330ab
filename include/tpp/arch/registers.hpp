#pragma once
// What code generation needs to know of the register file, and the one compiler barrier tpp uses:
//   vector_registers        SIMD registers of the target: 32 (AVX-512, AArch64), 16 (AVX, SSE2)
//   half_arch<A>            the xsimd arch of a batch half as wide as A's (avx512 -> avx2 or avx,
//                           avx -> sse2), or void where there is none: for halving trees
//   x86<A>, fused_fma<A>    whether xsimd arch A is an x86 one (its max / min are maxps / minps, its
//                           comparisons IEEE), and whether its fma is one fused instruction (AVX-512,
//                           FMA3, FMA4, NEON64: xsimd::fma elsewhere is a * b + c, two roundings)
//   opaque(v)               keeps a loaded batch in a register: at AVX-512, GCC otherwise folds a load into
//                           the op consuming it, and when that op is masked (select(keep, x * s, 0) ->
//                           vmulps (mem), s, dst{k}{z}) the masked memory operand streams from DRAM at about
//                           half speed on Zen 4 (4096 x 4096 fp32 dropout: 2.1 -> 4.5 G elements/s with it).
//                           Elsewhere it does nothing (its scalar twin is the identity).

#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace tpp::arch {

#if defined(__AVX512F__) || defined(__aarch64__)
inline constexpr int vector_registers = 32;
#else
inline constexpr int vector_registers = 16;
#endif

namespace detail {
template <class A>
auto half_arch_of() {
  [[maybe_unused]] constexpr std::size_t W = xsimd::batch<float, A>::size;
#if defined(__AVX2__)
  if constexpr (W == 16) return xsimd::avx2{};
  else
#elif defined(__AVX__)
  if constexpr (W == 16) return xsimd::avx{};
  else
#endif
#if defined(__SSE2__)
  if constexpr (W == 8) return xsimd::sse2{};
  else
#endif
  return;
}
}  // namespace detail

template <class A>
using half_arch = decltype(detail::half_arch_of<A>());

template <class A>
inline constexpr bool x86 = std::is_base_of_v<xsimd::sse2, A> || std::is_base_of_v<xsimd::avx, A> ||
                            std::is_base_of_v<xsimd::avx512f, A>;

template <class A>
inline constexpr bool fused_fma = std::is_base_of_v<xsimd::avx512f, A> ||
                                  std::is_base_of_v<xsimd::fma3<xsimd::sse4_2>, A> ||
                                  std::is_base_of_v<xsimd::fma3<xsimd::avx>, A> ||
                                  std::is_base_of_v<xsimd::fma3<xsimd::avx2>, A> ||
                                  std::is_base_of_v<xsimd::fma4, A> || std::is_base_of_v<xsimd::neon64, A>;

template <class A>
void opaque([[maybe_unused]] xsimd::batch<float, A>& v) noexcept {
#if defined(__GNUC__) && defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) asm("" : "+v"(v.data));
#endif
}

}  // namespace tpp::arch
