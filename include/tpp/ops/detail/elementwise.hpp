#pragma once
// The machinery shared by the element-wise ops (unary.hpp, binary.hpp, ternary.hpp):
//
//   tpp::broadcast           how an input is applied to an (M, N) output: none (M, N), row (1, N) applied to
//                            every row, col (M, 1) applied to every column, scalar (1, 1)
//   simd::lane (core)        the lane type the op functors run on: simd::batch<float> at the compile-time arch,
//                            or float with TPP_NO_SIMD (the generic build's scalar loops); the functors write
//                            their math once over it with core/lanes.hpp (tpp::lanes)
//   detail::for_each_element the row loop: for each row a SIMD body over full batches and one first-n batch
//                            for the tail (masked where the ISA has it), so every element goes through the
//                            same code and a result does not depend on its position; broadcasts are resolved
//                            once per row, never per element. Inputs load as fp32 lanes (fp32, bf16) or masks
//                            (uint8, nonzero = true); outputs store fp32 or bf16 (rounded to nearest even).
//   detail::check_*          argument validation shared by the ops (each throws tpp::error naming op + argument)
//
// Aliasing rule of every element-wise op (detail::check_alias, core/mat.hpp): the output may be the very
// same view as an input (same data, element type, shape and, for more than one row, ld): in-place. Any
// other overlap of the output with an input throws; views that share a buffer without sharing elements
// (e.g. column blocks of one matrix with the same ld and element type) are fine.

#include <algorithm>
#include <concepts>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "../../core/bf16.hpp"
#include "../../core/error.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/types.hpp"

namespace tpp {

// How an input of an element-wise op is applied to the (M, N) output.
enum class broadcast : std::uint8_t {
  none,   // (M, N)
  row,    // (1, N): the same row for every output row
  col,    // (M, 1): one value per row, for every column
  scalar  // (1, 1): one value for every element
};

constexpr std::string_view name(broadcast b) noexcept {
  switch (b) {
    case broadcast::none: return "none";
    case broadcast::row: return "row";
    case broadcast::col: return "col";
    case broadcast::scalar: return "scalar";
  }
  return "invalid";
}

namespace detail {

// Element types of op inputs (maybe const) and outputs: fp32 and bf16.
template <class T>
concept float_element = std::same_as<std::remove_const_t<T>, float> || std::same_as<std::remove_const_t<T>, bf16>;
// An output's element type: fp32 or bf16, not const.
template <class T>
concept float_output = float_element<T> && !std::is_const_v<T>;

// An input resolved for the row loop: row i starts at data + i * row_stride; a splat operand holds one
// value per row (col and scalar broadcasts), the others advance one element per column.
template <class T>  // const float, const bf16 or const std::uint8_t
struct operand {
  T* data;
  index_t row_stride;
  bool splat;
};

template <class T>
operand<const T> make_operand(mat<const T> m, broadcast b) noexcept {
  const bool per_row = b == broadcast::none || b == broadcast::col;
  return {m.data, per_row ? m.ld : 0, b == broadcast::col || b == broadcast::scalar};
}

// Where one row of an operand is read: element j of the row is at p[j * step], step 1 or 0 (a splat).
template <class T>
struct row_ptr {
  const T* p;
  index_t step;
};

// Walks an operand row by row; a splat value is copied W times into buf so the SIMD body loads it like
// any other row (with step 0: the same W values for every batch).
template <class T, index_t W>
class cursor {
 public:
  explicit cursor(const operand<const T>& op) noexcept : op_(op) {}

  bool splat() const noexcept { return op_.splat; }

  row_ptr<T> row(index_t i) noexcept {
    const T* r = op_.data + i * op_.row_stride;
    if (!op_.splat) return {r, 1};
    std::fill_n(buf_, W, *r);
    return {buf_, 0};
  }

 private:
  operand<const T> op_;
  alignas(64) T buf_[W];
};

// An input's lanes: W elements (or the first n) of an fp32 or bf16 row as fp32 lanes, the full ones kept in
// a register (lanes::opaque: at AVX-512 a load folded into a masked op streams from DRAM at half speed),
// or of a uint8 row as a mask (nonzero = true).
template <class V, class T>
auto load_lanes(const T* p) noexcept {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    return tpp::lanes::load_mask<V>(p);
  } else {
    V v = tpp::lanes::load<V>(p);
    tpp::lanes::opaque(v);
    return v;
  }
}
template <class V, class T>
auto load_lanes(const T* p, index_t n) noexcept {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return tpp::lanes::load_mask<V>(p, n);
  else
    return tpp::lanes::load<V>(p, n);
}

// One row: out[j] = f(in[j]...) for j < cols. Unit: every input advances one element per column (no
// splat), which the loop then knows at compile time (one index for every stream; GCC 12 does not always
// version the loop on the run-time steps itself: the copy loop at L1 measured 10% slower without).
template <bool Unit, class V, class F, class TO, class... T>
void run_row(const F& f, TO* out, index_t cols, row_ptr<T>... in) noexcept {
  constexpr index_t W = tpp::lanes::width<V>;
  index_t j = 0;
  for (; j + W <= cols; j += W)
    tpp::lanes::store(out + j, f(load_lanes<V>(in.p + (Unit ? j : j * in.step))...));
  if constexpr (W > 1) {
    if (j < cols) {
      const index_t n = cols - j;
      tpp::lanes::store(out + j, f(load_lanes<V>(in.p + (Unit ? j : j * in.step), n)...), n);
    }
  }
}

template <class V, class F, class TO, class... T, index_t W>
void run_rows(const F& f, mat<TO> out, cursor<T, W>&&... cur) noexcept {
  if ((!cur.splat() && ...))
    for (index_t i = 0; i < out.rows; ++i) run_row<true, V>(f, out.row(i), out.cols, cur.row(i)...);
  else
    for (index_t i = 0; i < out.rows; ++i) run_row<false, V>(f, out.row(i), out.cols, cur.row(i)...);
}

// out(i, j) = f(in_0(i, j), in_1(i, j), ...) over out's shape; f is called with lane values (V for fp32
// and bf16 inputs, lanes::mask_of<V> for uint8 inputs) and returns V.
template <class V, class F, class TO, class... T>
void for_each_element(const F& f, mat<TO> out, const operand<const T>&... in) noexcept {
  if (out.empty()) return;
  run_rows<V>(f, out, cursor<T, tpp::lanes::width<V>>(in)...);
}

// ---- validation ----

// An op's name for error messages, "family.kind" (e.g. "unary.relu"), built at compile time.
struct op_label {
  char text[48] = {};
  std::size_t size = 0;
  constexpr operator std::string_view() const noexcept { return {text, size}; }
};
constexpr op_label make_label(std::string_view family, std::string_view kind) noexcept {
  op_label l;
  for (char c : family) l.text[l.size++] = c;
  if (!kind.empty()) {
    l.text[l.size++] = '.';
    for (char c : kind) l.text[l.size++] = c;
  }
  return l;
}

// The (rows, cols) of a kernel object, validated when it is made (the base of the ops' kernel classes).
class kernel_shape {
 public:
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }

 protected:
  kernel_shape(std::string_view op, index_t rows, index_t cols) : rows_(rows), cols_(cols) {
    check_sizes(op, rows, cols);
  }
  // A view argument of the kernel's shape: valid (check_mat) and rows_ x cols_.
  template <class T>
  void check_view(const mat<T>& m, std::string_view op, std::string_view name) const {
    detail::check_view(m, rows_, cols_, op, name, "the kernel\'s");
  }
  index_t rows_, cols_;
};

// A kernel_shape that keeps the params it was made with (the kernel's constructor checks them).
template <class Params>
class params_kernel : public kernel_shape {
 public:
  const Params& params() const noexcept { return params_; }

 protected:
  params_kernel(std::string_view op, index_t rows, index_t cols, const Params& p)
      : kernel_shape(op, rows, cols), params_(p) {}
  Params params_;
};

// The free-function form of kernel K: K made for the shape of its output view out (checked first, so that a
// bad view is named rather than taken for a bad size), to be called at once.
template <class K, class TO, class... Params>
K kernel_for(const mat<TO>& out, std::string_view out_name, const Params&... params) {
  check_mat(out, K::label, out_name);
  return K(out.rows, out.cols, params...);
}

// The (in, out) pair of a kernel of shape (rows, cols): valid views of that shape, out the very same view as
// in or disjoint from it.
template <class TI, class TO>
void check_in_out(const mat<TI>& in, const mat<TO>& out, index_t rows, index_t cols, std::string_view op,
                  std::string_view in_name, std::string_view out_name) {
  check_view(in, rows, cols, op, in_name, "the kernel\'s");
  check_view(out, rows, cols, op, out_name, "the kernel\'s");
  check_alias(out, in, op, out_name, in_name);
}

inline bool valid(broadcast b) noexcept {
  return b == broadcast::none || b == broadcast::row || b == broadcast::col || b == broadcast::scalar;
}

// The shape an input with broadcast b must have for an (rows, cols) output.
template <class T>
void check_broadcast_shape(const mat<T>& m, broadcast b, index_t rows, index_t cols, std::string_view op,
                           std::string_view name) {
  if (!valid(b)) [[unlikely]]
    throw error(op, name, concat("has an invalid broadcast value (", std::to_string(int(b)), ")"));
  const index_t er = (b == broadcast::none || b == broadcast::col) ? rows : 1;
  const index_t ec = (b == broadcast::none || b == broadcast::row) ? cols : 1;
  if (m.rows != er || m.cols != ec) [[unlikely]]
    throw error(op, name,
                concat("shape (", std::to_string(m.rows), "x", std::to_string(m.cols), ") does not match broadcast::",
                       tpp::name(b), " of a ", std::to_string(rows), "x", std::to_string(cols), " output (expected ",
                       std::to_string(er), "x", std::to_string(ec), ")"));
}

}  // namespace detail
}  // namespace tpp
