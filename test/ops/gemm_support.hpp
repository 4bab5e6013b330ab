#pragma once
// Shared by the gemm and brgemm tests: random operands and the double-precision reference.
//
// Tolerance: the kernel adds K policy products (bit-identical to the scalar ones) in fp32, in some order:
// |error| <= gamma_K * sum_k |p_k| with gamma_K = K u / (1 - K u), u = 2^-24 (K counts every product of
// the batch). With approx::exact the kernel fuses multiply and add (no product rounding) while the
// reference rounds each product: one more u * sum |p_k| (K + 2 below covers it and alpha's rounding).
// Then beta * C (one fma), an epilogue's bias (one rounding) and, for bf16 C, the final rounding 2^-8.

#include <cmath>
#include <functional>
#include <vector>

#include <tpp/ops/gemm.hpp>

#include "support.hpp"

namespace tpp::test {

template <class T>
std::vector<T> make(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  const auto f = uniform(n, lo, hi, seed);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = from_float<T>(f[i]);
  return v;
}

struct gemm_size {
  index_t m, n, k;
};

// What an epilogue does in double: value (i, j, x) and the extra error it may add relative to |result|.
struct reference_epilogue {
  std::function<double(index_t, index_t, double)> value;
  double rel_error = 0;  // e.g. u for a bias add (one rounding)
};

// Elements of C (m, n, ldc) that differ from alpha sum_i op(A_i) op(B_i) + beta C0, then post, beyond the
// tolerance above; C's padding past n must be untouched. Logs the first few.
template <class P, class TA, class TB, class TC>
std::size_t gemm_mismatches(const std::vector<mat<const TA>>& as, const std::vector<mat<const TB>>& bs,
                            const gemm_params& p, gemm_size s, const std::vector<TC>& c0, const std::vector<TC>& c,
                            index_t ldc, const reference_epilogue& post = {}) {
  const double u = 0x1p-24, kk = double(s.k) * double(as.size()) + 2, gk = kk * u / (1 - kk * u);
  std::size_t bad = 0;
  for (index_t i = 0; i < s.m; ++i) {
    for (index_t j = 0; j < s.n; ++j) {
      double sum = 0, abs_sum = 0;
      for (std::size_t t = 0; t < as.size(); ++t) {
        const mat<const TA>& A = as[t];
        const mat<const TB>& B = bs[t];
        for (index_t q = 0; q < s.k; ++q) {
          const float x = to_float(p.trans_a ? A(q, i) : A(i, q)), y = to_float(p.trans_b ? B(j, q) : B(q, j));
          const float prod = P::mul(x, y);
          sum += prod;
          abs_sum += std::abs(prod);
        }
      }
      const double old = p.beta != 0 ? double(to_float(c0[std::size_t(i * ldc + j)])) : 0.0;
      double ref = double(p.alpha) * sum + double(p.beta) * old;
      double tol = std::abs(double(p.alpha)) * abs_sum * gk + 2 * u * (std::abs(ref) + std::abs(double(p.beta) * old));
      if (post.value) {
        ref = post.value(i, j, ref);
        tol += post.rel_error * (std::abs(ref) + tol);
      }
      if (std::is_same_v<TC, bf16>) tol += 0x1p-8 * (std::abs(ref) + tol);
      const double got = to_float(c[std::size_t(i * ldc + j)]);
      if (!(std::abs(got - ref) <= tol + 1e-30) && bad++ < 3)
        MESSAGE(P::name(), " m=", s.m, " n=", s.n, " k=", s.k, " batch=", as.size(), " (", i, ",", j, ") got ", got,
                " ref ", ref, " tol ", tol);
    }
    for (index_t j = s.n; j < ldc; ++j)  // padding of C untouched
      if (bits(to_float(c[std::size_t(i * ldc + j)])) != bits(to_float(c0[std::size_t(i * ldc + j)]))) ++bad;
  }
  return bad;
}

}  // namespace tpp::test
