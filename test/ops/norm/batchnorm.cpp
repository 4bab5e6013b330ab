// Tests of ops/norm/batchnorm.hpp: batchnorm (moments and range, both axes, relu), forward and backward,
// against double-precision references and central finite differences (tolerances: norm_support.hpp);
// argument checks, overlaps, and the scratch memory (a caller's workspace, nested frames).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/core/workspace.hpp>
#include <tpp/ops/norm/batchnorm.hpp>

#include "approx/sweep.hpp"
#include "ops/elementwise_support.hpp"
#include "ops/norm/norm_support.hpp"
#include "support.hpp"

namespace {

using namespace tpp::test::norm;

// ---- batchnorm references ------------------------------------------------------------------------

// Element k of channel c.
struct channels_of {
  bool by_cols;
  index_t C, n;
  template <class B>
  double operator()(const B& b, index_t c, index_t k) const {
    return by_cols ? b.at(k, c) : b.at(c, k);
  }
};

struct bn_ref_stats {
  std::vector<double> mean, var;
  std::vector<index_t> amax, amin;
};

template <class B>
bn_ref_stats bn_stats_ref(const B& x, channels_of ch, bool range) {
  bn_ref_stats s;
  for (index_t c = 0; c < ch.C; ++c) {
    double m = 0;
    for (index_t k = 0; k < ch.n; ++k) m += ch(x, c, k);
    m /= double(ch.n);
    double v = 0, mx = -1e300, mn = 1e300;
    index_t amx = 0, amn = 0;
    for (index_t k = 0; k < ch.n; ++k) {
      const double d = ch(x, c, k) - m;
      v += d * d;
      if (ch(x, c, k) > mx) mx = ch(x, c, k), amx = k;
      if (ch(x, c, k) < mn) mn = ch(x, c, k), amn = k;
    }
    v /= double(ch.n);
    if (range) {
      const double sd = tpp::range_scale(ch.n) * (mx - mn);
      v = sd * sd;
    }
    s.mean.push_back(m), s.var.push_back(v), s.amax.push_back(amx), s.amin.push_back(amn);
  }
  return s;
}

// The double pipeline for finite differences: L = Σ w y(x), statistics recomputed from x.
template <class B>
double bn_loss(const B& x, channels_of ch, const tpp::batchnorm_params& p, const std::vector<float>& g,
               const std::vector<float>& b, const B& w) {
  const auto s = bn_stats_ref(x, ch, p.estimator == tpp::variance_estimator::range);
  double L = 0;
  for (index_t c = 0; c < ch.C; ++c) {
    const double r = 1.0 / std::sqrt(s.var[static_cast<std::size_t>(c)] + double(p.eps));
    for (index_t k = 0; k < ch.n; ++k) {
      double y = (ch(x, c, k) - s.mean[static_cast<std::size_t>(c)]) * r * g[static_cast<std::size_t>(c)] + b[static_cast<std::size_t>(c)];
      if (p.relu) y = std::max(y, 0.0);
      L += ch(w, c, k) * y;
    }
  }
  return L;
}

// One batchnorm configuration: stats, forward, backward vs the references; finite differences when fd.
template <class P, class TX = float, class TY = float>
void check_batchnorm(index_t rows, index_t cols, index_t pad, tpp::batchnorm_params p, std::uint64_t seed, bool fd,
                     float offset = 0.5f) {
  const bool by_cols = p.axis == tpp::channel_axis::cols;
  const bool range = p.estimator == tpp::variance_estimator::range;
  const channels_of ch{by_cols, by_cols ? cols : rows, by_cols ? rows : cols};
  const index_t C = ch.C, n = ch.n;
  CAPTURE(rows); CAPTURE(cols); CAPTURE(by_cols); CAPTURE(range); CAPTURE(p.relu); CAPTURE(offset);
  auto x = random_buffer<TX>(rows, cols, pad, offset - 2.0f, offset + 2.0f, seed);
  auto dy = random_buffer<TX>(rows, cols, pad, -1.0f, 1.0f, seed + 1);
  const auto gamma = random_vec(C, 0.5f, 2.0f, seed + 2), beta = random_vec(C, -0.5f, 0.5f, seed + 3);
  const tpp::batchnorm_kernel<P, TX, TY, TX, float> k(rows, cols, p);  // x, dy: TX; y: TY; dx: fp32
  std::vector<float> mean(static_cast<std::size_t>(C)), var(static_cast<std::size_t>(C));
  k.stats(x.cm(), mean, var);
  const double e = eps_of<P>(), u = u_fp32;

  // statistics
  const auto rs = bn_stats_ref(x, ch, range);
  for (index_t c = 0; c < C; ++c) {
    double mad = 0;
    for (index_t k2 = 0; k2 < n; ++k2) mad += std::fabs(ch(x, c, k2) - rs.mean[static_cast<std::size_t>(c)]);
    mad /= double(n);
    CHECK(std::fabs(mean[static_cast<std::size_t>(c)] - rs.mean[static_cast<std::size_t>(c)]) <= (D + 4) * u * mad + 2 * u * std::fabs(rs.mean[static_cast<std::size_t>(c)]));
    const double vt = range ? 4 * u * rs.var[static_cast<std::size_t>(c)] : (e + (D + 8) * u) * rs.var[static_cast<std::size_t>(c)] + 1e-30;
    CHECK(std::fabs(var[static_cast<std::size_t>(c)] - rs.var[static_cast<std::size_t>(c)]) <= vt);
  }

  // forward, with tpp's statistics
  buffer<TY> y(rows, cols, pad);
  k.forward(x.cm(), mean, var, gamma, beta, y.m());
  CHECK(y.padding_intact());
  const double uy = std::is_same_v<TY, bf16> ? u_bf16 : u_fp32;
  std::vector<double> rstd(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) rstd[static_cast<std::size_t>(c)] = 1.0 / std::sqrt(double(var[static_cast<std::size_t>(c)]) + double(p.eps));
  for (index_t c = 0; c < C; ++c)
    for (index_t k2 = 0; k2 < n; ++k2) {
      const double d = ch(x, c, k2) - mean[static_cast<std::size_t>(c)], s = gamma[static_cast<std::size_t>(c)] * rstd[static_cast<std::size_t>(c)];
      double ref = d * s + beta[static_cast<std::size_t>(c)];
      if (p.relu) ref = std::max(ref, 0.0);
      const double got = ch(y, c, k2);
      CHECK(std::fabs(got - ref) <= (e + 6 * u) * std::fabs(d * s) + (u + uy) * std::fabs(ref) + 1e-30);
    }

  // backward, with tpp's statistics; relu masks where tpp's own forward value is <= 0
  buffer<float> dx(rows, cols, pad);
  std::vector<float> dgamma(static_cast<std::size_t>(C), 0.25f), dbeta(static_cast<std::size_t>(C), -0.5f);
  k.backward(dy.cm(), x.cm(), mean, var, gamma, beta, dx.m(), dgamma, dbeta);
  CHECK(dx.padding_intact());
  const double acc = p.accumulate ? 1.0 : 0.0;
  for (index_t c = 0; c < C; ++c) {
    const std::size_t cu = static_cast<std::size_t>(c);
    const double r = rstd[cu], gs = gamma[cu] * r;
    double db = 0, dg = 0, adb = 0, adg = 0;
    const auto g_at = [&](index_t k2) { return (p.relu && !(ch(y, c, k2) > 0)) ? 0.0 : ch(dy, c, k2); };
    const auto xh_at = [&](index_t k2) { return (ch(x, c, k2) - mean[cu]) * r; };
    for (index_t k2 = 0; k2 < n; ++k2) {
      db += g_at(k2), dg += g_at(k2) * xh_at(k2);
      adb += std::fabs(g_at(k2)), adg += std::fabs(g_at(k2) * xh_at(k2));
    }
    CHECK(std::fabs(dbeta[cu] - (db + acc * -0.5)) <= D * u * adb + u * 0.5 * acc + 1e-30);
    CHECK(std::fabs(dgamma[cu] - (dg + acc * 0.25)) <= (2 * e + (D + 8) * u) * adg + u * 0.25 * acc + 1e-30);
    double mx = -1e300, mn = 1e300;
    for (index_t k2 = 0; k2 < n; ++k2) mx = std::max(mx, ch(x, c, k2)), mn = std::min(mn, ch(x, c, k2));
    const double rsc = tpp::range_scale(n);
    const double t = gamma[cu] * rsc * rsc * (mx - mn) * r * r * dg;
    const double t_tol = std::fabs(gamma[cu] * rsc * rsc * (mx - mn) * r * r) * (2 * e + (D + 8) * u) * adg;
    for (index_t k2 = 0; k2 < n; ++k2) {
      double ref, mag;
      if (range) {
        ref = gs * (g_at(k2) - db / double(n));
        mag = std::fabs(gs) * (std::fabs(g_at(k2)) + adb / double(n));
        if (k2 == rs.amax[cu] && rs.amax[cu] != rs.amin[cu]) ref -= t;
        if (k2 == rs.amin[cu] && rs.amax[cu] != rs.amin[cu]) ref += t;
      } else {
        ref = gs * (g_at(k2) - db / double(n) - xh_at(k2) * dg / double(n));
        mag = std::fabs(gs) * (std::fabs(g_at(k2)) + adb / double(n) + std::fabs(xh_at(k2)) * adg / double(n));
      }
      const double tol = (3 * e + (D + 8) * u) * mag + u * std::fabs(ref) + (range ? t_tol + u * std::fabs(t) : 0.0) + 1e-30;
      CHECK(std::fabs(ch(dx, c, k2) - ref) <= tol);
    }
  }

  if (!fd) return;
  // finite differences of the double pipeline (exact statistics), for every element
  buffer<double> w(rows, cols);
  const auto wv = random_vec(rows * cols, -1.0f, 1.0f, seed + 4);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) w.v[static_cast<std::size_t>(i * cols + j)] = wv[static_cast<std::size_t>(i * cols + j)];
  buffer<double> xd(rows, cols);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) xd.v[static_cast<std::size_t>(i * cols + j)] = x.at(i, j);
  buffer<float> dyw(rows, cols, pad);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) dyw.set(i, j, float(w.at(i, j)));
  buffer<float> dxw(rows, cols, pad);
  std::vector<float> dgw(static_cast<std::size_t>(C)), dbw(static_cast<std::size_t>(C));
  tpp::batchnorm_params pf = p;
  pf.accumulate = false;
  const tpp::batchnorm_kernel<P> kf(rows, cols, pf);
  std::vector<float> xf(static_cast<std::size_t>(rows * cols));
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) xf[static_cast<std::size_t>(i * cols + j)] = float(xd.at(i, j));
  // w is exactly representable as float, so dy = w is exact and the backward gives dL/dx
  kf.backward(dyw.cm(), mat<const float>{xf.data(), rows, cols, cols}, mean, var, gamma, beta, dxw.m(), dgw, dbw);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      const double x0 = xd.at(i, j), h = 1e-4 * std::max(1.0, std::fabs(x0));
      xd.v[static_cast<std::size_t>(i * cols + j)] = x0 + h;
      const double lp = bn_loss(xd, ch, pf, gamma, beta, w);
      xd.v[static_cast<std::size_t>(i * cols + j)] = x0 - h;
      const double lm = bn_loss(xd, ch, pf, gamma, beta, w);
      xd.v[static_cast<std::size_t>(i * cols + j)] = x0;
      const double fdv = (lp - lm) / (2 * h);
      // scale of the gradient's terms: |gamma rstd| (|w| + Σ|w| / n (1 + |xh|)) for the element's channel
      const index_t c = by_cols ? j : i;
      const double gs = std::fabs(gamma[static_cast<std::size_t>(c)] * rstd[static_cast<std::size_t>(c)]);
      const double tol = 2 * (3 * e + (D + 8) * u) * gs * 8.0 + 1e-6 * gs * 8.0;
      CAPTURE(i); CAPTURE(j);
      CHECK(std::fabs(dxw.at(i, j) - fdv) <= tol);
    }
}

}  // namespace

// ---- batchnorm ----

TEST_CASE("batchnorm: statistics, forward and backward vs double, channels as columns and rows, edge shapes") {
  using tpp::batchnorm_params;
  using tpp::channel_axis;
  using tpp::variance_estimator;
  std::uint64_t seed = 100;
  for (const auto axis : {channel_axis::cols, channel_axis::rows})
    for (const auto est : {variance_estimator::moments, variance_estimator::range})
      for (const bool relu : {false, true}) {
        const batchnorm_params p{1e-5f, axis, est, relu, false};
        // (samples, channels) as (rows, cols) for cols; transposed for rows
        for (const auto& [n, C] : {std::pair<index_t, index_t>{1, 1}, {2, 3}, {7, 17}, {130, 37}, {257, 64}, {1100, 5}}) {
          const index_t rows = axis == channel_axis::cols ? n : C, cols = axis == channel_axis::cols ? C : n;
          check_batchnorm<tpp::approx::exact>(rows, cols, 3, p, seed++, false);
        }
      }
}

TEST_CASE("batchnorm: backward agrees with central finite differences of the double pipeline") {
  using tpp::channel_axis;
  using tpp::variance_estimator;
  std::uint64_t seed = 200;
  for (const auto axis : {channel_axis::cols, channel_axis::rows})
    for (const auto est : {variance_estimator::moments, variance_estimator::range})
      for (const bool relu : {false, true}) {
        const index_t rows = axis == channel_axis::cols ? 19 : 3, cols = axis == channel_axis::cols ? 3 : 19;
        check_batchnorm<tpp::approx::exact>(rows, cols, 0, {1e-5f, axis, est, relu, false}, seed++, true);
      }
}

TEST_CASE("batchnorm: bf16 in and out, accumulate, in-place forward") {
  using tpp::channel_axis;
  check_batchnorm<tpp::approx::exact, bf16, bf16>(70, 33, 2, {1e-5f, channel_axis::cols}, 300, false);
  check_batchnorm<tpp::approx::exact, bf16, float>(9, 70, 0, {1e-5f, channel_axis::rows}, 301, false);
  check_batchnorm<tpp::approx::exact>(40, 20, 1, {1e-3f, channel_axis::cols, tpp::variance_estimator::moments, false, true}, 302, false);
  // in place: y is the very same view as x
  auto x = random_buffer<float>(50, 24, 1, -1.0f, 3.0f, 303);
  auto ref = x;
  std::vector<float> m(24), v(24), g(24, 1.5f), b(24, 0.5f);
  const tpp::batchnorm_kernel<> k(50, 24);
  k.stats(x.cm(), m, v);
  buffer<float> y(50, 24, 1);
  k.forward(ref.cm(), m, v, g, b, y.m());
  k.forward(x.cm(), m, v, g, b, x.m());
  CHECK(x.v == y.v);
}

TEST_CASE("batchnorm: streaming stores (outputs past tpp::stream_threshold) write what cached stores write") {
  using tpp::channel_axis;
  using tpp::variance_estimator;
  namespace test = tpp::test;
  const test::stream_threshold_guard keep;
  // channels as columns: 3 full vectors and a partial one; ld a multiple of 16 with padding
  const index_t rows = 37, cols = 3 * lane_count + 5, ld = (cols + 15) / 16 * 16 + 16;
  std::vector<float> xb, gb, ys_b, yc_b, ds_b, dc_b, di_b;
  const mat<float> x = test::aligned_view(xb, rows, cols, ld), dy = test::aligned_view(gb, rows, cols, ld);
  const mat<float> ys = test::aligned_view(ys_b, rows, cols, ld), yc = test::aligned_view(yc_b, rows, cols, ld);
  const mat<float> ds = test::aligned_view(ds_b, rows, cols, ld), dc = test::aligned_view(dc_b, rows, cols, ld);
  const mat<float> di = test::aligned_view(di_b, rows, cols, ld);
  const auto xv = random_buffer<float>(rows, cols, 0, -1.0f, 3.0f, 350), gv = random_buffer<float>(rows, cols, 0, -1.0f, 1.0f, 351);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) x(i, j) = float(xv.at(i, j)), dy(i, j) = float(gv.at(i, j));
  x(3, 2) = std::numeric_limits<float>::quiet_NaN();  // channel 2's outputs NaN, streamed or not
  const auto nc = static_cast<std::size_t>(cols);
  std::vector<float> mean(nc), var(nc), g(nc, 1.25f), b(nc, 0.25f), dgs(nc), dbs(nc), dgc(nc), dbc(nc);
  int bad = 0;
  for (const auto est : {variance_estimator::moments, variance_estimator::range})
    for (const bool relu : {false, true}) {
      INFO("range ", est == variance_estimator::range, " relu ", relu);
      const tpp::batchnorm_kernel<> k(rows, cols, {1e-5f, channel_axis::cols, est, relu, false});
      k.stats(mat<const float>(x), mean, var);
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) di(i, j) = dy(i, j);
      tpp::stream_threshold = 0;  // every output streams where it can
      CHECK(tpp::detail::streams(ys, tpp::detail::view_bytes(ys)) == tpp::detail::streaming_available);
      k.forward(mat<const float>(x), mean, var, g, b, ys);
      k.backward(mat<const float>(dy), mat<const float>(x), mean, var, g, b, ds, dgs, dbs);
      k.backward(mat<const float>(di), mat<const float>(x), mean, var, g, b, di, dgs, dbs);  // in place
      tpp::stream_threshold = SIZE_MAX;
      k.forward(mat<const float>(x), mean, var, g, b, yc);
      k.backward(mat<const float>(dy), mat<const float>(x), mean, var, g, b, dc, dgc, dbc);
      bad += test::differing(ys, yc) + test::differing(ds, dc) + test::differing(di, dc);
      for (std::size_t c = 0; c < nc; ++c) bad += !test::same_bits(dgs[c], dgc[c]) + !test::same_bits(dbs[c], dbc[c]);
    }
  CHECK(bad == 0);
}

TEST_CASE("batchnorm: statistics stay accurate when the mean is far larger than the spread") {
  // x = 1e4 + U(-1, 1): E[x^2] - E[x]^2 in fp32 would lose every digit of var = 1/3.
  for (const auto axis : {tpp::channel_axis::cols, tpp::channel_axis::rows})
    check_batchnorm<tpp::approx::exact>(axis == tpp::channel_axis::cols ? 3000 : 4,
                                        axis == tpp::channel_axis::cols ? 4 : 3000, 0, {1e-5f, axis}, 400, false, 1e4f);
}

TEST_CASE("batchnorm: statistics are exact-grade even when a block's fp32 mean is far off") {
  // x = 2^24 + 2 ((i + c) mod 4): a block's fp32 sum (up to 2^31, ulp 256) misses by far more than the
  // spread, so only the corrected two-pass update (block mean mb + Σ(x - mb) / nb) gets var = 5 right.
  for (const auto axis : {tpp::channel_axis::cols, tpp::channel_axis::rows}) {
    const bool bc = axis == tpp::channel_axis::cols;
    const index_t n = 1000, C = 3;
    std::vector<float> x(static_cast<std::size_t>(n * C));
    for (index_t k = 0; k < n; ++k)
      for (index_t c = 0; c < C; ++c) x[static_cast<std::size_t>(bc ? k * C + c : c * n + k)] = 16777216.0f + 2.0f * float((k + c) % 4);
    std::vector<float> m(C), v(C);
    tpp::batchnorm_stats(mat<const float>{x.data(), bc ? n : C, bc ? C : n, bc ? C : n}, m, v, {1e-5f, axis});
    for (index_t c = 0; c < C; ++c) {
      double mr = 0, vr = 0;
      for (index_t k = 0; k < n; ++k) mr += 16777216.0 + 2.0 * double((k + c) % 4);
      mr /= double(n);
      for (index_t k = 0; k < n; ++k) vr += std::pow(16777216.0 + 2.0 * double((k + c) % 4) - mr, 2);
      vr /= double(n);
      CHECK(std::fabs(v[static_cast<std::size_t>(c)] - vr) <= 8 * u_fp32 * vr);
      CHECK(std::fabs(m[static_cast<std::size_t>(c)] - mr) <= 2 * u_fp32 * mr);
    }
  }
}

TEST_CASE_TEMPLATE_DEFINE("batchnorm: every policy, both axes and estimators, vs double with P's bound", P, bn_policies) {
  std::uint64_t seed = 500;
  for (const auto axis : {tpp::channel_axis::cols, tpp::channel_axis::rows})
    for (const auto est : {tpp::variance_estimator::moments, tpp::variance_estimator::range})
      check_batchnorm<P>(axis == tpp::channel_axis::cols ? 150 : 21, axis == tpp::channel_axis::cols ? 21 : 150, 1,
                         {1e-5f, axis, est, true, false}, seed++, false);
}
TEST_CASE_TEMPLATE_APPLY(bn_policies, tpp::test::op_policies);

TEST_CASE("batchnorm: range estimate is range_scale(n) (max - min), squared") {
  CHECK(tpp::range_scale(1) == 0.0);
  CHECK(tpp::range_scale(1000) == doctest::Approx(1.0 / (2.0 * std::sqrt(2.0 * std::log(1000.0)))));
  // channel values 0, 1, ..., 99: range 99
  std::vector<float> x(100);
  for (int i = 0; i < 100; ++i) x[static_cast<std::size_t>(i)] = float((i * 37) % 100);
  std::vector<float> m(1), v(1);
  tpp::batchnorm_stats(mat<const float>{x.data(), 100, 1, 1}, m, v, {1e-5f, tpp::channel_axis::cols, tpp::variance_estimator::range});
  const double sd = tpp::range_scale(100) * 99.0;
  CHECK(v[0] == doctest::Approx(sd * sd).epsilon(4 * u_fp32));
  CHECK(m[0] == doctest::Approx(49.5).epsilon(4 * u_fp32));
}

TEST_CASE("batchnorm: the range backward corrects the first maximum and the first minimum (ties)") {
  // channel 0 1 2 3 4 5 6 7: values with the max 3 at samples 1 and 2, the min 0 at 3 and 4
  const std::vector<float> xv = {1, 3, 3, 0, 0, 2, 1.5f, 0.5f}, dyv = {0.3f, -0.2f, 0.7f, 0.1f, -0.9f, 0.4f, 0.25f, -0.5f};
  const index_t n = 8;
  for (const auto axis : {tpp::channel_axis::cols, tpp::channel_axis::rows}) {
    const bool bc = axis == tpp::channel_axis::cols;
    const tpp::batchnorm_params p{1e-5f, axis, tpp::variance_estimator::range};
    const mat<const float> X{xv.data(), bc ? n : 1, bc ? 1 : n, bc ? 1 : n}, DY{dyv.data(), X.rows, X.cols, X.ld};
    std::vector<float> m(1), v(1), g{1.25f}, b{0.0f}, dg(1), db(1), dx(static_cast<std::size_t>(n));
    tpp::batchnorm_stats(X, m, v, p);
    tpp::batchnorm_backward(DY, X, m, v, g, b, mat<float>{dx.data(), X.rows, X.cols, X.ld}, dg, db, p);
    const double r = 1.0 / std::sqrt(double(v[0]) + 1e-5), rsc = tpp::range_scale(n);
    double sdb = 0, sdg = 0;
    for (index_t k = 0; k < n; ++k) sdb += dyv[static_cast<std::size_t>(k)], sdg += dyv[static_cast<std::size_t>(k)] * (xv[static_cast<std::size_t>(k)] - m[0]) * r;
    const double t = 1.25 * rsc * rsc * 3.0 * r * r * sdg;
    for (index_t k = 0; k < n; ++k) {
      double ref = 1.25 * r * (dyv[static_cast<std::size_t>(k)] - sdb / double(n));
      if (k == 1) ref -= t;
      if (k == 3) ref += t;
      CAPTURE(k);
      CHECK(dx[static_cast<std::size_t>(k)] == doctest::Approx(ref).epsilon(1e-5));
    }
  }
}

TEST_CASE("batchnorm: NaN and Inf stay in their channel") {
  for (const auto axis : {tpp::channel_axis::cols, tpp::channel_axis::rows}) {
    const index_t n = 40, C = 5;
    const bool bc = axis == tpp::channel_axis::cols;
    auto x = random_buffer<float>(bc ? n : C, bc ? C : n, 0, -1.0f, 1.0f, 600);
    const auto at = [&](index_t c, index_t k) -> float& { return x.v[static_cast<std::size_t>(bc ? k * C + c : c * n + k)]; };
    at(1, 7) = std::numeric_limits<float>::quiet_NaN();
    at(3, 0) = std::numeric_limits<float>::infinity();
    std::vector<float> m(C), v(C), g(C, 1.0f), b(C, 0.0f), dg(C), db(C);
    const tpp::batchnorm_kernel<> k(x.rows, x.cols, {1e-5f, axis});
    k.stats(x.cm(), m, v);
    buffer<float> y(x.rows, x.cols), dx(x.rows, x.cols);
    k.forward(x.cm(), m, v, g, b, y.m());
    k.backward(x.cm(), x.cm(), m, v, g, b, dx.m(), dg, db);
    for (index_t c = 0; c < C; ++c) {
      const bool bad = c == 1 || c == 3;
      CHECK(std::isnan(v[static_cast<std::size_t>(c)]) == bad);
      CHECK(std::isnan(dg[static_cast<std::size_t>(c)]) == bad);
      for (index_t k2 = 0; k2 < n; ++k2) {
        const float yv = bc ? float(y.at(k2, c)) : float(y.at(c, k2));
        const float dv = bc ? float(dx.at(k2, c)) : float(dx.at(c, k2));
        CHECK(std::isnan(yv) == bad);
        CHECK(std::isnan(dv) == bad);
      }
    }
  }
}

TEST_CASE("batchnorm: bad arguments throw tpp::error naming op and argument") {
  std::vector<float> x(64), y(64), v4(4), v3(3), v16(16);
  const mat<const float> X{x.data(), 16, 4, 4};
  const mat<float> Y{y.data(), 16, 4, 4};
  throws_naming([] { tpp::batchnorm_kernel<>(-1, 4); }, "rows");
  throws_naming([] { tpp::batchnorm_kernel<>(4, 4, {-1.0f}); }, "eps");
  throws_naming([] { tpp::batchnorm_kernel<>(4, 4, {std::numeric_limits<float>::quiet_NaN()}); }, "eps");
  const tpp::batchnorm_kernel<> k(16, 4);
  throws_naming([&] { k.stats(X, v3, v4); }, "mean");
  throws_naming([&] { k.stats(X, v4, v16); }, "var");
  throws_naming([&] { k.stats(mat<const float>{x.data(), 4, 16, 16}, v4, v4); }, "x");
  throws_naming([&] { k.stats(mat<const float>{x.data(), 16, 4, 3}, v4, v4); }, "x.ld");
  throws_naming([&] { k.stats(mat<const float>{nullptr, 16, 4, 4}, v4, v4); }, "x.data");
  throws_naming([&] { k.forward(X, v4, v4, v4, v3, Y); }, "beta");
  throws_naming([&] { k.forward(X, v4, v4, v4, v4, mat<float>{x.data() + 1, 16, 4, 4}); }, "x");  // overlap
  throws_naming([&] { k.backward(X, X, v4, v4, v4, v4, Y, v3, v4); }, "dgamma");
  throws_naming([&] { k.backward(X, X, v4, v4, v4, v4, Y, v4, std::span<float>{}); }, "dbeta");
}

TEST_CASE("batchnorm: an output span or view overlapping another argument throws, naming both") {
  std::vector<float> x(64), y(64), buf(64);
  const mat<const float> X{x.data(), 16, 4, 4};
  const mat<float> Y{y.data(), 16, 4, 4};
  const std::span<float> a(buf.data(), 4), b(buf.data() + 4, 4), c(buf.data() + 8, 4), d(buf.data() + 12, 4),
      e(buf.data() + 16, 4), f(buf.data() + 20, 4);
  const tpp::batchnorm_kernel<> k(16, 4);
  throws_naming([&] { k.stats(X, a, std::span<float>(buf.data() + 2, 4)); }, "mean");         // var over mean
  throws_naming([&] { k.stats(X, std::span<float>(x.data() + 60, 4), b); }, "x");             // mean over x
  throws_naming([&] { k.forward(X, a, b, c, d, mat<float>{buf.data(), 16, 4, 4}); }, "mean");  // y over mean
  throws_naming([&] { k.backward(X, X, a, b, c, d, Y, e, std::span<float>(buf.data() + 9, 4)); }, "gamma");
  throws_naming([&] { k.backward(X, X, a, b, c, d, Y, std::span<float>(y.data(), 4), f); }, "dx");
  throws_naming([&] { k.backward(X, X, a, b, c, d, Y, e, e); }, "dgamma");
  CHECK_NOTHROW(k.backward(X, X, a, b, c, d, Y, e, f));
  // beta is read only with relu: without it, an unread beta may overlap an output
  CHECK_NOTHROW(k.backward(X, X, a, b, c, e, Y, e, f));
  const tpp::batchnorm_kernel<> kr(16, 4, {1e-5f, tpp::channel_axis::cols, tpp::variance_estimator::moments, true});
  throws_naming([&] { kr.backward(X, X, a, b, c, e, Y, e, f); }, "beta");
}

TEST_CASE("batchnorm: a caller's workspace gives the arena's results; too small throws; nested frames") {
  using tpp::channel_axis;
  using tpp::variance_estimator;
  for (const auto axis : {channel_axis::cols, channel_axis::rows})
    for (const auto est : {variance_estimator::moments, variance_estimator::range}) {
      const bool bc = axis == channel_axis::cols;
      const index_t n = 300, C = 21, rows = bc ? n : C, cols = bc ? C : n;
      CAPTURE(bc);
      CAPTURE(est == variance_estimator::range);
      const auto x = random_buffer<float>(rows, cols, 1, -1.0f, 3.0f, 1000), dy = random_buffer<float>(rows, cols, 1, -1.0f, 1.0f, 1001);
      const auto g = random_vec(C, 0.5f, 1.5f, 1002), b = random_vec(C, -0.5f, 0.5f, 1003);
      const tpp::batchnorm_kernel<> k(rows, cols, {1e-5f, axis, est, true});
      const std::size_t need = k.workspace_bytes();
      CHECK(need > 0);
      std::vector<std::byte> mem(need + 1);
      const tpp::workspace ws{mem.data() + 1, need};  // unaligned on purpose
      const auto uc = static_cast<std::size_t>(C);
      std::vector<float> m1(uc), v1(uc), m2(uc), v2(uc), dg1(uc), db1(uc), dg2(uc), db2(uc);
      buffer<float> y1(rows, cols, 1), y2(rows, cols, 1), dx1(rows, cols, 1), dx2(rows, cols, 1);
      k.stats(x.cm(), m1, v1);
      k.forward(x.cm(), m1, v1, g, b, y1.m());
      k.backward(dy.cm(), x.cm(), m1, v1, g, b, dx1.m(), dg1, db1);
      {
        // every call inside a frame that holds a buffer, as a layer's loop around the norm would
        tpp::scratch outer;
        float* held = outer.take<float>(4096);
        std::fill_n(held, 4096, 3.5f);
        k.stats(x.cm(), m2, v2, ws);
        k.forward(x.cm(), m2, v2, g, b, y2.m(), ws);
        k.backward(dy.cm(), x.cm(), m2, v2, g, b, dx2.m(), dg2, db2, ws);
        CHECK(m1 == m2);
        CHECK(v1 == v2);
        CHECK(y1.v == y2.v);
        CHECK(dx1.v == dx2.v);
        CHECK(dg1 == dg2);
        CHECK(db1 == db2);
        k.backward(dy.cm(), x.cm(), m2, v2, g, b, dx2.m(), dg2, db2);  // on the arena, above `held`
        CHECK(std::all_of(held, held + 4096, [](float v) { return v == 3.5f; }));
        CHECK(dx1.v == dx2.v);
      }
      const tpp::workspace small{mem.data() + 1, need - 65};  // short of the regions at any alignment
      throws_naming([&] { k.backward(dy.cm(), x.cm(), m2, v2, g, b, dx2.m(), dg2, db2, small); }, "workspace");
    }
}
