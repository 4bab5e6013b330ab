#pragma once
// GEMM: C = alpha * op(A) * op(B) + beta * C, with every product of an A and a B element taken by the
// multiply policy and the accumulation in fp32. op(X) = X, or X transposed when trans_x (the view then
// holds the stored, untransposed matrix). alpha and beta scale exactly (plain fp32 multiplies, not the
// policy); beta = 0 never reads C (so NaN or garbage in C does not propagate).
//
// Variants
//   gemm<Policy>(A, B, C, gemm_params, epilogue)      A: (M, K) or (K, M); B: (K, N) or (N, K); C: (M, N)
//       one call, OpenMP-parallel when large (each thread packs into a frame of its own arena)
//   gemm_kernel<Policy, TA, TB, TC>(gemm_shape, gemm_params)              gemm/kernel.hpp
//       k(A, B, C, epilogue = {}, workspace = {}): a fixed shape and leading dimensions, validated once,
//       called with views of that shape; single-threaded; workspace_bytes()
//   brgemm_kernel<Policy, TA, TB, TC>(gemm_shape, gemm_params, gemm_backend)   gemm/brgemm.hpp
//       C = alpha sum_i op(A_i) op(B_i) + beta C: by_address, by_offset, by_stride (LIBXSMM's three batch
//       kinds, counted in elements); single-threaded; workspace_bytes()
//   element types: A, B fp32 or bf16; C fp32 or bf16 (bf16 results round to nearest even, once)
//   epilogue (ops/epilogue.hpp): bias per row or column, an activation, a chain of them, or any functor,
//       run on each finished tile of C (fp32, before a bf16 C's rounding) while it is in L1
//   gemm(A u8, B s8, C s32, p)                        exact integer GEMM, vpdpbusd where targeted (gemm/int8.hpp)
//   gemm<Policy>(A, B, C s32, p)                      an 8-bit multiplier (approx::int8_multiplier): per-sliver
//                                                     tables of its products (gemm/int8_table.hpp)
//
// Dispatch: the policy's GEMM traits (approx/gemm_traits.hpp, declared in the policy's own header) choose
// the path; the GEMM names no policy.
//   ieee      FMA on the stored operands, an fp32 untransposed A read in place; bf16 x bf16 with
//             AVX512_BF16: vdpbf16ps on K-pairs (its adds round and flush denormals: within the fp32 bound,
//             not IEEE FMA bit for bit); brgemm_kernel: LIBXSMM for fp32 blocks when built in
//   packed    operands transformed while packing (O(n^2)), the policy's step in the micro-kernel, bit for
//             bit its products while the block pair's exponent ranges keep every product normal; other
//             block pairs take the careful step on unmodified operands
//   table     (with SIMD) per-sliver product tables, one load and one FMA per product (gemm/table.hpp),
//             under the same range condition
//   careful   any policy without traits: acc += Policy::mul(a, b) with the policy's bit-identical SIMD mul
// With TPP_NO_SIMD the same loops run on scalars.
//
// Structure (BLIS): for each NC-column panel of op(B) and KC-deep slice of K, op(B) is packed into
// NR-column slivers; for each MC-row block, op(A) is packed into MR-row slivers (bf16 widened, transposes
// resolved, edges zero-padded: gemm/pack.hpp); the micro-kernel then keeps an MR x NR tile of C in
// registers over the KC loop (gemm/micro.hpp; edge tiles go through a local tile); block sizes from the
// step's register needs. A bf16 C is accumulated in an fp32 region and rounded once. Large problems are
// split over the OpenMP team by columns (or rows, when C is tall), none when called from inside a
// parallel region (gemm/loops.hpp). A batch-reduce runs the same loops with the batch inside the
// column-panel loop: each (A_i, B_i) pair contributes its K slices to the same C tiles, beta applies on the
// very first slice, the epilogue after the last.
//
// Scratch (core/workspace.hpp): packing buffers are regions of the call's frame, from the caller's
// workspace (kernel objects) or the calling thread's arena, so a GEMM run inside another's epilogue gets
// buffers of its own.
//
// Errors (tpp::error): invalid views or kernel shapes (sizes < 0, ld < the stored columns, extents that
// overflow), op(A) / op(B) / C shapes that do not chain, a kernel called with views of another shape,
// non-finite alpha or beta, C overlapping A or B (any A_i or B_i of a batch), null pointers with a nonzero
// size or count, a negative count, a workspace smaller than workspace_bytes(), a policy whose validate()
// fails; integer GEMMs: alpha other than 1, beta other than 0 or 1.

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "../approx/exact.hpp"
#include "../approx/gemm_traits.hpp"
#include "../approx/policy.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/workspace.hpp"
#include "epilogue.hpp"
#include "gemm/brgemm.hpp"
#include "gemm/int8.hpp"
#include "gemm/int8_table.hpp"
#include "gemm/kernel.hpp"
#include "gemm/loops.hpp"
#include "gemm/params.hpp"

namespace tpp {

// C = alpha op(A) op(B) + beta C, then the epilogue; OpenMP-parallel when large (see the top of the file).
template <class Policy = approx::exact, class TA, class TB, class TC, class Epilogue = epilogue::none>
  requires approx::multiplier<Policy> && detail::gemm_element<TA> && detail::gemm_element<TB> &&
           detail::gemm_element<TC> && (!std::is_const_v<TC>) && epilogue::callable<Epilogue>
void gemm(mat<const TA> A, mat<const TB> B, mat<TC> C, gemm_params p = {}, const Epilogue& ep = {}) {
  constexpr std::string_view op = "gemm";
  detail::check_mat(A, op, "A");
  detail::check_mat(B, op, "B");
  detail::check_mat(C, op, "C");
  detail::check_gemm_shapes(op, A, B, C, p);
  detail::check_gemm_params(op, p);
  if (detail::views_overlap(C, A)) throw error(op, "C", "overlaps A");
  if (detail::views_overlap(C, B)) throw error(op, "C", "overlaps B");
  approx::check_policy<Policy>();
  if (C.empty()) return;
  const index_t k = p.trans_a ? A.rows : A.cols;
  const auto operands = [&](index_t) { return detail::operand_pair<TA, TB>{A, B}; };
  scratch s({}, op);
  detail::gemm_run<Policy, TA, TB>(true, 1, operands, C, k, p, ep, s);
}

// Views of mutable A or B convert: the same call with mat<const T> arguments.
template <class Policy = approx::exact, class TA, class TB, class TC, class Epilogue = epilogue::none>
  requires(!std::is_const_v<TA> || !std::is_const_v<TB>) && detail::gemm_element<TA> && detail::gemm_element<TB>
void gemm(mat<TA> A, mat<TB> B, mat<TC> C, gemm_params p = {}, const Epilogue& ep = {}) {
  gemm<Policy, std::remove_const_t<TA>, std::remove_const_t<TB>, TC>(mat<const std::remove_const_t<TA>>(A),
                                                                     mat<const std::remove_const_t<TB>>(B), C, p, ep);
}

// Exact integer GEMM for quantized inference: C (int32) = op(A) (uint8) op(B) (int8) [+ C]: alpha must be 1
// and beta 0 or 1 (no rounding anywhere; vpdpbusd where the compiler targets AVX512_VNNI, int32 lanes
// otherwise; gemm/int8.hpp). OpenMP-parallel when large.
inline void gemm(mat<const std::uint8_t> A, mat<const std::int8_t> B, mat<std::int32_t> C, gemm_params p = {}) {
  detail::check_int_gemm("gemm", A, B, C, p);
  if (C.empty()) return;
  detail::gemm_u8s8_threaded(A, B, C, p.trans_a ? A.rows : A.cols, p.trans_a, p.trans_b, p.beta == 1.0f);
}

// Approximate integer GEMM with an 8-bit multiplier (approx::int8_multiplier, e.g. an EvoApproxLib
// circuit): C (int32) = sum_k Policy::mul(op(A)(i, k), op(B)(k, j)) [+ C], both operands of the
// multiplier's operand type; alpha must be 1 and beta 0 or 1; sums are exact (modulo 2^32). Per-sliver
// product tables make the inner step one load and one add per product lane (gemm/int8_table.hpp).
// OpenMP-parallel when large.
template <class Policy, class TA, class TB>
  requires approx::int8_multiplier<Policy> && std::same_as<std::remove_const_t<TA>, typename Policy::operand_type> &&
           std::same_as<std::remove_const_t<TB>, typename Policy::operand_type>
void gemm(mat<TA> A, mat<TB> B, mat<std::int32_t> C, gemm_params p = {}) {
  using T = typename Policy::operand_type;
  const mat<const T> a(A);
  const mat<const T> b(B);
  detail::check_int_gemm("gemm", a, b, C, p);
  if (C.empty()) return;
  const index_t k = p.trans_a ? a.rows : a.cols;
  using blk = detail::gemm_int8_table_blocking;
  detail::gemm_s32_threaded<blk::mr, blk::nr>(a, b, C, k, p.trans_a, p.trans_b,
                                              [&](const auto& as, const auto& bs, const mat<std::int32_t>& cs) {
                                                detail::gemm_int8_table_serial<Policy>(as, bs, cs, k, p.trans_a,
                                                                                       p.trans_b, p.beta == 1.0f);
                                              });
}

}  // namespace tpp
