#pragma once
// Sparse x dense and dense x sparse products with the multiply policy, the sparse formats they take,
// magnitude pruning from dense, and complementary sparsity.
//
// Formats (owning structs, std::vector storage, fp32 values; every op validates the one it is given):
//   csr_matrix       (rows, cols): row_ptr (rows + 1), col (nnz, strictly ascending within a row), val (nnz)
//   bcsr_matrix      (rows, cols) in r x c dense blocks (r | rows, c | cols): row_ptr (rows / r + 1) over
//                    block rows, col (block columns, strictly ascending within a block row), val (blocks
//                    r c, each block row-major). A block's c values of one row multiply c consecutive rows
//                    of the dense operand, its r rows share each loaded dense row (register blocking):
//                    8 x 1 blocks reuse a B row 8 times, 1 x 16 blocks stream 16 B rows into one C row.
//   nm_matrix        N:M structured (1 <= N <= M <= 255, M | cols): in each group of M consecutive columns
//                    of a row, N kept values val (rows, cols / M, N) and their positions idx (uint8, < M,
//                    strictly ascending within the group). 2:4 and 1:4 are N, M = 2, 4 and 1, 4.
//   codebook_matrix  weight sharing (EIE / Deep Compression): the CSR structure of the kept entries, each
//                    entry's value a 4-bit code (two per byte: entry e in byte e / 2, the low nibble for even
//                    e) into a 16-entry fp32 table per block of block_rows rows (table (ceil(rows / R), 16)).
//                    Pruned entries are absent (not a code), so zero needs no table entry.
// Conversions (tpp::error on bad arguments):
//   prune_to_csr(A, prune_params)                   magnitude pruning of a dense (rows, cols) view
//   prune_to_bcsr(A, block_shape{r, c}, prune_params) the same over blocks, ranked by their L1 norm
//   prune_to_nm(A, n, m)                            keeps the n largest magnitudes of every group of m
//   prune_to_codebook(A, prune_params, codebook_params) = to_codebook(prune_to_csr(A, p), q)
//   to_codebook(csr, codebook_params)               per block of R rows a 1-D k-means over the block's stored
//                                                   values: quantile init (entry j = the ((2j + 1) / 32)-th
//                                                   quantile), `iterations` Lloyd steps (means in double; an
//                                                   empty cluster keeps its value), then every entry coded to
//                                                   its nearest table entry (ties: the lower entry).
//                                                   Values must be finite.
//   to_dense(S, out)                                writes every element of out (rows, cols)
// Pruning rule (prune_params: exactly one of sparsity in [0, 1] or threshold >= 0):
//   (prune_params::by_sparsity(s) / by_threshold(t) build one)
//   sparsity s: exactly round(s count) entries (blocks) are dropped, count = rows cols (blocks), the
//     smallest magnitudes first; among equal magnitudes the lower index (row-major) is kept. NaN ranks above
//     every number (kept). The others are stored as they are, so the stored count is exactly
//     count - round(s count) (stored zeros included, when A has fewer non-zeros).
//   threshold t: an entry is kept when |x| > t or x is NaN (a block when any of its entries is); t = 0
//     converts losslessly (every non-zero kept; -0 becomes +0).
//   N:M: in each group the n largest magnitudes are kept, ties to the lower position.
//
// Products (Policy = approx::exact, constrained by approx::multiplier; P(a, b) = Policy::mul(a, b)):
//   sparse_dense: C (M, N) = alpha S B + beta C,   S (M, K) sparse, B (K, N) dense
//   dense_sparse: C (M, N) = alpha A W^T + beta C, A (M, K) dense, W (N, K) sparse: a linear layer
//     y = x W^T with its weight stored (out, in), rows of W are output features
//   Every product of a weight and an activation goes through the policy, in gemm's operand order:
//   P(s, b) for S B and P(a, w) for A W^T (so the result equals gemm<Policy> on the dense operands). Each
//   output element is an fp32 sum over the sparse operand's stored entries of its row (W: of row j) in
//   ascending column order, starting from +0: acc = acc + P(s, b), and with approx::exact acc = fma(s, b,
//   acc) (not rounded before the add, as in gemm). Then C = alpha acc (plain fp32 multiply, skipped for
//   alpha = 1) + beta C (one fma); beta = 0 never reads C. The order does not depend on the SIMD width,
//   the column tile or the thread count: the OpenMP drivers equal the single-threaded kernel bit for bit.
//   Stored zeros take part (P(0, Inf) = NaN); absent entries contribute nothing, even against an Inf or NaN
//   in the dense operand (where a dense gemm gives NaN).
//   Vectorisation: along the dense operand's contiguous rows, C's columns in tiles of 4 vectors (then single
//   vectors; columns past the last full vector run the same steps on scalars), tiles outer so B's panel
//   stays in cache. CSR, N:M and codebook: the kernel object re-lays the operand once in k-panels (S's
//   columns cut into panels of 128, wider when S is very sparse; per panel a CSR of the row segments that
//   fall in it; values decoded to fp32, about 8 bytes per entry more). Per chunk of 1024 rows and panel,
//   B's block (128 rows x the tile, 32 KiB) is copied contiguous (a power-of-two ldb maps its rows to a
//   few L1 sets) and stays in L1 while each row's segment accumulates in registers from an fp32 tile row
//   (in L2) and goes back: t(i, tile) += P(broadcast(s), B(k, tile)). Measured 3.7x dense sgemm at 90%
//   sparsity, 1024^3, one core, against 2.6x for an L1 output tile fed column by column and 1.2x for the
//   same panels read from B in place.
//   BCSR: row by row in registers, up to 4 rows of a block at once, each loaded B vector used by all of
//   them, over B's panel (all its rows x the tile) copied contiguous once per tile. A W^T: A's rows are
//   packed by panels of 8 vectors, transposed (K, panel), the same loops run with W as the sparse operand,
//   and the results are written back transposed. (B's copies are made only when the rows in hand have at
//   least 8 entries per column of S on average, so the copy costs little next to the products.)
//   skip_zero_activations (EIE): the kernel object builds the sparse operand's transposed structure (its
//   columns) once; S B then takes each column of B as a vector x and adds, for each k with x_k != 0 (NaN
//   counts as non-zero), P(s, x_k) into y_i for the entries (i, s) of column k of S; A W^T likewise takes
//   each row a of A and adds P(a_k, w) into y_j for the entries (j, w) of column k of W. The order per
//   output is still ascending k, so the result equals the plain path's except that a skipped zero's
//   +-0 product is not added (an exact-zero sum may differ in the sign of zero) and a non-finite weight
//   meeting a zero activation gives no NaN. Worth it when the dense operand is a vector or narrow and
//   mostly zero (ReLU outputs).
//
// Complementary sparsity (Numenta): pack_complementary(parts) overlays count <= 255 matrices S_j of one
// shape whose stored entries do not collide (tpp::error naming the part and position otherwise) into one
// dense (rows, cols) operand and a per-element owner (j + 1; 0 for no entry); unpack_part(pack, j) gives
// S_j back. complementary_product<P>(pack, x, Y) multiplies the packed operand once by the vector x (cols)
// and unpacks: Y (rows, count) with Y(i, j) = (S_j x)_i = sum over k with owner(i, k) = j + 1 of
// P(packed(i, k), x_k), each in ascending k with the step above, so column j equals sparse_dense<P>(S_j, x)
// bit for bit.
//
// API:
//   sparse_kernel<P, Format> k(S, sparse_params{alpha, beta, skip_zero_activations});  (keeps a reference
//     to S, which must outlive it and not change)
//     k.sparse_dense(B, C); k.dense_sparse(A, C)       single-threaded, safe inside a caller's parallel region
//   sparse_dense<P>(S, B, C, p), dense_sparse<P>(A, W, C, p)   OpenMP-parallel drivers: output rows split
//     over the team (skip_zero_activations with S B: C's columns), none inside a parallel region
// Scratch: slot 16 (the packed A panel, the zero-skipping accumulators, packed products), 17 (the transposed
// panel result), 18 (the fp32 output tile), 19 (B's copied panel).
//
// Errors (tpp::error naming the op and argument): invalid views (negative sizes, ld < cols, null data with a
// nonzero size), shapes that do not chain, C overlapping the dense operand, non-finite alpha or beta,
// malformed formats (row_ptr of the wrong length, not starting at 0, decreasing or not ending at the entry
// count; column / block / group positions out of range or not ascending; vectors of the wrong length;
// N > M; block sizes that do not divide; codes >= 16 cannot occur in 4 bits; tables of the wrong length),
// prune parameters (none or both set, sparsity outside [0, 1] or NaN, threshold negative or NaN), sizes
// whose products overflow index_t, collisions in complementary packing.

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/scratch.hpp"
#include "../core/simd.hpp"

namespace tpp {

struct prune_params {
  std::optional<double> sparsity;  // the fraction of entries (blocks) dropped, in [0, 1]
  std::optional<float> threshold;  // keep |x| > threshold

  // The same as {.sparsity = s} / {.threshold = t} (which GCC 12's -Wextra flags for the member left out).
  static prune_params by_sparsity(double s) noexcept { return {s, std::nullopt}; }
  static prune_params by_threshold(float t) noexcept { return {std::nullopt, t}; }
};

struct block_shape {
  index_t rows = 1, cols = 1;
};

struct codebook_params {
  index_t block_rows = 64;  // rows sharing one 16-entry table
  int iterations = 8;       // Lloyd steps
};

struct sparse_params {
  float alpha = 1.0f, beta = 0.0f;
  bool skip_zero_activations = false;  // EIE: iterate the dense operand's non-zeros (see the top of the file)
};

struct csr_matrix {
  index_t rows = 0, cols = 0;
  std::vector<index_t> row_ptr;  // rows + 1
  std::vector<index_t> col;      // nnz
  std::vector<float> val;        // nnz
  index_t nnz() const noexcept { return index_t(val.size()); }
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

struct nm_matrix {
  index_t rows = 0, cols = 0;
  int n = 2, m = 4;
  std::vector<float> val;         // rows * (cols / m) * n
  std::vector<std::uint8_t> idx;  // the same count: position within the group
  index_t nnz() const noexcept { return index_t(val.size()); }
};

struct codebook_matrix {
  static constexpr index_t entries = 16;
  index_t rows = 0, cols = 0, block_rows = 64;
  std::vector<index_t> row_ptr;      // rows + 1
  std::vector<index_t> col;          // nnz
  std::vector<std::uint8_t> codes;   // (nnz + 1) / 2
  std::vector<float> table;          // ceil(rows / block_rows) * 16
  index_t nnz() const noexcept { return index_t(col.size()); }
  unsigned code(index_t e) const noexcept { return (codes[std::size_t(e >> 1)] >> ((e & 1) * 4)) & 0xfu; }
  float value(index_t i, index_t e) const noexcept { return table[std::size_t((i / block_rows) * entries + code(e))]; }
};

struct complementary_matrix {
  index_t rows = 0, cols = 0, count = 0;
  std::vector<float> val;           // (rows, cols) row-major: every part's stored entries in place, 0 elsewhere
  std::vector<std::uint8_t> owner;  // (rows, cols): j + 1 for an entry of part j, 0 for none
};

template <class F>
concept sparse_format = std::same_as<F, csr_matrix> || std::same_as<F, bcsr_matrix> || std::same_as<F, nm_matrix> ||
                        std::same_as<F, codebook_matrix>;

namespace detail::sparse_impl {

using std::to_string;

inline index_t mul_or_throw(index_t a, index_t b, std::string_view op, std::string_view name) {
  index_t r = 0;
  if (!checked_mul(a, b, r)) throw error(op, name, "overflows index_t");
  return r;
}

inline void check_size(std::size_t have, index_t want, std::string_view op, std::string_view name) {
  if (index_t(have) != want) [[unlikely]]
    throw error(op, name, concat("has ", to_string(have), " elements (expected ", to_string(want), ")"));
}

// A CSR structure over `rows` rows and `cols` columns: row_ptr of rows + 1 from 0, non-decreasing, ending
// at col.size(); columns in range, strictly ascending within a row.
inline void check_structure(std::string_view op, std::string_view name, index_t rows, index_t cols,
                            const std::vector<index_t>& row_ptr, const std::vector<index_t>& col) {
  check_sizes(op, rows, cols, concat(name, ".rows"), concat(name, ".cols"));
  check_size(row_ptr.size(), rows + 1, op, concat(name, ".row_ptr"));
  if (row_ptr[0] != 0) throw error(op, concat(name, ".row_ptr"), concat("[0] is ", to_string(row_ptr[0]), ", not 0"));
  for (index_t i = 0; i < rows; ++i)
    if (row_ptr[std::size_t(i + 1)] < row_ptr[std::size_t(i)])
      throw error(op, concat(name, ".row_ptr"), concat("decreases at row ", to_string(i)));
  if (row_ptr[std::size_t(rows)] != index_t(col.size()))
    throw error(op, concat(name, ".row_ptr"),
                concat("ends at ", to_string(row_ptr[std::size_t(rows)]), " but there are ", to_string(col.size()),
                       " column indices"));
  for (index_t i = 0; i < rows; ++i)
    for (index_t e = row_ptr[std::size_t(i)]; e < row_ptr[std::size_t(i + 1)]; ++e) {
      const index_t k = col[std::size_t(e)];
      if (k < 0 || k >= cols)
        throw error(op, concat(name, ".col"),
                    concat("[", to_string(e), "] = ", to_string(k), " is outside [0, ", to_string(cols), ")"));
      if (e > row_ptr[std::size_t(i)] && k <= col[std::size_t(e - 1)])
        throw error(op, concat(name, ".col"), concat("is not strictly ascending in row ", to_string(i)));
    }
}

inline void check_format(const csr_matrix& s, std::string_view op, std::string_view name) {
  check_structure(op, name, s.rows, s.cols, s.row_ptr, s.col);
  check_size(s.val.size(), index_t(s.col.size()), op, concat(name, ".val"));
}

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

inline void check_nm(int n, int m, index_t cols, std::string_view op) {
  if (m < 1 || m > 255) throw error(op, "m", concat("(", to_string(m), ") must be in [1, 255]"));
  if (n < 1 || n > m) throw error(op, "n", concat("(", to_string(n), ") must be in [1, m = ", to_string(m), "]"));
  if (cols % m != 0)
    throw error(op, "m", concat("(", to_string(m), ") does not divide cols (", to_string(cols), ")"));
}

inline void check_format(const nm_matrix& s, std::string_view op, std::string_view name) {
  check_sizes(op, s.rows, s.cols, concat(name, ".rows"), concat(name, ".cols"));
  check_nm(s.n, s.m, s.cols, op);
  const index_t count = mul_or_throw(mul_or_throw(s.rows, s.cols / s.m, op, name), s.n, op, name);
  check_size(s.val.size(), count, op, concat(name, ".val"));
  check_size(s.idx.size(), count, op, concat(name, ".idx"));
  for (index_t e = 0; e < count; ++e) {
    const unsigned p = s.idx[std::size_t(e)];
    if (p >= unsigned(s.m))
      throw error(op, concat(name, ".idx"), concat("[", to_string(e), "] = ", to_string(p), " is not below m"));
    if (e % s.n != 0 && p <= s.idx[std::size_t(e - 1)])
      throw error(op, concat(name, ".idx"), concat("is not strictly ascending in the group of entry ", to_string(e)));
  }
}

inline void check_format(const codebook_matrix& s, std::string_view op, std::string_view name) {
  check_structure(op, name, s.rows, s.cols, s.row_ptr, s.col);
  if (s.block_rows < 1)
    throw error(op, concat(name, ".block_rows"), concat("(", to_string(s.block_rows), ") must be >= 1"));
  check_size(s.codes.size(), (index_t(s.col.size()) + 1) / 2, op, concat(name, ".codes"));
  const index_t blocks = (s.rows + s.block_rows - 1) / s.block_rows;
  check_size(s.table.size(), mul_or_throw(blocks, codebook_matrix::entries, op, name), op, concat(name, ".table"));
}

// ---- each format's rows as (k, s) entries, in stored (ascending k) order ----
struct csr_rows {
  const index_t *ptr, *col;
  const float* val;
  template <class F>
  [[gnu::always_inline]] void row(index_t i, F&& f) const {
    for (index_t e = ptr[i], end = ptr[i + 1]; e < end; ++e) f(col[e], val[e]);
  }
};

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

struct nm_rows {
  const float* val;
  const std::uint8_t* idx;
  index_t groups, n, m;
  template <class F>
  [[gnu::always_inline]] void row(index_t i, F&& f) const {
    const index_t base = i * groups * n;
    for (index_t g = 0; g < groups; ++g)
      for (index_t t = 0; t < n; ++t) f(g * m + idx[base + g * n + t], val[base + g * n + t]);
  }
};

struct codebook_rows {
  const index_t *ptr, *col;
  const std::uint8_t* codes;
  const float* table;
  index_t block_rows;
  template <class F>
  [[gnu::always_inline]] void row(index_t i, F&& f) const {
    const float* t = table + (i / block_rows) * codebook_matrix::entries;
    for (index_t e = ptr[i], end = ptr[i + 1]; e < end; ++e)
      f(col[e], t[(codes[e >> 1] >> ((e & 1) * 4)) & 0xf]);
  }
};

inline csr_rows rows_of(const csr_matrix& s) noexcept {
  return {s.row_ptr.data(), s.col.data(), s.val.data()};
}
inline bcsr_rows rows_of(const bcsr_matrix& s) noexcept {
  return {s.row_ptr.data(), s.col.data(), s.val.data(), s.block.rows, s.block.cols};
}
inline nm_rows rows_of(const nm_matrix& s) noexcept {
  return {s.val.data(), s.idx.data(), s.cols / s.m, s.n, s.m};
}
inline codebook_rows rows_of(const codebook_matrix& s) noexcept {
  return {s.row_ptr.data(), s.col.data(), s.codes.data(), s.table.data(), s.block_rows};
}

// Rows are handed out in units (BCSR: block rows).
inline index_t unit_rows(const bcsr_matrix& s) noexcept { return s.block.rows; }
template <class F>
index_t unit_rows(const F&) noexcept {
  return 1;
}

// ---- the step and the output ----

using simd::fma;

// acc + P(s, b) (weight first: S B) or acc + P(b, s) (activation first: A W^T); exact fuses.
template <class P, bool weight_first, class L>
[[gnu::always_inline]] inline L step(L s, L b, L acc) noexcept {
  if constexpr (std::is_same_v<P, approx::exact>)
    return fma(s, b, acc);
  else if constexpr (weight_first)
    return acc + P::mul(s, b);
  else
    return acc + P::mul(b, s);
}

struct scaling {
  float alpha = 1.0f, beta = 0.0f;
};

// alpha acc + beta c, reading c only when beta != 0.
template <class L>
[[gnu::always_inline]] inline L finish(L acc, const scaling& o, L c) noexcept {
  L x = o.alpha != 1.0f ? L(o.alpha) * acc : acc;
  return o.beta != 0.0f ? fma(L(o.beta), c, x) : x;
}

inline constexpr index_t W = simd::enabled ? simd::width<> : 1;
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

// BCSR: rows [rr0, rr0 + RB) of every block of block rows [bi0, bi1), NV vectors: each B vector loaded
// once per block column is used by RB rows.
template <class P, bool WF, index_t RB, index_t NV>
void bcsr_vector_tile(const bcsr_matrix& S, index_t bi0, index_t bi1, index_t rr0, const float* b, index_t ldb,
                      float* c, index_t ldc, const scaling& o) {
  using V = simd::batch<float>;
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
        for (index_t v = 0; v < NV; ++v) x[v] = V::load_unaligned(bb + cc * ldb + v * W);
        for (index_t q = 0; q < RB; ++q) {
          const V sv(vals[q * bc + cc]);
          for (index_t v = 0; v < NV; ++v) acc[q][v] = step<P, WF>(sv, x[v], acc[q][v]);
        }
      }
    }
    for (index_t q = 0; q < RB; ++q) {
      float* ci = c + ((bi - bi0) * r + rr0 + q) * ldc;
      for (index_t v = 0; v < NV; ++v) {
        const V old = o.beta != 0.0f ? V::load_unaligned(ci + v * W) : V(0.0f);
        finish(acc[q][v], o, old).store_unaligned(ci + v * W);
      }
    }
  }
}

// B's rows [0, kn) x NV vectors (b at the first, ld apart) contiguous: b itself when ld is NV W already,
// else a copy in pk (and ld becomes NV W).
template <index_t NV>
const float* contiguous_rows(const float* b, index_t& ld, index_t kn, float* pk) {
  using V = simd::batch<float>;
  if (ld == NV * W) return b;
  for (index_t k = 0; k < kn; ++k)
    for (index_t v = 0; v < NV; ++v) V::load_unaligned(b + k * ld + v * W).store_aligned(pk + (k * NV + v) * W);
  ld = NV * W;
  return pk;
}

// Whether copying B's panel pays: at least 8 entries per column of S, on average, over `rows` rows.
inline bool pack_pays(index_t nnz, index_t rows, index_t S_rows, index_t S_cols) noexcept {
  return double(rows) * double(nnz) >= 8.0 * double(std::max<index_t>(S_rows, 1)) * double(std::max<index_t>(S_cols, 1));
}

// The k-panel layout of CSR, N:M and codebook operands, made once by the kernel object: S's columns cut
// into panels of `width` columns; panel p holds, row by row, the entries of each row whose column falls in
// it (as the column within the panel, ascending), values decoded to fp32. A row's entries over the panels
// in order are its stored entries in order, so a sum over them keeps the ascending-k order of scalar_tile.
struct k_panels {
  index_t rows = 0, cols = 0, width = 1, panels = 0;
  std::vector<index_t> ptr;  // panel p, row i: entries [ptr[p (rows + 1) + i], ptr[p (rows + 1) + i + 1])
  std::vector<index_t> k;    // entry: its column of S (row of B) minus p width
  std::vector<float> val;    // entry: value
};

// The panel width: k_panel columns (B's block of k_panel rows x 4 vectors, 32 KiB, stays in L1 while every
// row of a chunk runs over it), widened in steps of k_panel for very sparse operands so that a row segment
// averages at least 2 entries (ptr's size stays below half the entry count plus a row per panel).
inline constexpr index_t k_panel = 128, max_pack_width = 8 * k_panel;
inline constexpr index_t max_pack_rows = 16384;  // BCSR: B rows packed at most (4 MiB at 4 vectors)
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

// Rows [i0, i1) into NV vectors of columns: per chunk of row_chunk rows, panel by panel (B's block of the
// panel's rows made contiguous in pk when the chunk has at least 8 entries per column on average to pay
// for the copy: a power-of-two ldb would map all of the block's rows to the same L1 sets), each row's
// segment accumulates in registers from its fp32 tile row t(r, :) and goes back there. The tile starts at +0 and each output element takes the steps of
// scalar_tile in the same (ascending k) order, so the results are the same bits.
template <class P, bool WF, index_t NV>
void panel_tile(const k_panels& kp, index_t i0, index_t i1, const float* b, index_t ldb, float* c, index_t ldc,
                const scaling& o, float* t, float* pk) {
  using V = simd::batch<float>;
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
      for (index_t r = 0; r < mb; ++r) {  // (two rows' chains interleaved measured no faster)
        index_t e = ptr[r];
        const index_t e1 = ptr[r + 1];
        if (e == e1) continue;
        float* tr = t + r * TW;
        V acc[NV];
        _Pragma("GCC unroll 4") for (index_t v = 0; v < NV; ++v) acc[v] = V::load_aligned(tr + v * W);
        for (; e < e1; ++e) {
          const V sv(val[e]);
          const float* bk = bp + kk[e] * ld;
          _Pragma("GCC unroll 4") for (index_t v = 0; v < NV; ++v) acc[v] =
              step<P, WF>(sv, V::load_unaligned(bk + v * W), acc[v]);
        }
        _Pragma("GCC unroll 4") for (index_t v = 0; v < NV; ++v) acc[v].store_aligned(tr + v * W);
      }
    }
    for (index_t r = 0; r < mb; ++r) {
      float* ci = c + (r0 - i0 + r) * ldc;
      for (index_t v = 0; v < NV; ++v) {
        const V old = o.beta != 0.0f ? V::load_unaligned(ci + v * W) : V(0.0f);
        finish(V::load_aligned(t + r * TW + v * W), o, old).store_unaligned(ci + v * W);
      }
    }
  }
}

// C's columns [0, n) for rows [i0, i1) of S (multiples of unit_rows(S), or i1 = S.rows), c at C's row i0:
// column tiles outer (the B panel stays in cache), rows inner. kp: S's k-panel layout (not for BCSR).
template <class P, bool WF, class F>
void product_rows(const F& S, const k_panels* kp, index_t i0, index_t i1, const float* b, index_t ldb, float* c,
                  index_t ldc, index_t n, const scaling& o) {
  const auto rows = rows_of(S);
  index_t j = 0;
  if constexpr (simd::enabled) {
    if constexpr (std::is_same_v<F, bcsr_matrix>) {
      const index_t r = S.block.rows, bi0 = i0 / r, bi1 = i1 / r;
      // B's panel (all S.cols rows x NV vectors) packed when that pays and fits 4 MiB: with a power-of-two
      // ldb its rows would share a few cache sets, and the row-by-row loop reads all of it per block row.
      const bool pack = S.cols <= max_pack_rows && pack_pays(S.nnz(), i1 - i0, S.rows, S.cols);
      float* pk = pack ? thread_scratch<19>(std::size_t(S.cols * 4 * W)) : nullptr;
      auto tile = [&]<index_t NV>(index_t j0) {
        index_t ld = ldb, rr = 0;
        const float* bt = pack ? contiguous_rows<NV>(b + j0, ld, S.cols, pk) : b + j0;
        for (; rr + 4 <= r; rr += 4) bcsr_vector_tile<P, WF, 4, NV>(S, bi0, bi1, rr, bt, ld, c + j0, ldc, o);
        for (; rr < r; ++rr) bcsr_vector_tile<P, WF, 1, NV>(S, bi0, bi1, rr, bt, ld, c + j0, ldc, o);
      };
      for (; j + 4 * W <= n; j += 4 * W) tile.template operator()<4>(j);
      for (; j + W <= n; j += W) tile.template operator()<1>(j);
    } else {
      float* t = thread_scratch<18>(std::size_t(std::min(row_chunk, i1 - i0) * 4 * W));
      float* pk = thread_scratch<19>(std::size_t(std::min(kp->width, max_pack_width) * 4 * W));
      for (; j + 4 * W <= n; j += 4 * W) panel_tile<P, WF, 4>(*kp, i0, i1, b + j, ldb, c + j, ldc, o, t, pk);
      for (; j + W <= n; j += W) panel_tile<P, WF, 1>(*kp, i0, i1, b + j, ldb, c + j, ldc, o, t, pk);
    }
  }
  for (; j < n; j += scalar_cols)
    scalar_tile<P, WF>(rows, i0, i1, b + j, ldb, c + j, ldc, std::min(scalar_cols, n - j), o);
}

// The transposed structure of S (its columns): for column k, entries [ptr[k], ptr[k + 1]) as (row, value),
// rows ascending.
struct columns {
  std::vector<index_t> ptr, row;
  std::vector<float> val;
};

template <class F>
columns transpose(const F& S) {
  columns t;
  t.ptr.assign(std::size_t(S.cols + 1), 0);
  const auto rows = rows_of(S);
  for (index_t i = 0; i < S.rows; ++i) rows.row(i, [&](index_t k, float) { ++t.ptr[std::size_t(k + 1)]; });
  for (index_t k = 0; k < S.cols; ++k) t.ptr[std::size_t(k + 1)] += t.ptr[std::size_t(k)];
  t.row.resize(std::size_t(t.ptr.back()));
  t.val.resize(std::size_t(t.ptr.back()));
  std::vector<index_t> next(t.ptr.begin(), t.ptr.end() - 1);
  for (index_t i = 0; i < S.rows; ++i)
    rows.row(i, [&](index_t k, float s) {
      const std::size_t e = std::size_t(next[std::size_t(k)]++);
      t.row[e] = i;
      t.val[e] = s;
    });
  return t;
}

// EIE: y (len) = sum over k with x[k * xs] != 0 of P(...) over column k's entries; then out[i * os] =
// alpha y_i + beta out[i * os].
template <class P, bool WF>
void zero_skipping(const columns& t, index_t K, const float* x, index_t xs, float* y, index_t len, float* out,
                   index_t os, const scaling& o) {
  std::fill_n(y, len, 0.0f);
  for (index_t k = 0; k < K; ++k) {
    const float a = x[k * xs];
    if (a == 0.0f) continue;
    for (index_t e = t.ptr[std::size_t(k)]; e < t.ptr[std::size_t(k + 1)]; ++e) {
      float& acc = y[t.row[std::size_t(e)]];
      acc = step<P, WF>(t.val[std::size_t(e)], a, acc);
    }
  }
  for (index_t i = 0; i < len; ++i) out[i * os] = finish(y[i], o, o.beta != 0.0f ? out[i * os] : 0.0f);
}

inline constexpr index_t panel = simd::enabled ? 8 * W : scalar_cols;  // rows of A per packed panel
inline constexpr index_t out_chunk = 64;                                // rows of W per transposed result

inline void check_scaling(const sparse_params& p, std::string_view op) {
  if (!std::isfinite(p.alpha)) throw error(op, "alpha", concat("(", to_string(p.alpha), ") is not finite"));
  if (!std::isfinite(p.beta)) throw error(op, "beta", concat("(", to_string(p.beta), ") is not finite"));
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

  // C (S.rows, N) = alpha S B + beta C, B (S.cols, N).
  void sparse_dense(mat<const float> B, mat<float> C) const {
    check_sparse_dense(label, B, C);
    if (p_.skip_zero_activations)
      sd_columns(B, C, 0, C.cols);
    else
      sd_rows(B, C, 0, C.rows);
  }

  // C (M, S.rows) = alpha A S^T + beta C, A (M, S.cols).
  void dense_sparse(mat<const float> A, mat<float> C) const {
    check_dense_sparse(label, A, C);
    ds_rows(A, C, 0, C.rows);
  }

  // ---- for the OpenMP drivers: validated arguments, ranges of C ----

  void check_sparse_dense(std::string_view op, const mat<const float>& B, const mat<float>& C) const {
    detail::check_mat(B, op, "B");
    detail::check_mat(C, op, "C");
    detail::check_shape(B, s_->cols, B.cols, op, "B", "S.cols by B.cols");
    detail::check_shape(C, s_->rows, B.cols, op, "C", "S.rows by B.cols");
    if (detail::views_overlap(C, B)) throw error(op, "C", "overlaps B");
  }
  void check_dense_sparse(std::string_view op, const mat<const float>& A, const mat<float>& C) const {
    detail::check_mat(A, op, "A");
    detail::check_mat(C, op, "C");
    detail::check_shape(A, A.rows, s_->cols, op, "A", "A.rows by S.cols");
    detail::check_shape(C, A.rows, s_->rows, op, "C", "A.rows by S.rows");
    if (detail::views_overlap(C, A)) throw error(op, "C", "overlaps A");
  }

  // Rows [i0, i1) of C = alpha S B + beta C (i0, i1 multiples of unit_rows(), or i1 = C.rows).
  void sd_rows(const mat<const float>& B, const mat<float>& C, index_t i0, index_t i1) const {
    if (i0 < i1)
      detail::sparse_impl::product_rows<Policy, true>(*s_, &kp_, i0, i1, B.data, B.ld, C.row(i0), C.ld, C.cols, out());
  }
  // Columns [j0, j1) of C = alpha S B + beta C on the zero-skipping path.
  void sd_columns(const mat<const float>& B, const mat<float>& C, index_t j0, index_t j1) const {
    float* y = thread_scratch<16>(std::size_t(std::max<index_t>(C.rows, 1)));
    for (index_t j = j0; j < j1; ++j)
      detail::sparse_impl::zero_skipping<Policy, true>(t_, B.rows, B.data + j, B.ld, y, C.rows, C.data + j, C.ld,
                                                       out());
  }
  // Rows [i0, i1) of C = alpha A S^T + beta C (i0 a multiple of panel_rows()).
  void ds_rows(const mat<const float>& A, const mat<float>& C, index_t i0, index_t i1) const {
    using namespace detail::sparse_impl;
    const index_t K = A.cols, N = C.cols;
    if (p_.skip_zero_activations) {
      float* y = thread_scratch<16>(std::size_t(std::max<index_t>(N, 1)));
      for (index_t i = i0; i < i1; ++i) zero_skipping<Policy, false>(t_, K, A.row(i), 1, y, N, C.row(i), 1, out());
      return;
    }
    const index_t ur = detail::sparse_impl::unit_rows(*s_), chunk = (out_chunk + ur - 1) / ur * ur;
    float* at = thread_scratch<16>(std::size_t(std::max<index_t>(K * panel, 1)));  // (K, panel)
    float* tr = thread_scratch<17>(std::size_t(chunk * panel));                    // (chunk, panel)
    for (index_t r0 = i0; r0 < i1; r0 += panel) {
      const index_t mb = std::min(panel, i1 - r0);
      for (index_t k = 0; k < K; ++k) {
        float* dst = at + k * panel;
        for (index_t r = 0; r < mb; ++r) dst[r] = A(r0 + r, k);
        std::fill(dst + mb, dst + panel, 0.0f);
      }
      for (index_t j0 = 0; j0 < N; j0 += chunk) {
        const index_t j1 = std::min(N, j0 + chunk);
        product_rows<Policy, false>(*s_, &kp_, j0, j1, at, panel, tr, panel, panel, scaling{});
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

  const Format* s_;
  sparse_params p_;
  detail::sparse_impl::columns t_;
  detail::sparse_impl::k_panels kp_;
};

// C = alpha S B + beta C, OpenMP-parallel over C's rows (zero-skipping: over C's columns).
template <class Policy = approx::exact, class Format>
  requires approx::multiplier<Policy> && sparse_format<Format>
void sparse_dense(const Format& S, mat<const float> B, mat<float> C, sparse_params p = {}) {
  constexpr std::string_view op = "sparse_dense";
  detail::sparse_impl::check_format(S, op, "S");
  detail::sparse_impl::check_scaling(p, op);
  const sparse_kernel<Policy, Format> k(S, {p.alpha, p.beta, false});
  k.check_sparse_dense(op, B, C);
  if (C.empty()) return;
  const double work = double(S.nnz()) * double(C.cols);
  const bool threaded = work >= double(1 << 16);
  if (p.skip_zero_activations) {
    const sparse_kernel<Policy, Format> z(S, p);
    if (!threaded) return z.sd_columns(B, C, 0, C.cols);
    parallel_for(C.cols, [&](index_t j0, index_t j1) { z.sd_columns(B, C, j0, j1); });
    return;
  }
  const index_t ur = k.unit_rows(), units = (C.rows + ur - 1) / ur;
  if (!threaded) return k.sd_rows(B, C, 0, C.rows);
  parallel_for(units, [&](index_t u0, index_t u1) { k.sd_rows(B, C, u0 * ur, std::min(C.rows, u1 * ur)); });
}

// C = alpha A W^T + beta C, OpenMP-parallel over C's rows (panels of A).
template <class Policy = approx::exact, class Format>
  requires approx::multiplier<Policy> && sparse_format<Format>
void dense_sparse(mat<const float> A, const Format& W, mat<float> C, sparse_params p = {}) {
  constexpr std::string_view op = "dense_sparse";
  detail::sparse_impl::check_format(W, op, "W");
  detail::sparse_impl::check_scaling(p, op);
  const sparse_kernel<Policy, Format> k(W, p);
  k.check_dense_sparse(op, A, C);
  if (C.empty()) return;
  const double work = double(W.nnz()) * double(C.rows);
  const index_t pr = p.skip_zero_activations ? 1 : k.panel_rows();
  const index_t units = (C.rows + pr - 1) / pr;
  if (work < double(1 << 16)) return k.ds_rows(A, C, 0, C.rows);
  parallel_for(units, [&](index_t u0, index_t u1) { k.ds_rows(A, C, u0 * pr, std::min(C.rows, u1 * pr)); });
}

// Mutable views convert.
template <class Policy = approx::exact, class Format>
  requires approx::multiplier<Policy> && sparse_format<Format>
void sparse_dense(const Format& S, mat<float> B, mat<float> C, sparse_params p = {}) {
  sparse_dense<Policy>(S, mat<const float>(B), C, p);
}
template <class Policy = approx::exact, class Format>
  requires approx::multiplier<Policy> && sparse_format<Format>
void dense_sparse(mat<float> A, const Format& W, mat<float> C, sparse_params p = {}) {
  dense_sparse<Policy>(mat<const float>(A), W, C, p);
}

// ---- pruning and conversions ----

namespace detail::sparse_impl {

inline void check_prune(const prune_params& p, std::string_view op) {
  if (p.sparsity.has_value() == p.threshold.has_value())
    throw error(op, "prune_params", "needs exactly one of sparsity and threshold");
  if (p.sparsity && !(*p.sparsity >= 0.0 && *p.sparsity <= 1.0))
    throw error(op, "sparsity", concat("(", to_string(*p.sparsity), ") is outside [0, 1]"));
  if (p.threshold && !(*p.threshold >= 0.0f))
    throw error(op, "threshold", concat("(", to_string(*p.threshold), ") must be >= 0"));
}

// |x|'s bits: ordered like |x| for numbers, NaN above +Inf.
inline std::uint32_t magnitude(float x) noexcept { return std::bit_cast<std::uint32_t>(x) & 0x7fffffffu; }

// keep[e] for count scores (magnitude order, as uint32 or double): the lowest round(s count) dropped,
// among equal scores the higher index first.
template <class S>
std::vector<char> keep_largest(const std::vector<S>& score, double sparsity) {
  const index_t count = index_t(score.size());
  const index_t drop = std::min<index_t>(count, index_t(std::llround(sparsity * double(count))));
  std::vector<index_t> order(score.size());
  for (index_t e = 0; e < count; ++e) order[std::size_t(e)] = e;
  auto before = [&](index_t a, index_t b) {  // dropped first
    const S sa = score[std::size_t(a)], sb = score[std::size_t(b)];
    return sa != sb ? sa < sb : a > b;
  };
  std::vector<char> keep(score.size(), 1);
  if (drop > 0 && drop < count) std::nth_element(order.begin(), order.begin() + drop, order.end(), before);
  for (index_t e = 0; e < drop; ++e) keep[std::size_t(order[std::size_t(e)])] = 0;
  return keep;
}

inline bool above(float x, float t) noexcept { return std::isnan(x) || std::fabs(x) > t; }

inline void check_dense(const mat<const float>& A, std::string_view op) {
  check_mat(A, op, "A");
  index_t count = 0;
  if (!checked_mul(A.rows, A.cols, count)) throw error(op, "A", "rows * cols overflows index_t");
}

// Nearest table entry to x (ties: the lower entry).
inline unsigned nearest(float x, const float* t) noexcept {
  unsigned best = 0;
  double bd = std::fabs(double(x) - double(t[0]));
  for (unsigned j = 1; j < codebook_matrix::entries; ++j) {
    const double d = std::fabs(double(x) - double(t[j]));
    if (d < bd) bd = d, best = j;
  }
  return best;
}

// The 16-entry table of one block's values (see to_codebook).
inline void kmeans(std::vector<float> v, int iterations, float* t) {
  constexpr index_t E = codebook_matrix::entries;
  if (v.empty()) {
    std::fill_n(t, E, 0.0f);
    return;
  }
  std::sort(v.begin(), v.end());
  const index_t n = index_t(v.size());
  for (index_t j = 0; j < E; ++j) t[j] = v[std::size_t(std::min(n - 1, (2 * j + 1) * n / (2 * E)))];
  for (int it = 0; it < iterations; ++it) {
    double sum[E] = {};
    index_t cnt[E] = {};
    for (float x : v) {
      const unsigned j = nearest(x, t);
      sum[j] += x;
      ++cnt[j];
    }
    for (index_t j = 0; j < E; ++j)
      if (cnt[j] > 0) t[j] = float(sum[j] / double(cnt[j]));
  }
}

}  // namespace detail::sparse_impl

inline csr_matrix prune_to_csr(mat<const float> A, prune_params p) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "prune_to_csr";
  check_dense(A, op);
  check_prune(p, op);
  std::vector<char> keep;
  if (p.sparsity) {
    std::vector<std::uint32_t> score(std::size_t(A.rows * A.cols));
    for (index_t i = 0; i < A.rows; ++i)
      for (index_t j = 0; j < A.cols; ++j) score[std::size_t(i * A.cols + j)] = magnitude(A(i, j));
    keep = keep_largest(score, *p.sparsity);
  }
  csr_matrix s{A.rows, A.cols, {}, {}, {}};
  s.row_ptr.reserve(std::size_t(A.rows + 1));
  s.row_ptr.push_back(0);
  for (index_t i = 0; i < A.rows; ++i) {
    for (index_t j = 0; j < A.cols; ++j) {
      const float x = A(i, j);
      if (p.sparsity ? keep[std::size_t(i * A.cols + j)] != 0 : above(x, *p.threshold)) {
        s.col.push_back(j);
        s.val.push_back(x == 0.0f ? 0.0f : x);
      }
    }
    s.row_ptr.push_back(index_t(s.col.size()));
  }
  return s;
}

inline bcsr_matrix prune_to_bcsr(mat<const float> A, block_shape block, prune_params p) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "prune_to_bcsr";
  check_dense(A, op);
  check_block(block, A.rows, A.cols, op, "block");
  check_prune(p, op);
  const index_t r = block.rows, c = block.cols, br = A.rows / r, bc = A.cols / c;
  const auto block_at = [&](index_t b) {  // block b of the br x bc grid, row-major
    return mat<const float>{&A((b / bc) * r, (b % bc) * c), r, c, A.ld};
  };
  std::vector<char> keep(std::size_t(br * bc), 0);
  if (p.sparsity) {
    std::vector<double> score(keep.size());  // L1 norm; NaN ranks above every number
    for (index_t b = 0; b < br * bc; ++b) {
      const mat<const float> blk = block_at(b);
      double s = 0;
      for (index_t q = 0; q < r; ++q)
        for (index_t cc = 0; cc < c; ++cc) s += std::isnan(blk(q, cc)) ? HUGE_VAL : std::fabs(double(blk(q, cc)));
      score[std::size_t(b)] = s;
    }
    keep = keep_largest(score, *p.sparsity);
  } else {
    for (index_t b = 0; b < br * bc; ++b) {
      const mat<const float> blk = block_at(b);
      for (index_t q = 0; q < r && !keep[std::size_t(b)]; ++q)
        for (index_t cc = 0; cc < c; ++cc)
          if (above(blk(q, cc), *p.threshold)) keep[std::size_t(b)] = 1;
    }
  }
  bcsr_matrix s{A.rows, A.cols, block, {}, {}, {}};
  s.row_ptr.push_back(0);
  for (index_t bi = 0; bi < br; ++bi) {
    for (index_t bj = 0; bj < bc; ++bj) {
      if (!keep[std::size_t(bi * bc + bj)]) continue;
      s.col.push_back(bj);
      const mat<const float> blk = block_at(bi * bc + bj);
      for (index_t q = 0; q < r; ++q)
        for (index_t cc = 0; cc < c; ++cc) s.val.push_back(blk(q, cc) == 0.0f ? 0.0f : blk(q, cc));
    }
    s.row_ptr.push_back(index_t(s.col.size()));
  }
  return s;
}

inline nm_matrix prune_to_nm(mat<const float> A, int n, int m) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "prune_to_nm";
  check_dense(A, op);
  check_nm(n, m, A.cols, op);
  nm_matrix s{A.rows, A.cols, n, m, {}, {}};
  const index_t groups = A.cols / m;
  s.val.reserve(std::size_t(A.rows * groups * n));
  s.idx.reserve(std::size_t(A.rows * groups * n));
  std::vector<int> pos(static_cast<std::size_t>(m));
  for (index_t i = 0; i < A.rows; ++i)
    for (index_t g = 0; g < groups; ++g) {
      const float* x = A.row(i) + g * m;
      for (int q = 0; q < m; ++q) pos[std::size_t(q)] = q;
      // the n largest magnitudes, ties to the lower position, then in ascending position
      std::partial_sort(pos.begin(), pos.begin() + n, pos.end(), [&](int a, int b) {
        const std::uint32_t ma = magnitude(x[a]), mb = magnitude(x[b]);
        return ma != mb ? ma > mb : a < b;
      });
      std::sort(pos.begin(), pos.begin() + n);
      for (int t = 0; t < n; ++t) {
        const float v = x[pos[std::size_t(t)]];
        s.val.push_back(v == 0.0f ? 0.0f : v);
        s.idx.push_back(std::uint8_t(pos[std::size_t(t)]));
      }
    }
  return s;
}

inline codebook_matrix to_codebook(const csr_matrix& S, codebook_params q = {}) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "to_codebook";
  check_format(S, op, "S");
  if (q.block_rows < 1) throw error(op, "block_rows", concat("(", to_string(q.block_rows), ") must be >= 1"));
  if (q.iterations < 0) throw error(op, "iterations", concat("(", to_string(q.iterations), ") is negative"));
  for (float x : S.val)
    if (!std::isfinite(x)) throw error(op, "S.val", "holds a non-finite value (a codebook needs finite values)");
  constexpr index_t E = codebook_matrix::entries;
  const index_t blocks = (S.rows + q.block_rows - 1) / q.block_rows;
  codebook_matrix c{S.rows, S.cols, q.block_rows, S.row_ptr, S.col, {}, {}};
  c.table.assign(std::size_t(mul_or_throw(blocks, E, op, "table")), 0.0f);
  c.codes.assign(std::size_t((S.nnz() + 1) / 2), 0);
  for (index_t b = 0; b < blocks; ++b) {
    const index_t e0 = S.row_ptr[std::size_t(b * q.block_rows)];
    const index_t e1 = S.row_ptr[std::size_t(std::min(S.rows, (b + 1) * q.block_rows))];
    float* t = c.table.data() + b * E;
    kmeans(std::vector<float>(S.val.begin() + e0, S.val.begin() + e1), q.iterations, t);
    for (index_t e = e0; e < e1; ++e)
      c.codes[std::size_t(e >> 1)] |= std::uint8_t(nearest(S.val[std::size_t(e)], t) << ((e & 1) * 4));
  }
  return c;
}

inline codebook_matrix prune_to_codebook(mat<const float> A, prune_params p, codebook_params q = {}) {
  return to_codebook(prune_to_csr(A, p), q);
}

// Every element of out (S.rows, S.cols): the stored values, zero elsewhere.
template <class Format>
  requires sparse_format<Format>
void to_dense(const Format& S, mat<float> out) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "to_dense";
  check_format(S, op, "S");
  check_mat(out, op, "out");
  check_shape(out, S.rows, S.cols, op, "out", "S's");
  const auto rows = rows_of(S);
  for (index_t i = 0; i < S.rows; ++i) {
    float* o = out.row(i);
    std::fill_n(o, S.cols, 0.0f);
    rows.row(i, [&](index_t k, float s) { o[k] = s; });
  }
}

// ---- complementary sparsity ----

inline complementary_matrix pack_complementary(std::span<const csr_matrix> parts) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "pack_complementary";
  if (parts.empty() || parts.size() > 255)
    throw error(op, "parts", concat("has ", to_string(parts.size()), " matrices (1 to 255 can be packed)"));
  complementary_matrix pk{parts[0].rows, parts[0].cols, index_t(parts.size()), {}, {}};
  for (std::size_t j = 0; j < parts.size(); ++j) {
    const std::string name = concat("parts[", to_string(j), "]");
    check_format(parts[j], op, name);
    if (parts[j].rows != pk.rows || parts[j].cols != pk.cols)
      throw error(op, name, concat("is (", to_string(parts[j].rows), "x", to_string(parts[j].cols), "), parts[0] is (",
                                   to_string(pk.rows), "x", to_string(pk.cols), ")"));
  }
  const index_t count = mul_or_throw(pk.rows, pk.cols, op, "parts[0]");
  pk.val.assign(std::size_t(count), 0.0f);
  pk.owner.assign(std::size_t(count), 0);
  for (std::size_t j = 0; j < parts.size(); ++j) {
    const csr_matrix& s = parts[j];
    for (index_t i = 0; i < s.rows; ++i)
      for (index_t e = s.row_ptr[std::size_t(i)]; e < s.row_ptr[std::size_t(i + 1)]; ++e) {
        const std::size_t at = std::size_t(i * pk.cols + s.col[std::size_t(e)]);
        if (pk.owner[at] != 0)
          throw error(op, concat("parts[", to_string(j), "]"),
                      concat("collides with parts[", to_string(pk.owner[at] - 1), "] at (", to_string(i), ", ",
                             to_string(s.col[std::size_t(e)]), ")"));
        pk.owner[at] = std::uint8_t(j + 1);
        pk.val[at] = s.val[std::size_t(e)];
      }
  }
  return pk;
}

namespace detail::sparse_impl {
inline void check_format(const complementary_matrix& pk, std::string_view op, std::string_view name) {
  check_sizes(op, pk.rows, pk.cols, concat(name, ".rows"), concat(name, ".cols"));
  if (pk.count < 1 || pk.count > 255)
    throw error(op, concat(name, ".count"), concat("(", to_string(pk.count), ") is outside [1, 255]"));
  const index_t n = mul_or_throw(pk.rows, pk.cols, op, name);
  check_size(pk.val.size(), n, op, concat(name, ".val"));
  check_size(pk.owner.size(), n, op, concat(name, ".owner"));
  for (std::uint8_t o : pk.owner)
    if (o > pk.count) throw error(op, concat(name, ".owner"), concat("holds ", to_string(o), ", above count"));
}
}  // namespace detail::sparse_impl

// Part j of a packing: its stored entries, in place.
inline csr_matrix unpack_part(const complementary_matrix& pk, index_t j) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "unpack_part";
  check_format(pk, op, "pack");
  if (j < 0 || j >= pk.count)
    throw error(op, "j", concat("(", to_string(j), ") is outside [0, ", to_string(pk.count), ")"));
  csr_matrix s{pk.rows, pk.cols, {0}, {}, {}};
  for (index_t i = 0; i < pk.rows; ++i) {
    for (index_t k = 0; k < pk.cols; ++k)
      if (pk.owner[std::size_t(i * pk.cols + k)] == j + 1) {
        s.col.push_back(k);
        s.val.push_back(pk.val[std::size_t(i * pk.cols + k)]);
      }
    s.row_ptr.push_back(index_t(s.col.size()));
  }
  return s;
}

// Y (rows, count): Y(i, j) = (S_j x)_i, the packed operand multiplied by x (cols) once and unpacked by owner.
template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
void complementary_product(const complementary_matrix& pk, std::span<const float> x, mat<float> Y) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "complementary_product";
  check_format(pk, op, "pack");
  check_size(x.size(), pk.cols, op, "x");
  if (x.data() == nullptr && pk.cols != 0) throw error(op, "x.data", "is null with nonzero size");
  check_mat(Y, op, "Y");
  check_shape(Y, pk.rows, pk.count, op, "Y", "pack.rows by pack.count");
  approx::check_policy<Policy>();
  const index_t K = pk.cols;
  float* prod = thread_scratch<16>(std::size_t(std::max<index_t>(K, 1)));
  for (index_t i = 0; i < pk.rows; ++i) {
    float* y = Y.row(i);
    std::fill_n(y, pk.count, 0.0f);
    const float* v = pk.val.data() + i * K;
    const std::uint8_t* own = pk.owner.data() + i * K;
    if constexpr (std::is_same_v<Policy, approx::exact>) {
      for (index_t k = 0; k < K; ++k)
        if (own[k] != 0) y[own[k] - 1] = std::fma(v[k], x[std::size_t(k)], y[own[k] - 1]);
    } else {
      index_t k = 0;  // the packed products, a vector at a time; then summed by owner
      if constexpr (simd::enabled) {
        using V = simd::batch<float>;
        for (; k + W <= K; k += W)
          Policy::mul(V::load_unaligned(v + k), V::load_unaligned(x.data() + k)).store_unaligned(prod + k);
      }
      for (; k < K; ++k) prod[k] = Policy::mul(v[k], x[std::size_t(k)]);
      for (k = 0; k < K; ++k)
        if (own[k] != 0) y[own[k] - 1] = y[own[k] - 1] + prod[k];
    }
  }
}

}  // namespace tpp
