// dnn/linear.hpp: forward, backward-data, backward-weights and the bias gradient against a double-precision
// sum of the policy's own scalar products in the contract's operand order (P(x, w), P(dy, w), P(x, dy)),
// over shapes with batch 1, in and out of 1, 7, 33 and 130 (below, between and above the vector widths),
// views with ld > cols. Tolerance: an output sums k policy products in fp32 in some order, |error| <=
// gamma_(k+2) sum |p| (gemm_support.hpp's bound), a bf16 output one more rounding. The backward passes
// also against central differences of a scalar loss; the fused bias + relu epilogue against the separate
// computation; calls from inside a parallel region; bad fields and views.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include <tpp/approx/mitchell.hpp>
#include <tpp/dnn/linear.hpp>

#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using dnn::linear_shape;

constexpr double u32 = 0x1p-24;

// A (rows, cols) tensor with ld = cols + pad, random in [-1, 1); the padding holds NaN (never read).
template <class T>
struct tensor {
  index_t rows, cols, ld;
  std::vector<T> v;
  tensor(index_t r, index_t c, index_t pad, std::uint64_t seed) : rows(r), cols(c), ld(c + pad), v(std::size_t(r * ld), from_float<T>(NAN)) {
    const auto d = test::make<T>(std::size_t(r * c), seed);
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) v[std::size_t(i * ld + j)] = d[std::size_t(i * c + j)];
  }
  float operator()(index_t i, index_t j) const { return to_float(v[std::size_t(i * ld + j)]); }
  mat<T> m() { return {v.data(), rows, cols, ld}; }
  mat<const T> c() const { return {v.data(), rows, cols, ld}; }
};

// Elements of got (rows, cols) farther from the double sum of f(i, j, q) over q < k (each term a policy
// product) than gamma_(k+2) sum |term| (+ a bf16 output's rounding). Logs the first few.
template <class T, class F>
std::size_t mismatches(const char* what, const tensor<T>& got, index_t k, F term) {
  std::size_t bad = 0;
  const double kk = double(k) + 2, g = kk * u32 / (1 - kk * u32);
  for (index_t i = 0; i < got.rows; ++i)
    for (index_t j = 0; j < got.cols; ++j) {
      double v = 0, mag = 0;
      for (index_t q = 0; q < k; ++q) {
        const double t = term(i, j, q);
        v += t;
        mag += std::abs(t);
      }
      double tol = g * mag;
      if (std::is_same_v<T, bf16>) tol += 0x1p-8 * (std::abs(v) + tol);
      if (!(std::abs(got(i, j) - v) <= tol + 1e-30) && bad++ < 3)
        MESSAGE(what, " (", i, ", ", j, "): got ", got(i, j), " ref ", v, " tol ", tol);
    }
  return bad;
}

const std::vector<linear_shape>& shapes() {
  static const std::vector<linear_shape> v = {
      {1, 7, 33}, {1, 1, 1}, {3, 33, 7}, {5, 130, 17}, {2, 1, 130}, {7, 16, 1}, {33, 7, 130}, {64, 20, 10},
  };
  return v;
}

template <class P, class T>
void check_passes(const linear_shape& s, std::uint64_t seed) {
  CAPTURE(s.batch);
  CAPTURE(s.in);
  CAPTURE(s.out);
  const dnn::linear<P, T> lin(s);
  const tensor<T> x(s.batch, s.in, 3, seed), w(s.in, s.out, 1, seed + 1), dy(s.batch, s.out, 5, seed + 2);
  tensor<T> y(s.batch, s.out, 2, 0), dx(s.batch, s.in, 1, 0), dw(s.in, s.out, 4, 0);
  for (tensor<T>* o : {&y, &dx, &dw}) std::fill(o->v.begin(), o->v.end(), from_float<T>(NAN));  // all written
  std::vector<float> db(std::size_t(s.out), NAN);
  lin.forward(x.c(), w.c(), y.m());
  lin.backward_data(dy.c(), w.c(), dx.m());
  lin.backward_weights(x.c(), dy.c(), dw.m(), db);
  CHECK(mismatches("forward", y, s.in, [&](index_t b, index_t o, index_t i) { return P::mul(x(b, i), w(i, o)); }) == 0);
  CHECK(mismatches("backward_data", dx, s.out, [&](index_t b, index_t i, index_t o) { return P::mul(dy(b, o), w(i, o)); }) == 0);
  CHECK(mismatches("backward_weights", dw, s.batch, [&](index_t i, index_t o, index_t b) { return P::mul(x(b, i), dy(b, o)); }) == 0);
  tensor<float> dbt(1, s.out, 0, 0);
  std::copy(db.begin(), db.end(), dbt.v.begin());
  CHECK(mismatches("db", dbt, s.batch, [&](index_t, index_t o, index_t b) { return double(dy(b, o)); }) == 0);
}

}  // namespace

TEST_CASE_TEMPLATE("linear: forward, both backward passes and db vs the double sum of the policy's products", P,
                   approx::exact, approx::mitchell<7>) {
  std::uint64_t seed = 100;
  for (const linear_shape& s : shapes()) check_passes<P, float>(s, seed += 10);
}

TEST_CASE("linear: bf16 tensors, one rounding of each fp32 sum") {
  check_passes<approx::exact, bf16>({5, 130, 17}, 200);
  check_passes<approx::exact, bf16>({1, 7, 33}, 210);
}

TEST_CASE("linear: backward passes and db equal central differences of sum((x W + b) * g)") {
  // L(x, w, b) = sum y g is linear in each of x, w and b: the central difference quotient is exact up to the
  // rounding of the two forward sums, each within sum |g| tol of the exact L.
  const linear_shape s{6, 33, 17};
  const dnn::linear<> lin(s);
  tensor<float> x(s.batch, s.in, 0, 7), w(s.in, s.out, 0, 8), g(s.batch, s.out, 0, 9), b(1, s.out, 0, 10);
  tensor<float> y(s.batch, s.out, 0, 0), dx(s.batch, s.in, 0, 0), dw(s.in, s.out, 0, 0), db(1, s.out, 0, 0);
  lin.backward_data(g.c(), w.c(), dx.m());
  lin.backward_weights(x.c(), g.c(), dw.m(), db.v);
  const auto loss = [&](double& bound) {
    lin.forward(x.c(), w.c(), y.m(), epilogue::bias_per_col{b.v.data()});
    double l = 0;
    for (index_t i = 0; i < s.batch; ++i)
      for (index_t o = 0; o < s.out; ++o) {
        double mag = std::abs(b(0, o));
        for (index_t q = 0; q < s.in; ++q) mag += std::abs(double(x(i, q)) * w(q, o));
        const double kk = double(s.in) + 3;
        l += double(y(i, o)) * g(i, o);
        bound += std::abs(double(g(i, o))) * kk * u32 / (1 - kk * u32) * mag;
      }
    return l;
  };
  const float h = 0.5f;
  std::size_t bad = 0;
  for (auto [v, grad] : {std::pair{&x, &dx}, std::pair{&w, &dw}, std::pair{&b, &db}})
    for (std::size_t e = 0; e < v->v.size(); e += 1 + v->v.size() / 29) {
      const float keep = v->v[e];
      double bound = 0;
      v->v[e] = keep + h;
      const double lp = loss(bound);
      v->v[e] = keep - h;
      const double lm = loss(bound);
      v->v[e] = keep;
      const double fd = (lp - lm) / (2 * h), tol = bound / (2 * h) + 1e-6 * std::abs(fd);
      if (!(std::abs(fd - grad->v[e]) <= tol) && bad++ < 3)
        MESSAGE("element ", e, ": backward ", grad->v[e], " central difference ", fd, " tol ", tol);
    }
  CHECK(bad == 0);
}

TEST_CASE("linear: bias + relu fused in the epilogue equals the separate computation, each element once") {
  // 64 x 300 x 130: large enough that the GEMM splits y over the team; the epilogue must see y's own indices.
  const linear_shape s{64, 300, 130};
  const dnn::linear<approx::mitchell<7>> lin(s);
  const tensor<float> x(s.batch, s.in, 0, 21), w(s.in, s.out, 3, 22), bias(1, s.out, 0, 23);
  tensor<float> y(s.batch, s.out, 1, 0), plain(s.batch, s.out, 1, 0);
  lin.forward(x.c(), w.c(), plain.m());
  lin.forward(x.c(), w.c(), y.m(), epilogue::chain{epilogue::bias_per_col{bias.v.data()}, epilogue::activation<unary_kind::relu>{}});
  std::vector<int> seen(std::size_t(s.batch * s.out), 0);
  tensor<float> z(s.batch, s.out, 1, 0);
  lin.forward(x.c(), w.c(), z.m(), [&](index_t i, index_t j, float*, index_t n) {
    for (index_t q = 0; q < n; ++q) ++seen[std::size_t(i * s.out + j + q)];  // distinct elements per thread
  });
  std::size_t bad = 0;
  for (index_t i = 0; i < s.batch; ++i)
    for (index_t o = 0; o < s.out; ++o) {
      bad += y(i, o) != std::max(0.0f, plain(i, o) + bias(0, o));
      bad += seen[std::size_t(i * s.out + o)] != 1;
    }
  CHECK(bad == 0);
}

TEST_CASE("linear: called from inside a parallel region, each call is right and db has the team's bits") {
  const linear_shape s{40, 130, 70};
  const dnn::linear<approx::mitchell<7>> lin(s);
  const tensor<float> x(s.batch, s.in, 0, 31), w(s.in, s.out, 0, 32), dy(s.batch, s.out, 0, 33);
  std::vector<float> db_ref(std::size_t(s.out)), wide_ref(130);
  dnn::bias_gradient(dy.c(), db_ref);
  const tensor<float> wide(300, 130, 2, 34);  // enough for bias_gradient to split its columns over the team
  dnn::bias_gradient(wide.c(), wide_ref);
  std::size_t bad = 0;
#pragma omp parallel for reduction(+ : bad)
  for (int t = 0; t < 4; ++t) {
    tensor<float> y(s.batch, s.out, 0, 0), dx(s.batch, s.in, 0, 0), dw(s.in, s.out, 0, 0);
    std::vector<float> db(std::size_t(s.out));
    lin.forward(x.c(), w.c(), y.m());
    lin.backward_data(dy.c(), w.c(), dx.m());
    lin.backward_weights(x.c(), dy.c(), dw.m(), db);
    using P = approx::mitchell<7>;
    bad += mismatches("forward", y, s.in, [&](index_t b, index_t o, index_t i) { return P::mul(x(b, i), w(i, o)); });
    bad += mismatches("backward_data", dx, s.out, [&](index_t b, index_t i, index_t o) { return P::mul(dy(b, o), w(i, o)); });
    bad += mismatches("backward_weights", dw, s.batch, [&](index_t i, index_t o, index_t b) { return P::mul(x(b, i), dy(b, o)); });
    bad += db != db_ref;
    std::vector<float> wide_db(130);
    dnn::bias_gradient(wide.c(), wide_db);  // serial here: the same bits as the team's column blocks
    bad += wide_db != wide_ref;
  }
  CHECK(bad == 0);
}

TEST_CASE("linear: a bad field or view throws tpp::error naming it") {
  const auto arg = [](auto f) { return test::error_argument(f); };
  const auto make = [](linear_shape s) { return [s] { dnn::linear<> l(s); }; };
  CHECK(arg(make({0, 3, 4})) == "batch");
  CHECK(arg(make({2, -1, 4})) == "in");
  CHECK(arg(make({2, 3, 0})) == "out");
  CHECK(arg(make({index_t(1) << 40, index_t(1) << 30, 1})) == "batch");  // batch * in overflows
  CHECK(arg(make({1, index_t(1) << 40, index_t(1) << 30})) == "out");    // in * out overflows
  CHECK(arg(make({2, 3, 4})) == "(no error)");

  const dnn::linear<> l({2, 3, 4});
  std::vector<float> x(6), w(12), y(8), big(64), db(4);
  const mat<const float> X{x.data(), 2, 3, 3}, W{w.data(), 3, 4, 4}, DY{y.data(), 2, 4, 4};
  const mat<float> Y{y.data(), 2, 4, 4};
  CHECK(arg([&] { l.forward({x.data(), 1, 3, 3}, W, Y); }) == "x");
  CHECK(arg([&] { l.forward(X, {w.data(), 3, 4, 3}, Y); }) == "w.ld");
  CHECK(arg([&] { l.forward(X, W, {nullptr, 2, 4, 4}); }) == "y.data");
  CHECK(arg([&] { l.forward(X, W, {y.data(), 2, 3, 4}); }) == "y");
  CHECK(arg([&] { l.forward(X, W, {w.data() + 4, 2, 4, 4}); }) == "w");  // y over w
  CHECK(arg([&] { l.backward_data(DY, W, {big.data(), 2, 3, 3}); }) == "(no error)");
  CHECK(arg([&] { l.backward_data(DY, W, {big.data(), 3, 2, 2}); }) == "dx");
  CHECK(arg([&] { l.backward_data(DY, W, {y.data(), 2, 3, 3}); }) == "dy");  // dx over dy
  CHECK(arg([&] { l.backward_weights(X, DY, {big.data(), 3, 4, 4}, db); }) == "(no error)");
  CHECK(arg([&] { l.backward_weights(X, DY, {big.data(), 3, 4, 4}, std::span<float>(db).first(3)); }) == "db");
  CHECK(arg([&] { l.backward_weights(X, DY, {big.data(), 3, 4, 4}, std::span<float>(y).first(4)); }) == "dy");
  CHECK(arg([&] { l.backward_weights(X, DY, {big.data(), 3, 4, 4}, std::span<float>(big).subspan(8, 4)); }) == "db");
  CHECK(arg([&] { l.backward_weights({big.data(), 2, 3, 3}, DY, {big.data() + 4, 3, 4, 4}); }) == "x");  // dw over x
  CHECK(arg([&] { dnn::bias_gradient(DY, std::span<float>(db).first(2)); }) == "db");
  CHECK(arg([&] { dnn::bias_gradient(DY, std::span<float>(y).last(4)); }) == "db");
  CHECK(arg([&] { dnn::bias_gradient(mat<const float>{y.data(), 2, 4, 3}, db); }) == "dy.ld");
}
