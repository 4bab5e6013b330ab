// One multiplier's trainer. The build compiles this file once per slot of approx::float_policies, with
// -DTPP_TRAIN_SLOT=I, so each policy's layers are instantiated in a translation unit of their own (built in
// parallel; main.cpp instantiates none). A slot past the end of the registry compiles to nothing, so
// adding a multiplier to the registry needs no change here while slots remain (main.cpp checks that).

#include <cstddef>
#include <tuple>
#include <type_traits>

#include "trainer.hpp"

#ifndef TPP_TRAIN_SLOT
#error "tpp_train: compile policy_slot.cpp with -DTPP_TRAIN_SLOT=<index into approx::float_policies>"
#endif

namespace {

using policies = tpp::approx::tuple_t<tpp::approx::float_policies>;

// Quick test builds (TPP_TRAIN_POLICIES=sample) keep one multiplier of each kind of product.
template <class P>
constexpr bool wanted() {
#if TPP_TRAIN_SAMPLE
  using namespace tpp::approx;
  return std::is_same_v<P, exact> || std::is_same_v<P, bf16_rz> || std::is_same_v<P, mitchell<7>>;
#else
  return true;
#endif
}

template <std::size_t I>
bool register_slot() {
  if constexpr (I < std::tuple_size_v<policies>) {
    using P = std::tuple_element_t<I, policies>;
    if constexpr (wanted<P>()) return tpp_train::register_trainer(P::name(), &tpp_train::train<P>);
  }
  return false;
}

[[maybe_unused]] const bool registered = register_slot<TPP_TRAIN_SLOT>();

}  // namespace
