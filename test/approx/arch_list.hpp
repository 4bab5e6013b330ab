#pragma once
// The xsimd archs this build can run, for tests that check every SIMD path at once: a native build on
// Zen 4 runs avx512bw, avx2 (fma3) and sse2; an AVX2 build avx2 and sse2; a generic build sse2.

#include <xsimd/xsimd.hpp>

namespace tpp::test {

template <class F>
void for_each_arch(F&& f) {
#if defined(__AVX512BW__)
  f(xsimd::avx512bw{});
#endif
#if defined(__AVX2__) && defined(__FMA__)
  f(xsimd::fma3<xsimd::avx2>{});
#endif
#if defined(__SSE2__)
  f(xsimd::sse2{});
#endif
#if defined(__ARM_NEON) && defined(__aarch64__)
  f(xsimd::neon64{});
#endif
}

}  // namespace tpp::test
