#pragma once
// Data-movement transforms: transpose, and VNNI packing / unpacking for the bf16 and int8 dot products.
//
// transpose: out (N, M) = in (M, N)^T, out(j, i) = in(i, j), for any element type of 1, 2, 4 or 8 bytes
//   (fp32, bf16, int8, ...), bit patterns copied unchanged (NaN payloads too). Any shape and ld; in and
//   out must not overlap (checked exactly, strided views included: an in-place transpose throws).
//   Cache-blocked in 64 x 64 tiles (128 x 128 for 1-byte: longer row pieces); when an ld is near a multiple
//   of 4 KiB (16 rows would share a few L1 sets), each 128 x 128 tile goes through a contiguous stack
//   buffer (<= 74 KiB). Inside a tile, register-blocked block kernels (arch/transpose.hpp), and smaller
//   ones for the edge bands:
//     4-byte: 16x16 (AVX-512F), 8x8 (AVX), 4x4 (128-bit: SSE2 / NEON, xsimd zips), scalar
//     2-byte: 16x16 (AVX-512F, widened to 32-bit lanes), 8x8 (128-bit zips), scalar
//     1-byte: 16x16 (128-bit zips), scalar
//     8-byte and TPP_NO_SIMD: scalar (still tiled)
//
// VNNI-G packing (G = 2: vdpbf16ps, LIBXSMM bf16 BRGEMM; G = 4: vpdpbusd, int8 BRGEMM): for a (K, N) matrix
// B, groups of G consecutive rows are interleaved so that the G values of one column that a dot-product
// instruction consumes together are adjacent:
//     packed[k / G][n][k % G] = B[k][n]
//   as a view: out (ceil(K/G), G N), out(k / G, G n + k % G) = in(k, n), i.e. with ld = G N the flat index
//   (k / G) G N + G n + k % G. When K is not a multiple of G, the missing rows of the last group are zero
//   (all-zero bits: +0 for bf16, 0 for int8): out(K / G, G n + r) = 0 for K % G <= r < G.
//   Element types: G = 2 for any 16-bit type (bf16, int16, fp16 bits), G = 4 for any 8-bit type
//   (int8, uint8). unpack is the exact inverse: in (ceil(K/G), G N) -> out (K, N), the padding ignored.
//   SIMD (arch/vnni.hpp): VNNI-2 via 16 -> 32-bit widening at simd::default_arch; VNNI-4 with AVX-512F or
//   AVX2 byte widening / narrowing; scalar otherwise.
//
// No policy parameter: these ops copy bits and multiply nothing, so a policy would have nothing to act on.
//
// API (kernel objects made for a shape validate their views on every call; free functions for one-offs):
//   transpose_kernel<T>(rows, cols)(in, out);              transpose(in, out);
//   vnni_pack_kernel<G, T>(k, n)(in, out);                 vnni_pack<G>(in, out);
//   vnni_unpack_kernel<G, T>(k, n)(in, out);               vnni_unpack<G>(in, out);
//   vnni_rows(k, G) = ceil(k / G)
// Input views may be mat<T> or mat<const T>. Single-threaded.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../arch/transpose.hpp"
#include "../arch/vnni.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"

namespace tpp {

// Rows of a VNNI-G packed matrix for k unpacked rows.
constexpr index_t vnni_rows(index_t k, int group) noexcept { return (k + group - 1) / group; }

namespace detail::transform_impl {

// ---- transpose: B x B block kernels (arch/transpose.hpp), in rows ldi elements apart, out rows ldo apart --

template <std::size_t S>
using word = std::conditional_t<S == 1, std::uint8_t, std::conditional_t<S == 2, std::uint16_t, std::uint32_t>>;

// The largest block kernel for S-byte elements smaller than `below` (1: scalar).
template <std::size_t S>
constexpr index_t next_block(index_t below) noexcept {
  if (simd::enabled && arch::transpose_block_native<S, 16> && 16 < below) return 16;
  if (simd::enabled && arch::transpose_block_native<S, 8> && 8 < below) return 8;
  if (simd::enabled && arch::transpose_block_native<S, 4> && 4 < below) return 4;
  return 1;
}

template <class T, index_t B>
void block(const T* in, index_t ldi, T* out, index_t ldo) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    arch::transpose_block<float, B>(in, ldi, out, ldo);
  } else {
    using U = word<sizeof(T)>;  // vector loads and stores may alias any type
    arch::transpose_block<U, B>(reinterpret_cast<const U*>(in), ldi, reinterpret_cast<U*>(out), ldo);
  }
}

// A (rows, cols) rectangle: B x B blocks, then the right and bottom bands with the next smaller kernel.
template <class T, index_t B>
void rect(const T* in, index_t ldi, T* out, index_t ldo, index_t rows, index_t cols) noexcept {
  if constexpr (B == 1) {
    for (index_t j = 0; j < cols; ++j)
      for (index_t i = 0; i < rows; ++i) out[j * ldo + i] = in[i * ldi + j];
  } else {
    const index_t mb = rows - rows % B, nb = cols - cols % B;
    for (index_t i = 0; i < mb; i += B)
      for (index_t j = 0; j < nb; j += B) block<T, B>(in + i * ldi + j, ldi, out + j * ldo + i, ldo);
    constexpr index_t next = next_block<sizeof(T)>(B);
    if (nb < cols) rect<T, next>(in + nb, ldi, out + nb * ldo, ldo, rows, cols - nb);
    if (mb < rows) rect<T, next>(in + mb * ldi, ldi, out + mb, ldo, rows - mb, nb);
  }
}

// Whether rows ld bytes apart crowd into few L1 sets (a stride near a multiple of 4 KiB): then the 16 rows
// a block kernel loads or stores compete for 8 ways. Counts the distinct 64-byte sets of 16 rows.
inline bool crowded(index_t ld_bytes) noexcept {
  if (ld_bytes < 512) return false;
  std::uint64_t sets = 0;
  for (index_t i = 0; i < 16; ++i) sets |= std::uint64_t(1) << (((i * ld_bytes) >> 6) & 63);
  return std::popcount(sets) < 8;
}

template <class T>
void transpose(const T* in, index_t ldi, T* out, index_t ldo, index_t rows, index_t cols) noexcept {
  constexpr index_t tile = sizeof(T) == 1 ? 128 : 64;  // 1-byte: longer row pieces
  constexpr index_t top = next_block<sizeof(T)>(tile + 1);
  if (crowded(ldo * index_t(sizeof(T))) || crowded(ldi * index_t(sizeof(T)))) {
    // Transpose each tile into a contiguous buffer with a conflict-free ld, then copy its rows out.
    constexpr index_t bt = sizeof(T) == 8 ? 64 : 128;  // <= 74 KiB of stack
    constexpr index_t ldb = bt + 64 / index_t(sizeof(T));
    alignas(64) unsigned char raw[bt * ldb * sizeof(T)];  // uninitialised: T is trivially copyable
    T* buf = reinterpret_cast<T*>(raw);
    for (index_t i = 0; i < rows; i += bt)
      for (index_t j = 0; j < cols; j += bt) {
        const index_t m = std::min(bt, rows - i), n = std::min(bt, cols - j);
        rect<T, top>(in + i * ldi + j, ldi, buf, ldb, m, n);
        for (index_t r = 0; r < n; ++r)
          std::memcpy(static_cast<void*>(out + (j + r) * ldo + i), buf + r * ldb, std::size_t(m) * sizeof(T));
      }
    return;
  }
  for (index_t i = 0; i < rows; i += tile)
    for (index_t j = 0; j < cols; j += tile)
      rect<T, top>(in + i * ldi + j, ldi, out + j * ldo + i, ldo, std::min(tile, rows - i), std::min(tile, cols - j));
}

// ---- VNNI ---------------------------------------------------------------------------------------------

// One group of G input rows (x[g], nullptr = a zero padding row) -> one packed row o of G n elements.
template <int G, class T>
void pack_group(const T* const* x, T* o, index_t n) noexcept {
  using U = arch::vnni_word<G>;  // the same bits (vector loads and stores may alias any type)
  const U* xu[G];
  for (int g = 0; g < G; ++g) xu[g] = reinterpret_cast<const U*>(x[g]);
  if constexpr (simd::enabled)
    arch::vnni_pack<G, simd::default_arch>(xu, reinterpret_cast<U*>(o), n);
  else
    arch::vnni_pack_scalar<G>(xu, reinterpret_cast<U*>(o), n);
}

// The inverse: one packed row p of G n elements -> G output rows y[g] (nullptr = padding, not written).
template <int G, class T>
void unpack_group(const T* p, T* const* y, index_t n) noexcept {
  using U = arch::vnni_word<G>;
  U* yu[G];
  for (int g = 0; g < G; ++g) yu[g] = reinterpret_cast<U*>(y[g]);
  if constexpr (simd::enabled)
    arch::vnni_unpack<G, simd::default_arch>(reinterpret_cast<const U*>(p), yu, n);
  else
    arch::vnni_unpack_scalar<G>(reinterpret_cast<const U*>(p), yu, n);
}

template <int G, class T>
void vnni_pack(mat<const T> in, mat<T> out) noexcept {
  for (index_t r = 0; r < out.rows; ++r) {
    const T* x[G];
    for (int g = 0; g < G; ++g) x[g] = G * r + g < in.rows ? in.row(G * r + g) : nullptr;
    pack_group<G>(x, out.row(r), in.cols);
  }
}

template <int G, class T>
void vnni_unpack(mat<const T> in, mat<T> out) noexcept {
  for (index_t r = 0; r < in.rows; ++r) {
    T* y[G];
    for (int g = 0; g < G; ++g) y[g] = G * r + g < out.rows ? out.row(G * r + g) : nullptr;
    unpack_group<G>(in.row(r), y, out.cols);
  }
}

template <class T>
constexpr bool movable = std::is_trivially_copyable_v<T> && !std::is_const_v<T> &&
                         (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

}  // namespace detail::transform_impl

// out (cols, rows) = in (rows, cols)^T for a shape fixed at construction.
template <class T>
class transpose_kernel {
 public:
  static_assert(detail::transform_impl::movable<T>,
                "tpp: transpose needs a trivially copyable, non-const element type of 1, 2, 4 or 8 bytes");

  transpose_kernel(index_t rows, index_t cols) : rows_(rows), cols_(cols) {
    detail::check_sizes("transpose", rows, cols, "rows", "cols");
  }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }

  void operator()(mat<const T> in, mat<T> out) const {
    namespace ti = detail::transform_impl;
    detail::check_mat(in, "transpose", "in");
    detail::check_mat(out, "transpose", "out");
    detail::check_shape(in, rows_, cols_, "transpose", "in");
    detail::check_shape(out, cols_, rows_, "transpose", "out");
    detail::require(!detail::views_overlap(in, out), "transpose", "out", "overlaps in (in-place transpose is not supported)");
    ti::transpose<T>(in.data, in.ld, out.data, out.ld, rows_, cols_);
  }

 private:
  index_t rows_, cols_;
};

// VNNI-G packing of a (k, n) matrix into (vnni_rows(k, G), G n); see the doc block for the layout.
template <int G, class T>
class vnni_pack_kernel {
 public:
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit elements) or 4 (8-bit elements)");
  static_assert(std::is_trivially_copyable_v<T> && !std::is_const_v<T> && sizeof(T) * G == 4,
                "tpp: VNNI-2 packs 16-bit elements (bf16), VNNI-4 packs 8-bit elements (int8, uint8)");

  vnni_pack_kernel(index_t k, index_t n) : k_(k), n_(n) { detail::check_sizes("vnni_pack", k, n, "k", "n"); }
  index_t k() const noexcept { return k_; }
  index_t n() const noexcept { return n_; }

  // in (k, n) -> out (vnni_rows(k, G), G n)
  void operator()(mat<const T> in, mat<T> out) const {
    namespace ti = detail::transform_impl;
    detail::check_mat(in, "vnni_pack", "in");
    detail::check_mat(out, "vnni_pack", "out");
    detail::check_shape(in, k_, n_, "vnni_pack", "in");
    detail::check_shape(out, vnni_rows(k_, G), G * n_, "vnni_pack", "out");
    detail::require(!detail::views_overlap(in, out), "vnni_pack", "out", "overlaps in");
    ti::vnni_pack<G, T>(in, out);
  }

 private:
  index_t k_, n_;
};

// The inverse: (vnni_rows(k, G), G n) -> (k, n); the zero padding of the last group is not read back.
template <int G, class T>
class vnni_unpack_kernel {
 public:
  static_assert(G == 2 || G == 4, "tpp: VNNI groups are 2 (16-bit elements) or 4 (8-bit elements)");
  static_assert(std::is_trivially_copyable_v<T> && !std::is_const_v<T> && sizeof(T) * G == 4,
                "tpp: VNNI-2 unpacks 16-bit elements (bf16), VNNI-4 unpacks 8-bit elements (int8, uint8)");

  vnni_unpack_kernel(index_t k, index_t n) : k_(k), n_(n) {
    detail::check_sizes("vnni_unpack", k, n, "k", "n");
  }
  index_t k() const noexcept { return k_; }
  index_t n() const noexcept { return n_; }

  // in (vnni_rows(k, G), G n) -> out (k, n)
  void operator()(mat<const T> in, mat<T> out) const {
    namespace ti = detail::transform_impl;
    detail::check_mat(in, "vnni_unpack", "in");
    detail::check_mat(out, "vnni_unpack", "out");
    detail::check_shape(in, vnni_rows(k_, G), G * n_, "vnni_unpack", "in");
    detail::check_shape(out, k_, n_, "vnni_unpack", "out");
    detail::require(!detail::views_overlap(in, out), "vnni_unpack", "out", "overlaps in");
    ti::vnni_unpack<G, T>(in, out);
  }

 private:
  index_t k_, n_;
};

// One-off calls; TI may be const-qualified, TO must be the same element type.
template <class TI, class TO>
void transpose(mat<TI> in, mat<TO> out) {
  static_assert(std::is_same_v<std::remove_const_t<TI>, TO>, "tpp: transpose copies elements: in and out types must match");
  detail::check_mat(in, "transpose", "in");
  transpose_kernel<TO>(in.rows, in.cols)(in, out);
}

template <int G, class TI, class TO>
void vnni_pack(mat<TI> in, mat<TO> out) {
  static_assert(std::is_same_v<std::remove_const_t<TI>, TO>, "tpp: vnni_pack: in and out types must match");
  detail::check_mat(in, "vnni_pack", "in");
  vnni_pack_kernel<G, TO>(in.rows, in.cols)(in, out);
}

// k = out.rows, n = out.cols.
template <int G, class TI, class TO>
void vnni_unpack(mat<TI> in, mat<TO> out) {
  static_assert(std::is_same_v<std::remove_const_t<TI>, TO>, "tpp: vnni_unpack: in and out types must match");
  detail::check_mat(out, "vnni_unpack", "out");
  vnni_unpack_kernel<G, TO>(out.rows, out.cols)(in, out);
}

}  // namespace tpp
