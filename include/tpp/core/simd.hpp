#pragma once
// The SIMD substrate: xsimd batches at the compile-time arch (xsimd::default_arch), and the lane type the
// ops compute on. What the ops do with lanes is core/lanes.hpp.
//
// TPP_NO_SIMD (CMake: TPP_SIMD=OFF) makes the ops take their scalar loops; the policies' SIMD `mul` is
// still defined for every xsimd arch, so it is tested in every build.

#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "types.hpp"

namespace tpp::simd {

#if defined(TPP_NO_SIMD)
inline constexpr bool enabled = false;
#else
inline constexpr bool enabled = true;
#endif

using default_arch = xsimd::default_arch;

template <class T, class A = default_arch>
using batch = xsimd::batch<T, A>;

// The fp32 lane type the ops compute on: a batch at the compile-time arch, or float with TPP_NO_SIMD.
using lane = std::conditional_t<enabled, batch<float>, float>;

// Lanes of a float batch at arch A.
template <class A = default_arch>
inline constexpr index_t width = index_t(xsimd::batch<float, A>::size);

}  // namespace tpp::simd
