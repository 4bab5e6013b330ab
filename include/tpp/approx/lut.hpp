#pragma once
// approx::lut<Model, M>: AMSim (ApproxTrain, Gong et al. 2023), generalised. A table of Model::mul over
// every pair of M-bit mantissas, 1 <= M <= 8:
//
//   table[i][j] = Model::mul(1 + i 2^-M, 1 + j 2^-M)        (the model's whole fp32 result)
//   mul(a, b)   = +-table[ma][mb] * 2^(ea + eb)              ma, mb = the top M mantissa bits of a, b
//
// rescaled exactly, with the special-value and range rules of policy.hpp. The table is built once, on
// first use, thread-safely (a function-local static), and shared by every user of the same <Model, M>.
// A model must return a finite value >= 0 for significands in [1, 2) and must not throw; an entry that
// violates this is stored as NaN (so products show it) and validate() reports it as tpp::error.
//
// SIMD: the table index is built in registers and the entries gathered (vgatherdps on AVX2/AVX-512);
// the model is never called on the SIMD path.
//
// GEMM (gemm_traits.hpp): the table path. mul(a, b) = +-T[ma][mb] 2^(Ea + Eb), so a GEMM builds, per B
// sliver, the products of every table row with B's entries (signs and exponents folded in) and then needs
// one load and one FMA per product (ops/gemm/table.hpp): exact while every product and table entry is a
// normal number and the table is bounded (entries in [1, 4.5): carry 2).

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../arch/gather.hpp"
#include "../core/error.hpp"
#include "gemm_traits.hpp"
#include "policy.hpp"

namespace tpp::approx {
namespace detail {

template <class Model>
std::string model_name() {
  if constexpr (requires { Model::name(); })
    return std::string(Model::name());
  else
    return "model";
}

template <class Model>
constexpr double model_error() {
  if constexpr (requires { Model::max_rel_error; })
    return Model::max_rel_error;
  else
    return std::numeric_limits<double>::infinity();  // unknown
}

template <scalar_model Model, int M>
struct lut_core {
  static_assert(M >= 1 && M <= 8, "tpp: lut<Model, M> needs 1 <= M <= 8 mantissa bits");
  static constexpr int side = 1 << M;
  static constexpr int shift = 23 - M;

  static float significand(int i) noexcept { return from_bits(one_bits | (std::uint32_t(i) << shift)); }

  // The table, and whether every entry lies in [1, 4.5) (then the SIMD common case of policy.hpp applies).
  struct table_data {
    std::vector<float> v;
    bool bounded;
    int first_bad;  // index of the first entry the model answered badly, or -1
  };
  static const table_data& data() noexcept {
    static const table_data t = [] {
      std::vector<float> v(std::size_t(side) * side);
      for (int i = 0; i < side; ++i)
        for (int j = 0; j < side; ++j) {
          const float r = float(Model::mul(significand(i), significand(j)));
          v[std::size_t(i) * side + j] = (r >= 0.0f && r <= std::numeric_limits<float>::max())
                                             ? r
                                             : std::numeric_limits<float>::quiet_NaN();
        }
      bool bounded = true;
      int first_bad = -1;
      for (std::size_t i = 0; i < v.size(); ++i) {
        bounded = bounded && v[i] >= 1.0f && v[i] < 4.5f;
        if (first_bad < 0 && std::isnan(v[i])) first_bad = int(i);
      }
      return table_data{std::move(v), bounded, first_bad};
    }();
    return t;
  }
  static const std::vector<float>& table() noexcept { return data().v; }
  static bool bounded() noexcept { return data().bounded; }

  static float core(float x, float y) noexcept {
    const std::uint32_t i = (bits(x) & man_mask) >> shift, j = (bits(y) & man_mask) >> shift;
    return table()[(i << M) | j];
  }
  template <class A>
  static fbatch<A> core(fbatch<A> x, fbatch<A> y) noexcept {
    using I = ibatch<A>;
    const I man = I(std::int32_t(man_mask));
    const I idx = (((ibits(x) & man) >> shift) << M) | ((ibits(y) & man) >> shift);
    return arch::gather<A>(table().data(), idx);
  }
};

}  // namespace detail

template <scalar_model Model, int M>
struct lut : detail::significand_policy<detail::lut_core<Model, M>> {
  using core_type = detail::lut_core<Model, M>;

  static std::string name() { return tpp::detail::concat("lut<", detail::model_name<Model>(), ",", std::to_string(M), ">"); }
  // The model's own bound, plus the truncation of both operands to M bits (which can only lower them).
  static constexpr double max_rel_error = detail::truncated_bound(detail::model_error<Model>(), M);

  // The table, row-major (2^M, 2^M).
  static const float* table() noexcept { return core_type::table().data(); }

  // Throws tpp::error naming the first significand pair the model answered badly (found once, when the
  // table is built: this is cheap to call per op).
  static void validate() {
    const int bad = core_type::data().first_bad;
    if (bad >= 0) [[unlikely]]
      throw error(name(), "Model::mul",
                  tpp::detail::concat("returned a negative, infinite or NaN value for (",
                                      std::to_string(core_type::significand(bad / core_type::side)), ", ",
                                      std::to_string(core_type::significand(bad % core_type::side)), ")"));
  }
};

template <scalar_model Model, int M>
struct gemm_traits<lut<Model, M>> {
  static constexpr gemm_path path = gemm_path::table;
  static constexpr int rows = 1 << M;  // the table is rows x rows
  static constexpr int shift = 23 - M;  // an operand's row or column: its mantissa >> shift
  static constexpr int carry = 2;       // entries below 4.5: a product's exponent is at most Ea + Eb + 2
  static constexpr int low_margin = 0;
  static const float* table() noexcept { return lut<Model, M>::table(); }
  static bool bounded() noexcept { return lut<Model, M>::core_type::bounded(); }
};

}  // namespace tpp::approx
