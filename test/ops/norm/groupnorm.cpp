// Tests of ops/norm/groupnorm.hpp: layernorm, groupnorm, RMSNorm, forward and backward, against
// double-precision references and central finite differences (tolerances: norm_support.hpp); argument
// checks, overlaps, and the scratch memory (a caller's workspace, nested frames).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/core/workspace.hpp>
#include <tpp/ops/norm/groupnorm.hpp>

#include "approx/sweep.hpp"
#include "ops/norm/norm_support.hpp"
#include "support.hpp"

namespace {

using namespace tpp::test::norm;

// ---- layernorm / groupnorm / RMSNorm references --------------------------------------------------

struct gn_shape {
  index_t rows, C, S, G;
  index_t cols() const { return C * S; }
};

// Double forward of one (row, group) segment: returns mean and rstd from exact statistics.
struct seg_stats {
  double mean, rstd;
};

template <class B>
seg_stats gn_stats_ref(const B& x, const gn_shape& s, index_t i, index_t g, bool centered, double eps) {
  const index_t len = s.C / s.G * s.S, j0 = g * len;
  double m = 0;
  if (centered) {
    for (index_t j = 0; j < len; ++j) m += x.at(i, j0 + j);
    m /= double(len);
  }
  double v = 0;
  for (index_t j = 0; j < len; ++j) v += (x.at(i, j0 + j) - m) * (x.at(i, j0 + j) - m);
  v /= double(len);
  return {m, 1.0 / std::sqrt(v + eps)};
}

template <class B>
double gn_loss(const B& x, const gn_shape& s, bool centered, double eps, const std::vector<float>& gamma,
               const std::vector<float>& beta, const B& w) {
  double L = 0;
  const index_t len = s.C / s.G * s.S;
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t g = 0; g < s.G; ++g) {
      const auto [m, r] = gn_stats_ref(x, s, i, g, centered, eps);
      for (index_t j = g * len; j < (g + 1) * len; ++j) {
        const index_t c = j / s.S;
        L += w.at(i, j) * ((x.at(i, j) - m) * r * gamma[static_cast<std::size_t>(c)] + (centered ? beta[static_cast<std::size_t>(c)] : 0.0));
      }
    }
  return L;
}

// One groupnorm (Centered) or RMSNorm (!Centered, G = S = 1) configuration.
template <class P, bool Centered, class TX = float, class TY = float>
void check_groupnorm(gn_shape s, index_t pad, std::uint64_t seed, bool fd, float offset = 0.5f, bool accumulate = false) {
  CAPTURE(s.rows); CAPTURE(s.C); CAPTURE(s.S); CAPTURE(s.G); CAPTURE(Centered); CAPTURE(offset);
  const index_t cols = s.cols(), len = s.C / s.G * s.S;
  const tpp::norm_params p{1e-5f, accumulate};
  auto x = random_buffer<TX>(s.rows, cols, pad, offset - 2.0f, offset + 2.0f, seed);
  auto dy = random_buffer<TX>(s.rows, cols, pad, -1.0f, 1.0f, seed + 1);
  const auto gamma = random_vec(s.C, 0.5f, 2.0f, seed + 2), beta = random_vec(s.C, -0.5f, 0.5f, seed + 3);
  const double e = eps_of<P>(), u = u_fp32, uy = std::is_same_v<TY, bf16> ? u_bf16 : u_fp32;
  buffer<TY> y(s.rows, cols, pad);
  buffer<float> dx(s.rows, cols, pad);
  std::vector<float> mean(static_cast<std::size_t>(s.rows * s.G)), rstd(static_cast<std::size_t>(s.rows * s.G));
  std::vector<float> dgamma(static_cast<std::size_t>(s.C), 0.25f), dbeta(static_cast<std::size_t>(s.C), -0.5f);
  if constexpr (Centered) {
    const tpp::groupnorm_kernel<P, TX, TY, TX, float> k(s.rows, s.C, s.S, {s.G, p.eps, p.accumulate});  // dx: fp32
    k.forward(x.cm(), gamma, beta, y.m(), mean, rstd);
    k.backward(dy.cm(), x.cm(), mean, rstd, gamma, dx.m(), dgamma, dbeta);
  } else {
    const tpp::rmsnorm_kernel<P, TX, TY, TX, float> k(s.rows, cols, p);
    k.forward(x.cm(), gamma, y.m(), rstd);
    k.backward(dy.cm(), x.cm(), rstd, gamma, dx.m(), dgamma);
  }
  CHECK(y.padding_intact());
  CHECK(dx.padding_intact());
  std::vector<double> dg(static_cast<std::size_t>(s.C)), db(static_cast<std::size_t>(s.C)), adg(static_cast<std::size_t>(s.C)), adb(static_cast<std::size_t>(s.C));
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t g = 0; g < s.G; ++g) {
      const std::size_t q = static_cast<std::size_t>(i * s.G + g);
      // statistics: mean as for batchnorm; rstd from the variance's bound through 1/sqrt (half of it) + 3u
      const auto [mr, rr] = gn_stats_ref(x, s, i, g, Centered, 1e-5);
      double mad = 0;
      for (index_t j = g * len; j < (g + 1) * len; ++j) mad += std::fabs(x.at(i, j) - mr);
      mad /= double(len);
      if (Centered) CHECK(std::fabs(mean[q] - mr) <= (D + 4) * u * mad + 2 * u * std::fabs(mr));
      CHECK(std::fabs(rstd[q] - rr) <= (0.5 * (e + (D + 8) * u) + 4 * u) * rr);
      const double m = Centered ? double(mean[q]) : 0.0, r = rstd[q];
      double sg = 0, sgx = 0, asg = 0, asgx = 0;
      for (index_t j = g * len; j < (g + 1) * len; ++j) {
        const index_t c = j / s.S;
        const double gv = dy.at(i, j) * gamma[static_cast<std::size_t>(c)], xh = (x.at(i, j) - m) * r;
        sg += gv, sgx += gv * xh, asg += std::fabs(gv), asgx += std::fabs(gv * xh);
        dg[static_cast<std::size_t>(c)] += dy.at(i, j) * xh, adg[static_cast<std::size_t>(c)] += std::fabs(dy.at(i, j) * xh);
        db[static_cast<std::size_t>(c)] += dy.at(i, j), adb[static_cast<std::size_t>(c)] += std::fabs(dy.at(i, j));
      }
      for (index_t j = g * len; j < (g + 1) * len; ++j) {
        const index_t c = j / s.S;
        const double d = x.at(i, j) - m, sc = gamma[static_cast<std::size_t>(c)] * r;
        const double yref = d * sc + (Centered ? beta[static_cast<std::size_t>(c)] : 0.0);
        CHECK(std::fabs(y.at(i, j) - yref) <= (e + 6 * u) * std::fabs(d * sc) + (u + uy) * std::fabs(yref) + 1e-30);
        const double gv = dy.at(i, j) * gamma[static_cast<std::size_t>(c)], xh = d * r, nn = double(len);
        const double ref = r * (gv - (Centered ? sg / nn : 0.0) - xh * sgx / nn);
        const double mag = r * (std::fabs(gv) + asg / nn + std::fabs(xh) * asgx / nn);
        CHECK(std::fabs(dx.at(i, j) - ref) <= (4 * e + (D + 8) * u) * mag + u * std::fabs(ref) + 1e-30);
      }
    }
  const double acc = accumulate ? 1.0 : 0.0;
  for (index_t c = 0; c < s.C; ++c) {
    const std::size_t cu = static_cast<std::size_t>(c);
    // fp32 column sums over up to 64 rows (S = 1) or per-row segment sums (S > 1), then double
    CHECK(std::fabs(dgamma[cu] - (dg[cu] + 0.25 * acc)) <= (2 * e + (D + 72) * u) * adg[cu] + u * 0.25 * acc + 1e-30);
    if (Centered) CHECK(std::fabs(dbeta[cu] - (db[cu] - 0.5 * acc)) <= (D + 64) * u * adb[cu] + u * 0.5 * acc + 1e-30);
  }

  if (!fd) return;
  buffer<double> w(s.rows, cols), xd(s.rows, cols);
  const auto wv = random_vec(s.rows * cols, -1.0f, 1.0f, seed + 4);
  buffer<float> wf(s.rows, cols), dxw(s.rows, cols);
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      w.v[static_cast<std::size_t>(i * cols + j)] = wv[static_cast<std::size_t>(i * cols + j)];
      wf.set(i, j, wv[static_cast<std::size_t>(i * cols + j)]);
      xd.v[static_cast<std::size_t>(i * cols + j)] = x.at(i, j);
    }
  std::vector<float> dg2(static_cast<std::size_t>(s.C)), db2(static_cast<std::size_t>(s.C)), xf(static_cast<std::size_t>(s.rows * cols));
  for (index_t i = 0; i < s.rows * cols; ++i) xf[static_cast<std::size_t>(i)] = float(xd.v[static_cast<std::size_t>(i)]);
  const mat<const float> xm{xf.data(), s.rows, cols, cols};
  if constexpr (Centered)
    tpp::groupnorm_kernel<P>(s.rows, s.C, s.S, {s.G}).backward(wf.cm(), xm, mean, rstd, gamma, dxw.m(), dg2, db2);
  else
    tpp::rmsnorm_kernel<P>(s.rows, cols).backward(wf.cm(), xm, rstd, gamma, dxw.m(), dg2);
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      const double x0 = xd.at(i, j), h = 1e-4 * std::max(1.0, std::fabs(x0));
      xd.v[static_cast<std::size_t>(i * cols + j)] = x0 + h;
      const double lp = gn_loss(xd, s, Centered, 1e-5, gamma, beta, w);
      xd.v[static_cast<std::size_t>(i * cols + j)] = x0 - h;
      const double lm = gn_loss(xd, s, Centered, 1e-5, gamma, beta, w);
      xd.v[static_cast<std::size_t>(i * cols + j)] = x0;
      const double r = rstd[static_cast<std::size_t>(i * s.G + j / len)], scale = r * 2.0 * 4.0;  // |gamma| <= 2, terms <= 4
      CAPTURE(i); CAPTURE(j);
      CHECK(std::fabs(dxw.at(i, j) - (lp - lm) / (2 * h)) <= 2 * (4 * e + (D + 8) * u) * scale + 1e-6 * scale);
    }
}

}  // namespace

// ---- layernorm, groupnorm, RMSNorm ----

TEST_CASE("layernorm, groupnorm, rmsnorm: forward and backward vs double, edge shapes") {
  std::uint64_t seed = 700;
  // layernorm = groupnorm with G = S = 1
  for (const index_t cols : {1, 2, 7, 16, 17, 33, 768, 1500})
    check_groupnorm<tpp::approx::exact, true>({5, cols, 1, 1}, 3, seed++, false);
  for (const gn_shape s : {gn_shape{3, 6, 5, 3}, {2, 8, 49, 4}, {4, 32, 17, 32}, {2, 12, 1, 4}, {1, 4, 300, 1}})
    check_groupnorm<tpp::approx::exact, true>(s, 2, seed++, false);
  for (const index_t cols : {1, 5, 16, 100, 1100}) check_groupnorm<tpp::approx::exact, false>({6, cols, 1, 1}, 1, seed++, false);
  // bf16, accumulate, a large mean
  check_groupnorm<tpp::approx::exact, true, bf16, bf16>({7, 40, 1, 1}, 1, seed++, false);
  check_groupnorm<tpp::approx::exact, true, bf16, float>({3, 8, 9, 2}, 0, seed++, false, 0.5f, true);
  check_groupnorm<tpp::approx::exact, false>({130, 24, 1, 1}, 0, seed++, false, 0.5f, true);  // > 64 rows: flushes
  check_groupnorm<tpp::approx::exact, true>({3, 2000, 1, 1}, 0, seed++, false, 1e4f);
}

TEST_CASE("layernorm, groupnorm, rmsnorm: backward agrees with central finite differences") {
  check_groupnorm<tpp::approx::exact, true>({3, 11, 1, 1}, 0, 800, true);
  check_groupnorm<tpp::approx::exact, true>({2, 6, 4, 3}, 0, 801, true);
  check_groupnorm<tpp::approx::exact, false>({3, 13, 1, 1}, 0, 802, true);
}

TEST_CASE_TEMPLATE_DEFINE("layernorm, groupnorm, rmsnorm: every policy vs double with P's bound", P, ln_policies) {
  check_groupnorm<P, true>({9, 70, 1, 1}, 1, 900, false);
  check_groupnorm<P, true>({3, 8, 25, 4}, 1, 901, false);
  check_groupnorm<P, false>({9, 70, 1, 1}, 1, 902, false);
}
TEST_CASE_TEMPLATE_APPLY(ln_policies, tpp::test::op_policies);

TEST_CASE("layernorm: the kernel and the one-off calls agree; views of const or mutable elements") {
  auto x = random_buffer<float>(6, 20, 0, -1.0f, 1.0f, 950);
  const auto g = random_vec(20, 0.5f, 1.5f, 951), b = random_vec(20, -1.0f, 1.0f, 952);
  buffer<float> y1(6, 20), y2(6, 20);
  std::vector<float> m1(6), r1(6), m2(6), r2(6);
  tpp::layernorm_kernel<>(6, 20).forward(x.m(), g, b, y1.m(), m1, r1);  // a view of mutable elements
  tpp::layernorm_forward(x.cm(), g, b, y2.m(), m2, r2);
  CHECK(y1.v == y2.v);
  tpp::groupnorm_forward(x.cm(), g, b, y2.m(), m2, r2, {.groups = 1});
  CHECK(y1.v == y2.v);
  CHECK(m1 == m2);
}

TEST_CASE("layernorm, groupnorm, rmsnorm: bad arguments throw tpp::error naming op and argument") {
  std::vector<float> x(64), y(64), v4(4), v3(3), v16(16);
  const mat<const float> X{x.data(), 16, 4, 4};
  const mat<float> Y{y.data(), 16, 4, 4};
  throws_naming([] { tpp::groupnorm_kernel<>(2, 6, 3, {4}); }, "groups");
  throws_naming([] { tpp::groupnorm_kernel<>(2, 6, 3, {0}); }, "groups");
  throws_naming([] { tpp::groupnorm_kernel<>(2, 6, -3, {1}); }, "spatial");
  throws_naming([] { tpp::groupnorm_kernel<>(2, index_t(1) << 40, index_t(1) << 40, {1}); }, "channels * spatial");
  const tpp::layernorm_kernel<> ln(16, 4);
  std::vector<float> m16(16), r16(16);
  throws_naming([&] { ln.forward(X, v4, v4, Y, m16, v4); }, "rstd");
  throws_naming([&] { ln.forward(X, v3, v4, Y, m16, r16); }, "gamma");
  throws_naming([&] { ln.backward(X, X, m16, r16, v4, mat<float>{y.data(), 15, 4, 4}, v4, v4); }, "dx");
  const tpp::rmsnorm_kernel<> rn(16, 4);
  throws_naming([&] { rn.forward(X, v4, Y, v4); }, "rstd");
  throws_naming([&] { rn.backward(X, X, r16, v4, Y, v3); }, "dgamma");
  // one-off groupnorm: the channels are gamma's size, which must divide x's columns
  throws_naming([&] { tpp::groupnorm_forward(X, v3, v3, Y, v16, v16); }, "gamma");
  throws_naming([&] { tpp::groupnorm_backward(X, X, v16, v16, v3, Y, v3, v3); }, "gamma");
  throws_naming([&] { tpp::groupnorm_forward(X, v4, v4, Y, v16, v16, {.groups = 3}); }, "groups");
  try {
    ln.forward(X, v3, v4, Y, m16, r16);
  } catch (const tpp::error& e) {
    CHECK(e.op() == "layernorm");
  }
}

TEST_CASE("layernorm, groupnorm, rmsnorm: an output span or view overlapping another argument throws") {
  std::vector<float> x(64), y(64), buf(128);
  const mat<const float> X{x.data(), 16, 4, 4};
  const mat<float> Y{y.data(), 16, 4, 4};
  const std::span<float> g(buf.data(), 4), b(buf.data() + 4, 4), m(buf.data() + 8, 16), r(buf.data() + 24, 16),
      dg(buf.data() + 40, 4), db(buf.data() + 44, 4);
  const tpp::layernorm_kernel<> ln(16, 4);
  CHECK_NOTHROW(ln.forward(X, g, b, Y, m, r));
  throws_naming([&] { ln.forward(X, g, b, Y, m, std::span<float>(buf.data() + 20, 16)); }, "mean");  // rstd over mean
  throws_naming([&] { ln.forward(X, g, b, Y, std::span<float>(buf.data() + 2, 16), r); }, "gamma");  // mean over gamma
  throws_naming([&] { ln.forward(X, g, b, mat<float>{buf.data() + 4, 16, 4, 4}, m, r); }, "beta");   // y over beta
  throws_naming([&] { ln.forward(X, g, b, Y, std::span<float>(y.data(), 16), r); }, "y");           // mean over y
  CHECK_NOTHROW(ln.backward(X, X, m, r, g, Y, dg, db));
  throws_naming([&] { ln.backward(X, X, m, r, g, Y, dg, std::span<float>(buf.data() + 42, 4)); }, "dgamma");
  throws_naming([&] { ln.backward(X, X, m, r, g, Y, std::span<float>(x.data(), 4), db); }, "dy");
  throws_naming([&] { ln.backward(X, X, m, r, g, mat<float>{buf.data() + 24, 16, 4, 4}, dg, db); }, "rstd");
  const tpp::rmsnorm_kernel<> rn(16, 4);
  throws_naming([&] { rn.forward(X, g, Y, std::span<float>(buf.data(), 16)); }, "gamma");
  throws_naming([&] { rn.backward(X, X, r, g, Y, std::span<float>(buf.data() + 30, 4)); }, "rstd");
}

TEST_CASE("layernorm, groupnorm, rmsnorm: a caller's workspace gives the arena's results; too small throws") {
  for (const gn_shape s : {gn_shape{70, 40, 1, 1}, gn_shape{5, 8, 9, 2}}) {
    CAPTURE(s.S);
    const index_t cols = s.cols();
    const auto x = random_buffer<float>(s.rows, cols, 2, -1.0f, 3.0f, 1100), dy = random_buffer<float>(s.rows, cols, 2, -1.0f, 1.0f, 1101);
    const auto g = random_vec(s.C, 0.5f, 1.5f, 1102), b = random_vec(s.C, -0.5f, 0.5f, 1103);
    const tpp::groupnorm_kernel<> k(s.rows, s.C, s.S, {s.G});
    const tpp::rmsnorm_kernel<> rk(s.rows, cols);
    const std::size_t need = std::max(k.workspace_bytes(), rk.workspace_bytes());
    CHECK(k.workspace_bytes() > 0);
    std::vector<std::byte> mem(need + 3);
    const tpp::workspace ws{mem.data() + 3, need};
    const auto uc = static_cast<std::size_t>(s.C), us = static_cast<std::size_t>(s.rows * s.G);
    std::vector<float> m(us), r(us), dg1(uc), db1(uc), dg2(uc), db2(uc);
    buffer<float> y(s.rows, cols, 2), dx1(s.rows, cols, 2), dx2(s.rows, cols, 2);
    k.forward(x.cm(), g, b, y.m(), m, r);
    k.backward(dy.cm(), x.cm(), m, r, g, dx1.m(), dg1, db1);
    {
      tpp::scratch outer;  // a frame held around the calls
      float* held = outer.take<float>(1000);
      std::fill_n(held, 1000, -2.0f);
      k.backward(dy.cm(), x.cm(), m, r, g, dx2.m(), dg2, db2, ws);
      CHECK(dx1.v == dx2.v);
      CHECK(dg1 == dg2);
      CHECK(db1 == db2);
      buffer<float> dx3(s.rows, cols, 2);
      k.backward(dy.cm(), x.cm(), m, r, g, dx3.m(), dg2, db2);  // on the arena, above `held`
      CHECK(dx1.v == dx3.v);
      CHECK(std::all_of(held, held + 1000, [](float v) { return v == -2.0f; }));
    }
    const tpp::workspace small{mem.data() + 3, k.workspace_bytes() - 65};  // short at any alignment
    throws_naming([&] { k.backward(dy.cm(), x.cm(), m, r, g, dx2.m(), dg2, db2, small); }, "workspace");
    if (s.G == 1 && s.S == 1) {
      std::vector<float> rr(static_cast<std::size_t>(s.rows));
      rk.forward(x.cm(), g, y.m(), rr);
      rk.backward(dy.cm(), x.cm(), rr, g, dx1.m(), dg1);
      rk.backward(dy.cm(), x.cm(), rr, g, dx2.m(), dg2, ws);
      CHECK(dx1.v == dx2.v);
      CHECK(dg1 == dg2);
    }
  }
}
