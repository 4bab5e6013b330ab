#pragma once
// gather<A>(table, index): lane i = table[index[i]], for 32-bit float or int32 tables. xsimd 8.1's
// batch::gather never reaches vgatherdps/vpgatherdd (it names two explicit template arguments that the
// one-parameter AVX2/AVX-512 overloads cannot take, so it always picks its scalar fallback); this calls
// the instructions directly on AVX2 and AVX-512, with the scalar twin for every other arch.

#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <class A, class T>
xsimd::batch<T, A> gather_scalar(const T* table, xsimd::batch<std::int32_t, A> index) noexcept {
  constexpr std::size_t W = xsimd::batch<T, A>::size;
  alignas(64) std::int32_t idx[W];
  alignas(64) T out[W];
  index.store_aligned(idx);
  for (std::size_t i = 0; i < W; ++i) out[i] = table[idx[i]];
  return xsimd::batch<T, A>::load_aligned(out);
}

template <class A, class T>
xsimd::batch<T, A> gather(const T* table, xsimd::batch<std::int32_t, A> index) noexcept {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>, "tpp: gather of 32-bit elements");
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    if constexpr (std::is_same_v<T, float>)
      return _mm512_i32gather_ps(index, table, 4);
    else
      return _mm512_i32gather_epi32(index, table, 4);
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, A>) {
    if constexpr (std::is_same_v<T, float>)
      return _mm256_i32gather_ps(table, index, 4);
    else
      return _mm256_i32gather_epi32(reinterpret_cast<const int*>(table), index, 4);
  } else
#endif
  {
    return gather_scalar<A, T>(table, index);
  }
}

}  // namespace tpp::arch
