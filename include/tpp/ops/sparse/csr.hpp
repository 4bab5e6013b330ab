#pragma once
// csr_matrix: compressed sparse rows, fp32 values.
//   (rows, cols): row_ptr (rows + 1), col (nnz, strictly ascending within a row), val (nnz)
// Made by prune_to_csr (sparse/prune.hpp) or by hand; every op validates the one it is given.

#include <cstddef>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace tpp {

struct csr_matrix {
  index_t rows = 0, cols = 0;
  std::vector<index_t> row_ptr;  // rows + 1
  std::vector<index_t> col;      // nnz
  std::vector<float> val;        // nnz
  index_t nnz() const noexcept { return index_t(val.size()); }
};

namespace detail::sparse_impl {

inline void check_format(const csr_matrix& s, std::string_view op, std::string_view name) {
  check_structure(op, name, s.rows, s.cols, s.row_ptr, s.col);
  check_size(s.val.size(), index_t(s.col.size()), op, concat(name, ".val"));
}

template <class F>
void arrays_of(by_format, const csr_matrix& s, F&& f) {
  f(s.row_ptr), f(s.col), f(s.val);
}

struct csr_rows {
  const index_t *ptr, *col;
  const float* val;
  template <class F>
  [[gnu::always_inline]] void row(index_t i, F&& f) const {
    for (index_t e = ptr[i], end = ptr[i + 1]; e < end; ++e) f(col[e], val[e]);
  }
};

inline csr_rows rows_of(const csr_matrix& s) noexcept {
  return {s.row_ptr.data(), s.col.data(), s.val.data()};
}

}  // namespace detail::sparse_impl
}  // namespace tpp
