// Every float multiply policy: SIMD bit-identical to scalar (mantissa grids, 10^6 random bit patterns,
// the special-value table), the special-value rules, each policy against an independent reference
// written from its published definition, and the max_rel_error bound each policy advertises. The sweeps
// take the registry's lists (approx/registry.hpp: the catalogue and its variants), so a new multiplier
// is in them.

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include <tpp/approx/registry.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

using namespace tpp;
using test::bits;
using test::from_bits;

// SIMD mul over arrays at arch A, in batches (n is padded by the caller to a multiple of 16).
template <class P, class A>
void simd_mul(const float* a, const float* b, float* out, std::size_t n) {
  using B = xsimd::batch<float, A>;
  for (std::size_t i = 0; i < n; i += B::size)
    P::mul(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(out + i);
}

// Checks SIMD == scalar, bit for bit, at every arch this build runs; reports the first mismatch.
template <class P>
void check_simd_matches_scalar(std::vector<float> a, std::vector<float> b) {
  while (a.size() % 16) {
    a.push_back(1.0f);
    b.push_back(1.0f);
  }
  std::vector<float> ref(a.size()), got(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) ref[i] = P::mul(a[i], b[i]);
  test::for_each_arch([&](auto arch) {
    using A = decltype(arch);
    simd_mul<P, A>(a.data(), b.data(), got.data(), a.size());
    // exact is IEEE: which NaN a NaN x NaN returns is unspecified (and the compiler may commute the
    // multiply), so for exact any NaN matches any NaN; every other policy returns one canonical NaN.
    auto same = [](float x, float y) {
      return bits(x) == bits(y) || (std::is_same_v<P, approx::exact> && std::isnan(x) && std::isnan(y));
    };
    std::size_t bad = 0, first = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same(got[i], ref[i]) && bad++ == 0) first = i;
    INFO(P::name(), " at ", std::string(A::name()), ": ", bad, " mismatches; first a=", a[first], " (", test::hex(a[first]), ") b=", b[first],
         " (", test::hex(b[first]), ") scalar=", test::hex(ref[first]), " simd=", test::hex(got[first]));
    CHECK(bad == 0);
  });
}

// Every pair of the top-8 mantissa bits (the low 15 bits random) at several exponent pairs, including
// pairs whose products straddle the overflow and underflow boundaries; signs random.
inline void mantissa_grid(std::vector<float>& a, std::vector<float>& b) {
  const int exps[][2] = {{127, 127}, {100, 160}, {1, 126}, {1, 1}, {63, 64}, {254, 127}, {191, 191}, {200, 60}, {2, 125}};
  std::mt19937 g(7);
  for (auto [ea, eb] : exps)
    for (std::uint32_t i = 0; i < 256; ++i)
      for (std::uint32_t j = 0; j < 256; ++j) {
        const std::uint32_t sa = g() & 0x80000000u, sb = (g() << 1) & 0x80000000u;
        a.push_back(from_bits(sa | std::uint32_t(ea) << 23 | i << 15 | (g() & 0x7fffu)));
        b.push_back(from_bits(sb | std::uint32_t(eb) << 23 | j << 15 | (g() & 0x7fffu)));
      }
}

template <class P>
void check_simd_everywhere() {
  std::vector<float> a, b;
  mantissa_grid(a, b);
  const auto ra = test::any_bits(1u << 20, 11), rb = test::any_bits(1u << 20, 12);
  a.insert(a.end(), ra.begin(), ra.end());
  b.insert(b.end(), rb.begin(), rb.end());
  for (float x : test::special_values())
    for (float y : test::special_values()) {
      a.push_back(x);
      b.push_back(y);
    }
  check_simd_matches_scalar<P>(std::move(a), std::move(b));
}

bool is_nan(float f) { return std::isnan(f); }
bool is_tiny(float f) { return std::fpclassify(f) == FP_ZERO || std::fpclassify(f) == FP_SUBNORMAL; }

// The special-value rules of policy.hpp, checked on the scalar definition of a non-exact policy.
template <class P>
void check_special_rules() {
  const auto vals = test::special_values();
  for (float x : vals)
    for (float y : vals) {
      const float r = P::mul(x, y);
      const bool sign = std::signbit(x) != std::signbit(y);
      INFO(P::name(), "(", x, ", ", y, ") = ", r);
      CHECK(std::signbit(r) == sign);
      if (is_nan(x) || is_nan(y) || (std::isinf(x) && is_tiny(y)) || (std::isinf(y) && is_tiny(x))) {
        CHECK(is_nan(r));
      } else if (std::isinf(x) || std::isinf(y)) {
        CHECK(std::isinf(r));
      } else if (is_tiny(x) || is_tiny(y)) {
        CHECK(bits(r) == (sign ? 0x80000000u : 0u));
      } else {
        CHECK(!is_nan(r));
        CHECK(std::fpclassify(r) != FP_SUBNORMAL);  // below the normal range gives +-0
        const double exact = double(x) * double(y);
        if (std::abs(exact) > 0x1p129) CHECK(std::isinf(r));
        if (std::abs(exact) < 0x1p-128) CHECK(r == 0.0f);
      }
    }
}

// On random normal operands whose product is well inside the normal range: |P(a,b) - ab| <= bound |ab|.
template <class P>
double check_error_bound() {
  std::mt19937_64 g(3);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    // biased exponents 96..159: products stay far inside the normal range
    const float a = from_bits((std::uint32_t(g()) & 0x807fffffu) | std::uint32_t(96 + g() % 64) << 23);
    const float b = from_bits((std::uint32_t(g()) & 0x807fffffu) | std::uint32_t(96 + g() % 64) << 23);
    const double exact = double(a) * double(b);
    worst = std::max(worst, std::abs(double(P::mul(a, b)) - exact) / std::abs(exact));
  }
  INFO(P::name(), ": worst relative error ", worst, ", bound ", P::max_rel_error);
  CHECK(worst <= P::max_rel_error);
  return worst;
}

// Builds the float +-s * 2^e for a significand value s (a double with <= 24 significant bits) with the
// policy range rules; the independent references below use it.
float scaled(bool negative, double s, int e) {
  if (s == 0) return negative ? -0.0f : 0.0f;
  const double v = std::ldexp(s, e);
  float r;
  if (v >= 0x1p128)
    r = std::numeric_limits<float>::infinity();
  else if (v < 0x1p-126)
    r = 0.0f;
  else
    r = float(v);
  return negative ? -r : r;
}

struct parts {
  bool negative;
  std::uint32_t mant;  // 23 bits
  int exp;             // unbiased
};
parts split(float f) {
  const std::uint32_t u = bits(f);
  return {bool(u >> 31), u & 0x7fffffu, int((u >> 23) & 0xff) - 127};
}

// Random operand pairs, both normal, for the definition checks. (Loops name them as plain floats, not a
// structured binding: clang 14 cannot capture one, and INFO captures its arguments in a lambda.)
std::vector<std::pair<float, float>> normal_pairs(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<std::pair<float, float>> v;
  for (std::size_t i = 0; i < n; ++i) {
    const float a = from_bits((std::uint32_t(g()) & 0x807fffffu) | std::uint32_t(1 + g() % 254) << 23);
    const float b = from_bits((std::uint32_t(g()) & 0x807fffffu) | std::uint32_t(1 + g() % 254) << 23);
    v.emplace_back(a, b);
  }
  return v;
}

// The policies the special-value rules hold for: every registered one and variant but the IEEE ones.
template <class P>
struct follows_special_rules : std::bool_constant<!approx::is_ieee<P>> {};
using special_rule_policies =
    approx::tuple_t<approx::filter_t<approx::join_t<approx::float_policies, approx::policy_variants>,
                                     follows_special_rules>>;

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("policy: SIMD mul is bit-identical to the scalar definition", P, simd_vs_scalar) {
  check_simd_everywhere<P>();
}
TEST_CASE_TEMPLATE_APPLY(simd_vs_scalar, approx::float_policy_tuple);
TEST_CASE_TEMPLATE_APPLY(simd_vs_scalar, approx::tuple_t<approx::policy_variants>);

TEST_CASE_TEMPLATE_DEFINE("policy: special values follow the documented rules", P, special_rules) {
  check_special_rules<P>();
}
TEST_CASE_TEMPLATE_APPLY(special_rules, special_rule_policies);

TEST_CASE("policy: exact is the IEEE product, special values included") {
  for (float x : test::special_values())
    for (float y : test::special_values()) {
      const float r = approx::exact::mul(x, y), e = x * y;
      CHECK((bits(r) == bits(e) || (std::isnan(r) && std::isnan(e))));
    }
}

TEST_CASE_TEMPLATE_DEFINE("policy: max_rel_error bounds the measured error", P, error_bound) {
  check_error_bound<P>();
}
TEST_CASE_TEMPLATE_APPLY(error_bound, approx::float_policy_tuple);
TEST_CASE_TEMPLATE_APPLY(error_bound, approx::tuple_t<approx::policy_variants>);

TEST_CASE("mitchell<M>: the bit-pattern sum equals Mitchell's formula 2^(ea+eb) (1+fa+fb) or 2^(ea+eb+1) (fa+fb)") {
  auto check = [](auto policy, int m) {
    using P = decltype(policy);
    for (const auto& ab : normal_pairs(200000, 21 + m)) {
      const float a = ab.first, b = ab.second;
      const parts pa = split(a), pb = split(b);
      const double fa = double(pa.mant >> (23 - m)) / double(1u << m), fb = double(pb.mant >> (23 - m)) / double(1u << m);
      const double s = fa + fb < 1 ? 1 + fa + fb : 2 * (fa + fb);
      const float expect = scaled(pa.negative != pb.negative, s, pa.exp + pb.exp);
      INFO(P::name(), "(", a, ", ", b, ")");
      REQUIRE(bits(P::mul(a, b)) == bits(expect));
    }
  };
  check(approx::mitchell<1>{}, 1);
  check(approx::mitchell<7>{}, 7);
  check(approx::mitchell<15>{}, 15);
  check(approx::mitchell<23>{}, 23);
}

TEST_CASE("mbm<M>: Mitchell plus the correction 2^-4 + 2^-6, rounded once") {
  for (const auto& ab : normal_pairs(200000, 31)) {
    const float a = ab.first, b = ab.second;
    const parts pa = split(a), pb = split(b);
    const double fa = double(pa.mant >> 16) / 128.0, fb = double(pb.mant >> 16) / 128.0;
    const double s = (fa + fb < 1 ? 1 + fa + fb : 2 * (fa + fb)) + 0.078125;  // exact in double
    const float expect = scaled(pa.negative != pb.negative, double(float(s)), pa.exp + pb.exp);
    INFO("(", a, ", ", b, ")");
    REQUIRE(bits(approx::mbm<7>::mul(a, b)) == bits(expect));
  }
  // Nearly unbiased: the mean relative error over uniform significands is far below Mitchell's -3.8%.
  // Mitchell's mean relative error over uniform mantissas is about -2.8%; MBM's is within +-1%.
  double mbm_sum = 0, mitchell_sum = 0;
  int used = 0;
  for (const auto& ab : normal_pairs(100000, 32)) {
    const float a = ab.first, b = ab.second;
    const double e = double(a) * double(b);
    if (std::abs(e) < 0x1p-120 || std::abs(e) > 0x1p120) continue;
    mbm_sum += (approx::mbm<23>::mul(a, b) - e) / e;
    mitchell_sum += (approx::mitchell<23>::mul(a, b) - e) / e;
    ++used;
  }
  CHECK(used > 10000);
  CHECK(std::abs(mbm_sum / used) < 0.01);
  CHECK(mitchell_sum / used < -0.02);
}

TEST_CASE("drum<K>: K leading bits, lowest kept bit set, product rounded to fp32") {
  auto check = [](auto policy, int k) {
    using P = decltype(policy);
    for (const auto& ab : normal_pairs(200000, 41 + k)) {
      const float a = ab.first, b = ab.second;
      const parts pa = split(a), pb = split(b);
      auto reduce = [k](std::uint32_t mant) {
        std::uint64_t s = (std::uint64_t(1) << 23) | mant;  // 24-bit significand
        const int drop = 24 - k;
        s = (s >> drop) << drop;
        if (k < 24) s |= std::uint64_t(1) << drop;
        return s;
      };
      const double prod = double(reduce(pa.mant)) * double(reduce(pb.mant)) * 0x1p-46;  // exact in double
      const float expect = scaled(pa.negative != pb.negative, double(float(prod)), pa.exp + pb.exp);
      INFO(P::name(), "(", a, ", ", b, ")");
      REQUIRE(bits(P::mul(a, b)) == bits(expect));
    }
  };
  check(approx::drum<2>{}, 2);
  check(approx::drum<6>{}, 6);
  check(approx::drum<13>{}, 13);
  check(approx::drum<24>{}, 24);
}

TEST_CASE("truncated<M>: M-bit mantissas multiplied, exactly or rounded once; lut<exact_model, M> for M <= 8") {
  auto check = [](auto policy, int m) {
    using P = decltype(policy);
    for (const auto& ab : normal_pairs(200000, 81 + m)) {
      const float a = ab.first, b = ab.second;
      const parts pa = split(a), pb = split(b);
      const double xa = 1 + double(pa.mant >> (23 - m)) / double(1u << m);
      const double xb = 1 + double(pb.mant >> (23 - m)) / double(1u << m);
      const float expect = scaled(pa.negative != pb.negative, double(float(xa * xb)), pa.exp + pb.exp);
      INFO(P::name(), "(", a, ", ", b, ")");
      REQUIRE(bits(P::mul(a, b)) == bits(expect));
    }
  };
  check(approx::truncated<1>{}, 1);
  check(approx::truncated<7>{}, 7);
  check(approx::truncated<11>{}, 11);
  check(approx::truncated<12>{}, 12);
  check(approx::truncated<23>{}, 23);
  // The same products as AMSim's table of an exact model over M-bit mantissas, every input.
  auto same_as_lut = [](auto truncated_policy, auto lut_policy) {
    using T = decltype(truncated_policy);
    using L = decltype(lut_policy);
    std::vector<float> a, b;
    mantissa_grid(a, b);
    const auto ra = test::any_bits(1u << 18, 91), rb = test::any_bits(1u << 18, 92);
    a.insert(a.end(), ra.begin(), ra.end());
    b.insert(b.end(), rb.begin(), rb.end());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) bad += bits(T::mul(a[i], b[i])) != bits(L::mul(a[i], b[i]));
    INFO(T::name(), " vs ", L::name());
    CHECK(bad == 0);
  };
  same_as_lut(approx::truncated<1>{}, approx::lut<approx::exact_model, 1>{});
  same_as_lut(approx::truncated<4>{}, approx::lut<approx::exact_model, 4>{});
  same_as_lut(approx::truncated<8>{}, approx::lut<approx::exact_model, 8>{});
}

TEST_CASE("bf16_rz / bf16_rne: operands and product rounded to bf16") {
  for (const auto& ab : normal_pairs(300000, 51)) {
    const float a = ab.first, b = ab.second;
    auto rz = [](double v) { return double(to_float(to_bf16_rz(float(v)))); };
    auto rne = [](double v) { return double(to_float(to_bf16_rne(float(v)))); };
    for (int nearest = 0; nearest < 2; ++nearest) {
      auto round = nearest ? rne : rz;
      const double p = round(a) * round(b);  // exact in double; may exceed the float range
      float expect;
      if (std::isinf(p) || std::abs(p) >= 0x1p128)
        expect = std::copysign(std::numeric_limits<float>::infinity(), float(p));
      else {
        expect = float(round(double(float(p))));  // float(p) is exact whenever p is a normal float
        if (std::abs(expect) < 0x1p-126 || std::abs(p) < 0x1p-149) expect = std::signbit(p) ? -0.0f : 0.0f;
      }
      const float got = nearest ? approx::bf16_rne::mul(a, b) : approx::bf16_rz::mul(a, b);
      INFO((nearest ? "rne" : "rz"), "(", a, ", ", b, ") p=", p);
      REQUIRE(bits(got) == bits(expect));
    }
  }
}

TEST_CASE("lut<M>: the table of a Mitchell model equals mitchell<M> bit for bit; of an exact model, the truncated product") {
  auto same_as = [](auto lut_policy, auto other) {
    using L = decltype(lut_policy);
    using O = decltype(other);
    std::vector<float> a, b;
    mantissa_grid(a, b);
    const auto ra = test::any_bits(1u << 20, 61), rb = test::any_bits(1u << 20, 62);
    a.insert(a.end(), ra.begin(), ra.end());
    b.insert(b.end(), rb.begin(), rb.end());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) bad += bits(L::mul(a[i], b[i])) != bits(O::mul(a[i], b[i]));
    INFO(L::name(), " vs ", O::name());
    CHECK(bad == 0);
  };
  same_as(approx::lut<approx::mitchell_model, 1>{}, approx::mitchell<1>{});
  same_as(approx::lut<approx::mitchell_model, 4>{}, approx::mitchell<4>{});
  same_as(approx::lut<approx::mitchell_model, 7>{}, approx::mitchell<7>{});
  same_as(approx::lut<approx::mitchell_model, 8>{}, approx::mitchell<8>{});
  same_as(approx::direct<approx::mitchell_model>{}, approx::mitchell<23>{});

  for (int m : {1, 4, 8}) {
    for (const auto& ab : normal_pairs(100000, 70 + m)) {
      const float a = ab.first, b = ab.second;
      const parts pa = split(a), pb = split(b);
      const double xa = 1 + double(pa.mant >> (23 - m)) / double(1u << m);
      const double xb = 1 + double(pb.mant >> (23 - m)) / double(1u << m);
      const float expect = scaled(pa.negative != pb.negative, xa * xb, pa.exp + pb.exp);
      const float got = m == 1   ? approx::lut<approx::exact_model, 1>::mul(a, b)
                        : m == 4 ? approx::lut<approx::exact_model, 4>::mul(a, b)
                                 : approx::lut<approx::exact_model, 8>::mul(a, b);
      INFO("M=", m, " (", a, ", ", b, ")");
      REQUIRE(bits(got) == bits(expect));
    }
  }
}

namespace {
struct broken_model {
  static float mul(float x, float y) { return x > 1.5f && y > 1.5f ? -1.0f : x * y; }
  static std::string name() { return "broken"; }
};
struct overflowing_model {
  static float mul(float x, float y) { return x * y * 0x1p127f; }
};
}  // namespace

TEST_CASE("lut: a model's bad answers become NaN products and validate() names them") {
  using L = approx::lut<broken_model, 3>;
  CHECK_THROWS_AS(L::validate(), tpp::error);
  CHECK_THROWS_WITH_AS(approx::check_policy<L>(), doctest::Contains("lut<broken,3>"), tpp::error);
  CHECK(std::isnan(L::mul(1.75f, 1.75f)));
  CHECK(L::mul(1.25f, 1.25f) == 1.5625f);
  CHECK_NOTHROW(approx::check_policy<approx::lut<approx::mitchell_model, 7>>());
  CHECK_NOTHROW(approx::check_policy<approx::mitchell<7>>());
  // A model result larger than 1 is rescaled with the range rules: this one overflows at any exponent >= 1.
  using O = approx::lut<overflowing_model, 2>;
  CHECK(std::isinf(O::mul(2.0f, 1.0f)));
  CHECK(O::mul(0x1p-100f, 1.0f) == 0x1p27f);
}

TEST_CASE("lut: one shared table per <Model, M>, built once even under concurrent first use") {
  using L = approx::lut<approx::exact_model, 6>;
  const float* seen[8] = {};
#pragma omp parallel for num_threads(4)
  for (int i = 0; i < 8; ++i) seen[i] = L::table();
  for (const float* p : seen) CHECK(p == seen[0]);
  CHECK(L::table()[(3 << 6) | 5] == (1 + 3 / 64.0f) * (1 + 5 / 64.0f));
}

TEST_CASE("approx8: the 256x256 table reproduces the model; SIMD gathers equal scalar") {
  auto check = [](auto policy) {
    using P = decltype(policy);
    using T = typename P::operand_type;
    std::vector<std::int32_t> a, b;
    for (int i = 0; i < 256; ++i)
      for (int j = 0; j < 256; ++j) {
        a.push_back(T(i));
        b.push_back(T(j));
      }
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto expect = std::int32_t(decltype(policy)::mul(T(a[i]), T(b[i])));
      bad += expect != std::int32_t(P::mul(T(a[i]), T(b[i])));
    }
    CHECK(bad == 0);
    test::for_each_arch([&](auto arch) {
      using A = decltype(arch);
      using I = xsimd::batch<std::int32_t, A>;
      std::size_t mismatches = 0;
      for (std::size_t i = 0; i < a.size(); i += I::size) {
        alignas(64) std::int32_t out[I::size];
        P::mul(I::load_unaligned(&a[i]), I::load_unaligned(&b[i])).store_aligned(out);
        for (std::size_t l = 0; l < I::size; ++l) mismatches += out[l] != P::mul(T(a[i + l]), T(b[i + l]));
      }
      INFO(P::name(), " at ", std::string(A::name()));
      CHECK(mismatches == 0);
    });
  };
  check(approx::approx8<approx::exact8u>{});
  check(approx::approx8<approx::exact8s>{});
  check(approx::approx8<approx::mitchell8u>{});
  CHECK(approx::approx8<approx::exact8u>::mul(255, 255) == 65025);
  CHECK(approx::approx8<approx::exact8s>::mul(-128, -128) == 16384);
  CHECK(approx::approx8<approx::exact8s>::mul(-7, 9) == -63);
  CHECK(approx::approx8<approx::exact8s>::is_signed);
  CHECK(!approx::approx8<approx::mitchell8u>::is_signed);
}

TEST_CASE("mitchell8u: integer Mitchell against the log-domain formula in double") {
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) {
      double expect = 0;
      if (a && b) {
        const int ka = int(std::floor(std::log2(a))), kb = int(std::floor(std::log2(b)));
        const double fa = a / std::ldexp(1.0, ka) - 1, fb = b / std::ldexp(1.0, kb) - 1;
        expect = std::floor(fa + fb < 1 ? std::ldexp(1 + fa + fb, ka + kb) : std::ldexp(fa + fb, ka + kb + 1));
      }
      INFO(a, " x ", b);
      REQUIRE(approx::mitchell8u::mul(std::uint8_t(a), std::uint8_t(b)) == expect);
    }
  // Mitchell never overestimates, and errs by at most 1/9 (plus the integer truncation).
  CHECK(approx::mitchell8u::mul(3, 3) == 8);
}

TEST_CASE("registry: every listed policy satisfies the concept and has a distinct name") {
  std::vector<std::string> names;
  for_each_type(approx::float_policies{}, [&]<class P>() {
    static_assert(approx::multiplier<P>);
    names.push_back(P::name());
  });
  CHECK(names.size() == approx::float_policies::size);
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
  CHECK(approx::mitchell<7>::name() == "mitchell<7>");
  CHECK(approx::lut<approx::mitchell_model, 7>::name() == "lut<mitchell,7>");
}
