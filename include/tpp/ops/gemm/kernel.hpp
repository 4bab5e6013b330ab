#pragma once
// gemm_kernel: a GEMM of one fixed shape (ops/gemm.hpp is the interface).

#include <cstddef>
#include <string_view>
#include <type_traits>

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/error.hpp"
#include "../../core/mat.hpp"
#include "../../core/workspace.hpp"
#include "../epilogue.hpp"
#include "loops.hpp"
#include "params.hpp"

namespace tpp {

// C = alpha op(A) op(B) + beta C, then an epilogue, on the calling thread (safe inside a user's parallel
// region; use gemm() for an OpenMP-parallel large GEMM). Made once for a shape and leading dimensions
// (validated then); called with views of exactly that shape: A and B as stored (op(A) (m, k) from a
// (k, m) A when trans_a), lda / ldb / ldc apart; a view that differs throws tpp::error naming it.
// Scratch: workspace_bytes(), from the caller's workspace or, by default, the thread's arena.
template <class Policy = approx::exact, class TA = float, class TB = TA, class TC = float>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC>
class gemm_kernel {
 public:
  static constexpr std::string_view label = "gemm_kernel";

  explicit gemm_kernel(gemm_shape shape, gemm_params p = {}) : l_(label, shape, p) { approx::check_policy<Policy>(); }

  template <class Epilogue = epilogue::none>
    requires epilogue::callable<Epilogue>
  void operator()(mat<const TA> A, mat<const TB> B, mat<TC> C, const Epilogue& ep = {}, workspace ws = {}) const {
    l_.check_a(label, "A", A);
    l_.check_b(label, "B", B);
    l_.check_c(label, "C", C);
    if (detail::views_overlap(C, A)) throw error(label, "C", "overlaps A");
    if (detail::views_overlap(C, B)) throw error(label, "C", "overlaps B");
    if (C.empty()) return;
    scratch s(ws, label);
    const auto operands = [&](index_t) { return detail::operand_pair<TA, TB>{A, B}; };
    detail::gemm_run<Policy, TA, TB>(false, 1, operands, C, l_.s.k, l_.p, ep, s);
  }

  // The bytes of scratch memory a call takes (a smaller workspace throws tpp::error).
  std::size_t workspace_bytes() const noexcept { return detail::gemm_workspace_bytes<Policy, TC>(l_.s.m, l_.s.n); }

  const gemm_shape& shape() const noexcept { return l_.s; }
  const gemm_params& params() const noexcept { return l_.p; }

 private:
  detail::gemm_layout l_;
};

}  // namespace tpp
