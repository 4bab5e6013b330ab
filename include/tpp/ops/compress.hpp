#pragma once
// Error-bounded lossy compression of an activation block (COMET, Jin et al.): an fp32 (rows, cols) view
// becomes a compact code that reconstructs every value within a user-given absolute bound e, for storing
// activations between the forward and the backward pass.
//
// Scheme (SZ-style linear-scaling quantisation with a Lorenzo predictor):
//   step = 2 e; q = nearest integer to x / step; the reconstruction is r = P(q, step) (P = Policy::mul,
//   scalar and SIMD bit-identical, so the decoder reproduces r exactly).
//   Every value is verified when it is coded: it is kept as a code only if |q| < 2^30 and |x - r| <= e,
//   checked in double (exact there); otherwise it is an outlier, stored exactly (index + fp32 bits) and
//   its code is 0.
//   NaN, +-Inf and values too large for the bound's resolution are outliers: they survive bit for bit.
//   So the bound is guaranteed, not probable: |decompress(compress(x, e)) - x| <= e for every finite x,
//   and non-finite values come back identical.
//   The codes along the flattened row-major order (padding excluded) are predicted by their left
//   neighbour within blocks of 256 (d_0 = q_0, d_i = q_i - q_{i-1}), zig-zag mapped to unsigned, and
//   bit-packed at the block's width (the bits of its largest code, 0 to 32): a block of zeros (a ReLU
//   output's dead half) costs one byte.
//
// API (Policy = approx::exact, constrained by approx::multiplier):
//   compressed c = compress<P>(x, bound);          // bound: finite, >= 2^-100 (so 1 / step is finite)
//   decompress<P>(c, out);                         // out: (c.rows, c.cols), any ld
//   c.bytes(), c.ratio()                           // stored bytes (incl. outliers and headers), and
//                                                  // rows cols 4 / bytes()
// decompress with a Policy other than the one that compressed throws (the reconstruction would differ).
// Single-threaded; safe inside a caller's OpenMP region.
//
// Errors (tpp::error, op "compress" / "decompress"): a bad view (check_mat), a bound that is not finite or
// below 2^-100, an out view whose shape differs from the code's, a code made with another policy, and a
// code that disagrees with itself (compressed is a plain struct a caller may build, store or edit: widths
// not one per block or above 32, fewer words than they take, outlier indices not ascending in range or
// without values, a non-finite step), before any of it is read.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/types.hpp"

namespace tpp {

struct compressed {
  index_t rows = 0, cols = 0;
  float bound = 0, step = 0;
  std::string policy;                   // Policy::name() of the coder
  std::vector<std::uint8_t> widths;     // bits per code, per block of block_size codes
  std::vector<std::uint64_t> words;     // the packed codes; block b takes block_size widths[b] / 64 words
  std::vector<index_t> outlier_index;   // flat (row-major, unpadded) indices, ascending
  std::vector<float> outlier_value;     // their exact values

  static constexpr index_t block_size = 256;

  std::size_t bytes() const noexcept {
    return widths.size() + words.size() * sizeof(std::uint64_t) +
           outlier_index.size() * (sizeof(index_t) + sizeof(float)) + sizeof(*this);
  }
  double ratio() const noexcept { return double(rows) * double(cols) * sizeof(float) / double(bytes()); }
};

namespace detail::compress_impl {

inline constexpr float min_bound = 0x1p-100f;

inline std::uint32_t zigzag(std::int32_t d) noexcept {
  return (std::uint32_t(d) << 1) ^ std::uint32_t(d >> 31);
}
inline std::int32_t unzigzag(std::uint32_t z) noexcept { return std::int32_t(z >> 1) ^ -std::int32_t(z & 1u); }

inline void check_bound(float bound) {
  if (!(std::isfinite(bound) && bound >= min_bound)) [[unlikely]]
    throw error("compress", "bound", concat("(", std::to_string(bound), ") must be finite and >= 2^-100"));
}

// The code of x, or false for an outlier.
template <class Policy>
bool quantize(float x, float inv, float step, float bound, std::int32_t& q) noexcept {
  const float t = std::nearbyint(x * inv);
  if (!(std::fabs(t) < 0x1p30f)) return false;  // also NaN
  // The check is on r as the decoder stores it: in double, where x - r is exact (a float difference
  // whose exponents differ by more than 29 is far above any bound that could pass), and no FMA can fuse
  // the product into the subtraction.
  const float r = Policy::mul(t, step);
  if (!(std::fabs(double(x) - double(r)) <= double(bound) * (1.0 - 0x1p-50))) return false;
  q = std::int32_t(t);
  return true;
}

}  // namespace detail::compress_impl

template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
compressed compress(mat<const float> x, float bound) {
  using namespace detail::compress_impl;
  detail::check_mat(x, "compress", "x");
  check_bound(bound);
  approx::check_policy<Policy>();
  compressed c;
  c.rows = x.rows, c.cols = x.cols, c.bound = bound, c.step = 2.0f * bound, c.policy = Policy::name();
  index_t n = 0;
  detail::require(detail::checked_mul(x.rows, x.cols, n), "compress", "rows * cols", "overflows index_t");
  const float inv = 1.0f / c.step;
  constexpr index_t B = compressed::block_size;
  std::uint32_t z[B];
  index_t k = 0;  // flat index
  std::int32_t prev = 0;
  index_t i = 0, j = 0;  // position of flat index k
  for (index_t b0 = 0; b0 < n; b0 += B) {
    const index_t len = std::min(B, n - b0);
    std::uint32_t all = 0;
    prev = 0;
    for (index_t t = 0; t < len; ++t, ++k) {
      const float v = x(i, j);
      std::int32_t q = 0;
      if (!quantize<Policy>(v, inv, c.step, bound, q)) {
        c.outlier_index.push_back(k);
        c.outlier_value.push_back(v);
      }
      z[t] = zigzag(std::int32_t(std::uint32_t(q) - std::uint32_t(prev)));  // wraps: |q| < 2^30
      prev = q;
      all |= z[t];
      if (++j == x.cols) j = 0, ++i;
    }
    for (index_t t = len; t < B; ++t) z[t] = 0;
    const int w = all == 0 ? 0 : int(std::bit_width(all));
    c.widths.push_back(std::uint8_t(w));
    if (w == 0) continue;
    // B codes of w bits: B w / 64 = 4 w words, LSB first
    const std::size_t base = c.words.size();
    c.words.resize(base + std::size_t(4 * w), 0);
    std::uint64_t* out = c.words.data() + base;
    std::uint64_t pos = 0;
    for (index_t t = 0; t < B; ++t, pos += std::uint64_t(w)) {
      const std::uint64_t v = z[t], word = pos >> 6, bit = pos & 63;
      out[word] |= v << bit;
      if (bit + std::uint64_t(w) > 64) out[word + 1] |= v >> (64 - bit);
    }
  }
  return c;
}

namespace detail::compress_impl {

// A code handed in (perhaps built or edited by hand) must agree with itself before it is read: one width
// in [0, 32] per block, the words those widths take, ascending in-range outlier indices with their values,
// and a finite step.
inline void check_code(const compressed& c) {
  constexpr std::string_view op = "decompress";
  const index_t n = c.rows * c.cols, blocks = (n + compressed::block_size - 1) / compressed::block_size;
  if (index_t(c.widths.size()) != blocks)
    throw error(op, "c.widths", concat("has ", std::to_string(c.widths.size()), " entries; ", std::to_string(c.rows), "x",
                                       std::to_string(c.cols), " values in blocks of 256 need ", std::to_string(blocks)));
  std::uint64_t words = 0;
  for (std::size_t b = 0; b < c.widths.size(); ++b) {
    if (c.widths[b] > 32)
      throw error(op, concat("c.widths[", std::to_string(b), "]"), concat("(", std::to_string(int(c.widths[b])), ") is above 32"));
    words += 4u * c.widths[b];
  }
  if (c.words.size() < words)
    throw error(op, "c.words", concat("has ", std::to_string(c.words.size()), " words; the widths take ", std::to_string(words)));
  if (c.outlier_value.size() != c.outlier_index.size())
    throw error(op, "c.outlier_value", concat("has ", std::to_string(c.outlier_value.size()), " values for ",
                                              std::to_string(c.outlier_index.size()), " indices"));
  for (std::size_t o = 0; o < c.outlier_index.size(); ++o)
    if (c.outlier_index[o] < 0 || c.outlier_index[o] >= n || (o > 0 && c.outlier_index[o] <= c.outlier_index[o - 1]))
      throw error(op, concat("c.outlier_index[", std::to_string(o), "]"),
                  concat("(", std::to_string(c.outlier_index[o]), ") is not ascending within [0, ", std::to_string(n), ")"));
  if (!std::isfinite(c.step)) throw error(op, "c.step", concat("(", std::to_string(c.step), ") is not finite"));
}

}  // namespace detail::compress_impl

template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
void decompress(const compressed& c, mat<float> out) {
  using namespace detail::compress_impl;
  detail::check_mat(out, "decompress", "out");
  detail::check_shape(out, c.rows, c.cols, "decompress", "out", "the code's");
  if (c.policy != Policy::name()) [[unlikely]]
    throw error("decompress", "Policy", detail::concat("(", Policy::name(), ") differs from the coder's (", c.policy, ")"));
  check_code(c);
  const index_t n = c.rows * c.cols;
  constexpr index_t B = compressed::block_size;
  const std::uint64_t* words = c.words.data();
  index_t i = 0, j = 0;
  for (index_t b0 = 0, blk = 0; b0 < n; b0 += B, ++blk) {
    const index_t len = std::min(B, n - b0);
    const int w = c.widths[std::size_t(blk)];
    const std::uint64_t mask = (1ull << w) - 1;  // (w <= 32: check_code)
    std::int32_t q = 0;
    std::uint64_t pos = 0;
    for (index_t t = 0; t < len; ++t, pos += std::uint64_t(w)) {
      std::uint32_t z = 0;
      if (w > 0) {
        const std::uint64_t word = pos >> 6, bit = pos & 63;
        std::uint64_t v = words[word] >> bit;
        if (bit + std::uint64_t(w) > 64) v |= words[word + 1] << (64 - bit);
        z = std::uint32_t(v & mask);
      }
      q = std::int32_t(std::uint32_t(q) + std::uint32_t(unzigzag(z)));
      out(i, j) = Policy::mul(float(q), c.step);
      if (++j == c.cols) j = 0, ++i;
    }
    if (w > 0) words += 4 * w;
  }
  for (std::size_t o = 0; o < c.outlier_index.size(); ++o) {
    const index_t k = c.outlier_index[o];
    out(k / c.cols, k % c.cols) = c.outlier_value[o];
  }
}

}  // namespace tpp
