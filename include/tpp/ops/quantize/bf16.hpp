#pragma once
// fp32 -> bf16 with a choice of rounding (x and y (M, N)):
//   round_to_bf16  y = bf16(x): to nearest even (to_bf16_rne's bits) or stochastic: the fp32 bit pattern plus
//                  the element's 16 random bits r (rounding_bits, quantize/common.hpp), truncated to its upper
//                  half, so |x| rounds away from zero with probability (low 16 bits of x) / 2^16: exactly
//                  unbiased on the bf16 grid, denormals included; the result is always one of the two bf16
//                  values bracketing x (x itself when x is a bf16).
//
// Special values: NaN stays a (quiet) NaN, +-Inf and +-0 stay. A finite x never becomes Inf unless |x| is
// above the largest finite bf16 (0x1.fep127), whose upper neighbour on the grid is Inf: then Inf with
// probability (|x| - 0x1.fep127) / 2^120 (round to nearest gives Inf from 0x1.ffp127 on).
//
//   bf16_round_kernel k(rows, cols, rounding = nearest_even, stochastic_params = {});  k(x, y)
//   round_to_bf16(x, y, rounding, stochastic)

#include "common.hpp"

namespace tpp {

namespace detail::quant {

// The fp32 pattern plus 16 random bits r (its upper half is the result), NaN made quiet.
inline V stochastic_bf16(V x, VU r) noexcept {
  const VU u = lanes::as_u32(x);
  return lanes::select(lanes::is_nan(x), lanes::as_f32(u | VU(0x00400000u)), lanes::as_f32(u + r));
}

inline void bf16_rows(mat<const float> x, mat<bf16> y, rounding r, const stochastic_params& sr) noexcept {
  for (index_t i = 0; i < x.rows; ++i) {
    const float* xr = x.row(i);
    bf16* yr = y.row(i);
    if (r == rounding::nearest_even) {
      chunks(x.cols, xr, [&](index_t j, index_t n) { lanes::store(yr + j, quant::load(xr + j, n), n); });
      continue;
    }
    auto* hr = reinterpret_cast<std::uint16_t*>(yr);
    rounding_chunks(x.cols, xr, row_key(sr, i), sr.col_offset, [=](index_t j, index_t n, VU bits) {
      lanes::store_high_halves(hr + j, lanes::as_u32(stochastic_bf16(quant::load(xr + j, n), bits)), n);
    });
  }
}

}  // namespace detail::quant

// y = bf16(x), round to nearest even or stochastic.
class bf16_round_kernel : public detail::kernel_shape {
 public:
  static constexpr detail::op_label label = detail::make_label("round_to_bf16", "");

  bf16_round_kernel(index_t rows, index_t cols, rounding r = rounding::nearest_even, stochastic_params sr = {})
      : kernel_shape(label, rows, cols), rounding_(r), sr_(sr) {
    detail::quant::check_rounding(r, label);
    detail::quant::check_stochastic(sr, label);
  }

  void operator()(mat<const float> x, mat<bf16> y) const {
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    if (x.empty()) return;
    detail::quant::bf16_rows(x, y, rounding_, sr_);
  }

 private:
  rounding rounding_;
  stochastic_params sr_;
};

template <class TI>
  requires std::same_as<std::remove_const_t<TI>, float>
void round_to_bf16(mat<TI> x, mat<bf16> y, rounding r = rounding::nearest_even, stochastic_params sr = {}) {
  detail::check_mat(y, bf16_round_kernel::label, "y");
  bf16_round_kernel(y.rows, y.cols, r, sr)(x, y);
}

}  // namespace tpp
