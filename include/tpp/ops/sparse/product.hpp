#pragma once
// Sparse x dense and dense x sparse products with the multiply policy, on any sparse_format (Policy =
// approx::exact, constrained by approx::multiplier; P(a, b) = Policy::mul(a, b)):
//   sparse_dense: C (M, N) = alpha S B + beta C,   S (M, K) sparse, B (K, N) dense
//   dense_sparse: C (M, N) = alpha A W^T + beta C, A (M, K) dense, W (N, K) sparse: a linear layer
//     y = x W^T with its weight stored (out, in), rows of W are output features
//
// Every product of a weight and an activation goes through the policy, in gemm's operand order: P(s, b)
// for S B and P(a, w) for A W^T (so the result equals gemm<Policy> on the dense operands). Each output
// element is an fp32 sum over the sparse operand's stored entries of its row (W: of row j) in ascending
// column order, starting from +0: acc = acc + P(s, b), and with approx::exact acc = fma(s, b, acc) (not
// rounded before the add, as in gemm). Then C = alpha acc (plain fp32 multiply, skipped for alpha = 1) +
// beta C (one fma); beta = 0 never reads C. The order does not depend on the SIMD width, the column tile or
// the thread count: the OpenMP drivers equal the single-threaded kernel bit for bit. Stored zeros take
// part (P(0, Inf) = NaN); absent entries contribute nothing, even against an Inf or NaN in the dense
// operand (where a dense gemm gives NaN).
//
// Paths: along the dense operand's contiguous rows, C's columns in tiles of 4 vectors, then single vectors
// (columns past the last full vector run the same steps on scalars, scalar_tile), tiles outer so that B's
// panel stays in cache. CSR, N:M and codebook run over k-panels (sparse/panels.hpp), BCSR row by row in
// registers (sparse/bcsr.hpp). A W^T: A's rows are packed by panels of 8 vectors, transposed (K, panel),
// the same loops run with W as the sparse operand, and the results are written back transposed.
// skip_zero_activations: sparse/zero_skipping.hpp.
//
// API:
//   sparse_params{alpha, beta, skip_zero_activations}
//   sparse_kernel<Policy, Format> k(S, params)   validates S and prepares it once; keeps a reference to S,
//                                                which must outlive it and not change
//     k.sparse_dense(B, C, [workspace]); k.dense_sparse(A, C, [workspace])
//                                                single-threaded, safe inside a caller's parallel region
//     k.workspace_bytes()                        the scratch a call needs at most; without a workspace, a
//                                                call takes a frame on the calling thread's arena
//   sparse_dense<Policy>(S, B, C, params), dense_sparse<Policy>(A, W, C, params)
//                                                OpenMP drivers: output rows split over the team (with
//                                                skip_zero_activations, S B splits C's columns), each thread's
//                                                scratch a frame on its own arena; serial inside a parallel
//                                                region
//
// Errors (tpp::error naming the op and argument): invalid views (negative sizes, ld < cols, null data with a
// nonzero size), shapes that do not chain, C overlapping the dense operand or the sparse operand's arrays,
// a workspace too small or overlapping an operand, non-finite alpha or beta, malformed formats (row_ptr of
// the wrong length, not starting at 0, decreasing or not ending at the entry count; column / block / group
// positions out of range or not ascending; vectors of the wrong length; N > M; block sizes that do not
// divide; tables of the wrong length), sizes whose products overflow index_t.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/parallel.hpp"
#include "../../core/workspace.hpp"
#include "bcsr.hpp"
#include "common.hpp"
#include "formats.hpp"
#include "panels.hpp"
#include "zero_skipping.hpp"

namespace tpp {

struct sparse_params {
  float alpha = 1.0f, beta = 0.0f;
  bool skip_zero_activations = false;  // EIE: iterate the dense operand's non-zeros (sparse/zero_skipping.hpp)
};

namespace detail::sparse_impl {

inline constexpr index_t scalar_cols = 16;  // columns per pass of the scalar tile

// Rows [i0, i1) of S into n <= scalar_cols columns, on scalars: b points at the tile's first column of B, c
// at the tile's first column of C's row i0.
template <class P, bool WF, class Rows>
void scalar_tile(const Rows& S, index_t i0, index_t i1, const float* b, index_t ldb, float* c, index_t ldc, index_t n,
                 const scaling& o) {
  for (index_t i = i0; i < i1; ++i) {
    float acc[scalar_cols] = {};
    S.row(i, [&](index_t k, float s) {
      const float* bk = b + k * ldb;
      for (index_t j = 0; j < n; ++j) acc[j] = step<P, WF>(s, bk[j], acc[j]);
    });
    float* ci = c + (i - i0) * ldc;
    for (index_t j = 0; j < n; ++j) ci[j] = finish(acc[j], o, o.beta != 0.0f ? ci[j] : 0.0f);
  }
}

inline constexpr index_t panel = simd::enabled ? 8 * W : scalar_cols;  // rows of A per packed panel
inline constexpr index_t out_chunk = 64;                                // rows of W per transposed result

// One call's scratch regions (nullptr where its path takes none).
struct regions {
  float* tile = nullptr;      // k-panels: the fp32 output tile (tile_floats)
  float* packed_b = nullptr;  // B's copied panel (BCSR: S.cols x 4 vectors; k-panels: packed_b_floats)
  float* packed_a = nullptr;  // A W^T: A's rows packed transposed, (K, panel)
  float* result = nullptr;    // A W^T: the transposed panel result, (chunk, panel)
  float* sums = nullptr;      // zero skipping: the output's accumulators
};

// The regions of product_rows over ranges of at most `rows` rows of S, taken from z (a scratch) or
// counted (a scratch_size).
template <class Z, class F>
void product_regions(Z& z, const F& S, const k_panels& kp, index_t rows, regions& r) {
  if constexpr (simd::enabled) {
    if constexpr (std::is_same_v<F, bcsr_matrix>) {
      if (packs_b(S, rows)) r.packed_b = take(z, S.cols * 4 * W);
    } else {
      r.tile = take(z, tile_floats(rows));
      r.packed_b = take(z, packed_b_floats(kp));
    }
  }
}

// C's columns [0, n) for rows [i0, i1) of S (multiples of unit_rows(S), or i1 = S.rows), c at C's row i0:
// column tiles outer (the B panel stays in cache), rows inner. kp: S's k-panel layout (not for BCSR);
// r: product_regions for at least i1 - i0 rows.
template <class P, bool WF, class F>
void product_rows(const F& S, const k_panels& kp, index_t i0, index_t i1, const float* b, index_t ldb, float* c,
                  index_t ldc, index_t n, const scaling& o, const regions& r) {
  const auto rows = rows_of(S);
  index_t j = 0;
  if constexpr (simd::enabled) {
    if constexpr (std::is_same_v<F, bcsr_matrix>)
      j = bcsr_columns<P, WF>(S, i0, i1, b, ldb, c, ldc, n, o, r.packed_b);
    else
      j = panel_columns<P, WF>(kp, i0, i1, b, ldb, c, ldc, n, o, r.tile, r.packed_b);
  }
  for (; j < n; j += scalar_cols)
    scalar_tile<P, WF>(rows, i0, i1, b + j, ldb, c + j, ldc, std::min(scalar_cols, n - j), o);
}

inline void check_scaling(const sparse_params& p, std::string_view op) {
  if (!std::isfinite(p.alpha)) throw error(op, "alpha", concat("(", to_string(p.alpha), ") is not finite"));
  if (!std::isfinite(p.beta)) throw error(op, "beta", concat("(", to_string(p.beta), ") is not finite"));
}

// A caller's workspace as a byte view (empty for none).
inline mat<const std::byte> workspace_view(const workspace& ws) noexcept {
  return {static_cast<const std::byte*>(ws.data), ws.empty() ? 0 : 1, index_t(ws.bytes), index_t(ws.bytes)};
}

}  // namespace detail::sparse_impl

// A product with one sparse operand, validated and prepared once; the calls are single-threaded.
template <class Policy = approx::exact, class Format = csr_matrix>
  requires approx::multiplier<Policy> && sparse_format<Format>
class sparse_kernel {
 public:
  static constexpr std::string_view label = "sparse_kernel";

  explicit sparse_kernel(const Format& s, sparse_params p = {}) : s_(&s), p_(p) {
    detail::sparse_impl::check_format(s, label, "S");
    detail::sparse_impl::check_scaling(p, label);
    approx::check_policy<Policy>();
    if (p.skip_zero_activations) t_ = detail::sparse_impl::transpose(s);
    if constexpr (simd::enabled && !std::is_same_v<Format, bcsr_matrix>) kp_ = detail::sparse_impl::by_panels(s);
  }

  const Format& matrix() const noexcept { return *s_; }
  const sparse_params& params() const noexcept { return p_; }

  // The bytes of a workspace for either call (the larger of the two).
  std::size_t workspace_bytes() const noexcept {
    scratch_size sd, ds;
    detail::sparse_impl::regions r;
    if (p_.skip_zero_activations)
      sums_region(sd, r);
    else
      detail::sparse_impl::product_regions(sd, *s_, kp_, s_->rows, r);
    ds_regions(ds, r);
    return std::max(sd.bytes(), ds.bytes());
  }

  // C (S.rows, N) = alpha S B + beta C, B (S.cols, N).
  void sparse_dense(mat<const float> B, mat<float> C, workspace ws = {}) const {
    check_sparse_dense(label, B, C);
    check_workspace(ws, B, "B", C);
    if (p_.skip_zero_activations)
      sd_columns(B, C, 0, C.cols, ws);
    else
      sd_rows(B, C, 0, C.rows, ws);
  }

  // C (M, S.rows) = alpha A S^T + beta C, A (M, S.cols).
  void dense_sparse(mat<const float> A, mat<float> C, workspace ws = {}) const {
    check_dense_sparse(label, A, C);
    check_workspace(ws, A, "A", C);
    ds_rows(A, C, 0, C.rows, ws);
  }

  // ---- for the OpenMP drivers: validated arguments, ranges of C, each call's scratch a frame of its own ----

  void check_sparse_dense(std::string_view op, const mat<const float>& B, const mat<float>& C,
                          std::string_view s_name = "S") const {
    detail::check_mat(B, op, "B");
    detail::check_mat(C, op, "C");
    detail::check_shape(B, s_->cols, B.cols, op, "B", "S.cols by B.cols");
    detail::check_shape(C, s_->rows, B.cols, op, "C", "S.rows by B.cols");
    if (detail::views_overlap(C, B)) throw error(op, "C", "overlaps B");
    detail::sparse_impl::check_not_in(C, *s_, op, "C", s_name);
  }
  void check_dense_sparse(std::string_view op, const mat<const float>& A, const mat<float>& C,
                          std::string_view s_name = "S") const {
    detail::check_mat(A, op, "A");
    detail::check_mat(C, op, "C");
    detail::check_shape(A, A.rows, s_->cols, op, "A", "A.rows by S.cols");
    detail::check_shape(C, A.rows, s_->rows, op, "C", "A.rows by S.rows");
    if (detail::views_overlap(C, A)) throw error(op, "C", "overlaps A");
    detail::sparse_impl::check_not_in(C, *s_, op, "C", s_name);
  }

  // Rows [i0, i1) of C = alpha S B + beta C (i0, i1 multiples of unit_rows(), or i1 = C.rows).
  void sd_rows(const mat<const float>& B, const mat<float>& C, index_t i0, index_t i1, workspace ws = {}) const {
    if (i0 >= i1) return;
    scratch z(ws, label);
    detail::sparse_impl::regions r;
    detail::sparse_impl::product_regions(z, *s_, kp_, i1 - i0, r);
    detail::sparse_impl::product_rows<Policy, true>(*s_, kp_, i0, i1, B.data, B.ld, C.row(i0), C.ld, C.cols, out(),
                                                    r);
  }
  // Columns [j0, j1) of C = alpha S B + beta C on the zero-skipping path.
  void sd_columns(const mat<const float>& B, const mat<float>& C, index_t j0, index_t j1, workspace ws = {}) const {
    scratch z(ws, label);
    detail::sparse_impl::regions r;
    sums_region(z, r);
    for (index_t j = j0; j < j1; ++j)
      detail::sparse_impl::zero_skipping<Policy, true>(t_, B.rows, B.data + j, B.ld, r.sums, C.rows, C.data + j, C.ld,
                                                       out());
  }
  // Rows [i0, i1) of C = alpha A S^T + beta C (i0 a multiple of panel_rows()).
  void ds_rows(const mat<const float>& A, const mat<float>& C, index_t i0, index_t i1, workspace ws = {}) const {
    using namespace detail::sparse_impl;
    const index_t K = A.cols, N = C.cols;
    scratch z(ws, label);
    regions rg;
    ds_regions(z, rg);
    if (p_.skip_zero_activations) {
      for (index_t i = i0; i < i1; ++i) zero_skipping<Policy, false>(t_, K, A.row(i), 1, rg.sums, N, C.row(i), 1, out());
      return;
    }
    const index_t chunk = out_rows();
    float* at = rg.packed_a;  // (K, panel)
    float* tr = rg.result;    // (chunk, panel)
    for (index_t r0 = i0; r0 < i1; r0 += panel) {
      const index_t mb = std::min(panel, i1 - r0);
      for (index_t k = 0; k < K; ++k) {
        float* dst = at + k * panel;
        for (index_t r = 0; r < mb; ++r) dst[r] = A(r0 + r, k);
        std::fill(dst + mb, dst + panel, 0.0f);
      }
      for (index_t j0 = 0; j0 < N; j0 += chunk) {
        const index_t j1 = std::min(N, j0 + chunk);
        product_rows<Policy, false>(*s_, kp_, j0, j1, at, panel, tr, panel, panel, scaling{}, rg);
        const scaling o = out();
        for (index_t r = 0; r < mb; ++r) {
          float* ci = C.row(r0 + r);
          for (index_t j = j0; j < j1; ++j)
            ci[j] = finish(tr[(j - j0) * panel + r], o, o.beta != 0.0f ? ci[j] : 0.0f);
        }
      }
    }
  }

  index_t unit_rows() const noexcept { return detail::sparse_impl::unit_rows(*s_); }
  static constexpr index_t panel_rows() noexcept { return detail::sparse_impl::panel; }

 private:
  detail::sparse_impl::scaling out() const noexcept { return {p_.alpha, p_.beta}; }

  // Rows of W per transposed result in A W^T: out_chunk rounded up to whole units.
  index_t out_rows() const noexcept {
    const index_t ur = unit_rows();
    return (detail::sparse_impl::out_chunk + ur - 1) / ur * ur;
  }

  // The scratch regions of the zero-skipping paths, and of A W^T (S B's: product_regions).
  template <class Z>
  void sums_region(Z& z, detail::sparse_impl::regions& r) const {
    r.sums = detail::sparse_impl::take(z, std::max<index_t>(s_->rows, 1));
  }
  template <class Z>
  void ds_regions(Z& z, detail::sparse_impl::regions& r) const {
    using namespace detail::sparse_impl;
    if (p_.skip_zero_activations) return sums_region(z, r);
    const index_t chunk = out_rows();
    r.packed_a = take(z, std::max<index_t>(s_->cols * panel, 1));
    r.result = take(z, chunk * panel);
    product_regions(z, *s_, kp_, chunk, r);
  }

  // A caller's workspace shares no byte with the operands.
  void check_workspace(const workspace& ws, const mat<const float>& in, std::string_view in_name,
                       const mat<float>& C) const {
    if (ws.empty()) return;
    const mat<const std::byte> w = detail::sparse_impl::workspace_view(ws);
    if (detail::views_overlap(w, in)) throw error(label, "workspace", detail::concat("overlaps ", in_name));
    if (detail::views_overlap(w, C)) throw error(label, "workspace", "overlaps C");
    detail::sparse_impl::check_not_in(w, *s_, label, "workspace", "S");
  }

  const Format* s_;
  sparse_params p_;
  detail::sparse_impl::columns t_;
  detail::sparse_impl::k_panels kp_;
};

// C = alpha S B + beta C, OpenMP-parallel over C's rows (zero-skipping: over C's columns).
template <class Policy = approx::exact, class Format, class TB>
  requires approx::multiplier<Policy> && sparse_format<Format> && std::same_as<std::remove_const_t<TB>, float>
void sparse_dense(const Format& S, mat<TB> B, mat<float> C, sparse_params p = {}) {
  constexpr std::string_view op = "sparse_dense";
  detail::sparse_impl::check_format(S, op, "S");
  detail::sparse_impl::check_scaling(p, op);
  const sparse_kernel<Policy, Format> k(S, p);
  const mat<const float> b = B;
  k.check_sparse_dense(op, b, C);
  if (C.empty()) return;
  const bool threaded = double(S.nnz()) * double(C.cols) >= double(1 << 16);
  if (p.skip_zero_activations) {
    if (!threaded) return k.sd_columns(b, C, 0, C.cols);
    parallel_for(C.cols, [&](index_t j0, index_t j1) { k.sd_columns(b, C, j0, j1); });
    return;
  }
  const index_t ur = k.unit_rows(), units = (C.rows + ur - 1) / ur;
  if (!threaded) return k.sd_rows(b, C, 0, C.rows);
  parallel_for(units, [&](index_t u0, index_t u1) { k.sd_rows(b, C, u0 * ur, std::min(C.rows, u1 * ur)); });
}

// C = alpha A W^T + beta C, OpenMP-parallel over C's rows (panels of A).
template <class Policy = approx::exact, class Format, class TA>
  requires approx::multiplier<Policy> && sparse_format<Format> && std::same_as<std::remove_const_t<TA>, float>
void dense_sparse(mat<TA> A, const Format& W, mat<float> C, sparse_params p = {}) {
  constexpr std::string_view op = "dense_sparse";
  detail::sparse_impl::check_format(W, op, "W");
  detail::sparse_impl::check_scaling(p, op);
  const sparse_kernel<Policy, Format> k(W, p);
  const mat<const float> a = A;
  k.check_dense_sparse(op, a, C, "W");
  if (C.empty()) return;
  const double work = double(W.nnz()) * double(C.rows);
  const index_t pr = p.skip_zero_activations ? 1 : k.panel_rows();
  const index_t units = (C.rows + pr - 1) / pr;
  if (work < double(1 << 16)) return k.ds_rows(a, C, 0, C.rows);
  parallel_for(units, [&](index_t u0, index_t u1) { k.ds_rows(a, C, u0 * pr, std::min(C.rows, u1 * pr)); });
}

}  // namespace tpp
