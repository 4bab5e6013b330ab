// Element-wise, reduce and transform primitives: bytes moved per second (reads + writes of the views,
// not counting write-allocate traffic), through kernel objects made once per shape, at three sizes:
//   l1    32 x 256   (32 KiB per fp32 view)
//   l2    256 x 512  (512 KiB)
//   dram  4096 x 4096 (64 MiB per view)
// eltwise/memcpy is the bandwidth reference of the same run (std::memcpy, same bytes counted).
// Filter with --benchmark_filter=eltwise/ (e.g. eltwise/.*/dram).

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

template <unary_kind K, class P, class T>
void unary_case(benchmark::State& state, size_case s) {
  auto x = filled<T>(s.rows * s.cols, 0.3f), y = filled<T>(s.rows * s.cols, 0.0f);
  const unary_kernel<K, P, T, T> k(s.rows, s.cols);
  const mat<const T> in{x.data(), s.rows, s.cols, s.cols};
  const mat<T> out{y.data(), s.rows, s.cols, s.cols};
  run(state, 2.0 * double(x.size() * sizeof(T)), [&] { k(in, out); });
}

template <binary_kind K, class P, class T>
void binary_case(benchmark::State& state, size_case s) {
  auto a = filled<T>(s.rows * s.cols, 0.3f), b = filled<T>(s.rows * s.cols, 1.1f), c = filled<T>(s.rows * s.cols, 0.0f);
  const binary_kernel<K, P, T, T, T> k(s.rows, s.cols);
  const mat<const T> A{a.data(), s.rows, s.cols, s.cols}, B{b.data(), s.rows, s.cols, s.cols};
  const mat<T> C{c.data(), s.rows, s.cols, s.cols};
  const double reads = K == binary_kind::muladd ? 3.0 : 2.0;
  run(state, (reads + 1.0) * double(a.size() * sizeof(T)), [&] { k(A, B, C); });
}

void dropout_case(benchmark::State& state, size_case s) {
  auto x = filled<float>(s.rows * s.cols, 0.3f), y = filled<float>(s.rows * s.cols, 0.0f);
  std::vector<std::uint8_t> m(x.size());
  const dropout_kernel<approx::exact, float, float> k(s.rows, s.cols, dropout_params{0.1f, 42});
  run(state, double(x.size()) * 9.0, [&] {
    k(mat<const float>{x.data(), s.rows, s.cols, s.cols}, mat<float>{y.data(), s.rows, s.cols, s.cols},
      mat<std::uint8_t>{m.data(), s.rows, s.cols, s.cols});
  });
}

template <reduce_kind K>
void reduce_case(benchmark::State& state, size_case s, reduce_dir dir) {
  auto x = filled<float>(s.rows * s.cols, 0.3f);
  std::vector<float> o1(std::size_t(std::max(s.rows, s.cols))), o2(o1.size());
  const reduce_kernel<K, approx::exact, float, float> k(s.rows, s.cols, {dir, false});
  const index_t orows = dir == reduce_dir::each_row ? s.rows : 1, ocols = dir == reduce_dir::each_row ? 1 : s.cols;
  const mat<const float> in{x.data(), s.rows, s.cols, s.cols};
  const mat<float> out1{o1.data(), orows, ocols, ocols}, out2{o2.data(), orows, ocols, ocols};
  run(state, double(x.size() * sizeof(float)), [&] {
    if constexpr (K == reduce_kind::sum_and_sum_sq)
      k(in, out1, out2);
    else
      k(in, out1);
  });
}

template <class T>
void transpose_case(benchmark::State& state, size_case s) {
  auto x = filled<T>(s.rows * s.cols, 0.3f), y = filled<T>(s.rows * s.cols, 0.0f);
  const transpose_kernel<T> k(s.rows, s.cols);
  run(state, 2.0 * double(x.size() * sizeof(T)), [&] {
    k(mat<const T>{x.data(), s.rows, s.cols, s.cols}, mat<T>{y.data(), s.cols, s.rows, s.rows});
  });
}

void vnni2_case(benchmark::State& state, size_case s) {
  auto x = filled<bf16>(s.rows * s.cols, 0.3f), y = filled<bf16>(s.rows * s.cols, 0.0f);
  const vnni_pack_kernel<2, bf16> k(s.rows, s.cols);
  run(state, 2.0 * double(x.size() * sizeof(bf16)), [&] {
    k(mat<const bf16>{x.data(), s.rows, s.cols, s.cols}, mat<bf16>{y.data(), vnni_rows(s.rows, 2), 2 * s.cols, 2 * s.cols});
  });
}

template <class F>
void reg(const std::string& name, F f) {
  for (const size_case s : sizes)
    benchmark::RegisterBenchmark(("eltwise/" + name + "/" + s.name).c_str(), [f, s](benchmark::State& st) { f(st, s); });
}

const bool registered = [] {
  using approx::exact;
  using m7 = approx::mitchell<7>;
  reg("memcpy/f32", memcpy_case);
  reg("copy/f32", unary_case<unary_kind::copy, exact, float>);
  reg("copy/bf16", unary_case<unary_kind::copy, exact, bf16>);
  reg("relu/f32", unary_case<unary_kind::relu, exact, float>);
  reg("exp/f32", unary_case<unary_kind::exp, exact, float>);
  reg("gelu_tanh/f32", unary_case<unary_kind::gelu_tanh, exact, float>);
  reg("gelu_erf/f32", unary_case<unary_kind::gelu_erf, exact, float>);
  reg("square/f32/mitchell7", unary_case<unary_kind::square, m7, float>);
  reg("add/f32", binary_case<binary_kind::add, exact, float>);
  reg("add/bf16", binary_case<binary_kind::add, exact, bf16>);
  reg("mul/f32", binary_case<binary_kind::mul, exact, float>);
  reg("mul/f32/mitchell7", binary_case<binary_kind::mul, m7, float>);
  reg("muladd/f32", binary_case<binary_kind::muladd, exact, float>);
  reg("dropout/f32", dropout_case);
  reg("reduce_sum_rows/f32", [](benchmark::State& st, size_case s) { reduce_case<reduce_kind::sum>(st, s, reduce_dir::each_row); });
  reg("reduce_sum_cols/f32", [](benchmark::State& st, size_case s) { reduce_case<reduce_kind::sum>(st, s, reduce_dir::each_col); });
  reg("reduce_sum_sumsq_rows/f32",
      [](benchmark::State& st, size_case s) { reduce_case<reduce_kind::sum_and_sum_sq>(st, s, reduce_dir::each_row); });
  reg("transpose/f32", transpose_case<float>);
  reg("transpose/bf16", transpose_case<bf16>);
  reg("vnni2_pack/bf16", vnni2_case);
  return true;
}();

}  // namespace
