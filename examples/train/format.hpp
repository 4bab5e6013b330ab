#pragma once
// tpp_train's low-precision training formats (--format, --rounding), as Gupta et al. 2015 train in 16-bit
// fixed point: the weights after every optimizer step (the master copy is the rounded one, so an update
// smaller than half a step vanishes under round-to-nearest and survives in expectation under stochastic
// rounding), every layer's output in forward, and the gradient flowing back into every layer are rounded to
//
//   fp32           nothing rounded (the default)
//   bf16           round_to_bf16 (ops/quantize/bf16.hpp), held back in fp32
//   fixed<IL,FL>   IL integer bits including the sign, FL fractional bits, IL + FL <= 32: values
//                  [-2^(IL-1), 2^(IL-1) - 2^-FL] in steps of 2^-FL, saturating, NaN -> 0
//   binary         a QNN (Hubara et al.): nothing rounded here; network.hpp binarizes the weights and
//                  activations of the hidden layers in forward (see there)
//
// with --rounding nearest (ties to even) or stochastic. Fixed point goes through quantize_fixed and
// dequantize_fixed (ops/quantize/fixed_point.hpp) where the format fits their 16-bit word: IL + FL = 16 as
// it is, IL + FL < 16 as <16 - FL, FL> with the codes then clamped to IL + FL bits (rounding commutes with a
// clamp to grid points). Wider formats apply the op's own definition here, element by element in integers
// (the same rounding_bits), and their values are held in fp32, so a grid value of more than 24 significant
// bits is stored rounded to the nearest float.
//
// Stochastic rounding is reproducible: the bits of an element are rounding_bits(key, row, col) of the
// ops (quantize/common.hpp), the key a hash of the run's seed, the step and the tensor, the row its
// position in the whole batch, so the same seed gives the same numbers whatever the threads' split.
// The quantizer is no template on the multiplier: every policy's network calls the same object.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <tpp/tpp.hpp>

#include "random.hpp"

namespace tpp_train {

using tpp::index_t;

struct number_format {
  enum kind_t { fp32, bf16, fixed, binary } kind = fp32;
  int il = 0, fl = 0;  // fixed only
  tpp::rounding rounding = tpp::rounding::nearest_even;
  bool rounds() const noexcept { return kind == bf16 || kind == fixed; }
};

// "fp32", "bf16" or "fixed<IL,FL>" (as the CLI and JSON spell it).
inline std::string name(const number_format& f) {
  if (f.kind == number_format::fp32) return "fp32";
  if (f.kind == number_format::bf16) return "bf16";
  if (f.kind == number_format::binary) return "binary";
  return "fixed<" + std::to_string(f.il) + "," + std::to_string(f.fl) + ">";
}
inline const char* rounding_name(tpp::rounding r) {
  return r == tpp::rounding::stochastic ? "stochastic" : "nearest";
}

// The format named s (rounding left at nearest); std::invalid_argument naming --format otherwise.
inline number_format parse_format(const std::string& s) {
  if (s == "fp32") return {};
  if (s == "bf16") return {number_format::bf16};
  if (s == "binary") return {number_format::binary};
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument("--format takes fp32, bf16, fixed<IL,FL> or binary, not '" + s + "'" + why);
  };
  const std::string head = "fixed<";
  if (s.size() <= head.size() + 1 || s.compare(0, head.size(), head) != 0 || s.back() != '>') throw bad("");
  const std::string body = s.substr(head.size(), s.size() - head.size() - 1);
  const std::size_t comma = body.find(',');
  const auto integer = [&](const std::string& t) {
    if (t.empty() || t.size() > 2 || t.find_first_not_of("0123456789") != std::string::npos) throw bad("");
    return std::stoi(t);
  };
  if (comma == std::string::npos) throw bad("");
  number_format f{number_format::fixed, integer(body.substr(0, comma)), integer(body.substr(comma + 1))};
  if (f.il < 1) throw bad(" (IL counts the sign bit: at least 1)");
  if (f.il + f.fl > 32) throw bad(" (IL + FL is at most 32)");
  return f;
}

inline tpp::rounding parse_rounding(const std::string& s) {
  if (s == "nearest") return tpp::rounding::nearest_even;
  if (s == "stochastic") return tpp::rounding::stochastic;
  throw std::invalid_argument("--rounding takes one of nearest, stochastic, not '" + s + "'");
}

// The stochastic-rounding key of tensor `tensor` at step `step` of a run seeded `seed`.
inline std::uint64_t rounding_key(std::uint64_t seed, std::uint64_t step, std::uint64_t tensor) noexcept {
  return mix(mix(seed ^ 0xf0f0a5a5c3c3ull) + mix(step) * 31 + tensor);
}

// Rounds fp32 views to a format in place. Holds the code buffer it needs (one per network: not shared
// between threads).
class quantizer {
 public:
  quantizer() = default;
  explicit quantizer(number_format f) : f_(f) {}

  const number_format& format() const noexcept { return f_; }

  // x (rows, cols) rounded in place; stochastic rounding with the bits of rows [row_offset, ...) of key's
  // tensor (r overrides the format's rounding: inference rounds to nearest).
  void apply(tpp::mat<float> x, std::uint64_t key, index_t row_offset, tpp::rounding r) {
    if (!f_.rounds() || x.rows == 0 || x.cols == 0) return;
    const tpp::stochastic_params sr{key, row_offset, 0};
    const std::size_t n = std::size_t(x.rows * x.cols);
    if (f_.kind == number_format::bf16) {
      b_.resize(n);
      const tpp::mat<tpp::bf16> y{b_.data(), x.rows, x.cols, x.cols};
      tpp::round_to_bf16(tpp::mat<const float>(x), y, r, sr);
      for (index_t i = 0; i < x.rows; ++i)
        for (index_t j = 0; j < x.cols; ++j) x.data[i * x.ld + j] = tpp::to_float(b_[std::size_t(i * x.cols + j)]);
      return;
    }
    const int bits = f_.il + f_.fl;
    if (bits > 16) return wide(x, r, sr);
    q_.resize(n);
    const tpp::fixed_point_format word{16 - f_.fl, f_.fl};
    const tpp::mat<std::int16_t> q{q_.data(), x.rows, x.cols, x.cols};
    tpp::quantize_fixed(tpp::mat<const float>(x), q, word, r, sr);
    if (bits < 16) {
      const std::int16_t hi = std::int16_t((1 << (bits - 1)) - 1), lo = std::int16_t(-hi - 1);
      for (std::int16_t& c : q_) c = std::clamp(c, lo, hi);
    }
    tpp::dequantize_fixed(tpp::mat<const std::int16_t>(q), x, word);
  }
  void apply(std::span<float> x, std::uint64_t key, tpp::rounding r) {
    apply({x.data(), 1, index_t(x.size()), index_t(x.size())}, key, 0, r);
  }

 private:
  // IL + FL in (16, 32]: fixed_point.hpp's definition in 64-bit integers. Nearest: round(t) ties to even,
  // t = x 2^FL; stochastic: floor((trunc(t 2^16) + r) / 2^16); then saturated to IL + FL bits.
  void wide(tpp::mat<float> x, tpp::rounding r, const tpp::stochastic_params& sr) const noexcept {
    const int bits = f_.il + f_.fl;
    const double hi = std::ldexp(1.0, bits - 1) - 1, lo = -std::ldexp(1.0, bits - 1);
    const double up = std::ldexp(1.0, f_.fl), down = std::ldexp(1.0, -f_.fl);
    for (index_t i = 0; i < x.rows; ++i)
      for (index_t j = 0; j < x.cols; ++j) {
        float& v = x.data[i * x.ld + j];
        if (std::isnan(v)) {
          v = 0.0f;
          continue;
        }
        const double t = std::clamp(double(v) * up, lo, hi);  // exact scaling; the clamp bounds are grid points
        double q;
        if (r == tpp::rounding::stochastic) {
          const auto s = std::int64_t(t * 65536.0);  // toward zero; |t| < 2^31: fits with 16 more bits
          q = double((s + std::int64_t(tpp::rounding_bits(sr.seed, sr.row_offset + i, sr.col_offset + j))) >> 16);
        } else {
          q = std::nearbyint(t);  // ties to even in the default environment
        }
        v = float(q * down);
      }
  }

  number_format f_;
  std::vector<std::int16_t> q_;
  std::vector<tpp::bf16> b_;
};

}  // namespace tpp_train
