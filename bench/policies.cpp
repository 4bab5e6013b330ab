// Products per second of every registry policy: SIMD (what the ops use), the inlined scalar definition,
// and a naive loop that makes one out-of-line call per product. Arrays of 2048 pairs stay in L1.

#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <tpp/approx/registry.hpp>

#include "policy_loops.hpp"

namespace {

constexpr std::size_t n = 2048;

struct data {
  std::vector<float> a, b, out;
  data() : a(n), b(n), out(n) {
    std::mt19937 g(1);
    std::uniform_real_distribution<float> d(-4.0f, 4.0f);
    for (std::size_t i = 0; i < n; ++i) {
      a[i] = d(g);
      b[i] = d(g);
    }
  }
};

template <class F>
void run(benchmark::State& state, F&& f) {
  static data d;
  for (auto _ : state) {
    f(d.a.data(), d.b.data(), d.out.data());
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.counters["products/s"] = benchmark::Counter(double(state.iterations() * n), benchmark::Counter::kIsRate);
}

template <class P>
void register_policy() {
  const std::string name = P::name();
  benchmark::RegisterBenchmark(("policy/simd/" + name).c_str(), [](benchmark::State& s) {
    run(s, [](const float* a, const float* b, float* o) { tpp::bench::simd_products<P>(a, b, o, n); });
  });
  benchmark::RegisterBenchmark(("policy/scalar/" + name).c_str(), [](benchmark::State& s) {
    run(s, [](const float* a, const float* b, float* o) { tpp::bench::scalar_products<P>(a, b, o, n); });
  });
  benchmark::RegisterBenchmark(("policy/naive/" + name).c_str(), [](benchmark::State& s) {
    run(s, [](const float* a, const float* b, float* o) {
      tpp::bench::naive_products(&tpp::bench::out_of_line_mul<P>, a, b, o, n);
    });
  });
}

const bool registered = [] {
  tpp::for_each_type(tpp::approx::float_policies{}, []<class P>() { register_policy<P>(); });
  return true;
}();

}  // namespace
