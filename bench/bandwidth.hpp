#pragma once
// The bandwidth suites' common parts (eltwise.cpp, quantize.cpp): three sizes, 64-byte aligned buffers of
// a fixed pattern, the timing loop, and the memcpy reference measured in the same run.
//   l1    32 x 256   (32 KiB per fp32 view)
//   l2    256 x 512  (512 KiB)
//   dram  4096 x 4096 (64 MiB per view)

#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <tpp/tpp.hpp>

#include "aligned.hpp"

namespace tpp::bench {

struct size_case {
  const char* name;
  index_t rows, cols;
};
inline constexpr size_case sizes[] = {{"l1", 32, 256}, {"l2", 256, 512}, {"dram", 4096, 4096}};

// 64-byte aligned (aligned.hpp).
template <class T>
using buffer = aligned_vector<T>;

// n values base + (i % 97) / 100 - 0.5, as T.
template <class T>
buffer<T> filled(index_t n, float base) {
  buffer<T> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[std::size_t(i)] = from_float<T>(base + float(i % 97) * 0.01f - 0.5f);
  return v;
}

// Runs f() per iteration and reports bytes_per_second for `bytes` moved per call.
template <class F>
void run(benchmark::State& state, double bytes, F&& f) {
  for (auto _ : state) {
    f();
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(double(state.iterations()) * bytes));
}

// The memory-bandwidth reference, measured in the same run: std::memcpy of an fp32 view.
inline void memcpy_case(benchmark::State& state, size_case s) {
  auto x = filled<float>(s.rows * s.cols, 0.3f), y = filled<float>(s.rows * s.cols, 0.0f);
  run(state, 2.0 * double(x.size() * sizeof(float)), [&] { std::memcpy(y.data(), x.data(), x.size() * sizeof(float)); });
}

}  // namespace tpp::bench
