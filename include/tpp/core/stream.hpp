#pragma once
// Streaming (non-temporal) stores of fp32 vectors for outputs too large to stay cached: written past the
// caches, without first reading each line for ownership. From DRAM that read is a third of an op's
// traffic, and the memory-level parallelism it takes is what a single core runs short of: a plain AVX-512
// copy loop measured 1.3x memcpy with them (glibc's memcpy stores through the cache at 64 MiB here).
//
// tpp::stream_threshold: an op streams its outputs when its footprint, the bytes of the views it reads
// and writes, is at least this many; in the ops that do (bfp_fake_quant, pow2_quantize, and batchnorm over
// columns, forward y and backward dx; each says so). The footprint, not the output alone, decides: an
// output stays in cache for its next reader only if everything the op touched fits (past that, LRU has
// evicted the output's first lines by the time the op ends, and the reader starts there). softmax
// backward's dx measured no faster streamed (12288 x 512: 0.89x oneDNN either way), so it stores through
// the cache. Default TPP_STREAM_BYTES (16 MiB: half this machine's L3); SIZE_MAX: never; 0: always, as
// oneDNN 2.6's batchnorm does (its JIT kernels stream dst and diff_src whenever they are aligned).
//
// detail::streams(y, footprint): whether output y streams: fp32, footprint at least the threshold, x86
// SIMD (AVX: 8 lanes, AVX-512: 16), rows starting on vector boundaries (the op stores whole vectors at
// multiples of the width from a row's start; partial vectors store through the cache). An op that
// streamed ends with detail::stream_fence() (sfence: the stores are weakly ordered until then).
// detail::view_bytes(m) adds up a footprint; detail::stream_whole(p, v, m, stream) is an op's store of a
// vector of m lanes that streams where it can (and returns false where the op must store it itself).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../arch/stream.hpp"
#include "mat.hpp"
#include "simd.hpp"

namespace tpp {

#ifndef TPP_STREAM_BYTES
#define TPP_STREAM_BYTES (std::size_t(16) << 20)
#endif
inline std::atomic<std::size_t> stream_threshold{TPP_STREAM_BYTES};

namespace detail {

inline constexpr index_t stream_width = simd::enabled ? simd::width<> : 1;
inline constexpr bool streaming_available = simd::enabled && arch::streaming_stores<simd::default_arch>;

template <class T>
std::size_t view_bytes(mat<T> m) noexcept {
  return std::size_t(m.rows) * std::size_t(m.cols) * sizeof(T);
}

template <class T>
bool streams(mat<T> y, std::size_t footprint) noexcept {
  return streaming_available && std::is_same_v<std::remove_const_t<T>, float> &&
         footprint >= stream_threshold.load(std::memory_order_relaxed) &&
         reinterpret_cast<std::uintptr_t>(y.data) % (stream_width * sizeof(float)) == 0 && y.ld % stream_width == 0;
}

// v to p, a vector-aligned float*, past the caches (streaming_available only).
template <class L>
void stream_store([[maybe_unused]] float* p, [[maybe_unused]] L v) noexcept {
  if constexpr (streaming_available) arch::stream_store<simd::default_arch>(p, v);
}

// Where stream (the op's streams(y, ...)) and v is a whole vector (m == stream_width) of an fp32 output:
// v to p past the caches, and true; else false, and the caller stores v its own way (partial vectors,
// bf16 or integer outputs, no streaming).
template <class T, class L>
bool stream_whole(T* p, L v, index_t m, bool stream) noexcept {
  if constexpr (streaming_available && std::is_same_v<T, float>) {
    if (stream && m == stream_width) {
      stream_store(p, v);
      return true;
    }
  } else {
    (void)p, (void)v, (void)m, (void)stream;
  }
  return false;
}

inline void stream_fence() noexcept {
  if constexpr (streaming_available) arch::stream_fence();
}

}  // namespace detail
}  // namespace tpp
