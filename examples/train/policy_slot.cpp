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

// Which registered multipliers get a trainer (CMake's TPP_TRAIN_POLICIES): all, or the main job's five
// (demo), or one of each kind of product for quick test builds (sample).
template <class P>
constexpr bool wanted() {
  using namespace tpp::approx;
#if TPP_TRAIN_SAMPLE
  return std::is_same_v<P, exact> || std::is_same_v<P, bf16_rz> || std::is_same_v<P, mitchell<7>>;
#elif TPP_TRAIN_DEMO
  return std::is_same_v<P, exact> || std::is_same_v<P, bf16_rz> || std::is_same_v<P, mitchell<7>> ||
         std::is_same_v<P, mbm<7>> || std::is_same_v<P, drum<6>>;
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
