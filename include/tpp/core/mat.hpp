#pragma once
// mat<T>: a non-owning row-major 2D view; element (i, j) is data[i * ld + j], ld >= cols.
// view(...) builds one and validates it; every op validates the views it is given (check_mat), so a
// hand-built aggregate mat is checked too.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "error.hpp"
#include "types.hpp"

namespace tpp {

template <class T>
struct mat {
  T* data = nullptr;
  index_t rows = 0, cols = 0, ld = 0;

  T& operator()(index_t i, index_t j) const noexcept { return data[i * ld + j]; }
  T* row(index_t i) const noexcept { return data + i * ld; }
  bool empty() const noexcept { return rows == 0 || cols == 0; }

  // A view of mutable elements converts to a view of const ones.
  operator mat<const T>() const noexcept
    requires(!std::is_const_v<T>)
  {
    return {data, rows, cols, ld};
  }
};

namespace detail {

// a * b for non-negative a, b; false when the product does not fit index_t.
inline bool checked_mul(index_t a, index_t b, index_t& out) noexcept {
  return !__builtin_mul_overflow(a, b, &out);
}

// Validates a view for op `op`, argument `name`: sizes >= 0, ld >= cols, the extent (rows-1)*ld + cols
// fits index_t, and data non-null when the view is non-empty.
template <class T>
void check_mat(const mat<T>& m, std::string_view op, std::string_view name) {
  if (m.rows < 0) throw error(op, concat(name, ".rows"), concat("is negative (", std::to_string(m.rows), ")"));
  if (m.cols < 0) throw error(op, concat(name, ".cols"), concat("is negative (", std::to_string(m.cols), ")"));
  if (m.ld < m.cols)
    throw error(op, concat(name, ".ld"),
                concat("(", std::to_string(m.ld), ") is smaller than cols (", std::to_string(m.cols), ")"));
  index_t extent = 0;
  require(m.rows == 0 || (checked_mul(m.rows - 1, m.ld, extent) &&
                          extent <= std::numeric_limits<index_t>::max() - m.cols),
          op, name, "extent rows*ld overflows index_t");
  if (m.data == nullptr && m.rows != 0 && m.cols != 0) throw error(op, concat(name, ".data"), "is null with nonzero size");
}

// A kernel's sizes, both >= 0 (named as the op calls them: "rows", "k", ...).
inline void check_sizes(std::string_view op, index_t rows, index_t cols, std::string_view rows_name = "rows",
                        std::string_view cols_name = "cols") {
  if (rows < 0) [[unlikely]]
    throw error(op, rows_name, concat("is negative (", std::to_string(rows), ")"));
  if (cols < 0) [[unlikely]]
    throw error(op, cols_name, concat("is negative (", std::to_string(cols), ")"));
}

// m is (rows, cols), or throw naming the argument; `expected` names what the shape should match.
template <class T>
void check_shape(const mat<T>& m, index_t rows, index_t cols, std::string_view op, std::string_view name,
                 std::string_view expected = "the expected") {
  if (m.rows != rows || m.cols != cols) [[unlikely]]
    throw error(op, name,
                concat("shape (", std::to_string(m.rows), "x", std::to_string(m.cols), ") differs from ", expected,
                       " (", std::to_string(rows), "x", std::to_string(cols), ")"));
}

// A view argument: valid (check_mat), then (rows, cols) (check_shape).
template <class T>
void check_view(const mat<T>& m, index_t rows, index_t cols, std::string_view op, std::string_view name,
                std::string_view expected = "the expected") {
  check_mat(m, op, name);
  check_shape(m, rows, cols, op, name, expected);
}

// Same shape, or throw naming both arguments.
template <class T, class U>
void check_same_shape(const mat<T>& a, const mat<U>& b, std::string_view op, std::string_view na,
                      std::string_view nb) {
  if (a.rows != b.rows || a.cols != b.cols)
    throw error(op, nb,
                concat("shape (", std::to_string(b.rows), "x", std::to_string(b.cols), ") differs from ", na, " (",
                       std::to_string(a.rows), "x", std::to_string(a.cols), ")"));
}

// A view as byte ranges: `rows` rows of w bytes, ld bytes apart, from base.
struct byte_rows {
  std::intptr_t base;
  index_t rows, ld, w;
};

template <class T>
byte_rows bytes_of(const mat<T>& m) noexcept {
  const index_t s = index_t(sizeof(T));
  return {reinterpret_cast<std::intptr_t>(m.data), m.rows, m.ld * s, m.cols * s};
}

// Whether the byte range [s, e) meets any row of v.
inline bool hits(const byte_rows& v, std::intptr_t s, std::intptr_t e) noexcept {
  const index_t lo = index_t(s - v.base) - v.w, hi = index_t(e - v.base);  // row k hits iff lo < k ld < hi
  if (hi <= 0) return false;
  const index_t kmin = lo < 0 ? 0 : lo / v.ld + 1;
  const index_t kmax = std::min(v.rows - 1, (hi - 1) / v.ld);
  return kmin <= kmax;
}

// Whether two views share a byte: exact for strided views of any element types and lds (disjoint
// sub-blocks of one workspace do not overlap). O(1) when the address ranges are disjoint, else
// O(rows of the view with fewer rows).
template <class T, class U>
bool views_overlap(const mat<T>& a, const mat<U>& b) noexcept {
  if (a.empty() || b.empty()) return false;
  const byte_rows x = bytes_of(a), y = bytes_of(b);
  const std::intptr_t xe = x.base + (x.rows - 1) * x.ld + x.w, ye = y.base + (y.rows - 1) * y.ld + y.w;
  if (xe <= y.base || ye <= x.base) return false;
  const byte_rows& few = x.rows <= y.rows ? x : y;
  const byte_rows& many = x.rows <= y.rows ? y : x;
  for (index_t i = 0; i < few.rows; ++i) {
    const std::intptr_t s = few.base + i * few.ld;
    if (hits(many, s, s + few.w)) return true;
  }
  return false;
}

// The output may be the very same view as an input (in-place), or share no element with it.
template <class TO, class T>
void check_alias(const mat<TO>& out, const mat<T>& in, std::string_view op, std::string_view out_name,
                 std::string_view in_name) {
  const bool same = std::is_same_v<std::remove_const_t<T>, std::remove_const_t<TO>> &&
                    static_cast<const void*>(out.data) == static_cast<const void*>(in.data) && out.rows == in.rows &&
                    out.cols == in.cols && (out.rows <= 1 || out.ld == in.ld);
  if (!same && views_overlap(out, in))
    throw error(op, in_name,
                concat("overlaps ", out_name, " (an output may only be the very same view as an input, of the same element type)"));
}

}  // namespace detail

// A validated view; ld = -1 means ld = cols.
template <class T>
mat<T> view(T* data, index_t rows, index_t cols, index_t ld = -1) {
  mat<T> m{data, rows, cols, ld == -1 ? cols : ld};
  detail::check_mat(m, "view", "matrix");
  return m;
}

}  // namespace tpp
