#pragma once
// 16-bit fixed point <IL, FL> as in Gupta et al. 2015 (x an (M, N) fp32 or bf16 view):
//   quantize_fixed    q = sat(round(x 2^FL))   fp32 / bf16 -> int16
//   dequantize_fixed  y = q 2^-FL              int16 -> fp32 (exact) / bf16 (rounded to nearest even)
// A 16-bit word, IL integer bits including the sign, FL = 16 - IL fractional bits (IL + FL must be 16, IL in
// [1, 16]); values [-2^(IL-1), 2^(IL-1) - 2^-FL] in steps of 2^-FL; sat clamps to [-32768, 32767].
//
// Rounding: to nearest, ties to even; or stochastic: with r the element's 16 random bits (rounding_bits,
// quantize/common.hpp) and S = trunc(clamp(x 2^(FL+16), -2^31, 2^31 - 2^16)) (t = x 2^FL to 16 fractional
// bits, toward zero), q = floor((S + r) / 2^16): t rounds up with probability (S mod 2^16) / 2^16, within
// 2^-16 of frac(t): unbiased to within 2^-16 of a step, and an integer t (a representable value) stays.
// Integer arithmetic throughout (one 32-bit add and an arithmetic shift). The scalings by powers of two are
// exact (no Policy product).
//
// Special values: NaN gives 0; +-Inf and everything beyond the range saturate.
//
//   fixed_quantize_kernel<TI> k(rows, cols, format, rounding = nearest_even, stochastic_params = {});  k(x, q)
//   fixed_dequantize_kernel<TO> k(rows, cols, format);                                               k(q, y)
//   quantize_fixed(x, q, format, rounding, stochastic), dequantize_fixed(q, y, format)

#include "common.hpp"

namespace tpp {

// <IL, FL> fixed point in 16 bits: IL integer bits including the sign, FL fractional bits, IL + FL = 16.
struct fixed_point_format {
  int il = 4;
  int fl = 12;
};

namespace detail::quant {

inline void check_fixed_format(const fixed_point_format& f, std::string_view op) {
  if (f.il < 1 || f.il > 16) throw error(op, "il", concat("(", std::to_string(f.il), ") is outside [1, 16]"));
  if (f.il + f.fl != 16)
    throw error(op, "fl", concat("(", std::to_string(f.fl), ") + il (", std::to_string(f.il), ") is not 16"));
}

template <class TI>
void fixed_rows_nearest(mat<const TI> x, mat<std::int16_t> q, int fl) noexcept {
  const V up(pow2f(fl));
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    std::int16_t* qr = q.row(i);
    chunks(x.cols, xr, [=](index_t j, index_t n) {
      const V t = quant::load(xr + j, n) * up;  // exact: a power of two, scaling up
      const V r = lanes::select(lanes::is_nan(t), V(0.0f), lanes::round_even(t));
      lanes::store_int(qr + j, lanes::to_i32(lanes::clamp(r, -32768.0f, 32767.0f)), n);
    });
  }
}

// q = floor((S + r) / 2^16), S = trunc(clamp(x 2^(FL+16), -2^31, 2^31 - 2^16)) (NaN: S = 0): S + r <= 2^31 - 1
// and the arithmetic shift lands in [-32768, 32767].
template <class TI>
void fixed_rows_stochastic(mat<const TI> x, mat<std::int16_t> q, int fl, const stochastic_params& sr) noexcept {
  const V up(pow2f(fl + 16));
  const index_t co = sr.col_offset;
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    std::int16_t* qr = q.row(i);
    rounding_chunks(x.cols, xr, row_key(sr, i), co, [=](index_t j, index_t n, VU r) {
      const V s = lanes::clamp(quant::load(xr + j, n) * up, -0x1p31f, 0x1p31f - 0x1p16f);
      const VI t = lanes::to_i32(lanes::select(lanes::is_nan(s), V(0.0f), s));  // truncation toward zero
      lanes::store_int(qr + j, VI((t + lanes::as_i32(r)) >> 16), n);
    });
  }
}

}  // namespace detail::quant

// q = sat(round(x 2^FL)), int16 codes of <IL, FL>; rounding nearest_even or stochastic (sr's seed and offsets).
template <detail::float_element TI = float>
class fixed_quantize_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("quantize_fixed", "");

  fixed_quantize_kernel(index_t rows, index_t cols, fixed_point_format f, rounding r = rounding::nearest_even,
                        stochastic_params sr = {})
      : kernel_shape(label, rows, cols), format_(f), rounding_(r), sr_(sr) {
    detail::quant::check_fixed_format(f, label);
    detail::quant::check_rounding(r, label);
    detail::quant::check_stochastic(sr, label);
  }

  void operator()(mat<const TI> x, mat<std::int16_t> q) const {
    detail::check_in_out(x, q, rows_, cols_, label, "x", "q");
    if (x.empty()) return;
    if (rounding_ == rounding::stochastic)
      detail::quant::fixed_rows_stochastic(x, q, format_.fl, sr_);
    else
      detail::quant::fixed_rows_nearest(x, q, format_.fl);
  }

 private:
  fixed_point_format format_;
  rounding rounding_;
  stochastic_params sr_;
};

// y = q 2^-FL (exact in fp32; a bf16 y rounds to nearest even).
template <detail::float_output TO = float>
class fixed_dequantize_kernel : public detail::params_kernel<fixed_point_format> {
 public:
  static constexpr detail::op_label label = detail::make_label("dequantize_fixed", "");

  fixed_dequantize_kernel(index_t rows, index_t cols, fixed_point_format f) : params_kernel(label, rows, cols, f) {
    detail::quant::check_fixed_format(f, label);
  }

  void operator()(mat<const std::int16_t> q, mat<TO> y) const {
    namespace quant = detail::quant;
    detail::check_in_out(q, y, rows_, cols_, label, "q", "y");
    const quant::V down(std::ldexp(1.0f, -params_.fl));
    for (index_t i = 0; i < rows_; ++i) {
      const std::int16_t* qr = q.row(i);
      TO* yr = y.row(i);
      quant::chunks(cols_, [&](index_t j, index_t n) { lanes::store(yr + j, quant::load(qr + j, n) * down, n); });
    }
  }
};

template <class TI>
void quantize_fixed(mat<TI> x, mat<std::int16_t> q, fixed_point_format f, rounding r = rounding::nearest_even,
                    stochastic_params sr = {}) {
  detail::kernel_for<fixed_quantize_kernel<std::remove_const_t<TI>>>(q, "q", f, r, sr)(x, q);
}

template <class TQ, class TO>
  requires std::same_as<std::remove_const_t<TQ>, std::int16_t>
void dequantize_fixed(mat<TQ> q, mat<TO> y, fixed_point_format f) {
  detail::kernel_for<fixed_dequantize_kernel<TO>>(y, "y", f)(q, y);
}

}  // namespace tpp
