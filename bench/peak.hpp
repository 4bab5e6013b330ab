#pragma once
// Measures this core's arithmetic peaks with independent chains of one instruction at the compile-time
// arch, so "% of peak" figures use what this machine does rather than a number from a data sheet:
//   fp32_fma_peak_gflops()    xsimd fma: 2 flops per lane           (Zen 5 here: ~285 GFLOP/s per core)
//   bf16_dot_peak_gflops()    vdpbf16ps: 4 flops per 32-bit lane    (0 without AVX512_BF16)
//   int8_dot_peak_gops()      vpdpbusd: 8 ops per 32-bit lane, 4x the fp32 peak (0 without AVX512_VNNI)

#include <bit>
#include <chrono>
#include <cstdint>

#include <xsimd/xsimd.hpp>

#include <tpp/arch/dot.hpp>

namespace tpp::bench {

// Runs `chains` independent accumulators through step(acc) for about `seconds`; returns G ops/s given
// the ops one step does.
template <class B, class Step>
[[gnu::noinline]] double chains_rate(double seconds, double ops_per_step, Step step) {
  constexpr int chains = 16;  // enough independent accumulators to cover latency x throughput
  B acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = B(typename B::value_type(i));
  long iters = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int r = 0; r < 4096; ++r)
#pragma GCC unroll 16  // keeps the accumulators in registers (see gemm_micro)
      for (int i = 0; i < chains; ++i) acc[i] = step(acc[i]);
    iters += 4096;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  B sum(0);
  for (int i = 0; i < chains; ++i) sum += acc[i];
  volatile auto sink = xsimd::hadd(sum);
  (void)sink;
  return ops_per_step * chains * double(iters) / elapsed * 1e-9;
}

// A warm-up run first (clock ramp-up), then the measured one.
template <class B, class Step>
double peak(double ops_per_step, Step step) {
  chains_rate<B>(0.2, ops_per_step, step);
  return chains_rate<B>(0.5, ops_per_step, step);
}

inline double fp32_fma_peak_gflops() {
  using B = xsimd::batch<float>;
  const B x(0.999999f), y(1e-7f);
  return peak<B>(2.0 * B::size, [=](B acc) { return xsimd::fma(acc, x, y); });
}

template <class B = xsimd::batch<float>>  // (a template: the discarded branch is then not instantiated)
double bf16_dot_peak_gflops() {
  if constexpr (arch::has_dot_bf16) {
    const B x(std::bit_cast<float>(0x3f803f80u)), y(std::bit_cast<float>(0x33d633d6u));  // pairs (1, 1), (1e-7, 1e-7)
    return peak<B>(4.0 * B::size, [=](B acc) { return arch::dot_bf16_pairs(acc, x, y); });
  } else {
    return 0.0;
  }
}

// vpdpbusd issues at the FMA rate on the AVX-512 cores measured here (an unrolled asm loop of independent
// vpdpbusd and one of vfmadd231ps both ran 8.4 G instructions/s on this Zen 5), and does 128 ops per
// instruction against FMA's 32: 4x the fp32 peak. (A C++ chain loop like the ones above measured only
// half of that: GCC 12 keeps int32 batch chains on the stack.)
inline double int8_dot_peak_gops() { return arch::has_dot_u8s8 ? 4.0 * fp32_fma_peak_gflops() : 0.0; }

}  // namespace tpp::bench
