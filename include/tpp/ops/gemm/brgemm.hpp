#pragma once
// brgemm_kernel: a batch-reduce GEMM of one fixed shape (ops/gemm.hpp is the interface), LIBXSMM's BRGEMM.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../../approx/exact.hpp"
#include "../../approx/gemm_traits.hpp"
#include "../../approx/policy.hpp"
#include "../../backend/libxsmm.hpp"
#include "../../core/error.hpp"
#include "../../core/mat.hpp"
#include "../../core/workspace.hpp"
#include "../epilogue.hpp"
#include "loops.hpp"
#include "params.hpp"

namespace tpp {

// Which implementation a kernel object may use: automatic picks an optional backend where it is built in
// and faster on the shape (LIBXSMM for exact fp32 BRGEMM blocks), tpp forces tpp's own loops.
enum class gemm_backend { automatic, tpp };

// C = alpha sum_{i < count} op(A_i) op(B_i) + beta C, then an epilogue, on the calling thread: the block
// that convolution and attention are composed from. Made once for a shape (A_i and B_i as stored, lda /
// ldb apart; C (m, n), ldc apart); the batch in LIBXSMM's three kinds, counted in elements (LIBXSMM
// counts bytes), one member each:
//   by_address(A, B, C)                          A_i = A[i], B_i = B[i]: spans of pointers (count: their size)
//   by_offset(A, a_offs, B, b_offs, C)           A_i = A + a_offs[i], B_i = B + b_offs[i]
//   by_stride(A0, stride_a, B0, stride_b, count, C)
//                                                A_i = A0.data + i stride_a, B_i likewise: A0, B0 the first
//                                                pair as views of the kernel's shapes
// each then [epilogue] and [workspace] (gemm_kernel's). count = 0 gives C = beta C (then the epilogue).
// C must not overlap any A_i or B_i.
//
// Backend: built with TPP_WITH_LIBXSMM, a kernel on the ieee path (exact) with fp32 operands and C, no
// transposes, alpha = 1, beta 0 or 1 and m, n, k <= 128 (blocks where LIBXSMM 1.17's JIT beats tpp's
// loops, docs/performance.md) dispatches LIBXSMM once at construction and runs its kernels (a stride batch
// as offsets); when LIBXSMM returns no kernel (any shape under LIBXSMM_TARGET=generic), or for anything
// else, tpp's own loops run. uses_libxsmm() says which.
template <class Policy = approx::exact, class TA = float, class TB = TA, class TC = float>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC>
class brgemm_kernel {
 public:
  static constexpr std::string_view label = "brgemm_kernel";

  explicit brgemm_kernel(gemm_shape shape, gemm_params p = {}, gemm_backend backend = gemm_backend::automatic)
      : l_(label, shape, p) {
    approx::check_policy<Policy>();
#if defined(TPP_WITH_LIBXSMM)
    if constexpr (libxsmm_eligible)
      if (backend == gemm_backend::automatic && !p.trans_a && !p.trans_b && p.alpha == 1.0f &&
          (p.beta == 0.0f || p.beta == 1.0f) && std::max({l_.s.m, l_.s.n, l_.s.k}) <= 128 && l_.s.m > 0 &&
          l_.s.n > 0 && l_.s.k > 0) {
        using xsmm = backend::libxsmm::brgemm<float>;
        const gemm_shape& s = l_.s;
        xsmm address(s.m, s.n, s.k, s.lda, s.ldb, s.ldc, p.beta, backend::libxsmm::batch_kind::address);
        xsmm offset(s.m, s.n, s.k, s.lda, s.ldb, s.ldc, p.beta, backend::libxsmm::batch_kind::offset);
        if (address.valid() && offset.valid()) {
          xsmm_address_.emplace(std::move(address));
          xsmm_offset_.emplace(std::move(offset));
        }
      }
#else
    (void)backend;
#endif
  }

  template <class Epilogue = epilogue::none>
    requires epilogue::callable<Epilogue>
  void by_address(std::span<const TA* const> A, std::span<const TB* const> B, mat<TC> C, const Epilogue& ep = {},
                  workspace ws = {}) const {
    const index_t count = index_t(A.size());
    if (B.size() != A.size())
      throw error(label, "B", detail::concat("has ", std::to_string(B.size()), " entries but A has ",
                                             std::to_string(A.size())));
    run([&](index_t i) { return pair(A[std::size_t(i)], B[std::size_t(i)]); }, C, count, ep, ws, [&] {
#if defined(TPP_WITH_LIBXSMM)
      if constexpr (libxsmm_eligible) (*xsmm_address_)(A.data(), B.data(), C.data, count);
#endif
    });
  }

  template <class Epilogue = epilogue::none>
    requires epilogue::callable<Epilogue>
  void by_offset(const TA* A, std::span<const index_t> a_offs, const TB* B, std::span<const index_t> b_offs, mat<TC> C,
                 const Epilogue& ep = {}, workspace ws = {}) const {
    const index_t count = index_t(a_offs.size());
    if (b_offs.size() != a_offs.size())
      throw error(label, "b_offs", detail::concat("has ", std::to_string(b_offs.size()), " offsets but a_offs has ",
                                                  std::to_string(a_offs.size())));
    if (count > 0 && A == nullptr) throw error(label, "A", "is null with a nonzero count");
    if (count > 0 && B == nullptr) throw error(label, "B", "is null with a nonzero count");
    run([&](index_t i) { return pair(A + a_offs[std::size_t(i)], B + b_offs[std::size_t(i)]); }, C, count, ep, ws, [&] {
#if defined(TPP_WITH_LIBXSMM)
      if constexpr (libxsmm_eligible) (*xsmm_offset_)(A, a_offs.data(), B, b_offs.data(), C.data, count);
#endif
    });
  }

  template <class Epilogue = epilogue::none>
    requires epilogue::callable<Epilogue>
  void by_stride(mat<const TA> A0, index_t stride_a, mat<const TB> B0, index_t stride_b, index_t count, mat<TC> C,
                 const Epilogue& ep = {}, workspace ws = {}) const {
    if (count < 0) throw error(label, "count", detail::concat("is negative (", std::to_string(count), ")"));
    if (count > 0) {
      l_.check_a(label, "A0", A0);
      l_.check_b(label, "B0", B0);
    }
    const TA* a = A0.data;
    const TB* b = B0.data;
    run([&](index_t i) { return pair(a + i * stride_a, b + i * stride_b); }, C, count, ep, ws, [&] {
#if defined(TPP_WITH_LIBXSMM)
      if constexpr (libxsmm_eligible) {
        constexpr index_t chunk = 256;  // offsets on the stack; a longer batch goes as address arrays
        if (count <= chunk) {
          index_t ao[chunk], bo[chunk];
          for (index_t i = 0; i < count; ++i) {
            ao[i] = i * stride_a;
            bo[i] = i * stride_b;
          }
          (*xsmm_offset_)(a, ao, b, bo, C.data, count);
        } else {
          std::vector<const float*> pa(static_cast<std::size_t>(count)), pb(static_cast<std::size_t>(count));
          for (index_t i = 0; i < count; ++i) {
            pa[std::size_t(i)] = a + i * stride_a;
            pb[std::size_t(i)] = b + i * stride_b;
          }
          (*xsmm_address_)(pa.data(), pb.data(), C.data, count);
        }
      }
#endif
    });
  }

  // The bytes of scratch memory a call takes (a smaller workspace throws tpp::error).
  std::size_t workspace_bytes() const noexcept { return detail::gemm_workspace_bytes<Policy, TC>(l_.s.m, l_.s.n); }

  const gemm_shape& shape() const noexcept { return l_.s; }
  const gemm_params& params() const noexcept { return l_.p; }
  bool uses_libxsmm() const noexcept {
#if defined(TPP_WITH_LIBXSMM)
    if constexpr (libxsmm_eligible) return xsmm_address_.has_value();
#endif
    return false;
  }

 private:
  static constexpr bool libxsmm_eligible = approx::gemm_traits<Policy>::path == approx::gemm_path::ieee &&
                                           std::is_same_v<TA, float> && std::is_same_v<TB, float> &&
                                           std::is_same_v<TC, float>;

  detail::operand_pair<TA, TB> pair(const TA* a, const TB* b) const noexcept { return {l_.a_view(a), l_.b_view(b)}; }

  // Validates C and the batch, then runs the backend (when dispatched and the batch is not empty) or tpp's
  // loops; the epilogue runs after the backend on C's rows.
  template <class Ops, class Epilogue, class Backend>
  void run(const Ops& operands, const mat<TC>& C, index_t count, const Epilogue& ep, workspace ws,
           const Backend& backend) const {
    using std::to_string;
    l_.check_c(label, "C", C);
    for (index_t i = 0; i < count; ++i) {
      const detail::operand_pair<TA, TB> o = operands(i);
      if (o.a.data == nullptr && !o.a.empty()) throw error(label, detail::concat("A_", to_string(i)), "is null");
      if (o.b.data == nullptr && !o.b.empty()) throw error(label, detail::concat("B_", to_string(i)), "is null");
      if (detail::views_overlap(C, o.a)) throw error(label, "C", detail::concat("overlaps A_", to_string(i)));
      if (detail::views_overlap(C, o.b)) throw error(label, "C", detail::concat("overlaps B_", to_string(i)));
    }
    if (C.empty()) return;
    if constexpr (libxsmm_eligible) {
      if (uses_libxsmm() && count > 0) {
        backend();
        if constexpr (!std::is_same_v<Epilogue, epilogue::none>)
          for (index_t i = 0; i < C.rows; ++i) ep(i, 0, C.row(i), C.cols);
        return;
      }
    }
    scratch s(ws, label);
    detail::gemm_run<Policy, TA, TB>(false, count, operands, C, l_.s.k, l_.p, ep, s);
  }

  detail::gemm_layout l_;
#if defined(TPP_WITH_LIBXSMM)
  std::optional<backend::libxsmm::brgemm<float>> xsmm_address_, xsmm_offset_;
#endif
};

}  // namespace tpp
