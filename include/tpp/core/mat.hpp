#pragma once
// mat<T>: a non-owning row-major 2D view; element (i, j) is data[i * ld + j], ld >= cols.
// view(...) builds one and validates it; every op validates the views it is given (check_mat), so a
// hand-built aggregate mat is checked too.

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
  const std::string arg(name);
  require(m.rows >= 0, op, arg + ".rows", "is negative (" + std::to_string(m.rows) + ")");
  require(m.cols >= 0, op, arg + ".cols", "is negative (" + std::to_string(m.cols) + ")");
  require(m.ld >= m.cols, op, arg + ".ld",
          "(" + std::to_string(m.ld) + ") is smaller than cols (" + std::to_string(m.cols) + ")");
  index_t extent = 0;
  require(m.rows == 0 || (checked_mul(m.rows - 1, m.ld, extent) &&
                          extent <= std::numeric_limits<index_t>::max() - m.cols),
          op, arg, "extent rows*ld overflows index_t");
  require(m.data != nullptr || m.rows == 0 || m.cols == 0, op, arg + ".data", "is null with nonzero size");
}

// Same shape, or throw naming both arguments.
template <class T, class U>
void check_same_shape(const mat<T>& a, const mat<U>& b, std::string_view op, std::string_view na,
                      std::string_view nb) {
  require(a.rows == b.rows && a.cols == b.cols, op, std::string(nb),
          "shape (" + std::to_string(b.rows) + "x" + std::to_string(b.cols) + ") differs from " + std::string(na) +
              " (" + std::to_string(a.rows) + "x" + std::to_string(a.cols) + ")");
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
