#pragma once
// What the sparse formats and products share (namespace tpp::detail::sparse_impl):
//   validation     mul_or_throw (sizes whose product must fit index_t), check_size (a vector's length),
//                  check_structure (a CSR structure: row_ptr and ascending columns), check_not_in (an output
//                  view shares no byte with a sparse operand's arrays)
//   row visitors   each format header gives rows_of(S): an object whose row(i, f) calls f(k, s) for the
//                  stored entries (k, s) of row i in ascending k (the one loop every scalar path and
//                  conversion runs); unit_rows(S): the rows handed out together (BCSR: a block row)
//   the step       step<P, weight_first>(s, b, acc) = acc + P(s, b) (or P(b, s)), fused for approx::exact;
//                  finish(acc, scaling{alpha, beta}, c) = alpha acc + beta c, reading c only for beta != 0
//   lanes          lane (the fp32 lane type: an xsimd batch, or float with TPP_NO_SIMD) and its width W
//   B's copies     contiguous_rows (a panel of B's rows copied contiguous), pack_pays (when the copy pays)
//   scratch        take(z, n): n floats from a tpp::scratch, or their bytes counted by a tpp::scratch_size,
//                  so one function lists a call's regions for both

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../../approx/exact.hpp"
#include "../../core/error.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/workspace.hpp"

namespace tpp::detail::sparse_impl {

namespace lanes = tpp::lanes;  // not detail::lanes, which an enclosing namespace may also hold
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

// Whether view v shares a byte with the elements of vector a.
template <class T, class E>
bool overlaps(const mat<T>& v, const std::vector<E>& a) noexcept {
  const index_t bytes = index_t(a.size() * sizeof(E));
  return views_overlap(v, mat<const std::byte>{reinterpret_cast<const std::byte*>(a.data()), 1, bytes, bytes});
}

// The output view `out` shares no byte with any array of the sparse operand S. Each format header gives
// arrays_of(by_format{}, S, f), calling f on each of S's vectors (the tag's namespace makes the call find
// overloads declared after this template).
struct by_format {};

template <class T, class S>
void check_not_in(const mat<T>& out, const S& s, std::string_view op, std::string_view out_name,
                  std::string_view s_name) {
  arrays_of(by_format{}, s, [&](const auto& a) {
    if (overlaps(out, a)) [[unlikely]]
      throw error(op, out_name, concat("overlaps ", s_name));
  });
}

// Rows are handed out in units (BCSR overloads this: block rows).
template <class F>
index_t unit_rows(const F&) noexcept {
  return 1;
}

// ---- the step and the output ----

// acc + P(s, b) (weight first: S B) or acc + P(b, s) (activation first: A W^T); exact fuses.
template <class P, bool weight_first, class L>
[[gnu::always_inline]] inline L step(L s, L b, L acc) noexcept {
  if constexpr (std::is_same_v<P, approx::exact>)
    return lanes::fma(s, b, acc);
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
  return o.beta != 0.0f ? lanes::fma(L(o.beta), c, x) : x;
}

// ---- lanes and B's copies ----

using lane = simd::lane;
inline constexpr index_t W = lanes::width<lane>;

// B's rows [0, kn) x NV vectors (b at the first, ld apart) contiguous: b itself when ld is NV W already,
// else a copy in pk (and ld becomes NV W).
template <index_t NV>
const float* contiguous_rows(const float* b, index_t& ld, index_t kn, float* pk) {
  if (ld == NV * W) return b;
  for (index_t k = 0; k < kn; ++k)
    for (index_t v = 0; v < NV; ++v) lanes::store(pk + (k * NV + v) * W, lanes::load<lane>(b + k * ld + v * W));
  ld = NV * W;
  return pk;
}

// Whether copying B's panel pays: at least 8 entries per column of S, on average, over `rows` rows.
inline bool pack_pays(index_t nnz, index_t rows, index_t S_rows, index_t S_cols) noexcept {
  return double(rows) * double(nnz) >= 8.0 * double(std::max<index_t>(S_rows, 1)) * double(std::max<index_t>(S_cols, 1));
}

// ---- scratch regions ----

// n floats from a call's scratch frame; with a scratch_size, the same region counted (and nullptr).
template <class Z>
float* take(Z& z, index_t n) {
  if constexpr (std::is_same_v<Z, scratch>) {
    return z.template take<float>(std::size_t(n));
  } else {
    z.template take<float>(std::size_t(n));
    return nullptr;
  }
}

}  // namespace tpp::detail::sparse_impl
