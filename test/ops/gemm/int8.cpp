// gemm() on uint8 x int8 -> int32 (ops/gemm/int8.hpp): exact, against an int64 loop, over edges, K tails,
// transposes, beta 1, K across slices and the threaded split; bad alpha and beta.

#include <limits>

#include <tpp/ops/gemm.hpp>

#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using test::check_gemm_s32;

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
