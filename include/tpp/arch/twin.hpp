#pragma once
// The shape of most of arch/'s scalar twins: a float function applied lane by lane.
//   lane_by_lane<A>(f, a[, b[, c]])  the batch of f(a_i, b_i, c_i) (absent operands pass 0)

#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace tpp::arch {

template <class A, class F>
xsimd::batch<float, A> lane_by_lane(F f, xsimd::batch<float, A> a, xsimd::batch<float, A> b = {},
                                    xsimd::batch<float, A> c = {}) noexcept {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  alignas(64) float x[W], y[W], z[W];
  a.store_aligned(x), b.store_aligned(y), c.store_aligned(z);
  for (std::size_t i = 0; i < W; ++i) x[i] = f(x[i], y[i], z[i]);
  return xsimd::batch<float, A>::load_aligned(x);
}

}  // namespace tpp::arch
