#pragma once
// Measures this core's fp32 FMA peak (GFLOP/s) with independent xsimd fma chains at the compile-time
// arch, so "% of peak" figures use what this machine does rather than a number from a data sheet.
// (The Zen 5 core measured here: ~285 GFLOP/s, two 512-bit FMA pipes.)

#include <chrono>

#include <xsimd/xsimd.hpp>

namespace tpp::bench {

[[gnu::noinline]] inline double fp32_fma_chains(double seconds) {
  using B = xsimd::batch<float>;
  constexpr int chains = 16;  // enough independent accumulators to cover FMA latency x throughput
  B acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = B(float(i) * 1e-3f);
  const B x(0.999999f), y(1e-7f);
  long iters = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int r = 0; r < 4096; ++r)
      for (int i = 0; i < chains; ++i) acc[i] = xsimd::fma(acc[i], x, y);
    iters += 4096;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  B sum(0.0f);
  for (int i = 0; i < chains; ++i) sum += acc[i];
  volatile float sink = xsimd::hadd(sum);
  (void)sink;
  return 2.0 * double(B::size) * chains * double(iters) / elapsed * 1e-9;
}

}  // namespace tpp::bench

namespace tpp::bench {
// A warm-up run first (clock ramp-up), then the measured one.
inline double fp32_fma_peak_gflops() {
  fp32_fma_chains(0.2);
  return fp32_fma_chains(0.5);
}
}  // namespace tpp::bench
