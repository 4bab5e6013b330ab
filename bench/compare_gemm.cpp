// tpp_compare_gemm: tpp's GEMM next to oneDNN 2.6 in one process, interleaved, per shape and thread
// count, in four tables:
//   fp32   tpp::gemm vs dnnl_sgemm and the matmul primitive (the faster is "oneDNN"), % of the measured
//          fp32 peak, LIBXSMM's BRGEMM over C's tiles (when built with it), and for each approximate policy
//          its time relative to exact tpp
//   bf16   bf16 x bf16 -> fp32 vs the bf16 matmul primitive, % of the measured vdpbf16ps peak
//   u8s8   uint8 x int8 -> int32 vs the u8s8 matmul primitive, % of the measured vpdpbusd peak
//   brgemm brgemm_kernel (stride batch, one thread) on small blocks vs oneDNN's matmul on the same
//          flops as one (m, k * batch) x (k * batch, n) product
// and, last, each policy's tpp GEMM against the naive loop that calls the scalar model per product.
//
//   tpp_compare_gemm [--threads 1,2] [--quick] [--no-policies] [--json FILE]
//
// Every figure is the median of interleaved repetitions (tpp, sgemm, matmul, tpp, ...), so all three see
// the same machine state; quote ratios, not absolute times (the machine is shared).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "aligned.hpp"
#include "peak.hpp"
#include "policy_loops.hpp"
#include "timing.hpp"

namespace {

struct shape {
  const char* name;
  long m, n, k;
};

const shape full_shapes[] = {
    {"square", 64, 64, 64},         {"square", 128, 128, 128},     {"square", 256, 256, 256},
    {"square", 512, 512, 512},      {"square", 1024, 1024, 1024},  {"square", 2048, 2048, 2048},
    {"resnet50 conv3", 3136, 64, 576}, {"resnet50 conv4", 784, 128, 1152},
    {"bert fc1", 128, 3072, 768},   {"bert fc2", 512, 768, 3072},
};
const shape quick_shapes[] = {{"square", 128, 128, 128}, {"square", 512, 512, 512}, {"resnet50 conv4", 784, 128, 1152}};

using tpp::bench::interleaved;

struct result {
  std::string section;
  shape s;
  int threads;
  long batch;                                          // brgemm: the batch count (else 1)
  double tpp, peer1, peer2;                            // GFLOP/s (GOP/s for u8s8); peer2 0 when none
  double peak;                                         // this section's measured peak for `threads` cores
  std::vector<std::pair<std::string, double>> policy;  // time relative to exact tpp
  double xsmm = 0;                                     // fp32: LIBXSMM's BRGEMM over C's tiles (0: none)
  double ratio() const { return tpp / std::max(peer1, peer2); }
};

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// A oneDNN matmul C (m, n) = A (m, k) B (k, n), row-major, on caller-owned buffers.
struct matmul_peer {
  dnnl::matmul mm;
  dnnl::memory am, bm, cm;
  dnnl::stream* strm;
  matmul_peer(dnnl::engine& eng, dnnl::stream& s, long m, long n, long k, dt ta, dt tb, dt tc, void* a, void* b, void* c)
      : strm(&s) {
    const dnnl::memory::desc ad({m, k}, ta, tag::ab), bd({k, n}, tb, tag::ab), cd({m, n}, tc, tag::ab);
    mm = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(ad, bd, cd), eng));
    am = dnnl::memory(ad, eng, a);
    bm = dnnl::memory(bd, eng, b);
    cm = dnnl::memory(cd, eng, c);
  }
  void operator()() {
    mm.execute(*strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    strm->wait();
  }
};

#if defined(TPP_WITH_LIBXSMM)
// LIBXSMM 1.17 as a GEMM, the way its users build one: C's (mb, nb) tiles in an OpenMP loop, each a
// stride-batch BRGEMM (LIBXSMM's JIT) over K in kb slices read in place from row-major A and B (no
// packing). Tile sizes: the largest of 64, 56, 48, 32, 16, 8 dividing m (n, k); valid() is false when none
// does or LIBXSMM dispatches nothing.
struct xsmm_peer {
  long m, n, k, mb = 0, nb = 0, kb = 0;
  const float *a, *b;
  float* c;
  std::optional<tpp::backend::libxsmm::brgemm<float>> kernel;
  static long tile(long v) {
    for (long t : {64L, 56L, 48L, 32L, 16L, 8L})
      if (v % t == 0) return t;
    return 0;
  }
  xsmm_peer(long m_, long n_, long k_, const float* a_, const float* b_, float* c_)
      : m(m_), n(n_), k(k_), mb(tile(m_)), nb(tile(n_)), kb(tile(k_)), a(a_), b(b_), c(c_) {
    if (mb > 0 && nb > 0 && kb > 0)
      kernel.emplace(mb, nb, kb, k, n, n, 0.0f, tpp::backend::libxsmm::batch_kind::stride, kb, kb * n);
  }
  bool valid() const { return kernel && kernel->valid(); }
  void operator()() const {
#pragma omp parallel for collapse(2) schedule(static)
    for (long i = 0; i < m; i += mb)
      for (long j = 0; j < n; j += nb) (*kernel)(a + i * k, b + j, c + i * n + j, k / kb);
  }
};
#endif

int reps_for(double flops) { return flops > 4e9 ? 5 : flops > 2e8 ? 11 : 31; }

void print_header(const char* title, const char* peer1, const char* peer2) {
  std::printf("\n%s\n%-16s %5s %5s %5s %3s | %8s %8s %8s | %7s %6s\n", title, "shape", "M", "N", "K", "thr", "tpp",
              peer1, peer2, "tpp/dnn", "%peak");
}

void print_row(const result& r) {
  char peer2[16] = "-", xsmm[32] = "";
  if (r.peer2 > 0) std::snprintf(peer2, sizeof peer2, "%8.1f", r.peer2);
  if (r.xsmm > 0) std::snprintf(xsmm, sizeof xsmm, " | LIBXSMM %6.1f", r.xsmm);
  std::printf("%-16s %5ld %5ld %5ld %3d | %8.1f %8.1f %8s | %6.2fx %5.0f%%%s\n", r.s.name, r.s.m, r.s.n, r.s.k,
              r.threads, r.tpp, r.peer1, peer2, r.ratio(), r.peak > 0 ? 100.0 * r.tpp / r.peak : 0.0, xsmm);
  std::fflush(stdout);
}

template <class T>
tpp::bench::aligned_vector<T> random_vector(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  tpp::bench::aligned_vector<T> v(n);
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, tpp::bf16>) {
    // Uniform in [-1, 1): no exact zeros (blocks with zeros take masked steps in some policies).
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& x : v) x = tpp::from_float<T>(dist(gen));
  } else {
    for (auto& x : v) x = T(gen());
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> thread_counts = {1, 2};
  bool quick = false, policies = true;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      thread_counts.clear();
      std::stringstream ss(argv[++i]);
      for (std::string t; std::getline(ss, t, ',');) thread_counts.push_back(std::stoi(t));
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--no-policies") {
      policies = false;
    } else if (a == "--json" && i + 1 < argc) {
      json = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--threads 1,2] [--quick] [--no-policies] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  const std::vector<shape> shapes = quick ? std::vector<shape>(std::begin(quick_shapes), std::end(quick_shapes))
                                          : std::vector<shape>(std::begin(full_shapes), std::end(full_shapes));
  omp_set_num_threads(1);
  // Measured here, now, per core.
  const double peak_fp32 = tpp::bench::fp32_fma_peak_gflops(), peak_bf16 = tpp::bench::bf16_dot_peak_gflops(),
               peak_int8 = tpp::bench::int8_dot_peak_gops();
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::vector<result> results;

  std::printf("GEMM, C = A * B, row-major; G(FL)OP/s, median of interleaved runs. Measured peaks per core: fp32 FMA "
              "%.0f GFLOP/s, bf16 dot %.0f GFLOP/s, int8 dot %.0f GOP/s\n",
              peak_fp32, peak_bf16, peak_int8);

  // ---- fp32, with the policies' time relative to exact tpp ----
  print_header("fp32", "sgemm", "matmul");
  for (const int threads : thread_counts) {
    omp_set_num_threads(threads);
    for (const shape& s : shapes) {
      auto a = random_vector<float>(std::size_t(s.m * s.k), 42), b = random_vector<float>(std::size_t(s.k * s.n), 43);
      tpp::bench::aligned_vector<float> c(std::size_t(s.m * s.n));
      const tpp::mat<const float> A{a.data(), s.m, s.k, s.k}, B{b.data(), s.k, s.n, s.n};
      const tpp::mat<float> C{c.data(), s.m, s.n, s.n};
      matmul_peer mm(eng, strm, s.m, s.n, s.k, dt::f32, dt::f32, dt::f32, a.data(), b.data(), c.data());
      const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
      const auto t = interleaved(
          {[&] { tpp::gemm(A, B, C); },
           [&] { dnnl_sgemm('N', 'N', s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.n, 0.0f, c.data(), s.n); },
           std::ref(mm)},
          reps_for(flops));
      result r{"fp32", s, threads, 1, flops / t[0] * 1e-9, flops / t[1] * 1e-9, flops / t[2] * 1e-9,
               peak_fp32 * threads, {}};
#if defined(TPP_WITH_LIBXSMM)
      if (const xsmm_peer xs(s.m, s.n, s.k, a.data(), b.data(), c.data()); xs.valid())
        r.xsmm = flops / interleaved({[&] { tpp::gemm(A, B, C); }, std::cref(xs)}, reps_for(flops))[1] * 1e-9;
#endif
      print_row(r);
      if (policies && threads == thread_counts.front() && flops <= 2.2e9) {
        std::printf("%-16s policy time / exact tpp:", "");
        tpp::for_each_type(tpp::approx::float_policies{}, [&]<class P>() {
          if constexpr (!std::is_same_v<P, tpp::approx::exact>) {
            const auto tp = interleaved({[&] { tpp::gemm(A, B, C); }, [&] { tpp::gemm<P>(A, B, C); }}, 3);
            r.policy.emplace_back(P::name(), tp[1] / tp[0]);
            std::printf(" %s %.1f", P::name().c_str(), tp[1] / tp[0]);
          }
        });
        std::printf("\n");
      }
      results.push_back(r);
    }
  }

  // ---- bf16 x bf16 -> fp32 ----
  print_header("bf16 x bf16 -> fp32", "matmul", "-");
  for (const int threads : thread_counts) {
    omp_set_num_threads(threads);
    for (const shape& s : shapes) {
      auto a = random_vector<tpp::bf16>(std::size_t(s.m * s.k), 44), b = random_vector<tpp::bf16>(std::size_t(s.k * s.n), 45);
      tpp::bench::aligned_vector<float> c(std::size_t(s.m * s.n));
      const tpp::mat<const tpp::bf16> A{a.data(), s.m, s.k, s.k}, B{b.data(), s.k, s.n, s.n};
      const tpp::mat<float> C{c.data(), s.m, s.n, s.n};
      matmul_peer mm(eng, strm, s.m, s.n, s.k, dt::bf16, dt::bf16, dt::f32, a.data(), b.data(), c.data());
      const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
      const auto t = interleaved({[&] { tpp::gemm(A, B, C); }, std::ref(mm)}, reps_for(flops));
      results.push_back({"bf16", s, threads, 1, flops / t[0] * 1e-9, flops / t[1] * 1e-9, 0.0, peak_bf16 * threads, {}});
      print_row(results.back());
    }
  }

  // ---- uint8 x int8 -> int32 ----
  print_header("u8 x s8 -> s32 (GOP/s)", "matmul", "-");
  for (const int threads : thread_counts) {
    omp_set_num_threads(threads);
    for (const shape& s : shapes) {
      auto a = random_vector<std::uint8_t>(std::size_t(s.m * s.k), 46);
      auto b = random_vector<std::int8_t>(std::size_t(s.k * s.n), 47);
      tpp::bench::aligned_vector<std::int32_t> c(std::size_t(s.m * s.n));
      const tpp::mat<const std::uint8_t> A{a.data(), s.m, s.k, s.k};
      const tpp::mat<const std::int8_t> B{b.data(), s.k, s.n, s.n};
      const tpp::mat<std::int32_t> C{c.data(), s.m, s.n, s.n};
      matmul_peer mm(eng, strm, s.m, s.n, s.k, dt::u8, dt::s8, dt::s32, a.data(), b.data(), c.data());
      const double ops = 2.0 * double(s.m) * double(s.n) * double(s.k);
      const auto t = interleaved({[&] { tpp::gemm(A, B, C); }, std::ref(mm)}, reps_for(ops));
      results.push_back({"u8s8", s, threads, 1, ops / t[0] * 1e-9, ops / t[1] * 1e-9, 0.0, peak_int8 * threads, {}});
      print_row(results.back());
      if (policies && threads == thread_counts.front() && ops <= 2.2e9) {  // an 8-bit approximate multiplier
        using P8 = tpp::approx::approx8<tpp::approx::mitchell8u>;
        const tpp::mat<const std::uint8_t> Bu{reinterpret_cast<const std::uint8_t*>(b.data()), s.k, s.n, s.n};
        const auto tp = interleaved({[&] { tpp::gemm(A, B, C); }, [&] { tpp::gemm<P8>(A, Bu, C); }}, 3);
        results.back().policy.emplace_back(P8::name(), tp[1] / tp[0]);
        std::printf("%-16s policy time / exact tpp u8s8: %s %.1f\n", "", P8::name().c_str(), tp[1] / tp[0]);
      }
    }
  }

  // ---- small BRGEMM blocks, one thread ----
  // "tpp" is brgemm_kernel as users get it (LIBXSMM's JIT on these blocks when built in), "own" tpp's
  // own loops (gemm_backend::tpp); the ratio uses "tpp".
  print_header("fp32 brgemm, stride batch (K shown per block), one thread; own = tpp's loops without LIBXSMM",
               "matmul", "own");
  omp_set_num_threads(1);
  for (const auto& sb : {std::pair{shape{"brgemm b16", 32, 32, 32}, 16L}, std::pair{shape{"brgemm b64", 32, 32, 32}, 64L},
                         std::pair{shape{"brgemm b16", 64, 64, 64}, 16L}}) {
    const shape s = sb.first;  // (not a structured binding: clang 14 cannot capture one in the lambdas below)
    const long batch = sb.second;
    // A_i (m, k) and B_i (k, n) dense, one after another; the peer multiplies A' (m, k batch) B' (k batch, n).
    auto a = random_vector<float>(std::size_t(s.m * s.k * batch), 48), b = random_vector<float>(std::size_t(s.k * s.n * batch), 49);
    tpp::bench::aligned_vector<float> c(std::size_t(s.m * s.n));
    const tpp::brgemm_kernel<> br({s.m, s.n, s.k}), own({s.m, s.n, s.k}, {}, tpp::gemm_backend::tpp);
    matmul_peer mm(eng, strm, s.m, s.n, s.k * batch, dt::f32, dt::f32, dt::f32, a.data(), b.data(), c.data());
    const tpp::mat<const float> A0{a.data(), s.m, s.k, s.k}, B0{b.data(), s.k, s.n, s.n};
    const tpp::mat<float> C{c.data(), s.m, s.n, s.n};
    std::vector<std::function<void()>> fs = {
        [&] { br.by_stride(A0, s.m * s.k, B0, s.k * s.n, batch, C); }, std::ref(mm),
        [&] { own.by_stride(A0, s.m * s.k, B0, s.k * s.n, batch, C); }};
    const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k) * double(batch);
    const auto t = interleaved(fs, 201);
    result r{"brgemm", s, 1, batch, flops / t[0] * 1e-9, flops / t[1] * 1e-9, 0.0, peak_fp32, {}};
    r.policy.emplace_back("own_gflops", flops / t[2] * 1e-9);
    std::printf("%-16s uses LIBXSMM: %s; tpp's own loops %.1f GFLOP/s\n", "", br.uses_libxsmm() ? "yes" : "no",
                flops / t[2] * 1e-9);
    results.push_back(r);
    print_row(results.back());
  }

  // ---- each policy against the naive per-product loop ----
  if (policies) {
    const shape s{"square", 128, 128, 128};
    omp_set_num_threads(1);
    auto a = random_vector<float>(std::size_t(s.m * s.k), 50), b = random_vector<float>(std::size_t(s.k * s.n), 51);
    tpp::bench::aligned_vector<float> c(std::size_t(s.m * s.n));
    const tpp::mat<const float> A{a.data(), s.m, s.k, s.k}, B{b.data(), s.k, s.n, s.n};
    const tpp::mat<float> C{c.data(), s.m, s.n, s.n};
    std::printf("\nnaive loop (one out-of-line scalar call per product) time / tpp time, %ldx%ldx%ld, one thread:\n ",
                s.m, s.n, s.k);
    tpp::for_each_type(tpp::approx::float_policies{}, [&]<class P>() {
      const auto t = interleaved(
          {[&] { tpp::gemm<P>(A, B, C); },
           [&] { tpp::bench::naive_gemm(&tpp::bench::out_of_line_mul<P>, a.data(), b.data(), c.data(), s.m, s.n, s.k); }},
          3);
      std::printf(" %s %.0fx", P::name().c_str(), t[1] / t[0]);
      result r{"naive", s, 1, 1, 0, 0, 0, 0, {{P::name(), t[1] / t[0]}}};
      results.push_back(r);
    });
    {  // approx8: the naive loop reads the model's table once per product
      using P8 = tpp::approx::approx8<tpp::approx::mitchell8u>;
      auto a8 = random_vector<std::uint8_t>(std::size_t(s.m * s.k), 52), b8 = random_vector<std::uint8_t>(std::size_t(s.k * s.n), 53);
      tpp::bench::aligned_vector<std::int32_t> c8(std::size_t(s.m * s.n));
      const tpp::mat<const std::uint8_t> A8{a8.data(), s.m, s.k, s.k}, B8{b8.data(), s.k, s.n, s.n};
      const auto t = interleaved(
          {[&] { tpp::gemm<P8>(A8, B8, tpp::mat<std::int32_t>{c8.data(), s.m, s.n, s.n}); },
           [&] { tpp::bench::naive_gemm_int8<P8>(a8.data(), b8.data(), c8.data(), s.m, s.n, s.k); }},
          3);
      std::printf(" %s %.0fx", P8::name().c_str(), t[1] / t[0]);
      results.push_back(result{"naive", s, 1, 1, 0, 0, 0, 0, {{P8::name(), t[1] / t[0]}}});
    }
    std::printf("\n");
  }

  std::printf("\ntpp / oneDNN (geomean, worst):");
  for (const char* sec : {"fp32", "bf16", "u8s8", "brgemm"}) {
    double log_sum = 0, worst = 1e9;
    int count = 0;
    for (const auto& r : results)
      if (r.section == sec) {
        log_sum += std::log(r.ratio());
        worst = std::min(worst, r.ratio());
        ++count;
      }
    if (count > 0) std::printf("  %s %.2fx, %.2fx (%d);", sec, std::exp(log_sum / count), worst, count);
  }
  std::printf("\n");

  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"peak_per_core\": {\"fp32\": " << peak_fp32 << ", \"bf16\": " << peak_bf16 << ", \"int8\": " << peak_int8
      << "}, \"results\": [\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      f << "  {\"section\": \"" << r.section << "\", \"shape\": \"" << r.s.name << "\", \"m\": " << r.s.m
        << ", \"n\": " << r.s.n << ", \"k\": " << r.s.k << ", \"batch\": " << r.batch << ", \"threads\": " << r.threads
        << ", \"tpp\": " << r.tpp << ", \"peer1\": " << r.peer1 << ", \"peer2\": " << r.peer2 << ", \"xsmm\": " << r.xsmm
        << ", \"policy_time_ratio\": {";
      for (std::size_t j = 0; j < r.policy.size(); ++j)
        f << (j ? ", " : "") << "\"" << r.policy[j].first << "\": " << r.policy[j].second;
      f << "}}" << (i + 1 < results.size() ? ",\n" : "\n");
    }
    f << "]}\n";
  }
  return 0;
}
