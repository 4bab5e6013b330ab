// Tests of ops/sparse/panels.hpp, through the products: several k-panels (the last partial), B's block
// copied and read in place, widened panels, row chunks. (Tolerances: support.hpp.)

#include <tpp/ops/sparse/panels.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE_TEMPLATE("sparse: k-panel paths: several panels (the last partial), B packed and read in place, widened "
                   "panels, row chunks", P, approx::exact, approx::mitchell<7>) {
  // 1100 x 300 at 90%: three 128-column panels, rows in a chunk of 1024 (B's panel packed: about 102 entries
  // per column) and one of 76 (about 7.6: read in place); BCSR packs B's whole panel.
  const auto d = test::make<float>(1100 * 300, 31);
  const mat<const float> A{d.data(), 1100, 300, 300};
  const sparse_params p{1.0f, 0.5f, false};
  check_sparse_dense<P>(prune_to_csr(A, prune_params::by_sparsity(0.9)), 2 * simd::width<> + 3, 1, p, 32);
  check_sparse_dense<P>(prune_to_bcsr(A, {4, 4}, prune_params::by_sparsity(0.9)), 4 * simd::width<>, 0, p, 33);
  check_sparse_dense<P>(prune_to_codebook(A, prune_params::by_sparsity(0.9), codebook_params{64, 8}), 17, 0, {}, 34);
  check_dense_sparse<P>(prune_to_csr(A, prune_params::by_sparsity(0.9)), 70, 1, p, 35);
  // 40 x 2000 at 99.5%: 0.2 entries per column, so panels widen to 512 columns (4, the last partial).
  const auto e = test::make<float>(40 * 2000, 36);
  const csr_matrix sparse = prune_to_csr(mat<const float>{e.data(), 40, 2000, 2000}, prune_params::by_sparsity(0.995));
  check_sparse_dense<P>(sparse, 4 * simd::width<> + 1, 2, p, 37);
  check_dense_sparse<P>(sparse, 33, 0, p, 38);
}
