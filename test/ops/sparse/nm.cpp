// Tests of ops/sparse/nm.hpp: a malformed N:M operand throws tpp::error naming the op and argument. (Its products:
// product.cpp; its pruning: prune.cpp.)

#include <vector>

#include <tpp/ops/sparse/nm.hpp>
#include <tpp/ops/sparse/product.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE("sparse: malformed N:M throws tpp::error naming the op and argument") {
  using nm_kernel = sparse_kernel<approx::exact, nm_matrix>;
  std::vector<float> d(64, 1.0f);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  nm_matrix nm = prune_to_nm(A, 2, 4);
  nm.idx[1] = nm.idx[0];
  CHECK_THROWS_WITH_AS(nm_kernel{nm}, doctest::Contains("S.idx is not strictly ascending"), error);
  nm.idx[1] = 4;
  CHECK_THROWS_WITH_AS(nm_kernel{nm}, doctest::Contains("is not below m"), error);
}
