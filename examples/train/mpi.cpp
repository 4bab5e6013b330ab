// tpp_train's data parallelism over MPI (built when CMake finds Debian's libopenmpi-dev):
//   mpirun -np R tpp_train ...   every rank trains on B/R images of each global batch of B, one
//   MPI_Allreduce per step sums the gradients (and the loss) from one contiguous buffer, and only rank 0
//   evaluates, prints and writes files. Started without mpirun, it is one rank: the plain program.

#include <mpi.h>

#include <limits>
#include <memory>
#include <stdexcept>

#include "trainer.hpp"

namespace tpp_train {
namespace {

class mpi_world final : public communicator {
 public:
  mpi_world(int& argc, char**& argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  ~mpi_world() override { MPI_Finalize(); }
  mpi_world(const mpi_world&) = delete;
  mpi_world& operator=(const mpi_world&) = delete;

  void allreduce_sum(std::span<float> v) override {
    if (size == 1) return;
    if (v.size() > std::size_t(std::numeric_limits<int>::max()))
      throw std::invalid_argument("MPI_Allreduce: more than INT_MAX parameters");
    if (MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      throw std::runtime_error("MPI_Allreduce failed");
  }
};

}  // namespace

std::unique_ptr<communicator> make_world(int& argc, char**& argv) { return std::make_unique<mpi_world>(argc, argv); }

}  // namespace tpp_train
