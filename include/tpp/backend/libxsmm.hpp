#pragma once
// backend/libxsmm: exact fp32 and bf16 batch-reduce GEMM through LIBXSMM 1.17's JIT, as an optional
// acceleration and benchmark peer (no approximate multiply: products are IEEE, accumulation fp32).
// Only meaningful when TPP_WITH_LIBXSMM is defined (the CMake target tpp_libxsmm defines it and links
// -lxsmm -lxsmmnoblas -lpthread -lrt -ldl -lm); without it this header is empty.
//
//   brgemm<T> k(m, n, k, lda, ldb, ldc, beta, kind [, stride_a, stride_b]);   T = float or bf16, C fp32
//   C (m, n) = beta C + sum_{i < count} A_i (m, k) B_i (k, n), all row-major, lds in elements,
//   beta 0 (C is never read: NaN in C does not propagate) or 1; single-threaded, const calls thread-safe.
//
// Batch kinds (batch_kind), one per kernel object; calling another kind throws:
//   address  k(a, b, c, count)                A_i = a[i], B_i = b[i] (the arrays are copied in chunks of 64:
//                                             1.17's kernels advance the entries they are given)
//   offset   k(a, a_offs, b, b_offs, c, count) A_i = a + a_offs[i], B_i = b + b_offs[i] (elements)
//   stride   k(a, b, c, count)                A_i = a + i stride_a, B_i = b + i stride_b (elements, >= 0)
//
// Row-major is LIBXSMM's column-major problem transposed: C^T (n, m) = B^T A^T, so LIBXSMM sees M = n,
// N = m, K = k, its A = our B (lda_x = ldb), its B = our A (ldb_x = lda), ldc_x = ldc.
//
// Dispatch (made once, in the constructor):
//   fp32  libxsmm_smmdispatch_reducebatch_{addr,offs,strd}, flags 0 (beta 0 adds LIBXSMM_GEMM_FLAG_BETA_0),
//         prefetch LIBXSMM_GEMM_PREFETCH_NONE (the prefetching variants read extra kernel arguments).
//         LIBXSMM wants offsets and strides in bytes: strides are converted at dispatch, offsets per call
//         in chunks of 64 on the stack (chunks after the first run a second, beta = 1 kernel; fp32 partial
//         sums stored and reloaded exactly, so the result is bit-identical to one long batch).
//   bf16  1.17 JITs bf16 only with LIBXSMM_GEMM_FLAG_VNNI_A (its A, our B, in pairs of k: element (q, j)
//         of B at ((q / 2) lda_x + j) 2 + q % 2), an even K and an AVX-512 target; its B (our A) is read
//         as k pairs (an odd lda would not do). A row-major user B is not VNNI, so every call packs: per
//         batch entry B_i into VNNI (k/2, n, 2) and A_i into (m, k) contiguous, k rounded up to even with
//         zero padding (0 * 0 adds nothing), both in a scratch frame on the calling thread's arena
//         (core/workspace.hpp), batch entries in chunks of about 256 KiB of packed operands; then
//         libxsmm_bsmmdispatch_reducebatch_strd (flags LIBXSMM_GEMM_FLAG_VNNI_A) runs on the packed chunk,
//         chunks after the first with a beta = 1 kernel. Packing is O((m + n) k) per entry against the
//         O(m n k) product: it dominates small shapes. bf16 products are exact in fp32, but denormals are
//         not kept: the cpx kernels (vdpbf16ps) flush them to zero, the skx ones lose some (measured).
//
// valid() is false when LIBXSMM returns no kernel: for bf16 below an AVX-512 target, for sizes, lds or
// byte strides beyond its 32-bit integers, and for everything under LIBXSMM_TARGET=generic (1.17 has
// no generic JIT: every dispatch returns NULL there). Calling an invalid kernel throws. Shapes with m, n
// or k zero, and count = 0, need no kernel: valid() is true and the call applies beta (C = 0 or C).
//
// Errors (tpp::error, op "libxsmm_brgemm"): sizes < 0, lda < k, ldb < n, ldc < n, beta other than 0 or 1,
// a negative stride; on a call: the wrong batch kind, an invalid kernel, a negative count, null pointers
// with a nonzero count. Pointers and offsets within the batch are not checked.

#if defined(TPP_WITH_LIBXSMM)

#include <libxsmm.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/workspace.hpp"
#include "../core/types.hpp"

namespace tpp::backend::libxsmm {

enum class batch_kind { address, offset, stride };

namespace impl {

inline constexpr std::string_view op = "libxsmm_brgemm";

// LIBXSMM's own state (CPUID, JIT cache), once per process; dispatch is thread-safe after that.
inline void init() {
  static const bool done = (libxsmm_init(), true);
  (void)done;
}

// Whether v fits LIBXSMM's libxsmm_blasint (int in the LP64 build): sizes, lds, byte strides.
inline bool fits_blasint(index_t v) noexcept {
  return v >= 0 && v <= index_t(std::numeric_limits<libxsmm_blasint>::max());
}

inline std::string_view kind_name(batch_kind k) noexcept {
  switch (k) {
    case batch_kind::address: return "address";
    case batch_kind::offset: return "offset";
    case batch_kind::stride: return "stride";
  }
  return "?";
}

// Offsets converted to bytes per call, this many at a time, on the stack.
inline constexpr index_t offset_chunk = 64;
// Packed bf16 operands per chunk of batch entries (at least one entry).
inline constexpr index_t packed_chunk_bytes = index_t(256) << 10;

}  // namespace impl

template <class T>
class brgemm {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>,
                "tpp: libxsmm::brgemm takes float or bf16 inputs");

 public:
  brgemm(index_t m, index_t n, index_t k, index_t lda, index_t ldb, index_t ldc, float beta, batch_kind kind,
         index_t stride_a = 0, index_t stride_b = 0)
      : m_(m), n_(n), k_(k), lda_(lda), ldb_(ldb), ldc_(ldc), stride_a_(stride_a), stride_b_(stride_b),
        beta_(beta), kind_(kind) {
    using tpp::detail::concat;
    tpp::detail::check_sizes(impl::op, m, n, "m", "n");
    if (k < 0) throw error(impl::op, "k", concat("is negative (", std::to_string(k), ")"));
    if (lda < k) throw error(impl::op, "lda", concat("(", std::to_string(lda), ") is smaller than k (", std::to_string(k), ")"));
    if (ldb < n) throw error(impl::op, "ldb", concat("(", std::to_string(ldb), ") is smaller than n (", std::to_string(n), ")"));
    if (ldc < n) throw error(impl::op, "ldc", concat("(", std::to_string(ldc), ") is smaller than n (", std::to_string(n), ")"));
    tpp::detail::require(beta == 0.0f || beta == 1.0f, impl::op, "beta",
                         concat("must be 0 or 1 (is ", std::to_string(beta), ")"));
    if (kind == batch_kind::stride) {
      if (stride_a < 0) throw error(impl::op, "stride_a", concat("is negative (", std::to_string(stride_a), ")"));
      if (stride_b < 0) throw error(impl::op, "stride_b", concat("is negative (", std::to_string(stride_b), ")"));
    }
    if (m == 0 || n == 0 || k == 0) {  // nothing to multiply: the call only applies beta
      valid_ = true;
      return;
    }
    impl::init();
    if constexpr (std::is_same_v<T, float>)
      dispatch_fp32();
    else
      dispatch_bf16();
  }

  bool valid() const noexcept { return valid_; }

  // Address batch: A_i = a[i], B_i = b[i].
  void operator()(const T* const* a, const T* const* b, float* c, index_t count) const {
    check_call(batch_kind::address, a, b, c, count);
    if (count == 0 || kernel_free()) return apply_beta(c);
    if constexpr (std::is_same_v<T, float>) {
      // LIBXSMM 1.17's address kernels advance the entries of the pointer arrays they are given (measured:
      // each A pointer moved by m k elements), so they get copies, in chunks of 64 on the stack (chunks
      // after the first with the beta = 1 kernel). LIBXSMM's A is our B.
      const float* ac[impl::offset_chunk];
      const float* bc[impl::offset_chunk];
      for (index_t s = 0; s < count; s += impl::offset_chunk) {
        const index_t len = std::min(impl::offset_chunk, count - s);
        std::copy(a + s, a + s + len, ac);
        std::copy(b + s, b + s + len, bc);
        const unsigned long long cnt = static_cast<unsigned long long>(len);
        (s == 0 ? addr_ : addr_acc_)(bc, ac, c, &cnt);
      }
    } else {
      run_packed(c, count, [&](index_t i) { return entry{a[i], b[i]}; });
    }
  }

  // Offset batch: A_i = a + a_offs[i], B_i = b + b_offs[i], offsets in elements.
  void operator()(const T* a, const index_t* a_offs, const T* b, const index_t* b_offs, float* c,
                  index_t count) const {
    check_call(batch_kind::offset, a, b, c, count);
    if (count != 0 && (a_offs == nullptr || b_offs == nullptr))
      throw error(impl::op, a_offs == nullptr ? "a_offs" : "b_offs", "is null with a nonzero count");
    if (count == 0 || kernel_free()) return apply_beta(c);
    if constexpr (std::is_same_v<T, float>) {
      unsigned long long ao[impl::offset_chunk], bo[impl::offset_chunk];  // bytes, as LIBXSMM wants them
      for (index_t s = 0; s < count; s += impl::offset_chunk) {
        const index_t len = std::min(impl::offset_chunk, count - s);
        for (index_t i = 0; i < len; ++i) {
          ao[i] = static_cast<unsigned long long>(a_offs[s + i]) * sizeof(float);
          bo[i] = static_cast<unsigned long long>(b_offs[s + i]) * sizeof(float);
        }
        const unsigned long long cnt = static_cast<unsigned long long>(len);
        (s == 0 ? offs_ : offs_acc_)(b, a, c, &cnt, bo, ao);
      }
    } else {
      run_packed(c, count, [&](index_t i) { return entry{a + a_offs[i], b + b_offs[i]}; });
    }
  }

  // Stride batch: A_i = a + i stride_a, B_i = b + i stride_b (the strides given at construction).
  void operator()(const T* a, const T* b, float* c, index_t count) const {
    check_call(batch_kind::stride, a, b, c, count);
    if (count == 0 || kernel_free()) return apply_beta(c);
    if constexpr (std::is_same_v<T, float>) {
      const unsigned long long cnt = static_cast<unsigned long long>(count);
      strd_(b, a, c, &cnt);
    } else {
      run_packed(c, count, [&](index_t i) { return entry{a + i * stride_a_, b + i * stride_b_}; });
    }
  }

 private:
  struct entry {
    const T* a;
    const T* b;
  };

  index_t m_, n_, k_, lda_, ldb_, ldc_, stride_a_, stride_b_;
  float beta_;
  batch_kind kind_;
  bool valid_ = false;
  // fp32: the kernel of kind_ with beta_, and for offsets a beta = 1 kernel for the chunks after the first.
  libxsmm_smmfunction_reducebatch_addr addr_ = nullptr, addr_acc_ = nullptr;
  libxsmm_smmfunction_reducebatch_offs offs_ = nullptr, offs_acc_ = nullptr;
  libxsmm_smmfunction_reducebatch_strd strd_ = nullptr;
  // bf16: strided kernels over packed chunks, with beta_ and with beta = 1.
  libxsmm_bsmmfunction_reducebatch_strd packed_ = nullptr, packed_acc_ = nullptr;
  index_t kp_ = 0;  // k rounded up to even (bf16)

  bool kernel_free() const noexcept { return m_ == 0 || n_ == 0 || k_ == 0; }

  void dispatch_fp32() {
    // LIBXSMM's column-major problem: M = n, N = m, its lda = our ldb, its ldb = our lda.
    if (!impl::fits_blasint(m_) || !impl::fits_blasint(n_) || !impl::fits_blasint(k_) ||
        !impl::fits_blasint(lda_) || !impl::fits_blasint(ldb_) || !impl::fits_blasint(ldc_))
      return;
    const libxsmm_blasint M = libxsmm_blasint(n_), N = libxsmm_blasint(m_), K = libxsmm_blasint(k_);
    const libxsmm_blasint lda_x = libxsmm_blasint(ldb_), ldb_x = libxsmm_blasint(lda_), ldc_x = libxsmm_blasint(ldc_);
    const float alpha = 1.0f, beta = beta_, one = 1.0f;
    const int flags = LIBXSMM_GEMM_FLAG_NONE, prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    switch (kind_) {
      case batch_kind::address:
        addr_ = libxsmm_smmdispatch_reducebatch_addr(M, N, K, &lda_x, &ldb_x, &ldc_x, &alpha, &beta, &flags, &prefetch);
        addr_acc_ = beta_ == 1.0f ? addr_
                                  : libxsmm_smmdispatch_reducebatch_addr(M, N, K, &lda_x, &ldb_x, &ldc_x, &alpha,
                                                                         &one, &flags, &prefetch);
        valid_ = addr_ != nullptr && addr_acc_ != nullptr;
        break;
      case batch_kind::offset:
        offs_ = libxsmm_smmdispatch_reducebatch_offs(M, N, K, &lda_x, &ldb_x, &ldc_x, &alpha, &beta, &flags, &prefetch);
        offs_acc_ = beta_ == 1.0f ? offs_
                                  : libxsmm_smmdispatch_reducebatch_offs(M, N, K, &lda_x, &ldb_x, &ldc_x, &alpha,
                                                                         &one, &flags, &prefetch);
        valid_ = offs_ != nullptr && offs_acc_ != nullptr;
        break;
      case batch_kind::stride: {
        // Byte strides, as LIBXSMM wants them (an imm32 in the generated code); its A is our B.
        index_t stride_ax = 0, stride_bx = 0;
        if (!tpp::detail::checked_mul(stride_b_, index_t(sizeof(float)), stride_ax) ||
            !tpp::detail::checked_mul(stride_a_, index_t(sizeof(float)), stride_bx) ||
            !impl::fits_blasint(stride_ax) || !impl::fits_blasint(stride_bx))
          return;
        strd_ = libxsmm_smmdispatch_reducebatch_strd(M, N, K, libxsmm_blasint(stride_ax), libxsmm_blasint(stride_bx),
                                                     &lda_x, &ldb_x, &ldc_x, &alpha, &beta, &flags, &prefetch);
        valid_ = strd_ != nullptr;
        break;
      }
    }
  }

  void dispatch_bf16() {
    // Packed operands: B_i as VNNI (kp/2, n, 2), so lda_x = n (in pairs); A_i as (m, kp), ldb_x = kp.
    kp_ = k_ + (k_ & 1);
    index_t sa = 0, sb = 0, n_kp = 0, m_kp = 0;
    if (!impl::fits_blasint(m_) || !impl::fits_blasint(n_) || !impl::fits_blasint(kp_) ||
        !impl::fits_blasint(ldc_) || !tpp::detail::checked_mul(n_, kp_, n_kp) ||
        !tpp::detail::checked_mul(m_, kp_, m_kp) || !tpp::detail::checked_mul(n_kp, index_t(sizeof(bf16)), sa) ||
        !tpp::detail::checked_mul(m_kp, index_t(sizeof(bf16)), sb) || !impl::fits_blasint(sa) ||
        !impl::fits_blasint(sb))
      return;
    const libxsmm_blasint M = libxsmm_blasint(n_), N = libxsmm_blasint(m_), K = libxsmm_blasint(kp_);
    const libxsmm_blasint lda_x = libxsmm_blasint(n_), ldb_x = libxsmm_blasint(kp_), ldc_x = libxsmm_blasint(ldc_);
    const float alpha = 1.0f, beta = beta_, one = 1.0f;
    const int flags = LIBXSMM_GEMM_FLAG_VNNI_A, prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    packed_ = libxsmm_bsmmdispatch_reducebatch_strd(M, N, K, libxsmm_blasint(sa), libxsmm_blasint(sb), &lda_x, &ldb_x,
                                                    &ldc_x, &alpha, &beta, &flags, &prefetch);
    packed_acc_ = beta_ == 1.0f ? packed_
                                : libxsmm_bsmmdispatch_reducebatch_strd(M, N, K, libxsmm_blasint(sa), libxsmm_blasint(sb),
                                                                        &lda_x, &ldb_x, &ldc_x, &alpha, &one, &flags,
                                                                        &prefetch);
    valid_ = packed_ != nullptr && packed_acc_ != nullptr;
  }

  void check_call(batch_kind kind, const void* a, const void* b, const float* c, index_t count) const {
    using tpp::detail::concat;
    if (kind != kind_)
      throw error(impl::op, "kind",
                  concat("mismatch: the kernel is for ", impl::kind_name(kind_), " batches, called with ",
                         impl::kind_name(kind), " arguments"));
    if (!valid_)
      throw error(impl::op, "kernel",
                  "is not valid: LIBXSMM returned no kernel for this shape and target (check valid() first)");
    if (count < 0) throw error(impl::op, "count", concat("is negative (", std::to_string(count), ")"));
    if (c == nullptr && m_ != 0 && n_ != 0) throw error(impl::op, "c", "is null with a nonzero size");
    if (count != 0 && !kernel_free() && (a == nullptr || b == nullptr))
      throw error(impl::op, a == nullptr ? "a" : "b", "is null with a nonzero count");
  }

  // C = beta C when nothing is multiplied.
  void apply_beta(float* c) const noexcept {
    if (beta_ == 0.0f)
      for (index_t i = 0; i < m_; ++i) std::fill_n(c + i * ldc_, n_, 0.0f);
  }

  // bf16: pack chunks of batch entries (entry_of(i) gives A_i, B_i) and run the strided kernel on them.
  template <class EntryOf>
  void run_packed(float* c, index_t count, EntryOf entry_of) const {
    const index_t pb_size = kp_ * n_, pa_size = m_ * kp_;  // bf16 elements per packed entry
    const index_t chunk = std::clamp(impl::packed_chunk_bytes / (2 * (pa_size + pb_size)), index_t(1), count);
    tpp::scratch s({}, impl::op);
    libxsmm_bfloat16* pb = s.take<libxsmm_bfloat16>(std::size_t(chunk * pb_size));  // chunk x (kp/2, n, 2)
    libxsmm_bfloat16* pa = s.take<libxsmm_bfloat16>(std::size_t(chunk * pa_size));  // chunk x (m, kp)
    for (index_t s = 0; s < count; s += chunk) {
      const index_t len = std::min(chunk, count - s);
      for (index_t i = 0; i < len; ++i) {
        const entry e = entry_of(s + i);
        pack_b_vnni(e.b, pb + i * pb_size);
        pack_a(e.a, pa + i * pa_size);
      }
      const unsigned long long cnt = static_cast<unsigned long long>(len);
      (s == 0 ? packed_ : packed_acc_)(pb, pa, c, &cnt);
    }
  }

  // B (k, n), ld ldb -> VNNI (kp/2, n, 2): out[(q n + j) 2 + r] = B(2q + r, j), a zero row past an odd k.
  void pack_b_vnni(const bf16* b, libxsmm_bfloat16* out) const noexcept {
    for (index_t q = 0; 2 * q < k_; ++q) {
      const bf16* r0 = b + 2 * q * ldb_;
      libxsmm_bfloat16* o = out + 2 * q * n_;
      if (2 * q + 1 < k_) {
        const bf16* r1 = r0 + ldb_;
        for (index_t j = 0; j < n_; ++j) {
          o[2 * j] = r0[j].bits;
          o[2 * j + 1] = r1[j].bits;
        }
      } else {
        for (index_t j = 0; j < n_; ++j) {
          o[2 * j] = r0[j].bits;
          o[2 * j + 1] = 0;
        }
      }
    }
  }

  // A (m, k), ld lda -> (m, kp) contiguous, a zero column past an odd k.
  void pack_a(const bf16* a, libxsmm_bfloat16* out) const noexcept {
    for (index_t i = 0; i < m_; ++i) {
      std::memcpy(out + i * kp_, a + i * lda_, std::size_t(k_) * sizeof(bf16));
      if (kp_ != k_) out[i * kp_ + k_] = 0;
    }
  }
};

}  // namespace tpp::backend::libxsmm

#endif  // TPP_WITH_LIBXSMM
