#pragma once
// Shared by the element-wise op tests (unary.cpp, binary.cpp, ternary.cpp): padded matrices whose padding
// holds a sentinel the ops must not touch, the named shape sweep, and the error-bound arithmetic.

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <tpp/core/mat.hpp>
#include <tpp/core/simd.hpp>
#include <tpp/core/stream.hpp>
#include <vector>

#include "support.hpp"

namespace tpp::test {

// A value no op writes: a NaN with an unusual payload (fp32, bf16), 0xa5 for masks.
template <class T>
T sentinel() {
  if constexpr (std::is_same_v<T, float>)
    return from_bits(0x7fa5a5a5u);
  else if constexpr (std::is_same_v<T, bf16>)
    return bf16::from_bits(0x7fa5);
  else
    return T(0xa5);
}

template <class T>
bool same_bits(T a, T b) {
  if constexpr (std::is_same_v<T, float>)
    return bits(a) == bits(b);
  else if constexpr (std::is_same_v<T, bf16>)
    return a.bits == b.bits;
  else
    return a == b;
}

template <class T>
double as_double(T v) {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return double(v);
  else
    return double(to_float(v));
}

// An (rows, cols) matrix with ld = cols + pad; every padding element (and the whole buffer until filled)
// holds sentinel<T>().
template <class T>
struct padded {
  index_t rows, cols, ld;
  std::vector<T> buf;

  padded(index_t r, index_t c, index_t pad = 0)
      : rows(r), cols(c), ld(c + pad), buf(std::size_t(r * (c + pad) + 1), sentinel<T>()) {}

  // Elements from v, row-major (v.size() == rows * cols), converted to T (bf16: rounded to nearest even).
  padded& fill(const std::vector<float>& v) {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) {
        if constexpr (std::is_same_v<T, std::uint8_t>)
          (*this)(i, j) = T(v[std::size_t(i * cols + j)]);
        else
          (*this)(i, j) = from_float<T>(v[std::size_t(i * cols + j)]);
      }
    return *this;
  }

  T& operator()(index_t i, index_t j) { return buf[std::size_t(i * ld + j)]; }
  T operator()(index_t i, index_t j) const { return buf[std::size_t(i * ld + j)]; }
  double value(index_t i, index_t j) const { return as_double((*this)(i, j)); }

  mat<T> m() { return {buf.data(), rows, cols, ld}; }
  mat<const T> cm() const { return {buf.data(), rows, cols, ld}; }

  // Padding (columns >= cols of every row, and the element past the end) still holds the sentinel.
  bool padding_intact() const {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = cols; j < ld; ++j)
        if (!same_bits(buf[std::size_t(i * ld + j)], sentinel<T>())) return false;
    return same_bits(buf.back(), sentinel<T>());
  }
};

// The named shape sweep: 1x1; one row of W-1, W, W+1 columns (W the fp32 SIMD width); several rows of
// 2W+3 and 3W-1 columns, each with and without padding (ld > cols).
struct shape {
  index_t rows, cols, pad;
};
inline std::vector<shape> edge_shapes() {
  const index_t W = simd::width<>;
  std::vector<shape> s = {{1, 1, 0},         {1, 1, 3},         {2, 1, 2},        {1, W - 1, 0},
                          {1, W, 0},         {1, W + 1, 0},     {3, W - 1, 1},    {3, W, 5},
                          {3, 2 * W + 3, 0}, {4, 2 * W + 3, 5}, {5, 3 * W - 1, 7}};
  if (W == 1) s.push_back({2, 7, 1});
  return s;
}

inline std::string describe(const shape& s) {
  std::ostringstream o;
  o << s.rows << "x" << s.cols << " ld " << s.cols + s.pad;
  return o.str();
}

// An exact result y and what bounds the op's deviation from it: err bounds the fp32 evaluation error of
// everything but the policy product (absolute), product = |a b| of the policy product on the path (0 if
// none). For P(a, b_c) with |b_c - b| |a| <= err: |P(a, b_c) - a b| <= err + m (|a b| + err), m the
// policy's max_rel_error; a bf16 output adds u_out = 2^-8 of the result; a fp32 output adds nothing (every
// formula's last rounding is counted in err). tiny covers a policy flushing a product below the normal
// range (a handful of min-normals, far below every other term in these tests).
struct ref_value {
  double y;
  double err = 0;
  double product = 0;
};

inline double bound(const ref_value& r, double m, double u_out) {
  const double e = r.err + m * (r.product + r.err);
  return e + u_out * (std::abs(r.y) + e) + 0x1p-124;
}

// Whether got is within the bound of ref (NaN expected -> NaN got; Inf expected -> the same Inf).
inline bool within(double got, double ref, double tol) {
  if (std::isnan(ref)) return std::isnan(got);
  if (std::isinf(ref)) return got == ref;
  return std::abs(got - ref) <= tol;
}

// Broadcasts: every kind, an input's shape for kind b of an (M, N) output, and its element for output (i, j).
inline constexpr broadcast all_broadcasts[] = {broadcast::none, broadcast::row, broadcast::col, broadcast::scalar};
inline index_t bc_rows(broadcast b, index_t M) { return b == broadcast::none || b == broadcast::col ? M : 1; }
inline index_t bc_cols(broadcast b, index_t N) { return b == broadcast::none || b == broadcast::row ? N : 1; }
template <class T>
T at(const padded<T>& m, broadcast b, index_t i, index_t j) {
  const bool one_row = b == broadcast::row || b == broadcast::scalar;
  const bool one_col = b == broadcast::col || b == broadcast::scalar;
  return m(one_row ? 0 : i, one_col ? 0 : j);
}

// ---- streaming stores (core/stream.hpp) ----

// A 64-byte aligned fp32 (rows, cols) view with leading dimension ld inside buf, every element first set to
// the sentinel.
inline mat<float> aligned_view(std::vector<float>& buf, index_t rows, index_t cols, index_t ld) {
  buf.assign(std::size_t(rows * ld + 16), sentinel<float>());
  const auto a = reinterpret_cast<std::uintptr_t>(buf.data());
  return {buf.data() + ((64 - a % 64) % 64) / sizeof(float), rows, cols, ld};
}

// Elements (padding columns included) whose bits differ between two views of one shape and ld.
inline int differing(mat<const float> a, mat<const float> b) {
  int bad = 0;
  for (index_t i = 0; i < a.rows; ++i)
    for (index_t j = 0; j < a.ld; ++j) bad += !same_bits(a.data[i * a.ld + j], b.data[i * b.ld + j]);
  return bad;
}

// Puts tpp::stream_threshold (core/stream.hpp) back when the test leaves.
struct stream_threshold_guard {
  std::size_t saved = tpp::stream_threshold.load();
  ~stream_threshold_guard() { tpp::stream_threshold = saved; }
};

}  // namespace tpp::test
