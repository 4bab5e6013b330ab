#pragma once
// Built-in scalar models of significand multipliers, for lut<Model, M> and direct<Model>. A model is any
// struct with `static float mul(float x, float y)` for significands x, y in [1, 2); optionally
// `static std::string name()` and `static constexpr double max_rel_error` (its bound vs x * y).

#include <string>

#include "policy.hpp"

namespace tpp::approx {

// x * y in fp32 (exact for the <= 8-bit significands lut tables use).
struct exact_model {
  static float mul(float x, float y) noexcept { return x * y; }
  static std::string name() { return "exact"; }
  static constexpr double max_rel_error = 0x1p-24;
};

// Mitchell's logarithmic product of two significands: lut<mitchell_model, M> equals mitchell<M> bit for bit.
struct mitchell_model {
  static float mul(float x, float y) noexcept {
    return detail::from_bits(detail::bits(x) + detail::bits(y) - detail::one_bits);
  }
  static std::string name() { return "mitchell"; }
  static constexpr double max_rel_error = 1.0 / 9.0;
};

}  // namespace tpp::approx
