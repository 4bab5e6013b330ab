#pragma once
// Magnitude pruning of a dense (rows, cols) view into each sparse format (tpp::error on bad arguments):
//   prune_to_csr(A, prune_params)
//   prune_to_bcsr(A, block_shape{r, c}, prune_params)   the same over blocks, ranked by their L1 norm
//   prune_to_nm(A, n, m)                                keeps the n largest magnitudes of every group of m
//   prune_to_codebook(A, prune_params, codebook_params) = to_codebook(prune_to_csr(A, p), q)
// The rule (prune_params: exactly one of sparsity in [0, 1] or threshold >= 0; prune_params::by_sparsity(s)
// and by_threshold(t) build one):
//   sparsity s: exactly round(s count) entries (blocks) are dropped, count = rows cols (blocks), the
//     smallest magnitudes first; among equal magnitudes the lower index (row-major) is kept. NaN ranks above
//     every number (kept). The others are stored as they are, so the stored count is exactly
//     count - round(s count) (stored zeros included, when A has fewer non-zeros).
//   threshold t: an entry is kept when |x| > t or x is NaN (a block when any of its entries is); t = 0
//     converts losslessly (every non-zero kept; -0 becomes +0).
//   N:M: in each group the n largest magnitudes are kept, ties to the lower position.
// Errors also for none or both of sparsity and threshold set, sparsity outside [0, 1] or NaN, threshold
// negative or NaN, and sizes whose product overflows index_t.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "formats.hpp"

namespace tpp {

struct prune_params {
  std::optional<double> sparsity;  // the fraction of entries (blocks) dropped, in [0, 1]
  std::optional<float> threshold;  // keep |x| > threshold

  // The same as {.sparsity = s} / {.threshold = t} (which GCC 12's -Wextra flags for the member left out).
  static prune_params by_sparsity(double s) noexcept { return {s, std::nullopt}; }
  static prune_params by_threshold(float t) noexcept { return {std::nullopt, t}; }
};

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

// The blocks of A's r x c grid that keep flags (one per block, row-major) into s's block-row CSR arrays:
// row_ptr (one entry per block row, and a last), col (each kept block's column) and val (its r c values,
// row-major, -0 stored as +0). A CSR is the 1 x 1 case.
template <class Sparse>
void store_kept(mat<const float> A, index_t r, index_t c, const std::vector<char>& keep, Sparse& s) {
  const index_t br = A.rows / r, bc = A.cols / c;
  s.row_ptr.reserve(std::size_t(br + 1));
  s.row_ptr.push_back(0);
  for (index_t bi = 0; bi < br; ++bi) {
    for (index_t bj = 0; bj < bc; ++bj) {
      if (!keep[std::size_t(bi * bc + bj)]) continue;
      s.col.push_back(bj);
      for (index_t q = 0; q < r; ++q)
        for (index_t k = 0; k < c; ++k) {
          const float x = A(bi * r + q, bj * c + k);
          s.val.push_back(x == 0.0f ? 0.0f : x);
        }
    }
    s.row_ptr.push_back(index_t(s.col.size()));
  }
}

}  // namespace detail::sparse_impl

inline csr_matrix prune_to_csr(mat<const float> A, prune_params p) {
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "prune_to_csr";
  check_dense(A, op);
  check_prune(p, op);
  std::vector<char> keep(std::size_t(A.rows * A.cols));
  if (p.sparsity) {
    std::vector<std::uint32_t> score(keep.size());
    for (index_t i = 0; i < A.rows; ++i)
      for (index_t j = 0; j < A.cols; ++j) score[std::size_t(i * A.cols + j)] = magnitude(A(i, j));
    keep = keep_largest(score, *p.sparsity);
  } else {
    for (index_t i = 0; i < A.rows; ++i)
      for (index_t j = 0; j < A.cols; ++j) keep[std::size_t(i * A.cols + j)] = above(A(i, j), *p.threshold);
  }
  csr_matrix s{A.rows, A.cols, {}, {}, {}};
  store_kept(A, 1, 1, keep, s);
  return s;
}

inline bcsr_matrix prune_to_bcsr(mat<const float> A, block_shape block, prune_params p) {
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
  store_kept(A, r, c, keep, s);
  return s;
}

inline nm_matrix prune_to_nm(mat<const float> A, int n, int m) {
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

inline codebook_matrix prune_to_codebook(mat<const float> A, prune_params p, codebook_params q = {}) {
  return to_codebook(prune_to_csr(A, p), q);
}

}  // namespace tpp
