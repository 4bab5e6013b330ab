// Tests of ops/sparse/product.hpp: every format x every registry policy against the dense product computed
// with the same policy (sparse x dense and dense x sparse, alpha / beta, padded ld, edge shapes); the OpenMP
// drivers against the single-threaded kernel bit for bit; the policy in every product; a caller's
// workspace; bad arguments. (Tolerances: support.hpp.)

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/core/workspace.hpp>
#include <tpp/ops/sparse/product.hpp>

#include "approx/sweep.hpp"
#include "support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::sparse;
using test::bits;

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("sparse: every format x policy equals the dense product with the same policy", P,
                          sparse_policies) {
  std::uint64_t seed = 10;
  const sparse_params params[] = {{}, {-0.75f, 1.5f, false}, {2.0f, 0.0f, false}};
  for (const case_shape s : shapes) {
    CAPTURE(s.m);
    CAPTURE(s.k);
    CAPTURE(s.n);
    // S (m, k) x B (k, n); the same matrix as W (m, k) in A (n, k) W^T
    const all_formats f = formats_of(s.m, s.k, s.block, seed++);
    for (int t = 0; t < 3; ++t) {
      const sparse_params p = params[t];
      const index_t pad = t;
      check_sparse_dense<P>(f.csr, s.n, pad, p, seed++);
      check_sparse_dense<P>(f.bcsr, s.n, pad, p, seed++);
      for (const nm_matrix& nm : f.nm) check_sparse_dense<P>(nm, s.n, pad, p, seed++);
      check_sparse_dense<P>(f.codebook, s.n, pad, p, seed++);
      check_dense_sparse<P>(f.csr, s.n, pad, p, seed++);
      check_dense_sparse<P>(f.bcsr, s.n, pad, p, seed++);
      for (const nm_matrix& nm : f.nm) check_dense_sparse<P>(nm, s.n, pad, p, seed++);
      check_dense_sparse<P>(f.codebook, s.n, pad, p, seed++);
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(sparse_policies, tpp::test::op_policies);

TEST_CASE_TEMPLATE("sparse: OpenMP drivers equal the single-threaded kernel bit for bit (large enough to thread)", P,
                   approx::exact, approx::mitchell<7>) {
  const all_formats f = formats_of(256, 192, {4, 4}, 3);
  const sparse_params p{0.5f, -1.25f, false};
  check_sparse_dense<P>(f.csr, 70, 1, p, 1);
  check_sparse_dense<P>(f.bcsr, 64, 0, p, 2);
  check_sparse_dense<P>(f.nm[0], 33, 0, p, 3);
  check_sparse_dense<P>(f.codebook, 48, 2, p, 4);
  check_dense_sparse<P>(f.csr, 300, 1, p, 5);
  check_dense_sparse<P>(f.bcsr, 130, 0, p, 6);
  check_dense_sparse<P>(f.nm[1], 129, 0, p, 7);
  check_dense_sparse<P>(f.codebook, 200, 3, p, 8);
  const sparse_params z{1.0f, 0.0f, true};
  check_sparse_dense<P>(f.csr, 40, 1, z, 9);
  check_dense_sparse<P>(f.bcsr, 64, 0, z, 10);
}

TEST_CASE("sparse: edge shapes: empty rows, all-zero matrix, K = 0, empty outputs, absent entries vs Inf") {
  // All-zero pruned matrix (sparsity 1): C = beta C, and beta = 0 writes zeros over NaN.
  const auto d = test::make<float>(6 * 8, 1);
  const csr_matrix z = prune_to_csr(view(d.data(), 6, 8), prune_params::by_sparsity(1.0));
  CHECK(z.nnz() == 0);
  std::vector<float> b(8 * 5, 1.0f), c(6 * 5, qnan);
  sparse_dense(z, view(b.data(), 8, 5), view(c.data(), 6, 5));
  for (float x : c) CHECK(bits(x) == 0u);
  std::vector<float> c2(6 * 5, 2.0f);
  sparse_dense(z, view(b.data(), 8, 5), view(c2.data(), 6, 5), {1.0f, 0.5f});
  for (float x : c2) CHECK(x == 1.0f);
  // K = 0
  const csr_matrix k0{3, 0, {0, 0, 0, 0}, {}, {}};
  std::vector<float> c3(3 * 4, 3.0f);
  sparse_dense(k0, mat<const float>{b.data(), 0, 4, 4}, view(c3.data(), 3, 4), {1.0f, 2.0f});
  for (float x : c3) CHECK(x == 6.0f);
  // Empty rows among full ones; an absent entry does not meet B's Inf, a stored zero does.
  const csr_matrix s{3, 2, {0, 0, 2, 3}, {0, 1, 0}, {1.0f, 0.0f, 2.0f}};
  std::vector<float> bi = {1.0f, std::numeric_limits<float>::infinity()};
  std::vector<float> y(3, qnan);
  sparse_dense(s, view(bi.data(), 2, 1), view(y.data(), 3, 1));
  CHECK(y[0] == 0.0f);
  CHECK(std::isnan(y[1]));  // 0 x Inf
  CHECK(y[2] == 2.0f);
  // Empty outputs return without touching anything.
  CHECK_NOTHROW(sparse_dense(s, mat<const float>{bi.data(), 2, 0, 0}, mat<float>{nullptr, 3, 0, 0}));
  CHECK_NOTHROW(dense_sparse(mat<const float>{nullptr, 0, 2, 2}, s, mat<float>{nullptr, 0, 3, 3}));
}

TEST_CASE("sparse: the policy is applied to every product (Mitchell's 1.5 x 1.5 = 2), weight first in S B") {
  const std::vector<float> d(4 * 4, 1.5f), b(4 * 3, 1.5f);
  const csr_matrix s = prune_to_csr(view(d.data(), 4, 4), prune_params::by_threshold(0.0f));
  std::vector<float> c(4 * 3);
  sparse_dense<approx::mitchell<7>>(s, view(b.data(), 4, 3), view(c.data(), 4, 3));
  for (float x : c) CHECK(x == 8.0f);
  dense_sparse<approx::mitchell<7>>(view(b.data(), 3, 4), s, view(c.data(), 3, 4));
  for (float x : c) CHECK(x == 8.0f);
  sparse_dense(s, view(b.data(), 4, 3), view(c.data(), 4, 3));
  for (float x : c) CHECK(x == 9.0f);
}

namespace {

// The kernel's calls with a caller's workspace of exactly workspace_bytes() (at an odd address) give the
// bits of the calls on the thread's arena; a frame held around the calls is not touched.
template <class F>
void check_workspace(const F& S, sparse_params p, index_t n) {
  const sparse_kernel<approx::mitchell<7>, F> k(S, p);
  const auto b = test::make<float>(std::size_t(S.cols * n), 7);
  const auto a = test::make<float>(std::size_t(n * S.cols), 8);
  const mat<const float> B{b.data(), S.cols, n, n}, A{a.data(), n, S.cols, S.cols};
  std::vector<float> c1(std::size_t(S.rows * n), 1.0f), c2 = c1, d1(std::size_t(n * S.rows), 1.0f), d2 = d1;
  const std::size_t bytes = k.workspace_bytes();
  std::vector<std::byte> mem(bytes + 1);
  const workspace ws{mem.data() + 1, bytes};
  {
    scratch held;  // an enclosing op's buffer, live across the calls
    float* mine = held.take<float>(1000);
    std::fill_n(mine, 1000, 5.0f);
    k.sparse_dense(B, view(c1.data(), S.rows, n));
    k.dense_sparse(A, view(d1.data(), n, S.rows));
    CHECK(std::count(mine, mine + 1000, 5.0f) == 1000);
  }
  k.sparse_dense(B, view(c2.data(), S.rows, n), ws);
  k.dense_sparse(A, view(d2.data(), n, S.rows), ws);
  CHECK(std::equal(c1.begin(), c1.end(), c2.begin(), [](float x, float y) { return bits(x) == bits(y); }));
  CHECK(std::equal(d1.begin(), d1.end(), d2.begin(), [](float x, float y) { return bits(x) == bits(y); }));
  if (bytes > 0) {
    CHECK_THROWS_WITH_AS(k.dense_sparse(A, view(d2.data(), n, S.rows), workspace{mem.data(), 1}),
                         doctest::Contains("tpp::sparse_kernel: workspace (1 bytes) is smaller"), error);
    CHECK_THROWS_WITH_AS(k.sparse_dense(B, view(c2.data(), S.rows, n), workspace{c2.data() + 1, 8}),
                         doctest::Contains("tpp::sparse_kernel: workspace overlaps C"), error);
    CHECK_THROWS_WITH_AS(k.dense_sparse(A, view(d2.data(), n, S.rows), workspace{const_cast<float*>(a.data()) + 1, 8}),
                         doctest::Contains("tpp::sparse_kernel: workspace overlaps A"), error);
  }
}

}  // namespace

TEST_CASE("sparse: a caller's workspace of workspace_bytes() gives the arena's bits; too small or overlapping throws") {
  const all_formats f = formats_of(40, 64, {4, 4}, 41);
  for (const sparse_params p : {sparse_params{}, sparse_params{1.0f, 0.0f, true}}) {
    CAPTURE(p.skip_zero_activations);
    check_workspace(f.csr, p, 37);
    check_workspace(f.bcsr, p, 64);
    check_workspace(f.nm[0], p, 5);
    check_workspace(f.codebook, p, 20);
  }
  // Large enough that BCSR copies B's panel.
  const auto d = test::make<float>(64 * 64, 42);
  check_workspace(prune_to_bcsr(view(d.data(), 64, 64), {4, 4}, prune_params::by_sparsity(0.25)), {}, 48);
}

TEST_CASE("sparse: bad arguments to the products throw tpp::error naming the op and argument") {
  std::vector<float> d(64, 1.0f), b(64, 1.0f), c(64);
  const mat<const float> A = view(static_cast<const float*>(d.data()), 4, 8);
  const csr_matrix s = prune_to_csr(A, prune_params::by_sparsity(0.5));
  // views and shapes
  CHECK_THROWS_WITH_AS(sparse_dense(s, view(b.data(), 7, 2), view(c.data(), 4, 2)),
                       doctest::Contains("tpp::sparse_dense: B shape (7x2)"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, view(b.data(), 8, 2), view(c.data(), 5, 2)),
                       doctest::Contains("tpp::sparse_dense: C shape"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, mat<float>{b.data(), 8, 2, 1}, view(c.data(), 4, 2)),
                       doctest::Contains("B.ld (1) is smaller"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, mat<float>{nullptr, 8, 2, 2}, view(c.data(), 4, 2)),
                       doctest::Contains("B.data is null"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, mat<float>{b.data(), -8, 2, 2}, view(c.data(), 4, 2)),
                       doctest::Contains("B.rows is negative"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, view(b.data(), 8, 2), view(b.data() + 4, 4, 2)),
                       doctest::Contains("C overlaps B"), error);
  CHECK_THROWS_WITH_AS(dense_sparse(view(b.data(), 3, 7), s, view(c.data(), 3, 4)),
                       doctest::Contains("tpp::dense_sparse: A shape (3x7)"), error);
  CHECK_THROWS_WITH_AS(dense_sparse(view(b.data(), 3, 8), s, view(c.data(), 3, 5)),
                       doctest::Contains("tpp::dense_sparse: C shape"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, view(b.data(), 8, 2), view(c.data(), 4, 2), {qnan, 0.0f}),
                       doctest::Contains("alpha"), error);
  CHECK_THROWS_WITH_AS(sparse_dense(s, view(b.data(), 8, 2), view(c.data(), 4, 2), {1.0f, INFINITY}),
                       doctest::Contains("beta"), error);
  // C inside the sparse operand's arrays
  const csr_matrix sq = prune_to_csr(view(d.data(), 4, 4), prune_params::by_threshold(0.0f));  // 16 values
  std::vector<float> x(16, 1.0f);
  CHECK_THROWS_WITH_AS(sparse_dense(sq, view(x.data(), 4, 2), mat<float>{const_cast<float*>(sq.val.data()), 4, 2, 2}),
                       doctest::Contains("tpp::sparse_dense: C overlaps S"), error);
  CHECK_THROWS_WITH_AS(dense_sparse(view(x.data(), 2, 4), sq, mat<float>{const_cast<float*>(sq.val.data()) + 3, 2, 4, 4}),
                       doctest::Contains("tpp::dense_sparse: C overlaps W"), error);
  CHECK_THROWS_WITH_AS(sparse_kernel<>(sq).dense_sparse(view(x.data(), 2, 4), mat<float>{const_cast<float*>(sq.val.data()), 2, 4, 4}),
                       doctest::Contains("tpp::sparse_kernel: C overlaps S"), error);
}
