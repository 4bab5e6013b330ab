// ops/unary.hpp: every forward and backward kind against a double-precision reference with an error bound
// derived from the arithmetic (policy sweep over the registry), bit-exact policy products, the named edge
// shapes x dtypes x in-place with padding sentinels, finite differences, special values, dropout (its
// definition, reproducibility, blocking, keep rate, backward) and bad arguments.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/unary.hpp>

#include "approx/sweep.hpp"
#include "ops/elementwise_support.hpp"

namespace {

using namespace tpp;
using K = unary_kind;
using test::padded;
using test::ref_value;
constexpr double u = test::u_fp32;

// ---- accuracy of the library functions the ops call, relative, in units of u = 2^-24 ----
// Measured over 4M random arguments each (xsimd 8.1 at avx512bw and fma3<avx2>, identical; glibc for the
// TPP_NO_SIMD build): exp 2.16 (glibc 1.0), expm1 2.0 (1.3), tanh 2.4 (2.7). Bound used: 3 each.
constexpr double e_exp = 3 * u, e_expm1 = 3 * u, e_tanh = 3 * u;
// erfc(z): xsimd measured 8.9 at z ~ 0.75, growing like 1.2 z^2 for large z (its exp(-z^2) of a rounded
// z^2: the function's own conditioning); glibc below 4. Bound used: 10 + 1.5 z^2.
double e_erfc(double z) { return (10 + 1.5 * z * z) * u; }

constexpr double gelu_k = 0.7978845608028654, gelu_c = 0.044715;

double gelu_tanh_cdf(double x) { return 0.5 * (1 + std::tanh(gelu_k * (x + gelu_c * x * x * x))); }
double gelu_erf_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// gelu_tanh's cdf s = sigmoid(t), t = 2 sqrt(2/pi) (x + c x^3), evaluated in fp32 from e = exp(-|t|):
// t carries <= 6 roundings (x^3: 2, c and its rounded constant: 1.5, the add: 1, 2 sqrt(2/pi) and its
// constant: 1.5), an absolute error of 6u|t| that exp turns into a relative one; e: e_exp + 6u|t|;
// r = 1 / (1 + e): that + 2u; s = r or e r: 2 (e_exp + 6u|t|) + 3u.
double gelu_t(double x) { return 2 * gelu_k * (x + gelu_c * x * x * x); }
double e_gelu_tanh_cdf(double x) { return 2 * (e_exp + 6 * u * std::abs(gelu_t(x))) + 3 * u; }
// gelu_erf's cdf Phi = erfc(z) / 2, z = -x / sqrt(2) in fp32 (1.5 roundings with the constant): erfc's own
// error plus 1.5u times its condition number |z erfc'(z) / erfc(z)|.
double e_gelu_erf_cdf(double x) {
  const double z = -x / std::sqrt(2.0);
  const double cond = std::abs(z) * 2 / std::sqrt(std::numbers::pi) * std::exp(-z * z) / std::erfc(z);
  return e_erfc(z) + 1.5 * u * cond;
}

// The forward reference: exact y, and the fp32 error bound (ref_value in elementwise_support.hpp).
ref_value forward_ref(K k, double x, const unary_params& p) {
  const double la = p.leaky_alpha, ea = p.elu_alpha;
  switch (k) {
    case K::copy: return {x};
    case K::zero: return {0};
    case K::negate: return {-x};
    case K::square: return {x * x, 0, x * x};
    case K::sqrt: return {std::sqrt(x), u * std::sqrt(x)};           // correctly rounded
    case K::rsqrt: return {1 / std::sqrt(x), 2 * u / std::sqrt(x)};  // sqrt, then a division
    case K::reciprocal: return {1 / x, u / std::abs(x)};
    case K::exp: return {std::exp(x), e_exp * std::exp(x)};
    case K::relu: return {x > 0 ? x : 0};
    case K::leaky_relu: return x > 0 ? ref_value{x} : ref_value{la * x, 0, std::abs(la * x)};
    case K::elu: {
      if (x > 0) return {x};
      const double y = ea * std::expm1(x);
      return {y, e_expm1 * std::abs(y), std::abs(y)};
    }
    case K::gelu_tanh: {
      const double y = x * gelu_tanh_cdf(x);
      return {y, std::abs(y) * e_gelu_tanh_cdf(x), std::abs(y)};
    }
    case K::gelu_erf: {
      const double y = x * gelu_erf_cdf(x);
      return {y, std::abs(y) * e_gelu_erf_cdf(x), std::abs(y)};
    }
    case K::tanh: return {std::tanh(x), e_tanh * std::abs(std::tanh(x))};
    case K::sigmoid: {
      // e = exp(-|x|): e_exp; r = 1 / (1 + e): + 2 roundings; x < 0 takes e r: + 1 more and e's error again.
      const double s = sigmoid(x);
      return {s, (2 * e_exp + 3 * u) * s};
    }
  }
  return {std::numeric_limits<double>::quiet_NaN()};
}

// f'(x), exact.
double derivative(K k, double x, const unary_params& p) {
  switch (k) {
    case K::copy: return 1;
    case K::zero: return 0;
    case K::negate: return -1;
    case K::square: return 2 * x;
    case K::sqrt: return 0.5 / std::sqrt(x);
    case K::rsqrt: return -0.5 * std::pow(x, -1.5);
    case K::reciprocal: return -1 / (x * x);
    case K::exp: return std::exp(x);
    case K::relu: return x > 0 ? 1 : 0;
    case K::leaky_relu: return x > 0 ? 1 : p.leaky_alpha;
    case K::elu: return x > 0 ? 1 : p.elu_alpha * std::exp(x);
    case K::gelu_tanh: {
      const double s = gelu_tanh_cdf(x);
      return s + x * s * (1 - s) * 2 * gelu_k * (1 + 3 * gelu_c * x * x);
    }
    case K::gelu_erf: return gelu_erf_cdf(x) + x * std::exp(-x * x / 2) / std::sqrt(2 * std::numbers::pi);
    case K::tanh: return 1 - std::tanh(x) * std::tanh(x);
    case K::sigmoid: return sigmoid(x) * (1 - sigmoid(x));
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// The backward reference dx = dy f' from the value the op is given (x, or y for backward_uses == y), with
// the fp32 error bound of evaluating f' (E, absolute, times |dy|) and the chain-rule product |dy f'|.
ref_value backward_ref(K k, double dy, double v, const unary_params& p) {
  const auto with = [&](double f, double e_rel_f) {
    return ref_value{dy * f, std::abs(dy * f) * e_rel_f, std::abs(dy * f)};
  };
  switch (k) {
    case K::copy: return {dy};
    case K::zero: return {0};
    case K::negate: return {-dy};
    case K::square: return with(2 * v, 0);
    case K::sqrt: return with(0.5 / v, u);
    case K::rsqrt: return with(-0.5 * v * v * v, 2 * u);
    case K::reciprocal: return with(-v * v, u);
    case K::exp: return with(v, 0);
    case K::relu: return {v > 0 ? dy : 0};
    case K::leaky_relu: return v > 0 ? ref_value{dy} : with(p.leaky_alpha, 0);
    case K::elu: return v > 0 ? ref_value{dy} : with(p.elu_alpha * std::exp(v), e_exp + u);
    case K::gelu_tanh: {
      // f' = s + x g, g = 2 sqrt(2/pi) (1 + 3c x^2) e r^2. s: e_gelu_tanh_cdf; e r^2: 3 (e_exp + 6u|t|) + 6u;
      // the polynomial with its constants: 6u; the products with e r^2 and x: 2u; the sum: u.
      const double x = v, s = gelu_tanh_cdf(x), xg = derivative(k, x, p) - s;
      const double e_t = e_exp + 6 * u * std::abs(gelu_t(x));
      const double E =
          std::abs(s) * e_gelu_tanh_cdf(x) + std::abs(xg) * (3 * e_t + 14 * u) + u * (std::abs(s) + std::abs(xg));
      const double f = s + xg;
      return {dy * f, std::abs(dy) * E, std::abs(dy * f)};
    }
    case K::gelu_erf: {
      // f' = Phi + x phi, phi = exp(-x^2 / 2) / sqrt(2 pi): exp's error plus x^2 u (its argument's), 2.5u for
      // the constant and two products; the sum: u.
      const double x = v, Phi = gelu_erf_cdf(x), xphi = x * std::exp(-x * x / 2) / std::sqrt(2 * std::numbers::pi);
      const double E = std::abs(Phi) * e_gelu_erf_cdf(x) + std::abs(xphi) * (e_exp + x * x * u + 3 * u) +
                       u * (std::abs(Phi) + std::abs(xphi));
      return {dy * (Phi + xphi), std::abs(dy) * E, std::abs(dy * (Phi + xphi))};
    }
    case K::tanh: {  // 1 - fl(y y): u y^2 + u |1 - y^2|
      const double f = 1 - v * v;
      return {dy * f, std::abs(dy) * 1.01 * u * (v * v + std::abs(f)), std::abs(dy * f)};
    }
    case K::sigmoid: return with(v * (1 - v), 2.01 * u);  // 1 - y, then a product
  }
  return {std::numeric_limits<double>::quiet_NaN()};
}

// Test arguments per kind: inside each function's domain, away from overflow.
std::vector<float> arguments(K k, std::size_t n, std::uint64_t seed) {
  switch (k) {
    case K::sqrt:
    case K::rsqrt: return test::uniform(n, 1e-3f, 100.0f, seed);
    case K::reciprocal: {
      auto v = test::uniform(n, 0.05f, 20.0f, seed);
      for (std::size_t i = 0; i < n; i += 2) v[i] = -v[i];
      return v;
    }
    case K::exp: return test::uniform(n, -20.0f, 20.0f, seed);
    case K::square: return test::uniform(n, -100.0f, 100.0f, seed);
    default: return test::uniform(n, -6.0f, 6.0f, seed);
  }
}

template <K... Ks>
struct kinds {};
template <K... Ks, class F>
void for_each_kind(kinds<Ks...>, F&& f) {
  (f.template operator()<Ks>(), ...);
}
using all_kinds = kinds<K::copy, K::zero, K::negate, K::square, K::sqrt, K::rsqrt, K::reciprocal, K::exp, K::relu,
                        K::leaky_relu, K::elu, K::gelu_tanh, K::gelu_erf, K::tanh, K::sigmoid>;
// The kinds with a policy product on their forward / backward path (the others compile to the same code
// for every policy; they are swept with exact only).
using policy_forward_kinds = kinds<K::square, K::leaky_relu, K::elu, K::gelu_tanh, K::gelu_erf>;
using policy_backward_kinds = kinds<K::square, K::sqrt, K::rsqrt, K::reciprocal, K::exp, K::leaky_relu, K::elu,
                                    K::gelu_tanh, K::gelu_erf, K::tanh, K::sigmoid>;

template <class T>
constexpr double u_out() {
  return std::is_same_v<T, bf16> ? test::u_bf16 : 0.0;
}

// Runs unary<k, P> on shape s (in-place when asked) and checks every element against forward_ref and the
// padding against the sentinel.
template <K k, class P, class TI, class TO>
void check_forward(const test::shape& s, std::uint64_t seed, bool in_place = false, const unary_params& p = {}) {
  INFO(name(k), " ", P::name(), " ", test::describe(s), in_place ? " in-place" : "");
  padded<TI> in(s.rows, s.cols, s.pad);
  in.fill(arguments(k, std::size_t(s.rows * s.cols), seed));
  const padded<TI> x = in;
  padded<TO> out(s.rows, s.cols, s.pad);
  if constexpr (std::is_same_v<TI, TO>) {
    if (in_place) {
      unary<k, P>(in.m(), in.m(), p);
      out = in;
    } else {
      unary<k, P>(in.cm(), out.m(), p);
    }
  } else {
    unary<k, P>(in.m(), out.m(), p);
  }
  const double m = P::max_rel_error;
  std::size_t bad = 0;
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t j = 0; j < s.cols; ++j) {
      const double xv = x.value(i, j), got = out.value(i, j);
      const ref_value r = forward_ref(k, xv, p);
      const double tol = test::bound(r, m, u_out<TO>());
      if (!test::within(got, r.y, tol) && bad++ == 0)
        FAIL_CHECK("(", i, ",", j, ") x=", xv, " got ", got, " want ", r.y, " +- ", tol);
      if constexpr (k == K::square && std::is_same_v<TO, float>)  // a pure product: Policy::mul, bit for bit
        if (test::bits(float(got)) != test::bits(P::mul(float(xv), float(xv))) && bad++ == 0)
          FAIL_CHECK("square (", i, ",", j, ") differs from Policy::mul");
    }
  CHECK(bad == 0);
  CHECK(out.padding_intact());
}

// The value backward is given: x, or y = f(x) rounded to TV (from the double reference).
double forward_value_of(K k, double x, const unary_params& p) {
  return backward_uses(k) == forward_value::y ? forward_ref(k, x, p).y : x;
}

template <K k, class P, class TG, class TV, class TD>
void check_backward(const test::shape& s, std::uint64_t seed, bool in_place = false, const unary_params& p = {}) {
  INFO(name(k), "_backward ", P::name(), " ", test::describe(s), in_place ? " in-place" : "");
  const std::size_t n = std::size_t(s.rows * s.cols);
  const auto xs = arguments(k, n, seed);
  std::vector<float> vs(n);
  for (std::size_t i = 0; i < n; ++i) vs[i] = float(forward_value_of(k, xs[i], p));
  auto dys = test::uniform(n, 0.1f, 2.0f, seed + 1);
  for (std::size_t i = 1; i < n; i += 2) dys[i] = -dys[i];
  padded<TG> dy(s.rows, s.cols, s.pad);
  padded<TV> v(s.rows, s.cols, s.pad);
  padded<TD> dx(s.rows, s.cols, s.pad);
  dy.fill(dys);
  v.fill(vs);
  const padded<TG> dy0 = dy;
  if constexpr (std::is_same_v<TG, TD>) {
    if (in_place) {
      unary_backward<k, P>(dy.m(), v.cm(), dy.m(), p);
      dx = dy;
    } else {
      unary_backward<k, P>(dy.cm(), v.cm(), dx.m(), p);
    }
  } else {
    unary_backward<k, P>(dy.m(), v.m(), dx.m(), p);
  }
  const double m = P::max_rel_error;
  std::size_t bad = 0;
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t j = 0; j < s.cols; ++j) {
      const double g = dy0.value(i, j), vv = v.value(i, j), got = dx.value(i, j);
      const ref_value r = backward_ref(k, g, vv, p);
      const double tol = test::bound(r, m, u_out<TD>());
      if (!test::within(got, r.y, tol) && bad++ == 0)
        FAIL_CHECK("(", i, ",", j, ") dy=", g, " v=", vv, " got ", got, " want ", r.y, " +- ", tol);
    }
  CHECK(bad == 0);
  CHECK(dx.padding_intact());
}

const test::shape sweep_shape{7, 3 * simd::width<> + 5, 3};

template <K k>
constexpr std::integral_constant<K, k> kind{};

}  // namespace

// ---- policy sweep: every registered policy on every kind with a policy product ----

TEST_CASE_TEMPLATE_DEFINE("unary: forward vs a double reference, per policy (square bit-exact)", P,
                          unary_forward_policies) {
  for_each_kind(policy_forward_kinds{}, [&]<K k>() { check_forward<k, P, float, float>(sweep_shape, 11); });
}
TEST_CASE_TEMPLATE_APPLY(unary_forward_policies, tpp::test::op_policies);

TEST_CASE_TEMPLATE_DEFINE("unary: backward vs the analytic derivative in double, per policy", P,
                          unary_backward_policies) {
  for_each_kind(policy_backward_kinds{}, [&]<K k>() { check_backward<k, P, float, float, float>(sweep_shape, 21); });
}
TEST_CASE_TEMPLATE_APPLY(unary_backward_policies, tpp::test::op_policies);

// ---- exact policy: every kind, the named edge shapes, dtype combinations, in-place ----

TEST_CASE("unary: every kind, edge shapes x dtypes x in-place, padding untouched") {
  using E = approx::exact;
  for (const auto& s : test::edge_shapes())
    for_each_kind(all_kinds{}, [&]<K k>() {
      check_forward<k, E, float, float>(s, 1);
      check_forward<k, E, float, bf16>(s, 2);
      check_forward<k, E, bf16, float>(s, 3);
      check_forward<k, E, bf16, bf16>(s, 4);
      check_forward<k, E, float, float>(s, 5, true);
      check_forward<k, E, bf16, bf16>(s, 6, true);
    });
}

TEST_CASE("unary backward: every kind, edge shapes x dtypes x in-place, padding untouched") {
  using E = approx::exact;
  for (const auto& s : test::edge_shapes())
    for_each_kind(all_kinds{}, [&]<K k>() {
      check_backward<k, E, float, float, float>(s, 1);
      check_backward<k, E, bf16, bf16, bf16>(s, 2);
      check_backward<k, E, float, bf16, float>(s, 3);
      check_backward<k, E, float, float, float>(s, 4, true);
    });
}

TEST_CASE("unary: leaky_relu and elu parameters") {
  for (float a : {0.0f, 0.2f, -0.5f, 3.0f}) {
    unary_params p;
    p.leaky_alpha = a;
    p.elu_alpha = a;
    check_forward<K::leaky_relu, approx::exact, float, float>(sweep_shape, 7, false, p);
    check_forward<K::elu, approx::exact, float, float>(sweep_shape, 8, false, p);
    check_backward<K::leaky_relu, approx::exact, float, float, float>(sweep_shape, 9, false, p);
    check_backward<K::elu, approx::exact, float, float, float>(sweep_shape, 10, false, p);
  }
}

TEST_CASE("unary backward: the derivatives agree with central finite differences in double") {
  // Validates the reference derivatives (and the y-forms the ops use) against the forward reference, then
  // the ops (exact policy, fp32) against dy * FD: h = 1e-4 (1 + |x|) leaves an O(h^2 f''') truncation and
  // O(1e-16 / h) rounding, both far below 1e-6; the ops add their fp32 error, which the y-forms amplify
  // by |d f'/dy| u |y| (tanh at |x| <= 3: 2u / (1 - tanh^2 3) ~ 1.2e-5), inside 1e-4 relative.
  const unary_params p;
  for_each_kind(all_kinds{}, [&]<K k>() {
    INFO(name(k));
    const auto f = [&](double x) { return forward_ref(k, x, p).y; };
    std::vector<float> xs = k == K::sqrt || k == K::rsqrt ? test::uniform(200, 0.05f, 9.0f, 31)
                            : k == K::reciprocal          ? test::uniform(200, 0.2f, 5.0f, 31)
                                                          : test::uniform(200, -3.0f, 3.0f, 31);
    std::vector<float> dys = test::uniform(xs.size(), -2.0f, 2.0f, 32), vs(xs.size()), dx(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (std::abs(xs[i]) < 1e-2f) xs[i] = 0.5f;  // away from relu / leaky / elu's kink
      vs[i] = float(forward_value_of(k, xs[i], p));
    }
    const auto n = index_t(xs.size());
    unary_backward<k>(view(dys.data(), 1, n), view(vs.data(), 1, n), view(dx.data(), 1, n), p);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double x = xs[i], h = 1e-4 * (1 + std::abs(x));
      const double fd = (f(x + h) - f(x - h)) / (2 * h);
      const double analytic = derivative(k, x, p);
      const double from_v = backward_ref(k, 1.0, forward_value_of(k, x, p), p).y;  // f' through x or exact y
      const bool ok = std::abs(fd - analytic) <= 1e-6 * (1 + std::abs(fd)) &&
                      (k == K::zero || std::abs(from_v - analytic) <= 1e-12 * (1 + std::abs(analytic))) &&
                      std::abs(dx[i] - dys[i] * fd) <= 1e-4 * std::abs(dys[i]) * (std::abs(fd) + 1e-2);
      if (!ok && bad++ == 0)
        FAIL_CHECK("x=", x, " fd=", fd, " analytic=", analytic, " from v=", from_v, " op dx/dy=", dx[i] / dys[i]);
    }
    CHECK(bad == 0);
  });
}

TEST_CASE("unary: special values (NaN, Inf, signed zero) as documented") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // Runs one kind over a row long enough that the SIMD body and the tail both see every value.
  const auto run = [](auto kind, std::vector<float> x) {
    constexpr K k = decltype(kind)::value;
    INFO(name(k));
    const std::size_t n = x.size();
    for (std::size_t i = 0; i < n + 3; ++i) x.push_back(x[i % n]);
    std::vector<float> y(x.size());
    unary<k>(view(x.data(), 1, index_t(x.size())), view(y.data(), 1, index_t(y.size())));
    for (std::size_t i = n; i < x.size(); ++i) CHECK(test::bits(y[i]) == test::bits(y[i - n]));
    y.resize(n);
    return y;
  };
  const auto is = [](float got, float want) {
    return std::isnan(want) ? std::isnan(got) : test::bits(got) == test::bits(want);
  };
  {
    const auto y = run(kind<K::relu>, {nan, -0.0f, -inf, inf, -1.0f, 2.0f});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], 0.0f));
    CHECK(is(y[2], 0.0f));
    CHECK(is(y[3], inf));
    CHECK(is(y[4], 0.0f));
    CHECK(is(y[5], 2.0f));
  }
  {
    const auto y = run(kind<K::leaky_relu>, {nan, -inf, inf});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], -inf));
    CHECK(is(y[2], inf));
  }
  {
    const auto y = run(kind<K::elu>, {nan, -inf, inf, -0.0f});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], -1.0f));
    CHECK(is(y[2], inf));
    CHECK(y[3] == 0.0f);
  }
  for (const auto& y : {run(kind<K::gelu_tanh>, {nan, -inf, inf, -30.0f, 30.0f, 0.0f}),
                        run(kind<K::gelu_erf>, {nan, -inf, inf, -30.0f, 30.0f, 0.0f})}) {
    CHECK(is(y[0], nan));
    CHECK(is(y[1], -0.0f));
    CHECK(is(y[2], inf));
    CHECK(is(y[3], -0.0f));
    CHECK(is(y[4], 30.0f));
    CHECK(is(y[5], 0.0f));
  }
  {
    const auto y = run(kind<K::sigmoid>, {nan, -inf, inf, -0.0f, -100.0f, 100.0f});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], 0.0f));
    CHECK(is(y[2], 1.0f));
    CHECK(is(y[3], 0.5f));
    CHECK((y[4] >= 0.0f && y[4] < 1e-38f));  // 3.7e-44: a denormal, or 0 where exp flushes it
    CHECK(is(y[5], 1.0f));
  }
  {
    const auto y = run(kind<K::tanh>, {nan, -inf, inf, -0.0f});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], -1.0f));
    CHECK(is(y[2], 1.0f));
    CHECK(is(y[3], -0.0f));
  }
  {
    const auto y = run(kind<K::exp>, {nan, -inf, inf, 100.0f, 0.0f});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], 0.0f));
    CHECK(is(y[2], inf));
    CHECK(is(y[3], inf));
    CHECK(is(y[4], 1.0f));
  }
  {
    const auto y = run(kind<K::sqrt>, {nan, -1.0f, -0.0f, inf, 4.0f});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], nan));
    CHECK(is(y[2], -0.0f));
    CHECK(is(y[3], inf));
    CHECK(is(y[4], 2.0f));
  }
  {
    const auto y = run(kind<K::rsqrt>, {0.0f, inf, -1.0f, 4.0f});
    CHECK(is(y[0], inf));
    CHECK(is(y[1], 0.0f));
    CHECK(is(y[2], nan));
    CHECK(is(y[3], 0.5f));
  }
  {
    const auto y = run(kind<K::reciprocal>, {0.0f, -0.0f, inf, -inf});
    CHECK(is(y[0], inf));
    CHECK(is(y[1], -inf));
    CHECK(is(y[2], 0.0f));
    CHECK(is(y[3], -0.0f));
  }
  {
    const auto y = run(kind<K::negate>, {nan, 0.0f, -inf});
    CHECK(is(y[0], nan));
    CHECK(is(y[1], -0.0f));
    CHECK(is(y[2], inf));
  }
  {
    const auto y = run(kind<K::zero>, {nan, inf, -1.0f});
    for (float v : y) CHECK(is(v, 0.0f));
  }
  // Backward: a NaN x gives NaN; relu's mask ignores dy where x <= 0; gelu' is 1 at +inf and 0 at -inf.
  const auto back = [](auto kind, std::vector<float> dy, std::vector<float> v) {
    constexpr K k = decltype(kind)::value;
    std::vector<float> dx(dy.size());
    const auto n = index_t(dy.size());
    unary_backward<k>(view(dy.data(), 1, n), view(v.data(), 1, n), view(dx.data(), 1, n));
    return dx;
  };
  {
    const auto dx = back(kind<K::relu>, {1.0f, nan, nan, 2.0f}, {nan, -1.0f, 1.0f, 0.0f});
    CHECK(is(dx[0], nan));
    CHECK(is(dx[1], 0.0f));
    CHECK(is(dx[2], nan));
    CHECK(is(dx[3], 0.0f));
  }
  CHECK(std::isnan(back(kind<K::leaky_relu>, {1.0f}, {nan})[0]));
  CHECK(std::isnan(back(kind<K::elu>, {1.0f}, {nan})[0]));
  for (const auto& dx : {back(kind<K::gelu_tanh>, {3.0f, 3.0f, 1.0f}, {inf, -inf, nan}),
                         back(kind<K::gelu_erf>, {3.0f, 3.0f, 1.0f}, {inf, -inf, nan})}) {
    CHECK(dx[0] == 3.0f);
    CHECK(dx[1] == 0.0f);
    CHECK(std::isnan(dx[2]));
  }
  {
    const auto dx = back(kind<K::tanh>, {2.0f, 2.0f}, {1.0f, -1.0f});
    CHECK(dx[0] == 0.0f);
    CHECK(dx[1] == 0.0f);
  }
}

// ---- dropout ----

namespace {

// Checks y and mask of dropout<P>(x) on shape s against the definition (dropout_keeps, Policy::mul bit for bit).
template <class P, class TI, class TO>
void check_dropout(const test::shape& s, const dropout_params& p, std::uint64_t seed) {
  INFO("dropout ", P::name(), " ", test::describe(s), " p=", p.p, " seed=", p.seed);
  padded<TI> x(s.rows, s.cols, s.pad);
  x.fill(test::uniform(std::size_t(s.rows * s.cols), -4.0f, 4.0f, seed));
  padded<TO> y(s.rows, s.cols, s.pad);
  padded<std::uint8_t> mask(s.rows, s.cols, s.pad);
  dropout<P>(x.cm(), y.m(), mask.m(), p);
  const float scale = float(1.0 / (1.0 - double(p.p)));
  std::size_t bad = 0;
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t j = 0; j < s.cols; ++j) {
      const bool keep = dropout_keeps(p, p.row_offset + i, p.col_offset + j);
      const TO want = from_float<TO>(keep ? P::mul(float(x.value(i, j)), scale) : 0.0f);
      if ((mask(i, j) != (keep ? 1 : 0) || !test::same_bits(y(i, j), want)) && bad++ == 0)
        FAIL_CHECK("(", i, ",", j, ") mask ", int(mask(i, j)), " keep ", keep, " y ", y.value(i, j), " want ",
                   test::as_double(want));
    }
  CHECK(bad == 0);
  CHECK(y.padding_intact());
  CHECK(mask.padding_intact());

  // backward through the same mask: dx = mask ? P(dy, scale) : +0
  padded<TO> dx(s.rows, s.cols, s.pad);
  dropout_backward<P>(x.cm(), mask.cm(), dx.m(), p);
  bad = 0;
  for (index_t i = 0; i < s.rows; ++i)
    for (index_t j = 0; j < s.cols; ++j) {
      const TO want = from_float<TO>(mask(i, j) ? P::mul(float(x.value(i, j)), scale) : 0.0f);
      if (!test::same_bits(dx(i, j), want) && bad++ == 0) FAIL_CHECK("backward (", i, ",", j, ")");
    }
  CHECK(bad == 0);
  CHECK(dx.padding_intact());
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("dropout: y = P(x, 1/(1-p)) where the hash keeps, +0 elsewhere; backward", P,
                          dropout_policies) {
  check_dropout<P, float, float>(sweep_shape, {0.3f, 7, 0, 0}, 41);
}
TEST_CASE_TEMPLATE_APPLY(dropout_policies, tpp::test::op_policies);

TEST_CASE("dropout: edge shapes x dtypes, offsets, p = 0") {
  for (const auto& s : test::edge_shapes()) {
    check_dropout<approx::exact, float, float>(s, {0.5f, 1, 0, 0}, 1);
    check_dropout<approx::exact, bf16, bf16>(s, {0.25f, 2, 3, 5}, 2);
    check_dropout<approx::exact, float, bf16>(s, {0.75f, 3, 1000000007, 4294967290}, 3);
    check_dropout<approx::exact, bf16, float>(s, {0.0f, 4, 0, 0}, 4);
  }
  // p = 0 keeps everything and scales by exactly 1
  std::vector<float> x = test::uniform(100, -1, 1, 5), y(100);
  std::vector<std::uint8_t> mask(100);
  dropout(view(x.data(), 10, 10), view(y.data(), 10, 10), view(mask.data(), 10, 10), {0.0f, 9});
  CHECK(x == y);
  CHECK(std::count(mask.begin(), mask.end(), 1) == 100);
}

TEST_CASE("dropout: reproducible for a seed, different seeds differ, independent of blocking") {
  const index_t M = 37, N = 53;
  const std::vector<float> x = test::uniform(std::size_t(M * N), -1, 1, 6);
  const auto run = [&](dropout_params p) {
    std::vector<float> y(x.size());
    std::vector<std::uint8_t> mask(x.size());
    dropout(view(x.data(), M, N), view(y.data(), M, N), view(mask.data(), M, N), p);
    return std::pair{y, mask};
  };
  const auto a = run({0.5f, 123}), b = run({0.5f, 123}), c = run({0.5f, 124});
  CHECK(a == b);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) differ += a.second[i] != c.second[i];
  CHECK(differ > x.size() / 3);  // expected half

  // The same tensor in tiles of 10 x 16 (ragged at the edges), each with its offsets: the same mask and y.
  std::vector<float> y(x.size());
  std::vector<std::uint8_t> mask(x.size());
  for (index_t i0 = 0; i0 < M; i0 += 10)
    for (index_t j0 = 0; j0 < N; j0 += 16) {
      const index_t r = std::min<index_t>(10, M - i0), cc = std::min<index_t>(16, N - j0);
      dropout(view(x.data() + i0 * N + j0, r, cc, N), view(y.data() + i0 * N + j0, r, cc, N),
              view(mask.data() + i0 * N + j0, r, cc, N), {0.5f, 123, i0, j0});
    }
  CHECK(y == a.first);
  CHECK(mask == a.second);
}

TEST_CASE("dropout: keep rate within a binomial bound of 1 - p; neighbours independent") {
  // n Bernoulli(1 - p) keeps: the count is within 5 standard deviations sqrt(n p (1 - p)) of n (1 - p)
  // (fails with probability < 1e-6 for a good hash); the same for adjacent pairs kept together, whose
  // rate is (1 - p)^2 when neighbours are independent (a row- or column-correlated hash fails it).
  const index_t M = 500, N = 2000;
  const double n = double(M * N);
  std::vector<float> x(std::size_t(M * N), 1.0f), y(x.size());
  std::vector<std::uint8_t> mask(x.size());
  for (float p : {0.1f, 0.5f, 0.9f}) {
    INFO("p = ", p);
    dropout(view(x.data(), M, N), view(y.data(), M, N), view(mask.data(), M, N), {p, 99});
    double kept = 0, pairs_row = 0, pairs_col = 0;
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        const bool k = mask[std::size_t(i * N + j)] != 0;
        kept += k;
        if (j + 1 < N) pairs_row += k && mask[std::size_t(i * N + j + 1)];
        if (i + 1 < M) pairs_col += k && mask[std::size_t((i + 1) * N + j)];
      }
    const double q = 1.0 - double(p);
    CHECK(std::abs(kept - n * q) <= 5 * std::sqrt(n * q * (1 - q)));
    const double nr = double(M * (N - 1)), nc = double((M - 1) * N), q2 = q * q;
    // adjacent pairs overlap, so their count's variance is at most 3x the independent one's
    CHECK(std::abs(pairs_row - nr * q2) <= 5 * std::sqrt(3 * nr * q2 * (1 - q2)));
    CHECK(std::abs(pairs_col - nc * q2) <= 5 * std::sqrt(3 * nc * q2 * (1 - q2)));
  }
  static_assert(dropout_threshold(0.5f) == 0x80000000u);
  static_assert(dropout_threshold(0.0f) == 0u);
}

TEST_CASE("dropout backward: any nonzero mask byte keeps") {
  std::vector<float> dy = {1, 2, 3, 4, 5, 6}, dx(6);
  std::vector<std::uint8_t> mask = {0, 1, 2, 255, 0, 128};
  dropout_backward(view(dy.data(), 2, 3), view(mask.data(), 2, 3), view(dx.data(), 2, 3), {0.5f});
  CHECK(dx == std::vector<float>{0, 4, 6, 8, 0, 12});
}

// ---- kernel objects and bad arguments ----

TEST_CASE("unary: a kernel object is made once for a shape and called many times") {
  const unary_kernel<K::gelu_erf, approx::mitchell<7>, float, bf16> kernel(3, 5);
  CHECK(kernel.rows() == 3);
  CHECK(kernel.cols() == 5);
  std::vector<float> x = test::uniform(15, -2, 2, 8);
  std::vector<bf16> y1(15), y2(15);
  kernel(view(x.data(), 3, 5), view(y1.data(), 3, 5));
  kernel(view<const float>(x.data(), 3, 5), view(y2.data(), 3, 5));
  CHECK(y1 == y2);
  CHECK_THROWS_WITH_AS(kernel(view(x.data(), 5, 3), view(y1.data(), 3, 5)),
                       "tpp::unary.gelu_erf: in shape (5x3) differs from the kernel's (3x5)", error);
}

TEST_CASE("unary, unary_backward, dropout: bad arguments throw tpp::error naming op and argument") {
  float buf[64] = {};
  float other[64] = {};
  std::uint8_t mbuf[64] = {};
  const mat<float> a{buf, 2, 4, 4}, b{other, 2, 4, 4};
  // sizes
  CHECK_THROWS_WITH_AS((unary_kernel<K::relu>(-1, 4)), "tpp::unary.relu: rows is negative (-1)", error);
  CHECK_THROWS_WITH_AS((unary_kernel<K::relu>(4, -2)), "tpp::unary.relu: cols is negative (-2)", error);
  CHECK_THROWS_AS((unary_backward_kernel<K::tanh>(-1, 1)), error);
  CHECK_THROWS_AS((dropout_kernel<>(1, -1, {})), error);
  CHECK_THROWS_AS(unary<K::relu>(a, mat<float>{other, -1, 4, 4}), error);
  // ld < cols, null data
  CHECK_THROWS_WITH_AS(unary<K::relu>(mat<float>{buf, 2, 4, 3}, b),
                       "tpp::unary.relu: in.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(unary<K::exp>(mat<float>{nullptr, 2, 4, 4}, b),
                       "tpp::unary.exp: in.data is null with nonzero size", error);
  CHECK_THROWS_AS(unary<K::exp>(a, mat<float>{other, 2, 4, 2}), error);
  // shapes
  CHECK_THROWS_WITH_AS(unary<K::sigmoid>(mat<float>{buf, 2, 3, 4}, b),
                       "tpp::unary.sigmoid: in shape (2x3) differs from the kernel's (2x4)", error);
  CHECK_THROWS_WITH_AS(unary_backward<K::tanh>(a, mat<float>{buf, 4, 2, 2}, b),
                       "tpp::unary_backward.tanh: y shape (4x2) differs from the kernel's (2x4)", error);
  CHECK_THROWS_WITH_AS(unary_backward<K::relu>(mat<float>{buf, 1, 4, 4}, a, b),
                       "tpp::unary_backward.relu: dy shape (1x4) differs from the kernel's (2x4)", error);
  CHECK_THROWS_AS(unary_backward<K::gelu_erf>(a, mat<float>{nullptr, 2, 4, 4}, b), error);
  // parameters
  unary_params p;
  p.leaky_alpha = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(unary<K::leaky_relu>(a, b, p), doctest::Contains("leaky_alpha"), error);
  p = {};
  p.elu_alpha = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(unary_backward<K::elu>(a, a, b, p), doctest::Contains("elu_alpha"), error);
  // aliasing: the very same view is in-place; a shifted or re-strided overlap throws; column blocks sharing
  // a buffer without sharing elements are fine
  CHECK_NOTHROW(unary<K::relu>(a, a));
  CHECK_THROWS_WITH_AS(unary<K::relu>(mat<float>{buf + 1, 2, 4, 4}, a), doctest::Contains("in overlaps out"), error);
  CHECK_THROWS_AS(unary<K::relu>(mat<float>{buf, 2, 4, 5}, a), error);
  CHECK_THROWS_AS(unary<K::relu>(mat<float>{buf, 4, 2, 2}, mat<float>{buf, 4, 2, 4}), error);
  CHECK_NOTHROW(unary<K::relu>(mat<float>{buf, 4, 4, 8}, mat<float>{buf + 4, 4, 4, 8}));
  CHECK_NOTHROW(unary<K::relu>(mat<float>{buf + 4, 4, 4, 8}, mat<float>{buf, 4, 4, 8}));
  CHECK_THROWS_AS(unary<K::relu>(mat<float>{buf + 3, 4, 4, 8}, mat<float>{buf, 4, 4, 8}), error);
  CHECK_THROWS_AS(unary<K::copy>(a, mat<bf16>{reinterpret_cast<bf16*>(buf), 2, 4, 4}), error);  // other type
  CHECK_NOTHROW(unary_backward<K::tanh>(a, b, b));                                              // dx = y in-place
  CHECK_THROWS_AS(unary_backward<K::tanh>(a, mat<float>{other + 1, 2, 4, 4}, b), error);        // dx overlaps y
  CHECK_NOTHROW(unary_backward<K::sigmoid>(a, b, a));                                           // dx = dy in-place
  // dropout
  const mat<std::uint8_t> mask{mbuf, 2, 4, 4};
  for (float bad : {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    CHECK_THROWS_WITH_AS(dropout(a, b, mask, {bad}), doctest::Contains("tpp::dropout: p ("), error);
    CHECK_THROWS_AS(dropout_backward(a, mask, b, {bad}), error);
    CHECK_THROWS_AS((dropout_kernel<>(2, 4, {bad})), error);
  }
  CHECK_THROWS_WITH_AS(dropout(a, b, mask, {0.5f, 1, -1, 0}), "tpp::dropout: row_offset is negative (-1)", error);
  CHECK_THROWS_AS(dropout(a, b, mask, {0.5f, 1, 0, -3}), error);
  CHECK_THROWS_WITH_AS(dropout(a, b, mat<std::uint8_t>{mbuf, 2, 3, 4}, {}),
                       "tpp::dropout: mask shape (2x3) differs from the kernel's (2x4)", error);
  CHECK_THROWS_AS(dropout(a, b, mat<std::uint8_t>{nullptr, 2, 4, 4}, {}), error);
  CHECK_THROWS_AS(dropout(a, b, mat<std::uint8_t>{reinterpret_cast<std::uint8_t*>(other), 2, 4, 4}, {}), error);
  CHECK_NOTHROW(dropout(a, a, mask, {}));  // in-place
  CHECK_THROWS_AS(dropout_backward(a, mat<std::uint8_t>{mbuf, 4, 2, 2}, b, {}), error);
  CHECK_NOTHROW(dropout_backward(a, mask, a, {}));  // in-place
}
