// Tests of ops/sparse/prune.hpp: pruning keeps exactly count - round(s count) entries (blocks), the largest
// magnitudes (L1 norms), ties to the lower index; thresholds; N:M patterns; bad arguments.

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include <tpp/ops/sparse/prune.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;

}  // namespace

TEST_CASE("sparse: pruning keeps exactly count - round(s count) entries, the largest magnitudes, ties to the lower index") {
  // Values in {-2, -1, 0, 1, 2}: many ties.
  std::mt19937 g(1);
  const index_t rows = 13, cols = 11, ld = 14;
  std::vector<float> d(std::size_t(rows * ld), 99.0f);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) d[std::size_t(i * ld + j)] = float(int(g() % 5) - 2);
  const mat<const float> A{d.data(), rows, cols, ld};
  const index_t count = rows * cols;
  for (const double sp : {0.0, 0.1, 0.25, 0.5, 0.77, 0.9, 0.95, 1.0}) {
    CAPTURE(sp);
    const csr_matrix s = prune_to_csr(A, prune_params::by_sparsity(sp));
    CHECK(s.nnz() == count - index_t(std::llround(sp * double(count))));
    std::vector<char> kept(std::size_t(count), 0);
    for (index_t i = 0; i < rows; ++i)
      for (index_t e = s.row_ptr[std::size_t(i)]; e < s.row_ptr[std::size_t(i + 1)]; ++e) {
        kept[std::size_t(i * cols + s.col[std::size_t(e)])] = 1;
        CHECK(s.val[std::size_t(e)] == A(i, s.col[std::size_t(e)]));
      }
    // every kept entry ranks above every dropped one: larger magnitude, or equal and a lower index
    float min_kept = INFINITY, max_dropped = -1;
    index_t last_kept_at_tie = -1, first_dropped_at_tie = count;
    for (index_t e = 0; e < count; ++e) {
      const float x = std::fabs(A(e / cols, e % cols));
      if (kept[std::size_t(e)]) min_kept = std::min(min_kept, x);
      else max_dropped = std::max(max_dropped, x);
    }
    CHECK(min_kept >= max_dropped);
    for (index_t e = 0; e < count; ++e) {
      const float x = std::fabs(A(e / cols, e % cols));
      if (x == min_kept && x == max_dropped) {
        if (kept[std::size_t(e)]) last_kept_at_tie = e;
        else first_dropped_at_tie = std::min(first_dropped_at_tie, e);
      }
    }
    CHECK(last_kept_at_tie < first_dropped_at_tie);
  }
  // threshold: |x| > t
  const csr_matrix t = prune_to_csr(A, prune_params::by_threshold(1.0f));
  const auto back = dense_of(t);
  for (index_t e = 0; e < count; ++e) {
    const float x = A(e / cols, e % cols);
    CHECK(back[std::size_t(e)] == (std::fabs(x) > 1.0f ? x : 0.0f));
  }
}

TEST_CASE("sparse: BCSR pruning by block L1 norm keeps the requested block count") {
  const auto d = test::make<float>(32 * 48, 4);
  const mat<const float> A{d.data(), 32, 48, 48};
  for (const block_shape b : {block_shape{4, 4}, block_shape{8, 1}, block_shape{1, 16}})
    for (const double sp : {0.5, 0.75, 0.9}) {
      const bcsr_matrix s = prune_to_bcsr(A, b, prune_params::by_sparsity(sp));
      const index_t nb = (32 / b.rows) * (48 / b.cols);
      CHECK(s.blocks() == nb - index_t(std::llround(sp * double(nb))));
      CHECK(s.nnz() == s.blocks() * b.rows * b.cols);
      // the kept blocks' norms are at least the dropped ones'
      double min_kept = INFINITY, max_all = 0;
      std::vector<double> norms;
      for (index_t bi = 0; bi < 32 / b.rows; ++bi)
        for (index_t bj = 0; bj < 48 / b.cols; ++bj) {
          double n1 = 0;
          for (index_t q = 0; q < b.rows; ++q)
            for (index_t c = 0; c < b.cols; ++c) n1 += std::fabs(double(A(bi * b.rows + q, bj * b.cols + c)));
          norms.push_back(n1);
        }
      for (index_t bi = 0; bi < 32 / b.rows; ++bi)
        for (index_t e = s.row_ptr[std::size_t(bi)]; e < s.row_ptr[std::size_t(bi + 1)]; ++e)
          min_kept = std::min(min_kept, norms[std::size_t(bi * (48 / b.cols) + s.col[std::size_t(e)])]);
      std::sort(norms.begin(), norms.end());
      max_all = norms[std::size_t(index_t(std::llround(sp * double(nb))) - 1)];  // the largest dropped norm
      CHECK(min_kept >= max_all);
    }
}

TEST_CASE("sparse: N:M patterns: n entries per group, ascending positions below m, the n largest magnitudes") {
  const auto d = test::make<float>(9 * 24, 5);
  const mat<const float> A{d.data(), 9, 24, 24};
  for (const auto& [n, m] : {std::pair{2, 4}, std::pair{1, 4}, std::pair{4, 8}, std::pair{3, 3}}) {
    const nm_matrix s = prune_to_nm(A, n, m);
    CHECK(s.nnz() == 9 * (24 / m) * n);
    for (index_t i = 0; i < 9; ++i)
      for (index_t g = 0; g < 24 / m; ++g) {
        const index_t base = (i * (24 / m) + g) * n;
        float min_kept = INFINITY;
        for (index_t t = 0; t < n; ++t) {
          const unsigned p = s.idx[std::size_t(base + t)];
          CHECK(p < unsigned(m));
          if (t > 0) CHECK(p > s.idx[std::size_t(base + t - 1)]);
          CHECK(s.val[std::size_t(base + t)] == A(i, g * m + p));
          min_kept = std::min(min_kept, std::fabs(A(i, g * m + p)));
        }
        int larger = 0;  // no dropped entry is larger than a kept one
        for (index_t q = 0; q < m; ++q) larger += std::fabs(A(i, g * m + q)) > min_kept;
        CHECK(larger <= n - 1);
      }
  }
}

TEST_CASE("sparse: bad arguments to pruning throw tpp::error naming the op and argument") {
  std::vector<float> d(64, 1.0f);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  // prune parameters
  CHECK_THROWS_WITH_AS(prune_to_csr(A, {}), doctest::Contains("tpp::prune_to_csr: prune_params needs exactly one"), error);
  CHECK_THROWS_WITH_AS(prune_to_csr(A, {.sparsity = 0.5, .threshold = 1.0f}), doctest::Contains("exactly one"), error);
  CHECK_THROWS_WITH_AS(prune_to_csr(A, prune_params::by_sparsity(1.5)), doctest::Contains("sparsity (1.5"), error);
  CHECK_THROWS_WITH_AS(prune_to_csr(A, prune_params::by_sparsity(-0.1)), doctest::Contains("sparsity"), error);
  CHECK_THROWS_WITH_AS(prune_to_csr(A, prune_params::by_sparsity(double(qnan))), doctest::Contains("sparsity"), error);
  CHECK_THROWS_WITH_AS(prune_to_csr(A, prune_params::by_threshold(-1.0f)), doctest::Contains("threshold"), error);
  CHECK_THROWS_WITH_AS(prune_to_csr(mat<const float>{nullptr, 2, 2, 2}, prune_params::by_threshold(0.0f)),
                       doctest::Contains("A.data is null"), error);
  constexpr index_t big = std::numeric_limits<index_t>::max() / 2;
  CHECK_THROWS_WITH_AS(prune_to_csr(mat<const float>{d.data(), 3, big, big}, prune_params::by_threshold(0.0f)),
                       doctest::Contains("overflows index_t"), error);  // checked before anything is read or sized
  // blocks and N:M
  CHECK_THROWS_WITH_AS(prune_to_bcsr(A, {3, 4}, prune_params::by_sparsity(0.5)), doctest::Contains("block (3x4) does not divide"), error);
  CHECK_THROWS_WITH_AS(prune_to_bcsr(A, {0, 4}, prune_params::by_sparsity(0.5)), doctest::Contains("block (0x4) must be at least"), error);
  CHECK_THROWS_WITH_AS(prune_to_nm(A, 3, 2), doctest::Contains("tpp::prune_to_nm: n (3) must be in [1, m = 2]"), error);
  CHECK_THROWS_WITH_AS(prune_to_nm(A, 1, 3), doctest::Contains("m (3) does not divide cols (8)"), error);
}
