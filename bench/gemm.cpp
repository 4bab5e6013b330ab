// GEMM and BRGEMM: FLOP/s (ops/s for u8s8) of tpp's kernels per shape and element type, one thread (the
// side-by-side ratios against oneDNN are tpp_compare_gemm's job). Filter with --benchmark_filter=gemm/
// or brgemm/; counters: "flops" per second.
//   gemm/<type>/<policy>/MxNxK      gemm_kernel, fp32 with every registry policy, bf16 exact; u8s8 exact
//                                   through gemm() (OMP_NUM_THREADS threads: set 1 for one core)
//   brgemm/<policy>/MxNxK/bB        brgemm_kernel, stride batch (LIBXSMM underneath for exact blocks when
//                                   built in), and brgemm/own/... with gemm_backend::tpp

#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <tpp/approx/registry.hpp>
#include <tpp/tpp.hpp>

namespace {

using namespace tpp;

struct gemm_case {
  index_t m, n, k;
};
constexpr gemm_case gemm_cases[] = {{64, 64, 64}, {256, 256, 256}, {784, 128, 1152}};

template <class T>
std::vector<T> filled(index_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    if constexpr (std::is_integral_v<T>)
      v[std::size_t(i)] = T(i * 37 % 97);
    else
      v[std::size_t(i)] = from_float<T>(float(i % 97) * 0.01f - 0.48f);
  }
  return v;
}

std::string dims(index_t m, index_t n, index_t k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

template <class F>
void run(benchmark::State& state, double ops, F&& f) {
  for (auto _ : state) {
    f();
    benchmark::ClobberMemory();
  }
  state.counters["flops"] = benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate);
}

template <class P, class TA, class TB>
void register_gemm(const std::string& type) {
  for (const gemm_case g : gemm_cases)
    benchmark::RegisterBenchmark(("gemm/" + type + "/" + P::name() + "/" + dims(g.m, g.n, g.k)).c_str(),
                                 [g](benchmark::State& state) {
                                   const auto a = filled<TA>(g.m * g.k);
                                   const auto b = filled<TB>(g.k * g.n);
                                   std::vector<float> c(std::size_t(g.m * g.n));
                                   const gemm_kernel<P, TA, TB, float> kernel({g.m, g.n, g.k});
                                   run(state, 2.0 * double(g.m * g.n * g.k),
                                       [&] {
                                         kernel(view(a.data(), g.m, g.k), view(b.data(), g.k, g.n),
                                                view(c.data(), g.m, g.n));
                                       });
                                 });
}

void register_u8s8() {
  for (const gemm_case g : gemm_cases)
    benchmark::RegisterBenchmark(("gemm/u8s8/exact/" + dims(g.m, g.n, g.k)).c_str(), [g](benchmark::State& state) {
      const auto a = filled<std::uint8_t>(g.m * g.k);
      const auto b = filled<std::int8_t>(g.k * g.n);
      std::vector<std::int32_t> c(std::size_t(g.m * g.n));
      run(state, 2.0 * double(g.m * g.n * g.k),
          [&] { gemm(view(a.data(), g.m, g.k), view(b.data(), g.k, g.n), view(c.data(), g.m, g.n)); });
    });
}

template <class P>
void register_brgemm(const std::string& name, gemm_backend backend) {
  for (const auto& gb : {std::pair{gemm_case{32, 32, 32}, index_t(16)}, std::pair{gemm_case{32, 32, 32}, index_t(64)},
                         std::pair{gemm_case{64, 64, 64}, index_t(16)}}) {
    const gemm_case g = gb.first;  // (not a structured binding: clang 14 cannot capture one)
    const index_t batch = gb.second;
    benchmark::RegisterBenchmark(("brgemm/" + name + "/" + dims(g.m, g.n, g.k) + "/b" + std::to_string(batch)).c_str(),
                                 [g, batch, backend](benchmark::State& state) {
                                   const auto a = filled<float>(g.m * g.k * batch);
                                   const auto b = filled<float>(g.k * g.n * batch);
                                   std::vector<float> c(std::size_t(g.m * g.n));
                                   const brgemm_kernel<P> br({g.m, g.n, g.k}, {}, backend);
                                   run(state, 2.0 * double(g.m * g.n * g.k * batch), [&] {
                                     br.by_stride(view(a.data(), g.m, g.k), g.m * g.k, view(b.data(), g.k, g.n),
                                                  g.k * g.n, batch, view(c.data(), g.m, g.n));
                                   });
                                 });
  }
}

const int registered = [] {
  for_each_type(approx::float_policies{}, []<class P>() { register_gemm<P, float, float>("f32"); });
  register_gemm<approx::exact, bf16, bf16>("bf16");
  register_u8s8();
  register_brgemm<approx::exact>("exact", gemm_backend::automatic);
  register_brgemm<approx::exact>("own", gemm_backend::tpp);
  register_brgemm<approx::mitchell<7>>("mitchell<7>", gemm_backend::automatic);
  return 0;
}();

}  // namespace
