#pragma once
// What the quantization formats share (ops/quantize.hpp lists them): the rounding modes and the bits of
// stochastic rounding, the lane types and row loops of their kernels, and argument checks.
//
// Stochastic rounding (fixed point, bf16) draws r = rounding_bits(seed, row + row_offset, col + col_offset),
// 16 bits per element from the counter-based hash of dropout (ops/unary.hpp: h = dropout_hash(
// dropout_row_key(seed ^ rounding_stream, row), counter)): columns are taken in groups of 32, and columns c
// and c + 16 of a group share the hash of counter ((c >> 5) << 4) | (c & 15), c taking its low half and
// c + 16 its high half. Bits are keyed by the element's position in the logical tensor, so results are
// reproducible for a seed and independent of tiling, threading and SIMD width (a tile passes its offsets and
// gets the whole tensor's bits); different elements draw different bits (columns c and c + 16 the two halves
// of one hash, whose independence the tests check as they do neighbours'). One hash per two elements: the
// hash (four 32-bit multiplies a vector) is what bounds these kernels. The constant rounding_stream
// separates the stream from dropout's: dropout and rounding with the same seed draw unrelated bits.
//
// Kernels run on lanes::* (core/lanes.hpp) at simd::default_arch, a partial vector for each row's tail
// (masked where the ISA has masks), scalar loops with TPP_NO_SIMD. Rounding assumes the default
// floating-point environment (round to nearest, no flush-to-zero).
//
//   rounding, stochastic_params, rounding_stream, rounding_bits(seed, row, col)
//   detail::quant: V (the lane type), W, VI, VU; load(p, n); store_out; chunks, rounding_chunks (the row
//   loops); prefetch_ahead; check_rounding, check_stochastic; span_view (a span as a one-row view, for the
//   aliasing checks)

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "../../core/attributes.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/stream.hpp"
#include "../detail/elementwise.hpp"
#include "../unary.hpp"


namespace tpp {

enum class rounding : std::uint8_t { nearest_even, stochastic };

// Where a view sits in the logical tensor whose stochastic rounding is defined, and the seed.
struct stochastic_params {
  std::uint64_t seed = 0;
  index_t row_offset = 0;  // >= 0
  index_t col_offset = 0;  // >= 0
};

// The 16 random bits of element (row, col) of the logical tensor (offsets applied by the caller; see the
// top: one hash serves columns c and c + 16 of each group of 32).
inline constexpr std::uint64_t rounding_stream = 0x9e3779b97f4a7c15ull;  // (the golden-ratio constant)

constexpr std::uint32_t rounding_bits(std::uint64_t seed, index_t row, index_t col) noexcept {
  const auto c = std::uint32_t(col);
  const std::uint32_t h = dropout_hash(dropout_row_key(seed ^ rounding_stream, std::uint64_t(row)), ((c >> 5) << 4) | (c & 15u));
  return (c & 16u) != 0 ? h >> 16 : h & 0xffffu;
}

namespace detail::quant {

// (Inside tpp::detail, lanes:: would otherwise name the element-wise ops' own helpers.)
namespace lanes = ::tpp::lanes;

using V = simd::lane;
inline constexpr index_t W = lanes::width<V>;
using VI = lanes::i32_of<V>;
using VU = lanes::u32_of<V>;

inline constexpr float inf = std::numeric_limits<float>::infinity();

inline float pow2f(int e) noexcept { return std::bit_cast<float>(std::uint32_t(e + 127) << 23); }  // e in [-126, 127]

// The first n <= W elements (n == W: a whole vector) as lanes; fp32 and bf16 loads kept in a register
// (lanes::opaque: GCC otherwise folds a load into the op using it, a masked one among them).
template <class T>
V load(const T* p, index_t n) noexcept {
  V v = lanes::load<V>(p, n);
  if constexpr (float_element<T>) lanes::opaque(v);
  return v;
}

// lanes::store(p, v, n), or a streaming store (core/stream.hpp) where stream (the op's detail::streams)
// and the vector is whole: fp32 outputs only.
template <class T>
void store_out(T* p, V v, index_t n, bool stream) noexcept {
  if (!detail::stream_whole(p, v, n, stream)) lanes::store(p, v, n);
}

// f(j, n) for the chunks of a row of cols: full vectors, then one partial vector. Flattened: GCC otherwise
// keeps a large f out of line and pays a call per vector.
template <class F>
TPP_FLATTEN inline void chunks(index_t cols, F&& f) {
  index_t j = 0;
  for (; j + W <= cols; j += W) f(j, W);
  if constexpr (W > 1)
    if (j < cols) f(j, cols - j);
}

// A software prefetch (to L2) 8 KiB ahead of an input stream: from DRAM the hardware prefetchers alone
// leave an fp32 stream well below memcpy's speed, per-column scales (competing for the L1) far below (see
// docs/performance.md). 8- and 16-bit code inputs (a quarter or half of a line per vector) are not
// prefetched.
template <class T>
inline void prefetch_ahead(const T* p) noexcept {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + 8192), 0, 2);
}

// chunks() over a row whose fp32 / bf16 input src streams in (read once, perhaps from DRAM), prefetching
// ahead of src + j before each f.
template <class T, class F>
TPP_FLATTEN inline void chunks(index_t cols, const T* src, F&& f) {
  chunks(cols, [&](index_t j, index_t n) {
    prefetch_ahead(src + j);
    f(j, n);
  });
}

// Column indices col_offset + j + lane of a chunk, as the hash's 32-bit counters.
inline VU col_counters(index_t col_offset, index_t j) noexcept {
  return VU(std::uint32_t(col_offset + j)) + lanes::iota<V>();
}

// rounding_bits of the lanes of the chunk at column col_offset + j of a row keyed key, lane by lane.
inline VU chunk_bits(std::uint64_t key, index_t col_offset, index_t j) noexcept {
  const VU c = col_counters(col_offset, j);
  const VU h = dropout_hash(key, ((c >> 5) << 4) | (c & VU(15u)));
  const VU high = VU(0u) - ((c >> 4) & VU(1u));  // all ones where c & 16: the high half
  return ((h >> 16) & high) | (h & VU(0xffffu) & ~high);
}

// f(j, n, r) over the chunks of a row of cols streaming from src, as chunks(cols, src, f) but with r the
// chunk's rounding_bits (the row's key, its first column at col_offset). Over each whole group of 32 columns
// one hash of W counters serves two vectors, columns j + k and j + 16 + k (a group's counters are
// consecutive); the columns before the first group and after the last hash lane by lane (chunk_bits).
template <class T, class F>
TPP_FLATTEN inline void rounding_chunks(index_t cols, const T* src, std::uint64_t key, index_t col_offset, F&& f) {
  static_assert(16 % W == 0, "tpp: a group's 16 counters fill whole vectors");
  const auto lane_by_lane = [&](index_t j0, index_t len) {
    chunks(len, src + j0, [&](index_t j, index_t n) { f(j0 + j, n, chunk_bits(key, col_offset, j0 + j)); });
  };
  const index_t head = std::min(cols, (32 - col_offset % 32) % 32);
  lane_by_lane(0, head);
  index_t j = head;
  for (; j + 32 <= cols; j += 32) {
    const VU base = VU(std::uint32_t(col_offset + j) >> 1) + lanes::iota<V>();  // (col_offset + j) % 32 == 0
    for (index_t k = 0; k < 16; k += W) {
      const VU h = dropout_hash(key, base + VU(std::uint32_t(k)));
      prefetch_ahead(src + j + k);
      f(j + k, W, h & VU(0xffffu));
      prefetch_ahead(src + j + 16 + k);
      f(j + 16 + k, W, h >> 16);
    }
  }
  lane_by_lane(j, cols - j);
}

// The key of row i of a view whose stochastic rounding is sr's.
inline std::uint64_t row_key(const stochastic_params& sr, index_t i) noexcept {
  return dropout_row_key(sr.seed ^ rounding_stream, std::uint64_t(sr.row_offset + i));
}

// ---- checks ----

inline void check_stochastic(const stochastic_params& s, std::string_view op) {
  check_sizes(op, s.row_offset, s.col_offset, "row_offset", "col_offset");
}

inline void check_rounding(rounding r, std::string_view op) {
  if (r != rounding::nearest_even && r != rounding::stochastic)
    throw error(op, "rounding", concat("has an invalid value (", std::to_string(int(r)), ")"));
}

// A span as a one-row view, for check_alias.
template <class T>
mat<T> span_view(std::span<T> s) noexcept {
  return {s.data(), s.empty() ? 0 : 1, index_t(s.size()), index_t(s.size())};
}

}  // namespace detail::quant
}  // namespace tpp
