#pragma once
// Scaling by a power of two in one instruction, which xsimd 8.1 does not have:
//   scalef_instruction<A>  whether arch A has it (AVX-512F: vscalefps)
//   scalef<A>(x, n)        x 2^n for integer-valued lanes n, rounded once (to nearest even, with gradual
//                          underflow: exact wherever x 2^n is representable); NaN x comes back quiet, +-Inf
//                          and +-0 keep their signs. Elsewhere it is the scalar twin (ops scale by two
//                          factors there instead).
// Scalar twin scalef_scalar: lane by lane, the product in double (exact for float x and |n| <= 277: at most
// 2^405 and at least 2^-426) rounded to float once, the same bits.

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "twin.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <class A>
inline constexpr bool scalef_instruction =
#if defined(__AVX512F__)
    std::is_base_of_v<xsimd::avx512f, A>;
#else
    false;
#endif

template <class A>
xsimd::batch<float, A> scalef_scalar(xsimd::batch<float, A> x, xsimd::batch<float, A> n) noexcept {
  return lane_by_lane<A>([](float v, float e, float) { return float(double(v) * std::ldexp(1.0, int(e))); }, x, n);
}

template <class A>
xsimd::batch<float, A> scalef(xsimd::batch<float, A> x, xsimd::batch<float, A> n) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    return _mm512_scalef_ps(x, n);
  } else
#endif
  {
    return scalef_scalar<A>(x, n);
  }
}

}  // namespace tpp::arch
