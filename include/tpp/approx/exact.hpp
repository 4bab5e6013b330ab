#pragma once
// approx::exact: the IEEE fp32 product (round to nearest even, IEEE special values, denormals kept).
// As in IEEE 754, which NaN a product of two NaNs returns is unspecified (scalar and SIMD code may
// differ in payload and sign); every other result is bit-identical.

#include <string>

#include "policy.hpp"

namespace tpp::approx {

struct exact {
  static float mul(float a, float b) noexcept { return a * b; }
  template <class A>
  static xsimd::batch<float, A> mul(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
    return a * b;
  }
  static std::string name() { return "exact"; }
  // Bound on |mul(a, b) - a*b| / |a*b| for normal operands and a normal result (see policy.hpp).
  static constexpr double max_rel_error = 0x1p-24;
};

}  // namespace tpp::approx
