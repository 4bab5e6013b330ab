#pragma once
// The GEMM's cache-blocked loops (ops/gemm.hpp is the interface): the serial driver (BLIS's five loops
// around the micro-kernel, picking the policy's path), the OpenMP driver that splits C over the team, and
// the C-type wrapper (a bf16 C accumulated in fp32 and rounded once); with the scratch each needs.
//
// Every driver takes its buffers from a scratch frame (core/workspace.hpp): the caller's workspace or this
// thread's arena, so an epilogue that runs another GEMM gets buffers of its own. The threaded driver gives
// each thread a frame on its own arena.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "../../approx/gemm_traits.hpp"
#include "../../core/bf16.hpp"
#include "../../core/mat.hpp"
#include "../../core/parallel.hpp"
#include "../../core/workspace.hpp"
#include "../epilogue.hpp"
#include "micro.hpp"
#include "pack.hpp"
#include "params.hpp"
#include "table.hpp"

namespace tpp::detail {

// Whether policy P's products come from the table path (it needs SIMD row lookups).
template <class P>
inline constexpr bool uses_table_path = simd::enabled && approx::gemm_traits<P>::path == approx::gemm_path::table;

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

// gemm_serial's regions: the packed A block and B panel, and for a packed path the unmodified B panel of
// the careful path.
template <class P>
struct serial_buffers {
  using blk = gemm_blocking<P>;
  float *ap, *bp, *b_plain;
  template <class S>
  explicit serial_buffers(S& s)
      : ap(take_region<float>(s, std::size_t(blk::mc * blk::kc))),
        bp(take_region<float>(s, std::size_t(blk::kc * blk::nc))),
        b_plain(approx::gemm_traits<P>::path == approx::gemm_path::packed
                    ? take_region<float>(s, std::size_t(blk::kc * blk::nc))
                    : nullptr) {}
};

// The bytes of gemm_run's regions for one thread: workspace_bytes() of a kernel object.
template <class P, class TC>
std::size_t gemm_workspace_bytes(index_t m, index_t n) {
  scratch_size z;
  if constexpr (!std::is_same_v<TC, float>) z.take<float>(std::size_t(m * n));
  if constexpr (uses_table_path<P>) {
    [[maybe_unused]] const table_buffers<P> regions(z);
  } else {
    [[maybe_unused]] const serial_buffers<P> regions(z);
  }
  return z.bytes();
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

// C (m, n) fp32 = alpha sum_i op(A_i) op(B_i) + beta C, then the epilogue, on one thread with buffers from
// s. (gi, gj): c's origin in the caller's whole C, for the epilogue.
//
// The policy's path (approx/gemm_traits.hpp): a table path runs table.hpp's loops; bf16 x bf16 on the ieee
// path with AVX512_BF16 the pair loops; a packed path packs both panels through pack() recording their
// ranges, and runs its step on block pairs in range (its zero forms when a panel holds zeros), the careful
// step on unmodified operands otherwise; the other paths the step on stored operands, an fp32 untransposed
// A read in place (only its edge sliver packed).
//
// A C of at most one vector of columns on the ieee path takes the narrow blocking (micro.hpp); the other
// paths keep one blocking each, so that every policy's GEMM is instantiated once.
template <class P, class TA, class TB, class Blk = gemm_blocking<P>, class Ops, class E>
void gemm_serial(index_t count, const Ops& operands, const mat<float>& c, index_t k, const gemm_params& p,
                 const E& ep, scratch& s, index_t gi = 0, index_t gj = 0) {
  using blk = Blk;
  using T = approx::gemm_traits<P>;
  if constexpr (std::is_same_v<Blk, gemm_blocking<P>> && simd::enabled && T::path == approx::gemm_path::ieee &&
                !gemm_bf16_pairs<P, TA, TB>)
    if (c.cols <= gemm_width) {
      gemm_serial<P, TA, TB, gemm_blocking_narrow<P>>(count, operands, c, k, p, ep, s, gi, gj);
      return;
    }
  constexpr bool packed = T::path == approx::gemm_path::packed;
  constexpr index_t MR = blk::mr, NR = blk::nr;
  const index_t m = c.rows, n = c.cols;
  if (k == 0 || count == 0) {
    gemm_scale_only(c, p.beta, ep, gi, gj);
    return;
  }
  if constexpr (uses_table_path<P>) {
    gemm_serial_table<P, TA, TB>(count, operands, c, k, p, ep, s, gi, gj);
    return;
  }
  const serial_buffers<P> buf(s);
  float* const ap = buf.ap;
  float* const bp = buf.bp;
  alignas(64) float tile[MR * NR];
  if constexpr (gemm_bf16_pairs<P, TA, TB>) {
    gemm_serial_bf16_pairs<blk>(count, operands, c, k, p, ep, gi, gj, ap, bp, tile);
    return;
  }
  // An fp32, untransposed A that the policy does not transform while packing is read in place.
  const bool direct_a = std::is_same_v<TA, float> && !packed && !p.trans_a;
  for (index_t j0 = 0; j0 < n; j0 += blk::nc) {
    const index_t nc = std::min(blk::nc, n - j0);
    for (index_t bi = 0; bi < count; ++bi) {
      const operand_pair<TA, TB> ops = operands(bi);
      const mat<const TA>& a = ops.a;
      const mat<const TB>& b = ops.b;
      for (index_t p0 = 0; p0 < k; p0 += blk::kc) {
        const index_t kc = std::min(blk::kc, k - p0);
        const gemm_out<E> out{c, p.alpha, p.beta, bi == 0 && p0 == 0, bi == count - 1 && p0 + kc == k, &ep, gi, gj};
        approx::panel_range rb;
        bool b_plain_packed = false;
        if constexpr (packed)
          gemm_pack_b<NR>(b, p.trans_b, p0, kc, j0, nc, bp, [](float x) { return T::pack(x); }, &rb);
        else
          gemm_pack_b<NR>(b, p.trans_b, p0, kc, j0, nc, bp);
        for (index_t i0 = 0; i0 < m; i0 += blk::mc) {
          const index_t mc = std::min(blk::mc, m - i0);
          bool in_range = false;  // the packed path runs on this block pair
          const float* bcur = bp;
          approx::panel_range ra;
          if constexpr (packed) {
            gemm_pack_a<MR>(a, p.trans_a, i0, mc, p0, kc, ap, [](float x) { return T::pack(x); }, &ra);
            in_range = approx::products_in_range<T>(ra, rb);
            if constexpr (T::a_offset != 0)
              if (in_range)
                for (index_t i = 0; i < (mc + MR - 1) / MR * MR * kc; ++i)
                  ap[i] = approx::detail::from_bits(approx::detail::bits(ap[i]) - T::a_offset);
            if (!in_range) {  // careful path: unmodified operands through the policy's own mul
              gemm_pack_a<MR>(a, p.trans_a, i0, mc, p0, kc, ap);
              if (!b_plain_packed) {
                gemm_pack_b<NR>(b, p.trans_b, p0, kc, j0, nc, buf.b_plain);
                b_plain_packed = true;
              }
              bcur = buf.b_plain;
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
          if (in_range) {
            if constexpr (packed) {
              if constexpr (T::zero_specialised) {
                auto run = [&]<bool az, bool bz>() {
                  gemm_block<typename T::template zero_step<az, bz>, MR, blk::nv>(ap, nullptr, 0, bcur, out, i0, mc,
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
              } else {
                gemm_block<T, MR, blk::nv>(ap, nullptr, 0, bcur, out, i0, mc, j0, nc, kc, tile);
              }
            }
          } else {
            gemm_block<approx::stored_step<P>, MR, blk::nv>(ap, ad, a.ld, bcur, out, i0, mc, j0, nc, kc, tile);
          }
        }
      }
    }
  }
}

// Splits the problem over the OpenMP team by columns of C (or by rows when C is tall), each part a
// serial blocked GEMM on sub-views of every A_i or B_i with a frame on its thread's arena; serial, with s,
// when small or already inside a parallel region.
template <class P, class TA, class TB, class Ops, class E>
void gemm_threaded(index_t count, const Ops& operands, const mat<float>& c, index_t k, const gemm_params& p,
                   const E& ep, scratch& s) {
  constexpr index_t NR = gemm_blocking<P>::nr, MR = gemm_blocking<P>::mr;
  const index_t m = c.rows, n = c.cols;
  const bool by_cols = n >= m;
  const index_t units = by_cols ? (n + NR - 1) / NR : (m + MR - 1) / MR;
  const bool threaded = double(m) * double(n) * double(k) * double(count) >= double(1 << 21) && units > 1;
  if (!threaded || in_parallel() || max_threads() == 1) {
    gemm_serial<P, TA, TB>(count, operands, c, k, p, ep, s);
    return;
  }
  parallel_for(units, [&](index_t u0, index_t u1) {
    scratch part;
    if (by_cols) {
      const index_t j0 = u0 * NR, j1 = std::min(n, u1 * NR);
      auto cols_of = [&](index_t i) {
        const operand_pair<TA, TB> o = operands(i);
        const mat<const TB>& b = o.b;
        return operand_pair<TA, TB>{o.a, p.trans_b ? mat<const TB>{b.row(j0), j1 - j0, b.cols, b.ld}
                                                   : mat<const TB>{b.data + j0, b.rows, j1 - j0, b.ld}};
      };
      gemm_serial<P, TA, TB>(count, cols_of, mat<float>{c.data + j0, m, j1 - j0, c.ld}, k, p, ep, part, 0, j0);
    } else {
      const index_t i0 = u0 * MR, i1 = std::min(m, u1 * MR);
      auto rows_of = [&](index_t i) {
        const operand_pair<TA, TB> o = operands(i);
        const mat<const TA>& a = o.a;
        return operand_pair<TA, TB>{p.trans_a ? mat<const TA>{a.data + i0, a.rows, i1 - i0, a.ld}
                                              : mat<const TA>{a.row(i0), i1 - i0, a.cols, a.ld},
                                    o.b};
      };
      gemm_serial<P, TA, TB>(count, rows_of, mat<float>{c.row(i0), i1 - i0, n, c.ld}, k, p, ep, part, i0, 0);
    }
  });
}

// Any C type: an fp32 C directly; a bf16 C accumulated in an fp32 region of s, then alpha, beta and the
// epilogue on each row and one rounding.
template <class P, class TA, class TB, class TC, class Ops, class E>
void gemm_run(bool threaded, index_t count, const Ops& operands, const mat<TC>& c, index_t k, const gemm_params& p,
              const E& ep, scratch& s) {
  if constexpr (std::is_same_v<TC, float>) {
    if (threaded)
      gemm_threaded<P, TA, TB>(count, operands, c, k, p, ep, s);
    else
      gemm_serial<P, TA, TB>(count, operands, c, k, p, ep, s);
  } else {
    const index_t m = c.rows, n = c.cols;
    float* ws = s.take<float>(std::size_t(m * n));
    const mat<float> w{ws, m, n, n};
    const gemm_params q{1.0f, 0.0f, p.trans_a, p.trans_b};
    if (threaded)
      gemm_threaded<P, TA, TB>(count, operands, w, k, q, epilogue::none{}, s);
    else
      gemm_serial<P, TA, TB>(count, operands, w, k, q, epilogue::none{}, s);
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

}  // namespace tpp::detail
