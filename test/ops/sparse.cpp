// Tests of ops/sparse.hpp: every format x every registry policy against the dense product computed with the
// same policy (sparse x dense and dense x sparse, alpha / beta, padded ld, edge shapes); the OpenMP drivers
// against the single-threaded kernel bit for bit; the zero-skipping path; pruning counts and ranks; round
// trips; N:M patterns; codebook assignment; complementary packing; bad inputs.
//
// Tolerance (gemm_support.hpp's gemm_mismatches, the reference being the double sum of the policy's own
// scalar products P::mul(s, b) over the dense form of S, whose zeros add P(0, b) = +-0): each output is an fp32
// sum of at most K products bit-identical to P::mul's, in some order, so |acc - sum| <= gamma_K sum |p_k|,
// gamma_K = K u / (1 - K u), u = 2^-24; exact fuses the product into the add (one more u sum |p_k| against
// the rounded reference products); alpha acc and the fma with beta C add one rounding each of the result.
// gemm_mismatches checks |C - ref| <= |alpha| sum |p_k| gamma_{K+2} + 2u (|ref| + |beta C0|), which covers
// these terms; P's own error is not in it since the reference uses P's products.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>
#include <tpp/ops/sparse.hpp>

#include "gemm_support.hpp"

namespace {

using namespace tpp;
using test::bits;

const float qnan = std::numeric_limits<float>::quiet_NaN();

std::vector<float> dense_of(const auto& S) {
  std::vector<float> d(std::size_t(S.rows * S.cols));
  to_dense(S, view(d.data(), S.rows, S.cols));
  return d;
}

struct case_shape {
  index_t m, k, n;
  block_shape block;
};

// The shapes every format x policy runs: K = 1, N below / across the SIMD width and the 8-vector tile,
// blocks 1x1, 4x4, 8x1, 1x16, 2x8, 1x4.
const case_shape shapes[] = {{1, 1, 1, {1, 1}},    {7, 1, 19, {1, 1}},     {4, 8, 3, {4, 4}},
                             {8, 16, 17, {8, 1}},  {5, 32, 40, {1, 16}},   {16, 12, 33, {4, 4}},
                             {24, 64, 130, {8, 1}}, {33, 20, 7, {1, 4}},  {12, 40, 64, {2, 8}}};

// C from alpha S B + beta C0 (NaN C0 when beta = 0: never read), checked against the policy's double
// reference; the driver equals the single-threaded kernel bit for bit; for exact, also against tpp::gemm.
template <class P, class F>
void check_sparse_dense(const F& S, index_t n, index_t pad, sparse_params p, std::uint64_t seed) {
  const index_t m = S.rows, k = S.cols, ldb = n + pad, ldc = n + 2 * pad;
  const auto sd = dense_of(S);
  auto b = test::make<float>(std::size_t(std::max<index_t>(k * ldb, 1)), seed);
  auto c = p.beta != 0 ? test::make<float>(std::size_t(m * ldc), seed + 1) : std::vector<float>(std::size_t(m * ldc), qnan);
  const auto c0 = c;
  const mat<const float> B{b.data(), k, n, ldb}, Sd{sd.data(), m, k, k};
  sparse_dense<P>(S, B, mat<float>{c.data(), m, n, ldc}, p);
  CHECK(test::gemm_mismatches<P>(std::vector{Sd}, std::vector{B}, gemm_params{p.alpha, p.beta}, {m, n, k}, c0, c, ldc) == 0);
  auto c1 = c0;
  sparse_kernel<P, F>(S, p).sparse_dense(B, mat<float>{c1.data(), m, n, ldc});
  CHECK(std::equal(c.begin(), c.end(), c1.begin(), [](float x, float y) { return bits(x) == bits(y); }));
  if constexpr (std::is_same_v<P, approx::exact>) {
    auto c2 = c0;
    gemm(Sd, B, mat<float>{c2.data(), m, n, ldc}, gemm_params{p.alpha, p.beta});
    CHECK(test::gemm_mismatches<P>(std::vector{Sd}, std::vector{B}, gemm_params{p.alpha, p.beta}, {m, n, k}, c0, c2, ldc) == 0);
  }
}

// C from alpha A W^T + beta C0, the same checks with gemm's operand order P(a, w).
template <class P, class F>
void check_dense_sparse(const F& W, index_t m, index_t pad, sparse_params p, std::uint64_t seed) {
  const index_t n = W.rows, k = W.cols, lda = k + pad, ldc = n + pad;
  const auto wd = dense_of(W);
  auto a = test::make<float>(std::size_t(std::max<index_t>(m * lda, 1)), seed);
  auto c = p.beta != 0 ? test::make<float>(std::size_t(m * ldc), seed + 1) : std::vector<float>(std::size_t(m * ldc), qnan);
  const auto c0 = c;
  const mat<const float> A{a.data(), m, k, lda}, Wd{wd.data(), n, k, k};
  dense_sparse<P>(A, W, mat<float>{c.data(), m, n, ldc}, p);
  CHECK(test::gemm_mismatches<P>(std::vector{A}, std::vector{Wd}, gemm_params{p.alpha, p.beta, false, true}, {m, n, k},
                                 c0, c, ldc) == 0);
  auto c1 = c0;
  sparse_kernel<P, F>(W, p).dense_sparse(A, mat<float>{c1.data(), m, n, ldc});
  CHECK(std::equal(c.begin(), c.end(), c1.begin(), [](float x, float y) { return bits(x) == bits(y); }));
}

// Every format made from one random dense (rows, cols) matrix.
struct all_formats {
  csr_matrix csr;
  bcsr_matrix bcsr;
  std::vector<nm_matrix> nm;
  codebook_matrix codebook;
};

all_formats formats_of(index_t rows, index_t cols, block_shape block, std::uint64_t seed) {
  const auto d = test::make<float>(std::size_t(rows * cols), seed);
  const mat<const float> A{d.data(), rows, cols, cols};
  all_formats f{prune_to_csr(A, prune_params::by_sparsity(0.7)), prune_to_bcsr(A, block, prune_params::by_sparsity(0.5)), {},
                prune_to_codebook(A, prune_params::by_sparsity(0.6), codebook_params{4, 8})};
  if (cols % 4 == 0) {
    f.nm.push_back(prune_to_nm(A, 2, 4));
    f.nm.push_back(prune_to_nm(A, 1, 4));
  } else {
    f.nm.push_back(prune_to_nm(A, 1, 1));
  }
  return f;
}

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
TEST_CASE_TEMPLATE_APPLY(sparse_policies, approx::float_policy_tuple);

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

TEST_CASE_TEMPLATE("sparse: zero-skipping (EIE) equals the plain path on mostly-zero activations", P, approx::exact,
                   approx::bf16_rne, approx::mitchell<7>) {
  const all_formats f = formats_of(40, 64, {4, 4}, 21);
  std::mt19937 g(5);
  auto sparse_act = [&](std::size_t count) {  // about 70% zeros, signs of zero mixed
    auto v = test::make<float>(count, g());
    for (auto& x : v)
      if (g() % 10 < 7) x = g() % 2 ? 0.0f : -0.0f;
    return v;
  };
  for (const index_t n : {1, 3, 20}) {
    CAPTURE(n);
    const auto b = sparse_act(std::size_t(64 * n));
    const mat<const float> B{b.data(), 64, n, n};
    for (const sparse_params p : {sparse_params{1.0f, 0.0f, true}, sparse_params{-2.0f, 0.5f, true}}) {
      std::vector<float> c1(std::size_t(40 * n), 1.0f), c2 = c1;
      sparse_dense<P>(f.csr, B, view(c1.data(), 40, n), p);
      sparse_dense<P>(f.csr, B, view(c2.data(), 40, n), {p.alpha, p.beta, false});
      CHECK(c1 == c2);  // by value: only the sign of an exact-zero sum may differ
      sparse_dense<P>(f.codebook, B, view(c1.data(), 40, n), p);
      sparse_dense<P>(f.codebook, B, view(c2.data(), 40, n), {p.alpha, p.beta, false});
      CHECK(c1 == c2);
      // A (n, 64) W^T with W = S (40, 64)
      std::vector<float> d1(std::size_t(n * 40), 1.0f), d2 = d1;
      dense_sparse<P>(mat<const float>{b.data(), n, 64, 64}, f.bcsr, view(d1.data(), n, 40), p);
      dense_sparse<P>(mat<const float>{b.data(), n, 64, 64}, f.bcsr, view(d2.data(), n, 40), {p.alpha, p.beta, false});
      CHECK(d1 == d2);
    }
  }
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

TEST_CASE("sparse: bad arguments throw tpp::error naming the op and argument") {
  using nm_kernel = sparse_kernel<approx::exact, nm_matrix>;
  using bcsr_kernel = sparse_kernel<approx::exact, bcsr_matrix>;
  using codebook_kernel = sparse_kernel<approx::exact, codebook_matrix>;
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
  // malformed CSR
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
  nm_matrix nm = prune_to_nm(A, 2, 4);
  nm.idx[1] = nm.idx[0];
  CHECK_THROWS_WITH_AS(nm_kernel{nm}, doctest::Contains("S.idx is not strictly ascending"), error);
  nm.idx[1] = 4;
  CHECK_THROWS_WITH_AS(nm_kernel{nm}, doctest::Contains("is not below m"), error);
  bcsr_matrix bs = prune_to_bcsr(A, {2, 2}, prune_params::by_sparsity(0.5));
  bs.block = {3, 2};
  CHECK_THROWS_WITH_AS(bcsr_kernel{bs}, doctest::Contains("S.block (3x2) does not divide"), error);
  // codebook
  CHECK_THROWS_WITH_AS(to_codebook(s, codebook_params{0, 8}), doctest::Contains("block_rows (0)"), error);
  auto inf = s;
  inf.val[0] = INFINITY;
  CHECK_THROWS_WITH_AS(to_codebook(inf), doctest::Contains("non-finite"), error);
  codebook_matrix cb = to_codebook(s);
  cb.table.pop_back();
  CHECK_THROWS_WITH_AS(codebook_kernel{cb}, doctest::Contains("S.table has"), error);
  // complementary
  CHECK_THROWS_WITH_AS(pack_complementary({}), doctest::Contains("parts has 0 matrices"), error);
  const csr_matrix other = prune_to_csr(view(d.data(), 8, 4), prune_params::by_threshold(0.0f));
  const std::vector<csr_matrix> two = {s, other};
  CHECK_THROWS_WITH_AS(pack_complementary(two), doctest::Contains("parts[1] is (8x4)"), error);
  const complementary_matrix pk = pack_complementary(std::vector<csr_matrix>{s});
  std::vector<float> x(7), y(4);
  CHECK_THROWS_WITH_AS(complementary_product(pk, x, view(y.data(), 4, 1)), doctest::Contains("x has 7 elements"), error);
  CHECK_THROWS_WITH_AS(unpack_part(pk, 1), doctest::Contains("j (1) is outside [0, 1)"), error);
}
