// Tests of ops/sparse/bcsr.hpp: a malformed BCSR operand throws tpp::error naming the op and argument. (Its products:
// product.cpp and panels.cpp; its pruning: prune.cpp.)

#include <vector>

#include <tpp/ops/sparse/bcsr.hpp>
#include <tpp/ops/sparse/product.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE("sparse: malformed BCSR throws tpp::error naming the op and argument") {
  using bcsr_kernel = sparse_kernel<approx::exact, bcsr_matrix>;
  std::vector<float> d(64, 1.0f);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  bcsr_matrix bs = prune_to_bcsr(A, {2, 2}, prune_params::by_sparsity(0.5));
  bs.block = {3, 2};
  CHECK_THROWS_WITH_AS(bcsr_kernel{bs}, doctest::Contains("S.block (3x2) does not divide"), error);
}
