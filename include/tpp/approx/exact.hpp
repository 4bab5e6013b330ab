#pragma once
// approx::exact: the IEEE fp32 product (round to nearest even, IEEE special values, denormals kept).
// As in IEEE 754, which NaN a product of two NaNs returns is unspecified (scalar and SIMD code may
// differ in payload and sign); every other result is bit-identical.
//
// GEMM (gemm_traits.hpp): the ieee path, one FMA per product on the stored operands (the product is not
// rounded before the add, as in every BLAS); exact dot instructions and backends may compute it.

#include <string>

#include "gemm_traits.hpp"
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
  static constexpr bool ieee = true;
};

template <>
struct gemm_traits<exact> {
  static constexpr gemm_path path = gemm_path::ieee;
  static constexpr int temporaries = 0;
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    return lanes::fma(a, b, acc);
  }
};

}  // namespace tpp::approx
