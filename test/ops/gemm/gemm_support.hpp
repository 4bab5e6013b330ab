#pragma once
// Shared by the GEMM tests (test/ops/gemm/, test/ops/epilogue.cpp): random operands, batches of them, the
// double-precision reference, and the exact check of the integer GEMMs.
//
// Tolerance: the kernel adds K policy products (bit-identical to the scalar ones) in fp32, in some order:
// |error| <= gamma_K * sum_k |p_k| with gamma_K = K u / (1 - K u), u = 2^-24 (K counts every product of
// the batch). With approx::exact the kernel fuses multiply and add (no product rounding) while the
// reference rounds each product: one more u * sum |p_k| (K + 2 below covers it and alpha's rounding).
// Then beta * C (one fma), an epilogue's bias (one rounding) and, for bf16 C, the final rounding 2^-8.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
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

// A batch of `count` operand pairs stored `stride` elements apart in one buffer each (stride >= a matrix,
// plus a gap), the stored shapes following the transposes, lds padded by pad.
template <class TA, class TB>
struct batch_operands {
  index_t ar, ac, br, bc, lda, ldb, stride_a, stride_b;
  std::vector<TA> a;
  std::vector<TB> b;
  std::vector<mat<const TA>> as;
  std::vector<mat<const TB>> bs;

  batch_operands(gemm_size s, const gemm_params& p, index_t count, index_t pad, std::uint64_t seed)
      : ar(p.trans_a ? s.k : s.m), ac(p.trans_a ? s.m : s.k), br(p.trans_b ? s.n : s.k), bc(p.trans_b ? s.k : s.n),
        lda(ac + pad), ldb(bc + pad), stride_a(ar * lda + 3), stride_b(br * ldb + 5),
        a(make<TA>(std::size_t(stride_a * std::max<index_t>(count, 1)), seed)),
        b(make<TB>(std::size_t(stride_b * std::max<index_t>(count, 1)), seed + 1)) {
    for (index_t i = 0; i < count; ++i) {
      as.push_back({a.data() + i * stride_a, ar, ac, lda});
      bs.push_back({b.data() + i * stride_b, br, bc, ldb});
    }
  }
};

template <class T>
bool same_bits(const std::vector<T>& x, const std::vector<T>& y) {
  if (x.size() != y.size()) return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (bits(to_float(x[i])) != bits(to_float(y[i]))) return false;
  return true;
}

// An integer GEMM against an int64 loop over product(a, b): exact, so equality. Values cover both byte
// ranges' ends. run(A, B, C, params) calls the GEMM under test.
template <class TA, class TB, class Product, class Run>
void check_gemm_s32(index_t m, index_t n, index_t k, bool ta, bool tb, bool beta_one, index_t pad, std::uint32_t seed,
                    const Product& product, const Run& run) {
  std::mt19937 rng(seed);
  const index_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  const index_t lda = ac + pad, ldb = bc + pad, ldc = n + pad;
  std::vector<TA> a(std::size_t(std::max<index_t>(ar * lda, 1)));
  std::vector<TB> b(std::size_t(std::max<index_t>(br * ldb, 1)));
  std::vector<std::int32_t> c(std::size_t(m * ldc));
  auto byte = [&](auto x) {  // the type's extreme values one time in four
    using T = decltype(x);
    return rng() % 4 == 0 ? (rng() % 2 ? std::numeric_limits<T>::min() : std::numeric_limits<T>::max()) : T(rng());
  };
  for (auto& x : a) x = byte(TA());
  for (auto& x : b) x = byte(TB());
  for (auto& x : c) x = std::int32_t(rng() % 2001) - 1000;
  const auto c0 = c;
  const mat<const TA> A{a.data(), ar, ac, lda};
  const mat<const TB> B{b.data(), br, bc, ldb};
  run(A, B, mat<std::int32_t>{c.data(), m, n, ldc}, gemm_params{1.0f, beta_one ? 1.0f : 0.0f, ta, tb});
  std::size_t bad = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < ldc; ++j) {
      std::int64_t want = c0[std::size_t(i * ldc + j)];  // padding untouched
      if (j < n) {
        want = beta_one ? want : 0;
        for (index_t q = 0; q < k; ++q) want += std::int64_t(product(ta ? A(q, i) : A(i, q), tb ? B(j, q) : B(q, j)));
      }
      if (c[std::size_t(i * ldc + j)] != want && bad++ < 3)
        MESSAGE("m=", m, " n=", n, " k=", k, " (", i, ",", j, ") got ", c[std::size_t(i * ldc + j)], " want ", want);
    }
  CHECK(bad == 0);
}

}  // namespace tpp::test
