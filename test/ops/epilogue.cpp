// ops/epilogue.hpp: bias and relu vs their definitions through gemm() (fp32 and bf16 C, threaded and
// single), and a fused bias + gelu through brgemm_kernel against the unfused composition, bit for bit.
// (Epilogues that run GEMMs themselves: test/ops/gemm/composition.cpp.)

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>
#include <cmath>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/epilogue.hpp>
#include <tpp/ops/gemm.hpp>
#include <tpp/ops/unary.hpp>

#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using test::batch_operands;
using test::gemm_size;
using test::make;
using test::same_bits;

}  // namespace

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
  br.by_stride(o.as[0], o.stride_a, o.bs[0], o.stride_b, 2, view(fused.data(), s.m, s.n),
               epilogue::chain{epilogue::bias_per_row{bias.data()}, gelu{}});
  br.by_stride(o.as[0], o.stride_a, o.bs[0], o.stride_b, 2, view(plain.data(), s.m, s.n));
  for (index_t i = 0; i < s.m; ++i)
    for (index_t j = 0; j < s.n; ++j) plain[std::size_t(i * s.n + j)] += bias[std::size_t(i)];
  unary_kernel<unary_kind::gelu_erf, approx::drum<6>>(s.m, s.n)(view(plain.data(), s.m, s.n),
                                                                 view(unfused.data(), s.m, s.n));
  CHECK(same_bits(fused, unfused));
}

TEST_CASE("epilogues: column(j, v) equals the row form on every element (none, bias, activations, chains)") {
  using V = simd::lane;
  constexpr index_t W = lanes::width<V>;
  const std::vector<float> bias{0.5f, -1.25f, 3.0f, -0.0f, 7.5f, -2.0f};
  const epilogue::bias_per_col b{bias.data()};
  const epilogue::activation<unary_kind::relu> relu{};
  const epilogue::activation<unary_kind::gelu_tanh, approx::mitchell<7>> gelu{};
  const epilogue::chain both{b, relu};
  const epilogue::chain three{b, gelu, relu};
  static_assert(epilogue::columnwise<epilogue::none> && epilogue::columnwise<decltype(three)>);
  static_assert(!epilogue::columnwise<epilogue::bias_per_row>);  // depends on the row
  std::vector<float> col(W);
  for (index_t i = 0; i < W; ++i) col[std::size_t(i)] = float(i) * 0.75f - 5.0f + (i == 3 ? 1e30f : 0.0f);
  const auto check = [&](const auto& e) {
    for (index_t j = 0; j < index_t(bias.size()); ++j) {
      std::vector<float> got(W);
      lanes::store(got.data(), e.column(j, lanes::load<V>(col.data())));
      for (index_t i = 0; i < W; ++i) {
        std::vector<float> row(bias.size(), 0.0f);  // element (i, j) of a C row, the rest zero
        row[std::size_t(j)] = col[std::size_t(i)];
        e(i, 0, row.data(), index_t(row.size()));
        CHECK(std::bit_cast<std::uint32_t>(got[std::size_t(i)]) == std::bit_cast<std::uint32_t>(row[std::size_t(j)]));
      }
    }
  };
  check(epilogue::none{});
  check(b);
  check(relu);
  check(gelu);
  check(both);
  check(three);
}
