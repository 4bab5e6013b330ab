// tpp_compare_sparse: tpp's sparse x dense products next to dense fp32 GEMM (tpp::gemm and oneDNN 2.6's
// dnnl_sgemm) on the same shape, one thread, in one process, interleaved (medians):
//   S (1024, 1024) sparse x B (1024, N) dense, N = 1024 and 64
//   CSR and BCSR (4x4 blocks) at 50 / 75 / 90 / 95% sparsity, 2:4, and the codebook form (90%, 64-row tables)
// Per row: the sparse product's time, and speed = dense oneDNN time / sparse tpp time (> 1: sparse faster),
// plus dense tpp::gemm time / sparse tpp time.
//
//   tpp_compare_sparse [--quick]

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <tpp/ops/gemm.hpp>
#include <tpp/ops/sparse.hpp>

#include "aligned.hpp"
#include "timing.hpp"

namespace {

using tpp::bench::interleaved;
using fvec = tpp::bench::aligned_vector<float>;

fvec random_vector(std::size_t n, unsigned seed) {
  fvec v(n);
  std::uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = float(std::int64_t(s >> 40) - (1ll << 23)) / float(1 << 23);  // in [-1, 1)
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  omp_set_num_threads(1);
  const long M = 1024, K = 1024;
  const auto dense = random_vector(std::size_t(M * K), 1);
  const tpp::mat<const float> A{dense.data(), M, K, K};
  std::printf("S (%ld x %ld) sparse x B (%ld x N) dense, one thread; speed = dense time / sparse time\n", M, K, K);
  std::printf("%-22s %5s | %9s %9s %9s | %8s %8s\n", "format", "N", "sparse ms", "sgemm ms", "gemm ms", "vs dnnl",
              "vs tpp");
  for (const long N : {1024L, 64L}) {
    const auto b = random_vector(std::size_t(K * N), 2);
    fvec c(std::size_t(M * N)), c2 = c, c3 = c;
    const tpp::mat<const float> B{b.data(), K, N, N};
    const tpp::mat<float> C{c.data(), M, N, N};
    const int reps = quick ? 5 : (N >= 1024 ? 15 : 41);
    auto run = [&](const std::string& name, const std::function<void()>& sparse) {
      const auto t = interleaved(
          {sparse,
           [&] {
             dnnl_sgemm('N', 'N', M, N, K, 1.0f, A.data, K, b.data(), N, 0.0f, c2.data(), N);
           },
           [&] { tpp::gemm(A, B, tpp::mat<float>{c3.data(), M, N, N}); }},
          reps);
      std::printf("%-22s %5ld | %9.3f %9.3f %9.3f | %7.2fx %7.2fx\n", name.c_str(), N, t[0] * 1e3, t[1] * 1e3,
                  t[2] * 1e3, t[1] / t[0], t[2] / t[0]);
      std::fflush(stdout);
    };
    for (const double sp : {0.5, 0.75, 0.9, 0.95}) {
      const auto csr = tpp::prune_to_csr(A, tpp::prune_params::by_sparsity(sp));
      const tpp::sparse_kernel<> k(csr);
      run("csr " + std::to_string(int(sp * 100)) + "%", [&] { k.sparse_dense(B, C); });
    }
    for (const double sp : {0.5, 0.75, 0.9, 0.95}) {
      const auto bcsr = tpp::prune_to_bcsr(A, {4, 4}, tpp::prune_params::by_sparsity(sp));
      const tpp::sparse_kernel<tpp::approx::exact, tpp::bcsr_matrix> k(bcsr);
      run("bcsr 4x4 " + std::to_string(int(sp * 100)) + "%", [&] { k.sparse_dense(B, C); });
    }
    {
      const auto nm = tpp::prune_to_nm(A, 2, 4);
      const tpp::sparse_kernel<tpp::approx::exact, tpp::nm_matrix> k(nm);
      run("2:4", [&] { k.sparse_dense(B, C); });
    }
    {
      const auto cb = tpp::prune_to_codebook(A, tpp::prune_params::by_sparsity(0.9), {64, 8});
      const tpp::sparse_kernel<tpp::approx::exact, tpp::codebook_matrix> k(cb);
      run("codebook 90%", [&] { k.sparse_dense(B, C); });
    }
  }
  return 0;
}
