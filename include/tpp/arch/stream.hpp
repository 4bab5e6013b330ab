#pragma once
// Non-temporal (streaming) stores, which xsimd 8.1 does not have: a whole fp32 batch written past the
// caches, without reading its line for ownership first (core/stream.hpp decides when an op streams).
//   streaming_stores<A>      whether arch A has them (AVX, AVX-512: 8 or 16 lanes)
//   stream_store<A>(p, v)    v to p, a vector-aligned float* (streaming_stores<A> only)
//   stream_fence()           sfence: streaming stores are weakly ordered until then
// Scalar twin: stream_store_scalar, an ordinary store of the same lanes (the bytes written are the same;
// only the cache behaviour differs).

#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__SSE__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace tpp::arch {

template <class A>
inline constexpr bool streaming_stores =
#if defined(__AVX512F__)
    std::is_base_of_v<xsimd::avx512f, A> ||
#endif
#if defined(__AVX__)
    std::is_base_of_v<xsimd::avx, A> ||
#endif
    false;

template <class A>
void stream_store_scalar(float* p, xsimd::batch<float, A> v) noexcept {
  v.store_aligned(p);
}

template <class A>
void stream_store(float* p, xsimd::batch<float, A> v) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    _mm512_stream_ps(p, v);
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (std::is_base_of_v<xsimd::avx, A>) {
    _mm256_stream_ps(p, v);
    return;
  }
#endif
  stream_store_scalar<A>(p, v);
}

inline void stream_fence() noexcept {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

}  // namespace tpp::arch
