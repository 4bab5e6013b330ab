#pragma once
// bcsr_matrix: blocked CSR, fp32 values, and its register-blocked vector tile.
//   (rows, cols) in r x c dense blocks (block_shape{r, c}, r | rows, c | cols): row_ptr (rows / r + 1) over
//   block rows, col (block columns, strictly ascending within a block row), val (blocks r c, each block
//   row-major). A block's c values of one row multiply c consecutive rows of the dense operand, and its r
//   rows share each loaded dense row (register blocking): 8 x 1 blocks reuse a B row 8 times, 1 x 16 blocks
//   stream 16 B rows into one C row.
// The tile (bcsr_columns, called by sparse/product.hpp): row by row in registers, up to 4 rows of a block
// at once, each loaded B vector used by all of them; C's columns in tiles of 4 vectors, then single
// vectors. B's panel (all its rows x the tile) is copied contiguous once per tile when that pays and fits
// max_pack_rows rows (4 MiB at 4 vectors): with a power-of-two ldb its rows would share a few cache sets,
// and the row-by-row loop reads all of it per block row.

#include <cstddef>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace tpp {

struct block_shape {
  index_t rows = 1, cols = 1;
};

struct bcsr_matrix {
  index_t rows = 0, cols = 0;
  block_shape block;
  std::vector<index_t> row_ptr;  // rows / block.rows + 1
  std::vector<index_t> col;      // blocks: block column
  std::vector<float> val;        // blocks * block.rows * block.cols, each block row-major
  index_t blocks() const noexcept { return index_t(col.size()); }
  index_t nnz() const noexcept { return index_t(val.size()); }
};

namespace detail::sparse_impl {

inline void check_block(block_shape b, index_t rows, index_t cols, std::string_view op, std::string_view name) {
  if (b.rows < 1 || b.cols < 1)
    throw error(op, name, concat("(", to_string(b.rows), "x", to_string(b.cols), ") must be at least 1x1"));
  if (rows % b.rows != 0 || cols % b.cols != 0)
    throw error(op, name,
                concat("(", to_string(b.rows), "x", to_string(b.cols), ") does not divide the matrix (", to_string(rows),
                       "x", to_string(cols), ")"));
}

inline void check_format(const bcsr_matrix& s, std::string_view op, std::string_view name) {
  check_sizes(op, s.rows, s.cols, concat(name, ".rows"), concat(name, ".cols"));
  check_block(s.block, s.rows, s.cols, op, concat(name, ".block"));
  check_structure(op, name, s.rows / s.block.rows, s.cols / s.block.cols, s.row_ptr, s.col);
  const index_t per = mul_or_throw(s.block.rows, s.block.cols, op, concat(name, ".block"));
  check_size(s.val.size(), mul_or_throw(index_t(s.col.size()), per, op, concat(name, ".val")), op, concat(name, ".val"));
}

template <class F>
void arrays_of(by_format, const bcsr_matrix& s, F&& f) {
  f(s.row_ptr), f(s.col), f(s.val);
}

struct bcsr_rows {
  const index_t *ptr, *col;
  const float* val;
  index_t r, c;
  template <class F>
  [[gnu::always_inline]] void row(index_t i, F&& f) const {
    const index_t bi = i / r, rr = i % r;
    for (index_t b = ptr[bi]; b < ptr[bi + 1]; ++b) {
      const float* v = val + (b * r + rr) * c;
      const index_t k0 = col[b] * c;
      for (index_t cc = 0; cc < c; ++cc) f(k0 + cc, v[cc]);
    }
  }
};

inline bcsr_rows rows_of(const bcsr_matrix& s) noexcept {
  return {s.row_ptr.data(), s.col.data(), s.val.data(), s.block.rows, s.block.cols};
}

// Rows are handed out by block rows.
inline index_t unit_rows(const bcsr_matrix& s) noexcept { return s.block.rows; }

// ---- the vector tile ----

inline constexpr index_t max_pack_rows = 16384;  // B rows copied at most

// Whether the tile copies B's panel for a range of `rows` rows of S (the scratch region, S.cols x 4
// vectors, is needed exactly then; more rows never turn it off).
inline bool packs_b(const bcsr_matrix& S, index_t rows) noexcept {
  return S.cols <= max_pack_rows && pack_pays(S.nnz(), rows, S.rows, S.cols);
}

// Rows [rr0, rr0 + RB) of every block of block rows [bi0, bi1), NV vectors: each B vector loaded once per
// block column is used by RB rows.
template <class P, bool WF, index_t RB, index_t NV>
void bcsr_vector_tile(const bcsr_matrix& S, index_t bi0, index_t bi1, index_t rr0, const float* b, index_t ldb,
                      float* c, index_t ldc, const scaling& o) {
  using V = lane;
  const index_t r = S.block.rows, bc = S.block.cols;
  const index_t* ptr = S.row_ptr.data();
  const index_t* col = S.col.data();
  const float* val = S.val.data();
  for (index_t bi = bi0; bi < bi1; ++bi) {
    V acc[RB][NV];
    for (index_t q = 0; q < RB; ++q)
      for (index_t v = 0; v < NV; ++v) acc[q][v] = V(0.0f);
    for (index_t blk = ptr[bi]; blk < ptr[bi + 1]; ++blk) {
      const float* vals = val + (blk * r + rr0) * bc;
      const float* bb = b + col[blk] * bc * ldb;
      for (index_t cc = 0; cc < bc; ++cc) {
        V x[NV];
        for (index_t v = 0; v < NV; ++v) x[v] = lanes::load<V>(bb + cc * ldb + v * W);
        for (index_t q = 0; q < RB; ++q) {
          const V sv(vals[q * bc + cc]);
          for (index_t v = 0; v < NV; ++v) acc[q][v] = step<P, WF>(sv, x[v], acc[q][v]);
        }
      }
    }
    for (index_t q = 0; q < RB; ++q) {
      float* ci = c + ((bi - bi0) * r + rr0 + q) * ldc;
      for (index_t v = 0; v < NV; ++v) {
        const V old = o.beta != 0.0f ? lanes::load<V>(ci + v * W) : V(0.0f);
        lanes::store(ci + v * W, finish(acc[q][v], o, old));
      }
    }
  }
}

// Rows [i0, i1) of S (multiples of the block rows, or i1 = S.rows) into C's columns [0, j) for the
// largest j <= n that is a multiple of W; returns j. b and c at the first column of B and of C's row i0;
// pk: S.cols x 4 vectors when packs_b(S, i1 - i0).
template <class P, bool WF>
index_t bcsr_columns(const bcsr_matrix& S, index_t i0, index_t i1, const float* b, index_t ldb, float* c,
                     index_t ldc, index_t n, const scaling& o, float* pk) {
  const index_t r = S.block.rows, bi0 = i0 / r, bi1 = i1 / r;
  const bool pack = packs_b(S, i1 - i0);
  auto tile = [&]<index_t NV>(index_t j0) {
    index_t ld = ldb, rr = 0;
    const float* bt = pack ? contiguous_rows<NV>(b + j0, ld, S.cols, pk) : b + j0;
    for (; rr + 4 <= r; rr += 4) bcsr_vector_tile<P, WF, 4, NV>(S, bi0, bi1, rr, bt, ld, c + j0, ldc, o);
    for (; rr < r; ++rr) bcsr_vector_tile<P, WF, 1, NV>(S, bi0, bi1, rr, bt, ld, c + j0, ldc, o);
  };
  index_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) tile.template operator()<4>(j);
  for (; j + W <= n; j += W) tile.template operator()<1>(j);
  return j;
}

}  // namespace detail::sparse_impl
}  // namespace tpp
