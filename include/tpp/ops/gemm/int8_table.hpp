#pragma once
// The integer GEMM of an 8-bit multiplier (approx/gemm_traits.hpp: int8_multiplier)
// (ops/gemm.hpp is the interface): C (int32) = sum_k T[a(i, k)][b(k, j)] [+ C], T the multiplier's 256 x 256
// product table, the operands 8-bit (both uint8 or both int8, as the multiplier). The table path of the
// fp32 GEMM (table.hpp) in integers: for a KC-deep slice of an NR-column sliver of op(B), the sliver's table
// holds, for every k, every A value x and column j,
//
//   Q[k][x][j] = T[x][b(k, j)]
//
// built with each T row held in registers (arch/row_lookup over the int32 entries' bit patterns; 256 KC NR
// lookups per sliver, shared by all the rows of the A block). A packs as row offsets x NR, and the
// micro-kernel is one load and one integer add per product lane: acc[r][v] += Q[k][a(r, k)][v-th vector].
// Exact integer sums (modulo 2^32, as vpdpbusd: products are at most 65025, so K up to 33 000 cannot wrap).
//
// Block sizes: a sliver's Q per k is 256 NR int32 (32 KiB on AVX-512), KC = 8 keeps a sliver's Q at 256 KiB
// (L2); the A block is up to 2048 rows, so each Q is built once for many rows.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../arch/lookup.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/workspace.hpp"
#include "int8.hpp"
#include "micro.hpp"

namespace tpp::detail {

struct gemm_int8_table_blocking {
  using fma = blocking_for<0>;
  static constexpr index_t mr = fma::mr, nv = fma::nv, nr = fma::nr;
  static constexpr index_t kc = std::clamp<index_t>((index_t(1) << 16) / (256 * nr), 1, 256);
  static constexpr index_t mc = mr * (2048 / mr);
  static constexpr index_t nc = nr * (512 / nr);
};

// An operand's table index: its 8-bit pattern.
template <class T>
std::int32_t int8_table_index(T x) noexcept {
  return std::int32_t(std::uint8_t(x));
}

// op(A) rows [i0, i0 + mc) x K [p0, p0 + kc) as MR-row slivers of row offsets a NR (rows past mc: 0).
template <class T>
void int8_table_pack_a(const mat<const T>& a, bool trans, index_t i0, index_t mc, index_t p0, index_t kc,
                       std::int32_t* out) noexcept {
  constexpr index_t MR = gemm_int8_table_blocking::mr, NR = gemm_int8_table_blocking::nr;
  const index_t step = trans ? a.ld : 1;
  for (index_t t = 0; t < mc; t += MR) {
    const index_t w = std::min(MR, mc - t);
    std::int32_t* o = out + t * kc;
    for (index_t q = 0; q < w; ++q) {
      const T* src = trans ? a.row(p0) + i0 + t + q : a.row(i0 + t + q) + p0;
      for (index_t k = 0; k < kc; ++k) o[k * MR + q] = int8_table_index(src[k * step]) * std::int32_t(NR);
    }
    for (index_t q = w; q < MR; ++q)
      for (index_t k = 0; k < kc; ++k) o[k * MR + q] = 0;
  }
}

// op(B) K [p0, p0 + kc) x columns [j0, j0 + w), w <= NR, as (kc, NR) table indices (0 past w).
template <class T>
void int8_table_pack_b(const mat<const T>& b, bool trans, index_t p0, index_t kc, index_t j0, index_t w,
                       std::int32_t* idx) noexcept {
  constexpr index_t NR = gemm_int8_table_blocking::nr;
  const index_t step = trans ? b.ld : 1;
  for (index_t k = 0; k < kc; ++k) {
    const T* src = trans ? b.row(j0) + p0 + k : b.row(p0 + k) + j0;
    for (index_t q = 0; q < w; ++q) idx[k * NR + q] = int8_table_index(src[q * step]);
    for (index_t q = w; q < NR; ++q) idx[k * NR + q] = 0;
  }
}

// Q[k][x][j] = T[x][idx(k, j)] for the sliver.
inline void int8_table_build(const std::int32_t* table, index_t kc, const std::int32_t* idx, std::int32_t* q) noexcept {
  constexpr index_t NR = gemm_int8_table_blocking::nr;
  if constexpr (simd::enabled) {
    using A = simd::default_arch;
    using I = simd::batch<std::int32_t>;
    constexpr index_t W = gemm_width;
    for (index_t x = 0; x < 256; ++x) {
      const arch::row_lookup<256, A> row(reinterpret_cast<const float*>(table + x * 256));  // bit patterns
      for (index_t k = 0; k < kc; ++k)
        for (index_t v = 0; v < NR; v += W)
          tpp::lanes::as_i32(row(I::load_unaligned(idx + k * NR + v))).store_unaligned(q + (k * 256 + x) * NR + v);
    }
  } else {
    for (index_t x = 0; x < 256; ++x)
      for (index_t k = 0; k < kc; ++k)
        for (index_t j = 0; j < NR; ++j) q[(k * 256 + x) * NR + j] = table[x * 256 + idx[k * NR + j]];
  }
}

// An MR x NR int32 tile of C (row stride ldc) = (accumulate ? C : 0) + the sums over kc of one A sliver
// against one sliver's Q.
template <index_t MR, index_t NV, class I = lane_s32>
void int8_table_micro(index_t kc, const std::int32_t* a, const std::int32_t* q, std::int32_t* c, index_t ldc,
                      bool accumulate) noexcept {
  constexpr index_t W = gemm_width, NR = NV * W;
  I acc[MR][NV];
#pragma GCC unroll 16
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) acc[r][v] = I(0);
  for (index_t k = 0; k < kc; ++k) {
    const std::int32_t* qk = q + k * 256 * NR;
#pragma GCC unroll 16
    for (index_t r = 0; r < MR; ++r) {
      const std::int32_t* row = qk + a[k * MR + r];
      for (index_t v = 0; v < NV; ++v) acc[r][v] = acc[r][v] + load_s32<I>(row + v * W);
    }
  }
  store_s32_tile<MR, NV>(acc, c, ldc, accumulate);
}

// C (m, n) = sum_k T[op(A)][op(B)] + (accumulate ? C : 0) on one thread, with a frame on its arena.
template <class Policy, class T>
void gemm_int8_table_serial(const mat<const T>& a, const mat<const T>& b, const mat<std::int32_t>& c, index_t k,
                            bool trans_a, bool trans_b, bool accumulate) {
  using blk = gemm_int8_table_blocking;
  constexpr index_t MR = blk::mr, NR = blk::nr;
  if (k == 0) {
    gemm_s32_empty(c, accumulate);
    return;
  }
  const std::int32_t* table = Policy::table().data();
  scratch s;
  std::int32_t* ap = s.take<std::int32_t>(std::size_t(blk::mc * blk::kc));
  std::int32_t* bi = s.take<std::int32_t>(std::size_t(blk::kc * NR));
  std::int32_t* q = s.take<std::int32_t>(std::size_t(256 * blk::kc * NR));
  alignas(64) std::int32_t tile[MR * NR];
  for (index_t j0 = 0; j0 < c.cols; j0 += blk::nc) {
    const index_t nc = std::min(blk::nc, c.cols - j0);
    for (index_t p0 = 0; p0 < k; p0 += blk::kc) {
      const index_t kc = std::min(blk::kc, k - p0);
      const bool acc = accumulate || p0 > 0;
      for (index_t i0 = 0; i0 < c.rows; i0 += blk::mc) {
        const index_t mc = std::min(blk::mc, c.rows - i0);
        int8_table_pack_a(a, trans_a, i0, mc, p0, kc, ap);
        for (index_t jr = 0; jr < nc; jr += NR) {
          const index_t cols = std::min(NR, nc - jr);
          int8_table_pack_b(b, trans_b, p0, kc, j0 + jr, cols, bi);
          int8_table_build(table, kc, bi, q);
          gemm_tiles_s32<MR, NR>(c, i0, mc, j0 + jr, cols, acc, tile,
                                 [&](index_t ir, index_t, std::int32_t* out, index_t ldo, bool accumulate_tile) {
                                   int8_table_micro<MR, blk::nv>(kc, ap + ir * kc, q, out, ldo, accumulate_tile);
                                 });
        }
      }
    }
  }
}

}  // namespace tpp::detail
