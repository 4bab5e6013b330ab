#pragma once
// The registry of built-in float multiply policies: the type lists consumed by the tests (every op's
// policy sweep), the benchmarks and the main program. Adding a multiplier = one header + one line here.
//
//   float_policies     the catalogue: every op's tests, the benchmarks, tpp_multipliers
//   policy_variants    more widths of the catalogue's templates, for the tests that sweep a family's
//                      parameter range (its ends, and where its GEMM path changes)
//   join_t<L1, L2>, filter_t<L, Pred>, tuple_t<L>   list arithmetic for tests (Pred<P>::value selects P;
//                      a std::tuple is what doctest's TEST_CASE_TEMPLATE_APPLY takes)

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
#include "truncated.hpp"

namespace tpp::approx {

using float_policies = type_list<exact,                      // IEEE fp32
                                 bf16_rz, bf16_rne,          // bf16 multipliers (AMSim "ACC" = rz)
                                 mitchell<7>, mitchell<23>,  // log multiplier, bf16-width and full mantissas
                                 mbm<7>,                     // minimally biased Mitchell
                                 drum<6>,                    // DRUM-6
                                 lut<mitchell_model, 7>,     // AMSim table (equals mitchell<7>)
                                 lut<exact_model, 4>,        // AMSim table of exact 5-bit significands
                                 truncated<7>>;              // bf16-width significands, full product

// drum<12> and truncated<11> are the widest with a packed GEMM path, drum<13> and truncated<12> the
// narrowest without one.
using policy_variants = type_list<mitchell<1>, mitchell<3>, mitchell<8>,  //
                                  mbm<2>, mbm<3>, mbm<23>,                //
                                  drum<2>, drum<4>, drum<12>, drum<13>, drum<16>, drum<24>,
                                  lut<mitchell_model, 1>, lut<exact_model, 8>, direct<mitchell_model>,
                                  truncated<1>, truncated<11>, truncated<12>, truncated<23>>;

namespace detail {
template <class... Ls>
struct join;
template <class... Ps>
struct join<type_list<Ps...>> {
  using type = type_list<Ps...>;
};
template <class... Ps, class... Qs, class... Ls>
struct join<type_list<Ps...>, type_list<Qs...>, Ls...> : join<type_list<Ps..., Qs...>, Ls...> {};

template <class L, template <class> class Pred>
struct filter;
template <template <class> class Pred>
struct filter<type_list<>, Pred> {
  using type = type_list<>;
};
template <class P, class... Ps, template <class> class Pred>
struct filter<type_list<P, Ps...>, Pred> {
  using rest = typename filter<type_list<Ps...>, Pred>::type;
  using type = std::conditional_t<Pred<P>::value, typename join<type_list<P>, rest>::type, rest>;
};

template <class L>
struct as_tuple;
template <class... Ps>
struct as_tuple<type_list<Ps...>> {
  using type = std::tuple<Ps...>;
};
}  // namespace detail

template <class... Ls>
using join_t = typename detail::join<Ls...>::type;
template <class L, template <class> class Pred>
using filter_t = typename detail::filter<L, Pred>::type;
template <class L>
using tuple_t = typename detail::as_tuple<L>::type;

// The catalogue as a std::tuple.
using float_policy_tuple = tuple_t<float_policies>;

}  // namespace tpp::approx
