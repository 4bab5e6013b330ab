// ops/softmax.hpp (softmax, log_softmax, their backwards, cross_entropy): every op against a
// double-precision reference with an error bound derived from the arithmetic (policy sweep over the
// registry), bit-exact policy products where the arithmetic around them is exact, edge and random shapes
// x dtypes x in-place with padding sentinels, rows independent of their block, central finite differences,
// special values and bad arguments.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/core/workspace.hpp>
#include <tpp/ops/softmax.hpp>

#include "approx/sweep.hpp"
#include "ops/elementwise_support.hpp"

namespace {

using namespace tpp;
using test::padded;
using test::ref_value;
using SK = softmax_kind;
constexpr double u = test::u_fp32;
constexpr index_t W = simd::width<>;
const float inf = std::numeric_limits<float>::infinity();
const float qnan = std::numeric_limits<float>::quiet_NaN();

// ---- the error model (the header's accuracy section), in units of u = 2^-24 where not stated ----
// exp: xsimd 8.1 measured within 2.16u relative (test/ops/unary.cpp, 4M arguments), glibc's expf within 1u
// (the TPP_NO_SIMD build): bound 3u. Its argument x - m is one fp32 subtraction, u |x - m| absolute, which
// exp turns into a relative error of the same size. log: glibc's logf within 1 ulp of its result, at most
// 2u relative. A row sum of n terms t_k: every term passes through at most d = softmax_sum_depth(n)
// additions, so |sum - Σ t_k| <= γ_d Σ |t_k| (Higham, Accuracy and Stability of Numerical Algorithms,
// ch. 4); the test "softmax_sum_depth" checks d against the blocking the header documents. xsimd flushes exp results below 2^-126 to +0, so each
// term may also be off by 2^-126 absolutely; bound() adds 2^-124 to every element for such flushes (and
// a policy flushing a product below the normal range). The first-order sums below are multiplied by 1.01
// for the second-order terms (products of two relative errors of at most 1e-5 each: 1e-5 of the bound).
constexpr double e_exp = 3 * u, e_log = 2 * u, second_order = 1.01;

double gamma_of(index_t d) { return double(d) * u / (1 - double(d) * u); }

template <class T>
constexpr double u_out() {
  return std::is_same_v<T, bf16> ? test::u_bf16 : 0.0;
}

// The row statistics of the reference and the relative error bound δ_s of the computed s.
struct row_ref {
  double m = 0, s = 0, ls = 0, delta_s = 0;
  std::vector<double> x, e;  // the inputs as the op sees them, exp(x - m)
  index_t n() const { return index_t(x.size()); }
  double softmax(index_t j) const { return e[std::size_t(j)] / s; }
  double log_softmax(index_t j) const { return (x[std::size_t(j)] - m) - ls; }
  double arg_error(index_t j) const { return u * std::abs(x[std::size_t(j)] - m); }  // x_j - m's rounding
};

row_ref reference(std::vector<double> x) {
  row_ref r;
  r.x = std::move(x);
  r.m = *std::max_element(r.x.begin(), r.x.end());
  double abs_err = 0;  // Σ e_k (e_exp + u |x_k - m|): the terms' own errors
  for (std::size_t k = 0; k < r.x.size(); ++k) {
    r.e.push_back(std::exp(r.x[k] - r.m));
    r.s += r.e.back();
    abs_err += r.e.back() * (e_exp + r.arg_error(index_t(k))) + 0x1p-126;
  }
  r.ls = std::log(r.s);
  r.delta_s = gamma_of(softmax_sum_depth(r.n())) + abs_err / r.s;  // s >= 1: the largest term is exp(0)
  return r;
}

template <class T>
std::vector<double> row_of(const padded<T>& m, index_t i) {
  std::vector<double> v;
  for (index_t j = 0; j < m.cols; ++j) v.push_back(m.value(i, j));
  return v;
}

// softmax y_j = P(e_j, 1/s): e_j's error (exp and its argument), s's, the division's u; the product is P's.
ref_value softmax_ref(const row_ref& r, index_t j) {
  const double y = r.softmax(j);
  return {y, second_order * y * (e_exp + r.arg_error(j) + r.delta_s + u), y};
}

// log_softmax y_j = (x_j - m) - log(s): the subtraction's rounding, s's error through log (absolute δ_s),
// log's own error, the final subtraction's rounding. No product.
ref_value log_softmax_ref(const row_ref& r, index_t j) {
  const double y = r.log_softmax(j);
  return {y, second_order * (r.arg_error(j) + r.delta_s + e_log * std::abs(r.ls) + u * std::abs(y)), 0};
}

// softmax backward from the given dy, y: dot = Σ P(dy_k, y_k) is off by at most
// E = (ε_P + γ_d (1 + ε_P)) Σ |dy_k y_k|; g_j = dy_j - dot by E + u (|g_j| + E); dx_j = P(y_j, g_j).
struct backward_row {
  std::vector<double> dy, y;
  double dot = 0, abs_dot = 0, sum = 0, abs_sum = 0;
};

backward_row backward_stats(std::vector<double> dy, std::vector<double> y) {
  backward_row b{std::move(dy), std::move(y)};
  for (std::size_t k = 0; k < b.dy.size(); ++k) {
    b.dot += b.dy[k] * b.y[k];
    b.abs_dot += std::abs(b.dy[k] * b.y[k]);
    b.sum += b.dy[k];
    b.abs_sum += std::abs(b.dy[k]);
  }
  return b;
}

ref_value softmax_backward_ref(const backward_row& b, index_t j, double eps_p) {
  const double n_gamma = gamma_of(softmax_sum_depth(index_t(b.dy.size())));
  const double E = (eps_p + n_gamma * (1 + eps_p)) * b.abs_dot;
  const double y = b.y[std::size_t(j)], g = b.dy[std::size_t(j)] - b.dot;
  return {y * g, second_order * std::abs(y) * (E + u * (std::abs(g) + E)), std::abs(y * g)};
}

// log_softmax backward dx_j = dy_j - P(exp(y_j), Σ dy): Σ dy off by E = γ_d Σ |dy_k|, exp(y_j) by e_exp
// relative (its argument is an input: exact), the product is P's, the subtraction rounds u |dx_j|.
ref_value log_softmax_backward_ref(const backward_row& b, index_t j) {
  const double E = gamma_of(softmax_sum_depth(index_t(b.dy.size()))) * b.abs_sum;
  const double ey = std::exp(b.y[std::size_t(j)]), dx = b.dy[std::size_t(j)] - ey * b.sum;
  return {dx, second_order * (ey * (e_exp * std::abs(b.sum) + E) + u * std::abs(dx)), std::abs(ey * b.sum)};
}

// cross-entropy row loss log(s) - (x_l - m): the subtraction x_l - m, s's error through log, log's own,
// the final subtraction.
double ce_loss(const row_ref& r, index_t l) { return r.ls - (r.x[std::size_t(l)] - r.m); }
double ce_loss_error(const row_ref& r, index_t l) {
  return second_order * (r.arg_error(l) + r.delta_s + e_log * std::abs(r.ls) + u * std::abs(ce_loss(r, l)));
}

// gradient g_j = P(e_j, c) - [j = l] / M, c = 1 / (s M) in fp32 (s's error, two roundings): e_j's and c's
// errors, P's; at the label the rounded 1/M (u / M) and the subtraction (u |g|).
ref_value ce_grad_ref(const row_ref& r, index_t j, index_t l, index_t M) {
  const double p = r.softmax(j) / double(M), g = p - (j == l ? 1.0 / double(M) : 0.0);
  double err = p * (e_exp + r.arg_error(j) + r.delta_s + 2 * u);
  if (j == l) err += u / double(M) + u * std::abs(g);
  return {g, second_order * err, p};
}

// Arguments: uniform in [lo, hi); the default keeps exp's arguments within -16, wide ones reach the
// flush region (x - m < -88).
std::vector<float> args(index_t n, std::uint64_t seed, float lo = -8.0f, float hi = 8.0f) {
  return test::uniform(std::size_t(n), lo, hi, seed);
}

// Shapes: the named edge sweep (1x1, W - 1, W, W + 1, 2W + 3, 3W - 1 columns, padded ld) and random
// shapes with prime columns, columns around a leaf (S U W = 64 W elements) and rows around a block.
std::vector<test::shape> shapes() {
  std::vector<test::shape> s = test::edge_shapes();
  const index_t cols[] = {2, 3, 5, 7, 13, 31, 61, 127, 128, 257, 64 * W - 1, 64 * W + 1, 1031, 2053, 4099};
  std::mt19937_64 g(2024);
  for (index_t c : cols) s.push_back({index_t(1 + g() % 11), c, index_t(g() % 6)});
  s.push_back({17, 1, 0});
  s.push_back({19, 100, 3});  // several blocks of 8 rows (block_rows(100) = 8 at any W)
  return s;
}

const test::shape sweep_shape{7, 3 * W + 5, 3};
const test::shape long_shape{2, 64 * W * 2 + 37, 1};  // three leaves, a tail

// ---- checks ----

template <class P, class TX, class TY>
void check_forward(SK kind, const test::shape& s, std::uint64_t seed, bool in_place = false, float lo = -8.0f,
                   float hi = 8.0f) {
  INFO(name(kind), " ", P::name(), " ", test::describe(s), in_place ? " in-place" : "", " seed ", seed);
  padded<TX> x(s.rows, s.cols, s.pad);
  x.fill(args(s.rows * s.cols, seed, lo, hi));
  const padded<TX> x0 = x;
  padded<TY> y(s.rows, s.cols, s.pad);
  const auto run = [&]<SK K>() {
    const softmax_kernel<K, P, TX, TY> k(s.rows, s.cols);
    if constexpr (std::is_same_v<TX, TY>) {
      if (in_place) {
        k.forward(x.m(), x.m());
        y = x;
      } else {
        k.forward(x.cm(), y.m());
      }
    } else {
      k.forward(x.m(), y.m());
    }
  };
  kind == SK::softmax ? run.template operator()<SK::softmax>() : run.template operator()<SK::log_softmax>();
  std::size_t bad = 0;
  for (index_t i = 0; i < s.rows; ++i) {
    const row_ref r = reference(row_of(x0, i));
    for (index_t j = 0; j < s.cols; ++j) {
      const ref_value want = kind == SK::softmax ? softmax_ref(r, j) : log_softmax_ref(r, j);
      const double tol = test::bound(want, P::max_rel_error, u_out<TY>()), got = y.value(i, j);
      if (!test::within(got, want.y, tol) && bad++ == 0)
        FAIL_CHECK("(", i, ",", j, ") x=", x0.value(i, j), " got ", got, " want ", want.y, " +- ", tol);
    }
  }
  CHECK(bad == 0);
  CHECK(y.padding_intact());
}

// in_place: 0 none, 1 dx = dy, 2 dx = y.
template <class P, class TG, class TY, class TD>
void check_backward(SK kind, const test::shape& s, std::uint64_t seed, int in_place = 0) {
  INFO(name(kind), "_backward ", P::name(), " ", test::describe(s), " in-place ", in_place, " seed ", seed);
  const index_t n = s.rows * s.cols;
  const std::vector<float> xs = args(n, seed);
  std::vector<float> ys(static_cast<std::size_t>(n));
  for (index_t i = 0; i < s.rows; ++i) {
    std::vector<double> row(xs.begin() + i * s.cols, xs.begin() + (i + 1) * s.cols);
    const row_ref r = reference(row);
    for (index_t j = 0; j < s.cols; ++j)
      ys[std::size_t(i * s.cols + j)] = float(kind == SK::softmax ? r.softmax(j) : r.log_softmax(j));
  }
  padded<TG> dy(s.rows, s.cols, s.pad);
  padded<TY> y(s.rows, s.cols, s.pad);
  dy.fill(test::uniform(std::size_t(n), -2.0f, 2.0f, seed + 1));
  y.fill(ys);
  const padded<TG> dy0 = dy;
  const padded<TY> y0 = y;
  padded<TD> dx(s.rows, s.cols, s.pad);
  const auto run = [&]<SK K>() {
    const softmax_kernel<K, P, TD, TY, TG, TD> k(s.rows, s.cols);  // (x's type TD: unused by backward)
    if constexpr (std::is_same_v<TG, TD> && std::is_same_v<TY, TD>) {
      if (in_place == 1) {
        k.backward(dy.m(), y.cm(), dy.m());
        dx = dy;
      } else if (in_place == 2) {
        k.backward(dy.cm(), y.m(), y.m());
        dx = y;
      } else {
        k.backward(dy.cm(), y.cm(), dx.m());
      }
    } else {
      k.backward(dy.m(), y.m(), dx.m());
    }
  };
  kind == SK::softmax ? run.template operator()<SK::softmax>() : run.template operator()<SK::log_softmax>();
  std::size_t bad = 0;
  for (index_t i = 0; i < s.rows; ++i) {
    const backward_row b = backward_stats(row_of(dy0, i), row_of(y0, i));
    for (index_t j = 0; j < s.cols; ++j) {
      const ref_value want =
          kind == SK::softmax ? softmax_backward_ref(b, j, P::max_rel_error) : log_softmax_backward_ref(b, j);
      const double tol = test::bound(want, P::max_rel_error, u_out<TD>()), got = dx.value(i, j);
      if (!test::within(got, want.y, tol) && bad++ == 0)
        FAIL_CHECK("(", i, ",", j, ") dy=", dy0.value(i, j), " y=", y0.value(i, j), " got ", got, " want ", want.y,
                   " +- ", tol);
    }
  }
  CHECK(bad == 0);
  CHECK(dx.padding_intact());
}

std::vector<std::int32_t> random_labels(index_t rows, index_t cols, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<std::int32_t> l(static_cast<std::size_t>(rows));
  for (auto& v : l) v = std::int32_t(g() % std::uint64_t(cols));
  return l;
}

// mode: 0 no gradient, 1 gradient, 2 gradient in place (dlogits = logits).
template <class P, class TX, class TD>
void check_cross_entropy(const test::shape& s, std::uint64_t seed, int mode, float lo = -8.0f, float hi = 8.0f) {
  INFO("cross_entropy ", P::name(), " ", test::describe(s), " mode ", mode, " seed ", seed);
  padded<TX> x(s.rows, s.cols, s.pad);
  x.fill(args(s.rows * s.cols, seed, lo, hi));
  const padded<TX> x0 = x;
  const std::vector<std::int32_t> labels = random_labels(s.rows, s.cols, seed + 7);
  padded<TD> d(s.rows, s.cols, s.pad);
  float loss = 0;
  if (mode == 0) {
    loss = cross_entropy<P>(x.cm(), labels);
  } else if constexpr (std::is_same_v<TX, TD>) {
    if (mode == 2) {
      loss = cross_entropy<P>(x.m(), labels, x.m());
      d = x;
    } else {
      loss = cross_entropy<P>(x.cm(), labels, d.m());
    }
  } else {
    loss = cross_entropy<P>(x.m(), labels, d.m());
  }
  double want = 0, tol = 0;
  const index_t M = s.rows;
  std::size_t bad = 0;
  for (index_t i = 0; i < M; ++i) {
    const row_ref r = reference(row_of(x0, i));
    const index_t l = labels[std::size_t(i)];
    want += ce_loss(r, l) / double(M);
    tol += ce_loss_error(r, l) / double(M);
    if (mode == 0) continue;
    for (index_t j = 0; j < s.cols; ++j) {
      const ref_value g = ce_grad_ref(r, j, l, M);
      const double gt = test::bound(g, P::max_rel_error, u_out<TD>()), got = d.value(i, j);
      if (!test::within(got, g.y, gt) && bad++ == 0)
        FAIL_CHECK("gradient (", i, ",", j, ") label ", l, " got ", got, " want ", g.y, " +- ", gt);
    }
  }
  tol = second_order * (tol + u * std::abs(want));  // the mean's rounding to fp32
  CHECK(std::abs(double(loss) - want) <= tol);
  CHECK(bad == 0);
  CHECK(d.padding_intact());
}

// Whether every op under P gives results different from exact's somewhere in the SIMD body and somewhere
// in the tail of random rows: the policy is not dropped on either path. (A policy within 2^-20 of exact
// could legitimately agree everywhere; none in the registry is; each region holds 15 or more elements.)
template <class P>
bool differs_from_exact() {
  const index_t M = 3, N = 3 * W + 5, body = N - N % W;
  const std::vector<float> x = args(M * N, 77), dy = test::uniform(std::size_t(M * N), -2.0f, 2.0f, 78);
  std::vector<float> a(x.size()), b(x.size()), c(x.size()), e(x.size());
  const std::vector<std::int32_t> labels = {0, 1, 2};
  bool all = true;
  const auto cmp = [&](const char* what) {
    bool in_body = false, in_tail = W == 1;  // the scalar build has no tail
    for (std::size_t k = 0; k < a.size(); ++k)
      if (test::bits(a[k]) != test::bits(b[k])) (index_t(k) % N < body ? in_body : in_tail) = true;
    if (!(in_body && in_tail)) {
      INFO(what, " body ", in_body, " tail ", in_tail);
      FAIL_CHECK("equal to exact");
    }
    all = all && in_body && in_tail;
  };
  softmax<SK::softmax, P>(view(x.data(), M, N), view(a.data(), M, N));
  softmax<SK::softmax, approx::exact>(view(x.data(), M, N), view(b.data(), M, N));
  cmp("softmax");
  softmax_backward<SK::softmax, P>(view(dy.data(), M, N), view(b.data(), M, N), view(c.data(), M, N));
  softmax_backward<SK::softmax, approx::exact>(view(dy.data(), M, N), view(b.data(), M, N), view(e.data(), M, N));
  a = c;
  b = e;
  cmp("softmax_backward");
  softmax<SK::log_softmax, approx::exact>(view(x.data(), M, N), view(e.data(), M, N));
  softmax_backward<SK::log_softmax, P>(view(dy.data(), M, N), view(e.data(), M, N), view(a.data(), M, N));
  softmax_backward<SK::log_softmax, approx::exact>(view(dy.data(), M, N), view(e.data(), M, N), view(b.data(), M, N));
  cmp("log_softmax_backward");
  cross_entropy<P>(view(x.data(), M, N), labels, view(a.data(), M, N));
  cross_entropy<approx::exact>(view(x.data(), M, N), labels, view(b.data(), M, N));
  cmp("cross_entropy");
  return all;
}

}  // namespace

// ---- policy sweep: every registered policy, fp32 and bf16 outputs, a long row ----

TEST_CASE_TEMPLATE_DEFINE("softmax, log_softmax: forward vs a double reference, per policy", P, softmax_forward_policies) {
  for (SK kind : {SK::softmax, SK::log_softmax}) {
    check_forward<P, float, float>(kind, sweep_shape, 11);
    check_forward<P, float, bf16>(kind, sweep_shape, 12);
    check_forward<P, float, float>(kind, long_shape, 13);
    check_forward<P, float, float>(kind, sweep_shape, 14, false, -60.0f, 60.0f);  // exp flushes some terms
  }
  if constexpr (!std::is_same_v<P, approx::exact>) {
    INFO(P::name());
    CHECK(differs_from_exact<P>());
  }
}
TEST_CASE_TEMPLATE_APPLY(softmax_forward_policies, tpp::test::op_policies);

TEST_CASE_TEMPLATE_DEFINE("softmax, log_softmax: backward vs a double reference, per policy", P,
                          softmax_backward_policies) {
  for (SK kind : {SK::softmax, SK::log_softmax}) {
    check_backward<P, float, float, float>(kind, sweep_shape, 21);
    check_backward<P, bf16, bf16, bf16>(kind, sweep_shape, 22);
    check_backward<P, float, float, float>(kind, long_shape, 23);
  }
}
TEST_CASE_TEMPLATE_APPLY(softmax_backward_policies, tpp::test::op_policies);

TEST_CASE_TEMPLATE_DEFINE("cross_entropy: loss and gradient vs a double reference, per policy", P, ce_policies) {
  check_cross_entropy<P, float, float>(sweep_shape, 31, 1);
  check_cross_entropy<P, float, bf16>(sweep_shape, 32, 1);
  check_cross_entropy<P, float, float>(long_shape, 33, 1);
  check_cross_entropy<P, float, float>(sweep_shape, 34, 0, -60.0f, 60.0f);
}
TEST_CASE_TEMPLATE_APPLY(ce_policies, tpp::test::op_policies);

// Rows where every operation around the products is exact, so the outputs are Policy::mul bit for bit:
// k zeros and -Inf elsewhere give e = 1 or +0 exactly, s = k, so softmax y = P(1, fl(1/k)) at the zeros and
// P(+0, fl(1/k)) = +0 elsewhere, and the gradient P(1, fl(1 / (k M))) (minus fl(1/M) at the label, in fp32);
// y one-hot at column h gives dot = P(dy_h, 1) (the other terms are zeros), dx_h = P(1, dy_h - dot) and
// dx_j = P(+0, .) = +-0 elsewhere. The hot columns sit in the SIMD body and in the tail.
TEST_CASE_TEMPLATE_DEFINE("softmax family: products go through the policy bit for bit", P, softmax_exact_policies) {
  INFO(P::name());
  const index_t N = 3 * W + 3, M = 4;
  std::vector<float> x(std::size_t(M * N), -inf), y(x.size()), d(x.size());
  const index_t zeros[M] = {1, 2, 3, 5};  // row i has zeros[i] zeros, spread over body and tail
  for (index_t i = 0; i < M; ++i)
    for (index_t z = 0; z < zeros[i]; ++z) x[std::size_t(i * N + (z * 7 + i) % N)] = 0.0f;
  softmax<SK::softmax, P>(view(x.data(), M, N), view(y.data(), M, N));
  std::vector<std::int32_t> labels(M);
  for (index_t i = 0; i < M; ++i) labels[std::size_t(i)] = std::int32_t(i % N);  // a zero of row i
  const float loss = cross_entropy<P>(view(x.data(), M, N), labels, view(d.data(), M, N));
  std::size_t bad = 0;
  double total = 0;
  for (index_t i = 0; i < M; ++i) {
    const float k = float(zeros[i]);
    total += double(std::log(k) - (0.0f - 0.0f));
    for (index_t j = 0; j < N; ++j) {
      const std::size_t at = std::size_t(i * N + j);
      const bool zero = x[at] == 0.0f;
      const float want_y = zero ? P::mul(1.0f, 1.0f / k) : 0.0f;
      float want_d = zero ? P::mul(1.0f, 1.0f / (k * float(M))) : 0.0f;
      if (j == labels[std::size_t(i)]) want_d = P::mul(1.0f, 1.0f / (k * float(M))) - 1.0f / float(M);
      if ((test::bits(y[at]) != test::bits(want_y) || test::bits(d[at]) != test::bits(want_d)) && bad++ == 0)
        FAIL_CHECK("(", i, ",", j, ") y ", y[at], " want ", want_y, " d ", d[at], " want ", want_d);
    }
  }
  CHECK(bad == 0);
  CHECK(loss == float(total / double(M)));  // log(k) - (0 - 0) per row, summed in double, rounded once

  std::vector<float> dy = test::uniform(std::size_t(M * N), -2.0f, 2.0f, 5), oh(x.size(), 0.0f), dx(x.size());
  const index_t hot[M] = {0, W - 1, 2 * W + 1, N - 1};
  for (index_t i = 0; i < M; ++i) oh[std::size_t(i * N + hot[i])] = 1.0f;
  softmax_backward<SK::softmax, P>(view(dy.data(), M, N), view(oh.data(), M, N), view(dx.data(), M, N));
  bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      const std::size_t at = std::size_t(i * N + j);
      const float g = dy[std::size_t(i * N + hot[i])];
      const bool ok = j == hot[i] ? test::bits(dx[at]) == test::bits(P::mul(1.0f, g - P::mul(g, 1.0f)))
                                  : dx[at] == 0.0f;
      if (!ok && bad++ == 0) FAIL_CHECK("backward (", i, ",", j, ") dx ", dx[at]);
    }
  CHECK(bad == 0);

  // log_softmax backward with y = 0 (exp(y) = 1 exactly) and dy multiples of 2^-12 (Σ dy exact):
  // dx_j = fl(dy_j - P(1, Σ dy)), Σ dy = 1 + 2^-10 + 2^-12 needing more than 8 significant bits.
  std::vector<float> z(x.size(), 0.0f), g(x.size(), 0.0f);
  for (index_t i = 0; i < M; ++i) {
    g[std::size_t(i * N)] = 1.0f;
    g[std::size_t(i * N + W / 2)] = 0x1p-10f;
    g[std::size_t(i * N + N - 1)] = 0x1p-12f;
  }
  softmax_backward<SK::log_softmax, P>(view(g.data(), M, N), view(z.data(), M, N), view(dx.data(), M, N));
  const float S = 1.0f + 0x1p-10f + 0x1p-12f;
  bad = 0;
  for (std::size_t k = 0; k < g.size(); ++k)
    if (test::bits(dx[k]) != test::bits(g[k] - P::mul(1.0f, S)) && bad++ == 0)
      FAIL_CHECK("log_softmax backward ", k, " dx ", dx[k], " want ", g[k] - P::mul(1.0f, S));
  CHECK(bad == 0);
}
TEST_CASE_TEMPLATE_APPLY(softmax_exact_policies, tpp::test::op_policies);

// ---- exact policy: shapes x dtypes x in-place ----

TEST_CASE("softmax, log_softmax forward: edge and random shapes x dtypes x in-place, padding untouched") {
  using E = approx::exact;
  std::uint64_t seed = 100;
  for (const auto& s : shapes())
    for (SK kind : {SK::softmax, SK::log_softmax}) {
      check_forward<E, float, float>(kind, s, seed++);
      check_forward<E, float, bf16>(kind, s, seed++);
      check_forward<E, bf16, float>(kind, s, seed++);
      check_forward<E, bf16, bf16>(kind, s, seed++);
      check_forward<E, float, float>(kind, s, seed++, true);
      check_forward<E, bf16, bf16>(kind, s, seed++, true);
      check_forward<E, float, float>(kind, s, seed++, false, -1000.0f, -990.0f);  // every exp(x) underflows
      check_forward<E, bf16, float>(kind, s, seed++, false, 5e3f, 5.1e3f);        // every exp(x) overflows
    }
}

TEST_CASE("softmax, log_softmax backward: edge and random shapes x dtypes x in-place, padding untouched") {
  using E = approx::exact;
  std::uint64_t seed = 1000;
  for (const auto& s : shapes())
    for (SK kind : {SK::softmax, SK::log_softmax}) {
      check_backward<E, float, float, float>(kind, s, seed++);
      check_backward<E, bf16, bf16, bf16>(kind, s, seed++);
      check_backward<E, float, bf16, float>(kind, s, seed++);
      check_backward<E, bf16, float, bf16>(kind, s, seed++);
      check_backward<E, float, float, float>(kind, s, seed++, 1);
      check_backward<E, float, float, float>(kind, s, seed++, 2);
      check_backward<E, bf16, bf16, bf16>(kind, s, seed++, 2);
    }
}

TEST_CASE("cross_entropy: edge and random shapes x dtypes, with and without the gradient, in-place") {
  using E = approx::exact;
  std::uint64_t seed = 2000;
  for (const auto& s : shapes()) {
    check_cross_entropy<E, float, float>(s, seed++, 0);
    check_cross_entropy<E, float, float>(s, seed++, 1);
    check_cross_entropy<E, float, float>(s, seed++, 2);
    check_cross_entropy<E, bf16, float>(s, seed++, 1);
    check_cross_entropy<E, float, bf16>(s, seed++, 1);
    check_cross_entropy<E, bf16, bf16>(s, seed++, 2);
    check_cross_entropy<E, float, float>(s, seed++, 1, -1000.0f, -990.0f);
  }
}

TEST_CASE("softmax family: a row's result does not depend on the rows around it (blocks, prefetch)") {
  // Rows go through the passes in blocks of up to 8 (short rows) or one at a time fetching the next (long
  // rows): each row of an M-row call must equal, bit for bit, the same row run alone; cross-entropy's
  // gradient rows (scaled by 1/M) must follow a permutation of the rows bit for bit, its loss (a double sum
  // in another order) to one fp32 rounding.
  for (index_t N : {index_t(1), index_t(5), W + 3, index_t(128), index_t(1500), index_t(2500)}) {
    const index_t M = 11;
    INFO("N = ", N);
    const std::vector<float> x = args(M * N, 300 + std::uint64_t(N), -20.0f, 20.0f);
    const std::vector<float> dy = test::uniform(std::size_t(M * N), -1.0f, 1.0f, 400);
    std::vector<float> all[4], one[4];
    for (auto& v : all) v.resize(x.size());
    for (auto& v : one) v.resize(x.size());
    const auto run = [&](std::vector<float>* out, index_t i0, index_t rows) {
      const auto at = [&](const std::vector<float>& v) { return view(v.data() + i0 * N, rows, N); };
      const auto mut = [&](std::vector<float>& v) { return view(v.data() + i0 * N, rows, N); };
      softmax<SK::softmax>(at(x), mut(out[0]));
      softmax<SK::log_softmax>(at(x), mut(out[1]));
      softmax_backward<SK::softmax>(at(dy), at(out[0]), mut(out[2]));
      softmax_backward<SK::log_softmax>(at(dy), at(out[1]), mut(out[3]));
    };
    run(all, 0, M);
    for (index_t i = 0; i < M; ++i) run(one, i, 1);
    for (int k = 0; k < 4; ++k) {
      INFO("output ", k);
      CHECK(std::equal(all[k].begin(), all[k].end(), one[k].begin(),
                       [](float a, float b) { return test::bits(a) == test::bits(b); }));
    }
    const std::vector<std::int32_t> labels = random_labels(M, N, 9);
    std::vector<float> xr(x.size()), d(x.size()), dr(x.size());
    std::vector<std::int32_t> lr(labels.size());
    const auto perm = [&](index_t i) { return (i * 7 + 3) % M; };  // a permutation of 0..10
    for (index_t i = 0; i < M; ++i) {
      std::copy_n(x.begin() + perm(i) * N, N, xr.begin() + i * N);
      lr[std::size_t(i)] = labels[std::size_t(perm(i))];
    }
    const float loss = cross_entropy(view(x.data(), M, N), labels, view(d.data(), M, N));
    const float loss_r = cross_entropy(view(xr.data(), M, N), lr, view(dr.data(), M, N));
    CHECK(std::abs(double(loss) - double(loss_r)) <= u * std::abs(double(loss)));
    std::size_t bad = 0;
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j)
        bad += test::bits(dr[std::size_t(i * N + j)]) != test::bits(d[std::size_t(perm(i) * N + j)]);
    CHECK(bad == 0);
  }
}

TEST_CASE("softmax family: free functions and kernel objects agree; a kernel is made once, called many times") {
  const index_t M = 5, N = 2 * W + 3;
  const std::vector<float> x = args(M * N, 41), dy = test::uniform(std::size_t(M * N), -1.0f, 1.0f, 42);
  std::vector<bf16> a(x.size()), b(x.size());
  const softmax_kernel<SK::softmax, approx::mitchell<7>, float, bf16, float, float> k(M, N);
  CHECK(k.rows() == M);
  CHECK(k.cols() == N);
  CHECK(k.kind() == SK::softmax);
  CHECK(softmax_kernel<SK::log_softmax>(1, 1).kind() == SK::log_softmax);
  k.forward(view(x.data(), M, N), view(a.data(), M, N));
  softmax<SK::softmax, approx::mitchell<7>>(view<const float>(x.data(), M, N), view(b.data(), M, N));
  CHECK(a == b);
  k.forward(view(x.data(), M, N), view(b.data(), M, N));
  CHECK(a == b);
  std::vector<float> c(x.size()), e(x.size());
  k.backward(view(dy.data(), M, N), view<const bf16>(a.data(), M, N), view(c.data(), M, N));
  softmax_backward<SK::softmax, approx::mitchell<7>>(view(dy.data(), M, N), view(a.data(), M, N), view(e.data(), M, N));
  CHECK(c == e);
  const softmax_kernel<SK::log_softmax, approx::exact, float, float, float, bf16> kl(M, N);
  kl.forward(view(x.data(), M, N), view(c.data(), M, N));
  softmax<SK::log_softmax>(view(x.data(), M, N), view(e.data(), M, N));
  CHECK(c == e);
  kl.backward(view(dy.data(), M, N), view(c.data(), M, N), view(a.data(), M, N));
  softmax_backward<SK::log_softmax>(view(dy.data(), M, N), view(c.data(), M, N), view(b.data(), M, N));
  CHECK(a == b);
  static_assert(name(SK::softmax) == "softmax" && name(SK::log_softmax) == "log_softmax");
}

TEST_CASE("softmax family: a caller's workspace gives the arena's results; too small throws; nested frames") {
  const index_t M = 19, N = 100;  // several blocks of 8 rows
  const std::vector<float> x = args(M * N, 51);
  const softmax_kernel<SK::softmax, approx::exact, float, bf16> k(M, N);
  CHECK(k.workspace_bytes() > 0);
  CHECK(softmax_kernel<SK::softmax>(M, N).workspace_bytes() == 0);  // an fp32 y holds e itself
  CHECK(softmax_kernel<SK::log_softmax, approx::exact, float, bf16>(M, N).workspace_bytes() == 0);
  const std::size_t need = k.workspace_bytes();
  std::vector<std::byte> mem(need + 5);
  const workspace ws{mem.data() + 5, need};  // unaligned on purpose
  std::vector<bf16> a(x.size()), b(x.size()), c(x.size());
  k.forward(view(x.data(), M, N), view(a.data(), M, N));
  const std::vector<std::int32_t> labels = random_labels(M, N, 52);
  const cross_entropy_kernel<approx::exact, float, bf16> ce(M, N);
  CHECK(ce.workspace_bytes() == need);
  CHECK(cross_entropy_kernel<>(M, N).workspace_bytes() == 0);
  std::vector<bf16> d1(x.size()), d2(x.size()), d3(x.size());
  const float l1 = ce(view(x.data(), M, N), labels, view(d1.data(), M, N));
  CHECK(l1 == cross_entropy(view(x.data(), M, N), labels, view(d2.data(), M, N)));
  CHECK(d1 == d2);
  {
    tpp::scratch outer;  // a frame held around the calls, as a layer's loop would
    float* held = outer.take<float>(3000);
    std::fill_n(held, 3000, 1.25f);
    k.forward(view(x.data(), M, N), view(b.data(), M, N), ws);
    k.forward(view(x.data(), M, N), view(c.data(), M, N));  // on the arena, above `held`
    CHECK(a == b);
    CHECK(a == c);
    CHECK(ce(view(x.data(), M, N), labels, view(d3.data(), M, N), ws) == l1);
    CHECK(d1 == d3);
    CHECK(std::all_of(held, held + 3000, [](float v) { return v == 1.25f; }));
  }
  const workspace small{mem.data() + 5, need - 65};  // short of the rows at any alignment
  CHECK_THROWS_WITH_AS(k.forward(view(x.data(), M, N), view(b.data(), M, N), small),
                       doctest::Contains("tpp::softmax: workspace"), error);
  CHECK_THROWS_WITH_AS(ce(view(x.data(), M, N), labels, view(d3.data(), M, N), small),
                       doctest::Contains("tpp::cross_entropy: workspace"), error);
}

TEST_CASE("softmax_sum_depth: the blocking's depth, within 24 + ceil(log2 n)") {
  // d = ceil(min(n, 64 L) / (4 L)) + 2 + log2 L + ceil(log2 ceil(n / (64 L))), the header's formula for
  // L lanes.
  const auto clog2 = [](index_t v) {
    index_t l = 0;
    while ((index_t(1) << l) < v) ++l;
    return l;
  };
  constexpr index_t L = lanes::width<simd::lane>;  // the ops' lanes: 1 with TPP_NO_SIMD
  for (index_t n = 2; n < 20000; n += (n < 300 ? 1 : 97)) {
    const index_t first = std::min(n, 64 * L);
    const index_t want = ((first + L - 1) / L + 3) / 4 + 2 + clog2(L) + clog2((n + 64 * L - 1) / (64 * L));
    INFO("n = ", n);
    CHECK(softmax_sum_depth(n) == want);
    CHECK(softmax_sum_depth(n) <= 24 + clog2(n));
  }
  CHECK(softmax_sum_depth(0) == 0);
  CHECK(softmax_sum_depth(1) == 0);
  if (L == 16) {  // the values the header quotes
    CHECK(softmax_sum_depth(128) == 8);
    CHECK(softmax_sum_depth(30522) == 27);
  }
}

// ---- finite differences ----

namespace {

std::vector<double> softmax_d(const std::vector<double>& x) {
  const row_ref r = reference(x);
  std::vector<double> p;
  for (index_t j = 0; j < r.n(); ++j) p.push_back(r.softmax(j));
  return p;
}

std::vector<double> log_softmax_d(const std::vector<double>& x) {
  const row_ref r = reference(x);
  std::vector<double> p;
  for (index_t j = 0; j < r.n(); ++j) p.push_back(r.log_softmax(j));
  return p;
}

}  // namespace

TEST_CASE("softmax, log_softmax backward: central finite differences of the forward in double") {
  // L(x) = Σ_j dy_j f(x)_j; dL/dx_k by (L(x + h e_k) - L(x - h e_k)) / 2h, h = 1e-4. Truncation: h^2 / 6
  // max |d^3 L / dx_k^3|; the third derivatives of softmax_j and log_softmax_j in x_k are p (1 - p)
  // (1 - 6p + 6p^2)-type polynomials in the probabilities, at most 0.25 in magnitude, so the truncation is
  // below 5e-10 Σ|dy|; L's double rounding (1e-16 n Σ|dy| over 2h) below 1e-12 n Σ|dy|. The op gets y
  // rounded to fp32 (u |y| each): its dx moves by at most 2u (|y_k| |dy_k - dot| + |y_k| Σ |dy_j y_j|)
  // (softmax) or u exp(y_k) |y_k| |Σ dy| (log_softmax); plus the op's own bound from those inputs.
  const double h = 1e-4;
  for (SK kind : {SK::softmax, SK::log_softmax})
    for (index_t N : {index_t(1), index_t(2), index_t(5), W + 3, index_t(37)}) {
      INFO(name(kind), " N = ", N);
      const std::vector<float> xf = args(N, 500 + std::uint64_t(N), -3.0f, 3.0f);
      const std::vector<float> dyf = test::uniform(std::size_t(N), -2.0f, 2.0f, 600 + std::uint64_t(N));
      const std::vector<double> x(xf.begin(), xf.end()), dy(dyf.begin(), dyf.end());
      const auto f = [&](const std::vector<double>& v) { return kind == SK::softmax ? softmax_d(v) : log_softmax_d(v); };
      const std::vector<double> yd = f(x);
      std::vector<float> yf(yd.begin(), yd.end()), dx(static_cast<std::size_t>(N));
      if (kind == SK::softmax)
        softmax_backward<SK::softmax>(view(dyf.data(), 1, N), view(yf.data(), 1, N), view(dx.data(), 1, N));
      else
        softmax_backward<SK::log_softmax>(view(dyf.data(), 1, N), view(yf.data(), 1, N), view(dx.data(), 1, N));
      const backward_row b = backward_stats(dy, std::vector<double>(yf.begin(), yf.end()));
      const auto L = [&](const std::vector<double>& v) {
        const std::vector<double> p = f(v);
        double s = 0;
        for (index_t j = 0; j < N; ++j) s += dy[std::size_t(j)] * p[std::size_t(j)];
        return s;
      };
      std::size_t bad = 0;
      for (index_t k = 0; k < N; ++k) {
        std::vector<double> xp = x, xm = x;
        xp[std::size_t(k)] += h;
        xm[std::size_t(k)] -= h;
        const double fd = (L(xp) - L(xm)) / (2 * h);
        const double yk = b.y[std::size_t(k)];
        const ref_value op = kind == SK::softmax ? softmax_backward_ref(b, k, u) : log_softmax_backward_ref(b, k);
        const double y_rounding =
            kind == SK::softmax ? 2 * u * (std::abs(yk) * std::abs(dy[std::size_t(k)] - b.dot) + std::abs(yk) * b.abs_dot)
                                : u * std::exp(yk) * std::abs(yk) * std::abs(b.sum);
        const double tol = test::bound(op, u, 0) + y_rounding + (5e-10 + 1e-12 * double(N)) * b.abs_sum;
        if (std::abs(dx[std::size_t(k)] - fd) > tol && bad++ == 0)
          FAIL_CHECK("k=", k, " dx ", dx[std::size_t(k)], " fd ", fd, " +- ", tol);
      }
      CHECK(bad == 0);
    }
}

TEST_CASE("cross_entropy: the gradient agrees with central finite differences of the loss in double") {
  // loss(x) = (1/M) Σ_i (log Σ_j exp(x_ij) - x_i,l_i); d^3 loss / dx_ik^3 = (1/M) p (1 - p) (1 - 2p), at most
  // 0.1 / M, so with h = 1e-4 the truncation is below 2e-10 / M; the loss's double rounding (about 1e-15 of
  // a loss below 10, over 2h) below 1e-10. Plus the op's bound (ce_grad_ref) from the fp32 logits.
  const double h = 1e-4;
  for (index_t N : {index_t(1), index_t(3), W + 1, index_t(40)}) {
    const index_t M = 3;
    INFO("N = ", N);
    const std::vector<float> xf = args(M * N, 700 + std::uint64_t(N), -4.0f, 4.0f);
    const std::vector<std::int32_t> labels = random_labels(M, N, 701);
    std::vector<float> d(xf.size());
    cross_entropy(view(xf.data(), M, N), labels, view(d.data(), M, N));
    const std::vector<double> x(xf.begin(), xf.end());
    const auto loss = [&](const std::vector<double>& v) {
      double t = 0;
      for (index_t i = 0; i < M; ++i) {
        const row_ref r = reference(std::vector<double>(v.begin() + i * N, v.begin() + (i + 1) * N));
        t += ce_loss(r, labels[std::size_t(i)]);
      }
      return t / double(M);
    };
    std::size_t bad = 0;
    for (index_t i = 0; i < M; ++i) {
      const row_ref r = reference(std::vector<double>(x.begin() + i * N, x.begin() + (i + 1) * N));
      for (index_t j = 0; j < N; ++j) {
        std::vector<double> xp = x, xm = x;
        xp[std::size_t(i * N + j)] += h;
        xm[std::size_t(i * N + j)] -= h;
        const double fd = (loss(xp) - loss(xm)) / (2 * h);
        const double tol = test::bound(ce_grad_ref(r, j, labels[std::size_t(i)], M), u, 0) + 2e-10 / double(M) + 1e-10;
        if (std::abs(d[std::size_t(i * N + j)] - fd) > tol && bad++ == 0)
          FAIL_CHECK("(", i, ",", j, ") d ", d[std::size_t(i * N + j)], " fd ", fd, " +- ", tol);
      }
    }
    CHECK(bad == 0);
  }
}

// ---- special values ----

namespace {

// softmax and log_softmax under P of the rows of x (row-major, N columns): (y, ly).
template <class P>
std::pair<std::vector<float>, std::vector<float>> run_rows(std::vector<float> row, index_t N) {
  std::vector<float> y(row.size()), ly(row.size());
  const index_t M = index_t(row.size()) / N;
  softmax<SK::softmax, P>(view(row.data(), M, N), view(y.data(), M, N));
  softmax<SK::log_softmax, P>(view(row.data(), M, N), view(ly.data(), M, N));
  return {y, ly};
}

bool all_nan(const std::vector<float>& v, index_t i, index_t N) {
  for (index_t j = 0; j < N; ++j)
    if (!std::isnan(v[std::size_t(i * N + j)])) return false;
  return true;
}

bool all_finite(const std::vector<float>& v, index_t i, index_t N) {
  for (index_t j = 0; j < N; ++j)
    if (!std::isfinite(v[std::size_t(i * N + j)])) return false;
  return true;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("softmax, log_softmax: special values as documented", P, softmax_special_policies) {
  INFO(P::name());
  for (index_t N : {index_t(1), index_t(3), W, 2 * W + 3}) {
    INFO("N = ", N);
    for (index_t at : {index_t(0), N - 1, N / 2}) {
      INFO("at ", at);
      // rows: 0 plain, 1 NaN at `at`, 2 +Inf at `at`, 3 all -Inf, 4 -Inf at `at` (others finite), 5 plain
      const index_t M = 6;
      std::vector<float> x = args(M * N, 800 + std::uint64_t(N * 10 + at));
      x[std::size_t(1 * N + at)] = qnan;
      x[std::size_t(2 * N + at)] = inf;
      for (index_t j = 0; j < N; ++j) x[std::size_t(3 * N + j)] = -inf;
      x[std::size_t(4 * N + at)] = -inf;
      const auto [y, ly] = run_rows<P>(x, N);
      CHECK(all_finite(y, 0, N));
      CHECK(all_finite(ly, 0, N));
      CHECK(all_nan(y, 1, N));
      CHECK(all_nan(ly, 1, N));
      CHECK(all_nan(y, 2, N));
      CHECK(all_nan(ly, 2, N));
      CHECK(all_nan(y, 3, N));
      CHECK(all_nan(ly, 3, N));
      if (N > 1) {
        CHECK(test::bits(y[std::size_t(4 * N + at)]) == test::bits(0.0f));
        CHECK(ly[std::size_t(4 * N + at)] == -inf);
        double sum = 0;
        for (index_t j = 0; j < N; ++j) sum += y[std::size_t(4 * N + j)];
        // the others still normalise: each y_j within ε_P of its exact value, plus the fp32 evaluation
        // (exp, s, 1/s: below 1e-6 for rows this short; 1e-5 allowed)
        CHECK(std::abs(sum - 1.0) <= 1.01 * P::max_rel_error + 1e-5);
      } else {
        CHECK(all_nan(y, 4, N));  // a single -Inf is an all -Inf row
      }
      CHECK(all_finite(y, 5, N));  // rows after the NaN ones are unaffected
    }
  }
  // Large finite values do not overflow: x - m <= 0 and s <= N.
  {
    std::vector<float> x = {1e30f, 1e30f, -1e30f, 3e38f, -3e38f, 3e38f};
    const auto [y, ly] = run_rows<P>(x, 3);
    const float half = P::mul(1.0f, 0.5f);
    CHECK(test::bits(y[0]) == test::bits(half));
    CHECK(test::bits(y[1]) == test::bits(half));
    CHECK(test::bits(y[2]) == test::bits(0.0f));
    CHECK(ly[0] == -std::log(2.0f));
    CHECK(ly[2] == -1e30f - 1e30f);  // (-1e30 - 1e30) - log 2 rounds to fl(-2e30)
    CHECK(test::bits(y[4]) == test::bits(0.0f));  // -3e38 - 3e38 = -Inf in fp32: e = 0
    CHECK(ly[4] == -inf);
    CHECK(test::bits(y[3]) == test::bits(half));
    CHECK(ly[3] == -std::log(2.0f));
  }
}
TEST_CASE_TEMPLATE_APPLY(softmax_special_policies, std::tuple<approx::exact, approx::mitchell<7>>);

TEST_CASE("softmax, log_softmax backward: special values propagate as documented") {
  const index_t N = 2 * W + 3, M = 3;
  std::vector<float> dy = test::uniform(std::size_t(M * N), -1.0f, 1.0f, 900), y(dy.size()), ly(dy.size()), dx(dy.size());
  const std::vector<float> x = args(M * N, 901);
  softmax<SK::softmax>(view(x.data(), M, N), view(y.data(), M, N));
  softmax<SK::log_softmax>(view(x.data(), M, N), view(ly.data(), M, N));
  dy[std::size_t(1 * N + N - 1)] = qnan;  // row 1: a NaN dy in the tail
  y[std::size_t(2 * N + 1)] = qnan;       // row 2: a NaN y in the body
  softmax_backward<SK::softmax>(view(dy.data(), M, N), view(y.data(), M, N), view(dx.data(), M, N));
  CHECK(all_finite(dx, 0, N));
  CHECK(all_nan(dx, 1, N));
  CHECK(all_nan(dx, 2, N));
  // log_softmax backward: a NaN dy makes Σ dy NaN (the row NaN); y = -Inf (a -Inf logit) gives dx = dy there.
  ly[std::size_t(2 * N + 1)] = -inf;
  softmax_backward<SK::log_softmax>(view(dy.data(), M, N), view(ly.data(), M, N), view(dx.data(), M, N));
  CHECK(all_finite(dx, 0, N));
  CHECK(all_nan(dx, 1, N));
  CHECK(all_finite(dx, 2, N));
  CHECK(dx[std::size_t(2 * N + 1)] == dy[std::size_t(2 * N + 1)]);
}

TEST_CASE("cross_entropy: special values as documented") {
  const index_t N = W + 3;
  std::vector<std::int32_t> labels = {2, 2, 2, 2};
  // one row each: NaN, +Inf, all -Inf -> NaN loss and a NaN gradient row
  for (int kind = 0; kind < 3; ++kind) {
    std::vector<float> x = args(N, 950), d(static_cast<std::size_t>(N));
    if (kind == 0) x[std::size_t(N - 1)] = qnan;
    if (kind == 1) x[0] = inf;
    if (kind == 2) std::fill(x.begin(), x.end(), -inf);
    INFO("kind ", kind);
    CHECK(std::isnan(cross_entropy(view(x.data(), 1, N), std::span(labels).first(1), view(d.data(), 1, N))));
    CHECK(all_nan(d, 0, N));
  }
  // a -Inf logit at the label with finite others: loss +Inf, gradient -1/M there, softmax / M elsewhere
  {
    const index_t M = 2;
    std::vector<float> x = args(M * N, 951), d(x.size());
    x[2] = -inf;
    const float loss = cross_entropy(view(x.data(), M, N), std::span(labels).first(2), view(d.data(), M, N));
    CHECK(loss == inf);
    CHECK(d[2] == -0.5f);
    CHECK(all_finite(d, 0, N));
    CHECK(all_finite(d, 1, N));
  }
  // large finite logits: no overflow
  {
    std::vector<float> x = {1e30f, 1e30f, -1e30f, 0.0f};
    std::vector<float> d(4);
    std::vector<std::int32_t> l = {0};
    const float loss = cross_entropy(view(x.data(), 1, 4), l, view(d.data(), 1, 4));
    CHECK(loss == std::log(2.0f));
    CHECK(d[0] == -0.5f);
    CHECK(d[1] == 0.5f);
    CHECK(d[2] == 0.0f);
    CHECK(d[3] == 0.0f);
  }
  // no rows: the mean of nothing
  {
    std::vector<std::int32_t> none;
    float buf[1] = {};
    CHECK(std::isnan(cross_entropy(mat<const float>{buf, 0, 4, 4}, none)));
    CHECK(std::isnan(cross_entropy(mat<const float>{nullptr, 0, 0, 0}, none, mat<float>{buf, 0, 0, 0})));
  }
}

// ---- bad arguments ----

namespace {

// Whether softmax_kernel<K> names a type (its requires-clause admits only softmax_kind's values).
template <SK K>
concept kernel_of = requires { typename softmax_kernel<K>; };

}  // namespace

TEST_CASE("softmax family: bad arguments throw tpp::error naming op and argument") {
  float buf[64] = {};
  float other[64] = {};
  const mat<float> a{buf, 2, 4, 4}, b{other, 2, 4, 4};
  // sizes and kind
  CHECK_THROWS_WITH_AS(softmax_kernel<SK::softmax>(-1, 4), "tpp::softmax: rows is negative (-1)", error);
  CHECK_THROWS_WITH_AS(softmax_kernel<SK::log_softmax>(4, -2), "tpp::log_softmax: cols is negative (-2)", error);
  static_assert(!kernel_of<SK(7)> && kernel_of<SK::softmax> && kernel_of<SK::log_softmax>);  // a kind outside softmax_kind does not compile
  CHECK_THROWS_WITH_AS(softmax<SK::softmax>(a, mat<float>{other, -1, 4, 4}), "tpp::softmax: y.rows is negative (-1)", error);
  CHECK_THROWS_WITH_AS(softmax_backward<SK::log_softmax>(a, a, mat<float>{other, 2, -4, 4}),
                       "tpp::log_softmax_backward: dx.cols is negative (-4)", error);
  // shapes
  const softmax_kernel<SK::softmax> k(2, 4);
  CHECK_THROWS_WITH_AS(k.forward(mat<float>{buf, 2, 3, 4}, b), "tpp::softmax: x shape (2x3) differs from the kernel's (2x4)",
                       error);
  CHECK_THROWS_WITH_AS(k.forward(a, mat<float>{other, 1, 4, 4}),
                       "tpp::softmax: y shape (1x4) differs from the kernel's (2x4)", error);
  CHECK_THROWS_WITH_AS(k.backward(mat<float>{buf, 1, 4, 4}, a, b),
                       "tpp::softmax_backward: dy shape (1x4) differs from the kernel's (2x4)", error);
  CHECK_THROWS_WITH_AS(softmax_backward<SK::log_softmax>(a, mat<float>{buf, 4, 2, 2}, b),
                       "tpp::log_softmax_backward: y shape (4x2) differs from the kernel's (2x4)", error);
  CHECK_THROWS_WITH_AS(softmax_backward<SK::softmax>(a, a, mat<float>{other, 2, 3, 3}),
                       "tpp::softmax_backward: dy shape (2x4) differs from the kernel's (2x3)", error);
  // ld < cols, null data
  CHECK_THROWS_WITH_AS(softmax<SK::softmax>(mat<float>{buf, 2, 4, 3}, b), "tpp::softmax: x.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(softmax<SK::log_softmax>(mat<float>{nullptr, 2, 4, 4}, b), "tpp::log_softmax: x.data is null with nonzero size",
                       error);
  CHECK_THROWS_WITH_AS(softmax_backward<SK::softmax>(a, a, mat<float>{nullptr, 2, 4, 4}),
                       "tpp::softmax_backward: dx.data is null with nonzero size", error);
  CHECK_THROWS_AS(softmax_backward<SK::softmax>(a, mat<float>{other, 2, 4, 2}, b), error);
  CHECK_NOTHROW(softmax<SK::softmax>(mat<float>{nullptr, 0, 4, 4}, mat<float>{nullptr, 0, 4, 4}));  // empty: nothing to read
  // aliasing: the very same view is in-place; any other overlap throws
  CHECK_NOTHROW(softmax<SK::softmax>(a, a));
  CHECK_NOTHROW(softmax<SK::log_softmax>(a, a));
  CHECK_THROWS_WITH_AS(softmax<SK::softmax>(mat<float>{buf + 1, 2, 4, 4}, a), doctest::Contains("tpp::softmax: x overlaps y"), error);
  CHECK_THROWS_AS(softmax<SK::log_softmax>(mat<float>{buf, 2, 4, 5}, a), error);  // same data, another ld
  CHECK_THROWS_AS(softmax<SK::softmax>(a, mat<bf16>{reinterpret_cast<bf16*>(buf), 2, 4, 4}), error);  // another element type
  CHECK_NOTHROW(softmax<SK::softmax>(mat<float>{buf, 4, 4, 8}, mat<float>{buf + 4, 4, 4, 8}));        // disjoint column blocks
  CHECK_NOTHROW(softmax_backward<SK::softmax>(a, b, a));                                                // dx = dy
  CHECK_NOTHROW(softmax_backward<SK::softmax>(a, b, b));                                                // dx = y
  CHECK_THROWS_WITH_AS(softmax_backward<SK::softmax>(a, mat<float>{other + 1, 2, 4, 4}, b),
                       doctest::Contains("tpp::softmax_backward: y overlaps dx"), error);
  CHECK_THROWS_WITH_AS(softmax_backward<SK::log_softmax>(mat<float>{other + 2, 2, 4, 4}, a, b),
                       doctest::Contains("tpp::log_softmax_backward: dy overlaps dx"), error);
}

TEST_CASE("cross_entropy: bad arguments throw tpp::error naming the argument (and the row of a label)") {
  float buf[64] = {};
  std::vector<float> dl(8, 7.0f);
  const mat<float> x{buf, 2, 4, 4};
  std::vector<std::int32_t> labels = {1, 3};
  CHECK_NOTHROW(cross_entropy(x, labels));
  const std::vector<std::int32_t> three = {0, 1, 2};
  CHECK_THROWS_WITH_AS(cross_entropy(x, three), "tpp::cross_entropy: labels size (3) differs from logits' rows (2)", error);
  labels = {1, -1};
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels, view(dl.data(), 2, 4)),
                       "tpp::cross_entropy: labels[1] (-1) is outside [0, 4) (row 1)", error);
  CHECK(std::all_of(dl.begin(), dl.end(), [](float v) { return v == 7.0f; }));  // validated before any write
  labels = {4, 0};
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels), "tpp::cross_entropy: labels[0] (4) is outside [0, 4) (row 0)", error);
  labels = {0, 0};
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels, mat<float>{dl.data(), 2, 3, 4}),
                       "tpp::cross_entropy: dlogits shape (2x3) differs from logits' (2x4)", error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels, mat<float>{dl.data(), 2, 4, 3}),
                       "tpp::cross_entropy: dlogits.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels, mat<float>{nullptr, 2, 4, 4}),
                       "tpp::cross_entropy: dlogits.data is null with nonzero size", error);
  CHECK_THROWS_WITH_AS(cross_entropy(mat<float>{nullptr, 2, 4, 4}, labels),
                       "tpp::cross_entropy: logits.data is null with nonzero size", error);
  CHECK_THROWS_WITH_AS(cross_entropy(mat<float>{buf, -2, 4, 4}, labels), "tpp::cross_entropy: logits.rows is negative (-2)",
                       error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels, mat<float>{buf + 2, 2, 4, 4}),
                       doctest::Contains("tpp::cross_entropy: logits overlaps dlogits"), error);
  CHECK_NOTHROW(cross_entropy(x, labels, x));  // in place
  std::vector<std::int32_t> held(8, 0);  // dlogits over the labels' memory
  CHECK_THROWS_WITH_AS(cross_entropy(x, std::span<const std::int32_t>(held.data(), 2),
                                     mat<float>{reinterpret_cast<float*>(held.data()), 2, 4, 4}),
                       doctest::Contains("tpp::cross_entropy: labels overlaps dlogits"), error);
  CHECK_THROWS_AS(cross_entropy(x, labels, mat<bf16>{reinterpret_cast<bf16*>(buf), 2, 4, 4}), error);
  const mat<float> none{nullptr, 2, 0, 0};  // a (2 x 0) view is not the absent gradient: shape checked
  CHECK_THROWS_AS(cross_entropy(x, labels, none), error);
}
