// Tests of ops/sparse/codebook.hpp: 16 table entries per block, every entry coded to its nearest table entry;
// bad arguments.

#include <algorithm>
#include <cmath>
#include <vector>

#include <tpp/ops/sparse/codebook.hpp>
#include <tpp/ops/sparse/product.hpp>
#include <tpp/ops/sparse/prune.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE("sparse: codebook: 16 table entries per block, every entry coded to its nearest table entry") {
  const auto d = test::make<float>(20 * 32, 6);
  const mat<const float> A{d.data(), 20, 32, 32};
  const csr_matrix s = prune_to_csr(A, prune_params::by_sparsity(0.5));
  for (const index_t R : {1, 3, 8, 20}) {
    const codebook_matrix c = to_codebook(s, {.block_rows = R, .iterations = 6});
    CHECK(c.table.size() == std::size_t((20 + R - 1) / R * 16));
    CHECK(c.row_ptr == s.row_ptr);
    CHECK(c.col == s.col);
    double err = 0, range = 0;
    for (index_t i = 0; i < 20; ++i)
      for (index_t e = s.row_ptr[std::size_t(i)]; e < s.row_ptr[std::size_t(i + 1)]; ++e) {
        const float x = s.val[std::size_t(e)];
        const float* t = c.table.data() + (i / R) * 16;
        const unsigned code = c.code(e);
        for (unsigned j = 0; j < 16; ++j) {
          const double dj = std::fabs(double(x) - t[j]), dc = std::fabs(double(x) - t[code]);
          CHECK((dc < dj || (dc == dj && code <= j)));
        }
        CHECK(c.value(i, e) == t[code]);
        err = std::max(err, std::fabs(double(x) - t[code]));
        range = std::max(range, std::fabs(double(x)));
      }
    // 16 levels over values in (-1, 1): the worst error is well under a uniform quantiser's 2 / 16.
    CHECK(err < 0.125);
    // to_dense gives the table values at the stored positions
    const auto back = dense_of(c);
    for (index_t i = 0; i < 20; ++i)
      for (index_t e = s.row_ptr[std::size_t(i)]; e < s.row_ptr[std::size_t(i + 1)]; ++e)
        CHECK(back[std::size_t(i * 32 + s.col[std::size_t(e)])] == c.value(i, e));
  }
  // fewer distinct values than entries: each value is exactly representable
  std::vector<float> few(8 * 8);
  for (std::size_t e = 0; e < few.size(); ++e) few[e] = float(int(e % 3) + 1);
  const codebook_matrix cf = prune_to_codebook(view(few.data(), 8, 8), prune_params::by_threshold(0.0f), codebook_params{8, 8});
  CHECK(dense_of(cf) == few);
}

TEST_CASE("sparse: bad codebook arguments throw tpp::error naming the op and argument") {
  using codebook_kernel = sparse_kernel<approx::exact, codebook_matrix>;
  std::vector<float> d(64, 1.0f);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  const csr_matrix s = prune_to_csr(A, prune_params::by_sparsity(0.5));
  CHECK_THROWS_WITH_AS(to_codebook(s, codebook_params{0, 8}), doctest::Contains("block_rows (0)"), error);
  auto inf = s;
  inf.val[0] = INFINITY;
  CHECK_THROWS_WITH_AS(to_codebook(inf), doctest::Contains("non-finite"), error);
  codebook_matrix cb = to_codebook(s);
  cb.table.pop_back();
  CHECK_THROWS_WITH_AS(codebook_kernel{cb}, doctest::Contains("S.table has"), error);
}
