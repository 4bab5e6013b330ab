// ops/quantize/pow2.hpp: 0 or +-2^k with k in range, nearest in value, ties up, against a search over the
// powers in double; encode / decode round trip; streaming stores; ties and specials; decode clamps; bad
// arguments.

#include <tpp/ops/quantize/pow2.hpp>

#include "ops/quantize/support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::quant;
using test::padded;

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

TEST_CASE("pow2: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  std::int8_t qb[64] = {};
  const mat<const float> x{xb, 2, 4, 4};
  const mat<std::int8_t> q{qb, 2, 4, 4};
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
}

}  // namespace
