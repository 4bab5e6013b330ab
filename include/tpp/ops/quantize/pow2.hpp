#pragma once
// Power-of-two quantization (SmartDeal): y = 0 or +-2^k, k in [kmin, kmax] ([-126, 127]), x an (M, N)
// fp32 or bf16 view:
//   nearest in value (ties to the larger power): k = e + 1 when |x| >= 1.5 2^e (|x| in [2^e, 2^(e+1))), else
//   e; clamped to [kmin, kmax] (Inf saturates to 2^kmax); y = +-0 when |x| < max(zero_threshold, 2^(kmin - 1))
//   (2^(kmin-1): the midpoint between 0 and 2^kmin). The sign is x's. Bit operations only (no Policy product).
//   pow2_quantize  fake-quant: fp32 / bf16 -> fp32 / bf16; y may be the very same view as x (in place). An fp32
//                  y is written past the caches (core/stream.hpp) when x and y together hold at least
//                  tpp::stream_threshold bytes, where its rows start on vector boundaries (x86 AVX / AVX-512).
//   pow2_encode    int8 codes c = 0 or +-(k - kmin + 1) (needs kmax - kmin <= 126)
//   pow2_decode    y = 0 for c = 0, else sign(c) 2^(kmin - 1 + min(|c|, kmax - kmin + 1)) (|c| clamped to the
//                  range)
//
// Special values: NaN stays NaN (pow2_quantize) and encodes as 0; +-Inf saturates to +-2^kmax.
//
//   pow2_quantize_kernel<TI, TO> k(rows, cols, pow2_params);   k(x, y)
//   pow2_encode_kernel<TI> k(rows, cols, pow2_params);         k(x, code)
//   pow2_decode_kernel<TO> k(rows, cols, pow2_params);         k(code, y)
//   pow2_quantize(x, y, p), pow2_encode(x, code, p), pow2_decode(code, y, p)

#include "common.hpp"

namespace tpp {

struct pow2_params {
  int kmin = -7;                // the smallest power, >= -126
  int kmax = 0;                 // the largest power, kmin <= kmax <= 127
  float zero_threshold = 0.0f;  // |x| below max(this, 2^(kmin-1)) gives 0; finite, >= 0
};

namespace detail::quant {

struct pow2_consts {
  float lo, hi, zero_below, code_base;  // 2^kmin, 2^kmax, the zero threshold, 127 + kmin - 1
};

inline pow2_consts make_pow2(const pow2_params& p) noexcept {
  return {pow2f(p.kmin), pow2f(p.kmax), std::max(p.zero_threshold, std::ldexp(1.0f, p.kmin - 1)), float(127 + p.kmin - 1)};
}

// |y| = 0 or 2^k (x's magnitude); NaN lanes are the caller's.
inline V pow2_magnitude(V a, const pow2_consts& c) noexcept {
  const V r = lanes::as_f32((lanes::as_u32(a) + VU(0x00400000u)) & VU(0x7f800000u));  // nearest power, ties up
  return lanes::select(a < V(c.zero_below), V(0.0f), lanes::clamp(r, c.lo, c.hi));
}

inline void check_pow2_params(const pow2_params& p, std::string_view op, bool encode) {
  if (p.kmin < -126 || p.kmin > 127) throw error(op, "kmin", concat("(", std::to_string(p.kmin), ") is outside [-126, 127]"));
  if (p.kmax < -126 || p.kmax > 127) throw error(op, "kmax", concat("(", std::to_string(p.kmax), ") is outside [-126, 127]"));
  if (p.kmin > p.kmax)
    throw error(op, "kmax", concat("(", std::to_string(p.kmax), ") is below kmin (", std::to_string(p.kmin), ")"));
  if (encode && p.kmax - p.kmin > 126)
    throw error(op, "kmax", concat("- kmin (", std::to_string(p.kmax - p.kmin), ") exceeds 126, the int8 code range"));
  if (!(p.zero_threshold >= 0.0f && p.zero_threshold < inf))
    throw error(op, "zero_threshold", concat("(", std::to_string(p.zero_threshold), ") is not finite and >= 0"));
}

// The base of the pow2 kernels: their params, checked when made (Codes: the int8 code kernels, whose
// kmax - kmin must fit the code range).
template <bool Codes>
class pow2_kernel : public params_kernel<pow2_params> {
 protected:
  pow2_kernel(std::string_view op, index_t rows, index_t cols, const pow2_params& p) : params_kernel(op, rows, cols, p) {
    check_pow2_params(p, op, Codes);
  }
};

}  // namespace detail::quant

// y = 0 or +-2^k (fake-quant). y may be the very same view as x.
template <detail::float_element TI = float, detail::float_output TO = float>
class pow2_quantize_kernel : public detail::quant::pow2_kernel<false> {
 public:
  static constexpr detail::op_label label = detail::make_label("pow2_quantize", "");

  pow2_quantize_kernel(index_t rows, index_t cols, pow2_params p) : pow2_kernel(label, rows, cols, p) {}

  void operator()(mat<const TI> x, mat<TO> y) const {
    namespace quant = detail::quant;
    using quant::V;
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    const quant::pow2_consts c = quant::make_pow2(params_);
    const bool stream = detail::streams(y, detail::view_bytes(x) + detail::view_bytes(y));
    for (index_t i = 0; i < rows_; ++i) {
      const TI* xr = x.row(i);
      TO* yr = y.row(i);
      quant::chunks(cols_, xr, [&](index_t j, index_t n) {
        const V v = quant::load(xr + j, n);
        quant::store_out(yr + j, lanes::select(lanes::is_nan(v), v, lanes::copysign(quant::pow2_magnitude(lanes::abs(v), c), v)),
                         n, stream);
      });
    }
    if (stream) detail::stream_fence();
  }
};

// codes c = 0 or +-(k - kmin + 1), int8.
template <detail::float_element TI = float>
class pow2_encode_kernel : public detail::quant::pow2_kernel<true> {
 public:
  static constexpr detail::op_label label = detail::make_label("pow2_encode", "");

  pow2_encode_kernel(index_t rows, index_t cols, pow2_params p) : pow2_kernel(label, rows, cols, p) {}

  void operator()(mat<const TI> x, mat<std::int8_t> code) const {
    namespace quant = detail::quant;
    using quant::V;
    detail::check_in_out(x, code, rows_, cols_, label, "x", "code");
    const quant::pow2_consts c = quant::make_pow2(params_);
    for (index_t i = 0; i < rows_; ++i) {
      const TI* xr = x.row(i);
      std::int8_t* cr = code.row(i);
      quant::chunks(cols_, xr, [&](index_t j, index_t n) {
        const V v = quant::load(xr + j, n);
        const V r = quant::pow2_magnitude(lanes::abs(v), c);
        const V k = lanes::to_f32(lanes::as_i32(lanes::as_u32(r) >> 23)) - V(c.code_base);  // k - kmin + 1
        const V z = lanes::select(lanes::is_nan(v) || r == V(0.0f), V(0.0f), k);
        lanes::store_int(cr + j, lanes::to_i32(lanes::copysign(z, v)), n);
      });
    }
  }
};

// y = 0 for c = 0, else sign(c) 2^(kmin - 1 + min(|c|, kmax - kmin + 1)).
template <detail::float_output TO = float>
class pow2_decode_kernel : public detail::quant::pow2_kernel<true> {
 public:
  static constexpr detail::op_label label = detail::make_label("pow2_decode", "");

  pow2_decode_kernel(index_t rows, index_t cols, pow2_params p) : pow2_kernel(label, rows, cols, p) {}

  void operator()(mat<const std::int8_t> code, mat<TO> y) const {
    namespace quant = detail::quant;
    using quant::V;
    detail::check_in_out(code, y, rows_, cols_, label, "code", "y");
    const float top = float(params_.kmax - params_.kmin + 1), base = float(127 + params_.kmin - 1);
    for (index_t i = 0; i < rows_; ++i) {
      const std::int8_t* cr = code.row(i);
      TO* yr = y.row(i);
      quant::chunks(cols_, [&](index_t j, index_t n) {
        const V c = quant::load(cr + j, n);
        const V e = lanes::min_propagating_nan(lanes::abs(c), V(top)) + V(base);  // the biased exponent, when c != 0
        const V mag = lanes::select(c == V(0.0f), V(0.0f), lanes::as_f32(lanes::to_i32(e) << 23));
        lanes::store(yr + j, lanes::copysign(mag, c), n);
      });
    }
  }
};

template <class TI, class TO>
void pow2_quantize(mat<TI> x, mat<TO> y, pow2_params p) {
  detail::kernel_for<pow2_quantize_kernel<std::remove_const_t<TI>, TO>>(y, "y", p)(x, y);
}

template <class TI>
void pow2_encode(mat<TI> x, mat<std::int8_t> code, pow2_params p) {
  detail::kernel_for<pow2_encode_kernel<std::remove_const_t<TI>>>(code, "code", p)(x, code);
}

template <class TC, class TO>
  requires std::same_as<std::remove_const_t<TC>, std::int8_t>
void pow2_decode(mat<TC> code, mat<TO> y, pow2_params p) {
  detail::kernel_for<pow2_decode_kernel<TO>>(y, "y", p)(code, y);
}

}  // namespace tpp
