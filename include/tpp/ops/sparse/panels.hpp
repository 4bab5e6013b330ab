#pragma once
// The k-panel layout of CSR, N:M and codebook operands and the vector tile that runs over it.
//
// Layout (by_panels, made once by the kernel object): S's columns cut into panels of 128 (k_panel),
// wider when S is very sparse; per panel a CSR of the row segments that fall in it, values decoded to
// fp32 (about 8 bytes per entry more than the format). A row's entries over the panels in order are its
// stored entries in order, so a sum over them keeps the ascending-k order of the scalar path.
//
// Tile (panel_columns, called by sparse/product.hpp): C's columns in tiles of 4 vectors, then single
// vectors. Per chunk of 1024 rows (row_chunk) and panel, B's block (128 rows x the tile, 32 KiB) is copied
// contiguous, because a power-of-two ldb maps its rows to a few L1 sets, and stays in L1 while each row's
// segment accumulates in registers from an fp32 tile row (256 KiB for the chunk: L2) and goes back:
// t(i, tile) += P(broadcast(s), B(k, tile)). The copy is made only when the chunk has at least 8 entries
// per column of S on average, so that it costs little next to the products.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "common.hpp"
#include "formats.hpp"

namespace tpp::detail::sparse_impl {

// Panel p holds, row by row, the entries of each row whose column falls in it (as the column within the
// panel, ascending), values decoded to fp32.
struct k_panels {
  index_t rows = 0, cols = 0, width = 1, panels = 0;
  std::vector<index_t> ptr;  // panel p, row i: entries [ptr[p (rows + 1) + i], ptr[p (rows + 1) + i + 1])
  std::vector<index_t> k;    // entry: its column of S (row of B) minus p width
  std::vector<float> val;    // entry: value
};

// The panel width: k_panel columns (B's block of k_panel rows x 4 vectors, 32 KiB, stays in L1 while every
// row of a chunk runs over it), widened in steps of k_panel for very sparse operands so that a row segment
// averages at least 2 entries (ptr's size stays below half the entry count plus a row per panel); B's block
// is copied for panels up to max_pack_width columns.
inline constexpr index_t k_panel = 128, max_pack_width = 8 * k_panel;
inline constexpr index_t row_chunk = 1024;  // rows per pass over the panels: the fp32 tile is 256 KiB (L2)

template <class F>
k_panels by_panels(const F& S) {
  k_panels kp;
  kp.rows = S.rows;
  kp.cols = S.cols;
  const index_t cols = std::max<index_t>(S.cols, 1);
  const double per_col = double(S.nnz()) / double(cols), need = 2.0 * double(std::max<index_t>(S.rows, 1));
  const double wide = per_col > 0.0 ? std::ceil(need / per_col / double(k_panel)) * double(k_panel) : double(cols);
  kp.width = std::max(k_panel, index_t(std::min(wide, double(cols))));
  kp.panels = (cols + kp.width - 1) / kp.width;
  const std::size_t stride = std::size_t(S.rows + 1);
  kp.ptr.assign(std::size_t(kp.panels) * stride, 0);
  const auto rows = rows_of(S);
  for (index_t i = 0; i < S.rows; ++i)
    rows.row(i, [&](index_t k, float) { ++kp.ptr[std::size_t(k / kp.width) * stride + std::size_t(i + 1)]; });
  index_t run = 0;  // counts to offsets, panel-major
  for (std::size_t p = 0; p < std::size_t(kp.panels); ++p) {
    kp.ptr[p * stride] = run;
    for (std::size_t i = 1; i < stride; ++i) run = kp.ptr[p * stride + i] += run;
  }
  kp.k.resize(std::size_t(run));
  kp.val.resize(std::size_t(run));
  std::vector<index_t> next(std::size_t(kp.panels));
  for (index_t i = 0; i < S.rows; ++i) {
    for (index_t p = 0; p < kp.panels; ++p) next[std::size_t(p)] = kp.ptr[std::size_t(p) * stride + std::size_t(i)];
    rows.row(i, [&](index_t k, float s) {
      const index_t p = k / kp.width;
      const std::size_t e = std::size_t(next[std::size_t(p)]++);
      kp.k[e] = k - p * kp.width;
      kp.val[e] = s;
    });
  }
  return kp;
}

// The scratch of panel_columns for a range of `rows` rows: the fp32 tile t (rows of a chunk x 4 vectors)
// and B's copied block pk (panel width x 4 vectors).
inline index_t tile_floats(index_t rows) noexcept { return std::min(row_chunk, rows) * 4 * W; }
inline index_t packed_b_floats(const k_panels& kp) noexcept { return std::min(kp.width, max_pack_width) * 4 * W; }

// Rows [i0, i1) into NV vectors of columns: per chunk of row_chunk rows, panel by panel (B's block of the
// panel's rows made contiguous in pk when pack_pays), each row's segment accumulates in registers from its
// fp32 tile row t(r, :) and goes back there. The tile starts at +0 and each output element takes the steps
// of the scalar path in the same (ascending k) order, so the results are the same bits.
template <class P, bool WF, index_t NV>
void panel_tile(const k_panels& kp, index_t i0, index_t i1, const float* b, index_t ldb, float* c, index_t ldc,
                const scaling& o, float* t, float* pk) {
  using V = lane;
  constexpr index_t TW = NV * W;
  const index_t* kk = kp.k.data();
  const float* val = kp.val.data();
  for (index_t r0 = i0; r0 < i1; r0 += row_chunk) {
    const index_t mb = std::min(row_chunk, i1 - r0);
    const bool pack = kp.width <= max_pack_width && pack_pays(index_t(kp.k.size()), mb, kp.rows, kp.cols);
    std::fill_n(t, mb * TW, 0.0f);
    for (index_t p = 0; p < kp.panels; ++p) {
      const index_t k0 = p * kp.width, kn = std::min(kp.width, kp.cols - k0);
      const float* bp = b + k0 * ldb;
      index_t ld = ldb;
      if (pack) bp = contiguous_rows<NV>(bp, ld, kn, pk);
      const index_t* ptr = kp.ptr.data() + p * (kp.rows + 1) + r0;
      for (index_t r = 0; r < mb; ++r) {
        index_t e = ptr[r];
        const index_t e1 = ptr[r + 1];
        if (e == e1) continue;
        float* tr = t + r * TW;
        V acc[NV];
        _Pragma("GCC unroll 4") for (index_t v = 0; v < NV; ++v) acc[v] = lanes::load<V>(tr + v * W);
        for (; e < e1; ++e) {
          const V sv(val[e]);
          const float* bk = bp + kk[e] * ld;
          _Pragma("GCC unroll 4") for (index_t v = 0; v < NV; ++v) acc[v] =
              step<P, WF>(sv, lanes::load<V>(bk + v * W), acc[v]);
        }
        _Pragma("GCC unroll 4") for (index_t v = 0; v < NV; ++v) lanes::store(tr + v * W, acc[v]);
      }
    }
    for (index_t r = 0; r < mb; ++r) {
      float* ci = c + (r0 - i0 + r) * ldc;
      for (index_t v = 0; v < NV; ++v) {
        const V old = o.beta != 0.0f ? lanes::load<V>(ci + v * W) : V(0.0f);
        lanes::store(ci + v * W, finish(lanes::load<V>(t + r * TW + v * W), o, old));
      }
    }
  }
}

// Rows [i0, i1) into C's columns [0, j) for the largest j <= n that is a multiple of W; returns j. b and c
// at the first column of B and of C's row i0; t and pk as tile_floats(i1 - i0) and packed_b_floats(kp).
template <class P, bool WF>
index_t panel_columns(const k_panels& kp, index_t i0, index_t i1, const float* b, index_t ldb, float* c, index_t ldc,
                      index_t n, const scaling& o, float* t, float* pk) {
  index_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) panel_tile<P, WF, 4>(kp, i0, i1, b + j, ldb, c + j, ldc, o, t, pk);
  for (; j + W <= n; j += W) panel_tile<P, WF, 1>(kp, i0, i1, b + j, ldb, c + j, ldc, o, t, pk);
  return j;
}

}  // namespace tpp::detail::sparse_impl
