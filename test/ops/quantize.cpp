// ops/quantize.hpp: int8 (params, quantize, dequantize, requantize; every registry policy), fixed point and bf16
// with round to nearest and stochastic rounding, block floating point, power of two, binary / ternary packing
// and the binary GEMM, against independent references (double or integer arithmetic), with tolerances derived
// from the definitions in the header's doc block; edge shapes with padding sentinels; bad arguments.
//
// Notation: u = 2^-24 (fp32 unit roundoff), m = max(P::max_rel_error, u) the policy's relative error.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/quantize.hpp>

#include "ops/elementwise_support.hpp"

namespace {

using namespace tpp;
using test::padded;
constexpr double u = test::u_fp32;
constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();
// NaNs with payloads and signs: fake-quant must pass each one through with its very bits
const float nan_q = std::bit_cast<float>(0xffc01234u), nan_s = std::bit_cast<float>(0x7f800321u);

template <class P>
double rel_of() {
  return std::max(double(P::max_rel_error), u);
}

// Random values whose magnitudes spread over 2^-spread .. 2^spread.
std::vector<float> spread(std::size_t n, int spread_exp, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(-spread_exp, spread_exp);
  std::vector<float> v(n);
  for (auto& x : v) x = std::ldexp(d(g), e(g));
  return v;
}

// ============================================ int8 ============================================

template <class TQ>
constexpr double qlo = std::numeric_limits<TQ>::min();
template <class TQ>
constexpr double qhi = std::numeric_limits<TQ>::max();

// The group of element (i, j).
index_t group_of(quant_granularity g, index_t i, index_t j) {
  return g == quant_granularity::per_row ? i : g == quant_granularity::per_col ? j : 0;
}

// Independent reference of compute_quant_params: min / max of the finite values per group in double, then the
// documented formulas.
template <class TQ>
void ref_params(const padded<float>& x, quant_mode mode, quant_granularity g, std::vector<float>& s,
                std::vector<std::int32_t>& z) {
  const index_t n = g == quant_granularity::per_row ? x.rows : g == quant_granularity::per_col ? x.cols : 1;
  std::vector<double> lo(static_cast<std::size_t>(n), 0.0), hi(static_cast<std::size_t>(n), 0.0);
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t j = 0; j < x.cols; ++j) {
      const double v = x.value(i, j);
      if (!std::isfinite(v)) continue;
      auto k = std::size_t(group_of(g, i, j));
      lo[k] = std::min(lo[k], v);
      hi[k] = std::max(hi[k], v);
    }
  s.assign(std::size_t(n), 0.0f);
  z.assign(std::size_t(n), 0);
  for (std::size_t k = 0; k < std::size_t(n); ++k) {
    const double r = mode == quant_mode::symmetric ? std::max(-lo[k], hi[k]) / qhi<TQ> : (hi[k] - lo[k]) / (qhi<TQ> - qlo<TQ>);
    s[k] = r > 0 ? std::max(float(r), std::numeric_limits<float>::min()) : 1.0f;
    if (mode == quant_mode::asymmetric)
      z[k] = std::int32_t(std::clamp(std::nearbyint(qlo<TQ> - lo[k] / double(s[k])), qlo<TQ>, qhi<TQ>));
  }
}

// The definition of quantize, in scalar float with P's scalar mul.
template <class P, class TQ>
TQ ref_quantize(float x, float s, std::int32_t z) {
  const float t = P::mul(x, 1.0f / s);
  const float r = std::isnan(t) ? 0.0f : std::nearbyint(t);
  return TQ(std::clamp(double(r) + z, qlo<TQ>, qhi<TQ>));
}

// Quantize with computed params, compare q with the definition bit for bit, dequantize and bound the round
// trip. Bound, for x inside its group's range: t = P(x, fl(1/s)) has |t - x/s| <= |x/s| (u + m (1 + u)) = e1
// (fl(1/s) one rounding, P relative m); q = sat(rne(t) + z) is within 1/2 + e1 of x/s + z (saturation only
// moves to the nearer end, and the range ends lie within 1/2 step of the grid: z rounds by at most 1/2);
// y = P(q - z, s) adds m |(q - z) s|. So |y - x| <= s (1/2 + e1) + m |q - z| s.
template <class P, class TQ>
void check_int8(index_t rows, index_t cols, index_t pad, quant_mode mode, quant_granularity g, std::uint64_t seed) {
  INFO(P::name(), " ", rows, "x", cols, " mode ", int(mode), " ", name(g), " code ", sizeof(TQ), std::is_signed_v<TQ>);
  padded<float> x(rows, cols, pad);
  auto v = test::uniform(std::size_t(rows * cols), -3.0f, 5.0f, seed);
  // rows and columns of different magnitudes, so per-row / per-column scales differ
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) v[std::size_t(i * cols + j)] *= float(1 + (i % 5)) * float(1 + (j % 3)) * 0.25f;
  x.fill(v);
  std::vector<float> s, sref;
  std::vector<std::int32_t> z, zref;
  const std::size_t n = std::size_t(g == quant_granularity::per_row ? rows : g == quant_granularity::per_col ? cols : 1);
  s.resize(n);
  z.resize(n);
  compute_quant_params<TQ>(x.cm(), mode, g, s, z);
  ref_params<TQ>(x, mode, g, sref, zref);
  CHECK(s == sref);
  CHECK(z == zref);
  const quant_params qp{g, s, z};
  padded<TQ> q(rows, cols, pad);
  quantize<P>(x.cm(), qp, q.m());
  padded<float> y(rows, cols, pad + 1);
  dequantize<P>(q.cm(), qp, y.m());
  const double m = rel_of<P>();
  int bad_q = 0, bad_y = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      const auto k = std::size_t(group_of(g, i, j));
      if (q(i, j) != ref_quantize<P, TQ>(x(i, j), s[k], z[k])) ++bad_q;
      const double xs = std::abs(x.value(i, j)) / s[k];
      const double e1 = xs * (u + m * (1 + u));
      const double tol = s[k] * (0.5 + e1) + m * std::abs(double(q(i, j)) - z[k]) * s[k];
      if (!(std::abs(y.value(i, j) - x.value(i, j)) <= tol)) ++bad_y;
      // dequantize's definition, bit for bit
      if (!test::same_bits(y(i, j), P::mul(float(std::int32_t(q(i, j)) - z[k]), s[k]))) ++bad_y;
    }
  CHECK(bad_q == 0);
  CHECK(bad_y == 0);
  CHECK(q.padding_intact());
  CHECK(y.padding_intact());
}

template <class P>
void int8_policy_sweep() {
  const index_t W = simd::width<>;
  for (auto g : {quant_granularity::per_tensor, quant_granularity::per_row, quant_granularity::per_col}) {
    check_int8<P, std::int8_t>(7, 3 * W + 5, 3, quant_mode::symmetric, g, 11);
    check_int8<P, std::uint8_t>(6, 2 * W - 1, 0, quant_mode::asymmetric, g, 12);
    check_int8<P, std::int8_t>(5, W + 1, 2, quant_mode::asymmetric, g, 13);
  }
}

TEST_CASE_TEMPLATE_DEFINE("int8: computed params, quantize = definition, round trip within s/2 + policy error", P,
                          int8_policies) {
  int8_policy_sweep<P>();
}
TEST_CASE_TEMPLATE_APPLY(int8_policies, tpp::approx::float_policy_tuple);

TEST_CASE("int8: edge shapes, bf16 in / out, every granularity") {
  for (const auto& sh : test::edge_shapes()) {
    INFO(test::describe(sh));
    for (auto g : {quant_granularity::per_tensor, quant_granularity::per_row, quant_granularity::per_col}) {
      check_int8<approx::exact, std::int8_t>(sh.rows, sh.cols, sh.pad, quant_mode::symmetric, g, 21);
      check_int8<approx::exact, std::uint8_t>(sh.rows, sh.cols, sh.pad, quant_mode::asymmetric, g, 22);
      // bf16 in and out: quantize reads the bf16 value exactly; dequantize rounds P(q - z, s) once (RNE)
      const index_t n = g == quant_granularity::per_row ? sh.rows : g == quant_granularity::per_col ? sh.cols : 1;
      std::vector<float> s(static_cast<std::size_t>(n));
      std::vector<std::int32_t> z(static_cast<std::size_t>(n));
      for (index_t k = 0; k < n; ++k) {
        s[std::size_t(k)] = 0.03f * float(k + 1);
        z[std::size_t(k)] = std::int32_t(k % 7) - 3;
      }
      padded<bf16> x(sh.rows, sh.cols, sh.pad);
      x.fill(test::uniform(std::size_t(sh.rows * sh.cols), -4.0f, 4.0f, 23));
      padded<std::int8_t> q(sh.rows, sh.cols, sh.pad);
      padded<bf16> y(sh.rows, sh.cols, sh.pad);
      const quant_params qp{g, s, z};
      quantize(x.cm(), qp, q.m());
      dequantize(q.cm(), qp, y.m());
      int bad = 0;
      for (index_t i = 0; i < sh.rows; ++i)
        for (index_t j = 0; j < sh.cols; ++j) {
          const auto k = std::size_t(group_of(g, i, j));
          if (q(i, j) != ref_quantize<approx::exact, std::int8_t>(to_float(x(i, j)), s[k], z[k])) ++bad;
          if (y(i, j) != to_bf16_rne(float(std::int32_t(q(i, j)) - z[k]) * s[k])) ++bad;
        }
      CHECK(bad == 0);
      CHECK(q.padding_intact());
      CHECK(y.padding_intact());
    }
  }
}

TEST_CASE("int8: round to nearest even at ties, rounding before the zero point, saturation, NaN / Inf") {
  // scale 0.5: x / s = 2x exactly; ties at x = k/2 + 1/4 (63.75 -> 127.5 -> 128: saturates in int8, not uint8)
  const std::vector<float> xs = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f, -1.25f, 1.0f, 63.75f, 64.25f, -64.25f, -64.0f,
                                 1e30f, -1e30f, inf, -inf, qnan, 0.0f, -0.0f};
  const std::vector<int> want_s8 = {0, 2, 2, 0, -2, -2, 2, 127, 127, -128, -128, 127, -128, 127, -128, 0, 0, 0};
  const std::vector<int> want_u8 = {0, 2, 2, 0, 0, 0, 2, 128, 128, 0, 0, 255, 0, 255, 0, 0, 0, 0};
  const index_t n = index_t(xs.size());
  const float s[] = {0.5f};
  std::vector<std::int8_t> q8(xs.size());
  std::vector<std::uint8_t> qu(xs.size());
  quantize(view(xs.data(), 1, n), quant_params{quant_granularity::per_tensor, s, {}}, view(q8.data(), 1, n));
  quantize(view(xs.data(), 1, n), quant_params{quant_granularity::per_tensor, s, {}}, view(qu.data(), 1, n));
  for (std::size_t k = 0; k < xs.size(); ++k) {
    INFO("x = ", xs[k]);
    CHECK(int(q8[k]) == want_s8[k]);
    CHECK(int(qu[k]) == want_u8[k]);
  }
  // zero point 3: q = rne(2x) + 3 (2.5 -> 2 + 3 = 5, not rne(5.5) = 6); NaN -> the zero point
  const float x2[] = {1.25f, 1.75f, -1.25f, qnan, -100.0f, 100.0f};
  const std::int32_t z[] = {3};
  std::int8_t q2[6];
  quantize(view(x2, 1, 6), quant_params{quant_granularity::per_tensor, s, z}, view(q2, 1, 6));
  CHECK(int(q2[0]) == 5);
  CHECK(int(q2[1]) == 7);
  CHECK(int(q2[2]) == 1);
  CHECK(int(q2[3]) == 3);
  CHECK(int(q2[4]) == -128);
  CHECK(int(q2[5]) == 127);
  // dequantize of the extreme codes
  const std::int8_t c[] = {-128, 127, 0};
  float y[3];
  dequantize(view(c, 1, 3), quant_params{quant_granularity::per_tensor, s, z}, view(y, 1, 3));
  CHECK(y[0] == -65.5f);
  CHECK(y[1] == 62.0f);
  CHECK(y[2] == -1.5f);
}

TEST_CASE("int8: compute_quant_params ignores NaN / Inf, all-zero groups get scale 1, tiny ranges 2^-126") {
  const float x[] = {qnan, inf, 2.0f, -4.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1e-39f, -1e-40f, 0.0f, 0.0f};
  float s[3];
  std::int32_t z[3];
  compute_quant_params<std::int8_t>(view(x, 3, 4), quant_mode::symmetric, quant_granularity::per_row, s, z);
  CHECK(s[0] == float(4.0 / 127));
  CHECK(s[1] == 1.0f);
  CHECK(s[2] == std::numeric_limits<float>::min());
  CHECK(z[0] == 0);
  compute_quant_params<std::uint8_t>(view(x, 3, 4), quant_mode::asymmetric, quant_granularity::per_row, s, z);
  CHECK(s[0] == float(6.0 / 255));
  CHECK(z[0] == std::int32_t(std::nearbyint(4.0 / double(s[0]))));  // 170
  CHECK(z[1] == 0);
  // symmetric params with an empty zero-point span
  compute_quant_params<std::int8_t>(view(x, 3, 4), quant_mode::symmetric, quant_granularity::per_tensor,
                                    std::span<float>(s, 1), {});
  CHECK(s[0] == float(4.0 / 127));
}

TEST_CASE_TEMPLATE_DEFINE("requantize: q = sat(rne(P(float(acc), s)) + z), per row / column, bit for bit", P,
                          requant_policies) {
  std::mt19937_64 gen(5);
  for (auto g : {quant_granularity::per_tensor, quant_granularity::per_row, quant_granularity::per_col}) {
    const index_t M = 5, N = 2 * simd::width<> + 3;
    padded<std::int32_t> acc(M, N, 2);
    std::uniform_int_distribution<std::int32_t> d(-300000, 300000);
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) acc(i, j) = d(gen);
    acc(0, 0) = (1 << 24) + 1;  // float(acc) rounds (to 2^24)
    acc(1, 1) = std::numeric_limits<std::int32_t>::min();
    acc(2, 2) = std::numeric_limits<std::int32_t>::max();
    const index_t n = g == quant_granularity::per_row ? M : g == quant_granularity::per_col ? N : 1;
    std::vector<float> s(static_cast<std::size_t>(n));
    std::vector<std::int32_t> z(static_cast<std::size_t>(n));
    for (index_t k = 0; k < n; ++k) {
      s[std::size_t(k)] = 1.0f / float(1500 + 97 * k);
      z[std::size_t(k)] = std::int32_t(k * 13 % 50);
    }
    padded<std::uint8_t> q(M, N, 1);
    padded<std::int8_t> q8(M, N, 0);
    requantize<P>(acc.cm(), quant_params{g, s, z}, q.m());
    requantize<P>(acc.cm(), quant_params{g, s, {}}, q8.m());
    int bad = 0;
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        const auto k = std::size_t(group_of(g, i, j));
        const float t = P::mul(float(acc(i, j)), s[k]);
        if (q(i, j) != std::uint8_t(std::clamp(double(std::nearbyint(t)) + z[k], 0.0, 255.0))) ++bad;
        if (q8(i, j) != std::int8_t(std::clamp(double(std::nearbyint(t)), -128.0, 127.0))) ++bad;
      }
    CHECK(bad == 0);
    CHECK(q.padding_intact());
  }
}
TEST_CASE_TEMPLATE_APPLY(requant_policies, tpp::approx::float_policy_tuple);

// ============================================ fixed point ============================================

constexpr fixed_point_format formats[] = {{1, 15}, {4, 12}, {8, 8}, {16, 0}};

TEST_CASE("fixed point, round to nearest: |error| <= 2^-FL / 2 inside the range, ties even, saturation, exact dequantize") {
  for (const auto f : formats) {
    INFO("<", f.il, ", ", f.fl, ">");
    const double step = std::ldexp(1.0, -f.fl), top = std::ldexp(1.0, f.il - 1) - step, bottom = -std::ldexp(1.0, f.il - 1);
    for (const auto& sh : test::edge_shapes()) {
      padded<float> x(sh.rows, sh.cols, sh.pad);
      x.fill(test::uniform(std::size_t(sh.rows * sh.cols), float(bottom * 1.2), float(top * 1.2), 31));
      padded<std::int16_t> q(sh.rows, sh.cols, sh.pad);
      padded<float> y(sh.rows, sh.cols, sh.pad);
      quantize_fixed(x.cm(), q.m(), f);
      dequantize_fixed(q.cm(), y.m(), f);
      int bad = 0;
      for (index_t i = 0; i < sh.rows; ++i)
        for (index_t j = 0; j < sh.cols; ++j) {
          const double v = x.value(i, j), yv = y.value(i, j);
          if (yv != double(q(i, j)) * step) ++bad;  // dequantize: exactly q 2^-FL
          if (v > top) {
            if (q(i, j) != 32767) ++bad;
          } else if (v < bottom) {
            if (q(i, j) != -32768) ++bad;
          } else if (!(std::abs(yv - v) <= step / 2)) {
            ++bad;
          }
          if (q(i, j) != std::int16_t(std::clamp(std::nearbyint(v / step), -32768.0, 32767.0))) ++bad;
        }
      CHECK(bad == 0);
      CHECK(q.padding_intact());
      CHECK(y.padding_intact());
    }
    // ties to even, specials
    const float t[] = {float(0.5 * step), float(1.5 * step), float(-2.5 * step), inf, -inf, qnan, 1e30f, -0.0f};
    std::int16_t q[8];
    quantize_fixed(view(t, 1, 8), view(q, 1, 8), f);
    CHECK(q[0] == 0);
    CHECK(q[1] == 2);
    CHECK(q[2] == -2);
    CHECK(q[3] == 32767);
    CHECK(q[4] == -32768);
    CHECK(q[5] == 0);
    CHECK(q[6] == 32767);
    CHECK(q[7] == 0);
  }
}

// Stochastic rounding of a whole (M, N) tensor of fixed-point codes.
std::vector<std::int16_t> fixed_sr(const std::vector<float>& x, index_t M, index_t N, fixed_point_format f,
                                   std::uint64_t seed) {
  std::vector<std::int16_t> q(x.size());
  quantize_fixed(view(x.data(), M, N), view(q.data(), M, N), f, rounding::stochastic, {seed, 0, 0});
  return q;
}

TEST_CASE("fixed point, stochastic: a neighbour always, in range, reproducible, seeds differ, tiling-independent") {
  const fixed_point_format f{4, 12};
  const index_t M = 37, N = 3 * simd::width<> + 7;
  auto x = test::uniform(std::size_t(M * N), -9.0f, 9.0f, 41);
  x[0] = inf;
  x[1] = -inf;
  x[2] = qnan;
  x[3] = 7.99999f;  // rounds up past 2^3 - 2^-12 with some probability: saturates
  const auto q = fixed_sr(x, M, N, f, 7);
  int bad = 0;
  for (std::size_t k = 3; k < x.size(); ++k) {
    const double t = double(x[k]) * 4096.0, lo = std::clamp(std::floor(t), -32768.0, 32767.0),
                 hi = std::clamp(std::floor(t) + 1, -32768.0, 32767.0);
    if (q[k] != lo && q[k] != hi) ++bad;
    if (t == std::floor(t) && q[k] != lo) ++bad;  // representable values stay
  }
  CHECK(bad == 0);
  CHECK(q[0] == 32767);
  CHECK(q[1] == -32768);
  CHECK(q[2] == 0);
  CHECK(fixed_sr(x, M, N, f, 7) == q);
  CHECK(fixed_sr(x, M, N, f, 8) != q);
  // tiles with their offsets give the whole tensor's codes, bit for bit (ld = N views into the same buffers)
  std::vector<std::int16_t> tiled(q.size(), 0);
  for (index_t i0 = 0; i0 < M; i0 += 10)
    for (index_t j0 = 0; j0 < N; j0 += 13) {
      const index_t r = std::min<index_t>(10, M - i0), c = std::min<index_t>(13, N - j0);
      quantize_fixed(view(x.data() + i0 * N + j0, r, c, N), view(tiled.data() + i0 * N + j0, r, c, N), f,
                     rounding::stochastic, {7, i0, j0});
    }
  CHECK(tiled == q);
  // the elementwise definition, in double: q = floor((S + r) / 2^16), S = x 2^(FL+16) clamped to
  // [-2^31, 2^31 - 2^16] and truncated toward zero, r = rounding_bits(seed, row, col) < 2^16
  bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      const double t = double(x[std::size_t(i * N + j)]);
      if (std::isnan(t)) continue;
      const double S = std::trunc(std::clamp(t * 0x1p28, -0x1p31, 0x1p31 - 0x1p16));
      const std::uint32_t r = rounding_bits(7, i, j);
      if (r >= 65536u) ++bad;
      if (q[std::size_t(i * N + j)] != std::floor((S + double(r)) / 65536.0)) ++bad;
    }
  CHECK(bad == 0);
}

TEST_CASE("fixed point, stochastic: unbiased within 5 sigma; neighbouring elements independent") {
  // For t = floor(t) + p each draw is floor(t) + Bernoulli(p') with |p' - p| < 2^-16 (t is truncated to 16
  // fractional bits, r is uniform on 2^16 values), so the mean of (q - t) over n independent draws has
  // expectation within 2^-16 and standard deviation sqrt(Σ p'(1 - p')) / n <= sqrt(Σ p(1 - p) + n 2^-16) / n:
  // |mean| <= 5 sqrt(Σ p(1-p) + n 2^-16) / n + 2^-16 (a 5-sigma bound: fails by chance < 1e-6).
  const fixed_point_format f{8, 8};
  const index_t M = 256, N = 256;
  const double n = double(M * N);
  for (const double p : {0.5, 0.25, 0.8125, 0.1}) {
    INFO("frac ", p);
    const std::vector<float> x(static_cast<std::size_t>(M * N), float((37 + p) / 256.0));
    const auto q = fixed_sr(x, M, N, f, 99);
    double mean = 0;
    for (auto v : q) mean += v - (37 + p);
    mean /= n;
    CHECK(std::abs(mean) <= 5 * std::sqrt(p * (1 - p) * n + n * 0x1p-16) / n + 0x1p-16);
    // independence of neighbours: horizontal, vertical, and columns c and c + 16 (whose bits are the two
    // halves of one hash): P(both up) = p'^2, within 2^-15 of p^2; std sqrt(p^2 (1 - p^2) / pairs)
    double both_h = 0, both_v = 0, both_16 = 0, pairs_16 = 0;
    for (index_t i = 0; i + 1 < M; ++i)
      for (index_t j = 0; j + 1 < N; ++j) {
        const bool a = q[std::size_t(i * N + j)] == 38, b = q[std::size_t(i * N + j + 1)] == 38,
                   c = q[std::size_t((i + 1) * N + j)] == 38;
        both_h += a && b;
        both_v += a && c;
        if (j % 32 < 16) {
          both_16 += a && q[std::size_t(i * N + j + 16)] == 38;
          ++pairs_16;
        }
      }
    const double pairs = double((M - 1) * (N - 1));
    const auto tol = [&](double k) { return 5 * std::sqrt(p * p * (1 - p * p) / k) + 0x1p-15 + 0x1p-32; };
    CHECK(std::abs(both_h / pairs - p * p) <= tol(pairs));
    CHECK(std::abs(both_v / pairs - p * p) <= tol(pairs));
    CHECK(std::abs(both_16 / pairs_16 - p * p) <= tol(pairs_16));
  }
  // random values: every element its own p
  const auto x = test::uniform(std::size_t(M * N), -100.0f, 100.0f, 5);
  const auto q = fixed_sr(x, M, N, f, 3);
  double err = 0, var = 0;
  for (std::size_t k = 0; k < x.size(); ++k) {
    const double t = double(x[k]) * 256.0, p = t - std::floor(t);
    err += q[k] - t;
    var += p * (1 - p);
  }
  CHECK(std::abs(err / n) <= 5 * std::sqrt(var + n * 0x1p-16) / n + 0x1p-16);
}

// ============================================ bf16 ============================================

std::vector<bf16> bf16_sr(const std::vector<float>& x, index_t M, index_t N, std::uint64_t seed) {
  std::vector<bf16> y(x.size());
  round_to_bf16(view(x.data(), M, N), view(y.data(), M, N), rounding::stochastic, {seed, 0, 0});
  return y;
}

TEST_CASE("bf16: round to nearest even equals to_bf16_rne for every value class") {
  auto v = test::special_values();
  const auto r = test::any_bits(4096, 3);
  v.insert(v.end(), r.begin(), r.end());
  const index_t n = index_t(v.size());
  std::vector<bf16> y(v.size());
  round_to_bf16(view(v.data(), 1, n), view(y.data(), 1, n));
  int bad = 0;
  for (std::size_t k = 0; k < v.size(); ++k) bad += y[k] != to_bf16_rne(v[k]);
  CHECK(bad == 0);
}

TEST_CASE("bf16, stochastic: one of the two neighbours, specials kept, reproducible, tiling-independent") {
  auto v = test::special_values();
  const auto r = test::any_bits(8000, 4);
  v.insert(v.end(), r.begin(), r.end());
  v.resize(8000);
  const index_t M = 80, N = 100;
  const auto y = bf16_sr(v, M, N, 17);
  int bad = 0;
  for (std::size_t k = 0; k < v.size(); ++k) {
    const float x = v[k], got = to_float(y[k]);
    if (std::isnan(x)) {
      bad += !std::isnan(got) || std::signbit(got) != std::signbit(x);
      continue;
    }
    // the neighbours: truncation toward zero and the next bf16 away from zero (bit patterns are monotonic in
    // magnitude); a bf16 x stays exactly
    const bf16 down = to_bf16_rz(x), upn = bf16::from_bits(std::uint16_t(down.bits + 1));
    const bool exact = to_float(down) == x && std::signbit(to_float(down)) == std::signbit(x);
    if (exact ? y[k] != down : (y[k] != down && y[k] != upn)) ++bad;
    // never Inf from a finite value at or below the largest finite bf16
    if (std::isinf(got) && std::isfinite(x) && std::abs(x) <= 0x1.fep127f) ++bad;
  }
  CHECK(bad == 0);
  CHECK(bf16_sr(v, M, N, 17) == y);
  CHECK(bf16_sr(v, M, N, 18) != y);
  std::vector<bf16> tiled(y.size());
  for (index_t i0 = 0; i0 < M; i0 += 9)
    for (index_t j0 = 0; j0 < N; j0 += 31) {
      const index_t rr = std::min<index_t>(9, M - i0), c = std::min<index_t>(31, N - j0);
      round_to_bf16(view(v.data() + i0 * N + j0, rr, c, N), view(tiled.data() + i0 * N + j0, rr, c, N),
                    rounding::stochastic, {17, i0, j0});
    }
  CHECK(tiled == y);
  // the largest finite bf16 stays; FLT_MAX goes to it or to Inf; -0 stays -0
  const std::vector<float> edge(64 * 3, 0.0f);
  std::vector<float> e = edge;
  for (int k = 0; k < 64; ++k) {
    e[std::size_t(k)] = 0x1.fep127f;
    e[std::size_t(64 + k)] = std::numeric_limits<float>::max();
    e[std::size_t(128 + k)] = -0.0f;
  }
  const auto ye = bf16_sr(e, 3, 64, 1);
  int inf_count = 0;
  for (int k = 0; k < 64; ++k) {
    CHECK(to_float(ye[std::size_t(k)]) == 0x1.fep127f);
    const float g = to_float(ye[std::size_t(64 + k)]);
    CHECK((g == 0x1.fep127f || g == inf));
    inf_count += g == inf;
    CHECK(ye[std::size_t(128 + k)].bits == 0x8000);
  }
  CHECK(inf_count > 0);  // P(Inf) = (2^16 - 1) / 2^16 per draw: all 64 finite has probability 2^-1024 * ...
}

TEST_CASE("bf16, stochastic: unbiased within 5 sigma (the probability is exactly the discarded fraction)") {
  // x = a bf16 value plus f ulps, f = (low 16 bits) / 2^16: each draw rounds up with probability exactly f, so
  // the mean of (y - x) / ulp over n draws is 0 in expectation with standard deviation sqrt(f (1 - f) / n).
  const index_t M = 128, N = 512;
  for (const std::uint32_t low : {0x8000u, 0x4ccdu, 0x0100u, 0xff00u}) {
    for (const std::uint32_t hi : {0x3f800000u, 0xc2c80000u, 0x00010000u}) {  // 1, -100, a denormal
      const float x = std::bit_cast<float>(hi | low);
      const double ulp = double(to_float(bf16::from_bits(std::uint16_t((hi >> 16) + 1)))) - double(std::bit_cast<float>(hi));
      const double f = double(low) / 65536.0;
      INFO("x = ", test::hex(x));
      const auto y = bf16_sr(std::vector<float>(std::size_t(M * N), x), M, N, 1234);
      double mean = 0;
      for (auto b : y) mean += (double(to_float(b)) - double(x)) / ulp;
      mean /= double(M * N);
      CHECK(std::abs(mean) <= 5 * std::sqrt(f * (1 - f) / double(M * N)));
    }
  }
}

// ============================================ block floating point ============================================

// Independent reference (double, frexp): the shared exponent and the value of each element.
struct bfp_ref {
  int e;
  double step;
};
bfp_ref bfp_block_ref(const float* x, index_t len, int m, bool truncate) {
  double mx = 0;
  for (index_t k = 0; k < len; ++k)
    if (std::isfinite(x[k])) mx = std::max(mx, std::abs(double(x[k])));
  int e = m - 150;
  if (mx > 0) {
    int ex = 0;
    std::frexp(mx, &ex);  // mx = f 2^ex, f in [0.5, 1): floor(log2 mx) = ex - 1
    e = std::max(ex - 1, m - 150);
    if (!truncate && std::nearbyint(std::ldexp(mx, m - 1 - e)) >= std::ldexp(1.0, m)) ++e;
  }
  e = std::min(e, 127);
  return {e, std::ldexp(1.0, e - m + 1)};
}

double bfp_value_ref(double x, const bfp_ref& r, int m, bool truncate) {
  if (!std::isfinite(x)) return x;
  const double t = std::abs(x) / r.step;
  const double k = std::min(truncate ? std::floor(t) : std::nearbyint(t), std::ldexp(1.0, m) - 1);
  return std::copysign(k * r.step, x);
}

void check_bfp(index_t rows, index_t cols, index_t pad, bfp_params p, const std::vector<float>& v) {
  INFO(rows, "x", cols, " B ", p.block, " m ", p.mantissa_bits, " truncate ", p.truncate);
  padded<float> x(rows, cols, pad);
  x.fill(v);
  padded<float> y(rows, cols, pad);
  bfp_fake_quant(x.cm(), y.m(), p);
  const index_t nb = bfp_blocks(cols, p.block);
  padded<std::int16_t> code(rows, cols, pad), ex(rows, nb, 1);
  padded<float> dec(rows, cols, pad);
  const bool encodable = p.mantissa_bits <= 15;
  if (encodable) {
    bfp_quantize(x.cm(), code.m(), ex.m(), p);
    bfp_dequantize(code.cm(), ex.cm(), dec.m(), p);
  }
  int bad = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t b = 0; b < nb; ++b) {
      const index_t j0 = b * p.block, len = std::min(p.block, cols - j0);
      std::vector<float> blk(static_cast<std::size_t>(len));
      for (index_t k = 0; k < len; ++k) blk[std::size_t(k)] = x(i, j0 + k);
      const bfp_ref r = bfp_block_ref(blk.data(), len, p.mantissa_bits, p.truncate);
      if (encodable && ex(i, b) != r.e) ++bad;
      for (index_t k = 0; k < len; ++k) {
        const double xv = x.value(i, j0 + k), want = bfp_value_ref(xv, r, p.mantissa_bits, p.truncate);
        const double got = y.value(i, j0 + k);
        if (std::isnan(xv) ? !test::same_bits(y(i, j0 + k), x(i, j0 + k)) : got != want) ++bad;
        // the error bound: half a step (nearest) or under one step (truncate), unless saturated at 2^128
        if (std::isfinite(xv) && r.e < 127 && !(std::abs(got - xv) <= (p.truncate ? r.step : r.step / 2))) ++bad;
        if (std::isfinite(xv) && !p.truncate && r.e == 127 && !(std::abs(got - xv) < r.step)) ++bad;
        if (encodable && std::isfinite(xv)) {
          if (double(dec(i, j0 + k)) != got) ++bad;  // decode(encode) = fake-quant
          if (std::abs(code(i, j0 + k)) > (1 << p.mantissa_bits) - 1) ++bad;
        }
      }
    }
  CHECK(bad == 0);
  CHECK(y.padding_intact());
  CHECK(code.padding_intact());
  CHECK(ex.padding_intact());
}

TEST_CASE("bfp: shared exponent, error <= step / 2 (nearest) or < step (truncate), encode / decode round trip") {
  const index_t W = simd::width<>;
  for (const bool truncate : {false, true})
    for (const int m : {1, 3, 7, 8, 15, 24})
      for (const index_t B : {index_t(1), index_t(3), W, index_t(16), W + 1, index_t(64)}) {
        const index_t rows = 5, cols = 3 * B + 2;
        check_bfp(rows, cols, 2, {B, m, truncate}, spread(static_cast<std::size_t>(rows * cols), 12, std::uint64_t(m * 100 + B)));
      }
}

TEST_CASE("bfp: tiny, denormal, zero, huge and non-finite blocks") {
  for (const bool truncate : {false, true})
    for (const int m : {1, 4, 8, 15}) {
      std::vector<float> v = {0.0f,  -0.0f, 0.0f,          0.0f,            // zeros
                              1e-45f, 3e-45f, -1e-44f, 2e-39f,              // denormals
                              0x1.fffffep127f, -1e38f, 1.0f, 3e38f,         // near FLT_MAX: rounds to 2^128
                              inf,  1.0f,  -2.5f,         qnan,             // non-finite pass through
                              0x1.fep0f, 0x1.ffp0f, 0x1.f8p0f, -0x1.fcp0f}; // maxima that round up at m bits
      check_bfp(1, index_t(v.size()), 0, {4, m, truncate}, v);
      // maxima halfway between two m-bit values, 2 - 2^-m times 2^k for exponent fields of either parity
      // (m = 1: the tie rounds up, the kept bit being the implicit one), no subnormal in the row
      const float t = 2.0f - std::ldexp(1.0f, -m);
      const std::vector<float> ties = {t,      1.0f, 0.0f,  0.25f, -2 * t, 1.0f,  0.5f, 0.0f,
                                       4 * t,  -t,   0.0f,  3.0f,  std::ldexp(t, -126), 0x1p-126f, 0.0f, -0.0f};
      check_bfp(1, index_t(ties.size()), 0, {4, m, truncate}, ties);
    }
  // non-finite codes: Inf -> +-(2^m - 1), NaN -> 0; fake-quant passes them through
  const float x[] = {inf, -inf, qnan, 1.0f};
  std::int8_t c[4];
  std::int16_t e[1];
  bfp_quantize(view(x, 1, 4), view(c, 1, 4), view(e, 1, 1), {4, 5, false});
  CHECK(int(c[0]) == 31);
  CHECK(int(c[1]) == -31);
  CHECK(int(c[2]) == 0);
  CHECK(int(c[3]) == 16);
  CHECK(e[0] == 0);
  float y[4];
  bfp_fake_quant(view(x, 1, 4), view(y, 1, 4), {4, 5, false});
  CHECK(y[0] == inf);
  CHECK(y[1] == -inf);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 1.0f);
}

TEST_CASE("bfp: whole groups of 16 blocks (the transposed reduction), blocks of every kind side by side") {
  // Rows of 17 B + 5 columns: one group of 16 whole blocks (on AVX-512 with B % 16 == 0, their maxima come
  // from one transposing reduction), then a group of one whole and one partial block. Block k of a row is
  // scaled by 2^(9k - 70) and some blocks are special, so neighbouring lanes carry unrelated exponents.
  // With and without the block near FLT_MAX: one such block makes its group round by scaling (the
  // magic-constant rounding needs the step below 2^105), otherwise groups round by the magic constants.
  // Row 0 has a denormal block and Inf beside quiet NaNs; row 1 quiet NaNs only (which rounding by the
  // magic constants passes through), row 2 signalling NaNs beside Inf. Block 13 holds a tie at m bits.
  for (const bool huge : {true, false})
  for (const index_t B : {index_t(16), index_t(48), index_t(64)})
    for (const bool truncate : {false, true})
      for (const int m : {1, 8, 15, 22, 23, 24}) {
        const index_t rows = 3, cols = 17 * B + 5;
        auto v = spread(static_cast<std::size_t>(rows * cols), 3, std::uint64_t(B + m));
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < cols; ++j) {
            float& x = v[std::size_t(i * cols + j)];
            const index_t k = j / B, r = j % B;
            x = std::ldexp(x, int(9 * k) - 70 + int(i));
            if (k == 2) x = 0.0f;                                // all zero
            if (k == 3 && i == 0) x = r % 2 ? 1e-45f : -3e-42f;   // denormal
            const float nan = i == 2 ? nan_s : r % 2 ? nan_q : qnan;
            if (k == 5 && r == 7) x = i == 1 ? nan_q : inf;         // Inf and NaN beside finite values
            if (k == 6 && r == 0) x = nan;
            if (k == 7 && huge) x = r == B - 1 ? 0x1.fffffep127f : 1.0f;  // rounds up to 2^128
            if (k == 10) x = std::ldexp(x, 60);                    // large, with a step below 2^105
            if (k == 11 && r % 4 == 1) x = -x;                     // ties and signs: +-0.5, +-1.5 steps
            if (k == 12) x = float(int(r) - int(B / 2)) * 0.5f;
            if (k == 8) x = r % 3 ? nan : i == 1 ? qnan : -inf;     // no finite value
            if (k == 13) x = r == 3 ? std::ldexp(2.0f - std::ldexp(1.0f, -m), int(i)) : 0.25f;
            if (k == 9 && r == 5) x = 0x1.ffffffp-1f * 2;         // the maximum rounds up at m bits
          }
        check_bfp(rows, cols, 1, {B, m, truncate}, v);
      }
  // bf16 in: the same as its fp32 values
  const index_t rows = 2, cols = 16 * 32;
  padded<bf16> xb(rows, cols, 0);
  xb.fill(spread(std::size_t(rows * cols), 8, 5));
  padded<float> xf(rows, cols, 0), yb(rows, cols, 0), yf(rows, cols, 0);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) xf(i, j) = to_float(xb(i, j));
  bfp_fake_quant(xb.cm(), yb.m(), {32, 6, false});
  bfp_fake_quant(xf.cm(), yf.m(), {32, 6, false});
  int bad = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) bad += !test::same_bits(yb(i, j), yf(i, j));
  CHECK(bad == 0);
}

TEST_CASE("bfp: streaming stores (outputs past tpp::stream_threshold) write what cached stores write") {
  const test::stream_threshold_guard keep;
  int bad = 0;
  for (const index_t B : {index_t(16), index_t(32), index_t(48), index_t(64)})
    for (const bool truncate : {false, true})
      for (const int m : {1, 8, 23}) {
        INFO("B ", B, " m ", m, " truncate ", truncate);
        // rows of 17 blocks and 5 columns (a partial vector at the end), ld a multiple of 16 with padding
        const index_t rows = 3, cols = 17 * B + 5, ld = (cols + 15) / 16 * 16 + 16;
        std::vector<float> xb, sb, cb, ib;
        const mat<float> x = test::aligned_view(xb, rows, cols, ld), ys = test::aligned_view(sb, rows, cols, ld),
                         yc = test::aligned_view(cb, rows, cols, ld), xy = test::aligned_view(ib, rows, cols, ld);
        const auto v = spread(std::size_t(rows * cols), 20, std::uint64_t(B * 31 + m));
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < cols; ++j) x(i, j) = xy(i, j) = v[std::size_t(i * cols + j)];
        x(0, 5) = xy(0, 5) = inf;
        x(1, 7) = xy(1, 7) = nan_s;
        x(2, cols - 2) = xy(2, cols - 2) = nan_q;
        const bfp_params p{B, m, truncate};
        tpp::stream_threshold = 0;  // every output streams where it can
        CHECK(detail::streams(ys, detail::view_bytes(ys)) == detail::streaming_available);
        bfp_fake_quant(mat<const float>(x), ys, p);
        bfp_fake_quant(mat<const float>(xy), xy, p);  // in place
        tpp::stream_threshold = SIZE_MAX;
        bfp_fake_quant(mat<const float>(x), yc, p);
        bad += test::differing(ys, yc) + test::differing(xy, yc);
      }
  CHECK(bad == 0);
}

TEST_CASE("bfp: edge shapes with bf16 in / out, in-place fake-quant") {
  for (const auto& sh : test::edge_shapes()) {
    INFO(test::describe(sh));
    const bfp_params p{5, 4, false};
    padded<bf16> x(sh.rows, sh.cols, sh.pad);
    x.fill(spread(std::size_t(sh.rows * sh.cols), 6, 77));
    padded<bf16> y(sh.rows, sh.cols, sh.pad);
    bfp_fake_quant(x.cm(), y.m(), p);
    padded<float> xf(sh.rows, sh.cols, 0), yf(sh.rows, sh.cols, 0);
    for (index_t i = 0; i < sh.rows; ++i)
      for (index_t j = 0; j < sh.cols; ++j) xf(i, j) = to_float(x(i, j));
    bfp_fake_quant(xf.cm(), yf.m(), p);
    bfp_fake_quant(xf.cm(), xf.m(), p);  // in-place
    int bad = 0;
    for (index_t i = 0; i < sh.rows; ++i)
      for (index_t j = 0; j < sh.cols; ++j) {
        bad += y(i, j) != to_bf16_rne(yf(i, j));  // 4-bit codes are bf16 values: exact
        bad += !test::same_bits(xf(i, j), yf(i, j));
      }
    CHECK(bad == 0);
    CHECK(y.padding_intact());
  }
}

// ============================================ power of two ============================================

// Nearest of {0, +-2^kmin, ..., +-2^kmax} in value, ties to the larger magnitude, then the zero threshold.
double pow2_ref(double x, const pow2_params& p) {
  if (std::isnan(x)) return x;
  const double a = std::abs(x);
  if (a < std::max(double(p.zero_threshold), std::ldexp(1.0, p.kmin - 1))) return std::copysign(0.0, x);
  double best = std::ldexp(1.0, p.kmin);
  for (int k = p.kmin; k <= p.kmax; ++k) {
    const double c = std::ldexp(1.0, k);
    if (std::abs(a - c) <= std::abs(a - best)) best = c;
  }
  return std::copysign(best, x);
}

TEST_CASE("pow2: 0 or +-2^k with k in range, nearest in value, ties up; encode / decode round trip") {
  for (const pow2_params p : {pow2_params{-7, 0, 0.0f}, pow2_params{-3, 5, 0.1f}, pow2_params{-126, -120, 0.0f},
                              pow2_params{2, 2, 0.0f}, pow2_params{-60, 60, 0.0f}}) {
    INFO("k in [", p.kmin, ", ", p.kmax, "] threshold ", p.zero_threshold);
    for (const auto& sh : test::edge_shapes()) {
      padded<float> x(sh.rows, sh.cols, sh.pad);
      auto v = spread(std::size_t(sh.rows * sh.cols), 9, 5);
      for (std::size_t k = 0; k < v.size(); k += 3) v[k] = std::ldexp(v[k], p.kmin);  // near the low end
      x.fill(v);
      padded<float> y(sh.rows, sh.cols, sh.pad), d(sh.rows, sh.cols, sh.pad);
      padded<std::int8_t> c(sh.rows, sh.cols, sh.pad);
      pow2_quantize(x.cm(), y.m(), p);
      pow2_encode(x.cm(), c.m(), p);
      pow2_decode(c.cm(), d.m(), p);
      int bad = 0;
      for (index_t i = 0; i < sh.rows; ++i)
        for (index_t j = 0; j < sh.cols; ++j) {
          const double got = y.value(i, j);
          bad += got != pow2_ref(x.value(i, j), p);
          if (got != 0) {
            int e = 0;
            const double f = std::frexp(std::abs(got), &e);
            bad += f != 0.5 || e - 1 < p.kmin || e - 1 > p.kmax;
            bad += std::abs(c(i, j)) != e - 1 - p.kmin + 1;
          } else {
            bad += c(i, j) != 0;
          }
          bad += d.value(i, j) != got;
        }
      CHECK(bad == 0);
      CHECK(y.padding_intact());
      CHECK(c.padding_intact());
    }
  }
  // streaming stores (outputs past tpp::stream_threshold) write what cached stores write
  {
    const test::stream_threshold_guard keep;
    const index_t rows = 3, cols = 3 * simd::width<> * 4 + 5, ld = (cols + 15) / 16 * 16 + 16;
    std::vector<float> xb, sb, cb;
    const mat<float> x = test::aligned_view(xb, rows, cols, ld), ys = test::aligned_view(sb, rows, cols, ld),
                     yc = test::aligned_view(cb, rows, cols, ld);
    const auto v = spread(std::size_t(rows * cols), 9, 17);
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) x(i, j) = v[std::size_t(i * cols + j)];
    x(1, 3) = nan_q;
    x(2, 4) = -inf;
    const pow2_params ps{-5, 3, 0.01f};
    tpp::stream_threshold = 0;
    CHECK(detail::streams(ys, detail::view_bytes(ys)) == detail::streaming_available);
    pow2_quantize(mat<const float>(x), ys, ps);
    tpp::stream_threshold = SIZE_MAX;
    pow2_quantize(mat<const float>(x), yc, ps);
    CHECK(test::differing(ys, yc) == 0);
  }
  // ties and specials, k in [-2, 3]
  const pow2_params p{-2, 3, 0.0f};
  const float x[] = {1.5f, 1.4999999f, 3.0f, -6.0f, 100.0f, inf, -inf, qnan, 0.125f, 0.1249f, -0.0f, 0.75f};
  const float want[] = {2.0f, 1.0f, 4.0f, -8.0f, 8.0f, 8.0f, -8.0f, qnan, 0.25f, 0.0f, -0.0f, 1.0f};
  float y[12];
  std::int8_t c[12];
  pow2_quantize(view(x, 1, 12), view(y, 1, 12), p);
  pow2_encode(view(x, 1, 12), view(c, 1, 12), p);
  for (int k = 0; k < 12; ++k) {
    INFO("x = ", x[k]);
    if (std::isnan(want[k])) {
      CHECK(std::isnan(y[k]));
      CHECK(c[k] == 0);
    } else {
      CHECK(y[k] == want[k]);
      CHECK(std::signbit(y[k]) == std::signbit(want[k]));
    }
  }
  CHECK(c[0] == 4);   // 2^1: k - kmin + 1 = 1 + 2 + 1
  CHECK(c[3] == -6);  // -2^3
  // decode clamps out-of-range codes
  const std::int8_t cc[] = {0, 1, -6, 100, -128};
  float dd[5];
  pow2_decode(view(cc, 1, 5), view(dd, 1, 5), p);
  CHECK(dd[0] == 0.0f);
  CHECK(dd[1] == 0.25f);
  CHECK(dd[2] == -8.0f);
  CHECK(dd[3] == 8.0f);
  CHECK(dd[4] == -8.0f);
}

// ============================================ binary / ternary ============================================

TEST_CASE("binarize / ternarize: bits, scales vs a double reference, unpack round trip, padding bits zero") {
  for (const index_t cols : {index_t(1), index_t(63), index_t(64), index_t(65), index_t(200), simd::width<> + 1}) {
    INFO("cols ", cols);
    const index_t rows = 4, words = packed_words(cols);
    // values on the grid k / 64, |k| <= 255: every fp32 partial sum of <= 64 terms is exact, so mean|x| is
    // float(exact sum / n) and the ternary threshold comparison is reproducible here exactly
    std::mt19937_64 g{std::uint64_t(cols)};
    std::uniform_int_distribution<int> d(-255, 255);
    padded<float> x(rows, cols, 3);
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) x(i, j) = float(d(g)) / 64.0f;
    x(0, 0) = 0.0f;
    if (cols > 1) x(0, 1) = -0.0f;
    padded<std::uint64_t> bits(rows, words, 1), sgn(rows, words, 0), nz(rows, words, 2);
    std::vector<float> bs(static_cast<std::size_t>(rows)), ts(static_cast<std::size_t>(rows));
    binarize(x.cm(), bits.m(), bs);
    const ternarize_params tp{0.7f};
    ternarize(x.cm(), sgn.m(), nz.m(), ts, tp);
    padded<float> ub(rows, cols, 1), ut(rows, cols, 0);
    unpack_binary(bits.cm(), bs, ub.m());
    unpack_ternary(sgn.cm(), nz.cm(), ts, ut.m());
    int bad = 0;
    for (index_t i = 0; i < rows; ++i) {
      double s = 0;
      for (index_t j = 0; j < cols; ++j) s += std::abs(x.value(i, j));
      const float mean = float(s / double(cols));
      bad += bs[std::size_t(i)] != mean;
      const float delta = tp.threshold * mean;
      double kept = 0;
      index_t count = 0;
      for (index_t j = 0; j < cols; ++j) {
        const float v = x(i, j);
        const bool bit = (bits(i, j / 64) >> (j % 64)) & 1, sbit = (sgn(i, j / 64) >> (j % 64)) & 1,
                   nbit = (nz(i, j / 64) >> (j % 64)) & 1;
        bad += bit != (v < 0);
        bad += nbit != (std::abs(v) > delta);
        bad += sbit != (nbit && v < 0);
        if (nbit) {
          kept += std::abs(v);
          ++count;
        }
        bad += ub(i, j) != (v < 0 ? -mean : mean);
      }
      const float alpha = count ? float(kept / double(count)) : 0.0f;
      bad += ts[std::size_t(i)] != alpha;
      for (index_t j = 0; j < cols; ++j) {
        const float v = x(i, j);
        bad += ut(i, j) != (std::abs(v) > delta ? (v < 0 ? -alpha : alpha) : 0.0f);
      }
      // padding bits of the last word are zero
      const std::uint64_t pad_mask = cols % 64 ? ~((std::uint64_t(1) << (cols % 64)) - 1) : 0;
      bad += (bits(i, words - 1) & pad_mask) != 0;
      bad += (sgn(i, words - 1) & pad_mask) != 0;
      bad += (nz(i, words - 1) & pad_mask) != 0;
    }
    CHECK(bad == 0);
    CHECK(bits.padding_intact());
    CHECK(nz.padding_intact());
  }
}

TEST_CASE("binarize: scale = mean|x| within 64 u of the double mean for arbitrary values; no scale requested") {
  // fp32 sums of at most 64 terms per word: each term passes <= 63 roundings, so |S - S_exact| <= 63u/(1-63u) Σ|x|;
  // the double merge and the final division add < 2u: |scale - mean| <= 66u mean.
  const index_t rows = 3, cols = 1000;
  const auto v = test::uniform(std::size_t(rows * cols), -7.0f, 3.0f, 8);
  std::vector<std::uint64_t> bits(static_cast<std::size_t>(rows * packed_words(cols)));
  std::vector<float> s(rows);
  binarize(view(v.data(), rows, cols), view(bits.data(), rows, packed_words(cols)), s);
  for (index_t i = 0; i < rows; ++i) {
    double m = 0;
    for (index_t j = 0; j < cols; ++j) m += std::abs(double(v[std::size_t(i * cols + j)]));
    m /= double(cols);
    CHECK(std::abs(s[std::size_t(i)] - m) <= 66 * u * m);
  }
  std::vector<std::uint64_t> bits2(bits.size());
  binarize(view(v.data(), rows, cols), view(bits2.data(), rows, packed_words(cols)));
  CHECK(bits2 == bits);
  std::vector<float> ones(static_cast<std::size_t>(rows * cols));
  unpack_binary(view<const std::uint64_t>(bits.data(), rows, packed_words(cols)), {}, view(ones.data(), rows, cols));
  for (std::size_t k = 0; k < v.size(); ++k) CHECK(ones[k] == (v[k] < 0 ? -1.0f : 1.0f));
}

TEST_CASE("binary_gemm: equals the int64 +-1 dot product exactly, K tails masked, edge M / N") {
  std::mt19937_64 g(2024);
  for (const index_t K : {index_t(1), index_t(63), index_t(64), index_t(65), index_t(128), index_t(200), index_t(511),
                          index_t(513), index_t(1000)})
    for (const auto& mn : {std::pair<index_t, index_t>{1, 1}, {1, 7}, {5, 1}, {3, 13}, {7, 5}, {13, 31}, {8, 8}}) {
      const index_t M = mn.first, N = mn.second;
      INFO("M ", M, " N ", N, " K ", K);
      const index_t words = packed_words(K);
      // random bits everywhere, including the padding bits past K (the kernel must mask them)
      std::vector<std::uint64_t> a(static_cast<std::size_t>(M * (words + 1))), b(static_cast<std::size_t>(N * (words + 2)));
      for (auto& w : a) w = g();
      for (auto& w : b) w = g();
      const auto bit = [](const std::vector<std::uint64_t>& m, index_t ld, index_t r, index_t k) {
        return (m[std::size_t(r * ld + k / 64)] >> (k % 64)) & 1;
      };
      padded<std::int32_t> c(M, N, 3);
      binary_gemm(view<const std::uint64_t>(a.data(), M, words, words + 1),
                  view<const std::uint64_t>(b.data(), N, words, words + 2), c.m(), K);
      int bad = 0;
      for (index_t i = 0; i < M; ++i)
        for (index_t j = 0; j < N; ++j) {
          std::int64_t dot = 0;
          for (index_t k = 0; k < K; ++k) dot += (bit(a, words + 1, i, k) ? -1 : 1) * (bit(b, words + 2, j, k) ? -1 : 1);
          bad += c(i, j) != dot;
        }
      CHECK(bad == 0);
      CHECK(c.padding_intact());
    }
  // from binarize: C = sign(X) sign(Y)^T with X (M, K), Y (N, K)
  const index_t M = 9, N = 11, K = 150;
  const auto x = test::uniform(std::size_t(M * K), -1, 1, 1), y = test::uniform(std::size_t(N * K), -1, 1, 2);
  std::vector<std::uint64_t> pa(static_cast<std::size_t>(M * packed_words(K))), pb(static_cast<std::size_t>(N * packed_words(K)));
  binarize(view(x.data(), M, K), view(pa.data(), M, packed_words(K)));
  binarize(view(y.data(), N, K), view(pb.data(), N, packed_words(K)));
  std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
  binary_gemm(view<const std::uint64_t>(pa.data(), M, packed_words(K)), view<const std::uint64_t>(pb.data(), N, packed_words(K)),
              view(c.data(), M, N), K);
  int bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      std::int64_t dot = 0;
      for (index_t k = 0; k < K; ++k)
        dot += (x[std::size_t(i * K + k)] < 0 ? -1 : 1) * (y[std::size_t(j * K + k)] < 0 ? -1 : 1);
      bad += c[std::size_t(i * N + j)] != dot;
    }
  CHECK(bad == 0);
  // K = 0: every dot product is empty
  std::int32_t c0[4] = {9, 9, 9, 9};
  binary_gemm(mat<const std::uint64_t>{nullptr, 2, 0, 0}, mat<const std::uint64_t>{nullptr, 2, 0, 0}, view(c0, 2, 2), 0);
  CHECK(c0[0] == 0);
  CHECK(c0[3] == 0);
}

// ============================================ bad arguments ============================================

TEST_CASE("quantize: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  std::int8_t qb[64] = {};
  std::int16_t q16[64] = {};
  const mat<const float> x{xb, 2, 4, 4};
  const mat<std::int8_t> q{qb, 2, 4, 4};
  const float s1[] = {0.5f}, s2[] = {0.5f, 0.25f};
  const quant_params ok{quant_granularity::per_tensor, s1, {}};
  // sizes, ld, null data, shapes
  CHECK_THROWS_WITH_AS((quantize_kernel<>(-1, 4)), "tpp::quantize: rows is negative (-1)", error);
  CHECK_THROWS_WITH_AS(quantize(mat<const float>{xb, 2, 4, 3}, ok, q), "tpp::quantize: x.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(quantize(mat<const float>{nullptr, 2, 4, 4}, ok, q), "tpp::quantize: x.data is null with nonzero size",
                       error);
  CHECK_THROWS_WITH_AS(quantize(mat<const float>{xb, 2, 3, 4}, ok, q),
                       "tpp::quantize: x shape (2x3) differs from the kernel's (2x4)", error);
  CHECK_THROWS_AS(dequantize(mat<const std::int8_t>{qb, 1, 4, 4}, ok, mat<float>{xb, 2, 4, 4}), error);
  CHECK_THROWS_AS(requantize(mat<const std::int32_t>{nullptr, 2, 4, 4}, ok, q), error);
  // scales: count, value; zero points: count, range
  CHECK_THROWS_WITH_AS(quantize(x, quant_params{quant_granularity::per_row, s1, {}}, q),
                       "tpp::quantize: scale has 1 values; per_row of a 2x4 tensor needs 2", error);
  CHECK_NOTHROW(quantize(x, quant_params{quant_granularity::per_row, s2, {}}, q));
  for (const float bad : {0.0f, -1.0f, inf, qnan, 1e-39f}) {
    const float sb[] = {bad};
    CHECK_THROWS_WITH_AS(quantize(x, quant_params{quant_granularity::per_tensor, sb, {}}, q),
                         doctest::Contains("tpp::quantize: scale[0] ("), error);
    CHECK_THROWS_AS(dequantize(mat<const std::int8_t>{qb, 2, 4, 4}, quant_params{quant_granularity::per_tensor, sb, {}},
                               mat<float>{xb, 2, 4, 4}),
                    error);
  }
  const std::int32_t zbad[] = {128}, z2[] = {0, 0};
  CHECK_THROWS_WITH_AS(quantize(x, quant_params{quant_granularity::per_tensor, s1, zbad}, q),
                       "tpp::quantize: zero_point[0] (128) is outside the code range [-128, 127]", error);
  CHECK_THROWS_WITH_AS(quantize(x, quant_params{quant_granularity::per_tensor, s1, z2}, q),
                       "tpp::quantize: zero_point has 2 values, scale has 1", error);
  const std::int32_t zneg[] = {-1};
  std::uint8_t ub[8];
  CHECK_THROWS_AS(quantize(x, quant_params{quant_granularity::per_tensor, s1, zneg}, mat<std::uint8_t>{ub, 2, 4, 4}), error);
  CHECK_THROWS_WITH_AS(quantize(x, quant_params{quant_granularity(7), s1, {}}, q),
                       "tpp::quantize: granularity has an invalid value (7)", error);
  // aliasing
  CHECK_THROWS_WITH_AS(quantize(x, ok, mat<std::int8_t>{reinterpret_cast<std::int8_t*>(xb), 2, 4, 4}),
                       doctest::Contains("x overlaps q"), error);
  // compute_quant_params
  float s[2];
  std::int32_t z[2];
  CHECK_THROWS_WITH_AS(compute_quant_params<std::uint8_t>(x, quant_mode::symmetric, quant_granularity::per_tensor,
                                                          std::span<float>(s, 1), std::span<std::int32_t>(z, 1)),
                       "tpp::compute_quant_params: mode symmetric needs a signed code type (int8)", error);
  CHECK_THROWS_AS(compute_quant_params<std::int8_t>(x, quant_mode::asymmetric, quant_granularity::per_row,
                                                    std::span<float>(s, 2), {}),
                  error);
  CHECK_THROWS_AS(compute_quant_params<std::int8_t>(x, quant_mode::symmetric, quant_granularity::per_col,
                                                    std::span<float>(s, 2), {}),
                  error);
  CHECK_THROWS_AS(compute_quant_params<std::int8_t>(x, quant_mode(3), quant_granularity::per_tensor, std::span<float>(s, 1), {}),
                  error);
  // fixed point: IL + FL != 16, IL out of range; offsets; rounding
  CHECK_THROWS_WITH_AS(quantize_fixed(x, mat<std::int16_t>{q16, 2, 4, 4}, {4, 11}),
                       "tpp::quantize_fixed: fl (11) + il (4) is not 16", error);
  CHECK_THROWS_WITH_AS(quantize_fixed(x, mat<std::int16_t>{q16, 2, 4, 4}, {0, 16}),
                       "tpp::quantize_fixed: il (0) is outside [1, 16]", error);
  CHECK_THROWS_AS(quantize_fixed(x, mat<std::int16_t>{q16, 2, 4, 4}, {17, -1}), error);
  CHECK_THROWS_AS(dequantize_fixed(mat<const std::int16_t>{q16, 2, 4, 4}, mat<float>{xb, 2, 4, 4}, {8, 9}), error);
  CHECK_THROWS_WITH_AS(quantize_fixed(x, mat<std::int16_t>{q16, 2, 4, 4}, {4, 12}, rounding::stochastic, {1, -1, 0}),
                       "tpp::quantize_fixed: row_offset is negative (-1)", error);
  CHECK_THROWS_AS(quantize_fixed(x, mat<std::int16_t>{q16, 2, 4, 4}, {4, 12}, rounding(5)), error);
  CHECK_THROWS_AS(quantize_fixed(x, mat<std::int16_t>{q16, 2, 5, 5}, {4, 12}), error);
  // bf16
  bf16 hb[8];
  CHECK_THROWS_WITH_AS(round_to_bf16(x, mat<bf16>{hb, 2, 4, 4}, rounding::stochastic, {0, 0, -2}),
                       "tpp::round_to_bf16: col_offset is negative (-2)", error);
  CHECK_THROWS_AS(round_to_bf16(x, mat<bf16>{reinterpret_cast<bf16*>(xb), 2, 4, 4}), error);
  // bfp: block 0, mantissa bits out of range, exponent shape
  std::int16_t e[8];
  CHECK_THROWS_WITH_AS(bfp_fake_quant(x, mat<float>{xb + 16, 2, 4, 4}, {0, 8, false}),
                       "tpp::bfp_fake_quant: block (0) is not >= 1", error);
  CHECK_THROWS_WITH_AS(bfp_fake_quant(x, mat<float>{xb + 16, 2, 4, 4}, {4, 25, false}),
                       "tpp::bfp_fake_quant: mantissa_bits (25) is outside [1, 24]", error);
  CHECK_THROWS_WITH_AS(bfp_quantize(x, q, mat<std::int16_t>{e, 2, 1, 1}, {4, 8, false}),
                       "tpp::bfp_quantize: mantissa_bits (8) is outside [1, 7]", error);
  CHECK_THROWS_WITH_AS(bfp_quantize(x, q, mat<std::int16_t>{e, 2, 2, 2}, {4, 7, false}),
                       "tpp::bfp_quantize: exponent shape (2x2) differs from the blocks' (2x1)", error);
  CHECK_THROWS_AS(bfp_quantize(x, mat<std::int16_t>{q16, 2, 4, 4}, mat<std::int16_t>{e, 2, 1, 1}, {4, 0, false}), error);
  CHECK_THROWS_AS(bfp_dequantize(mat<const std::int16_t>{q16, 2, 4, 4}, mat<const std::int16_t>{e, 2, 1, 1},
                                 mat<float>{xb, 2, 4, 4}, {-3, 8, false}),
                  error);
  // pow2: inverted range, out of range, threshold, encode range
  float y[8];
  CHECK_THROWS_WITH_AS(pow2_quantize(x, mat<float>{y, 2, 4, 4}, {3, 2, 0.0f}), "tpp::pow2_quantize: kmax (2) is below kmin (3)",
                       error);
  CHECK_THROWS_AS(pow2_quantize(x, mat<float>{y, 2, 4, 4}, {-127, 2, 0.0f}), error);
  CHECK_THROWS_AS(pow2_quantize(x, mat<float>{y, 2, 4, 4}, {-1, 128, 0.0f}), error);
  CHECK_THROWS_WITH_AS(pow2_quantize(x, mat<float>{y, 2, 4, 4}, {-1, 2, -0.5f}),
                       doctest::Contains("tpp::pow2_quantize: zero_threshold"), error);
  CHECK_THROWS_AS(pow2_quantize(x, mat<float>{y, 2, 4, 4}, {-1, 2, qnan}), error);
  CHECK_NOTHROW(pow2_quantize(x, mat<float>{y, 2, 4, 4}, {-126, 127, 0.0f}));
  CHECK_THROWS_WITH_AS(pow2_encode(x, q, {-126, 127, 0.0f}), doctest::Contains("exceeds 126"), error);
  CHECK_THROWS_AS(pow2_decode(mat<const std::int8_t>{qb, 2, 4, 4}, mat<float>{y, 2, 4, 4}, {5, 1, 0.0f}), error);
  // binary / ternary / binary GEMM
  std::uint64_t w[8] = {};
  float sc[4];
  CHECK_THROWS_WITH_AS(binarize(x, mat<std::uint64_t>{w, 2, 2, 2}), "tpp::binarize: bits shape (2x2) differs from the packed (2x1)",
                       error);
  CHECK_THROWS_WITH_AS(binarize(x, mat<std::uint64_t>{w, 2, 1, 1}, std::span<float>(sc, 3)),
                       "tpp::binarize: scale has 3 values, not rows (2)", error);
  CHECK_THROWS_WITH_AS(ternarize(x, mat<std::uint64_t>{w, 2, 1, 1}, mat<std::uint64_t>{w + 2, 2, 1, 1}, std::span<float>(sc, 2), {-1.0f}),
                       "tpp::ternarize: threshold (-1.000000) is not finite and >= 0", error);
  CHECK_THROWS_AS(ternarize(x, mat<std::uint64_t>{w, 2, 1, 1}, mat<std::uint64_t>{w + 1, 2, 1, 1}, std::span<float>(sc, 2)),
                  error);  // the planes overlap
  CHECK_THROWS_AS(unpack_binary(mat<const std::uint64_t>{w, 2, 1, 1}, {}, mat<float>{y, 2, 65, 65}), error);
  std::int32_t c[16];
  CHECK_THROWS_WITH_AS((binary_gemm_kernel(2, 2, -1)), "tpp::binary_gemm: k is negative (-1)", error);
  CHECK_THROWS_WITH_AS(binary_gemm(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w, 2, 1, 1},
                                   mat<std::int32_t>{c, 2, 2, 2}, 65),
                       "tpp::binary_gemm: a shape (2x1) differs from the packed (m, words(k)) (2x2)", error);
  CHECK_THROWS_AS(binary_gemm(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w, 3, 1, 1},
                              mat<std::int32_t>{c, 2, 2, 2}, 64),
                  error);
  CHECK_THROWS_AS(binary_gemm(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w, 2, 1, 1},
                              mat<std::int32_t>{nullptr, 2, 2, 2}, 64),
                  error);
}

TEST_CASE("quantize kernels: made once for a shape, called many times with different scales") {
  const quantize_kernel<approx::exact, float, std::int8_t> k(2, 3);
  const float x[] = {1.0f, -2.0f, 3.0f, 0.5f, 0.25f, -0.75f};
  std::int8_t q[6];
  const float s1[] = {0.25f}, s2[] = {1.0f, 0.125f};
  k(view(x, 2, 3), quant_params{quant_granularity::per_tensor, s1, {}}, view(q, 2, 3));
  CHECK(int(q[2]) == 12);
  k(view(x, 2, 3), quant_params{quant_granularity::per_row, s2, {}}, view(q, 2, 3));
  CHECK(int(q[2]) == 3);
  CHECK(int(q[5]) == -6);
  CHECK(k.rows() == 2);
  CHECK(k.cols() == 3);
}

}  // namespace
