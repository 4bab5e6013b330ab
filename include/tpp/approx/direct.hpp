#pragma once
// approx::direct<Model>: calls Model::mul on the full 24-bit significands of every product, with the
// special-value and range rules of policy.hpp: the reference for a model, and the slow path for models
// that no table captures. Its SIMD mul calls the model lane by lane (the one policy allowed to).

#include <limits>
#include <string>

#include "lut.hpp"

namespace tpp::approx {
namespace detail {

template <scalar_model Model>
struct direct_core {
  static constexpr bool bounded() noexcept { return false; }  // a model may return any value
  static float core(float x, float y) noexcept {
    const float r = float(Model::mul(x, y));
    return r >= 0.0f && r <= std::numeric_limits<float>::max() ? r : std::numeric_limits<float>::quiet_NaN();
  }
  template <class A>
  static fbatch<A> core(fbatch<A> x, fbatch<A> y) noexcept {
    constexpr std::size_t W = fbatch<A>::size;
    alignas(64) float xs[W], ys[W];
    x.store_aligned(xs);
    y.store_aligned(ys);
    for (std::size_t i = 0; i < W; ++i) xs[i] = core(xs[i], ys[i]);
    return fbatch<A>::load_aligned(xs);
  }
};

}  // namespace detail

template <scalar_model Model>
struct direct : detail::significand_policy<detail::direct_core<Model>> {
  static std::string name() { return tpp::detail::concat("direct<", detail::model_name<Model>(), ">"); }
  static constexpr double max_rel_error = detail::model_error<Model>();
};

}  // namespace tpp::approx
