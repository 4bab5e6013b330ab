#pragma once
// nm_matrix: N:M structured sparsity, fp32 values.
//   (rows, cols), 1 <= N <= M <= 255, M | cols: in each group of M consecutive columns of a row, N kept
//   values val (rows, cols / M, N) and their positions idx (uint8, < M, strictly ascending within the
//   group). 2:4 and 1:4 are N, M = 2, 4 and 1, 4.
// Made by prune_to_nm (sparse/prune.hpp); the products run it over k-panels (sparse/panels.hpp).

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace tpp {

struct nm_matrix {
  index_t rows = 0, cols = 0;
  int n = 2, m = 4;
  std::vector<float> val;         // rows * (cols / m) * n
  std::vector<std::uint8_t> idx;  // the same count: position within the group
  index_t nnz() const noexcept { return index_t(val.size()); }
};

namespace detail::sparse_impl {

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

template <class F>
void arrays_of(by_format, const nm_matrix& s, F&& f) {
  f(s.val), f(s.idx);
}

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

inline nm_rows rows_of(const nm_matrix& s) noexcept {
  return {s.val.data(), s.idx.data(), s.cols / s.m, s.n, s.m};
}

}  // namespace detail::sparse_impl
}  // namespace tpp
