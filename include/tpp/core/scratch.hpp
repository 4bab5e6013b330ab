#pragma once
// thread_scratch<Slot>(n): a grow-only, 64-byte aligned fp32 buffer of at least n elements, one per thread
// and slot (thread_local, so each OpenMP thread of a caller's parallel region gets its own). Ops use
// distinct slots for buffers that live at the same time; the contents do not survive another call with
// the same slot on the same thread.
//   slot 0: reduce's partial sums; 1, 2, 3: gemm's packed A, packed B and fp32 C workspace; 4, 6: gemm's
//   unmodified B and A for a policy's careful path; 5: the product tables of lut<> GEMMs
//   slot 7: norm.hpp softmax's fp32 rows for bf16 outputs
//   slot 8: backend/libxsmm's packed bf16 operands
//   slots 9-13: norm.hpp's per-channel statistics, scales and sums, and column max / min rows
//   slots 14, 15: quantize.hpp's per-column scales / offsets and min / max rows; 16-19: sparse.hpp's work
//   buffers (output tiles, zero-skipping and transposition panels, B's copied panel)

#include <cstddef>
#include <cstdlib>
#include <new>

namespace tpp {

template <int Slot>
float* thread_scratch(std::size_t n) {
  struct buffer {
    float* data = nullptr;
    std::size_t size = 0;
    ~buffer() { std::free(data); }
  };
  thread_local buffer b;
  if (b.size < n) {
    const std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    std::free(b.data);
    b.data = p;
    b.size = bytes / sizeof(float);
  }
  return b.data;
}

}  // namespace tpp
