// tpp_train without MPI: always one process.

#include <memory>

#include "trainer.hpp"

namespace tpp_train {
std::unique_ptr<communicator> make_world(int&, char**&) { return nullptr; }
}  // namespace tpp_train
