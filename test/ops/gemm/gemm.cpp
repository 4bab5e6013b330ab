// gemm() (ops/gemm.hpp), the free function: every registry policy, transposes, ld padding, alpha/beta,
// fp32/bf16, edge shapes, threaded and across cache blocks, against a double-precision reference built from
// the policy's own scalar products; bad inputs.
//
// Tolerance: see ops/gemm/gemm_support.hpp.

#include <cmath>
#include <limits>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "ops/gemm/gemm_support.hpp"

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
  // KC = 256, MC ~ 168, NC = 512 (blocking_for; KC = 16 for the lut<, 4> table path): several K slices
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
