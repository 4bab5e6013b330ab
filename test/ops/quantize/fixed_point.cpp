// ops/quantize/fixed_point.hpp: <IL, FL> codes with round to nearest (error bound, ties, saturation, exact
// dequantize) and stochastic rounding (a neighbour always, reproducible, tiling-independent, the elementwise
// definition, unbiased within 5 sigma, neighbours independent); bad arguments.

#include <tpp/ops/quantize/fixed_point.hpp>

#include "ops/quantize/support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::quant;
using test::padded;

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

TEST_CASE("fixed point: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  std::int16_t q16[64] = {};
  const mat<const float> x{xb, 2, 4, 4};
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
}

}  // namespace
