// tpp_compare_gemm: tpp's GEMM next to oneDNN 2.6 in one process, interleaved, per shape and thread
// count: GFLOP/s of each, the ratio tpp / oneDNN (the faster of dnnl_sgemm and the matmul primitive), the
// share of this machine's measured peak, and for each approximate policy its time relative to exact tpp.
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
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "peak.hpp"

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

double seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Times the callables interleaved: reps rounds of (each once), after a warm-up round; returns medians.
std::vector<double> interleaved(const std::vector<std::function<void()>>& fs, int reps) {
  for (auto& f : fs) f();
  std::vector<std::vector<double>> t(fs.size());
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < fs.size(); ++i) t[i].push_back(seconds(fs[i]));
  std::vector<double> out;
  for (auto& v : t) out.push_back(median(v));
  return out;
}

struct result {
  shape s;
  int threads;
  double tpp, sgemm, matmul;                         // GFLOP/s
  std::vector<std::pair<std::string, double>> policy;  // time relative to exact tpp
};

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
  const double peak_fp32_per_core = tpp::bench::fp32_fma_peak_gflops();  // measured here, now
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::vector<result> results;

  std::printf("fp32 GEMM, C = A * B, row-major; GFLOP/s (median of interleaved runs); measured fp32 FMA peak %.0f GFLOP/s per core\n\n",
              peak_fp32_per_core);
  std::printf("%-16s %5s %5s %5s %3s | %8s %8s %8s | %7s %6s\n", "shape", "M", "N", "K", "thr", "tpp", "sgemm",
              "matmul", "tpp/dnn", "%peak");
  for (const int threads : thread_counts) {
    omp_set_num_threads(threads);
    for (const shape& s : shapes) {
      std::vector<float> a(std::size_t(s.m * s.k)), b(std::size_t(s.k * s.n)), c(std::size_t(s.m * s.n));
      // Uniform in [-1, 1): no exact zeros (blocks with zeros take masked steps in some policies).
      std::mt19937 gen(42);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (auto& x : a) x = dist(gen);
      for (auto& x : b) x = dist(gen);
      const tpp::mat<const float> A{a.data(), s.m, s.k, s.k}, B{b.data(), s.k, s.n, s.n};
      const tpp::mat<float> C{c.data(), s.m, s.n, s.n};

      using dt = dnnl::memory::data_type;
      using tag = dnnl::memory::format_tag;
      const dnnl::memory::desc ad({s.m, s.k}, dt::f32, tag::ab), bd({s.k, s.n}, dt::f32, tag::ab),
          cd({s.m, s.n}, dt::f32, tag::ab);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), eng);
      dnnl::matmul mm(pd);
      dnnl::memory am(ad, eng, a.data()), bm(bd, eng, b.data()), cm(cd, eng, c.data());

      const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
      const int reps = flops > 4e9 ? 5 : flops > 2e8 ? 11 : 31;
      const auto t = interleaved(
          {[&] { tpp::gemm(A, B, C); },
           [&] { dnnl_sgemm('N', 'N', s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.n, 0.0f, c.data(), s.n); },
           [&] {
             mm.execute(strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
             strm.wait();
           }},
          reps);
      result r{s, threads, flops / t[0] * 1e-9, flops / t[1] * 1e-9, flops / t[2] * 1e-9, {}};
      const double best = std::max(r.sgemm, r.matmul);
      std::printf("%-16s %5ld %5ld %5ld %3d | %8.1f %8.1f %8.1f | %6.2fx %5.0f%%\n", s.name, s.m, s.n, s.k, threads,
                  r.tpp, r.sgemm, r.matmul, r.tpp / best, 100.0 * r.tpp / (peak_fp32_per_core * threads));

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
      std::fflush(stdout);
    }
  }

  double log_sum = 0, worst = 1e9;
  for (const auto& r : results) {
    const double ratio = r.tpp / std::max(r.sgemm, r.matmul);
    log_sum += std::log(ratio);
    worst = std::min(worst, ratio);
  }
  std::printf("\ntpp / oneDNN: geomean %.2fx, worst %.2fx over %zu cases\n", std::exp(log_sum / double(results.size())),
              worst, results.size());

  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"peak_gflops_per_core\": " << peak_fp32_per_core << ", \"results\": [\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      f << "  {\"shape\": \"" << r.s.name << "\", \"m\": " << r.s.m << ", \"n\": " << r.s.n << ", \"k\": " << r.s.k
        << ", \"threads\": " << r.threads << ", \"tpp_gflops\": " << r.tpp << ", \"sgemm_gflops\": " << r.sgemm
        << ", \"matmul_gflops\": " << r.matmul << ", \"policy_time_vs_exact\": {";
      for (std::size_t j = 0; j < r.policy.size(); ++j)
        f << (j ? ", " : "") << "\"" << r.policy[j].first << "\": " << r.policy[j].second;
      f << "}}" << (i + 1 < results.size() ? ",\n" : "\n");
    }
    f << "]}\n";
  }
  return 0;
}
