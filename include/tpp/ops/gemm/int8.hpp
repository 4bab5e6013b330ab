#pragma once
// The exact integer GEMM of quantized inference, C (int32) = op(A) (uint8) * op(B) (int8) [+ C]
// (ops/gemm.hpp is the interface): the fp32 loops' structure on K-quad-packed operands, four bytes of
// consecutive k in one 32-bit word (the earlier k in the low byte, zeros past K), so one vpdpbusd
// (AVX512_VNNI) adds four products per lane; without it, the same quads are unpacked with shifts and
// multiplied in int32 lanes (AVX2, NEON, SSE2, scalar). Products and sums are exact: |a b| <= 255 * 128, so
// K up to 65 000 cannot wrap int32 (beyond that the sum wraps modulo 2^32, like vpdpbusd itself). The
// packed words live in fp32 scratch regions as bit patterns. Also the int32 tiles and the OpenMP split
// shared with the 8-bit table GEMM (int8_table.hpp).

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../arch/dot.hpp"
#include "../../core/mat.hpp"
#include "../../core/parallel.hpp"
#include "../../core/simd.hpp"
#include "../../core/workspace.hpp"
#include "micro.hpp"
#include "pack.hpp"

namespace tpp::detail {

// Block sizes: the FMA micro-tile's shape (28 int32 accumulators on 32 registers), K slices of 1024 bytes
// (256 quad steps between C updates), an MC x KC A block of 168 KiB and a KC x NC B panel of 512 KiB,
// both in L2.
struct gemm_int8_blocking {
  using fma = blocking_for<0>;
  static constexpr index_t mr = fma::mr, nv = fma::nv, nr = fma::nr;
  static constexpr index_t kc = 1024;
  static constexpr index_t mc = mr * (168 / mr);
  static constexpr index_t nc = nr * (512 / nr);
};

// acc + the four u8 x s8 products of each lane's quads.
template <class I>
I quad_dot(I acc, I a, I b) noexcept {
  if constexpr (arch::has_dot_u8s8 && !std::is_same_v<I, std::int32_t>) {
    return arch::dot_u8s8_quads(acc, a, b);
  } else {
    for (int q = 0; q < 4; ++q) acc = acc + ((a >> (8 * q)) & I(0xff)) * ((b << (24 - 8 * q)) >> 24);
    return acc;
  }
}

// int32 lanes: a batch at the compile-time arch, or int32 with TPP_NO_SIMD; loads of packed words (kept
// in fp32 buffers) and of C.
using lane_s32 = std::conditional_t<simd::enabled, simd::batch<std::int32_t>, std::int32_t>;

template <class I>
I load_s32(const void* p) noexcept {
  if constexpr (std::is_same_v<I, std::int32_t>) {
    std::int32_t x;
    std::memcpy(&x, p, 4);
    return x;
  } else {
    return I::load_unaligned(static_cast<const std::int32_t*>(p));
  }
}

template <class I>
void store_s32(std::int32_t* p, I x) noexcept {
  if constexpr (std::is_same_v<I, std::int32_t>)
    *p = x;
  else
    x.store_unaligned(p);
}

// An MR x NR int32 tile of C (row stride ldc) = (accumulate ? C : 0) + acc: the end of the integer
// micro-kernels.
template <index_t MR, index_t NV, class I>
void store_s32_tile(const I (&acc)[MR][NV], std::int32_t* c, index_t ldc, bool accumulate) noexcept {
  constexpr index_t W = gemm_width;
#pragma GCC unroll 16
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) {
      std::int32_t* p = c + r * ldc + v * W;
      I x = acc[r][v];
      if (accumulate) x = x + load_s32<I>(p);
      store_s32(p, x);
    }
}

// The int32 tiles of one (mc, nc) block of C: micro(ir, jr, out, ldo, accumulate) computes the MR x NR
// tile at block offset (ir, jr) into out; full tiles go straight to C, edge tiles through a local tile of
// which only the valid part is added or written.
template <index_t MR, index_t NR, class Micro>
void gemm_tiles_s32(const mat<std::int32_t>& c, index_t i0, index_t mc, index_t j0, index_t nc, bool accumulate,
                    std::int32_t* tile, const Micro& micro) {
  for (index_t jr = 0; jr < nc; jr += NR) {
    const index_t cols = std::min(NR, nc - jr);
    for (index_t ir = 0; ir < mc; ir += MR) {
      const index_t rows = std::min(MR, mc - ir);
      std::int32_t* cp = c.row(i0 + ir) + j0 + jr;
      if (rows == MR && cols == NR) {
        micro(ir, jr, cp, c.ld, accumulate);
      } else {
        micro(ir, jr, tile, NR, false);
        for (index_t r = 0; r < rows; ++r)
          for (index_t q = 0; q < cols; ++q)
            cp[r * c.ld + q] = (accumulate ? cp[r * c.ld + q] : 0) + tile[r * NR + q];
      }
    }
  }
}

// C = 0 unless accumulating: the result of an empty sum.
inline void gemm_s32_empty(const mat<std::int32_t>& c, bool accumulate) {
  if (!accumulate)
    for (index_t i = 0; i < c.rows; ++i) std::fill(c.row(i), c.row(i) + c.cols, 0);
}

// An MR x NR int32 tile of C (row stride ldc) = (accumulate ? C : 0) + a sliver x b sliver over kq quads.
// The row loops are unrolled by pragma: GCC 12 does not unroll them early enough on its own, and then
// keeps the accumulator array on the stack (a load and a store per vpdpbusd).
template <index_t MR, index_t NV, class I = lane_s32>
void gemm_micro_s32(index_t kq, const float* a, const float* b, std::int32_t* c, index_t ldc, bool accumulate) noexcept {
  constexpr index_t W = gemm_width, NR = NV * W;
  I acc[MR][NV];
#pragma GCC unroll 16
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) acc[r][v] = I(0);
  for (index_t k = 0; k < kq; ++k) {
    I bv[NV];
    for (index_t v = 0; v < NV; ++v) bv[v] = load_s32<I>(b + k * NR + v * W);
#pragma GCC unroll 16
    for (index_t r = 0; r < MR; ++r) {
      const I av(std::bit_cast<std::int32_t>(a[k * MR + r]));
      for (index_t v = 0; v < NV; ++v) acc[r][v] = quad_dot(acc[r][v], av, bv[v]);
    }
  }
  store_s32_tile<MR, NV>(acc, c, ldc, accumulate);
}

// C (m, n) = op(A) op(B) + (accumulate ? C : 0) on one thread, with a frame on its arena.
inline void gemm_u8s8_serial(const mat<const std::uint8_t>& a, const mat<const std::int8_t>& b,
                             const mat<std::int32_t>& c, index_t k, bool trans_a, bool trans_b, bool accumulate) {
  using blk = gemm_int8_blocking;
  constexpr index_t MR = blk::mr, NR = blk::nr;
  if (k == 0) {
    gemm_s32_empty(c, accumulate);
    return;
  }
  scratch s;
  float* ap = s.take<float>(std::size_t(blk::mc * blk::kc / 4));
  float* bp = s.take<float>(std::size_t(blk::kc * blk::nc / 4));
  alignas(64) std::int32_t tile[MR * NR];
  for (index_t j0 = 0; j0 < c.cols; j0 += blk::nc) {
    const index_t nc = std::min(blk::nc, c.cols - j0);
    for (index_t p0 = 0; p0 < k; p0 += blk::kc) {
      const index_t kc = std::min(blk::kc, k - p0), kq = (kc + 3) / 4;
      const bool acc = accumulate || p0 > 0;
      gemm_pack_groups<NR, 4>(b, !trans_b, j0, nc, p0, kc, bp);
      for (index_t i0 = 0; i0 < c.rows; i0 += blk::mc) {
        const index_t mc = std::min(blk::mc, c.rows - i0);
        gemm_pack_groups<MR, 4>(a, trans_a, i0, mc, p0, kc, ap);
        gemm_tiles_s32<MR, NR>(c, i0, mc, j0, nc, acc, tile,
                               [&](index_t ir, index_t jr, std::int32_t* out, index_t ldo, bool accumulate_tile) {
                                 gemm_micro_s32<MR, blk::nv>(kq, ap + ir * kq, bp + jr * kq, out, ldo, accumulate_tile);
                               });
      }
    }
  }
}

// An integer GEMM split over the OpenMP team by columns of C (or rows, when C is tall), MR / NR units,
// each part serial(a part, b part, c part) on sub-views; serial when small or already in a parallel region.
template <index_t MR, index_t NR, class TA, class TB, class Serial>
void gemm_s32_threaded(const mat<const TA>& a, const mat<const TB>& b, const mat<std::int32_t>& c, index_t k,
                       bool trans_a, bool trans_b, const Serial& serial) {
  const index_t m = c.rows, n = c.cols;
  const bool by_cols = n >= m;
  const index_t units = by_cols ? (n + NR - 1) / NR : (m + MR - 1) / MR;
  if (double(m) * double(n) * double(k) < double(1 << 22) || units < 2 || in_parallel() || max_threads() == 1) {
    serial(a, b, c);
    return;
  }
  parallel_for(units, [&](index_t u0, index_t u1) {
    if (by_cols) {
      const index_t j0 = u0 * NR, j1 = std::min(n, u1 * NR);
      const mat<const TB> bs = trans_b ? mat<const TB>{b.row(j0), j1 - j0, b.cols, b.ld}
                                       : mat<const TB>{b.data + j0, b.rows, j1 - j0, b.ld};
      serial(a, bs, mat<std::int32_t>{c.data + j0, m, j1 - j0, c.ld});
    } else {
      const index_t i0 = u0 * MR, i1 = std::min(m, u1 * MR);
      const mat<const TA> as = trans_a ? mat<const TA>{a.data + i0, a.rows, i1 - i0, a.ld}
                                       : mat<const TA>{a.row(i0), i1 - i0, a.cols, a.ld};
      serial(as, b, mat<std::int32_t>{c.row(i0), i1 - i0, n, c.ld});
    }
  });
}

inline void gemm_u8s8_threaded(const mat<const std::uint8_t>& a, const mat<const std::int8_t>& b,
                               const mat<std::int32_t>& c, index_t k, bool trans_a, bool trans_b, bool accumulate) {
  gemm_s32_threaded<gemm_int8_blocking::mr, gemm_int8_blocking::nr>(
      a, b, c, k, trans_a, trans_b, [&](const auto& as, const auto& bs, const mat<std::int32_t>& cs) {
        gemm_u8s8_serial(as, bs, cs, k, trans_a, trans_b, accumulate);
      });
}

}  // namespace tpp::detail
