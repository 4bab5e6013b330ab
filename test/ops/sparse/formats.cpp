// Tests of ops/sparse/formats.hpp: dense -> format -> dense round trips through to_dense; to_dense's
// output checked against the format's arrays.

#include <random>
#include <vector>

#include <tpp/ops/sparse/formats.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;
using test::bits;

}  // namespace

TEST_CASE("sparse: round trips dense -> format -> dense are exact (threshold 0, padded ld, -0 becomes +0)") {
  std::mt19937 g(2);
  const index_t rows = 16, cols = 24, ld = 27;
  std::vector<float> d(std::size_t(rows * ld), 7.0f);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j)
      d[std::size_t(i * ld + j)] = g() % 3 == 0 ? float(int(g() % 2000) - 1000) / 64.0f : (g() % 2 ? 0.0f : -0.0f);
  const mat<const float> A{d.data(), rows, cols, ld};
  auto same = [&](const std::vector<float>& back) {
    std::size_t bad = 0;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j)
        bad += bits(back[std::size_t(i * cols + j)]) != bits(A(i, j) == 0.0f ? 0.0f : A(i, j));
    return bad;
  };
  CHECK(same(dense_of(prune_to_csr(A, prune_params::by_threshold(0.0f)))) == 0);
  for (const block_shape b : {block_shape{1, 1}, block_shape{4, 4}, block_shape{8, 1}, block_shape{1, 8}, block_shape{2, 3}})
    CHECK(same(dense_of(prune_to_bcsr(A, b, prune_params::by_threshold(0.0f)))) == 0);
  // A matrix that is 2:4 already comes back exactly from prune_to_nm(2, 4).
  auto nm = d;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j)
      if ((j + i) % 4 >= 2) nm[std::size_t(i * ld + j)] = 0.0f;
  const mat<const float> N{nm.data(), rows, cols, ld};
  const auto back = dense_of(prune_to_nm(N, 2, 4));
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) CHECK(back[std::size_t(i * cols + j)] == N(i, j));
}

TEST_CASE("sparse: to_dense's output may not overlap the format's arrays") {
  std::vector<float> d(16, 1.0f);
  const csr_matrix s = prune_to_csr(view(d.data(), 4, 4), prune_params::by_threshold(0.0f));
  CHECK_THROWS_WITH_AS(to_dense(s, mat<float>{const_cast<float*>(s.val.data()), 4, 4, 4}),
                       doctest::Contains("tpp::to_dense: out overlaps S"), error);
  const codebook_matrix cb = to_codebook(s, {2, 1});
  CHECK_THROWS_WITH_AS(to_dense(cb, mat<float>{const_cast<float*>(cb.table.data()) + 1, 4, 4, 4}),
                       doctest::Contains("tpp::to_dense: out overlaps S"), error);
}
