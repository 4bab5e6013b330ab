// tpp_multipliers: for every built-in multiply policy (approx/registry.hpp), its error statistics against
// the exact product and its throughput, SIMD vs scalar vs a naive per-product call.
//
//   tpp_multipliers [--pairs N] [--json FILE]
//
// Error statistics use N random operand pairs with uniform mantissas, random signs and exponents that keep
// every product well inside the normal range: bias = mean signed relative error, mean |rel| error, worst
// |rel| error (with the policy's proven bound, max_rel_error, next to it). Throughputs are medians of 7
// timed runs over arrays that stay in L1, in G products/s on one core.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <tpp/tpp.hpp>

#include "../bench/policy_loops.hpp"

namespace {

struct row {
  std::string name;
  double bias, mean_abs, worst, bound;
  double simd_gps, scalar_gps, naive_gps;
};

std::vector<float> operands(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<float> v(n);
  for (auto& x : v) {
    const std::uint32_t u = (std::uint32_t(g()) & 0x807fffffu) | std::uint32_t(96 + g() % 64) << 23;
    std::memcpy(&x, &u, 4);
  }
  return v;
}

template <class F>
double median_gps(std::size_t products_per_call, F&& call) {
  using clock = std::chrono::steady_clock;
  // Calibrate to ~20 ms per sample.
  std::size_t reps = 1;
  for (;;) {
    const auto t0 = clock::now();
    for (std::size_t r = 0; r < reps; ++r) call();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > 0.02) break;
    reps *= 2;
  }
  std::vector<double> gps;
  for (int k = 0; k < 7; ++k) {
    const auto t0 = clock::now();
    for (std::size_t r = 0; r < reps; ++r) call();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    gps.push_back(double(reps * products_per_call) / s * 1e-9);
  }
  std::sort(gps.begin(), gps.end());
  return gps[gps.size() / 2];
}

template <class P>
row measure(std::size_t pairs) {
  row r{P::name(), 0, 0, 0, P::max_rel_error, 0, 0, 0};
  const auto a = operands(pairs, 1), b = operands(pairs, 2);
  std::vector<float> out(pairs);
  tpp::bench::simd_products<P>(a.data(), b.data(), out.data(), pairs);
  for (std::size_t i = 0; i < pairs; ++i) {
    const double exact = double(a[i]) * double(b[i]);
    const double rel = (double(out[i]) - exact) / exact;  // signed: < 0 means the policy underestimates
    r.bias += rel;
    r.mean_abs += std::abs(rel);
    r.worst = std::max(r.worst, std::abs(rel));
  }
  r.bias /= double(pairs);
  r.mean_abs /= double(pairs);

  constexpr std::size_t n = 2048;  // 3 x 8 KiB: in L1
  std::vector<float> x(a.begin(), a.begin() + n), y(b.begin(), b.begin() + n), z(n);
  volatile float sink = 0;
  r.simd_gps = median_gps(n, [&] {
    tpp::bench::simd_products<P>(x.data(), y.data(), z.data(), n);
    sink = z[n / 2];
  });
  r.scalar_gps = median_gps(n, [&] {
    tpp::bench::scalar_products<P>(x.data(), y.data(), z.data(), n);
    sink = z[n / 3];
  });
  r.naive_gps = median_gps(n, [&] {
    tpp::bench::naive_products(&tpp::bench::out_of_line_mul<P>, x.data(), y.data(), z.data(), n);
    sink = z[n / 4];
  });
  (void)sink;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t pairs = 1 << 22;  // rounded up to a multiple of 64
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--pairs" && i + 1 < argc)
      pairs = std::stoull(argv[++i]);
    else if (arg == "--json" && i + 1 < argc)
      json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--pairs N] [--json FILE]\n", argv[0]);
      return 2;
    }
  }

  pairs = (pairs + 63) / 64 * 64;
  std::vector<row> rows;
  tpp::for_each_type(tpp::approx::float_policies{}, [&]<class P>() { rows.push_back(measure<P>(pairs)); });

  std::printf("tpp multipliers: %zu random operand pairs, SIMD arch %s (%d lanes), 1 core\n\n", pairs,
              tpp::simd::default_arch::name(), int(tpp::simd::width<>));
  std::printf("%-18s %10s %10s %10s %10s | %9s %9s %9s %8s %8s\n", "policy", "bias", "mean|err|", "worst", "bound",
              "SIMD G/s", "scalar", "naive", "SIMD/sc", "SIMD/nv");
  for (const row& r : rows)
    std::printf("%-18s %+10.3e %10.3e %10.3e %10.3e | %9.2f %9.2f %9.2f %7.1fx %7.1fx\n", r.name.c_str(), r.bias,
                r.mean_abs, r.worst, r.bound, r.simd_gps, r.scalar_gps, r.naive_gps, r.simd_gps / r.scalar_gps,
                r.simd_gps / r.naive_gps);
  std::printf("\nbias = mean signed relative error; worst must stay below bound (each policy's max_rel_error).\n");

  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"pairs\": " << pairs << ", \"arch\": \"" << tpp::simd::default_arch::name() << "\", \"policies\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const row& r = rows[i];
      f << "  {\"name\": \"" << r.name << "\", \"bias\": " << r.bias << ", \"mean_abs_rel_error\": " << r.mean_abs
        << ", \"worst_rel_error\": " << r.worst << ", \"bound\": " << r.bound << ", \"simd_gprod_s\": " << r.simd_gps
        << ", \"scalar_gprod_s\": " << r.scalar_gps << ", \"naive_gprod_s\": " << r.naive_gps << "}"
        << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    f << "]}\n";
  }
  for (const row& r : rows)
    if (!(r.worst <= r.bound)) {
      std::fprintf(stderr, "error: %s exceeded its bound\n", r.name.c_str());
      return 1;
    }
  return 0;
}
