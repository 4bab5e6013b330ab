// The trainer of the run-time AMSim table (--lut FILE, or a .bin entry of --compare): approx::amsim, whose
// table main.cpp installs before training. Registered as "amsim" (main.cpp resolves files to it).

#include <tpp/approx/amsim.hpp>

#include "trainer.hpp"

namespace {
[[maybe_unused]] const bool registered =
    tpp_train::register_trainer("amsim", &tpp_train::train<tpp::approx::amsim>);
}  // namespace
