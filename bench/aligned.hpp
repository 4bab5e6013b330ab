#pragma once
// Benchmark buffers start on 64-byte boundaries, as tensor allocators give them (oneDNN's own, PyTorch's).
// std::vector's large blocks start 16 bytes past a page: every vector load and store then spans two lines
// and no output can stream; oneDNN's batchnorm ran up to 1.7x slower on them, tpp's bfp_fake_quant
// 0.83-0.9x memcpy instead of 1.0-1.1x. Every program that times tpp next to a peer uses these.

#include <vector>

#include <xsimd/xsimd.hpp>

namespace tpp::bench {

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, 64>>;

}  // namespace tpp::bench
