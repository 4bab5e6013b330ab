// gemm: every registry policy, transposes, ld padding, alpha/beta, fp32/bf16, edge shapes, against a
// double-precision reference built from the policy's own scalar products; bad inputs.
//
// Tolerance: see gemm_support.hpp.

#include <cmath>
#include <limits>
#include <random>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "gemm_support.hpp"

namespace {

using namespace tpp;

using test::make;
using shape = test::gemm_size;

template <class P, class TA, class TB, class TC>
void check_gemm(shape s, gemm_params p, index_t pad, std::uint64_t seed) {
  const index_t ar = p.trans_a ? s.k : s.m, ac = p.trans_a ? s.m : s.k;
  const index_t br = p.trans_b ? s.n : s.k, bc = p.trans_b ? s.k : s.n;
  const index_t lda = ac + pad, ldb = bc + 2 * pad, ldc = s.n + pad;
  auto a = make<TA>(std::size_t(ar * lda), seed);
  auto b = make<TB>(std::size_t(br * ldb), seed + 1);
  auto c = make<TC>(std::size_t(s.m * ldc), seed + 2);
  const auto c0 = c;
  const mat<const TA> A{a.data(), ar, ac, lda};
  const mat<const TB> B{b.data(), br, bc, ldb};
  gemm<P>(A, B, mat<TC>{c.data(), s.m, s.n, ldc}, p);
  CHECK(test::gemm_mismatches<P>(std::vector{A}, std::vector{B}, p, s, c0, c, ldc) == 0);
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("gemm: every policy vs the double reference of its scalar products", P, gemm_policies) {
  const shape shapes[] = {{1, 1, 1},   {1, 17, 1},  {3, 1, 5},   {4, 32, 8},   {5, 33, 7},   {7, 15, 1},
                          {13, 47, 29}, {17, 64, 3}, {31, 5, 64}, {2, 100, 37}, {37, 97, 131}};
  std::uint64_t seed = 100;
  for (const shape s : shapes)
    for (int t = 0; t < 4; ++t) {
      gemm_params p;
      p.trans_a = t & 1;
      p.trans_b = t & 2;
      CAPTURE(t);
      check_gemm<P, float, float, float>(s, p, 0, seed++);
      p.alpha = -0.75f;
      p.beta = 1.5f;
      check_gemm<P, float, float, float>(s, p, 3, seed++);
    }
}
TEST_CASE_TEMPLATE_APPLY(gemm_policies, approx::float_policy_tuple);

TEST_CASE("gemm: bf16 inputs and outputs, every transpose, beta") {
  std::uint64_t seed = 900;
  for (const shape s : {shape{1, 1, 1}, shape{9, 31, 17}, shape{33, 65, 40}})
    for (int t = 0; t < 4; ++t) {
      gemm_params p;
      p.trans_a = t & 1;
      p.trans_b = t & 2;
      p.beta = t == 3 ? 0.5f : 0.0f;
      check_gemm<approx::exact, bf16, bf16, float>(s, p, 1, seed++);
      check_gemm<approx::exact, bf16, float, bf16>(s, p, 2, seed++);
      check_gemm<approx::bf16_rne, float, bf16, bf16>(s, p, 0, seed++);
    }
}

TEST_CASE("gemm: large enough to run threaded, rows not a multiple of the block") {
  check_gemm<approx::exact, float, float, float>({203, 130, 97}, {}, 1, 7);
  check_gemm<approx::mitchell<7>, float, float, float>({129, 67, 251}, {0.5f, 0.0f, true, false}, 0, 8);
}

TEST_CASE("gemm: across cache-block boundaries (K > KC, M > MC, N > NC), every transpose, beta") {
  // KC = 256, MC ~ 168, NC = 512 (gemm_blocking; KC = 16 for the lut<, 4> table path): several K slices
  // accumulate into C, edge tiles included.
  std::uint64_t seed = 500;
  for (int t = 0; t < 4; ++t) {
    gemm_params p{1.25f, t == 2 ? -0.5f : 0.0f, bool(t & 1), bool(t & 2)};
    CAPTURE(t);
    check_gemm<approx::exact, float, float, float>({181, 45, 600}, p, 1, seed++);
    check_gemm<approx::exact, float, float, float>({3, 1100, 5}, p, 0, seed++);
    check_gemm<approx::mitchell<7>, float, float, float>({20, 600, 300}, p, 0, seed++);
    check_gemm<approx::exact, bf16, bf16, bf16>({170, 33, 520}, p, 2, seed++);
    check_gemm<approx::drum<6>, float, float, float>({23, 40, 530}, p, 0, seed++);
    check_gemm<approx::lut<approx::exact_model, 4>, float, float, float>({31, 70, 300}, p, 1, seed++);
  }
}

TEST_CASE("gemm: beta = 0 never reads C; K = 0 gives beta * C") {
  std::vector<float> a(6, 1.0f), b(6, 2.0f), c(4, std::numeric_limits<float>::quiet_NaN());
  gemm(view(a.data(), 2, 3), view(b.data(), 3, 2), view(c.data(), 2, 2));
  for (float x : c) CHECK(x == 6.0f);
  std::vector<float> c2 = {1, 2, 3, 4};
  gemm(view(a.data(), 2, 0), view(b.data(), 0, 2), view(c2.data(), 2, 2), {1.0f, 2.0f});
  CHECK(c2 == std::vector<float>{2, 4, 6, 8});
  gemm(mat<const float>{a.data(), 2, 0, 0}, mat<const float>{b.data(), 0, 2, 2}, view(c2.data(), 2, 2));
  CHECK(c2 == std::vector<float>{0, 0, 0, 0});
}

TEST_CASE("gemm: the policy is applied to every product (Mitchell's 1.5 x 1.5 = 2)") {
  std::vector<float> a(8, 1.5f), b(8, 1.5f), c(4);
  gemm<approx::mitchell<7>>(view(a.data(), 2, 4), view(b.data(), 4, 2), view(c.data(), 2, 2));
  for (float x : c) CHECK(x == 8.0f);
  gemm(view(a.data(), 2, 4), view(b.data(), 4, 2), view(c.data(), 2, 2));
  for (float x : c) CHECK(x == 9.0f);
}

TEST_CASE("gemm: bad arguments throw tpp::error naming the argument") {
  std::vector<float> a(64), b(64), c(64);
  auto A = view(a.data(), 4, 4), B = view(b.data(), 4, 4), C = view(c.data(), 4, 4);
  CHECK_THROWS_WITH_AS(gemm(view(a.data(), 3, 4), B, C), doctest::Contains("tpp::gemm: A op(A) is (3x4)"), error);
  CHECK_THROWS_WITH_AS(gemm(A, view(b.data(), 3, 4), C), doctest::Contains("tpp::gemm: B"), error);
  CHECK_THROWS_WITH_AS(gemm(A, view(b.data(), 4, 5), C), doctest::Contains("tpp::gemm: B"), error);
  CHECK_THROWS_WITH_AS(gemm(A, B, mat<float>{c.data(), 4, 4, 2}), doctest::Contains("tpp::gemm: C.ld"), error);
  CHECK_THROWS_WITH_AS(gemm(mat<float>{nullptr, 4, 4, 4}, B, C), doctest::Contains("A.data is null"), error);
  CHECK_THROWS_WITH_AS(gemm(mat<float>{a.data(), -1, 4, 4}, B, C), doctest::Contains("A.rows is negative"), error);
  CHECK_THROWS_WITH_AS(gemm(A, B, view(a.data() + 2, 4, 4)), doctest::Contains("C overlaps A"), error);
  CHECK_THROWS_WITH_AS(gemm(A, B, view(b.data(), 4, 4)), doctest::Contains("C overlaps B"), error);
  // Disjoint column blocks of one buffer are fine.
  std::vector<float> big(8 * 8, 1.0f);
  CHECK_NOTHROW(gemm(view(big.data(), 8, 4, 8), view(b.data(), 4, 4), view(big.data() + 4, 8, 4, 8)));
  CHECK(big[4] == 0.0f);
}

TEST_CASE_TEMPLATE("gemm: fast paths equal the policy's products; out-of-range panels take the careful path", P,
                   approx::drum<6>, approx::drum<12>, approx::bf16_rz, approx::bf16_rne, approx::mitchell<7>,
                   approx::mitchell<23>, approx::mitchell<3>, approx::mbm<7>, approx::mbm<23>,
                   approx::mbm<2>, approx::lut<approx::mitchell_model, 7>,
                   approx::lut<approx::exact_model, 4>, approx::lut<approx::exact_model, 8>) {
  // K = 1: every C element is 0 + P::mul(a_i, b_j), so it must equal the policy's product (+-0 alike).
  auto check_outer = [](const std::vector<float>& a, const std::vector<float>& b) {
    std::vector<float> c(a.size() * b.size());
    gemm<P>(view(a.data(), index_t(a.size()), 1), view(b.data(), 1, index_t(b.size())),
            view(c.data(), index_t(a.size()), index_t(b.size())));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      for (std::size_t j = 0; j < b.size(); ++j) {
        const float want = P::mul(a[i], b[j]), got = c[i * b.size() + j];
        if (!(got == want || (std::isnan(got) && std::isnan(want))) && bad++ < 3)
          MESSAGE(P::name(), "(", a[i], ", ", b[j], ") = ", want, " but gemm gave ", got);
      }
    CHECK(bad == 0);
  };
  const auto normal_a = test::uniform(37, -3.0f, 3.0f, 1), normal_b = test::uniform(45, -2.0f, 2.0f, 2);
  check_outer(normal_a, normal_b);  // in range: the fast path
  auto zeros_a = normal_a, zeros_b = normal_b;  // zeros and denormals keep a block in range
  zeros_a[1] = 0.0f;
  zeros_a[2] = -0.0f;
  zeros_a[17] = 1e-41f;
  zeros_b[0] = -0.0f;
  zeros_b[5] = 0.0f;
  zeros_b[30] = -1e-42f;
  check_outer(zeros_a, zeros_b);
  // Products that overflow, fall below the normal range, or meet Inf, NaN, zeros and denormals: the
  // careful path must give exactly the policy's special values.
  auto wide_a = normal_a, wide_b = normal_b;
  wide_a[3] = 1e30f;
  wide_a[5] = 1e-20f;
  wide_a[6] = 0.0f;
  wide_a[7] = -1e-40f;  // denormal
  wide_b[2] = 1e20f;
  wide_b[4] = -1e-19f;  // with 1e-20: -1e-39, a denormal whose bf16 rounding is not 0
  check_outer(wide_a, normal_b);
  check_outer(normal_a, wide_b);
  check_outer(wide_a, wide_b);
  auto special_b = normal_b;
  special_b[1] = std::numeric_limits<float>::infinity();
  special_b[9] = std::numeric_limits<float>::quiet_NaN();
  check_outer(wide_a, special_b);
  // With bf16_rne an operand near FLT_MAX rounds to Inf while packing: also the careful path.
  auto near_max = normal_a;
  near_max[0] = 3.4e38f;
  check_outer(near_max, normal_b);
}

namespace {

// An integer GEMM against an int64 loop over product(a, b): exact, so equality. Values cover both byte
// ranges' ends. run(A, B, C, params) calls the GEMM under test.
template <class TA, class TB, class Product, class Run>
void check_gemm_s32(index_t m, index_t n, index_t k, bool ta, bool tb, bool beta_one, index_t pad, std::uint32_t seed,
                    const Product& product, const Run& run) {
  std::mt19937 rng(seed);
  const index_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  const index_t lda = ac + pad, ldb = bc + pad, ldc = n + pad;
  std::vector<TA> a(std::size_t(std::max<index_t>(ar * lda, 1)));
  std::vector<TB> b(std::size_t(std::max<index_t>(br * ldb, 1)));
  std::vector<std::int32_t> c(std::size_t(m * ldc));
  auto byte = [&](auto x) {  // the type's extreme values one time in four
    using T = decltype(x);
    return rng() % 4 == 0 ? (rng() % 2 ? std::numeric_limits<T>::min() : std::numeric_limits<T>::max()) : T(rng());
  };
  for (auto& x : a) x = byte(TA());
  for (auto& x : b) x = byte(TB());
  for (auto& x : c) x = std::int32_t(rng() % 2001) - 1000;
  const auto c0 = c;
  const mat<const TA> A{a.data(), ar, ac, lda};
  const mat<const TB> B{b.data(), br, bc, ldb};
  run(A, B, mat<std::int32_t>{c.data(), m, n, ldc}, gemm_params{1.0f, beta_one ? 1.0f : 0.0f, ta, tb});
  std::size_t bad = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < ldc; ++j) {
      std::int64_t want = c0[std::size_t(i * ldc + j)];  // padding untouched
      if (j < n) {
        want = beta_one ? want : 0;
        for (index_t q = 0; q < k; ++q) want += std::int64_t(product(ta ? A(q, i) : A(i, q), tb ? B(j, q) : B(q, j)));
      }
      if (c[std::size_t(i * ldc + j)] != want && bad++ < 3)
        MESSAGE("m=", m, " n=", n, " k=", k, " (", i, ",", j, ") got ", c[std::size_t(i * ldc + j)], " want ", want);
    }
  CHECK(bad == 0);
}

void check_gemm_u8s8(index_t m, index_t n, index_t k, bool ta, bool tb, bool beta_one, index_t pad, std::uint32_t seed) {
  check_gemm_s32<std::uint8_t, std::int8_t>(
      m, n, k, ta, tb, beta_one, pad, seed, [](std::uint8_t x, std::int8_t y) { return int(x) * int(y); },
      [](auto A, auto B, mat<std::int32_t> C, gemm_params p) { gemm(A, B, C, p); });
}

}  // namespace

TEST_CASE("gemm: uint8 x int8 -> int32 is exact: edges, K tails, transposes, beta 1, K across slices, threaded") {
  std::uint32_t seed = 77;
  const test::gemm_size sizes[] = {{1, 1, 1}, {3, 5, 2}, {14, 32, 4}, {15, 33, 7}, {29, 47, 61}, {2, 100, 1029}};
  for (const auto s : sizes)
    for (int t = 0; t < 8; ++t) check_gemm_u8s8(s.m, s.n, s.k, t & 1, t & 2, t & 4, t % 3, seed++);
  check_gemm_u8s8(300, 280, 200, false, false, false, 0, seed++);
  check_gemm_u8s8(5, 7, 0, false, false, true, 1, seed++);
  check_gemm_u8s8(5, 7, 0, false, false, false, 1, seed++);
  std::vector<std::uint8_t> a(4);
  std::vector<std::int8_t> b(4);
  std::vector<std::int32_t> c(4);
  auto arg = [&](gemm_params p) {
    try {
      gemm(view(a.data(), 2, 2), view(b.data(), 2, 2), view(c.data(), 2, 2), p);
    } catch (const tpp::error& e) {
      return e.argument();
    }
    return std::string("(no error)");
  };
  CHECK(arg({2.0f}) == "alpha");
  CHECK(arg({1.0f, 0.5f}) == "beta");
  CHECK(arg({1.0f, 1.0f}) == "(no error)");
}

TEST_CASE_TEMPLATE("gemm: approx8<Model> equals the int64 sum of the model's products: edges, transposes, beta 1, "
                   "K across slices, threaded",
                   P, approx::approx8<approx::mitchell8u>, approx::approx8<approx::exact8s>,
                   approx::approx8<approx::exact8u>) {
  using T = typename P::operand_type;
  const auto product = [](T x, T y) { return std::int64_t(P::mul(x, y)); };
  const auto run = [](auto A, auto B, mat<std::int32_t> C, gemm_params p) { gemm<P>(A, B, C, p); };
  std::uint32_t seed = 300;
  const test::gemm_size sizes[] = {{1, 1, 1}, {3, 5, 2}, {14, 32, 8}, {15, 33, 9}, {29, 47, 61}, {2, 100, 300}};
  for (const auto s : sizes)
    for (int t = 0; t < 8; ++t) check_gemm_s32<T, T>(s.m, s.n, s.k, t & 1, t & 2, t & 4, t % 3, seed++, product, run);
  check_gemm_s32<T, T>(300, 280, 70, true, false, false, 0, seed++, product, run);
  check_gemm_s32<T, T>(5, 7, 0, false, false, true, 1, seed++, product, run);
  // Mutable views convert; bad arguments name the argument.
  std::vector<T> a(4), b(4);
  std::vector<std::int32_t> c(4);
  CHECK_NOTHROW(gemm<P>(view(a.data(), 2, 2), view(b.data(), 2, 2), view(c.data(), 2, 2)));
  CHECK_THROWS_AS(gemm<P>(view(a.data(), 2, 2), view(b.data(), 2, 2), view(c.data(), 2, 2), {1.0f, 0.5f}), tpp::error);
  CHECK_THROWS_AS(gemm<P>(view(a.data(), 2, 2), view(b.data(), 1, 2), view(c.data(), 2, 2)), tpp::error);
}
