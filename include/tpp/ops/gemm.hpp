#pragma once
// GEMM: C = alpha * op(A) * op(B) + beta * C, with every product of an A and a B element taken by the
// multiply policy and the accumulation in fp32. op(X) = X, or X transposed when trans_x (the view then
// holds the stored, untransposed matrix). alpha and beta scale exactly (plain fp32 multiplies, not the
// policy); beta = 0 never reads C (so NaN or garbage in C does not propagate).
//
//   gemm<Policy>(A, B, C, gemm_params)       A: (M, K) or (K, M); B: (K, N) or (N, K); C: (M, N)
//   element types: A, B fp32 or bf16; C fp32 or bf16 (bf16 results round to nearest even)
//
// Structure: op(A) and op(B) are packed once into fp32 panels (bf16 widened, transposes resolved), so
// per-operand work is O(n^2); a register-blocked micro-kernel of MR = 4 rows x NR = 2 SIMD vectors then
// runs the K loop, edges inside (B panels are zero-padded to whole vectors, partial rows take smaller MR).
// With approx::exact the micro-kernel uses FMA (the product is not rounded before the add, as in every
// BLAS); any other policy is `acc += Policy::mul(a, b)` with its bit-identical SIMD mul. With TPP_NO_SIMD
// the same loops run on scalars. Large problems split the rows of C over the OpenMP team (none when
// called from inside a parallel region).
//
// Errors (tpp::error): invalid views, op(A) / op(B) / C shapes that do not chain, C overlapping A or B,
// a policy whose validate() fails.

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/simd.hpp"

namespace tpp {

struct gemm_params {
  float alpha = 1.0f, beta = 0.0f;
  bool trans_a = false, trans_b = false;
};

namespace detail {

template <class T>
concept gemm_element = std::is_same_v<std::remove_const_t<T>, float> || std::is_same_v<std::remove_const_t<T>, bf16>;

// The fp32 lane type of the micro-kernel: a SIMD batch, or float with TPP_NO_SIMD.
using gemm_lane = std::conditional_t<simd::enabled, simd::batch<float>, float>;
inline constexpr index_t gemm_width = simd::enabled ? simd::width<> : 1;
inline constexpr index_t gemm_mr = 4;                   // rows of C per micro-kernel call
inline constexpr index_t gemm_nv = simd::enabled ? 2 : 4;  // lanes-wide vectors per row

// Lane helpers, templated on the lane type V (gemm_lane) so the branch not taken is never instantiated.
template <class V>
V lane_load(const float* p) noexcept {
  if constexpr (std::is_same_v<V, float>)
    return *p;
  else
    return V::load_unaligned(p);
}

template <class V>
V lane_fma(V a, V b, V c) noexcept {
  if constexpr (std::is_same_v<V, float>)
    return std::fma(a, b, c);
  else
    return xsimd::fma(a, b, c);
}

template <class P, class V>
V gemm_step(V acc, V a, V b) noexcept {
  if constexpr (std::is_same_v<P, approx::exact>)
    return lane_fma(a, b, acc);
  else
    return acc + P::mul(a, b);
}

// Stores alpha * acc + beta * c over the first n columns of a C row.
template <class V, class TC>
void gemm_store(TC* c, V acc, index_t n, float alpha, float beta) noexcept {
  if constexpr (std::is_same_v<V, float>) {
    (void)n;
    float v = alpha * acc;
    if (beta != 0.0f) v = std::fma(beta, to_float(*c), v);
    *c = from_float<TC>(v);
  } else {
    using A = typename V::arch_type;
    acc = acc * V(alpha);
    if (n == index_t(V::size)) {
      if (beta != 0.0f) acc = xsimd::fma(V(beta), simd::load<A>(c), acc);
      simd::store<A>(c, acc);
    } else {
      if (beta != 0.0f) acc = xsimd::fma(V(beta), simd::load_partial<A>(c, n), acc);
      simd::store_partial<A>(c, acc, n);
    }
  }
}

// C rows [0, mr) x columns [j, j + nv vectors), clipped to n_left columns. a: packed op(A) rows (ld k),
// b: packed op(B) (ld ldb), both fp32.
template <class P, index_t MR, class TC>
void gemm_micro(const float* a, index_t k, const float* b, index_t ldb, mat<TC> c, index_t i, index_t j,
                index_t n_left, float alpha, float beta) noexcept {
  constexpr index_t NV = gemm_nv, W = gemm_width;
  gemm_lane acc[MR][NV];
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) acc[r][v] = gemm_lane(0.0f);
  const index_t nv = std::min(NV, (n_left + W - 1) / W);
  if (nv == NV) {
    for (index_t p = 0; p < k; ++p) {
      const float* bp = b + p * ldb;
      gemm_lane bv[NV];
      for (index_t v = 0; v < NV; ++v) bv[v] = lane_load<gemm_lane>(bp + v * W);
      for (index_t r = 0; r < MR; ++r) {
        const gemm_lane av(a[r * k + p]);
        for (index_t v = 0; v < NV; ++v) acc[r][v] = gemm_step<P>(acc[r][v], av, bv[v]);
      }
    }
  } else {
    for (index_t p = 0; p < k; ++p) {
      const float* bp = b + p * ldb;
      for (index_t r = 0; r < MR; ++r) {
        const gemm_lane av(a[r * k + p]);
        for (index_t v = 0; v < nv; ++v) acc[r][v] = gemm_step<P>(acc[r][v], av, lane_load<gemm_lane>(bp + v * W));
      }
    }
  }
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < nv; ++v) {
      const index_t col = j + v * W;
      gemm_store(c.row(i + r) + col, acc[r][v], std::min(W, n_left - v * W), alpha, beta);
    }
}

template <class P, class TC>
void gemm_rows(const float* ap, index_t k, const float* bp, index_t ldb, mat<TC> c, index_t i0, index_t i1,
               float alpha, float beta) noexcept {
  constexpr index_t NR = gemm_nv * gemm_width;
  for (index_t j = 0; j < c.cols; j += NR) {
    const index_t n_left = c.cols - j;
    index_t i = i0;
    for (; i + gemm_mr <= i1; i += gemm_mr)
      gemm_micro<P, gemm_mr>(ap + i * k, k, bp + j, ldb, c, i, j, n_left, alpha, beta);
    switch (i1 - i) {
      case 3: gemm_micro<P, 3>(ap + i * k, k, bp + j, ldb, c, i, j, n_left, alpha, beta); break;
      case 2: gemm_micro<P, 2>(ap + i * k, k, bp + j, ldb, c, i, j, n_left, alpha, beta); break;
      case 1: gemm_micro<P, 1>(ap + i * k, k, bp + j, ldb, c, i, j, n_left, alpha, beta); break;
      default: break;
    }
  }
}

// op(X) as a dense fp32 (rows, cols) matrix with row stride ld (>= cols; the padding is zero).
template <class T>
void gemm_pack(const mat<T>& x, bool trans, index_t rows, index_t cols, index_t ld, float* out) noexcept {
  for (index_t r = 0; r < rows; ++r) {
    float* o = out + r * ld;
    if (trans)
      for (index_t q = 0; q < cols; ++q) o[q] = to_float(x(q, r));
    else
      for (index_t q = 0; q < cols; ++q) o[q] = to_float(x(r, q));
    std::fill(o + cols, o + ld, 0.0f);
  }
}

}  // namespace detail

template <class Policy = approx::exact, class TA, class TB, class TC>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC> && (!std::is_const_v<TC>)
void gemm(mat<const TA> A, mat<const TB> B, mat<TC> C, gemm_params p = {}) {
  constexpr std::string_view op = "gemm";
  detail::check_mat(A, op, "A");
  detail::check_mat(B, op, "B");
  detail::check_mat(C, op, "C");
  const index_t m = C.rows, n = C.cols;
  const index_t am = p.trans_a ? A.cols : A.rows, k = p.trans_a ? A.rows : A.cols;
  const index_t bk = p.trans_b ? B.cols : B.rows, bn = p.trans_b ? B.rows : B.cols;
  if (am != m || bk != k || bn != n) [[unlikely]] {
    using detail::concat;
    using std::to_string;
    const std::string a = concat("op(A) is (", to_string(am), "x", to_string(k), ")");
    const std::string b = concat("op(B) is (", to_string(bk), "x", to_string(bn), ")");
    if (am != m) throw error(op, "A", concat(a, " but C has ", to_string(m), " rows"));
    if (bk != k) throw error(op, "B", concat(b, " but ", a));
    throw error(op, "B", concat(b, " but C has ", to_string(n), " columns"));
  }
  detail::require(!detail::views_overlap(C, A), op, "C", "overlaps A");
  detail::require(!detail::views_overlap(C, B), op, "C", "overlaps B");
  approx::check_policy<Policy>();
  if (m == 0 || n == 0) return;

  // Packed op(A) (M, K) and op(B) (K, ldb), ldb = N rounded up to whole vectors.
  const index_t ldb = (n + detail::gemm_width - 1) / detail::gemm_width * detail::gemm_width;
  std::vector<float> ap(std::size_t(m * k)), bp(std::size_t(k * ldb));
  detail::gemm_pack(A, p.trans_a, m, k, k, ap.data());
  detail::gemm_pack(B, p.trans_b, k, n, ldb, bp.data());

  const index_t row_blocks = (m + detail::gemm_mr - 1) / detail::gemm_mr;
  const bool threaded = double(m) * double(n) * double(k) >= double(1 << 21);
  auto run = [&](index_t b0, index_t b1) {
    detail::gemm_rows<Policy>(ap.data(), k, bp.data(), ldb, C, b0 * detail::gemm_mr,
                              std::min(m, b1 * detail::gemm_mr), p.alpha, p.beta);
  };
  if (threaded)
    parallel_for(row_blocks, run);
  else
    run(0, row_blocks);
}

// Views of mutable A or B convert: the same call with mat<float> arguments.
template <class Policy = approx::exact, class TA, class TB, class TC>
  requires(!std::is_const_v<TA> || !std::is_const_v<TB>)
void gemm(mat<TA> A, mat<TB> B, mat<TC> C, gemm_params p = {}) {
  gemm<Policy, std::remove_const_t<TA>, std::remove_const_t<TB>, TC>(mat<const std::remove_const_t<TA>>(A),
                                                                     mat<const std::remove_const_t<TB>>(B), C, p);
}

}  // namespace tpp
