#pragma once
// The three ways to apply a multiply policy to arrays, shared by the policy benchmark and the
// tpp_multipliers program:
//   simd_products:   P::mul on xsimd batches (what the ops use)
//   scalar_products: P::mul(float, float) per element, inlined
//   naive_products:  one out-of-line call per product through a function pointer, the way a
//                    simulator that calls a C model per product works (ApproxTrain's CPU path)

#include <cstddef>
#include <cstdint>

#include <tpp/core/simd.hpp>

namespace tpp::bench {

// n: a multiple of the batch width.
template <class P>
void simd_products(const float* a, const float* b, float* out, std::size_t n) {
  using B = xsimd::batch<float, simd::default_arch>;
  for (std::size_t i = 0; i < n; i += B::size)
    P::mul(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(out + i);
}

template <class P>
void scalar_products(const float* a, const float* b, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = P::mul(a[i], b[i]);
}

template <class P>
[[gnu::noinline]] float out_of_line_mul(float a, float b) noexcept {
  return P::mul(a, b);
}

using mul_fn = float (*)(float, float) noexcept;

inline void naive_products(mul_fn fn, const float* a, const float* b, float* out, std::size_t n) {
  mul_fn volatile call = fn;  // opaque to the optimiser: one real call per product
  for (std::size_t i = 0; i < n; ++i) out[i] = call(a[i], b[i]);
}

// C (m, n) = A (m, k) B (k, n), row-major, one out-of-line call per product: the naive simulator's GEMM.
inline void naive_gemm(mul_fn fn, const float* a, const float* b, float* c, long m, long n, long k) {
  mul_fn volatile call = fn;
  for (long i = 0; i < m; ++i)
    for (long j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (long q = 0; q < k; ++q) sum += call(a[i * k + q], b[q * n + j]);
      c[i * n + j] = sum;
    }
}

// The same for an 8-bit multiplier (approx8<Model>): C (m, n) int32, one out-of-line table read per product.
template <class P>
[[gnu::noinline]] std::int32_t out_of_line_mul8(typename P::operand_type a, typename P::operand_type b) noexcept {
  return P::mul(a, b);
}
template <class P>
void naive_gemm_int8(const typename P::operand_type* a, const typename P::operand_type* b, std::int32_t* c, long m,
                     long n, long k) {
  for (long i = 0; i < m; ++i)
    for (long j = 0; j < n; ++j) {
      std::int32_t acc = 0;
      for (long q = 0; q < k; ++q) acc += out_of_line_mul8<P>(a[i * k + q], b[q * n + j]);
      c[i * n + j] = acc;
    }
}

}  // namespace tpp::bench
