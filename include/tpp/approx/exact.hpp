#pragma once
// approx::exact: the IEEE fp32 product (round to nearest even, IEEE special values, denormals kept).

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
};

}  // namespace tpp::approx
