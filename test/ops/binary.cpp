// ops/binary.hpp: every kind against the IEEE fp32 operation (bit for bit) and a double reference, mul as
// Policy::mul bit for bit and muladd within its product bound for every registered policy, every
// broadcast kind of both inputs over the named edge shapes with padding sentinels, dtype combinations,
// in-place, special values and bad arguments.

#include <cmath>
#include <limits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/binary.hpp>

#include "approx/sweep.hpp"
#include "ops/elementwise_support.hpp"

namespace {

using namespace tpp;
using B = binary_kind;
using test::padded;
constexpr double u = test::u_fp32;

using test::all_broadcasts;
using test::bc_cols;
using test::bc_rows;
template <class T>
double value_at(const padded<T>& m, broadcast b, index_t i, index_t j) {
  return test::as_double(test::at(m, b, i, j));
}

// What the op computes, in fp32 (P: the policy), before the conversion to the output type.
template <B k, class P>
float fp32_result(float a, float b, float out) {
  switch (k) {
    case B::add: return a + b;
    case B::sub: return a - b;
    case B::mul: return P::mul(a, b);
    case B::div: return a / b;
    case B::max: return std::isnan(a) ? a : (a > b ? a : b);
    case B::min: return std::isnan(a) ? a : (a < b ? a : b);
    case B::muladd: return out + P::mul(a, b);
  }
  return 0;
}

// muladd's bound: |P(a, b) - ab| <= m |ab|, then one rounding of the sum (or none when fused into an fma).
double muladd_bound(double a, double b, double out, double m, double u_out) {
  const double e = m * std::abs(a * b) + u * (std::abs(a * b + out) + m * std::abs(a * b));
  return e + u_out * (std::abs(a * b + out) + e) + 0x1p-124;
}

template <B... Ks>
struct kinds {};
template <B... Ks, class F>
void for_each_kind(kinds<Ks...>, F&& f) {
  (f.template operator()<Ks>(), ...);
}
using all_kinds = kinds<B::add, B::sub, B::mul, B::div, B::max, B::min, B::muladd>;

template <class T>
constexpr double u_out() {
  return std::is_same_v<T, bf16> ? test::u_bf16 : 0.0;
}

// binary<k, P> on an (M, N) output with broadcasts ba, bb; checks every element and the padding.
//   mul and every non-policy kind: bit for bit what fp32_result gives, converted to TO; add, sub, mul
//   (exact), div also within u of the double result; muladd: within muladd_bound of the double result.
template <B k, class P, class TA, class TB, class TO>
void check_binary(const test::shape& s, broadcast ba, broadcast bb, std::uint64_t seed) {
  INFO(name(k), " ", P::name(), " ", test::describe(s), " a:", name(ba), " b:", name(bb));
  const index_t M = s.rows, N = s.cols;
  padded<TA> a(bc_rows(ba, M), bc_cols(ba, N), s.pad);
  padded<TB> b(bc_rows(bb, M), bc_cols(bb, N), s.pad + 1);
  padded<TO> out(M, N, s.pad + 2);
  const auto data = [&](index_t n, std::uint64_t sd) {
    auto v = test::uniform(std::size_t(n), -3.0f, 3.0f, sd);
    if (k == B::div)
      for (auto& x : v) x = x < 0 ? x - 0.25f : x + 0.25f;  // away from 0
    return v;
  };
  a.fill(data(a.rows * a.cols, seed));
  b.fill(data(b.rows * b.cols, seed + 1));
  out.fill(data(M * N, seed + 2));
  const padded<TO> out0 = out;
  binary<k, P>(a.cm(), b.cm(), out.m(), {ba, bb});
  std::size_t bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      const double av = value_at(a, ba, i, j), bv = value_at(b, bb, i, j), ov = out0.value(i, j), got = out.value(i, j);
      bool ok;
      if constexpr (k == B::muladd) {
        ok = test::within(got, av * bv + ov, muladd_bound(av, bv, ov, P::max_rel_error, u_out<TO>()));
      } else {
        const TO want = from_float<TO>(fp32_result<k, P>(float(av), float(bv), float(ov)));
        ok = test::same_bits(out(i, j), want) || (std::isnan(got) && std::isnan(test::as_double(want)));
        double exact = std::numeric_limits<double>::quiet_NaN();
        if (k == B::add) exact = av + bv;
        if (k == B::sub) exact = av - bv;
        if (k == B::div) exact = av / bv;
        if (k == B::mul && std::is_same_v<P, approx::exact>) exact = av * bv;
        if (!std::isnan(exact) && std::isfinite(got))
          ok = ok && std::abs(got - exact) <= (u + u_out<TO>() * (1 + u)) * std::abs(exact);
      }
      if (!ok && bad++ == 0) FAIL_CHECK("(", i, ",", j, ") a=", av, " b=", bv, " out0=", ov, " got ", got);
    }
  CHECK(bad == 0);
  CHECK(out.padding_intact());
  CHECK(a.padding_intact());
  CHECK(b.padding_intact());
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("binary: mul is Policy::mul bit for bit, muladd within the product bound, every broadcast", P,
                          binary_policies) {
  const test::shape s{5, 2 * simd::width<> + 3, 2};
  for (broadcast ba : all_broadcasts)
    for (broadcast bb : all_broadcasts) {
      check_binary<B::mul, P, float, float, float>(s, ba, bb, 1);
      check_binary<B::muladd, P, float, float, float>(s, ba, bb, 2);
    }
  // every pair of special values (NaN, Inf, zeros, denormals, extremes): the policy's own rules, bit for bit
  const auto sv = test::special_values();
  std::vector<float> a, b;
  for (float x : sv)
    for (float y : sv) {
      a.push_back(x);
      b.push_back(y);
    }
  std::vector<float> out(a.size());
  const auto n = index_t(a.size());
  binary<B::mul, P>(view(a.data(), 1, n), view(b.data(), 1, n), view(out.data(), 1, n));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (test::bits(out[i]) != test::bits(P::mul(a[i], b[i])) && !(std::isnan(out[i]) && std::isnan(P::mul(a[i], b[i]))))
      bad++;
  CHECK(bad == 0);
}
TEST_CASE_TEMPLATE_APPLY(binary_policies, tpp::test::op_policies);

TEST_CASE("binary: every kind x every broadcast of a and b x edge shapes, padding untouched") {
  for (const auto& s : test::edge_shapes())
    for (broadcast ba : all_broadcasts)
      for (broadcast bb : all_broadcasts)
        for_each_kind(all_kinds{}, [&]<B k>() { check_binary<k, approx::exact, float, float, float>(s, ba, bb, 3); });
}

TEST_CASE("binary: fp32 / bf16 inputs and output in every combination") {
  const test::shape s{3, 2 * simd::width<> + 3, 1};
  for_each_kind(all_kinds{}, [&]<B k>() {
    check_binary<k, approx::exact, float, float, bf16>(s, broadcast::none, broadcast::row, 4);
    check_binary<k, approx::exact, bf16, bf16, bf16>(s, broadcast::col, broadcast::none, 5);
    check_binary<k, approx::exact, bf16, float, float>(s, broadcast::none, broadcast::scalar, 6);
  });
  check_binary<B::add, approx::exact, float, bf16, float>(s, broadcast::none, broadcast::none, 7);
  check_binary<B::mul, approx::exact, bf16, float, bf16>(s, broadcast::row, broadcast::col, 8);
  check_binary<B::mul, approx::exact, float, bf16, bf16>(s, broadcast::scalar, broadcast::none, 9);
  check_binary<B::muladd, approx::bf16_rne, bf16, bf16, float>(s, broadcast::none, broadcast::none, 10);
}

TEST_CASE("binary: special values (max/min propagate NaN; equal inputs give b; IEEE division)") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> a = {nan, 1.0f, nan, 0.0f, -0.0f, 2.0f, -inf, 1.0f, 0.0f, -1.0f};
  std::vector<float> b = {1.0f, nan, nan, -0.0f, 0.0f, 2.0f, inf, 0.0f, 0.0f, 0.0f};
  const auto n = index_t(a.size());
  std::vector<float> mx(a.size()), mn(a.size()), dv(a.size());
  binary<B::max>(view(a.data(), 1, n), view(b.data(), 1, n), view(mx.data(), 1, n));
  binary<B::min>(view(a.data(), 1, n), view(b.data(), 1, n), view(mn.data(), 1, n));
  binary<B::div>(view(a.data(), 1, n), view(b.data(), 1, n), view(dv.data(), 1, n));
  for (int i : {0, 1, 2}) {
    CHECK(std::isnan(mx[std::size_t(i)]));
    CHECK(std::isnan(mn[std::size_t(i)]));
  }
  CHECK(test::bits(mx[3]) == test::bits(-0.0f));  // equal: b
  CHECK(test::bits(mx[4]) == test::bits(0.0f));
  CHECK(test::bits(mn[3]) == test::bits(-0.0f));
  CHECK(mx[6] == inf);
  CHECK(mn[6] == -inf);
  CHECK(dv[7] == inf);
  CHECK(std::isnan(dv[8]));
  CHECK(dv[9] == -inf);
}

TEST_CASE("binary: in-place (out is a, out is b, out is both)") {
  const index_t M = 3, N = 2 * simd::width<> + 1;
  const auto x = test::uniform(std::size_t(M * N), -2, 2, 11), y = test::uniform(std::size_t(M * N), -2, 2, 12);
  std::vector<float> a = x, b = y;
  binary<B::sub>(view(a.data(), M, N), view(b.data(), M, N), view(a.data(), M, N));  // a = a - b
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == x[i] - y[i]);
  a = x;
  binary<B::div>(view(a.data(), M, N), view(b.data(), M, N), view(b.data(), M, N));  // b = a / b
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(b[i] == x[i] / y[i]);
  a = x;
  binary<B::mul, approx::mitchell<7>>(view(a.data(), M, N), view(a.data(), M, N), view(a.data(), M, N));
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(test::bits(a[i]) == test::bits(approx::mitchell<7>::mul(x[i], x[i])));
  a = x;
  b = y;
  std::vector<float> c = x;
  binary<B::muladd>(view(a.data(), M, N), view(b.data(), M, N), view(c.data(), M, N));  // c += a b
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(std::abs(c[i] - (double(x[i]) + double(x[i]) * y[i])) <= muladd_bound(x[i], y[i], x[i], u, 0));
  c = x;
  binary<B::muladd>(view(c.data(), M, N), view(b.data(), M, N), view(c.data(), M, N));  // c += c b
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(std::abs(c[i] - (double(x[i]) + double(x[i]) * y[i])) <= muladd_bound(x[i], y[i], x[i], u, 0));
}

TEST_CASE("binary: a kernel object is made once for a shape and called many times") {
  const binary_kernel<B::add, approx::exact, float, bf16, float> kernel(2, 3, {broadcast::none, broadcast::row});
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, out(6);
  std::vector<bf16> b = {to_bf16_rne(10), to_bf16_rne(20), to_bf16_rne(30)};
  kernel(view(a.data(), 2, 3), view<const bf16>(b.data(), 1, 3), view(out.data(), 2, 3));
  CHECK(out == std::vector<float>{11, 22, 33, 14, 25, 36});
  kernel(view<const float>(a.data(), 2, 3), view(b.data(), 1, 3), view(a.data(), 2, 3));
  CHECK(a == std::vector<float>{11, 22, 33, 14, 25, 36});
  CHECK_THROWS_WITH_AS(kernel(view(a.data(), 2, 3), view(b.data(), 1, 3), view(out.data(), 3, 2)),
                       "tpp::binary.add: out shape (3x2) differs from the kernel's (2x3)", error);
}

TEST_CASE("binary: bad arguments throw tpp::error naming op and argument") {
  float x[64] = {}, y[64] = {}, z[64] = {};
  const mat<float> a{x, 2, 4, 4}, b{y, 2, 4, 4}, out{z, 2, 4, 4};
  CHECK_THROWS_WITH_AS((binary_kernel<B::add>(-1, 4)), "tpp::binary.add: rows is negative (-1)", error);
  CHECK_THROWS_AS((binary_kernel<B::add>(1, -4)), error);
  CHECK_THROWS_AS(binary<B::add>(a, b, mat<float>{z, 2, -1, 4}), error);
  CHECK_THROWS_WITH_AS(binary<B::sub>(mat<float>{x, 2, 4, 3}, b, out),
                       "tpp::binary.sub: a.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(binary<B::mul>(a, mat<float>{nullptr, 2, 4, 4}, out),
                       "tpp::binary.mul: b.data is null with nonzero size", error);
  CHECK_THROWS_WITH_AS(binary<B::div>(a, mat<float>{y, 2, 3, 4}, out),
                       "tpp::binary.div: b shape (2x3) does not match broadcast::none of a 2x4 output (expected 2x4)",
                       error);
  // wrong broadcast shapes
  CHECK_THROWS_WITH_AS(binary<B::max>(a, mat<float>{y, 2, 1, 1}, out, {broadcast::none, broadcast::row}),
                       "tpp::binary.max: b shape (2x1) does not match broadcast::row of a 2x4 output (expected 1x4)",
                       error);
  CHECK_THROWS_AS(binary<B::max>(mat<float>{x, 1, 4, 4}, b, out, {broadcast::col, broadcast::none}), error);
  CHECK_THROWS_AS(binary<B::min>(mat<float>{x, 1, 4, 4}, b, out, {broadcast::scalar, broadcast::none}), error);
  CHECK_THROWS_AS(binary<B::min>(a, b, out, {broadcast::row, broadcast::none}), error);
  CHECK_NOTHROW(binary<B::min>(mat<float>{x, 1, 1, 1}, b, out, {broadcast::scalar, broadcast::none}));
  CHECK_THROWS_WITH_AS(binary<B::add>(a, b, out, {broadcast(9), broadcast::none}),
                       doctest::Contains("a has an invalid broadcast"), error);
  // aliasing: out may be the very same view as a full-shaped input; a broadcast row inside out, a shifted
  // view or another element type throw
  CHECK_NOTHROW(binary<B::add>(out, b, out));
  CHECK_THROWS_WITH_AS(binary<B::add>(a, mat<float>{z + 4, 1, 4, 4}, out, {broadcast::none, broadcast::row}),
                       doctest::Contains("b overlaps out"), error);
  CHECK_THROWS_AS(binary<B::add>(mat<float>{z + 1, 2, 4, 4}, b, out), error);
  CHECK_THROWS_AS(binary<B::add>(a, b, mat<bf16>{reinterpret_cast<bf16*>(x), 2, 4, 4}), error);
  CHECK_NOTHROW(binary<B::add>(mat<float>{x, 4, 4, 8}, mat<float>{y, 4, 4, 8}, mat<float>{x + 4, 4, 4, 8}));
}
