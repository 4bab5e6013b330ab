#pragma once
// Zero-activation skipping (EIE), sparse_params::skip_zero_activations: the kernel object builds the
// sparse operand's transposed structure (its columns) once; S B then takes each column of B as a vector x
// and adds, for each k with x_k != 0 (NaN counts as non-zero), P(s, x_k) into y_i for the entries (i, s) of
// column k of S; A W^T likewise takes each row a of A and adds P(a_k, w) into y_j for the entries (j, w)
// of column k of W. The order per output is still ascending k, so the result equals the plain path's
// except that a skipped zero's +-0 product is not added (an exact-zero sum may differ in the sign of zero)
// and a non-finite weight meeting a zero activation gives no NaN. Worth it when the dense operand is a
// vector or narrow and mostly zero (ReLU outputs).

#include <algorithm>
#include <cstddef>
#include <vector>

#include "common.hpp"
#include "formats.hpp"

namespace tpp::detail::sparse_impl {

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

// y (len) = sum over k with x[k * xs] != 0 of P(...) over column k's entries; then out[i * os] =
// alpha y_i + beta out[i * os]. y: scratch of max(len, 1) floats.
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

}  // namespace tpp::detail::sparse_impl
