#pragma once
// The policies an op's policy sweep instantiates its test with.
//
// Outside the GEMM an op treats its policy as a black box: it calls P::mul on lanes and scalars (and fuses
// exact's into an FMA where it can), whatever the multiplier. What a policy's mul does, at every xsimd arch
// the build can run, test/approx/policies.cpp holds to its scalar definition, for every policy and variant
// in every configuration. So the op sweeps are run with the whole catalogue in the native configuration
// and with a sample in the others (asan, avx2, generic, aarch64: CMake TPP_TEST_POLICIES=sample, which
// defines TPP_TEST_POLICY_SAMPLE), where each further policy would compile the same op code once more for
// no new coverage: one policy of each kind of multiply,
//   exact                      the hardware's (and the FMA fusions)
//   bf16_rne                   rounding of operands and product (bit masks)
//   mitchell<7>                log-domain arithmetic, with its own special-value handling
//   lut<mitchell_model, 7>     a table lookup (gathers)
// The GEMM's paths are policy code (each policy's traits declare its packing and step), so the GEMM tests
// sweep the whole catalogue in every configuration.

#include <tuple>
#include <type_traits>

#include <tpp/approx/registry.hpp>

namespace tpp::test {

namespace detail {
template <class P, class L>
struct in_list;
template <class P, class... Ps>
struct in_list<P, tpp::type_list<Ps...>> : std::bool_constant<(std::is_same_v<P, Ps> || ...)> {};
}  // namespace detail

#if TPP_TEST_POLICY_SAMPLE
inline constexpr bool policy_sample = true;
using op_policies = std::tuple<approx::exact, approx::bf16_rne, approx::mitchell<7>, approx::lut<approx::mitchell_model, 7>>;
#else
inline constexpr bool policy_sample = false;
using op_policies = approx::float_policy_tuple;
#endif

// The sample is taken from the catalogue: a policy renamed or dropped there fails here, not silently.
template <class... Ps>
constexpr bool from_catalogue(std::tuple<Ps...>*) {
  return (detail::in_list<Ps, approx::float_policies>::value && ...);
}
static_assert(from_catalogue(static_cast<op_policies*>(nullptr)), "tpp tests: op_policies must be registered policies");

}  // namespace tpp::test
