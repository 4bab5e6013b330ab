// Tests of ops/sparse/complementary.hpp: packing round trip, collisions, the product equals each S_j x
// bit for bit; bad arguments.

#include <random>
#include <span>
#include <vector>

#include <tpp/ops/sparse/complementary.hpp>
#include <tpp/ops/sparse/product.hpp>
#include <tpp/ops/sparse/prune.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;
using test::bits;

}  // namespace

TEST_CASE_TEMPLATE("sparse: complementary packing round trip, collisions, and the product equals each S_j x", P,
                   approx::exact, approx::bf16_rz, approx::mitchell<7>, approx::drum<6>) {
  const index_t rows = 10, cols = 37;  // cols not a multiple of the SIMD width
  std::mt19937 g(9);
  std::vector<std::vector<float>> dense(3, std::vector<float>(std::size_t(rows * cols), 0.0f));
  const auto vals = test::make<float>(std::size_t(rows * cols), 3);
  for (std::size_t e = 0; e < vals.size(); ++e) {
    const unsigned owner = g() % 4;  // 3: nobody
    if (owner < 3) dense[owner][e] = vals[e];
  }
  std::vector<csr_matrix> parts;
  for (auto& dd : dense) parts.push_back(prune_to_csr(view(dd.data(), rows, cols), prune_params::by_threshold(0.0f)));
  const complementary_matrix pk = pack_complementary(parts);
  CHECK(pk.count == 3);
  for (index_t j = 0; j < 3; ++j) {
    const csr_matrix back = unpack_part(pk, j);
    CHECK(back.row_ptr == parts[std::size_t(j)].row_ptr);
    CHECK(back.col == parts[std::size_t(j)].col);
    CHECK(back.val == parts[std::size_t(j)].val);
  }
  const auto x = test::make<float>(std::size_t(cols), 4);
  std::vector<float> y(std::size_t(rows * 3));
  complementary_product<P>(pk, x, view(y.data(), rows, 3));
  for (index_t j = 0; j < 3; ++j) {
    std::vector<float> yj(static_cast<std::size_t>(rows));
    sparse_dense<P>(parts[std::size_t(j)], view(x.data(), cols, 1), view(yj.data(), rows, 1));
    for (index_t i = 0; i < rows; ++i) CHECK(bits(y[std::size_t(i * 3 + j)]) == bits(yj[std::size_t(i)]));
  }
  // a collision names both parts and the position
  parts[2].val[0] = 1.0f;
  parts.push_back(parts[0]);
  CHECK_THROWS_WITH_AS(pack_complementary(parts), doctest::Contains("parts[3] collides with parts[0]"), error);
}

TEST_CASE("sparse: bad complementary arguments throw tpp::error naming the op and argument") {
  std::vector<float> d(64, 1.0f);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  const csr_matrix s = prune_to_csr(A, prune_params::by_sparsity(0.5));
  CHECK_THROWS_WITH_AS(pack_complementary({}), doctest::Contains("parts has 0 matrices"), error);
  const csr_matrix other = prune_to_csr(view(d.data(), 8, 4), prune_params::by_threshold(0.0f));
  const std::vector<csr_matrix> two = {s, other};
  CHECK_THROWS_WITH_AS(pack_complementary(two), doctest::Contains("parts[1] is (8x4)"), error);
  const complementary_matrix pk = pack_complementary(std::vector<csr_matrix>{s});
  std::vector<float> x(7), y(4);
  CHECK_THROWS_WITH_AS(complementary_product(pk, x, view(y.data(), 4, 1)), doctest::Contains("x has 7 elements"), error);
  CHECK_THROWS_WITH_AS(unpack_part(pk, 1), doctest::Contains("j (1) is outside [0, 1)"), error);
  // Y may not overlap x or the pack
  std::vector<float> xy(16, 1.0f);
  CHECK_THROWS_WITH_AS(complementary_product(pk, std::span<const float>(xy.data(), 8), view(xy.data() + 4, 4, 1)),
                       doctest::Contains("tpp::complementary_product: Y overlaps x"), error);
  CHECK_THROWS_WITH_AS(complementary_product(pk, std::span<const float>(xy.data(), 8),
                                             mat<float>{const_cast<float*>(pk.val.data()) + 2, 4, 1, 1}),
                       doctest::Contains("tpp::complementary_product: Y overlaps pack"), error);
}
