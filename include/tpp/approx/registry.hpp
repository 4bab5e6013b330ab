#pragma once
// The registry of built-in float multiply policies: one type list consumed by the tests (every op's
// policy sweep), the benchmarks and the main program. Adding a multiplier = one header + one line here.

#include <tuple>

#include "../core/types.hpp"
#include "exact.hpp"

namespace tpp::approx {

using float_policies = type_list<exact>;

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
