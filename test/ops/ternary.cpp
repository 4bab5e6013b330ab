// ops/ternary.hpp: muladd within its product bound of a double reference for every registered policy,
// select bit for bit, every broadcast kind of every input over the named edge shapes with padding
// sentinels, dtype combinations, in-place, special values and bad arguments.

#include <cmath>
#include <limits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/ternary.hpp>

#include "approx/sweep.hpp"
#include "ops/elementwise_support.hpp"

namespace {

using namespace tpp;
using T3 = ternary_kind;
using test::padded;
constexpr double u = test::u_fp32;

using test::all_broadcasts;
using test::at;
using test::bc_cols;
using test::bc_rows;

template <class T>
constexpr double u_out() {
  return std::is_same_v<T, bf16> ? test::u_bf16 : 0.0;
}

// muladd: |P(a, b) - ab| <= m |ab|, then one rounding of the sum (none when fused into an fma), then the
// output's.
double muladd_bound(double a, double b, double c, double m, double uo) {
  const double e = m * std::abs(a * b) + u * (std::abs(a * b + c) + m * std::abs(a * b));
  return e + uo * (std::abs(a * b + c) + e) + 0x1p-124;
}

// ternary<k, P> on an (M, N) output with broadcasts bc[0..2]; checks every element and every padding.
template <T3 k, class P, class T0, class T1, class T2, class TO>
void check_ternary(const test::shape& s, const broadcast (&bc)[3], std::uint64_t seed) {
  INFO(name(k), " ", P::name(), " ", test::describe(s), " in0:", name(bc[0]), " in1:", name(bc[1]),
       " in2:", name(bc[2]));
  const index_t M = s.rows, N = s.cols;
  padded<T0> x0(bc_rows(bc[0], M), bc_cols(bc[0], N), s.pad);
  padded<T1> x1(bc_rows(bc[1], M), bc_cols(bc[1], N), s.pad + 1);
  padded<T2> x2(bc_rows(bc[2], M), bc_cols(bc[2], N), s.pad + 2);
  padded<TO> out(M, N, s.pad + 3);
  if constexpr (k == T3::select) {  // mask bytes 0, 1, 2, 255 at random
    auto v = test::uniform(std::size_t(x0.rows * x0.cols), 0, 4, seed);
    for (auto& b : v) b = b < 1 ? 0.0f : b < 2 ? 1.0f : b < 3 ? 2.0f : 255.0f;
    x0.fill(v);
  } else {
    x0.fill(test::uniform(std::size_t(x0.rows * x0.cols), -3, 3, seed));
  }
  x1.fill(test::uniform(std::size_t(x1.rows * x1.cols), -3, 3, seed + 1));
  x2.fill(test::uniform(std::size_t(x2.rows * x2.cols), -3, 3, seed + 2));
  ternary<k, P>(x0.cm(), x1.cm(), x2.cm(), out.m(), {bc[0], bc[1], bc[2]});
  std::size_t bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      const double v0 = test::as_double(at(x0, bc[0], i, j)), v1 = test::as_double(at(x1, bc[1], i, j));
      const double v2 = test::as_double(at(x2, bc[2], i, j)), got = out.value(i, j);
      bool ok;
      if constexpr (k == T3::muladd) {
        ok = test::within(got, v0 * v1 + v2, muladd_bound(v0, v1, v2, P::max_rel_error, u_out<TO>()));
      } else {  // the chosen input's value, converted to TO
        ok = test::same_bits(out(i, j), from_float<TO>(float(v0 != 0 ? v1 : v2)));
      }
      if (!ok && bad++ == 0) FAIL_CHECK("(", i, ",", j, ") in=", v0, ", ", v1, ", ", v2, " got ", got);
    }
  CHECK(bad == 0);
  CHECK(out.padding_intact());
  CHECK(x0.padding_intact());
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("ternary muladd: a b + c within the product bound, every policy", P, ternary_policies) {
  const test::shape s{5, 2 * simd::width<> + 3, 1};
  const broadcast none[3] = {broadcast::none, broadcast::none, broadcast::none};
  const broadcast mixed[3] = {broadcast::row, broadcast::col, broadcast::scalar};
  check_ternary<T3::muladd, P, float, float, float, float>(s, none, 1);
  check_ternary<T3::muladd, P, float, float, float, float>(s, mixed, 2);
  // for a zero addend the result is P(a, b) itself, bit for bit
  std::vector<float> a = test::uniform(64, -100, 100, 3), b = test::uniform(64, -100, 100, 4), c(64, 0.0f), out(64);
  ternary<T3::muladd, P>(view(a.data(), 8, 8), view(b.data(), 8, 8), view(c.data(), 8, 8), view(out.data(), 8, 8));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) bad += test::bits(out[i]) != test::bits(P::mul(a[i], b[i]) + 0.0f);
  CHECK(bad == 0);
}
TEST_CASE_TEMPLATE_APPLY(ternary_policies, tpp::test::op_policies);

TEST_CASE("ternary: muladd and select x every broadcast of every input x edge shapes, padding untouched") {
  for (const auto& s : test::edge_shapes())
    for (broadcast b0 : all_broadcasts)
      for (broadcast b1 : all_broadcasts)
        for (broadcast b2 : all_broadcasts) {
          const broadcast bc[3] = {b0, b1, b2};
          check_ternary<T3::muladd, approx::exact, float, float, float, float>(s, bc, 5);
          check_ternary<T3::select, approx::exact, std::uint8_t, float, float, float>(s, bc, 6);
        }
}

TEST_CASE("ternary: fp32 / bf16 inputs and outputs") {
  const test::shape s{3, 2 * simd::width<> + 3, 2};
  const broadcast none[3] = {broadcast::none, broadcast::none, broadcast::none};
  const broadcast some[3] = {broadcast::col, broadcast::none, broadcast::row};
  check_ternary<T3::muladd, approx::exact, bf16, bf16, bf16, bf16>(s, none, 7);
  check_ternary<T3::muladd, approx::exact, float, bf16, float, bf16>(s, some, 8);
  check_ternary<T3::muladd, approx::bf16_rz, bf16, float, bf16, float>(s, some, 9);
  check_ternary<T3::select, approx::exact, std::uint8_t, bf16, float, bf16>(s, none, 10);
  check_ternary<T3::select, approx::exact, std::uint8_t, float, bf16, float>(s, some, 11);
  check_ternary<T3::select, approx::exact, std::uint8_t, bf16, bf16, bf16>(s, some, 12);
}

TEST_CASE("ternary: select passes values through unchanged (NaN payloads, signed zeros, Inf)") {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> a = {test::from_bits(0x7fc12345u), -0.0f, inf, 1.0f, test::from_bits(0xffc00001u)};
  std::vector<float> b = {1.0f, 2.0f, 3.0f, -inf, 5.0f}, out(5);
  std::vector<std::uint8_t> cond = {1, 1, 1, 0, 7};
  ternary<T3::select>(view(cond.data(), 1, 5), view(a.data(), 1, 5), view(b.data(), 1, 5), view(out.data(), 1, 5));
  CHECK(test::bits(out[0]) == 0x7fc12345u);
  CHECK(test::bits(out[1]) == test::bits(-0.0f));
  CHECK(out[2] == inf);
  CHECK(out[3] == -inf);
  CHECK(test::bits(out[4]) == 0xffc00001u);
  // muladd: IEEE through the formula
  std::vector<float> x = {inf, 0.0f, 1.0f}, y = {0.0f, 5.0f, 2.0f}, z = {1.0f, -0.0f, -inf}, r(3);
  ternary<T3::muladd>(view(x.data(), 1, 3), view(y.data(), 1, 3), view(z.data(), 1, 3), view(r.data(), 1, 3));
  CHECK(std::isnan(r[0]));
  CHECK(test::bits(r[1]) == test::bits(0.0f));
  CHECK(r[2] == -inf);
}

TEST_CASE("ternary: in-place (c += a b; out is cond's a or b)") {
  const index_t M = 4, N = simd::width<> + 3;
  const auto x = test::uniform(std::size_t(M * N), -2, 2, 13), y = test::uniform(std::size_t(M * N), -2, 2, 14);
  std::vector<float> a = x, b = y, c = y;
  ternary<T3::muladd>(view(a.data(), M, N), view(b.data(), M, N), view(c.data(), M, N), view(c.data(), M, N));
  for (std::size_t i = 0; i < c.size(); ++i)
    CHECK(std::abs(c[i] - (double(x[i]) * y[i] + y[i])) <= muladd_bound(x[i], y[i], y[i], u, 0));
  std::vector<std::uint8_t> cond(a.size());
  for (std::size_t i = 0; i < cond.size(); ++i) cond[i] = std::uint8_t(i % 3 == 0);
  a = x;
  ternary<T3::select>(view(cond.data(), M, N), view(a.data(), M, N), view(b.data(), M, N), view(a.data(), M, N));
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == (cond[i] ? x[i] : y[i]));
}

TEST_CASE("ternary: a kernel object is made once for a shape and called many times") {
  const ternary_kernel<T3::select, approx::exact, std::uint8_t, float, float, float> kernel(
      2, 2, {broadcast::col, broadcast::none, broadcast::scalar});
  std::vector<std::uint8_t> cond = {1, 0};
  std::vector<float> a = {1, 2, 3, 4}, b = {9}, out(4);
  kernel(view(cond.data(), 2, 1), view(a.data(), 2, 2), view(b.data(), 1, 1), view(out.data(), 2, 2));
  CHECK(out == std::vector<float>{1, 2, 9, 9});
  CHECK_THROWS_WITH_AS(
      kernel(view(cond.data(), 1, 2), view(a.data(), 2, 2), view(b.data(), 1, 1), view(out.data(), 2, 2)),
      "tpp::ternary.select: cond shape (1x2) does not match broadcast::col of a 2x2 output (expected 2x1)", error);
}

TEST_CASE("ternary: bad arguments throw tpp::error naming op and argument") {
  float x[64] = {}, y[64] = {}, z[64] = {}, w[64] = {};
  std::uint8_t m[64] = {};
  const mat<float> a{x, 2, 4, 4}, b{y, 2, 4, 4}, c{z, 2, 4, 4}, out{w, 2, 4, 4};
  const mat<std::uint8_t> cond{m, 2, 4, 4};
  CHECK_THROWS_WITH_AS((ternary_kernel<T3::muladd>(-1, 4)), "tpp::ternary.muladd: rows is negative (-1)", error);
  CHECK_THROWS_AS((ternary_kernel<T3::select, approx::exact, std::uint8_t>(2, -4)), error);
  CHECK_THROWS_WITH_AS(ternary<T3::muladd>(a, b, mat<float>{z, 2, 4, 2}, out),
                       "tpp::ternary.muladd: c.ld (2) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(ternary<T3::select>(mat<std::uint8_t>{nullptr, 2, 4, 4}, a, b, out),
                       "tpp::ternary.select: cond.data is null with nonzero size", error);
  CHECK_THROWS_AS(ternary<T3::muladd>(a, b, c, mat<float>{w, 3, 4, 4}), error);
  CHECK_THROWS_WITH_AS(
      ternary<T3::muladd>(a, mat<float>{y, 4, 2, 2}, c, out),
      "tpp::ternary.muladd: b shape (4x2) does not match broadcast::none of a 2x4 output (expected 2x4)", error);
  CHECK_THROWS_AS(
      ternary<T3::select>(cond, a, mat<float>{y, 2, 1, 1}, out, {broadcast::none, broadcast::none, broadcast::row}),
      error);
  CHECK_THROWS_AS(ternary<T3::select>(mat<std::uint8_t>{m, 2, 4, 4}, a, b, out,
                                      {broadcast::scalar, broadcast::none, broadcast::none}),
                  error);
  CHECK_THROWS_WITH_AS(ternary<T3::muladd>(a, b, c, out, {broadcast::none, broadcast(4), broadcast::none}),
                       doctest::Contains("b has an invalid broadcast"), error);
  // aliasing
  CHECK_NOTHROW(ternary<T3::muladd>(a, b, out, out));
  CHECK_THROWS_WITH_AS(ternary<T3::muladd>(a, b, mat<float>{w + 1, 2, 4, 4}, out), doctest::Contains("c overlaps out"),
                       error);
  CHECK_THROWS_AS(ternary<T3::select>(mat<std::uint8_t>{reinterpret_cast<std::uint8_t*>(w), 2, 4, 4}, a, b, out),
                  error);
  CHECK_THROWS_AS(
      ternary<T3::select>(cond, a, mat<float>{w, 1, 4, 4}, out, {broadcast::none, broadcast::none, broadcast::row}),
      error);
}
