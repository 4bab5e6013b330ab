#pragma once
// Shared by the sparse tests: every format made from one dense matrix, the shapes every format x policy
// runs, and the product checks.
//
// Tolerance (ops/gemm/gemm_support.hpp's gemm_mismatches, the reference being the double sum of the policy's own
// scalar products P::mul(s, b) over the dense form of S, whose zeros add P(0, b) = +-0): each output is an fp32
// sum of at most K products bit-identical to P::mul's, in some order, so |acc - sum| <= gamma_K sum |p_k|,
// gamma_K = K u / (1 - K u), u = 2^-24; exact fuses the product into the add (one more u sum |p_k| against
// the rounded reference products); alpha acc and the fma with beta C add one rounding each of the result.
// gemm_mismatches checks |C - ref| <= |alpha| sum |p_k| gamma_{K+2} + 2u (|ref| + |beta C0|), which covers
// these terms; P's own error is not in it since the reference uses P's products.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>
#include <tpp/ops/sparse.hpp>

#include "../gemm/gemm_support.hpp"

namespace tpp::test::sparse {

inline const float qnan = std::numeric_limits<float>::quiet_NaN();

inline std::vector<float> dense_of(const auto& S) {
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
inline const case_shape shapes[] = {{1, 1, 1, {1, 1}},    {7, 1, 19, {1, 1}},     {4, 8, 3, {4, 4}},
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

inline all_formats formats_of(index_t rows, index_t cols, block_shape block, std::uint64_t seed) {
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

}  // namespace tpp::test::sparse
