// gemm_kernel, brgemm_kernel and the epilogues: every registry policy and batch kind against the double
// reference of the policy's scalar products (tolerance: gemm_support.hpp), the batch kinds bit for bit
// against each other and against a loop of gemm_kernel calls, epilogues against their definitions and
// against the unfused composition; bad inputs.

#include <cmath>
#include <limits>
#include <numeric>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "gemm_support.hpp"

namespace {

using namespace tpp;
using test::gemm_size;
using test::make;

// A batch of `count` operand pairs stored `stride` elements apart in one buffer each (stride >= a matrix,
// plus a gap), the stored shapes following the transposes, lds padded by pad.
template <class TA, class TB>
struct batch_operands {
  index_t ar, ac, br, bc, lda, ldb, stride_a, stride_b;
  std::vector<TA> a;
  std::vector<TB> b;
  std::vector<mat<const TA>> as;
  std::vector<mat<const TB>> bs;

  batch_operands(gemm_size s, const gemm_params& p, index_t count, index_t pad, std::uint64_t seed)
      : ar(p.trans_a ? s.k : s.m), ac(p.trans_a ? s.m : s.k), br(p.trans_b ? s.n : s.k), bc(p.trans_b ? s.k : s.n),
        lda(ac + pad), ldb(bc + pad), stride_a(ar * lda + 3), stride_b(br * ldb + 5),
        a(make<TA>(std::size_t(stride_a * std::max<index_t>(count, 1)), seed)),
        b(make<TB>(std::size_t(stride_b * std::max<index_t>(count, 1)), seed + 1)) {
    for (index_t i = 0; i < count; ++i) {
      as.push_back({a.data() + i * stride_a, ar, ac, lda});
      bs.push_back({b.data() + i * stride_b, br, bc, ldb});
    }
  }
};

template <class T>
bool same_bits(const std::vector<T>& x, const std::vector<T>& y) {
  if (x.size() != y.size()) return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (test::bits(to_float(x[i])) != test::bits(to_float(y[i]))) return false;
  return true;
}

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
  auto by_address = c0, by_offset = c0, by_stride = c0;
  br(pa.data(), pb.data(), by_address.data(), count);
  br(o.a.data(), offs_a.data(), o.b.data(), offs_b.data(), by_offset.data(), count);
  br.strided(o.a.data(), o.stride_a, o.b.data(), o.stride_b, by_stride.data(), count);
  CHECK(test::gemm_mismatches<P>(o.as, o.bs, p, s, c0, by_address, ldc) == 0);
  CHECK(same_bits(by_address, by_offset));
  CHECK(same_bits(by_address, by_stride));

  // tpp's own loops (the same as br unless br runs LIBXSMM): the same bits as a loop of gemm_kernel calls
  // when alpha = 1, beta = 1 (the same additions in the same order).
  const brgemm_kernel<P, TA, TB, TC> own({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p, gemm_backend::tpp);
  CHECK_FALSE(own.uses_libxsmm());
  auto by_own = c0;
  own.strided(o.a.data(), o.stride_a, o.b.data(), o.stride_b, by_own.data(), count);
  if (!br.uses_libxsmm()) CHECK(same_bits(by_address, by_own));
  CHECK(test::gemm_mismatches<P>(o.as, o.bs, p, s, c0, by_own, ldc) == 0);
  if (p.alpha == 1.0f && p.beta == 1.0f && std::is_same_v<TC, float>) {
    auto looped = c0;
    const gemm_kernel<P, TA, TB, TC> g({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p);
    for (index_t i = 0; i < count; ++i) g(pa[std::size_t(i)], pb[std::size_t(i)], looped.data());
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
  br.strided(nullptr, 0, nullptr, 0, c.data(), 0, epilogue::bias_per_col{bias.data()});
  CHECK(c == std::vector<float>{1, 2, 3, 1, 2, 3});
  const brgemm_kernel<> br2({2, 3, 4}, {1.0f, 2.0f});
  br2(static_cast<const float* const*>(nullptr), nullptr, c.data(), 0);
  CHECK(c == std::vector<float>{2, 4, 6, 2, 4, 6});
}

TEST_CASE("gemm_kernel: the same bits as gemm() on one thread, any ld") {
  const gemm_size s{45, 70, 33};
  for (int t = 0; t < 4; ++t) {
    const gemm_params p{1.5f, 0.25f, bool(t & 1), bool(t & 2)};
    const batch_operands<float, float> o(s, p, 1, 3, 60 + std::uint64_t(t));
    const index_t ldc = s.n + 1;
    const auto c0 = make<float>(std::size_t(s.m * ldc), 70);
    auto by_kernel = c0, by_call = c0;
    gemm_kernel<approx::mbm<7>>({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p)(o.a.data(), o.b.data(), by_kernel.data());
    gemm<approx::mbm<7>>(o.as[0], o.bs[0], mat<float>{by_call.data(), s.m, s.n, ldc}, p);
    CHECK(same_bits(by_kernel, by_call));
  }
}

TEST_CASE("epilogues: bias and relu vs their definitions, fp32 and bf16 C, threaded and single") {
  std::uint64_t seed = 5000;
  // (40, 50, 30) runs on one thread; (300, 260, 64) is split over the team by columns (global j indices).
  for (const gemm_size s : {gemm_size{40, 50, 30}, gemm_size{300, 260, 64}, gemm_size{260, 90, 128}})
    for (int t = 0; t < 2; ++t) {
      const gemm_params p{1.0f, t == 1 ? 0.5f : 0.0f, t == 1, false};
      const batch_operands<float, float> o(s, p, 1, 1, seed++);
      const auto bias_n = make<float>(std::size_t(s.n), seed++), bias_m = make<float>(std::size_t(s.m), seed++);
      const index_t ldc = s.n + 2;
      const auto c0 = make<float>(std::size_t(s.m * ldc), seed++);
      auto c = c0;
      const mat<float> C{c.data(), s.m, s.n, ldc};
      gemm(o.as[0], o.bs[0], C, p,
           epilogue::chain{epilogue::bias_per_col{bias_n.data()}, epilogue::activation<unary_kind::relu>{}});
      const test::reference_epilogue col_relu{
          [&](index_t, index_t j, double x) { return std::max(0.0, x + bias_n[std::size_t(j)]); }, 0x1p-24};
      CHECK(test::gemm_mismatches<approx::exact>(o.as, o.bs, p, s, c0, c, ldc, col_relu) == 0);

      c = c0;
      gemm(o.as[0], o.bs[0], C, p, epilogue::bias_per_row{bias_m.data()});
      const test::reference_epilogue row{[&](index_t i, index_t, double x) { return x + bias_m[std::size_t(i)]; },
                                         0x1p-24};
      CHECK(test::gemm_mismatches<approx::exact>(o.as, o.bs, p, s, c0, c, ldc, row) == 0);

      std::vector<bf16> cb(c0.size()), cb0;
      for (std::size_t i = 0; i < c0.size(); ++i) cb[i] = to_bf16_rne(c0[i]);
      cb0 = cb;
      gemm(o.as[0], o.bs[0], mat<bf16>{cb.data(), s.m, s.n, ldc}, p, epilogue::bias_per_row{bias_m.data()});
      CHECK(test::gemm_mismatches<approx::exact>(o.as, o.bs, p, s, cb0, cb, ldc, row) == 0);
    }
}

TEST_CASE("epilogues: fused bias + gelu equals gemm, then the bias add, then unary_kernel, bit for bit") {
  const gemm_size s{37, 45, 29};
  const batch_operands<float, float> o(s, {}, 2, 0, 6000);
  const auto bias = make<float>(std::size_t(s.m), 6001);
  std::vector<float> fused(std::size_t(s.m * s.n)), plain(fused.size()), unfused(fused.size());
  const brgemm_kernel<approx::drum<6>> br({s.m, s.n, s.k});
  using gelu = epilogue::activation<unary_kind::gelu_erf, approx::drum<6>>;
  br.strided(o.a.data(), o.stride_a, o.b.data(), o.stride_b, fused.data(), 2,
             epilogue::chain{epilogue::bias_per_row{bias.data()}, gelu{}});
  br.strided(o.a.data(), o.stride_a, o.b.data(), o.stride_b, plain.data(), 2);
  for (index_t i = 0; i < s.m; ++i)
    for (index_t j = 0; j < s.n; ++j) plain[std::size_t(i * s.n + j)] += bias[std::size_t(i)];
  unary_kernel<unary_kind::gelu_erf, approx::drum<6>>(s.m, s.n)(view(plain.data(), s.m, s.n),
                                                                 view(unfused.data(), s.m, s.n));
  CHECK(same_bits(fused, unfused));
}

TEST_CASE("gemm_kernel / brgemm_kernel: bad shapes and arguments throw tpp::error naming the argument") {
  auto arg = [](auto f) {
    try {
      f();
    } catch (const tpp::error& e) {
      return e.argument();
    }
    return std::string("(no error)");
  };
  CHECK(arg([] { gemm_kernel<>({-1, 2, 3}); }) == "m");
  CHECK(arg([] { gemm_kernel<>({1, 2, -3}); }) == "k");
  CHECK(arg([] { gemm_kernel<>({4, 5, 6, 5}); }) == "lda");
  CHECK(arg([] { gemm_kernel<>({4, 5, 6, 6, 4}); }) == "ldb");
  CHECK(arg([] { gemm_kernel<>({4, 5, 6, 0, 0, 4}); }) == "ldc");
  CHECK(arg([] { gemm_kernel<>({4, 5, 6, 0, 6}, {1.0f, 0.0f, false, true}); }) == "(no error)");
  CHECK(arg([] { gemm_kernel<>({1, 1, 1}, {std::numeric_limits<float>::infinity()}); }) == "alpha");
  CHECK(arg([] { gemm_kernel<>({1, 1, 1}, {1.0f, std::numeric_limits<float>::quiet_NaN()}); }) == "beta");
  CHECK(arg([] { gemm_kernel<>({std::numeric_limits<index_t>::max() / 2, 4, 4}); }) == "A");

  std::vector<float> buf(64);
  const gemm_kernel<> g({4, 4, 4});
  CHECK(arg([&] { g(nullptr, buf.data(), buf.data() + 32); }) == "a.data");
  CHECK(arg([&] { g(buf.data() + 32, buf.data() + 16, buf.data() + 40); }) == "c");  // C overlaps A

  const brgemm_kernel<> br({4, 4, 4});
  const float* ptrs[2] = {buf.data(), buf.data() + 16};
  const index_t offs[2] = {0, 16};
  std::vector<float> c(16);
  CHECK(arg([&] { br(ptrs, ptrs, c.data(), -1); }) == "count");
  CHECK(arg([&] { br(static_cast<const float* const*>(nullptr), ptrs, c.data(), 2); }) == "a");
  CHECK(arg([&] { br(buf.data(), offs, buf.data(), nullptr, c.data(), 2); }) == "b");
  CHECK(arg([&] { br.strided(buf.data(), 16, buf.data(), 16, buf.data() + 20, 2); }) == "c");  // C overlaps A_1
  CHECK(arg([&] { br(ptrs, ptrs, c.data(), 2); }) == "(no error)");
}
