// Tests of ops/sparse/csr.hpp: malformed CSR operands throw tpp::error naming the op and argument.

#include <utility>
#include <vector>

#include <tpp/ops/sparse/csr.hpp>
#include <tpp/ops/sparse/product.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE("sparse: malformed CSR throws tpp::error naming the op and argument") {
  std::vector<float> d(64, 1.0f), b(64, 1.0f), c(64);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  const csr_matrix s = prune_to_csr(A, prune_params::by_sparsity(0.5));
  auto bad = s;
  bad.row_ptr[2] = bad.row_ptr[1] - 1;
  CHECK_THROWS_WITH_AS(sparse_dense(bad, view(b.data(), 8, 2), view(c.data(), 4, 2)),
                       doctest::Contains("S.row_ptr decreases at row 1"), error);
  bad = s;
  bad.col[0] = 8;
  CHECK_THROWS_WITH_AS(sparse_kernel<>{bad}, doctest::Contains("S.col [0] = 8 is outside [0, 8)"), error);
  bad = s;
  std::swap(bad.col[0], bad.col[1]);
  CHECK_THROWS_WITH_AS(to_dense(bad, view(c.data(), 4, 8)), doctest::Contains("not strictly ascending in row 0"), error);
  bad = s;
  bad.row_ptr.pop_back();
  CHECK_THROWS_WITH_AS(sparse_kernel<>{bad}, doctest::Contains("S.row_ptr has 4 elements (expected 5)"), error);
  bad = s;
  bad.val.pop_back();
  CHECK_THROWS_WITH_AS(sparse_kernel<>{bad}, doctest::Contains("S.val has"), error);
  bad = s;
  bad.row_ptr[0] = 1;
  CHECK_THROWS_WITH_AS(sparse_kernel<>{bad}, doctest::Contains("[0] is 1, not 0"), error);
  bad = s;
  bad.rows = -1;
  CHECK_THROWS_WITH_AS(sparse_kernel<>{bad}, doctest::Contains("S.rows is negative"), error);
}
