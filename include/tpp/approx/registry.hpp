#pragma once
// The registry of built-in float multiply policies: one type list consumed by the tests (every op's
// policy sweep), the benchmarks and the main program. Adding a multiplier = one header + one line here.

#include <tuple>

#include "../core/types.hpp"
#include "approx8.hpp"
#include "bf16.hpp"
#include "direct.hpp"
#include "drum.hpp"
#include "exact.hpp"
#include "lut.hpp"
#include "mbm.hpp"
#include "mitchell.hpp"
#include "models.hpp"

namespace tpp::approx {

using float_policies = type_list<exact,                      // IEEE fp32
                                 bf16_rz, bf16_rne,          // bf16 multipliers (AMSim "ACC" = rz)
                                 mitchell<7>, mitchell<23>,  // log multiplier, bf16-width and full mantissas
                                 mbm<7>,                     // minimally biased Mitchell
                                 drum<6>,                    // DRUM-6
                                 lut<mitchell_model, 7>,     // AMSim table (equals mitchell<7>)
                                 lut<exact_model, 4>>;       // AMSim table of exact 5-bit significands

namespace detail {
template <class L>
struct as_tuple;
template <class... Ps>
struct as_tuple<type_list<Ps...>> {
  using type = std::tuple<Ps...>;
};
}  // namespace detail

// The same list as a std::tuple (what doctest's TEST_CASE_TEMPLATE_APPLY takes).
using float_policy_tuple = typename detail::as_tuple<float_policies>::type;

}  // namespace tpp::approx
