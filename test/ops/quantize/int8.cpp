// ops/quantize/int8.hpp: computed params (symmetric / asymmetric, per tensor / row / column), quantize and
// dequantize against their definitions bit for bit and the round trip within s / 2 plus the policy's error
// (every registry policy), requantize bit for bit; bf16 in / out, edge shapes with padding sentinels; ties,
// saturation, NaN / Inf; the caller's workspace; bad arguments and aliasing (the scales and zero points too).

#include <tpp/approx/registry.hpp>
#include <tpp/ops/quantize/int8.hpp>

#include "approx/sweep.hpp"
#include "ops/quantize/support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::quant;
using test::padded;

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
  compute_quant_params<TQ>(x.cm(), s, z, mode, g);
  ref_params<TQ>(x, mode, g, sref, zref);
  CHECK(s == sref);
  CHECK(z == zref);
  const quant_params qp{g, s, z};
  padded<TQ> q(rows, cols, pad);
  quantize<P>(x.cm(), q.m(), qp);
  padded<float> y(rows, cols, pad + 1);
  dequantize<P>(q.cm(), y.m(), qp);
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
TEST_CASE_TEMPLATE_APPLY(int8_policies, tpp::test::op_policies);

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
      quantize(x.cm(), q.m(), qp);
      dequantize(q.cm(), y.m(), qp);
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
  quantize(view(xs.data(), 1, n), view(q8.data(), 1, n), quant_params{quant_granularity::per_tensor, s, {}});
  quantize(view(xs.data(), 1, n), view(qu.data(), 1, n), quant_params{quant_granularity::per_tensor, s, {}});
  for (std::size_t k = 0; k < xs.size(); ++k) {
    INFO("x = ", xs[k]);
    CHECK(int(q8[k]) == want_s8[k]);
    CHECK(int(qu[k]) == want_u8[k]);
  }
  // zero point 3: q = rne(2x) + 3 (2.5 -> 2 + 3 = 5, not rne(5.5) = 6); NaN -> the zero point
  const float x2[] = {1.25f, 1.75f, -1.25f, qnan, -100.0f, 100.0f};
  const std::int32_t z[] = {3};
  std::int8_t q2[6];
  quantize(view(x2, 1, 6), view(q2, 1, 6), quant_params{quant_granularity::per_tensor, s, z});
  CHECK(int(q2[0]) == 5);
  CHECK(int(q2[1]) == 7);
  CHECK(int(q2[2]) == 1);
  CHECK(int(q2[3]) == 3);
  CHECK(int(q2[4]) == -128);
  CHECK(int(q2[5]) == 127);
  // dequantize of the extreme codes
  const std::int8_t c[] = {-128, 127, 0};
  float y[3];
  dequantize(view(c, 1, 3), view(y, 1, 3), quant_params{quant_granularity::per_tensor, s, z});
  CHECK(y[0] == -65.5f);
  CHECK(y[1] == 62.0f);
  CHECK(y[2] == -1.5f);
}

TEST_CASE("int8: compute_quant_params ignores NaN / Inf, all-zero groups get scale 1, tiny ranges 2^-126") {
  const float x[] = {qnan, inf, 2.0f, -4.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1e-39f, -1e-40f, 0.0f, 0.0f};
  float s[3];
  std::int32_t z[3];
  compute_quant_params<std::int8_t>(view(x, 3, 4), s, z, quant_mode::symmetric, quant_granularity::per_row);
  CHECK(s[0] == float(4.0 / 127));
  CHECK(s[1] == 1.0f);
  CHECK(s[2] == std::numeric_limits<float>::min());
  CHECK(z[0] == 0);
  compute_quant_params<std::uint8_t>(view(x, 3, 4), s, z, quant_mode::asymmetric, quant_granularity::per_row);
  CHECK(s[0] == float(6.0 / 255));
  CHECK(z[0] == std::int32_t(std::nearbyint(4.0 / double(s[0]))));  // 170
  CHECK(z[1] == 0);
  // symmetric params with an empty zero-point span
  compute_quant_params<std::int8_t>(view(x, 3, 4), std::span<float>(s, 1), {}, quant_mode::symmetric,
                                    quant_granularity::per_tensor);
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
    requantize<P>(acc.cm(), q.m(), quant_params{g, s, z});
    requantize<P>(acc.cm(), q8.m(), quant_params{g, s, {}});
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
TEST_CASE_TEMPLATE_APPLY(requant_policies, tpp::test::op_policies);

TEST_CASE("int8: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  std::int8_t qb[64] = {};
  const mat<const float> x{xb, 2, 4, 4};
  const mat<std::int8_t> q{qb, 2, 4, 4};
  const float s1[] = {0.5f}, s2[] = {0.5f, 0.25f};
  const quant_params ok{quant_granularity::per_tensor, s1, {}};
  // sizes, ld, null data, shapes
  CHECK_THROWS_WITH_AS((quantize_kernel<>(-1, 4, ok)), "tpp::quantize: rows is negative (-1)", error);
  CHECK_THROWS_WITH_AS(quantize(mat<const float>{xb, 2, 4, 3}, q, ok), "tpp::quantize: x.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(quantize(mat<const float>{nullptr, 2, 4, 4}, q, ok), "tpp::quantize: x.data is null with nonzero size",
                       error);
  CHECK_THROWS_WITH_AS(quantize(mat<const float>{xb, 2, 3, 4}, q, ok),
                       "tpp::quantize: x shape (2x3) differs from the kernel's (2x4)", error);
  CHECK_THROWS_AS(dequantize(mat<const std::int8_t>{qb, 1, 4, 4}, mat<float>{xb, 2, 4, 4}, ok), error);
  CHECK_THROWS_AS(requantize(mat<const std::int32_t>{nullptr, 2, 4, 4}, q, ok), error);
  // scales: count, value; zero points: count, range
  CHECK_THROWS_WITH_AS(quantize(x, q, quant_params{quant_granularity::per_row, s1, {}}),
                       "tpp::quantize: scale has 1 values; per_row of a 2x4 tensor needs 2", error);
  CHECK_NOTHROW(quantize(x, q, quant_params{quant_granularity::per_row, s2, {}}));
  for (const float bad : {0.0f, -1.0f, inf, qnan, 1e-39f}) {
    const float sb[] = {bad};
    CHECK_THROWS_WITH_AS(quantize(x, q, quant_params{quant_granularity::per_tensor, sb, {}}),
                         doctest::Contains("tpp::quantize: scale[0] ("), error);
    CHECK_THROWS_AS(dequantize(mat<const std::int8_t>{qb, 2, 4, 4}, mat<float>{xb, 2, 4, 4},
                               quant_params{quant_granularity::per_tensor, sb, {}}),
                    error);
  }
  const std::int32_t zbad[] = {128}, z2[] = {0, 0};
  CHECK_THROWS_WITH_AS(quantize(x, q, quant_params{quant_granularity::per_tensor, s1, zbad}),
                       "tpp::quantize: zero_point[0] (128) is outside the code range [-128, 127]", error);
  CHECK_THROWS_WITH_AS(quantize(x, q, quant_params{quant_granularity::per_tensor, s1, z2}),
                       "tpp::quantize: zero_point has 2 values, scale has 1", error);
  const std::int32_t zneg[] = {-1};
  std::uint8_t ub[8];
  CHECK_THROWS_AS(quantize(x, mat<std::uint8_t>{ub, 2, 4, 4}, quant_params{quant_granularity::per_tensor, s1, zneg}), error);
  CHECK_THROWS_WITH_AS(quantize(x, q, quant_params{quant_granularity(7), s1, {}}),
                       "tpp::quantize: granularity has an invalid value (7)", error);
  // aliasing
  CHECK_THROWS_WITH_AS(quantize(x, mat<std::int8_t>{reinterpret_cast<std::int8_t*>(xb), 2, 4, 4}, ok),
                       doctest::Contains("x overlaps q"), error);
  // compute_quant_params
  float s[2];
  std::int32_t z[2];
  CHECK_THROWS_WITH_AS(compute_quant_params<std::uint8_t>(x, std::span<float>(s, 1), std::span<std::int32_t>(z, 1),
                                                          quant_mode::symmetric, quant_granularity::per_tensor),
                       "tpp::compute_quant_params: mode symmetric needs a signed code type (int8)", error);
  CHECK_THROWS_AS(compute_quant_params<std::int8_t>(x, std::span<float>(s, 2), {}, quant_mode::asymmetric,
                                                    quant_granularity::per_row),
                  error);
  CHECK_THROWS_AS(compute_quant_params<std::int8_t>(x, std::span<float>(s, 2), {}, quant_mode::symmetric,
                                                    quant_granularity::per_col),
                  error);
  CHECK_THROWS_AS(compute_quant_params<std::int8_t>(x, std::span<float>(s, 1), {}, quant_mode(3), quant_granularity::per_tensor),
                  error);
  // outputs against the params' scales and zero points, and compute_quant_params' outputs against x and
  // each other
  float sb[8];
  std::fill_n(sb, 8, 0.5f);
  std::int32_t zb[8] = {};
  CHECK_THROWS_WITH_AS(quantize(x, mat<std::int8_t>{reinterpret_cast<std::int8_t*>(sb), 2, 4, 4},
                                quant_params{quant_granularity::per_tensor, std::span<const float>(sb, 1), {}}),
                       doctest::Contains("tpp::quantize: scale overlaps q"), error);
  CHECK_THROWS_WITH_AS(quantize(x, mat<std::int8_t>{reinterpret_cast<std::int8_t*>(zb), 2, 4, 4},
                                quant_params{quant_granularity::per_tensor, s1, std::span<const std::int32_t>(zb, 1)}),
                       doctest::Contains("tpp::quantize: zero_point overlaps q"), error);
  CHECK_THROWS_WITH_AS(dequantize(mat<const std::int8_t>{qb, 2, 4, 4}, mat<float>{sb, 2, 4, 4},
                                  quant_params{quant_granularity::per_row, std::span<const float>(sb + 6, 2), {}}),
                       doctest::Contains("tpp::dequantize: scale overlaps y"), error);
  CHECK_THROWS_WITH_AS(requantize(mat<const std::int32_t>{zb, 2, 4, 4}, mat<std::int8_t>{reinterpret_cast<std::int8_t*>(sb), 2, 4, 4},
                                  quant_params{quant_granularity::per_tensor, std::span<const float>(sb, 1), {}}),
                       doctest::Contains("tpp::requantize: scale overlaps q"), error);
  CHECK_THROWS_WITH_AS(compute_quant_params<std::int8_t>(x, std::span<float>(xb + 5, 1), {}, quant_mode::symmetric,
                                                         quant_granularity::per_tensor),
                       doctest::Contains("tpp::compute_quant_params: x overlaps scale"), error);
  CHECK_THROWS_WITH_AS(compute_quant_params<std::uint8_t>(x, std::span<float>(s, 1), std::span<std::int32_t>(reinterpret_cast<std::int32_t*>(xb), 1),
                                                          quant_mode::asymmetric, quant_granularity::per_tensor),
                       doctest::Contains("tpp::compute_quant_params: x overlaps zero_point"), error);
  CHECK_THROWS_WITH_AS(compute_quant_params<std::uint8_t>(x, std::span<float>(s, 1), std::span<std::int32_t>(reinterpret_cast<std::int32_t*>(s), 1),
                                                          quant_mode::asymmetric, quant_granularity::per_tensor),
                       doctest::Contains("tpp::compute_quant_params: scale overlaps zero_point"), error);
}

TEST_CASE("quantize kernels: made once for a shape and params, called many times as the scales change") {
  const float x[] = {1.0f, -2.0f, 3.0f, 0.5f, 0.25f, -0.75f};
  std::int8_t q[6];
  const float s1[] = {0.25f};
  float s2[] = {0.25f, 0.25f};
  const quantize_kernel<approx::exact, float, std::int8_t> kt(2, 3, {quant_granularity::per_tensor, s1, {}});
  kt(view(x, 2, 3), view(q, 2, 3));
  CHECK(int(q[2]) == 12);
  // the kernel reads its params' spans at every call: refilled scales are used (and checked)
  const quantize_kernel<approx::exact, float, std::int8_t> k(2, 3, {quant_granularity::per_row, s2, {}});
  k(view(x, 2, 3), view(q, 2, 3));
  CHECK(int(q[2]) == 12);
  s2[0] = 1.0f;
  s2[1] = 0.125f;
  k(view(x, 2, 3), view(q, 2, 3));
  CHECK(int(q[2]) == 3);
  CHECK(int(q[5]) == -6);
  CHECK(k.rows() == 2);
  CHECK(k.cols() == 3);
  s2[1] = 0.0f;
  CHECK_THROWS_WITH_AS(k(view(x, 2, 3), view(q, 2, 3)), doctest::Contains("tpp::quantize: scale[1] ("), error);
}

TEST_CASE("int8 kernels: the caller's workspace of workspace_bytes() gives what the thread's arena gives") {
  const index_t M = 6, N = 3 * simd::width<> + 5;
  const auto v = test::uniform(std::size_t(M * N), -3.0f, 3.0f, 71);
  std::vector<float> s(static_cast<std::size_t>(N));
  std::vector<std::int32_t> z(static_cast<std::size_t>(N)), acc(static_cast<std::size_t>(M * N));
  for (index_t j = 0; j < N; ++j) s[std::size_t(j)] = 0.02f * float(j + 1), z[std::size_t(j)] = std::int32_t(j % 9) - 4;
  for (std::size_t k = 0; k < acc.size(); ++k) acc[k] = std::int32_t(k * 7919 % 20001) - 10000;
  const quant_params p{quant_granularity::per_col, s, z};
  const quantize_kernel<approx::exact, float, std::int8_t> kq(M, N, p);
  const dequantize_kernel<approx::exact, std::int8_t, float> kd(M, N, p);
  const requantize_kernel<approx::exact, std::int8_t> kr(M, N, p);
  CHECK(kq.workspace_bytes() >= 2 * std::size_t(N) * sizeof(float));
  CHECK(kd.workspace_bytes() == kq.workspace_bytes());
  CHECK(kr.workspace_bytes() == kq.workspace_bytes());
  std::vector<unsigned char> ws(kq.workspace_bytes() + 1);
  const workspace w{ws.data() + 1, kq.workspace_bytes()};  // any alignment
  std::vector<std::int8_t> q1(acc.size()), q2(acc.size()), r1(acc.size()), r2(acc.size());
  std::vector<float> y1(acc.size()), y2(acc.size());
  kq(view(v.data(), M, N), view(q1.data(), M, N));
  kq(view(v.data(), M, N), view(q2.data(), M, N), w);
  CHECK(q1 == q2);
  kd(view<const std::int8_t>(q1.data(), M, N), view(y1.data(), M, N));
  kd(view<const std::int8_t>(q1.data(), M, N), view(y2.data(), M, N), w);
  CHECK(y1 == y2);
  kr(view<const std::int32_t>(acc.data(), M, N), view(r1.data(), M, N));
  kr(view<const std::int32_t>(acc.data(), M, N), view(r2.data(), M, N), w);
  CHECK(r1 == r2);
  const workspace small{ws.data(), kq.workspace_bytes() / 2};
  CHECK_THROWS_WITH_AS(kq(view(v.data(), M, N), view(q2.data(), M, N), small), doctest::Contains("tpp::quantize: workspace ("),
                       error);
}
}  // namespace
