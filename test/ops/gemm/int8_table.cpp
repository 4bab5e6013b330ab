// gemm() with an 8-bit multiplier (ops/gemm/int8_table.hpp): approx8<Model> against the int64 sum of the
// model's products over edges, transposes, beta 1, K across slices and the threaded split; bad arguments.

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "ops/gemm/gemm_support.hpp"

using namespace tpp;
using test::check_gemm_s32;

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
