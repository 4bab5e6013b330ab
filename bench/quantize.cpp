// Quantization primitives (ops/quantize.hpp): bytes moved per second (reads + writes of the views, not counting
// write-allocate traffic) through kernel objects made once per shape, at the sizes of bandwidth.hpp:
//   l1    32 x 256    l2    256 x 512    dram  4096 x 4096
// quantize/memcpy is the bandwidth reference of the same run (std::memcpy of the fp32 view, same bytes counted).
// binary_gemm/MxNxK against gemm/f32/exact on the same shape: "ops" = 2 M N K per second (one thread: the
// binary GEMM is single-threaded; run with OMP_NUM_THREADS=1 for a per-core comparison).
// Filter with --benchmark_filter=quantize/ or binary_gemm/.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <tpp/tpp.hpp>

#include "bandwidth.hpp"

namespace {

using namespace tpp;
using namespace tpp::bench;

// fp32 -> int8, per-tensor or per-column scales.
void quantize_case(benchmark::State& state, size_case s, quant_granularity g) {
  const auto x = filled<float>(s.rows * s.cols, 0.3f);
  buffer<std::int8_t> q(x.size());
  std::vector<float> scale(g == quant_granularity::per_col ? std::size_t(s.cols) : 1, 0.01f);
  const quantize_kernel<approx::exact, float, std::int8_t> k(s.rows, s.cols, {g, scale, {}});
  run(state, 5.0 * double(x.size()), [&] { k(view(x.data(), s.rows, s.cols), view(q.data(), s.rows, s.cols)); });
}

void dequantize_case(benchmark::State& state, size_case s) {
  buffer<std::int8_t> q(std::size_t(s.rows * s.cols));
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::int8_t(i * 37 % 255 - 127);
  buffer<float> y(q.size());
  const float scale[] = {0.01f};
  const std::int32_t zero[] = {3};
  const dequantize_kernel<approx::exact, std::int8_t, float> k(s.rows, s.cols, {quant_granularity::per_tensor, scale, zero});
  run(state, 5.0 * double(q.size()),
      [&] { k(view<const std::int8_t>(q.data(), s.rows, s.cols), view(y.data(), s.rows, s.cols)); });
}

void fixed_case(benchmark::State& state, size_case s, rounding r) {
  const auto x = filled<float>(s.rows * s.cols, 0.3f);
  buffer<std::int16_t> q(x.size());
  const fixed_quantize_kernel<float> k(s.rows, s.cols, {4, 12}, r, {42, 0, 0});
  run(state, 6.0 * double(x.size()), [&] { k(view(x.data(), s.rows, s.cols), view(q.data(), s.rows, s.cols)); });
}

void bf16_case(benchmark::State& state, size_case s, rounding r) {
  const auto x = filled<float>(s.rows * s.cols, 0.3f);
  buffer<bf16> y(x.size());
  const bf16_round_kernel k(s.rows, s.cols, r, {42, 0, 0});
  run(state, 6.0 * double(x.size()), [&] { k(view(x.data(), s.rows, s.cols), view(y.data(), s.rows, s.cols)); });
}

void bfp_case(benchmark::State& state, size_case s, index_t block) {
  const auto x = filled<float>(s.rows * s.cols, 0.3f);
  buffer<float> y(x.size());
  const bfp_fake_quant_kernel<float, float> k(s.rows, s.cols, {block, 8, false});
  run(state, 8.0 * double(x.size()), [&] { k(view(x.data(), s.rows, s.cols), view(y.data(), s.rows, s.cols)); });
}

void pow2_case(benchmark::State& state, size_case s) {
  const auto x = filled<float>(s.rows * s.cols, 0.3f);
  buffer<float> y(x.size());
  const pow2_quantize_kernel<float, float> k(s.rows, s.cols, {-7, 0, 0.0f});
  run(state, 8.0 * double(x.size()), [&] { k(view(x.data(), s.rows, s.cols), view(y.data(), s.rows, s.cols)); });
}

template <class F>
void reg(const std::string& name, F f) {
  for (const size_case s : sizes)
    benchmark::RegisterBenchmark(("quantize/" + name + "/" + s.name).c_str(), [f, s](benchmark::State& st) { f(st, s); });
}

// ---- binary GEMM vs fp32 GEMM ----

struct gemm_shape {
  index_t m, n, k;
};
constexpr gemm_shape gemm_shapes[] = {{512, 512, 4096}, {64, 64, 1024}};

std::string dims(const gemm_shape& g) {
  return std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k);
}

void ops_counter(benchmark::State& state, const gemm_shape& g) {
  state.counters["ops"] = benchmark::Counter(2.0 * double(g.m * g.n * g.k), benchmark::Counter::kIsIterationInvariantRate);
}

void binary_gemm_case(benchmark::State& state, gemm_shape g) {
  const index_t w = packed_words(g.k);
  std::vector<std::uint64_t> a(std::size_t(g.m * w)), b(std::size_t(g.n * w));
  std::uint64_t z = 0x9e3779b97f4a7c15ull;
  for (auto& x : a) x = (z = dropout_mix64(z));
  for (auto& x : b) x = (z = dropout_mix64(z));
  std::vector<std::int32_t> c(std::size_t(g.m * g.n));
  const binary_gemm_kernel k(g.m, g.n, g.k);
  for (auto _ : state) {
    k(view<const std::uint64_t>(a.data(), g.m, w), view<const std::uint64_t>(b.data(), g.n, w), view(c.data(), g.m, g.n));
    benchmark::ClobberMemory();
  }
  ops_counter(state, g);
}

void f32_gemm_case(benchmark::State& state, gemm_shape g) {
  const auto a = filled<float>(g.m * g.k, 0.1f), b = filled<float>(g.k * g.n, 0.2f);
  std::vector<float> c(std::size_t(g.m * g.n));
  const gemm_kernel<approx::exact, float, float, float> k({g.m, g.n, g.k});
  for (auto _ : state) {
    k(view(a.data(), g.m, g.k), view(b.data(), g.k, g.n), view(c.data(), g.m, g.n));
    benchmark::ClobberMemory();
  }
  ops_counter(state, g);
}

const bool registered = [] {
  reg("memcpy/f32", memcpy_case);
  reg("int8/f32_to_s8/per_tensor", [](benchmark::State& st, size_case s) { quantize_case(st, s, quant_granularity::per_tensor); });
  reg("int8/f32_to_s8/per_col", [](benchmark::State& st, size_case s) { quantize_case(st, s, quant_granularity::per_col); });
  reg("int8/s8_to_f32", dequantize_case);
  reg("fixed/f32_to_s16/nearest", [](benchmark::State& st, size_case s) { fixed_case(st, s, rounding::nearest_even); });
  reg("fixed/f32_to_s16/stochastic", [](benchmark::State& st, size_case s) { fixed_case(st, s, rounding::stochastic); });
  reg("bf16/nearest", [](benchmark::State& st, size_case s) { bf16_case(st, s, rounding::nearest_even); });
  reg("bf16/stochastic", [](benchmark::State& st, size_case s) { bf16_case(st, s, rounding::stochastic); });
  reg("bfp/fake_quant/b16_m8", [](benchmark::State& st, size_case s) { bfp_case(st, s, 16); });
  reg("bfp/fake_quant/b64_m8", [](benchmark::State& st, size_case s) { bfp_case(st, s, 64); });
  reg("pow2/fake_quant", pow2_case);
  for (const gemm_shape g : gemm_shapes) {
    benchmark::RegisterBenchmark(("binary_gemm/" + dims(g)).c_str(), [g](benchmark::State& st) { binary_gemm_case(st, g); });
    benchmark::RegisterBenchmark(("binary_gemm/vs_gemm_f32_exact/" + dims(g)).c_str(),
                                 [g](benchmark::State& st) { f32_gemm_case(st, g); });
  }
  return true;
}();

}  // namespace
