#pragma once
// The GEMM's table path (ops/gemm.hpp is the interface), for a policy whose product is a table entry
// scaled by the operands' signs and exponents (approx/gemm_traits.hpp, gemm_path::table):
// product tables built per B sliver, so the O(n^3) loop is one load and one FMA per product, as on the ieee path.
//
// The policy's mul(a, b) = +-T[ma][mb] 2^(Ea + Eb) (T: its rows x rows table, ma, mb the operands' table
// indices, their top mantissa bits; Ea, Eb their unbiased exponents). For a KC-deep slice of an NR-column
// sliver of op(B), the sliver's table holds, for every k, every row index ma and column j,
//
//   Q[k][ma][j] = +-T[ma][mb(k, j)] 2^Eb(k, j)                   (B's sign and exponent folded in)
//
// built with the T row held in registers (arch/row_lookup: rows KC NR lookups per sliver, shared by all the
// rows of the A block). A packs as (row offset ma NR, +-2^Ea) per element, and the micro-kernel does
//
//   acc[r][v] = fma(Q[k][ma(r, k)][v-th vector], +-2^Ea(r, k), acc[r][v])
//
// Both scalings by powers of two are exact while every product and every Q entry is a normal number,
// so this equals acc + mul(a, b) bit for bit; a zero (or denormal) operand packs as 2^Ea = +-0 or a
// zero Q entry, giving the policy's +-0. Packing records each A block's and B sliver's exponent range
// (panel_range) and the pair runs this path only when no product or Q entry can leave the normal range,
// no operand is NaN or Inf, and the table is bounded (entries in [1, 4.5), bounded()); any other pair
// runs the careful step acc + mul(a, b) on unmodified operands.
//
// Block sizes: the micro-kernel loads one Q vector per FMA, so a sliver's Q (rows KC NR floats) is kept
// near 32 KiB, in L1 for 16-row tables (KC = 16 on AVX-512, 4 for 128 rows); the A block spans up to
// 256 KiB of packed pairs (MC = 2044 rows at KC = 16), so each Q is built once for many rows.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <type_traits>

#include "../../approx/gemm_traits.hpp"
#include "../../arch/lookup.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/workspace.hpp"
#include "micro.hpp"
#include "pack.hpp"
#include "params.hpp"

namespace tpp::detail {

// The policy's table traits and the path's block sizes.
template <class P>
struct table_path : approx::gemm_traits<P> {
  using traits = approx::gemm_traits<P>;
  using fma = blocking_for<0>;  // the step is one load and one FMA
  static constexpr index_t mr = fma::mr, nv = fma::nv, nr = fma::nr;
  static constexpr index_t kc = std::clamp<index_t>(index_t(8192) / (index_t(traits::rows) * nr), 4, 256);
  static constexpr index_t mc = std::max<index_t>(mr, (index_t(1) << 15) / kc / mr * mr);
  static constexpr index_t nc = nr * (512 / nr);
};

// The table path applies to a block pair: every product +-T 2^(Ea + Eb) (T in [1, 4.5)) is normal and no
// operand is NaN or Inf (products_in_range, as for packed paths), and every Q entry +-T 2^Eb is below the
// range top as well.
template <class L>
bool table_in_range(const approx::panel_range& a, const approx::panel_range& b) noexcept {
  return approx::products_in_range<L>(a, b) && (a.empty() || b.empty() || b.emax + L::carry <= 254);
}

// One operand in the table path's form: its table index (times `times`) and +-2^E (+-0 for a zero or
// denormal), both branch-free; the panel's range is updated.
template <class L>
struct table_operand {
  std::int32_t index;
  float scale;
  table_operand(float x, std::int32_t times, approx::panel_range& r) noexcept {
    const std::uint32_t u = approx::detail::bits(x);
    r.add(x);
    index = std::int32_t((u & approx::detail::man_mask) >> L::shift) * times;
    const std::uint32_t keep = (u & approx::detail::exp_mask) == 0 ? approx::detail::sign_bit : 0xff800000u;
    scale = approx::detail::from_bits(u & keep);
  }
};

// op(A) rows [i0, i0 + mc) x K [p0, p0 + kc) as MR-row slivers of pairs: for each k, MR row offsets
// ma NR (int32 bit patterns) then MR scales +-2^Ea; rows past mc are zero.
template <class L, class T>
void table_pack_a(const mat<const T>& a, bool trans, index_t i0, index_t mc, index_t p0, index_t kc, float* out,
                  approx::panel_range& range) noexcept {
  constexpr index_t MR = L::mr;
  approx::panel_range r = range;
  const index_t step = trans ? a.ld : 1;  // between consecutive k of one row of op(A)
  for (index_t t = 0; t < mc; t += MR) {
    const index_t w = std::min(MR, mc - t);
    float* o = out + t * 2 * kc;
    for (index_t q = 0; q < w; ++q) {
      const T* src = trans ? a.row(p0) + i0 + t + q : a.row(i0 + t + q) + p0;
      for (index_t k = 0; k < kc; ++k) {
        const table_operand<L> x(to_float(src[k * step]), std::int32_t(L::nr), r);
        o[k * 2 * MR + q] = std::bit_cast<float>(x.index);
        o[k * 2 * MR + MR + q] = x.scale;
      }
    }
    for (index_t q = w; q < MR; ++q)
      for (index_t k = 0; k < kc; ++k) o[k * 2 * MR + q] = o[k * 2 * MR + MR + q] = 0.0f;
  }
  range = r;
}

// op(B) K [p0, p0 + kc) x columns [j0, j0 + w), w <= NR, as (kc, NR) column indices mb (int32 bit
// patterns) and scales +-2^Eb (zero past w).
template <class L, class T>
void table_pack_b(const mat<const T>& b, bool trans, index_t p0, index_t kc, index_t j0, index_t w, float* idx,
                  float* scale, approx::panel_range& range) noexcept {
  constexpr index_t NR = L::nr;
  approx::panel_range r = range;
  const index_t step = trans ? b.ld : 1;  // between consecutive columns of op(B)
  for (index_t k = 0; k < kc; ++k) {
    const T* src = trans ? b.row(j0) + p0 + k : b.row(p0 + k) + j0;
    for (index_t q = 0; q < w; ++q) {
      const table_operand<L> x(to_float(src[q * step]), 1, r);
      idx[k * NR + q] = std::bit_cast<float>(x.index);
      scale[k * NR + q] = x.scale;
    }
    for (index_t q = w; q < NR; ++q) idx[k * NR + q] = scale[k * NR + q] = 0.0f;
  }
  range = r;
}

// Q[k][ma][j] = T[ma][idx(k, j)] * scale(k, j) for the sliver (see the top of the file).
template <class L>
void table_build(index_t kc, const float* idx, const float* scale, float* q) noexcept {
  using A = simd::default_arch;
  using F = simd::batch<float>;
  using I = simd::batch<std::int32_t>;
  constexpr index_t NR = L::nr, W = gemm_width;
  const float* t = L::table();
  for (index_t ma = 0; ma < L::rows; ++ma) {
    const arch::row_lookup<L::rows, A> row(t + ma * L::rows);
    for (index_t k = 0; k < kc; ++k)
      for (index_t v = 0; v < NR; v += W) {
        const I i = I::load_unaligned(reinterpret_cast<const std::int32_t*>(idx + k * NR + v));
        const F s = tpp::lanes::load<F>(scale + k * NR + v);
        tpp::lanes::store(q + (k * L::rows + ma) * NR + v, row(i) * s);
      }
  }
}

// An MR x NR tile of C from one A sliver of pairs and one sliver's Q (gemm_store_tile semantics).
template <class L>
void table_micro(index_t kc, const float* a, const float* q, float* c, index_t ldc, float alpha, float beta,
                 bool first) noexcept {
  using V = simd::lane;
  constexpr index_t MR = L::mr, NV = L::nv, W = gemm_width, NR = L::nr;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) acc[r][v] = V(0.0f);
  for (index_t k = 0; k < kc; ++k) {
    const float* qk = q + k * L::rows * NR;
    const float* ak = a + k * 2 * MR;
#pragma GCC unroll 16
    for (index_t r = 0; r < MR; ++r) {
      const float* row = qk + std::bit_cast<std::int32_t>(ak[r]);
      const V s(ak[MR + r]);
      for (index_t v = 0; v < NV; ++v) acc[r][v] = tpp::lanes::fma(tpp::lanes::load<V>(row + v * W), s, acc[r][v]);
    }
  }
  gemm_store_tile<MR, NV>(acc, c, ldc, alpha, beta, first);
}

// The table path's scratch regions: the A block's pairs, the B sliver's indices and scales, the sliver's
// Q, and the unmodified A block and B sliver for the careful path.
template <class P>
struct table_buffers {
  using L = table_path<P>;
  using careful = gemm_blocking<P>;
  float *ap, *bq, *q, *a_plain, *b_plain;
  template <class S>
  explicit table_buffers(S& s)
      : ap(take_region<float>(s, std::size_t(2 * L::mc * L::kc))),
        bq(take_region<float>(s, std::size_t(2 * L::kc * L::nr))),
        q(take_region<float>(s, std::size_t(L::rows * L::kc * L::nr))),
        a_plain(take_region<float>(s, std::size_t((L::mc + careful::mr) * L::kc))),
        b_plain(take_region<float>(s, std::size_t(L::kc * (L::nr + careful::nr)))) {}
};

// gemm_serial for a table path: C (m, n) fp32 = alpha sum_i op(A_i) op(B_i) + beta C, then the epilogue,
// on one thread with buffers from s (loops.hpp's gemm_serial contract).
template <class P, class TA, class TB, class Ops, class E>
void gemm_serial_table(index_t count, const Ops& operands, const mat<float>& c, index_t k, const gemm_params& p,
                       const E& ep, scratch& s, index_t gi, index_t gj) {
  using L = table_path<P>;
  using careful = gemm_blocking<P>;
  constexpr index_t MR = L::mr, NR = L::nr, CMR = careful::mr;
  const bool bounded = L::bounded();
  const table_buffers<P> buf(s);
  alignas(64) float tile[std::max(MR * NR, CMR * careful::nr)];
  for (index_t j0 = 0; j0 < c.cols; j0 += L::nc) {
    const index_t nc = std::min(L::nc, c.cols - j0);
    for (index_t bi = 0; bi < count; ++bi) {
      const auto ops = operands(bi);
      for (index_t p0 = 0; p0 < k; p0 += L::kc) {
        const index_t kc = std::min(L::kc, k - p0);
        const gemm_out<E> out{c, p.alpha, p.beta, bi == 0 && p0 == 0, bi == count - 1 && p0 + kc == k, &ep, gi, gj};
        for (index_t i0 = 0; i0 < c.rows; i0 += L::mc) {
          const index_t mc = std::min(L::mc, c.rows - i0);
          approx::panel_range ra;
          table_pack_a<L>(ops.a, p.trans_a, i0, mc, p0, kc, buf.ap, ra);
          bool a_plain_packed = false;
          for (index_t jr = 0; jr < nc; jr += NR) {
            const index_t w = std::min(NR, nc - jr);
            approx::panel_range rb;
            table_pack_b<L>(ops.b, p.trans_b, p0, kc, j0 + jr, w, buf.bq, buf.bq + kc * NR, rb);
            if (bounded && table_in_range<L>(ra, rb)) {
              table_build<L>(kc, buf.bq, buf.bq + kc * NR, buf.q);
              gemm_tiles<MR, NR>(out, i0, mc, j0 + jr, w, tile,
                                 [&](index_t ir, index_t, index_t, float* o, index_t ldo, float alpha, float beta,
                                     bool first) {
                                   table_micro<L>(kc, buf.ap + ir * 2 * kc, buf.q, o, ldo, alpha, beta, first);
                                 });
            } else {  // careful path: unmodified operands through the policy's own mul
              if (!a_plain_packed) {
                gemm_pack_a<CMR>(ops.a, p.trans_a, i0, mc, p0, kc, buf.a_plain);
                a_plain_packed = true;
              }
              gemm_pack_b<careful::nr>(ops.b, p.trans_b, p0, kc, j0 + jr, w, buf.b_plain);
              gemm_block<approx::stored_step<P>, CMR, careful::nv>(buf.a_plain, nullptr, 0, buf.b_plain, out, i0, mc,
                                                                   j0 + jr, w, kc, tile);
            }
          }
        }
      }
    }
  }
}

}  // namespace tpp::detail
