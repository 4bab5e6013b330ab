#pragma once
// codebook_matrix: weight sharing (EIE / Deep Compression), and to_codebook, which makes one from CSR.
//   The CSR structure of the kept entries (row_ptr, col), each entry's value a 4-bit code (two per byte:
//   entry e in byte e / 2, the low nibble for even e) into a 16-entry fp32 table per block of block_rows
//   rows (table (ceil(rows / R), 16)). Pruned entries are absent (not a code), so zero needs no table entry.
//
//   to_codebook(csr, codebook_params{block_rows, iterations})
//     per block of R rows, a 1-D k-means over the block's stored values: quantile init (entry j = the
//     ((2j + 1) / 32)-th quantile), `iterations` Lloyd steps (means in double; an empty cluster keeps its
//     value), then every entry coded to its nearest table entry (ties: the lower entry). Values must be
//     finite (tpp::error otherwise).
// prune_to_codebook (sparse/prune.hpp) prunes a dense matrix and calls to_codebook; the products run the
// format over k-panels (sparse/panels.hpp), the codes decoded once.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "csr.hpp"

namespace tpp {

struct codebook_params {
  index_t block_rows = 64;  // rows sharing one 16-entry table
  int iterations = 8;       // Lloyd steps
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

namespace detail::sparse_impl {

inline void check_format(const codebook_matrix& s, std::string_view op, std::string_view name) {
  check_structure(op, name, s.rows, s.cols, s.row_ptr, s.col);
  if (s.block_rows < 1)
    throw error(op, concat(name, ".block_rows"), concat("(", to_string(s.block_rows), ") must be >= 1"));
  check_size(s.codes.size(), (index_t(s.col.size()) + 1) / 2, op, concat(name, ".codes"));
  const index_t blocks = (s.rows + s.block_rows - 1) / s.block_rows;
  check_size(s.table.size(), mul_or_throw(blocks, codebook_matrix::entries, op, name), op, concat(name, ".table"));
}

template <class F>
void arrays_of(by_format, const codebook_matrix& s, F&& f) {
  f(s.row_ptr), f(s.col), f(s.codes), f(s.table);
}

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

inline codebook_rows rows_of(const codebook_matrix& s) noexcept {
  return {s.row_ptr.data(), s.col.data(), s.codes.data(), s.table.data(), s.block_rows};
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

}  // namespace tpp
