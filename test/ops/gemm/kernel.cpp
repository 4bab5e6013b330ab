// gemm_kernel (ops/gemm/kernel.hpp): the same bits as gemm() on one thread; views checked against the shape
// it was made for; its workspace (workspace_bytes(), a caller's workspace at any alignment, too small
// throws); bad shapes and arguments.

#include <cstddef>
#include <limits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using test::batch_operands;
using test::gemm_size;
using test::make;
using test::same_bits;

}  // namespace

TEST_CASE("gemm_kernel: the same bits as gemm() on one thread, any ld") {
  const gemm_size s{45, 70, 33};
  for (int t = 0; t < 4; ++t) {
    const gemm_params p{1.5f, 0.25f, bool(t & 1), bool(t & 2)};
    const batch_operands<float, float> o(s, p, 1, 3, 60 + std::uint64_t(t));
    const index_t ldc = s.n + 1;
    const auto c0 = make<float>(std::size_t(s.m * ldc), 70);
    auto by_kernel = c0, by_call = c0;
    gemm_kernel<approx::mbm<7>>({s.m, s.n, s.k, o.lda, o.ldb, ldc}, p)(o.as[0], o.bs[0],
                                                                      mat<float>{by_kernel.data(), s.m, s.n, ldc});
    gemm<approx::mbm<7>>(o.as[0], o.bs[0], mat<float>{by_call.data(), s.m, s.n, ldc}, p);
    CHECK(same_bits(by_kernel, by_call));
  }
}

TEST_CASE_TEMPLATE("gemm_kernel: a caller's workspace of workspace_bytes() at any alignment gives the same bits; "
                   "a smaller one throws",
                   P, approx::exact, approx::mitchell<7>, approx::lut<approx::exact_model, 4>) {
  const gemm_size s{37, 53, 300};
  const gemm_params p{1.0f, 0.5f};
  const batch_operands<float, float> o(s, p, 1, 0, 80);
  const auto c0 = make<float>(std::size_t(s.m * s.n), 81);
  for (const bool bf16_c : {false, true}) {
    CAPTURE(bf16_c);
    auto run = [&](workspace ws) {
      std::vector<float> c = c0;
      if (bf16_c) {
        std::vector<bf16> cb(c0.size());
        for (std::size_t i = 0; i < c.size(); ++i) cb[i] = to_bf16_rne(c0[i]);
        const gemm_kernel<P, float, float, bf16> k({s.m, s.n, s.k}, p);
        k(o.as[0], o.bs[0], view(cb.data(), s.m, s.n), {}, ws);
        for (std::size_t i = 0; i < c.size(); ++i) c[i] = to_float(cb[i]);
      } else {
        const gemm_kernel<P> k({s.m, s.n, s.k}, p);
        k(o.as[0], o.bs[0], view(c.data(), s.m, s.n), {}, ws);
      }
      return c;
    };
    const std::size_t bytes = bf16_c ? gemm_kernel<P, float, float, bf16>({s.m, s.n, s.k}, p).workspace_bytes()
                                     : gemm_kernel<P>({s.m, s.n, s.k}, p).workspace_bytes();
    CHECK(bytes > 0);
    const auto by_arena = run({});
    for (std::size_t skew : {0, 1, 4, 36}) {  // any alignment: the kernel aligns inside
      std::vector<std::byte> mem(bytes + skew, std::byte{0x7f});
      CHECK(same_bits(run({mem.data() + skew, bytes}), by_arena));
    }
    std::vector<std::byte> small(bytes);
    CHECK_THROWS_WITH_AS(run({small.data(), bytes / 2}), doctest::Contains("workspace"), tpp::error);
  }
}

TEST_CASE("gemm_kernel: bad shapes and arguments throw tpp::error naming the argument") {
  const auto arg = [](auto f) { return test::error_argument(f); };
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
  const auto at = [&](index_t offset) { return view(buf.data() + offset, 4, 4); };
  CHECK(arg([&] { g(mat<const float>{nullptr, 4, 4, 4}, at(0), at(32)); }) == "A.data");
  CHECK(arg([&] { g(at(32), at(16), at(40)); }) == "C");  // C overlaps A
  CHECK(arg([&] { g(at(0), at(40), at(36)); }) == "C");   // C overlaps B
  // Views must be what the kernel was made for: shape and ld.
  CHECK(arg([&] { g(view(buf.data(), 4, 3), at(16), at(32)); }) == "A");
  CHECK(arg([&] { g(at(0), view(buf.data() + 16, 4, 4, 5), at(40)); }) == "B");
  CHECK(arg([&] { g(at(0), at(16), view(buf.data() + 32, 3, 4)); }) == "C");
  CHECK_THROWS_WITH_AS(g(at(0), at(16), view(buf.data() + 32, 4, 4, 6)),
                       "tpp::gemm_kernel: C is (4x4, ld 6) but the kernel was made for (4x4, ld 4)", tpp::error);
  CHECK(arg([&] { g(at(0), at(16), at(32)); }) == "(no error)");
}
