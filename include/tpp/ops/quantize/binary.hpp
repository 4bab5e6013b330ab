#pragma once
// Binary and ternary quantization with bit packing (QNN), and the binary GEMM (x an (M, N) fp32 or bf16 view):
//   binarize        b = -1 where x < 0, +1 elsewhere (+-0 and NaN give +1), scale alpha = mean|x| per row
//   ternarize       delta = threshold * mean|x| (fp32, per row), t = +-1 where |x| > delta (sign of x), else 0;
//                   alpha = mean|x| over the nonzero t (0 if none)
//   unpack_binary, unpack_ternary   y = +-alpha (or +-1 without scales), 0: sign flips only, no products
//   binary_gemm     C(i, j) = Σ_k a_ik b_kj, a, b in {-1, +1}, from A's packed rows (M, words(K)) and B packed
//                   along K per column (B^T's rows, (N, words(K))): K - 2 popcount(a xor b), exactly (int32);
//                   the bits past K in the last word are masked, whatever they hold. 4 x 4 register tiles of
//                   row pairs (arch/popcount.hpp: vpopcntq over 8 words where the target has AVX-512
//                   VPOPCNTDQ, else std::popcount per word), B^T's rows in passes of about 192 KiB (kept in L2
//                   while A's rows stream).
// mean|x| = float(S / n), S the row's sum of |x| in fp32 blocks of 64 and double across them (NaN propagates
// into alpha). Bit-packed: 64 values per uint64, value j of a row at bit j % 64 of word j / 64, rows of
// packed_words(N) words (padding bits 0): binary: one plane, bit 1 = -1; ternary: a sign plane (bit 1 = -1)
// and a nonzero plane.
//
//   binarize_kernel<TI> k(rows, cols);                          k(x, bits[, scale])
//   ternarize_kernel<TI> k(rows, cols, ternarize_params = {});  k(x, sign, nonzero, scale)
//   binary_gemm_kernel k(m, n, k);                              k(a, bt, c)
//   binarize(x, bits[, scale]), ternarize(x, sign, nonzero, scale, p), unpack_binary(bits, scale, y),
//   unpack_ternary(sign, nonzero, scale, y), binary_gemm(a, bt, c, k)

#include "../../arch/popcount.hpp"
#include "common.hpp"

namespace tpp {

struct ternarize_params {
  float threshold = 0.7f;  // delta = threshold * mean|x| per row; finite, >= 0
};

// uint64 words of a bit-packed row of cols values.
constexpr index_t packed_words(index_t cols) noexcept { return (cols + 63) / 64; }

namespace detail::quant {

// Σ|x| of a row's values [j0, j0 + n) (n <= 64) in fp32 lanes.
template <class T>
float word_abs_sum(const T* p, index_t n) noexcept {
  V s(0.0f);
  chunks(n, [&](index_t j, index_t c) { s = s + lanes::abs(quant::load(p + j, c)); });
  return lanes::hsum(s);
}

// The bits of a word of up to 64 values: bit k set where pred(value k).
template <class T, class Pred>
std::uint64_t word_bits(const T* p, index_t n, Pred pred) noexcept {
  std::uint64_t w = 0;
  chunks(n, p, [&](index_t j, index_t c) {
    const std::uint64_t b = lanes::bits(pred(quant::load(p + j, c)));
    w |= (c == W ? b : b & ((std::uint64_t(1) << c) - 1)) << j;
  });
  return w;
}

inline std::uint64_t tail_mask(index_t k) noexcept {
  const index_t r = k % 64;
  return r == 0 ? ~std::uint64_t(0) : (std::uint64_t(1) << r) - 1;
}

// Differing bits of the 4 x 4 row pairs of a (rows a[r]) and b (rows b[c]) over `full` whole words and a last
// word masked with `last` (words > full).
inline void xor_popcount_4x4(const std::uint64_t* const* a, const std::uint64_t* const* b, index_t words,
                             std::uint64_t last, std::int64_t (&cnt)[4][4]) noexcept {
  const index_t full = last == ~std::uint64_t(0) ? words : words - 1;
  if constexpr (simd::enabled)
    arch::xor_popcount_4x4<simd::default_arch>(a, b, full, cnt);
  else
    arch::xor_popcount_4x4_scalar(a, b, full, cnt);
  if (full < words)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) cnt[r][c] += std::popcount((a[r][full] ^ b[c][full]) & last);
}

// y(i, j) = (nonzero bit ? (sign bit ? -a : a) : 0), a = scale[i] or 1.
template <class TO>
void unpack_rows(const mat<const std::uint64_t>* sign, const mat<const std::uint64_t>* nonzero, std::span<const float> scale,
                 mat<TO> y) noexcept {
  for (index_t i = 0; i < y.rows; ++i) {
    const float a = scale.empty() ? 1.0f : scale[std::size_t(i)];
    TO* yr = y.row(i);
    for (index_t j = 0; j < y.cols; ++j) {
      const std::uint64_t bit = std::uint64_t(1) << (j % 64);
      const bool neg = ((*sign)(i, j / 64) & bit) != 0;
      const bool nz = nonzero == nullptr || ((*nonzero)(i, j / 64) & bit) != 0;
      yr[j] = from_float<TO>(nz ? (neg ? -a : a) : 0.0f);
    }
  }
}

template <class T>
void check_scale_size(std::span<T> scale, index_t rows, std::string_view op) {
  if (index_t(scale.size()) != rows)
    throw error(op, "scale", concat("has ", std::to_string(scale.size()), " values, not rows (", std::to_string(rows), ")"));
}

}  // namespace detail::quant

// bits (rows, packed_words(cols)): bit 1 where x < 0; scale: rows values mean|x| (or empty: not computed).
template <detail::float_element TI = float>
class binarize_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("binarize", "");

  binarize_kernel(index_t rows, index_t cols) : kernel_shape(label, rows, cols) {}

  void operator()(mat<const TI> x, mat<std::uint64_t> bits, std::span<float> scale = {}) const {
    namespace quant = detail::quant;
    using quant::V;
    check_view(x, label, "x");
    detail::check_view(bits, rows_, packed_words(cols_), label, "bits", "the packed");
    detail::check_alias(bits, x, label, "bits", "x");
    if (!scale.empty()) quant::check_scale_size(scale, rows_, label);
    detail::check_alias(quant::span_view(scale), x, label, "scale", "x");
    detail::check_alias(quant::span_view(scale), bits, label, "scale", "bits");
    for (index_t i = 0; i < rows_; ++i) {
      const TI* xr = x.row(i);
      double sum = 0.0;
      for (index_t w = 0; w < bits.cols; ++w) {
        const index_t j0 = 64 * w, n = std::min<index_t>(64, cols_ - j0);
        bits(i, w) = quant::word_bits(xr + j0, n, [](V v) { return v < V(0.0f); });
        if (!scale.empty()) sum += double(quant::word_abs_sum(xr + j0, n));
      }
      if (!scale.empty()) scale[std::size_t(i)] = cols_ > 0 ? float(sum / double(cols_)) : 0.0f;
    }
  }
};

// sign, nonzero (rows, packed_words(cols)); scale: rows values (mean |x| over the nonzero t).
template <detail::float_element TI = float>
class ternarize_kernel : public detail::params_kernel<ternarize_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("ternarize", "");

  ternarize_kernel(index_t rows, index_t cols, ternarize_params p = {}) : params_kernel(label, rows, cols, p) {
    if (!(p.threshold >= 0.0f && p.threshold < detail::quant::inf))
      throw error(label, "threshold", detail::concat("(", std::to_string(p.threshold), ") is not finite and >= 0"));
  }

  void operator()(mat<const TI> x, mat<std::uint64_t> sign, mat<std::uint64_t> nonzero, std::span<float> scale) const {
    namespace quant = detail::quant;
    using quant::V;
    check_view(x, label, "x");
    detail::check_view(sign, rows_, packed_words(cols_), label, "sign", "the packed");
    detail::check_view(nonzero, rows_, packed_words(cols_), label, "nonzero", "the packed");
    detail::check_alias(sign, x, label, "sign", "x");
    detail::check_alias(nonzero, x, label, "nonzero", "x");
    detail::check_alias(nonzero, sign, label, "nonzero", "sign");
    quant::check_scale_size(scale, rows_, label);
    detail::check_alias(quant::span_view(scale), x, label, "scale", "x");
    detail::check_alias(quant::span_view(scale), sign, label, "scale", "sign");
    detail::check_alias(quant::span_view(scale), nonzero, label, "scale", "nonzero");
    const index_t words = packed_words(cols_);
    for (index_t i = 0; i < rows_; ++i) {
      const TI* xr = x.row(i);
      double sum = 0.0;
      for (index_t w = 0; w < words; ++w) sum += double(quant::word_abs_sum(xr + 64 * w, std::min<index_t>(64, cols_ - 64 * w)));
      const float mean = cols_ > 0 ? float(sum / double(cols_)) : 0.0f;
      const float delta = params_.threshold * mean;
      double kept = 0.0;
      index_t count = 0;
      for (index_t w = 0; w < words; ++w) {
        const index_t j0 = 64 * w, n = std::min<index_t>(64, cols_ - j0);
        const std::uint64_t nz = quant::word_bits(xr + j0, n, [&](V v) { return lanes::abs(v) > V(delta); });
        nonzero(i, w) = nz;
        sign(i, w) = nz & quant::word_bits(xr + j0, n, [](V v) { return v < V(0.0f); });
        count += std::popcount(nz);
        V s(0.0f);
        quant::chunks(n, [&](index_t j, index_t c) {
          const V a = lanes::abs(quant::load(xr + j0 + j, c));
          s = s + lanes::select(a > V(delta), a, V(0.0f));
        });
        kept += double(lanes::hsum(s));
      }
      scale[std::size_t(i)] = count > 0 ? float(kept / double(count)) : 0.0f;
    }
  }
};

template <class TI>
void binarize(mat<TI> x, mat<std::uint64_t> bits, std::span<float> scale = {}) {
  detail::check_mat(x, binarize_kernel<std::remove_const_t<TI>>::label, "x");
  binarize_kernel<std::remove_const_t<TI>>(x.rows, x.cols)(x, bits, scale);
}

template <class TI>
void ternarize(mat<TI> x, mat<std::uint64_t> sign, mat<std::uint64_t> nonzero, std::span<float> scale,
               ternarize_params p = {}) {
  detail::check_mat(x, ternarize_kernel<std::remove_const_t<TI>>::label, "x");
  ternarize_kernel<std::remove_const_t<TI>>(x.rows, x.cols, p)(x, sign, nonzero, scale);
}

// y = +-scale[i] (or +-1 with no scales) from binary bits (rows, packed_words(cols)).
template <class TB, detail::float_output TO>
  requires std::same_as<std::remove_const_t<TB>, std::uint64_t>
void unpack_binary(mat<TB> bits, std::span<const float> scale, mat<TO> y) {
  constexpr std::string_view op = "unpack_binary";
  detail::check_mat(y, op, "y");
  detail::check_view(bits, y.rows, packed_words(y.cols), op, "bits", "the packed");
  if (!scale.empty()) detail::quant::check_scale_size(scale, y.rows, op);
  detail::check_alias(y, bits, op, "y", "bits");
  detail::check_alias(y, detail::quant::span_view(scale), op, "y", "scale");
  const mat<const std::uint64_t> b = bits;
  detail::quant::unpack_rows<TO>(&b, nullptr, scale, y);
}

// y = +-scale[i] (or +-1), 0 from ternary planes.
template <class TS, class TN, detail::float_output TO>
  requires std::same_as<std::remove_const_t<TS>, std::uint64_t> && std::same_as<std::remove_const_t<TN>, std::uint64_t>
void unpack_ternary(mat<TS> sign, mat<TN> nonzero, std::span<const float> scale, mat<TO> y) {
  constexpr std::string_view op = "unpack_ternary";
  detail::check_mat(y, op, "y");
  detail::check_view(sign, y.rows, packed_words(y.cols), op, "sign", "the packed");
  detail::check_view(nonzero, y.rows, packed_words(y.cols), op, "nonzero", "the packed");
  if (!scale.empty()) detail::quant::check_scale_size(scale, y.rows, op);
  detail::check_alias(y, sign, op, "y", "sign");
  detail::check_alias(y, nonzero, op, "y", "nonzero");
  detail::check_alias(y, detail::quant::span_view(scale), op, "y", "scale");
  const mat<const std::uint64_t> s = sign, nz = nonzero;
  detail::quant::unpack_rows<TO>(&s, &nz, scale, y);
}

// C (m, n) int32 = A (m, K) B (K, n) over {-1, +1}: a (m, packed_words(K)), bt = B^T packed (n, packed_words(K)).
class binary_gemm_kernel {
 public:
  static constexpr detail::op_label label = detail::make_label("binary_gemm", "");

  binary_gemm_kernel(index_t m, index_t n, index_t k) : m_(m), n_(n), k_(k) {
    detail::check_sizes(label, m, n, "m", "n");
    detail::check_sizes(label, k, 0, "k");
  }

  void operator()(mat<const std::uint64_t> a, mat<const std::uint64_t> bt, mat<std::int32_t> c) const {
    detail::check_mat(a, label, "a");
    detail::check_mat(bt, label, "bt");
    detail::check_mat(c, label, "c");
    const index_t words = packed_words(k_);
    detail::check_shape(a, m_, words, label, "a", "the packed (m, words(k))");
    detail::check_shape(bt, n_, words, label, "bt", "the packed (n, words(k))");
    detail::check_shape(c, m_, n_, label, "c", "the kernel\'s");
    detail::check_alias(c, a, label, "c", "a");
    detail::check_alias(c, bt, label, "c", "bt");
    if (c.empty()) return;
    const std::uint64_t last = detail::quant::tail_mask(k_);
    // Columns of B^T per pass: about 192 KiB of packed rows, so they stay in L2 while A's rows stream.
    const index_t nc = std::max<index_t>(4, (192 * 1024 / std::max<index_t>(8 * words, 1)) / 4 * 4);
    for (index_t j0 = 0; j0 < n_; j0 += nc) {
      const index_t j1 = std::min(n_, j0 + nc);
      for (index_t i = 0; i < m_; i += 4) {
        const std::uint64_t* ar[4];
        for (index_t r = 0; r < 4; ++r) ar[r] = a.row(std::min(i + r, m_ - 1));  // edge rows repeat row m - 1
        for (index_t j = j0; j < j1; j += 4) {
          const std::uint64_t* br[4];
          for (index_t q = 0; q < 4; ++q) br[q] = bt.row(std::min(j + q, n_ - 1));
          std::int64_t cnt[4][4];
          if (words > 0) {
            detail::quant::xor_popcount_4x4(ar, br, words, last, cnt);
          } else {
            for (auto& row : cnt)
              for (auto& v : row) v = 0;
          }
          for (index_t r = 0; r < 4 && i + r < m_; ++r)
            for (index_t q = 0; q < 4 && j + q < j1; ++q) c(i + r, j + q) = std::int32_t(k_ - 2 * cnt[r][q]);
        }
      }
    }
  }

  index_t m() const noexcept { return m_; }
  index_t n() const noexcept { return n_; }
  index_t k() const noexcept { return k_; }

 private:
  index_t m_, n_, k_;
};

template <class TA, class TB>
  requires std::same_as<std::remove_const_t<TA>, std::uint64_t> && std::same_as<std::remove_const_t<TB>, std::uint64_t>
void binary_gemm(mat<TA> a, mat<TB> bt, mat<std::int32_t> c, index_t k) {
  detail::check_mat(c, binary_gemm_kernel::label, "c");
  binary_gemm_kernel(c.rows, c.cols, k)(a, bt, c);
}

}  // namespace tpp
