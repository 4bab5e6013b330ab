#pragma once
// GEMM: C = alpha * op(A) * op(B) + beta * C, with every product of an A and a B element taken by the
// multiply policy and the accumulation in fp32. op(X) = X, or X transposed when trans_x (the view then
// holds the stored, untransposed matrix). alpha and beta scale exactly (plain fp32 multiplies, not the
// policy); beta = 0 never reads C (so NaN or garbage in C does not propagate).
//
//   gemm<Policy>(A, B, C, gemm_params, epilogue)   A: (M, K) or (K, M); B: (K, N) or (N, K); C: (M, N)
//       one call, OpenMP-parallel when large
//   gemm_kernel<Policy, TA, TB, TC>(gemm_shape, gemm_params)
//       a fixed shape and leading dimensions, validated once; called with raw pointers, single-threaded
//   brgemm_kernel<Policy, TA, TB, TC>(gemm_shape, gemm_params)
//       batch-reduce: C = alpha sum_i op(A_i) op(B_i) + beta C, the batch as addresses, offsets or a
//       stride (LIBXSMM's three kinds, counted in elements); single-threaded
//   element types: A, B fp32 or bf16; C fp32 or bf16 (bf16 results round to nearest even, once)
//   epilogue (ops/epilogue.hpp): bias per row or column, an activation, a chain of them, or any functor,
//       run on each finished tile of C (fp32, before a bf16 C's rounding) while it is in L1
//
// Structure (BLIS): for each NC-column panel of op(B) and KC-deep slice of K, op(B) is packed into
// NR-column slivers; for each MC-row block, op(A) is packed into MR-row slivers (bf16 widened, transposes
// resolved, edges zero-padded: per-operand work is O(n^2); an fp32 untransposed A that needs no per-operand
// work is read in place, only its edge sliver packed); the micro-kernel then keeps an MR x NR tile
// of C in registers over the KC loop (edge tiles go through a local tile). Block sizes are constexpr per
// policy kind and register file (gemm_blocking). With approx::exact the micro-kernel uses FMA (the
// product is not rounded before the add, as in every BLAS). Policies that only transform operands take a
// fast path with that work done while packing (gemm_fast: drum<K <= 12> is then one FMA per product,
// bf16_rz / bf16_rne a multiply, a rounding and an add; lut<Model, M> one FMA with a product table built per
// B sliver, detail/gemm_lut.hpp), bit for bit the policy's products, whenever the block's exponent
// ranges keep every product normal; any other policy, or block, runs the careful step
// acc += Policy::mul(a, b) with the policy's bit-identical SIMD mul. With TPP_NO_SIMD the same loops run on scalars. A bf16 C is
// accumulated in an fp32 workspace and rounded once. Large problems are split over the OpenMP team by
// columns (or rows, when C is tall), each thread packing its own panels; none when called from inside a
// parallel region.
//
// A batch-reduce runs the same loops with the batch inside the column-panel loop: each (A_i, B_i) pair
// contributes its K slices to the same C tiles, beta applies on the very first slice, the epilogue after
// the last.
//
// Errors (tpp::error): invalid views or kernel shapes (sizes < 0, ld < the stored columns, extents that
// overflow), op(A) / op(B) / C shapes that do not chain, non-finite alpha or beta, C overlapping A or B
// (any A_i or B_i of a batch), null pointers with a nonzero size or count, a negative count, a policy
// whose validate() fails.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>
#include <string>
#include <type_traits>

#include "../approx/approx8.hpp"
#include "../approx/bf16.hpp"
#include "../approx/drum.hpp"
#include "../approx/exact.hpp"
#include "../approx/mitchell.hpp"
#include "../approx/policy.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/scratch.hpp"
#include "../core/simd.hpp"
#include "../backend/libxsmm.hpp"
#include "detail/gemm_approx8.hpp"
#include "detail/gemm_blocks.hpp"
#include "detail/gemm_int8.hpp"
#include "detail/gemm_lut.hpp"
#include "epilogue.hpp"

namespace tpp {

namespace detail {

// The operand pairs of a GEMM or batch-reduce GEMM: operands(i) returns {A_i, B_i} as views of the stored
// matrices, for i < count (a plain GEMM has count 1). All A_i share one shape, all B_i another.
template <class TA, class TB>
struct operand_pair {
  mat<const TA> a;
  mat<const TB> b;
};

// C = beta C (never reading C when beta = 0), then the epilogue: the result of an empty sum (k = 0 or an
// empty batch).
template <class E>
void gemm_scale_only(const mat<float>& c, float beta, const E& ep, index_t gi, index_t gj) {
  for (index_t i = 0; i < c.rows; ++i) {
    float* row = c.row(i);
    for (index_t j = 0; j < c.cols; ++j) row[j] = beta != 0.0f ? beta * row[j] : 0.0f;
    if constexpr (!std::is_same_v<E, epilogue::none>) ep(gi + i, gj, row, c.cols);
  }
}

// gemm_serial for bf16 x bf16 on AVX512_BF16 (gemm_bf16_pairs): the same loops over K-pair-packed
// operands, kc / 2 vdpbf16ps steps per slice.
template <class blk, class Ops, class E>
void gemm_serial_bf16_pairs(index_t count, const Ops& operands, const mat<float>& c, index_t k, const gemm_params& p,
                            const E& ep, index_t gi, index_t gj, float* ap, float* bp, float* tile) {
  constexpr index_t MR = blk::mr, NR = blk::nr;
  for (index_t j0 = 0; j0 < c.cols; j0 += blk::nc) {
    const index_t nc = std::min(blk::nc, c.cols - j0);
    for (index_t bi = 0; bi < count; ++bi) {
      const operand_pair<bf16, bf16> ops = operands(bi);
      for (index_t p0 = 0; p0 < k; p0 += blk::kc) {
        const index_t kc = std::min(blk::kc, k - p0), kp = (kc + 1) / 2;
        const gemm_out<E> out{c, p.alpha, p.beta, bi == 0 && p0 == 0, bi == count - 1 && p0 + kc == k, &ep, gi, gj};
        gemm_pack_groups<NR, 2>(ops.b, !p.trans_b, j0, nc, p0, kc, bp);
        for (index_t i0 = 0; i0 < c.rows; i0 += blk::mc) {
          const index_t mc = std::min(blk::mc, c.rows - i0);
          gemm_pack_groups<MR, 2>(ops.a, p.trans_a, i0, mc, p0, kc, ap);
          gemm_block<bf16_pair_step, MR, blk::nv>(ap, nullptr, 0, bp, out, i0, mc, j0, nc, kp, tile);
        }
      }
    }
  }
}

// C (m, n) fp32 = alpha sum_i op(A_i) op(B_i) + beta C, then the epilogue, on one thread with this
// thread's packing buffers. (gi, gj): c's origin in the caller's whole C, for the epilogue.
template <class P, class TA, class TB, class Ops, class E>
void gemm_serial(index_t count, const Ops& operands, const mat<float>& c, index_t k, const gemm_params& p,
                 const E& ep, index_t gi = 0, index_t gj = 0) {
  using blk = gemm_blocking<P>;
  constexpr index_t MR = blk::mr, NR = blk::nr;
  const index_t m = c.rows, n = c.cols;
  if (k == 0 || count == 0) {
    gemm_scale_only(c, p.beta, ep, gi, gj);
    return;
  }
  if constexpr (gemm_lut<P>::available) {
    gemm_serial_lut<P, TA, TB>(count, operands, c, k, p, ep, gi, gj);
    return;
  }
  float* ap = thread_scratch<1>(std::size_t(blk::mc * blk::kc));
  float* bp = thread_scratch<2>(std::size_t(blk::kc * blk::nc));
  alignas(64) float tile[MR * NR];
  if constexpr (gemm_bf16_pairs<P, TA, TB>) {
    gemm_serial_bf16_pairs<blk>(count, operands, c, k, p, ep, gi, gj, ap, bp, tile);
    return;
  }
  using fast = gemm_fast<P>;
  // An fp32, untransposed A that the policy does not transform while packing is read in place.
  const bool direct_a = std::is_same_v<TA, float> && !fast::available && !p.trans_a;
  float* bp_plain = nullptr;  // the unmodified B panel, packed on demand for the careful path
  for (index_t j0 = 0; j0 < n; j0 += blk::nc) {
    const index_t nc = std::min(blk::nc, n - j0);
    for (index_t bi = 0; bi < count; ++bi) {
      const operand_pair<TA, TB> ops = operands(bi);
      const mat<const TA>& a = ops.a;
      const mat<const TB>& b = ops.b;
      for (index_t p0 = 0; p0 < k; p0 += blk::kc) {
        const index_t kc = std::min(blk::kc, k - p0);
        const gemm_out<E> out{c, p.alpha, p.beta, bi == 0 && p0 == 0, bi == count - 1 && p0 + kc == k, &ep, gi, gj};
        panel_range rb;
        bool b_plain_packed = false;
        if constexpr (fast::available)
          gemm_pack_b<NR>(b, p.trans_b, p0, kc, j0, nc, bp, [](float x) { return fast::pack(x); }, &rb);
        else
          gemm_pack_b<NR>(b, p.trans_b, p0, kc, j0, nc, bp);
        for (index_t i0 = 0; i0 < m; i0 += blk::mc) {
          const index_t mc = std::min(blk::mc, m - i0);
          bool use_fast = false;
          const float* bcur = bp;
          panel_range ra;
          if constexpr (fast::available) {
            gemm_pack_a<MR>(a, p.trans_a, i0, mc, p0, kc, ap, [](float x) { return fast::pack(x); }, &ra);
            use_fast = products_in_range<fast>(ra, rb);
            if constexpr (fast::a_offset != 0)
              if (use_fast)
                for (index_t i = 0; i < (mc + MR - 1) / MR * MR * kc; ++i)
                  ap[i] = approx::detail::from_bits(approx::detail::bits(ap[i]) - fast::a_offset);
            if (!use_fast) {  // careful path: unmodified operands through the policy's own mul
              gemm_pack_a<MR>(a, p.trans_a, i0, mc, p0, kc, ap);
              if (!b_plain_packed) {
                bp_plain = thread_scratch<4>(std::size_t(blk::kc * blk::nc));
                gemm_pack_b<NR>(b, p.trans_b, p0, kc, j0, nc, bp_plain);
                b_plain_packed = true;
              }
              bcur = bp_plain;
            }
          } else if (direct_a) {  // only the edge sliver is packed; full slivers are read in place
            const index_t full = mc / MR * MR;
            if (full < mc) gemm_pack_a<MR>(a, false, i0 + full, mc - full, p0, kc, ap + full * kc);
          } else {
            gemm_pack_a<MR>(a, p.trans_a, i0, mc, p0, kc, ap);
          }
          const float* ad = nullptr;
          if constexpr (std::is_same_v<TA, float>)
            if (direct_a) ad = a.row(i0) + p0;
          if (use_fast) {
            if constexpr (requires { fast::zero_specialised; }) {
              auto run = [&]<bool az, bool bz>() {
                gemm_block<typename fast::template zero_step<az, bz>, MR, blk::nv>(ap, nullptr, 0, bcur, out, i0, mc,
                                                                                  j0, nc, kc, tile);
              };
              if (ra.zeros && rb.zeros)
                run.template operator()<true, true>();
              else if (ra.zeros)
                run.template operator()<true, false>();
              else if (rb.zeros)
                run.template operator()<false, true>();
              else
                run.template operator()<false, false>();
            } else if constexpr (fast::available) {
              gemm_block<fast, MR, blk::nv>(ap, nullptr, 0, bcur, out, i0, mc, j0, nc, kc, tile);
            }
          } else {
            gemm_block<policy_step<P>, MR, blk::nv>(ap, ad, a.ld, bcur, out, i0, mc, j0, nc, kc, tile);
          }
        }
      }
    }
  }
}

// Splits the problem over the OpenMP team by columns of C (or by rows when C is tall), each part a
// serial blocked GEMM on sub-views of every A_i or B_i; serial when small or already inside a parallel
// region.
template <class P, class TA, class TB, class Ops, class E>
void gemm_threaded(index_t count, const Ops& operands, const mat<float>& c, index_t k, const gemm_params& p,
                   const E& ep) {
  constexpr index_t NR = gemm_blocking<P>::nr, MR = gemm_blocking<P>::mr;
  const index_t m = c.rows, n = c.cols;
  const bool by_cols = n >= m;
  const index_t units = by_cols ? (n + NR - 1) / NR : (m + MR - 1) / MR;
  const bool threaded = double(m) * double(n) * double(k) * double(count) >= double(1 << 21) && units > 1;
  if (!threaded || in_parallel() || max_threads() == 1) {
    gemm_serial<P, TA, TB>(count, operands, c, k, p, ep);
    return;
  }
  parallel_for(units, [&](index_t u0, index_t u1) {
    if (by_cols) {
      const index_t j0 = u0 * NR, j1 = std::min(n, u1 * NR);
      auto cols_of = [&](index_t i) {
        const operand_pair<TA, TB> o = operands(i);
        const mat<const TB>& b = o.b;
        return operand_pair<TA, TB>{o.a, p.trans_b ? mat<const TB>{b.row(j0), j1 - j0, b.cols, b.ld}
                                                   : mat<const TB>{b.data + j0, b.rows, j1 - j0, b.ld}};
      };
      gemm_serial<P, TA, TB>(count, cols_of, mat<float>{c.data + j0, m, j1 - j0, c.ld}, k, p, ep, 0, j0);
    } else {
      const index_t i0 = u0 * MR, i1 = std::min(m, u1 * MR);
      auto rows_of = [&](index_t i) {
        const operand_pair<TA, TB> o = operands(i);
        const mat<const TA>& a = o.a;
        return operand_pair<TA, TB>{p.trans_a ? mat<const TA>{a.data + i0, a.rows, i1 - i0, a.ld}
                                              : mat<const TA>{a.row(i0), i1 - i0, a.cols, a.ld},
                                    o.b};
      };
      gemm_serial<P, TA, TB>(count, rows_of, mat<float>{c.row(i0), i1 - i0, n, c.ld}, k, p, ep, i0, 0);
    }
  });
}

// Any C type: an fp32 C directly; a bf16 C accumulated in an fp32 workspace, then alpha, beta and the
// epilogue on each row and one rounding.
template <class P, class TA, class TB, class TC, class Ops, class E>
void gemm_run(bool threaded, index_t count, const Ops& operands, const mat<TC>& c, index_t k, const gemm_params& p,
              const E& ep) {
  if constexpr (std::is_same_v<TC, float>) {
    if (threaded)
      gemm_threaded<P, TA, TB>(count, operands, c, k, p, ep);
    else
      gemm_serial<P, TA, TB>(count, operands, c, k, p, ep);
  } else {
    const index_t m = c.rows, n = c.cols;
    float* ws = thread_scratch<3>(std::size_t(m * n));
    const mat<float> w{ws, m, n, n};
    const gemm_params q{1.0f, 0.0f, p.trans_a, p.trans_b};
    if (threaded)
      gemm_threaded<P, TA, TB>(count, operands, w, k, q, epilogue::none{});
    else
      gemm_serial<P, TA, TB>(count, operands, w, k, q, epilogue::none{});
    for (index_t i = 0; i < m; ++i) {
      float* row = ws + i * n;
      for (index_t j = 0; j < n; ++j) {
        const float x = p.alpha * row[j];
        row[j] = p.beta != 0.0f ? std::fma(p.beta, to_float(c(i, j)), x) : x;
      }
      if constexpr (!std::is_same_v<E, epilogue::none>) ep(i, 0, row, n);
      for (index_t j = 0; j < n; ++j) c(i, j) = to_bf16_rne(row[j]);
    }
  }
}

// The stored shapes of A and B for op(A) (m, k) and op(B) (k, n).
inline index_t stored_rows(bool trans, index_t r, index_t c) noexcept { return trans ? c : r; }

// op(A), op(B) and C chain, or throw naming the argument that does not fit.
template <class TA, class TB, class TC>
void check_gemm_shapes(std::string_view op, const mat<TA>& A, const mat<TB>& B, const mat<TC>& C,
                       const gemm_params& p) {
  const index_t m = C.rows, n = C.cols;
  const index_t am = p.trans_a ? A.cols : A.rows, k = p.trans_a ? A.rows : A.cols;
  const index_t bk = p.trans_b ? B.cols : B.rows, bn = p.trans_b ? B.rows : B.cols;
  if (am != m || bk != k || bn != n) [[unlikely]] {
    using std::to_string;
    const std::string a = concat("op(A) is (", to_string(am), "x", to_string(k), ")");
    const std::string b = concat("op(B) is (", to_string(bk), "x", to_string(bn), ")");
    if (am != m) throw error(op, "A", concat(a, " but C has ", to_string(m), " rows"));
    if (bk != k) throw error(op, "B", concat(b, " but ", a));
    throw error(op, "B", concat(b, " but C has ", to_string(n), " columns"));
  }
}

inline void check_gemm_params(std::string_view op, const gemm_params& p) {
  if (!std::isfinite(p.alpha)) throw error(op, "alpha", concat("(", std::to_string(p.alpha), ") is not finite"));
  if (!std::isfinite(p.beta)) throw error(op, "beta", concat("(", std::to_string(p.beta), ") is not finite"));
}

}  // namespace detail

// C = alpha op(A) op(B) + beta C, then the epilogue; OpenMP-parallel when large (see the top of the file).
template <class Policy = approx::exact, class TA, class TB, class TC, class Epilogue = epilogue::none>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC> && (!std::is_const_v<TC>)
void gemm(mat<const TA> A, mat<const TB> B, mat<TC> C, gemm_params p = {}, const Epilogue& ep = {}) {
  constexpr std::string_view op = "gemm";
  detail::check_mat(A, op, "A");
  detail::check_mat(B, op, "B");
  detail::check_mat(C, op, "C");
  detail::check_gemm_shapes(op, A, B, C, p);
  detail::check_gemm_params(op, p);
  if (detail::views_overlap(C, A)) throw error(op, "C", "overlaps A");
  if (detail::views_overlap(C, B)) throw error(op, "C", "overlaps B");
  approx::check_policy<Policy>();
  if (C.empty()) return;
  const index_t k = p.trans_a ? A.rows : A.cols;
  const auto operands = [&](index_t) { return detail::operand_pair<TA, TB>{A, B}; };
  detail::gemm_run<Policy, TA, TB>(true, 1, operands, C, k, p, ep);
}

// Views of mutable A or B convert: the same call with mat<const T> arguments.
template <class Policy = approx::exact, class TA, class TB, class TC, class Epilogue = epilogue::none>
  requires(!std::is_const_v<TA> || !std::is_const_v<TB>) && detail::gemm_element<TA> && detail::gemm_element<TB>
void gemm(mat<TA> A, mat<TB> B, mat<TC> C, gemm_params p = {}, const Epilogue& ep = {}) {
  gemm<Policy, std::remove_const_t<TA>, std::remove_const_t<TB>, TC>(mat<const std::remove_const_t<TA>>(A),
                                                                     mat<const std::remove_const_t<TB>>(B), C, p, ep);
}

namespace detail {

// The checks of the integer GEMMs: valid views that chain, alpha 1, beta 0 or 1, C apart from A and B.
template <class TA, class TB>
void check_int_gemm(std::string_view op, const mat<TA>& A, const mat<TB>& B, const mat<std::int32_t>& C,
                    const gemm_params& p) {
  check_mat(A, op, "A");
  check_mat(B, op, "B");
  check_mat(C, op, "C");
  check_gemm_shapes(op, A, B, C, p);
  if (p.alpha != 1.0f) throw error(op, "alpha", concat("(", std::to_string(p.alpha), ") must be 1 for an integer GEMM"));
  if (p.beta != 0.0f && p.beta != 1.0f)
    throw error(op, "beta", concat("(", std::to_string(p.beta), ") must be 0 or 1 for an integer GEMM"));
  if (views_overlap(C, A)) throw error(op, "C", "overlaps A");
  if (views_overlap(C, B)) throw error(op, "C", "overlaps B");
}

}  // namespace detail

// Exact integer GEMM for quantized inference: C (int32) = op(A) (uint8) op(B) (int8) [+ C]: alpha must be 1
// and beta 0 or 1 (no rounding anywhere; vpdpbusd where the compiler targets AVX512_VNNI, int32 lanes
// otherwise; detail/gemm_int8.hpp). OpenMP-parallel when large.
inline void gemm(mat<const std::uint8_t> A, mat<const std::int8_t> B, mat<std::int32_t> C, gemm_params p = {}) {
  detail::check_int_gemm("gemm", A, B, C, p);
  if (C.empty()) return;
  detail::gemm_u8s8_threaded(A, B, C, p.trans_a ? A.rows : A.cols, p.trans_a, p.trans_b, p.beta == 1.0f);
}

// Approximate integer GEMM with an 8-bit multiplier (approx::approx8<Model>, e.g. an EvoApproxLib circuit):
// C (int32) = sum_k Model::mul(op(A)(i, k), op(B)(k, j)) [+ C], both operands uint8 or both int8 as the
// model takes them; alpha must be 1 and beta 0 or 1; sums are exact (modulo 2^32). Per-sliver product
// tables make the inner step one load and one add per 16 products (detail/gemm_approx8.hpp).
// OpenMP-parallel when large.
template <class Policy, class TA, class TB>
  requires approx::is_approx8<Policy> && std::same_as<std::remove_const_t<TA>, typename Policy::operand_type> &&
           std::same_as<std::remove_const_t<TB>, typename Policy::operand_type>
void gemm(mat<TA> A, mat<TB> B, mat<std::int32_t> C, gemm_params p = {}) {
  using T = typename Policy::operand_type;
  const mat<const T> a(A);
  const mat<const T> b(B);
  detail::check_int_gemm("gemm", a, b, C, p);
  if (C.empty()) return;
  const index_t k = p.trans_a ? a.rows : a.cols;
  using blk = detail::gemm_approx8_blocking;
  detail::gemm_s32_threaded<blk::mr, blk::nr>(a, b, C, k, p.trans_a, p.trans_b,
                                              [&](const auto& as, const auto& bs, const mat<std::int32_t>& cs) {
                                                detail::gemm_approx8_serial<Policy>(as, bs, cs, k, p.trans_a,
                                                                                    p.trans_b, p.beta == 1.0f);
                                              });
}

// The sizes of a GEMM for a kernel object: op(A) (m, k), op(B) (k, n), C (m, n); leading dimensions of
// the stored matrices in elements, 0 meaning dense (the stored matrix's column count).
struct gemm_shape {
  index_t m = 0, n = 0, k = 0;
  index_t lda = 0, ldb = 0, ldc = 0;
};

namespace detail {

// A validated shape with the leading dimensions resolved, shared by gemm_kernel and brgemm_kernel.
struct gemm_layout {
  gemm_shape s;
  gemm_params p;
  index_t a_rows, a_cols, b_rows, b_cols;

  gemm_layout(std::string_view op, gemm_shape shape, const gemm_params& params) : s(shape), p(params) {
    check_sizes(op, s.m, s.n, "m", "n");
    check_sizes(op, s.k, 0, "k");
    check_gemm_params(op, p);
    a_rows = p.trans_a ? s.k : s.m;
    a_cols = p.trans_a ? s.m : s.k;
    b_rows = p.trans_b ? s.n : s.k;
    b_cols = p.trans_b ? s.k : s.n;
    resolve(op, s.lda, a_cols, "lda");
    resolve(op, s.ldb, b_cols, "ldb");
    resolve(op, s.ldc, s.n, "ldc");
    // the extents must fit index_t (check_mat on a probe view with a non-null pointer)
    static const char probe = 0;
    check_mat(mat<const char>{&probe, a_rows, a_cols, s.lda}, op, "A");
    check_mat(mat<const char>{&probe, b_rows, b_cols, s.ldb}, op, "B");
    check_mat(mat<const char>{&probe, s.m, s.n, s.ldc}, op, "C");
  }

  static void resolve(std::string_view op, index_t& ld, index_t cols, std::string_view name) {
    if (ld == 0) ld = cols;
    if (ld < cols)
      throw error(op, name, concat("(", std::to_string(ld), ") is smaller than the stored matrix's ",
                                   std::to_string(cols), " columns"));
  }

  template <class T>
  mat<const T> a_view(const T* a) const noexcept { return {a, a_rows, a_cols, s.lda}; }
  template <class T>
  mat<const T> b_view(const T* b) const noexcept { return {b, b_rows, b_cols, s.ldb}; }
  template <class T>
  mat<T> c_view(T* c) const noexcept { return {c, s.m, s.n, s.ldc}; }
};

}  // namespace detail

// A GEMM of one fixed shape, validated once: C = alpha op(A) op(B) + beta C, then an epilogue, on the
// calling thread (safe inside a user's parallel region; use gemm() for an OpenMP-parallel large GEMM).
template <class Policy = approx::exact, class TA = float, class TB = TA, class TC = float>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC>
class gemm_kernel {
 public:
  static constexpr std::string_view label = "gemm_kernel";

  explicit gemm_kernel(gemm_shape shape, gemm_params p = {}) : l_(label, shape, p) { approx::check_policy<Policy>(); }

  // a: the stored A (lda apart), b: the stored B, c: C (ldc apart).
  template <class Epilogue = epilogue::none>
  void operator()(const TA* a, const TB* b, TC* c, const Epilogue& ep = {}) const {
    const mat<const TA> A = l_.a_view(a);
    const mat<const TB> B = l_.b_view(b);
    const mat<TC> C = l_.c_view(c);
    detail::check_mat(A, label, "a");
    detail::check_mat(B, label, "b");
    detail::check_mat(C, label, "c");
    if (detail::views_overlap(C, A)) throw error(label, "c", "overlaps a");
    if (detail::views_overlap(C, B)) throw error(label, "c", "overlaps b");
    if (C.empty()) return;
    const auto operands = [&](index_t) { return detail::operand_pair<TA, TB>{A, B}; };
    detail::gemm_run<Policy, TA, TB>(false, 1, operands, C, l_.s.k, l_.p, ep);
  }

  const gemm_shape& shape() const noexcept { return l_.s; }
  const gemm_params& params() const noexcept { return l_.p; }

 private:
  detail::gemm_layout l_;
};

// Which implementation a kernel object may use: automatic picks an optional backend where it is built in
// and faster on the shape (LIBXSMM for exact fp32 BRGEMM blocks), tpp forces tpp's own loops.
enum class gemm_backend { automatic, tpp };

// Batch-reduce GEMM of one fixed shape (LIBXSMM's BRGEMM): C = alpha sum_{i < count} op(A_i) op(B_i)
// + beta C, then an epilogue, on the calling thread: the block that convolution and attention are
// composed from. The batch comes in LIBXSMM's three kinds, counted in elements (LIBXSMM counts bytes):
//   addresses: a[i], b[i]                              br(a_ptrs, b_ptrs, c, count)
//   offsets:   a + a_offs[i], b + b_offs[i]            br(a, a_offs, b, b_offs, c, count)
//   stride:    a + i * stride_a, b + i * stride_b      br.strided(a, stride_a, b, stride_b, c, count)
// count = 0 gives C = beta C (then the epilogue). C must not overlap any A_i or B_i.
//
// Backend: built with TPP_WITH_LIBXSMM, an exact fp32 kernel without transposes, alpha = 1, beta 0 or 1
// and m, n, k <= 128 (blocks where LIBXSMM 1.17's JIT measured 1.4-2x tpp's loops: 272 against 130-190
// GFLOP/s at 32^3 and 64^3) dispatches LIBXSMM once at construction and runs its kernels (a stride
// batch as offsets); when LIBXSMM returns no kernel (any shape under LIBXSMM_TARGET=generic), or for
// anything else, tpp's own loops run. uses_libxsmm() says which.
template <class Policy = approx::exact, class TA = float, class TB = TA, class TC = float>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC>
class brgemm_kernel {
 public:
  static constexpr std::string_view label = "brgemm_kernel";

  explicit brgemm_kernel(gemm_shape shape, gemm_params p = {}, gemm_backend backend = gemm_backend::automatic)
      : l_(label, shape, p) {
    approx::check_policy<Policy>();
#if defined(TPP_WITH_LIBXSMM)
    if constexpr (libxsmm_eligible)
      if (backend == gemm_backend::automatic && !p.trans_a && !p.trans_b && p.alpha == 1.0f &&
          (p.beta == 0.0f || p.beta == 1.0f) && std::max({l_.s.m, l_.s.n, l_.s.k}) <= 128 && l_.s.m > 0 &&
          l_.s.n > 0 && l_.s.k > 0) {
        using xsmm = backend::libxsmm::brgemm<float>;
        const gemm_shape& s = l_.s;
        xsmm by_address(s.m, s.n, s.k, s.lda, s.ldb, s.ldc, p.beta, backend::libxsmm::batch_kind::address);
        xsmm by_offset(s.m, s.n, s.k, s.lda, s.ldb, s.ldc, p.beta, backend::libxsmm::batch_kind::offset);
        if (by_address.valid() && by_offset.valid()) {
          xsmm_address_.emplace(std::move(by_address));
          xsmm_offset_.emplace(std::move(by_offset));
        }
      }
#else
    (void)backend;
#endif
  }

  template <class Epilogue = epilogue::none>
  void operator()(const TA* const* a, const TB* const* b, TC* c, index_t count, const Epilogue& ep = {}) const {
    check_batch(count, a, b);
    run([&](index_t i) { return pair(a[i], b[i]); }, c, count, ep, [&] {
#if defined(TPP_WITH_LIBXSMM)
      if constexpr (libxsmm_eligible) (*xsmm_address_)(a, b, c, count);
#endif
    });
  }

  template <class Epilogue = epilogue::none>
  void operator()(const TA* a, const index_t* a_offs, const TB* b, const index_t* b_offs, TC* c, index_t count,
                  const Epilogue& ep = {}) const {
    check_batch(count, a_offs, b_offs);
    if (count > 0 && a == nullptr) throw error(label, "a", "is null with a nonzero count");
    if (count > 0 && b == nullptr) throw error(label, "b", "is null with a nonzero count");
    run([&](index_t i) { return pair(a + a_offs[i], b + b_offs[i]); }, c, count, ep, [&] {
#if defined(TPP_WITH_LIBXSMM)
      if constexpr (libxsmm_eligible) (*xsmm_offset_)(a, a_offs, b, b_offs, c, count);
#endif
    });
  }

  template <class Epilogue = epilogue::none>
  void strided(const TA* a, index_t stride_a, const TB* b, index_t stride_b, TC* c, index_t count,
               const Epilogue& ep = {}) const {
    check_batch(count, a, b);
    run([&](index_t i) { return pair(a + i * stride_a, b + i * stride_b); }, c, count, ep, [&] {
#if defined(TPP_WITH_LIBXSMM)
      if constexpr (libxsmm_eligible) {
        constexpr index_t chunk = 256;  // offsets on the stack; a longer batch goes as address arrays
        if (count <= chunk) {
          index_t ao[chunk], bo[chunk];
          for (index_t i = 0; i < count; ++i) {
            ao[i] = i * stride_a;
            bo[i] = i * stride_b;
          }
          (*xsmm_offset_)(a, ao, b, bo, c, count);
        } else {
          std::vector<const float*> pa(static_cast<std::size_t>(count)), pb(static_cast<std::size_t>(count));
          for (index_t i = 0; i < count; ++i) {
            pa[std::size_t(i)] = a + i * stride_a;
            pb[std::size_t(i)] = b + i * stride_b;
          }
          (*xsmm_address_)(pa.data(), pb.data(), c, count);
        }
      }
#endif
    });
  }

  const gemm_shape& shape() const noexcept { return l_.s; }
  const gemm_params& params() const noexcept { return l_.p; }
  bool uses_libxsmm() const noexcept {
#if defined(TPP_WITH_LIBXSMM)
    if constexpr (libxsmm_eligible) return xsmm_address_.has_value();
#endif
    return false;
  }

 private:
  static constexpr bool libxsmm_eligible = std::is_same_v<Policy, approx::exact> && std::is_same_v<TA, float> &&
                                           std::is_same_v<TB, float> && std::is_same_v<TC, float>;

  template <class PA, class PB>
  void check_batch(index_t count, PA a, PB b) const {
    if (count < 0) throw error(label, "count", detail::concat("is negative (", std::to_string(count), ")"));
    if (count > 0 && a == nullptr) throw error(label, "a", "is null with a nonzero count");
    if (count > 0 && b == nullptr) throw error(label, "b", "is null with a nonzero count");
  }

  detail::operand_pair<TA, TB> pair(const TA* a, const TB* b) const noexcept { return {l_.a_view(a), l_.b_view(b)}; }

  // Validates the batch, then runs the backend (when dispatched and the batch is not empty) or tpp's
  // loops; the epilogue runs after the backend on C's rows.
  template <class Ops, class Epilogue, class Backend>
  void run(const Ops& operands, TC* c, index_t count, const Epilogue& ep, const Backend& backend) const {
    const mat<TC> C = l_.c_view(c);
    detail::check_mat(C, label, "c");
    for (index_t i = 0; i < count; ++i) {
      const detail::operand_pair<TA, TB> o = operands(i);
      detail::check_mat(o.a, label, "a[i]");
      detail::check_mat(o.b, label, "b[i]");
      if (detail::views_overlap(C, o.a)) throw error(label, "c", detail::concat("overlaps A_", std::to_string(i)));
      if (detail::views_overlap(C, o.b)) throw error(label, "c", detail::concat("overlaps B_", std::to_string(i)));
    }
    if (C.empty()) return;
    if (uses_libxsmm() && count > 0) {
      backend();
      if constexpr (!std::is_same_v<Epilogue, epilogue::none>)
        for (index_t i = 0; i < C.rows; ++i) ep(i, 0, C.row(i), C.cols);
      return;
    }
    detail::gemm_run<Policy, TA, TB>(false, count, operands, C, l_.s.k, l_.p, ep);
  }

  detail::gemm_layout l_;
#if defined(TPP_WITH_LIBXSMM)
  std::optional<backend::libxsmm::brgemm<float>> xsmm_address_, xsmm_offset_;
#endif
};

}  // namespace tpp
