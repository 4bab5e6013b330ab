// dnn/batchnorm.hpp and dnn/layernorm.hpp: the layers over NHWC (rows, c) views against double-precision
// loops, with the tolerances test/ops/norm derives from the ops' arithmetic (norm_support.hpp: e = the
// policy's max relative error, D the longest fp32 sum chain): batchnorm's training forward (statistics, y
// with and without relu), the running statistics after two steps against PyTorch's rule, inference
// forward and backward; layernorm's forward and backward; both backward passes against central
// differences of a double pipeline of L = sum(w y) that recomputes the statistics (twice the tolerance);
// a split over threads, a call from inside a parallel region and a caller's workspace giving the same
// bits; bad shapes and arguments naming the field. oneDNN is not compared: the ops' tests already do
// the arithmetic, and the layers add only the split and the running statistics.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/dnn/batchnorm.hpp>
#include <tpp/dnn/layernorm.hpp>

#include "ops/norm/norm_support.hpp"
#include "support.hpp"

namespace {

using namespace tpp::test::norm;
using tpp::dnn::batchnorm_shape;
using tpp::dnn::layernorm_shape;
using fvec = std::vector<float>;
constexpr double u = u_fp32;

std::size_t z(index_t i) { return static_cast<std::size_t>(i); }

// Mean, biased variance and mean |x - mean| of the n values v(k).
struct moments {
  double mean = 0, var = 0, mad = 0;
};
moments moments_of(index_t n, const std::function<double(index_t)>& v) {
  moments m;
  for (index_t k = 0; k < n; ++k) m.mean += v(k);
  m.mean /= double(n);
  for (index_t k = 0; k < n; ++k) m.var += (v(k) - m.mean) * (v(k) - m.mean), m.mad += std::fabs(v(k) - m.mean);
  m.var /= double(n), m.mad /= double(n);
  return m;
}

// Central differences of loss at every element of x (double), against tpp's gradient g; scale(i, j) bounds
// the gradient's terms. Elements where skip(i, j) are left out (relu kinks); returns how many were checked.
template <class Loss>
int check_fd(buffer<double>& x, const buffer<float>& g, const Loss& loss, const std::function<double(index_t, index_t)>& scale,
             double tol_rel, const std::function<bool(index_t, index_t)>& skip) {
  int checked = 0;
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t j = 0; j < x.cols; ++j) {
      if (skip(i, j)) continue;
      double& xe = x.v[z(i * x.ld + j)];
      const double x0 = xe, h = 1e-4 * std::max(1.0, std::fabs(x0));
      xe = x0 + h;
      const double lp = loss(x);
      xe = x0 - h;
      const double lm = loss(x);
      xe = x0;  // restored
      CAPTURE(i); CAPTURE(j);
      CHECK(std::fabs(g.at(i, j) - (lp - lm) / (2 * h)) <= 2 * tol_rel * scale(i, j) + 1e-6 * scale(i, j));
      ++checked;
    }
  return checked;
}

// ---- batchnorm ----

// Two training steps, inference with the running statistics, then the second step's backward.
template <class P, class T>
void check_batchnorm(index_t rows, index_t C, index_t pad, bool relu, std::uint64_t seed) {
  CAPTURE(rows); CAPTURE(C); CAPTURE(relu);
  const batchnorm_shape s{rows, C, 1e-5f, 0.25f, relu};
  const tpp::dnn::batchnorm<P, T> bn(s);
  const double e = eps_of<P>(), uy = std::is_same_v<T, bf16> ? u_bf16 : 0.0, m = s.momentum;
  const fvec gamma = random_vec(C, 0.5f, 2.0f, seed), beta = random_vec(C, -0.5f, 0.5f, seed + 1);
  fvec rm = random_vec(C, -0.2f, 0.2f, seed + 2), rv = random_vec(C, 0.5f, 1.5f, seed + 3), mean(z(C)), var(z(C));
  std::vector<double> rm_ref(rm.begin(), rm.end()), rv_ref(rv.begin(), rv.end()), rm_mag(z(C)), rv_mag(z(C));
  for (index_t c = 0; c < C; ++c) rm_mag[z(c)] = std::fabs(rm_ref[z(c)]), rv_mag[z(c)] = rv_ref[z(c)];
  buffer<T> x(rows, C, pad), y(rows, C, pad);
  const auto gs = [&](index_t c, double var_c) { return gamma[z(c)] / std::sqrt(var_c + double(s.eps)); };
  // y against P(x - mu, gamma rstd) + beta [relu] with the statistics bn used
  const auto check_y = [&](const buffer<T>& out, const fvec& mu, const fvec& v) {
    for (index_t c = 0; c < C; ++c)
      for (index_t i = 0; i < rows; ++i) {
        const double d = x.at(i, c) - mu[z(c)], sc = gs(c, v[z(c)]);
        const double ref = relu ? std::max(d * sc + beta[z(c)], 0.0) : d * sc + beta[z(c)];
        CHECK(std::fabs(out.at(i, c) - ref) <= (e + 6 * u) * std::fabs(d * sc) + (u + uy) * std::fabs(ref) + 1e-30);
      }
  };
  for (int step = 0; step < 2; ++step) {
    x = random_buffer<T>(rows, C, pad, 0.5f * float(step) - 2.0f, 0.5f * float(step) + 2.0f, seed + 10 + z(step));
    bn.forward_training(x.cm(), gamma, beta, y.m(), mean, var, rm, rv);
    CHECK(y.padding_intact());
    for (index_t c = 0; c < C; ++c) {
      const moments r = moments_of(rows, [&](index_t i) { return x.at(i, c); });
      CHECK(std::fabs(mean[z(c)] - r.mean) <= (D + 4) * u * r.mad + 2 * u * std::fabs(r.mean));
      CHECK(std::fabs(var[z(c)] - r.var) <= (e + (D + 8) * u) * r.var);
      // PyTorch's rule with the unbiased variance, from the statistics bn saved
      const double vu = double(var[z(c)]) * double(rows) / double(rows - 1);
      rm_ref[z(c)] = (1 - m) * rm_ref[z(c)] + m * mean[z(c)], rm_mag[z(c)] += std::fabs(mean[z(c)]);
      rv_ref[z(c)] = (1 - m) * rv_ref[z(c)] + m * vu, rv_mag[z(c)] += vu;
    }
    check_y(y, mean, var);
  }
  for (index_t c = 0; c < C; ++c) {  // two steps, each rounded once to fp32
    CHECK(std::fabs(rm[z(c)] - rm_ref[z(c)]) <= 4 * u * rm_mag[z(c)]);
    CHECK(std::fabs(rv[z(c)] - rv_ref[z(c)]) <= 4 * u * rv_mag[z(c)]);
  }
  buffer<T> yi(rows, C, pad);
  bn.forward_inference(x.cm(), rm, rv, gamma, beta, yi.m());
  CHECK(yi.padding_intact());
  check_y(yi, rm, rv);

  // backward of the second step; relu masks where bn's training y is <= 0
  const auto dy = random_buffer<T>(rows, C, pad, -1.0f, 1.0f, seed + 20);
  buffer<T> dx(rows, C, pad);
  fvec dgamma(z(C), 9.0f), dbeta(z(C), 9.0f);
  bn.backward(dy.cm(), x.cm(), mean, var, gamma, beta, dx.m(), dgamma, dbeta);
  CHECK(dx.padding_intact());
  for (index_t c = 0; c < C; ++c) {
    const double r = 1.0 / std::sqrt(double(var[z(c)]) + double(s.eps)), sc = gamma[z(c)] * r, n = double(rows);
    const auto g_at = [&](index_t i) { return relu && !(y.at(i, c) > 0) ? 0.0 : dy.at(i, c); };
    const auto xh_at = [&](index_t i) { return (x.at(i, c) - mean[z(c)]) * r; };
    double db = 0, dg = 0, adb = 0, adg = 0;
    for (index_t i = 0; i < rows; ++i)
      db += g_at(i), dg += g_at(i) * xh_at(i), adb += std::fabs(g_at(i)), adg += std::fabs(g_at(i) * xh_at(i));
    CHECK(std::fabs(dbeta[z(c)] - db) <= D * u * adb + 1e-30);
    CHECK(std::fabs(dgamma[z(c)] - dg) <= (2 * e + (D + 8) * u) * adg + 1e-30);
    for (index_t i = 0; i < rows; ++i) {
      const double ref = sc * (g_at(i) - db / n - xh_at(i) * dg / n);
      const double mag = std::fabs(sc) * (std::fabs(g_at(i)) + adb / n + std::fabs(xh_at(i)) * adg / n);
      CHECK(std::fabs(dx.at(i, c) - ref) <= (3 * e + (D + 8) * u) * mag + (u + uy) * std::fabs(ref) + 1e-30);
    }
  }
}

// ---- layernorm ----

template <class P, class T>
void check_layernorm(index_t rows, index_t C, index_t pad, std::uint64_t seed) {
  CAPTURE(rows); CAPTURE(C);
  const tpp::dnn::layernorm<P, T> ln(layernorm_shape{rows, C, 1e-5f});
  const double e = eps_of<P>(), uy = std::is_same_v<T, bf16> ? u_bf16 : 0.0, n = double(C);
  const fvec gamma = random_vec(C, 0.5f, 2.0f, seed), beta = random_vec(C, -0.5f, 0.5f, seed + 1);
  const auto x = random_buffer<T>(rows, C, pad, -1.5f, 2.5f, seed + 2), dy = random_buffer<T>(rows, C, pad, -1.0f, 1.0f, seed + 3);
  buffer<T> y(rows, C, pad), dx(rows, C, pad);
  fvec mean(z(rows)), rstd(z(rows)), dgamma(z(C), 9.0f), dbeta(z(C), 9.0f);
  ln.forward(x.cm(), gamma, beta, y.m(), mean, rstd);
  ln.backward(dy.cm(), x.cm(), mean, rstd, gamma, dx.m(), dgamma, dbeta);
  CHECK(y.padding_intact());
  CHECK(dx.padding_intact());
  std::vector<double> dg(z(C)), db(z(C)), adg(z(C)), adb(z(C));
  for (index_t i = 0; i < rows; ++i) {
    const moments mr = moments_of(C, [&](index_t j) { return x.at(i, j); });
    const double rr = 1.0 / std::sqrt(mr.var + 1e-5);
    CHECK(std::fabs(mean[z(i)] - mr.mean) <= (D + 4) * u * mr.mad + 2 * u * std::fabs(mr.mean));
    CHECK(std::fabs(rstd[z(i)] - rr) <= (0.5 * (e + (D + 8) * u) + 4 * u) * rr);
    const double mu = mean[z(i)], r = rstd[z(i)];
    double sg = 0, sgx = 0, asg = 0, asgx = 0;
    for (index_t j = 0; j < C; ++j) {
      const double gv = dy.at(i, j) * gamma[z(j)], xh = (x.at(i, j) - mu) * r;
      sg += gv, sgx += gv * xh, asg += std::fabs(gv), asgx += std::fabs(gv * xh);
      dg[z(j)] += dy.at(i, j) * xh, adg[z(j)] += std::fabs(dy.at(i, j) * xh);
      db[z(j)] += dy.at(i, j), adb[z(j)] += std::fabs(dy.at(i, j));
    }
    for (index_t j = 0; j < C; ++j) {
      const double d = x.at(i, j) - mu, sc = gamma[z(j)] * r, yref = d * sc + beta[z(j)];
      CHECK(std::fabs(y.at(i, j) - yref) <= (e + 6 * u) * std::fabs(d * sc) + (u + uy) * std::fabs(yref) + 1e-30);
      const double gv = dy.at(i, j) * gamma[z(j)], xh = d * r;
      const double ref = r * (gv - sg / n - xh * sgx / n), mag = r * (std::fabs(gv) + asg / n + std::fabs(xh) * asgx / n);
      CHECK(std::fabs(dx.at(i, j) - ref) <= (4 * e + (D + 8) * u) * mag + (u + uy) * std::fabs(ref) + 1e-30);
    }
  }
  // the op's bounds, plus the rounding of each share's sums and of their total
  for (index_t j = 0; j < C; ++j) {
    CHECK(std::fabs(dgamma[z(j)] - dg[z(j)]) <= (2 * e + (D + 74) * u) * adg[z(j)] + 1e-30);
    CHECK(std::fabs(dbeta[z(j)] - db[z(j)]) <= (D + 66) * u * adb[z(j)] + 1e-30);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("dnn::batchnorm, dnn::layernorm: forward and backward vs double with the policy's bound", P,
                   tpp::approx::exact, tpp::approx::mitchell<7>) {
  for (bool relu : {false, true}) {
    check_batchnorm<P, float>(37, 21, 3, relu, 100);    // padded views, a channel tail
    check_batchnorm<P, float>(1024, 40, 0, relu, 200);  // 40960 elements: split over two threads
  }
  check_layernorm<P, float>(29, 37, 2, 300);
  check_layernorm<P, float>(700, 48, 0, 400);  // split over two threads
}

TEST_CASE("dnn::batchnorm, dnn::layernorm: bf16 tensors") {
  check_batchnorm<tpp::approx::exact, bf16>(37, 21, 3, true, 500);
  check_layernorm<tpp::approx::exact, bf16>(29, 37, 2, 600);
}

TEST_CASE("dnn::batchnorm, dnn::layernorm: backward agrees with central differences of sum(w y)") {
  const index_t rows = 24, C = 5;
  const auto x = random_buffer<float>(rows, C, 0, -1.5f, 2.5f, 700);
  const auto w = random_buffer<float>(rows, C, 0, -1.0f, 1.0f, 701);  // dy = w: exact, so backward gives dL/dx
  const fvec gamma = random_vec(C, 0.5f, 2.0f, 702), beta = random_vec(C, -0.5f, 0.5f, 703);
  buffer<double> xd(rows, C);
  for (index_t i = 0; i < rows * C; ++i) xd.v[z(i)] = double(x.v[z(i)]);
  const double tol = 4 * u + (D + 8) * u;
  for (bool relu : {false, true}) {
    CAPTURE(relu);
    const tpp::dnn::batchnorm<> bn(batchnorm_shape{rows, C, 1e-5f, 0.1f, relu});
    fvec mean(z(C)), var(z(C)), rm(z(C)), rv(z(C)), dg(z(C)), db(z(C));
    buffer<float> y(rows, C), dx(rows, C);
    bn.forward_training(x.cm(), gamma, beta, y.m(), mean, var, rm, rv);
    bn.backward(w.cm(), x.cm(), mean, var, gamma, beta, dx.m(), dg, db);
    const auto loss = [&](const buffer<double>& v) {
      double L = 0;
      for (index_t c = 0; c < C; ++c) {
        const moments mc = moments_of(rows, [&](index_t i) { return v.at(i, c); });
        for (index_t i = 0; i < rows; ++i) {
          const double yv = (v.at(i, c) - mc.mean) / std::sqrt(mc.var + 1e-5) * gamma[z(c)] + beta[z(c)];
          L += w.at(i, c) * (relu ? std::max(yv, 0.0) : yv);
        }
      }
      return L;
    };
    // a channel with a pre-activation near 0 has a relu kink within the perturbation: left out
    std::vector<bool> kink(z(C), false);
    for (index_t c = 0; c < C; ++c)
      for (index_t i = 0; i < rows; ++i) {
        const double pre = (x.at(i, c) - mean[z(c)]) * gamma[z(c)] / std::sqrt(double(var[z(c)]) + 1e-5) + beta[z(c)];
        kink[z(c)] = kink[z(c)] || (relu && std::fabs(pre) < 1e-2);
      }
    const int checked = check_fd(xd, dx, loss, [&](index_t, index_t c) { return 8.0 * gamma[z(c)] / std::sqrt(double(var[z(c)]) + 1e-5); },
                                 tol, [&](index_t, index_t c) { return bool(kink[z(c)]); });
    CHECK(checked >= rows * (C - 2));
  }
  const tpp::dnn::layernorm<> ln(layernorm_shape{rows, C, 1e-5f});
  fvec mean(z(rows)), rstd(z(rows)), dg(z(C)), db(z(C));
  buffer<float> y(rows, C), dx(rows, C);
  ln.forward(x.cm(), gamma, beta, y.m(), mean, rstd);
  ln.backward(w.cm(), x.cm(), mean, rstd, gamma, dx.m(), dg, db);
  const auto loss = [&](const buffer<double>& v) {
    double L = 0;
    for (index_t i = 0; i < rows; ++i) {
      const moments mr = moments_of(C, [&](index_t j) { return v.at(i, j); });
      for (index_t j = 0; j < C; ++j) L += w.at(i, j) * ((v.at(i, j) - mr.mean) / std::sqrt(mr.var + 1e-5) * gamma[z(j)] + beta[z(j)]);
    }
    return L;
  };
  CHECK(check_fd(xd, dx, loss, [&](index_t i, index_t) { return 16.0 * rstd[z(i)]; }, 4 * u + tol,
                 [](index_t, index_t) { return false; }) == rows * C);
}

TEST_CASE("dnn::batchnorm, dnn::layernorm: inside a parallel region and with a caller's workspace, the same bits") {
  const index_t rows = 1024, C = 40;  // two shares outside a parallel region with two threads
  const auto x = random_buffer<float>(rows, C, 0, -2.0f, 2.0f, 800), dy = random_buffer<float>(rows, C, 0, -1.0f, 1.0f, 801);
  const fvec gamma = random_vec(C, 0.5f, 2.0f, 802), beta = random_vec(C, -0.5f, 0.5f, 803);
  const tpp::dnn::batchnorm<tpp::approx::mitchell<7>> bn(batchnorm_shape{rows, C, 1e-5f, 0.1f, true});
  const tpp::dnn::layernorm<tpp::approx::mitchell<7>> ln(layernorm_shape{rows, C, 1e-5f});
  // every output of both layers, in one vector per run (layernorm's dgamma, dbeta last)
  const auto run = [&](bool with_ws, std::size_t shrink) {
    fvec out(z(5 * rows * C + 8 * C + 2 * rows));
    float* o = out.data();
    const auto take = [&](index_t n) { return std::span<float>(std::exchange(o, o + n), z(n)); };
    const auto view = [&] { return mat<float>{take(rows * C).data(), rows, C, C}; };
    std::vector<std::byte> mem(std::max(bn.workspace_bytes(), ln.workspace_bytes()) + 1);
    const auto ws = [&](std::size_t need) { return with_ws ? tpp::workspace{mem.data() + 1, need - shrink} : tpp::workspace{}; };
    const auto mean = take(C), var = take(C), rm = take(C), rv = take(C), dg = take(C), db = take(C);
    const auto lm = take(rows), lr = take(rows);
    const mat<float> y = view(), yi = view(), dx = view(), ly = view(), ldx = view();
    const auto ldg = take(C), ldb = take(C);
    bn.forward_training(x.cm(), gamma, beta, y, mean, var, rm, rv, ws(bn.workspace_bytes()));
    bn.forward_inference(x.cm(), rm, rv, gamma, beta, yi, ws(bn.workspace_bytes()));
    bn.backward(dy.cm(), x.cm(), mean, var, gamma, beta, dx, dg, db, ws(bn.workspace_bytes()));
    ln.forward(x.cm(), gamma, beta, ly, lm, lr);
    ln.backward(dy.cm(), x.cm(), lm, lr, gamma, ldx, ldg, ldb, ws(ln.workspace_bytes()));
    return out;
  };
  const fvec ref = run(false, 0);
  CHECK(run(true, 0) == ref);
  CHECK(tpp::test::error_argument([&] { run(true, 65); }) == "workspace");
  int diff = 0;
#pragma omp parallel for reduction(+ : diff)
  for (int t = 0; t < 2; ++t) {
    const fvec got = run(t == 1, 0);  // one share each; layernorm's dgamma / dbeta are then one share's sums
    for (std::size_t k = 0; k < ref.size(); ++k)
      diff += !(got[k] == ref[k] || (k >= ref.size() - 2 * z(C) && std::fabs(got[k] - ref[k]) <= 1e-4));
  }
  CHECK(diff == 0);
}

TEST_CASE("dnn::batchnorm, dnn::layernorm: bad shapes and arguments throw tpp::error naming them") {
  using tpp::test::error_argument;
  const auto bn_with = [](auto edit) {
    return [edit] {
      batchnorm_shape s{8, 4};
      edit(s);
      tpp::dnn::batchnorm<> b(s);
    };
  };
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.rows = 0; })) == "rows");
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.c = -2; })) == "c");
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.eps = 0; })) == "eps");
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.eps = NAN; })) == "eps");
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.momentum = 1.5f; })) == "momentum");
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.momentum = NAN; })) == "momentum");
  CHECK(error_argument(bn_with([](batchnorm_shape& s) { s.rows = index_t(1) << 40, s.c = index_t(1) << 40; })) == "rows");
  CHECK(error_argument(bn_with([](batchnorm_shape&) {})) == "(no error)");
  CHECK(error_argument([] { tpp::dnn::layernorm<> l(layernorm_shape{3, 0}); }) == "c");
  CHECK(error_argument([] { tpp::dnn::layernorm<> l(layernorm_shape{3, 4, -1.0f}); }) == "eps");

  const tpp::dnn::batchnorm<> bn(batchnorm_shape{8, 4});
  fvec x(32), y(32), big(64), g(4), b(4), m(4), v(4), rm(4), rv(4), s3(3);
  const mat<const float> X{x.data(), 8, 4, 4};
  const mat<float> Y{y.data(), 8, 4, 4};
  const auto train = [&](mat<const float> xx, mat<float> yy, std::span<float> mm, std::span<float> rvv, std::span<const float> gg) {
    return error_argument([&] { bn.forward_training(xx, gg, b, yy, mm, v, rm, rvv); });
  };
  CHECK(train(X, Y, m, rv, g) == "(no error)");
  CHECK(train({x.data(), 7, 4, 4}, Y, m, rv, g) == "x");
  CHECK(train(X, {y.data(), 8, 4, 3}, m, rv, g) == "y.ld");
  CHECK(train(X, Y, m, rv, s3) == "gamma");
  CHECK(train(X, Y, m, std::span<float>(s3), g) == "running_var");
  CHECK(train(X, {x.data(), 8, 4, 4}, m, rv, g) == "x");  // y over x
  CHECK(train(X, Y, rm, rv, g) == "running_mean");       // mean over running_mean
  CHECK(error_argument([&] { tpp::dnn::batchnorm<>(batchnorm_shape{1, 4}).forward_training(
                               {x.data(), 1, 4, 4}, g, b, {y.data(), 1, 4, 4}, m, v, rm, rv); }) == "rows");
  CHECK(error_argument([&] { bn.forward_inference(X, rm, s3, g, b, Y); }) == "running_var");
  CHECK(error_argument([&] { bn.backward(Y, X, m, v, g, b, {big.data(), 8, 4, 4}, g, b); }) == "gamma");  // dgamma over gamma
  CHECK(error_argument([&] { bn.backward(Y, X, m, v, g, b, {y.data(), 8, 4, 4}, rm, rv); }) == "dy");
  CHECK(error_argument([&] { bn.backward(Y, X, m, v, g, b, {big.data(), 8, 4, 4}, s3, rv); }) == "dgamma");

  const tpp::dnn::layernorm<> ln(layernorm_shape{8, 4});
  fvec lm(8), lr(8);
  CHECK(error_argument([&] { ln.forward(X, g, b, Y, lm, lr); }) == "(no error)");
  CHECK(error_argument([&] { ln.forward(X, g, b, Y, std::span<float>(lm).first(7), lr); }) == "mean");
  CHECK(error_argument([&] { ln.forward(X, g, b, Y, lm, std::span<float>(y).first(8)); }) == "rstd");  // rstd over y
  CHECK(error_argument([&] { ln.backward(Y, X, lm, lr, g, {big.data(), 8, 5, 5}, rm, rv); }) == "dx");
  CHECK(error_argument([&] { ln.backward(Y, X, lm, lr, g, {big.data(), 8, 4, 4}, rm, s3); }) == "dbeta");
}
