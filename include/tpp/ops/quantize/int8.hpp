#pragma once
// int8 quantization (x an (M, N) fp32 or bf16 view; P(a, b) = Policy::mul(a, b); rne = round to nearest,
// ties to even; sat = clamp to the code type's range [lo, hi]):
//   quantize    q = sat(rne(P(x, 1 / s)) + z)             fp32 / bf16 -> int8 / uint8
//   dequantize  y = P(q - z, s)                           int8 / uint8 -> fp32 / bf16
//   requantize  q = sat(rne(P(float(acc), s)) + z)        int32 (a GEMM's sum) -> int8 / uint8
// s, z per tensor, per row or per column (quant_params: spans of 1, M or N scales and zero points; no zero
// points = all 0). 1 / s is a correctly rounded fp32 division, once per scale. float(acc) is exact for
// |acc| <= 2^24 and rounds to nearest even beyond. compute_quant_params picks s and z from the data:
//   symmetric  (int8 only)  s = max|x| / 127, z = 0          (codes -127..127; -128 only by saturation)
//   asymmetric              lo = min(min x, 0), hi = max(max x, 0), s = (hi - lo) / (hi_q - lo_q),
//                           z = sat(rne(lo_q - lo / s))      (0 is exactly representable)
// over each group's finite values (NaN and Inf are ignored); s is computed in double, rounded to fp32 and
// raised to at least 2^-126 (so 1 / s is finite); a group of zeros gets s = 1. Every x of the group's range
// then comes back within s / 2 (plus the fp32 and policy roundings: test/ops/quantize/int8.cpp).
//
// Policy products: P(x, 1 / s), P(q - z, s) and P(acc, s) (scalar mul in scalar code, the bit-identical SIMD
// mul in vector code); the only ones of the quantization family.
//
// Special values: NaN quantizes to the zero point, +-Inf and everything beyond the range saturate. Scales
// must be finite and >= 2^-126, zero points within the code type's range; a group's NaN / Inf do not enter
// compute_quant_params.
//
// Scratch (core/workspace.hpp): the kernels keep the multipliers and zero points of a call as floats, 2 per
// group (workspace_bytes()); compute_quant_params the groups' ranges, on the thread's arena. Outputs share
// no element with any input (the scales and zero points included); overlaps throw.
//
//   compute_quant_params<TQ>(x, scale, zero_point, mode, granularity)
//   quantize_kernel<P, TI, TQ> k(rows, cols, quant_params);   k(x, q[, ws]);     quantize<P>(x, q, params)
//   dequantize_kernel<P, TQ, TO> k(rows, cols, quant_params); k(q, y[, ws]);     dequantize<P>(q, y, params)
//   requantize_kernel<P, TQ> k(rows, cols, quant_params);     k(acc, q[, ws]);   requantize<P>(acc, q, params)
// A kernel reads its params' spans at every call (they may be refilled between calls; a call checks them).

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/workspace.hpp"
#include "common.hpp"

namespace tpp {

enum class quant_granularity : std::uint8_t { per_tensor, per_row, per_col };
enum class quant_mode : std::uint8_t { symmetric, asymmetric };

constexpr std::string_view name(quant_granularity g) noexcept {
  switch (g) {
    case quant_granularity::per_tensor: return "per_tensor";
    case quant_granularity::per_row: return "per_row";
    case quant_granularity::per_col: return "per_col";
  }
  return "invalid";
}

// The scales (and zero points) of an int8 quantization: 1, rows or cols values as the granularity says.
struct quant_params {
  quant_granularity granularity = quant_granularity::per_tensor;
  std::span<const float> scale;              // finite, >= 2^-126
  std::span<const std::int32_t> zero_point;  // empty (all 0) or one per scale, within the code type's range
};

namespace detail::quant {

template <class T>
concept code8 = std::same_as<T, std::int8_t> || std::same_as<T, std::uint8_t>;

inline constexpr float min_scale = std::numeric_limits<float>::min();  // 2^-126

inline index_t group_count(quant_granularity g, index_t rows, index_t cols) noexcept {
  return g == quant_granularity::per_row ? rows : g == quant_granularity::per_col ? cols : 1;
}

inline void check_granularity(quant_granularity g, std::string_view op) {
  if (g != quant_granularity::per_tensor && g != quant_granularity::per_row && g != quant_granularity::per_col)
    throw error(op, "granularity", concat("has an invalid value (", std::to_string(int(g)), ")"));
}

template <class TQ>
void check_quant_params(const quant_params& p, index_t rows, index_t cols, std::string_view op) {
  check_granularity(p.granularity, op);
  const index_t n = group_count(p.granularity, rows, cols);
  if (index_t(p.scale.size()) != n)
    throw error(op, "scale", concat("has ", std::to_string(p.scale.size()), " values; ", name(p.granularity), " of a ",
                                    std::to_string(rows), "x", std::to_string(cols), " tensor needs ", std::to_string(n)));
  for (std::size_t k = 0; k < p.scale.size(); ++k) {
    const float s = p.scale[k];
    if (!(s >= min_scale && s <= std::numeric_limits<float>::max()))
      throw error(op, concat("scale[", std::to_string(k), "]"),
                  concat("(", std::to_string(s), ") is not a finite value >= 2^-126"));
  }
  if (!p.zero_point.empty()) {
    if (p.zero_point.size() != p.scale.size())
      throw error(op, "zero_point", concat("has ", std::to_string(p.zero_point.size()), " values, scale has ",
                                           std::to_string(p.scale.size())));
    constexpr std::int32_t lo = std::numeric_limits<TQ>::min(), hi = std::numeric_limits<TQ>::max();
    for (std::size_t k = 0; k < p.zero_point.size(); ++k)
      if (p.zero_point[k] < lo || p.zero_point[k] > hi)
        throw error(op, concat("zero_point[", std::to_string(k), "]"),
                    concat("(", std::to_string(p.zero_point[k]), ") is outside the code range [", std::to_string(lo), ", ",
                           std::to_string(hi), "]"));
  }
}

// An output view against the params' scales and zero points (inputs too).
template <class T>
void check_params_alias(const quant_params& p, const mat<T>& out, std::string_view op, std::string_view out_name) {
  check_alias(out, span_view(p.scale), op, out_name, "scale");
  check_alias(out, span_view(p.zero_point), op, out_name, "zero_point");
}

// The per-call multipliers and zero points as floats in buf (2 per group): m[k] = inverse ? 1 / scale[k] :
// scale[k].
struct scale_rows {
  const float* mult;
  const float* zero;
  index_t step;    // 1 per row, 0 per tensor (and per column, where lanes load mult + j)
  bool has_zero;   // per column: whether zero + j is loaded (symmetric: all zero, never read)
};

inline scale_rows prepare_scales(const quant_params& p, bool inverse, float* buf) noexcept {
  const index_t n = index_t(p.scale.size());
  for (index_t k = 0; k < n; ++k) {
    buf[k] = inverse ? 1.0f / p.scale[std::size_t(k)] : p.scale[std::size_t(k)];
    buf[n + k] = p.zero_point.empty() ? 0.0f : float(p.zero_point[std::size_t(k)]);
  }
  return {buf, buf + n, p.granularity == quant_granularity::per_row ? 1 : 0, !p.zero_point.empty()};
}

inline std::size_t scales_bytes(const quant_params& p) noexcept {
  return scratch_size().take<float>(2 * p.scale.size()).bytes();
}

// q = sat(rne(P(x, m)) + z): quantize (m = 1 / s) and requantize (m = s).
template <class P, bool PerCol, class TI, class TQ>
void scale_round(mat<const TI> x, mat<TQ> q, scale_rows s) noexcept {
  constexpr float lo = float(std::numeric_limits<TQ>::min()), hi = float(std::numeric_limits<TQ>::max());
  for (index_t i = 0; i < x.rows; ++i) {
    const TI* xr = x.row(i);
    TQ* qr = q.row(i);
    const float *mr = s.mult, *zr = s.zero;
    const bool zc = s.has_zero;
    const V mi(s.mult[i * s.step]), zi(s.zero[i * s.step]);
    chunks(x.cols, xr, [=](index_t j, index_t n) {
      V m = mi, z = zi;
      if constexpr (PerCol) {
        m = quant::load(mr + j, n);
        if (zc) z = quant::load(zr + j, n);  // (the scales alone keep a 4096-column row's working set in the L1)
      }
      const V t = P::mul(quant::load(xr + j, n), m);
      const V r = lanes::select(lanes::is_nan(t), V(0.0f), lanes::round_even(t));
      lanes::store_int(qr + j, lanes::to_i32(lanes::clamp(r + z, lo, hi)), n);
    });
  }
}

// y = P(q - z, s).
template <class P, bool PerCol, class TQ, class TO>
void scale_codes(mat<const TQ> q, mat<TO> y, scale_rows s) noexcept {
  for (index_t i = 0; i < q.rows; ++i) {
    const TQ* qr = q.row(i);
    TO* yr = y.row(i);
    const float *mr = s.mult, *zr = s.zero;
    const bool zc = s.has_zero;
    const V mi(s.mult[i * s.step]), zi(s.zero[i * s.step]);
    chunks(q.cols, [=](index_t j, index_t n) {
      V m = mi, z = zi;
      if constexpr (PerCol) {
        m = quant::load(mr + j, n);
        if (zc) z = quant::load(zr + j, n);
      }
      lanes::store(yr + j, P::mul(quant::load(qr + j, n) - z, m), n);
    });
  }
}

// lo[g] = min(0, finite x of group g), hi[g] = max(0, ...): per_tensor / per_row into lo[0] / lo[i],
// per_col into lo[0, cols).
template <class T>
void group_ranges(mat<const T> x, quant_granularity g, float* lo, float* hi) noexcept {
  const auto finite = [](V v) { return lanes::select(lanes::abs(v) < V(inf), v, V(0.0f)); };
  if (g == quant_granularity::per_col) {
    std::fill_n(lo, x.cols, 0.0f);
    std::fill_n(hi, x.cols, 0.0f);
    for (index_t i = 0; i < x.rows; ++i) {
      const T* xr = x.row(i);
      chunks(x.cols, xr, [&](index_t j, index_t n) {
        const V v = finite(quant::load(xr + j, n));
        lanes::store(lo + j, lanes::min_propagating_nan(quant::load(lo + j, n), v), n);
        lanes::store(hi + j, lanes::max_propagating_nan(quant::load(hi + j, n), v), n);
      });
    }
    return;
  }
  V vlo(0.0f), vhi(0.0f);
  for (index_t i = 0; i < x.rows; ++i) {
    const T* xr = x.row(i);
    chunks(x.cols, xr, [&](index_t j, index_t n) {
      const V v = finite(quant::load(xr + j, n));  // partial loads: zeros, inside [lo, hi] anyway
      vlo = lanes::min_propagating_nan(vlo, v);
      vhi = lanes::max_propagating_nan(vhi, v);
    });
    if (g == quant_granularity::per_row) {
      lo[i] = lanes::hmin(vlo);
      hi[i] = lanes::hmax(vhi);
      vlo = V(0.0f);
      vhi = V(0.0f);
    }
  }
  if (g == quant_granularity::per_tensor) {
    lo[0] = lanes::hmin(vlo);
    hi[0] = lanes::hmax(vhi);
  }
}

}  // namespace detail::quant

// Scales (and zero points) for TQ codes from x's values, per tensor / row / column (see the top).
// scale: 1, rows or cols values; zero_point: as many, or empty for symmetric.
template <class TQ = std::int8_t, class TI>
  requires detail::quant::code8<TQ> && detail::float_element<TI>
void compute_quant_params(mat<TI> x, std::span<float> scale, std::span<std::int32_t> zero_point, quant_mode mode,
                          quant_granularity g) {
  using namespace detail::quant;
  constexpr std::string_view op = "compute_quant_params";
  detail::check_mat(x, op, "x");
  check_granularity(g, op);
  if (mode != quant_mode::symmetric && mode != quant_mode::asymmetric)
    throw error(op, "mode", detail::concat("has an invalid value (", std::to_string(int(mode)), ")"));
  if (mode == quant_mode::symmetric && !std::is_signed_v<TQ>)
    throw error(op, "mode", "symmetric needs a signed code type (int8)");
  const index_t n = group_count(g, x.rows, x.cols);
  if (index_t(scale.size()) != n)
    throw error(op, "scale", detail::concat("has ", std::to_string(scale.size()), " values; ", name(g), " needs ", std::to_string(n)));
  if (index_t(zero_point.size()) != n && !(mode == quant_mode::symmetric && zero_point.empty()))
    throw error(op, "zero_point", detail::concat("has ", std::to_string(zero_point.size()), " values; ", name(g), " needs ",
                                                 std::to_string(n)));
  detail::check_alias(span_view(scale), x, op, "scale", "x");
  detail::check_alias(span_view(zero_point), x, op, "zero_point", "x");
  detail::check_alias(span_view(zero_point), span_view(scale), op, "zero_point", "scale");
  if (n == 0) return;
  scratch s({}, op);
  float* lo = s.take<float>(std::size_t(2 * n));
  float* hi = lo + n;
  const mat<const std::remove_const_t<TI>> cx = {x.data, x.rows, x.cols, x.ld};
  if (x.empty()) {
    std::fill_n(lo, 2 * n, 0.0f);
  } else {
    group_ranges(cx, g, lo, hi);
  }
  constexpr double qlo = std::numeric_limits<TQ>::min(), qhi = std::numeric_limits<TQ>::max();
  for (index_t k = 0; k < n; ++k) {
    const double l = lo[k], h = hi[k];
    const double range = mode == quant_mode::symmetric ? std::max(-l, h) / qhi : (h - l) / (qhi - qlo);
    const float sk = range > 0.0 ? std::max(float(range), min_scale) : 1.0f;
    scale[std::size_t(k)] = sk;
    if (mode == quant_mode::asymmetric)
      zero_point[std::size_t(k)] = std::int32_t(std::clamp(std::nearbyint(qlo - l / double(sk)), qlo, qhi));
    else if (!zero_point.empty())
      zero_point[std::size_t(k)] = 0;
  }
}

// q = sat(rne(P(x, 1 / s)) + z). x (rows, cols) fp32 / bf16, q (rows, cols) int8 / uint8.
template <approx::multiplier Policy = approx::exact, detail::float_element TI = float, detail::quant::code8 TQ = std::int8_t>
class quantize_kernel : public detail::params_kernel<quant_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("quantize", "");

  quantize_kernel(index_t rows, index_t cols, const quant_params& p) : params_kernel(label, rows, cols, p) {
    approx::check_policy<Policy>();
    detail::quant::check_quant_params<TQ>(p, rows, cols, label);
  }

  std::size_t workspace_bytes() const noexcept { return detail::quant::scales_bytes(params_); }

  void operator()(mat<const TI> x, mat<TQ> q, workspace ws = {}) const {
    detail::check_in_out(x, q, rows_, cols_, label, "x", "q");
    detail::quant::check_params_alias(params_, q, label, "q");
    detail::quant::check_quant_params<TQ>(params_, rows_, cols_, label);
    if (x.empty()) return;
    scratch s(ws, label);
    const auto sc = detail::quant::prepare_scales(params_, true, s.take<float>(2 * params_.scale.size()));
    if (params_.granularity == quant_granularity::per_col)
      detail::quant::scale_round<Policy, true>(x, q, sc);
    else
      detail::quant::scale_round<Policy, false>(x, q, sc);
  }
};

// y = P(q - z, s). q (rows, cols) int8 / uint8, y fp32 / bf16.
template <approx::multiplier Policy = approx::exact, detail::quant::code8 TQ = std::int8_t, detail::float_output TO = float>
class dequantize_kernel : public detail::params_kernel<quant_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("dequantize", "");

  dequantize_kernel(index_t rows, index_t cols, const quant_params& p) : params_kernel(label, rows, cols, p) {
    approx::check_policy<Policy>();
    detail::quant::check_quant_params<TQ>(p, rows, cols, label);
  }

  std::size_t workspace_bytes() const noexcept { return detail::quant::scales_bytes(params_); }

  void operator()(mat<const TQ> q, mat<TO> y, workspace ws = {}) const {
    detail::check_in_out(q, y, rows_, cols_, label, "q", "y");
    detail::quant::check_params_alias(params_, y, label, "y");
    detail::quant::check_quant_params<TQ>(params_, rows_, cols_, label);
    if (q.empty()) return;
    scratch s(ws, label);
    const auto sc = detail::quant::prepare_scales(params_, false, s.take<float>(2 * params_.scale.size()));
    if (params_.granularity == quant_granularity::per_col)
      detail::quant::scale_codes<Policy, true>(q, y, sc);
    else
      detail::quant::scale_codes<Policy, false>(q, y, sc);
  }
};

// q = sat(rne(P(float(acc), s)) + z): an int32 GEMM result to int8 / uint8 (s typically s_a s_b / s_out).
template <approx::multiplier Policy = approx::exact, detail::quant::code8 TQ = std::int8_t>
class requantize_kernel : public detail::params_kernel<quant_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("requantize", "");

  requantize_kernel(index_t rows, index_t cols, const quant_params& p) : params_kernel(label, rows, cols, p) {
    approx::check_policy<Policy>();
    detail::quant::check_quant_params<TQ>(p, rows, cols, label);
  }

  std::size_t workspace_bytes() const noexcept { return detail::quant::scales_bytes(params_); }

  void operator()(mat<const std::int32_t> acc, mat<TQ> q, workspace ws = {}) const {
    detail::check_in_out(acc, q, rows_, cols_, label, "acc", "q");
    detail::quant::check_params_alias(params_, q, label, "q");
    detail::quant::check_quant_params<TQ>(params_, rows_, cols_, label);
    if (acc.empty()) return;
    scratch s(ws, label);
    const auto sc = detail::quant::prepare_scales(params_, false, s.take<float>(2 * params_.scale.size()));
    if (params_.granularity == quant_granularity::per_col)
      detail::quant::scale_round<Policy, true>(acc, q, sc);
    else
      detail::quant::scale_round<Policy, false>(acc, q, sc);
  }
};

template <class Policy = approx::exact, class TI, class TQ>
void quantize(mat<TI> x, mat<TQ> q, const quant_params& p) {
  detail::kernel_for<quantize_kernel<Policy, std::remove_const_t<TI>, TQ>>(q, "q", p)(x, q);
}

template <class Policy = approx::exact, class TQ, class TO>
void dequantize(mat<TQ> q, mat<TO> y, const quant_params& p) {
  detail::kernel_for<dequantize_kernel<Policy, std::remove_const_t<TQ>, TO>>(y, "y", p)(q, y);
}

template <class Policy = approx::exact, class TA, class TQ>
  requires std::same_as<std::remove_const_t<TA>, std::int32_t>
void requantize(mat<TA> acc, mat<TQ> q, const quant_params& p) {
  detail::kernel_for<requantize_kernel<Policy, TQ>>(q, "q", p)(acc, q);
}

}  // namespace tpp
