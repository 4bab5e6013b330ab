// brgemm_kernel (ops/gemm/brgemm.hpp): every registry policy and batch kind against the double reference of
// the policy's scalar products (tolerance: ops/gemm/gemm_support.hpp), the batch kinds bit for bit against each
// other, tpp's own loops against a loop of gemm_kernel calls; empty batches; bad inputs.

#include <cmath>
#include <limits>
#include <numeric>
#include <span>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using test::batch_operands;
using test::gemm_size;
using test::make;
using test::same_bits;

// Runs the three batch kinds (with the backend the kernel picks: LIBXSMM for exact fp32 blocks when built
// in), tpp's own loops and a loop of gemm_kernel calls on the same operands; checks each against the
// reference and the kinds against each other bit for bit.
template <class P, class TA, class TB, class TC>
void check_brgemm(gemm_size s, gemm_params p, index_t count, index_t pad, std::uint64_t seed) {
  const batch_operands<TA, TB> o(s, p, count, pad, seed);
  const index_t ldc = s.n + pad;
  const auto c0 = make<TC>(std::size_t(s.m * ldc), seed + 2);
  const brgemm_kernel<P, TA, TB, TC> br({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p);

  std::vector<const TA*> pa;
  std::vector<const TB*> pb;
  std::vector<index_t> offs_a, offs_b;
  for (index_t i = 0; i < count; ++i) {
    pa.push_back(o.as[std::size_t(i)].data);
    pb.push_back(o.bs[std::size_t(i)].data);
    offs_a.push_back(i * o.stride_a);
    offs_b.push_back(i * o.stride_b);
  }
  const mat<const TA> a0{o.a.data(), o.ar, o.ac, o.lda};
  const mat<const TB> b0{o.b.data(), o.br, o.bc, o.ldb};
  auto c_of = [&](std::vector<TC>& c) { return mat<TC>{c.data(), s.m, s.n, ldc}; };
  auto by_address = c0, by_offset = c0, by_stride = c0;
  br.by_address(pa, pb, c_of(by_address));
  br.by_offset(o.a.data(), offs_a, o.b.data(), offs_b, c_of(by_offset));
  br.by_stride(a0, o.stride_a, b0, o.stride_b, count, c_of(by_stride));
  CHECK(test::gemm_mismatches<P>(o.as, o.bs, p, s, c0, by_address, ldc) == 0);
  CHECK(same_bits(by_address, by_offset));
  CHECK(same_bits(by_address, by_stride));

  // tpp's own loops (the same as br unless br runs LIBXSMM): the same bits as a loop of gemm_kernel calls
  // when alpha = 1, beta = 1 (the same additions in the same order).
  const brgemm_kernel<P, TA, TB, TC> own({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p, gemm_backend::tpp);
  CHECK_FALSE(own.uses_libxsmm());
  auto by_own = c0;
  own.by_stride(a0, o.stride_a, b0, o.stride_b, count, c_of(by_own));
  if (!br.uses_libxsmm()) CHECK(same_bits(by_address, by_own));
  CHECK(test::gemm_mismatches<P>(o.as, o.bs, p, s, c0, by_own, ldc) == 0);
  if (p.alpha == 1.0f && p.beta == 1.0f && std::is_same_v<TC, float>) {
    auto looped = c0;
    const gemm_kernel<P, TA, TB, TC> g({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p);
    for (index_t i = 0; i < count; ++i) g(o.as[std::size_t(i)], o.bs[std::size_t(i)], c_of(looped));
    CHECK(same_bits(by_own, looped));
  }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("brgemm: every policy and batch kind vs the double reference", P, brgemm_policies) {
  const gemm_size sizes[] = {{1, 1, 1}, {7, 13, 5}, {32, 32, 32}, {15, 33, 17}};
  std::uint64_t seed = 3000;
  for (const gemm_size s : sizes)
    for (int t = 0; t < 4; ++t) {
      gemm_params p{1.0f, 1.0f, bool(t & 1), bool(t & 2)};
      CAPTURE(t);
      check_brgemm<P, float, float, float>(s, p, 3, 0, seed++);
      p.alpha = 0.5f;
      p.beta = t == 1 ? 0.0f : -2.0f;
      check_brgemm<P, float, float, float>(s, p, 4, 2, seed++);
    }
}
TEST_CASE_TEMPLATE_APPLY(brgemm_policies, approx::float_policy_tuple);

TEST_CASE("brgemm: LIBXSMM-sized blocks, bf16 operands and C, K across cache blocks, batch of one") {
  std::uint64_t seed = 4000;
  check_brgemm<approx::exact, float, float, float>({32, 32, 32}, {1.0f, 1.0f}, 16, 0, seed++);
  check_brgemm<approx::exact, float, float, float>({64, 64, 64}, {}, 16, 1, seed++);
  check_brgemm<approx::exact, float, float, float>({29, 50, 300}, {1.0f, 1.0f}, 2, 0, seed++);
  check_brgemm<approx::exact, bf16, bf16, float>({17, 40, 24}, {1.0f, 1.0f, true, false}, 5, 1, seed++);
  check_brgemm<approx::exact, bf16, bf16, bf16>({17, 40, 24}, {0.75f, 0.5f}, 5, 1, seed++);
  check_brgemm<approx::mitchell<7>, bf16, float, float>({12, 20, 9}, {1.0f, 1.0f, false, true}, 6, 0, seed++);
  check_brgemm<approx::exact, float, float, float>({19, 23, 11}, {1.0f, 1.0f}, 1, 0, seed++);
}

TEST_CASE("brgemm: an empty batch gives beta * C, never reading C when beta = 0, then the epilogue") {
  const brgemm_kernel<> br({2, 3, 4});
  std::vector<float> c(6, std::numeric_limits<float>::quiet_NaN()), bias = {1, 2, 3};
  const mat<float> C = view(c.data(), 2, 3);
  br.by_stride(mat<const float>{nullptr, 2, 4, 4}, 0, mat<const float>{nullptr, 4, 3, 3}, 0, 0, C,
               epilogue::bias_per_col{bias.data()});
  CHECK(c == std::vector<float>{1, 2, 3, 1, 2, 3});
  const brgemm_kernel<> br2({2, 3, 4}, {1.0f, 2.0f});
  br2.by_address({}, {}, C);
  CHECK(c == std::vector<float>{2, 4, 6, 2, 4, 6});
  br2.by_offset(nullptr, {}, nullptr, {}, C);
  CHECK(c == std::vector<float>{4, 8, 12, 4, 8, 12});
}

TEST_CASE("brgemm_kernel: bad arguments throw tpp::error naming the argument") {
  const auto arg = [](auto f) { return test::error_argument(f); };
  CHECK(arg([] { brgemm_kernel<>({-1, 2, 3}); }) == "m");
  CHECK(arg([] { brgemm_kernel<>({4, 5, 6, 5}); }) == "lda");

  std::vector<float> buf(64);
  const brgemm_kernel<> br({4, 4, 4});
  const float* ptrs[2] = {buf.data(), buf.data() + 16};
  const float* nulls[2] = {nullptr, nullptr};
  const index_t offs[2] = {0, 16};
  std::vector<float> c(16);
  const mat<float> C = view(c.data(), 4, 4);
  const mat<const float> A0 = view<const float>(buf.data(), 4, 4);
  CHECK(arg([&] { br.by_stride(A0, 16, A0, 16, -1, C); }) == "count");
  CHECK(arg([&] { br.by_address(nulls, ptrs, C); }) == "A_0");
  CHECK(arg([&] { br.by_address(ptrs, std::span<const float* const>(ptrs, 1), C); }) == "B");
  CHECK(arg([&] { br.by_offset(buf.data(), offs, buf.data(), {}, C); }) == "b_offs");
  CHECK(arg([&] { br.by_offset(nullptr, offs, buf.data(), offs, C); }) == "A");
  CHECK(arg([&] { br.by_stride(A0, 16, A0, 16, 2, view(buf.data() + 20, 4, 4)); }) == "C");  // C overlaps A_1
  CHECK(arg([&] { br.by_stride(view<const float>(buf.data(), 4, 3), 16, A0, 16, 2, C); }) == "A0");
  CHECK(arg([&] { br.by_stride(A0, 16, A0, 16, 2, view(c.data(), 4, 3)); }) == "C");  // not the kernel's C
  CHECK(arg([&] { br.by_address(ptrs, ptrs, C); }) == "(no error)");
}
