// dnn/conv2d.hpp: forward, backward-data and backward-weights against a double-precision sum of the policy's
// own scalar products (the operand order the contract gives: P(x, w), P(dy, w), P(x, dy)), over a sweep of
// shapes: strides, padding and dilation up to 3, rectangular filters, groups 2 and depthwise, 1x1 filters
// and a 1x1 image, C and K on both sides of the vector width, N = 1 and 2, rows whose taps all fall in the
// padding. Tolerance: an output sums m policy products in fp32 in some order, |error| <= gamma_(m+2)
// sum |p| (gemm_support.hpp's bound), and a bf16 output one more rounding. The backward passes also against
// central differences of a scalar loss (exact policy: the loss is linear in x and in w, so the difference
// quotient is exact up to the rounding of the two forward passes, which bounds the tolerance). Then the
// epilogue's indices, calls from inside a parallel region, and the shape and view checks.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/dnn/conv2d.hpp>

#include "dnn/conv2d_support.hpp"

#include "approx/sweep.hpp"
#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using dnn::conv2d_shape;
using test::describe;

constexpr double u32 = 0x1p-24;

// A double reference: each output's value, the sum of its products' magnitudes and their count.
struct reference {
  std::vector<double> v, mag, terms;
  explicit reference(std::size_t n) : v(n), mag(n), terms(n) {}
  void add(std::size_t i, float prod) {
    v[i] += prod;
    mag[i] += std::abs(double(prod));
    terms[i] += 1;
  }
  double tol(std::size_t i, bool bf16_out) const {
    const double k = terms[i] + 2, g = k * u32 / (1 - k * u32);
    double t = g * mag[i];
    if (bf16_out) t += 0x1p-8 * (std::abs(v[i]) + t);
    return t;
  }
};

using dims = test::conv_dims;
using test::for_each_product;

// The three passes' references, each product P(first, second) in the contract's operand order.
template <class P, class T>
reference ref_forward(const conv2d_shape& s, const std::vector<T>& x, const std::vector<T>& w) {
  reference y(std::size_t(s.n * s.p() * s.q() * s.k));
  for_each_product(s, [&](std::size_t o, std::size_t i, std::size_t k) { y.add(o, P::mul(to_float(x[i]), to_float(w[k]))); });
  return y;
}
template <class P, class T>
reference ref_backward_data(const conv2d_shape& s, const std::vector<T>& dy, const std::vector<T>& w) {
  reference dx(std::size_t(s.n * s.h * s.w * s.c));
  for_each_product(s, [&](std::size_t o, std::size_t i, std::size_t k) { dx.add(i, P::mul(to_float(dy[o]), to_float(w[k]))); });
  return dx;
}
template <class P, class T>
reference ref_backward_weights(const conv2d_shape& s, const std::vector<T>& x, const std::vector<T>& dy) {
  reference dw(std::size_t(s.r * s.s * (s.c / s.groups) * s.k));
  for_each_product(s, [&](std::size_t o, std::size_t i, std::size_t k) { dw.add(k, P::mul(to_float(x[i]), to_float(dy[o]))); });
  return dw;
}

template <class T>
std::size_t mismatches(const char* what, const reference& ref, const std::vector<T>& got) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = to_float(got[i]), tol = ref.tol(i, std::is_same_v<T, bf16>);
    if (!(std::abs(g - ref.v[i]) <= tol + 1e-30) && bad++ < 3)
      MESSAGE(what, " element ", i, ": got ", g, " ref ", ref.v[i], " tol ", tol);
  }
  return bad;
}

const std::vector<conv2d_shape>& shapes() {
  // n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups
  static const std::vector<conv2d_shape> v = {
      {1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},      // 3x3, pad 1
      {2, 7, 6, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1},      // stride 2, N = 2
      {1, 9, 8, 4, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1},      // dilation 2
      {1, 6, 7, 4, 6, 2, 3, 3, 2, 1, 2, 1, 1, 2},      // groups 2, strides 3 x 2, 2x3 filter
      {2, 5, 5, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8},      // depthwise
      {1, 4, 4, 20, 18, 1, 1, 1, 1, 0, 0, 1, 1, 1},    // 1x1, C and K above 16
      {1, 1, 1, 3, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1},      // 1x1 image
      {1, 8, 9, 17, 3, 3, 2, 3, 3, 2, 1, 3, 2, 1},     // stride 3, dilations 3 and 2
      {1, 6, 6, 2, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1},      // 5x5, pad 2 (LeNet's first)
      {1, 7, 7, 33, 17, 3, 3, 2, 1, 0, 1, 1, 3, 1},    // K odd, C past two vectors
      {1, 1, 6, 3, 2, 2, 2, 1, 1, 4, 1, 5, 1, 1},      // output rows whose taps all fall in the padding
      {1, 5, 9, 6, 9, 3, 3, 1, 3, 1, 1, 1, 1, 3},      // groups 3, stride_w 3 (three phases backward)
  };
  return v;
}

template <class P, class T>
void check_passes(const conv2d_shape& s, std::uint64_t seed, dnn::conv2d_algorithm algorithm) {
  CAPTURE(describe(s));
  CAPTURE(int(algorithm));
  const dims d(s);
  const dnn::conv2d<P, T> conv(s, algorithm);
  const auto x = test::make<T>(std::size_t(s.n * s.h * s.w * s.c), seed);
  const auto w = test::make<T>(std::size_t(s.r * s.s * d.cg * s.k), seed + 1);
  const auto dy = test::make<T>(std::size_t(s.n * d.P * d.Q * s.k), seed + 2);
  const mat<const T> X{x.data(), s.n * s.h * s.w, s.c, s.c}, W{w.data(), s.r * s.s * d.cg, s.k, s.k},
      DY{dy.data(), s.n * d.P * d.Q, s.k, s.k};
  // outputs start as NaN: every element must be written
  std::vector<T> y(dy.size(), from_float<T>(NAN)), dx(x.size(), from_float<T>(NAN)), dw(w.size(), from_float<T>(NAN));
  conv.forward(X, W, mat<T>{y.data(), DY.rows, s.k, s.k});
  conv.backward_data(DY, W, mat<T>{dx.data(), X.rows, s.c, s.c});
  conv.backward_weights(X, DY, mat<T>{dw.data(), W.rows, s.k, s.k});
  CHECK(mismatches("forward", ref_forward<P>(s, x, w), y) == 0);
  CHECK(mismatches("backward_data", ref_backward_data<P>(s, dy, w), dx) == 0);
  CHECK(mismatches("backward_weights", ref_backward_weights<P>(s, x, dy), dw) == 0);
}

// Every loop nest on every shape (automatic would take the lowered one for most of these small shapes).
template <class P, class T>
void check_passes(const conv2d_shape& s, std::uint64_t seed) {
  for (const auto a : {dnn::conv2d_algorithm::direct, dnn::conv2d_algorithm::lowered, dnn::conv2d_algorithm::pixels})
    if (a != dnn::conv2d_algorithm::pixels || dnn::conv2d<P, T>(s, a).algorithm() == a) check_passes<P, T>(s, seed, a);
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("conv2d: forward and both backward passes vs the double sum of the policy's products", P,
                          conv_policies) {
  std::uint64_t seed = 100;
  for (const conv2d_shape& s : shapes()) check_passes<P, float>(s, seed += 10);
}
TEST_CASE_TEMPLATE_APPLY(conv_policies, tpp::test::op_policies);

// The pixels nest packs both operands for policies with a packed GEMM path and checks each image's range:
// an image whose products overflow or underflow (or hold Inf) must take the policy's own mul, whose
// results (+-Inf, +-0, NaN) the reference has too.
TEST_CASE_TEMPLATE("conv2d: pixels nest, products out of range take the policy's own mul", P, approx::mitchell<7>,
                   approx::mbm<7>, approx::bf16_rz, approx::drum<6>) {
  const conv2d_shape s{3, 6, 6, 2, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1};
  const dnn::conv2d<P> conv(s, dnn::conv2d_algorithm::pixels);
  REQUIRE(conv.algorithm() == dnn::conv2d_algorithm::pixels);
  const dims d(s);
  auto x = test::make<float>(std::size_t(s.n * s.h * s.w * s.c), 71);
  auto w = test::make<float>(std::size_t(s.r * s.s * s.c * s.k), 72);
  auto dy = test::make<float>(std::size_t(s.n * d.P * d.Q * s.k), 73);
  const std::size_t img = std::size_t(s.h * s.w * s.c), out = std::size_t(d.P * d.Q * s.k);
  for (std::size_t i = img; i < 2 * img; ++i) x[i] = std::ldexp(x[i], 120);     // image 1: overflows with dy
  for (std::size_t i = 2 * img; i < 3 * img; ++i) x[i] = std::ldexp(x[i], -120);  // image 2: underflows
  x[2 * img + 5] = INFINITY;                                                       // and an Inf
  for (std::size_t i = out; i < 2 * out; ++i) dy[i] = std::ldexp(dy[i], 20);
  for (float& v : w) v = std::ldexp(v, 10);
  const mat<const float> X{x.data(), s.n * s.h * s.w, s.c, s.c}, W{w.data(), s.r * s.s * s.c, s.k, s.k},
      DY{dy.data(), s.n * d.P * d.Q, s.k, s.k};
  std::vector<float> y(dy.size()), dx(x.size()), dw(w.size());
  conv.forward(X, W, mat<float>{y.data(), DY.rows, s.k, s.k});
  conv.backward_data(DY, W, mat<float>{dx.data(), X.rows, s.c, s.c});
  conv.backward_weights(X, DY, mat<float>{dw.data(), W.rows, s.k, s.k});
  const auto agree = [](const char* what, const reference& ref, const std::vector<float>& got) {
    std::size_t bad = 0, special = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const double r = ref.v[i], g = got[i];
      const bool ok = std::isfinite(r) ? std::abs(g - r) <= ref.tol(i, false) + 1e-30
                                       : (std::isnan(r) ? std::isnan(g) : g == r);
      special += !std::isfinite(r);
      if (!ok && bad++ < 3) MESSAGE(what, " element ", i, ": got ", g, " ref ", r);
    }
    CHECK(special > 0);  // the case is what it claims
    return bad;
  };
  CHECK(agree("forward", ref_forward<P>(s, x, w), y) == 0);
  CHECK(agree("backward_weights", ref_backward_weights<P>(s, x, dy), dw) == 0);
  CHECK(mismatches("backward_data", ref_backward_data<P>(s, dy, w), std::vector<float>(dx.begin(), dx.begin() + std::ptrdiff_t(img))) == 0);
}

TEST_CASE("conv2d: bf16 tensors, one rounding of each fp32 sum") {
  std::uint64_t seed = 300;
  for (const conv2d_shape& s : shapes()) {
    check_passes<approx::exact, bf16>(s, seed += 10);
    check_passes<approx::mitchell<7>, bf16>(s, seed += 10);
  }
}

TEST_CASE("conv2d: backward passes equal central differences of sum(y * g)") {
  // L(x, w) = sum y(x, w) g is linear in x and in w: (L(x + h e) - L(x - h e)) / 2h = dL/dx_e exactly, up to
  // the rounding of the two forward sums, each within sum_o |g_o| tol_o of the exact L.
  for (const conv2d_shape& s : {shapes()[1], shapes()[3], shapes()[4], shapes()[7], shapes()[10]}) {
    CAPTURE(describe(s));
    const dims d(s);
    const dnn::conv2d<> conv(s);
    auto x = test::make<float>(std::size_t(s.n * s.h * s.w * s.c), 7);
    auto w = test::make<float>(std::size_t(s.r * s.s * d.cg * s.k), 8);
    const auto g = test::make<float>(std::size_t(s.n * d.P * d.Q * s.k), 9);
    const index_t xr = s.n * s.h * s.w, wr = s.r * s.s * d.cg, yr = s.n * d.P * d.Q;
    std::vector<float> y(g.size()), dx(x.size()), dw(w.size());
    conv.backward_data({g.data(), yr, s.k, s.k}, {w.data(), wr, s.k, s.k}, {dx.data(), xr, s.c, s.c});
    conv.backward_weights({x.data(), xr, s.c, s.c}, {g.data(), yr, s.k, s.k}, {dw.data(), wr, s.k, s.k});
    const auto loss = [&](double& bound) {
      conv.forward({x.data(), xr, s.c, s.c}, {w.data(), wr, s.k, s.k}, {y.data(), yr, s.k, s.k});
      const reference ref = ref_forward<approx::exact>(s, x, w);
      double l = 0;
      for (std::size_t i = 0; i < y.size(); ++i) {
        l += double(y[i]) * g[i];
        bound += std::abs(double(g[i])) * ref.tol(i, false);
      }
      return l;
    };
    const float h = 0.5f;
    std::size_t bad = 0;
    for (auto [v, grad] : {std::pair{&x, &dx}, std::pair{&w, &dw}})
      for (std::size_t e = 0; e < v->size(); e += 1 + v->size() / 23) {
        const float keep = (*v)[e];
        double bound = 0;
        (*v)[e] = keep + h;
        const double lp = loss(bound);
        (*v)[e] = keep - h;
        const double lm = loss(bound);
        (*v)[e] = keep;
        const double fd = (lp - lm) / (2 * h), tol = bound / (2 * h) + 1e-6 * std::abs(fd);
        if (!(std::abs(fd - (*grad)[e]) <= tol) && bad++ < 3)
          MESSAGE("element ", e, ": backward ", (*grad)[e], " central difference ", fd, " tol ", tol);
      }
    CHECK(bad == 0);
  }
}

TEST_CASE("conv2d: the epilogue sees y's own row and column indices (bias + relu in one call)") {
  // groups 2 and stride_w 2 (the pixels nest does not apply: automatic's choice), and groups 1, stride 1
  for (const conv2d_shape& s : {conv2d_shape{2, 6, 7, 6, 10, 3, 3, 1, 2, 1, 1, 1, 1, 2},
                                conv2d_shape{2, 6, 7, 6, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1}}) {
  CAPTURE(describe(s));
  const dims d(s);
  const auto x = test::make<float>(std::size_t(s.n * s.h * s.w * s.c), 21);
  const auto w = test::make<float>(std::size_t(s.r * s.s * d.cg * s.k), 22);
  const auto bias = test::make<float>(std::size_t(s.k), 23);
  const index_t yr = s.n * d.P * d.Q;
  for (const auto a : {dnn::conv2d_algorithm::direct, dnn::conv2d_algorithm::lowered, dnn::conv2d_algorithm::pixels}) {
  CAPTURE(int(a));
  std::vector<float> y(std::size_t(yr * s.k)), plain(y.size());
  const dnn::conv2d<> conv(s, a);
  const mat<const float> X{x.data(), s.n * s.h * s.w, s.c, s.c}, W{w.data(), s.r * s.s * d.cg, s.k, s.k};
  conv.forward(X, W, {plain.data(), yr, s.k, s.k});
  std::vector<int> seen(y.size(), 0);
  const auto count = [&](index_t i, index_t j, float*, index_t n) {
    for (index_t q = 0; q < n; ++q) ++seen[std::size_t(i * s.k + j + q)];
  };
  conv.forward(X, W, {y.data(), yr, s.k, s.k},
               epilogue::chain{epilogue::bias_per_col{bias.data()}, epilogue::activation<unary_kind::relu>{}});
  conv.forward(X, W, {plain.data(), yr, s.k, s.k}, count);  // every element once
  std::size_t bad = 0;
  for (index_t i = 0; i < yr; ++i)
    for (index_t k = 0; k < s.k; ++k) {
      const std::size_t e = std::size_t(i * s.k + k);
      bad += y[e] != std::max(0.0f, plain[e] + bias[std::size_t(k)]);
      bad += seen[e] != 1;
    }
  CHECK(bad == 0);
  }
  }
}

TEST_CASE("conv2d: called from inside a parallel region, each thread's own layer gives the serial bits") {
  const conv2d_shape s = shapes()[1];
  const dims d(s);
  const auto x = test::make<float>(std::size_t(s.n * s.h * s.w * s.c), 31);
  const auto w = test::make<float>(std::size_t(s.r * s.s * d.cg * s.k), 32);
  const dnn::conv2d<approx::mitchell<7>> conv(s);
  const index_t yr = s.n * d.P * d.Q;
  std::vector<float> ref(std::size_t(yr * s.k));
  conv.forward({x.data(), s.n * s.h * s.w, s.c, s.c}, {w.data(), s.r * s.s * d.cg, s.k, s.k}, {ref.data(), yr, s.k, s.k});
  std::vector<std::vector<float>> out(4, std::vector<float>(ref.size()));
  int diff = 0;
#pragma omp parallel for reduction(+ : diff)
  for (int t = 0; t < 4; ++t) {
    conv.forward({x.data(), s.n * s.h * s.w, s.c, s.c}, {w.data(), s.r * s.s * d.cg, s.k, s.k},
                 {out[std::size_t(t)].data(), yr, s.k, s.k});
    diff += out[std::size_t(t)] != ref;
  }
  CHECK(diff == 0);
}

TEST_CASE("conv2d: backward passes with a caller's workspace give the arena's bits; too small throws") {
  for (const conv2d_shape& s : {shapes()[3], shapes()[4]}) {  // grouped, depthwise
    CAPTURE(describe(s));
    const dims d(s);
    const auto x = test::make<float>(std::size_t(s.n * s.h * s.w * s.c), 41);
    const auto dy = test::make<float>(std::size_t(s.n * d.P * d.Q * s.k), 42);
    const auto w = test::make<float>(std::size_t(s.r * s.s * d.cg * s.k), 43);
    const dnn::conv2d<approx::drum<6>> conv(s);
    const index_t xr = s.n * s.h * s.w, wr = s.r * s.s * d.cg;
    const mat<const float> X{x.data(), xr, s.c, s.c}, DY{dy.data(), s.n * d.P * d.Q, s.k, s.k}, W{w.data(), wr, s.k, s.k};
    std::vector<float> a(w.size()), b(w.size()), dxa(x.size()), dxb(x.size());
    conv.backward_weights(X, DY, {a.data(), wr, s.k, s.k});
    conv.backward_data(DY, W, {dxa.data(), xr, s.c, s.c});
    const std::size_t need_w = conv.backward_weights_workspace_bytes(), need_d = conv.backward_data_workspace_bytes();
    CHECK(need_w >= w.size() * sizeof(float));
    std::vector<std::byte> mem(std::max(need_w, need_d) + 1);
    conv.backward_weights(X, DY, {b.data(), wr, s.k, s.k}, workspace{mem.data() + 1, need_w});  // unaligned
    conv.backward_data(DY, W, {dxb.data(), xr, s.c, s.c}, workspace{mem.data() + 1, need_d});
    CHECK(a == b);
    CHECK(dxa == dxb);
    CHECK(test::error_argument([&] {
            conv.backward_weights(X, DY, {b.data(), wr, s.k, s.k}, workspace{mem.data(), need_w - 65});
          }) == "workspace");
    if (need_d > 0)
      CHECK(test::error_argument([&] {
              conv.backward_data(DY, W, {dxb.data(), xr, s.c, s.c}, workspace{mem.data(), need_d - 65});
            }) == "workspace");
  }
}

TEST_CASE("conv2d: a bad shape field or view throws tpp::error naming it") {
  const auto arg = [](auto f) { return test::error_argument(f); };
  const auto make_with = [](auto edit) {
    return [edit] {
      conv2d_shape s{1, 5, 5, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1};
      edit(s);
      dnn::conv2d<> c(s);
    };
  };
  CHECK(arg(make_with([](conv2d_shape& s) { s.n = 0; })) == "n");
  CHECK(arg(make_with([](conv2d_shape& s) { s.c = -3; })) == "c");
  CHECK(arg(make_with([](conv2d_shape& s) { s.stride_w = 0; })) == "stride_w");
  CHECK(arg(make_with([](conv2d_shape& s) { s.dilation_h = 0; })) == "dilation_h");
  CHECK(arg(make_with([](conv2d_shape& s) { s.pad_w = -1; })) == "pad_w");
  CHECK(arg(make_with([](conv2d_shape& s) { s.groups = 3; })) == "groups");  // does not divide c = 4
  CHECK(arg(make_with([](conv2d_shape& s) { s.k = 6, s.groups = 4; })) == "groups");  // divides c, not k
  CHECK(arg(make_with([](conv2d_shape& s) { s.pad_h = 3; })) == "pad_h");  // the dilated filter is 3 tall
  CHECK(arg(make_with([](conv2d_shape& s) { s.h = 1, s.pad_h = 0; })) == "h");  // no output rows
  CHECK(arg(make_with([](conv2d_shape& s) { s.w = 2, s.pad_w = 0; })) == "w");
  CHECK(arg(make_with([](conv2d_shape& s) { s.n = index_t(1) << 40, s.h = index_t(1) << 20; })) == "n");  // overflow
  CHECK(arg(make_with([](conv2d_shape&) {})) == "(no error)");

  const conv2d_shape s{1, 5, 5, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1};
  const dnn::conv2d<> c(s);
  std::vector<float> x(100), w(144), y(100), big(400);
  const mat<const float> X{x.data(), 25, 4, 4}, W{w.data(), 36, 4, 4};
  const mat<float> Y{y.data(), 25, 4, 4};
  CHECK(arg([&] { c.forward({x.data(), 24, 4, 4}, W, Y); }) == "x");
  CHECK(arg([&] { c.forward(X, {w.data(), 36, 4, 3}, Y); }) == "w.ld");
  CHECK(arg([&] { c.forward(X, W, {nullptr, 25, 4, 4}); }) == "y.data");
  CHECK(arg([&] { c.forward(X, W, {y.data(), 25, 5, 5}); }) == "y");
  CHECK(arg([&] { c.forward(X, W, {x.data(), 25, 4, 4}); }) == "x");  // y over x
  CHECK(arg([&] { c.backward_data(mat<const float>{y.data(), 25, 4, 4}, W, {big.data(), 25, 4, 4}); }) == "(no error)");
  CHECK(arg([&] { c.backward_data(mat<const float>{y.data(), 25, 4, 4}, W, {y.data(), 25, 4, 4}); }) == "dy");
  CHECK(arg([&] { c.backward_weights(X, mat<const float>{y.data(), 25, 4, 4}, {w.data(), 36, 4, 4}); }) == "(no error)");
  CHECK(arg([&] { c.backward_weights(X, mat<const float>{y.data(), 25, 4, 4}, {w.data(), 35, 4, 4}); }) == "dw");
}
